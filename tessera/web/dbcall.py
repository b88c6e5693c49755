"""Run a handler's database work where it costs least.

On SQLite a call is a few tens of microseconds of local work: a thread hop would cost
more than it saves, so it runs on the event loop. On PostgreSQL a call waits for a round
trip to the server, during which psycopg releases the GIL: run on the event loop, that
wait would stall every other request of the worker, so it runs in a small per-process
thread pool (``THREADS`` threads) and the loop serves other requests meanwhile.

Used for the database work of a handler that is not awaited on the loop itself (the
B2BINPAY login's writes, the rare revocations of a refresh; the rotation proper awaits
``SQLStore.rotate_async``, which costs less than this hop); ``run`` takes the function and
its arguments, and is awaited.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

#: Threads per worker process for PostgreSQL calls: enough to keep a few round trips in
#: flight while the event loop parses and signs; more only adds contention for the GIL.
THREADS = 4

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def remote(store: Any) -> bool:
    """True when ``store`` talks to a database server (PostgreSQL), not a local file."""
    engine = getattr(store, "engine", None)
    return engine is not None and engine.dialect.name != "sqlite"


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(THREADS, thread_name_prefix="tessera-db")
    return _pool


async def run(core: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``: on the loop with SQLite, in the pool with PostgreSQL."""
    if not remote(core.store):
        return fn(*args, **kwargs)
    call = functools.partial(fn, *args, **kwargs) if kwargs else (lambda: fn(*args))
    return await asyncio.get_running_loop().run_in_executor(_executor(), call)
