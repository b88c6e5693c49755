"""The one rule for leaving the event loop: ``FlowRunner`` (``Runtime.run_flow``).

Every handler hands its use case (a ``tessera.core.flows`` function, with the database
work it does) to ``await rt.run_flow(fn, *args)``, which runs it where it costs least:

- on SQLite a call is a few tens of microseconds of local work: a thread hop would cost
  more than it saves, so the flow runs on the event loop;
- on PostgreSQL a call waits for a round trip to the server, during which psycopg releases
  the GIL: run on the event loop, that wait would stall every other request of the worker,
  so the flow runs in a small per-process thread pool (``THREADS`` threads) and the loop
  serves other requests meanwhile;
- a flow that may *wait* whatever the database (``waits=True``: an argon2id password check,
  tens of milliseconds of CPU without the GIL; a refresh retry inside its grace window,
  which waits for the first answer) always leaves the loop, for Starlette's larger pool
  (waiting threads must not hold up the database pool).

Which database it is (``SQLDatabase.remote``, a ``tessera.core.ports`` capability) is read
once, when the runtime is composed.

One step awaits its database work on the loop itself: the B2BINPAY refresh's rotation
(``FlowRunner.rotate``) awaits the rotation's statement where the store can
(``tessera.core.refresh.rotate_async``, the ``AsyncRotation`` capability, PostgreSQL: one
prepared statement, cheaper than a thread hop; measured, a whole refresh in the pool costs
about 15 % more CPU per request); the token's check and the answer's signing stay on the loop,
and the rest of its database work (a refusal, a lost rotation) goes through this runner.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from tessera.core import refresh
from tessera.core.context import Core
from tessera.core.ports import Rotation
from tessera.core.refresh import RotationPlan

#: Threads per worker process for PostgreSQL calls: enough to keep a few round trips in
#: flight while the event loop parses and signs; more only adds contention for the GIL.
THREADS = 4

T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(THREADS, thread_name_prefix="tessera-db")
    return _pool


class FlowRunner:
    """``await run_flow(fn, *args, **kwargs)``: the call on the loop (a local database), in the
    database pool (a database server), or in Starlette's pool (``waits=True``)."""

    __slots__ = ("remote",)

    def __init__(self, *, remote: bool) -> None:
        self.remote = remote

    async def __call__(self, fn: Callable[..., T], /, *args: Any, waits: bool = False, **kwargs: Any) -> T:
        if waits:
            return await run_in_threadpool(fn, *args, **kwargs)
        if not self.remote:
            return fn(*args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(_executor(), functools.partial(fn, *args, **kwargs))

    async def rotate(self, core: Core, plan: RotationPlan) -> Rotation:
        """A planned refresh rotation (``tessera.core.refresh.plan_rotation``): its refusal, the
        rotation itself (awaited on the loop where the store can, else through this runner) and a
        lost rotation's settling (``InvalidGrant`` or ``RefreshRetry``) — the steps of
        ``refresh.rotate_refresh``, with its rules and answers. The caller finishes on the loop
        (``refresh.finish_rotation``: signing, no database)."""
        if plan.refusal is not None:
            await self(refresh.refuse, core, plan)
        done = await refresh.rotate_async(core, plan)
        if done is None:
            done = await self(refresh.rotate, core, plan)
        if done.status == "lost":
            await self(refresh.settle_lost, core, plan)
        return done
