"""s7: the SDK's token cache (``tessera.sdk.cache.TokenCache``), timed in process.

- the cost of a cache hit: ``get`` from a thread, ``aget`` from a task (timeit);
- single flight: 100 threads released together on an empty cache, with a ``fetch``
  that takes ``FETCH_S``; how many fetches ran (must be 1), and how long after the
  fetch returned the last thread had its token (the cost of waking 99 waiters).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
import timeit
from typing import Any

FETCH_S = 0.05


def _token(cache_mod: Any) -> Any:
    return cache_mod.CachedToken("x" * 600, time.time() + 3600, {"token_type": "Bearer"})


def run(*, threads: int = 100, rounds: int = 20, hits: int = 200_000) -> dict[str, Any]:
    from tessera.sdk import cache as cache_mod

    cache = cache_mod.TokenCache()
    tok = _token(cache_mod)
    cache.get("k", lambda: tok)
    n = hits
    hit_sync = min(timeit.repeat(lambda: cache.get("k", lambda: tok), number=n, repeat=5)) / n

    async def hits(m: int) -> float:
        async def fetch():
            return tok

        await cache.aget("k", fetch)
        t0 = time.perf_counter()
        for _ in range(m):
            await cache.aget("k", fetch)
        return (time.perf_counter() - t0) / m

    hit_async = min(asyncio.run(hits(n)) for _ in range(3))

    fetches: list[int] = []
    overheads: list[float] = []
    totals: list[float] = []
    for _ in range(rounds):
        n_fetches, total, overhead = _single_flight_round(cache_mod, threads)
        fetches.append(n_fetches)
        totals.append(total)
        overheads.append(overhead)
    return {
        "hit_sync_ns": round(hit_sync * 1e9),
        "hit_async_ns": round(hit_async * 1e9),
        "single_flight": {
            "threads": threads,
            "rounds": rounds,
            "fetch_ms": FETCH_S * 1000,
            "fetches_max": max(fetches),
            "fetches_total": sum(fetches),
            "wall_ms_p50": round(statistics.median(totals) * 1000, 2),
            "overhead_ms_p50": round(statistics.median(overheads) * 1000, 2),
            "overhead_ms_max": round(max(overheads) * 1000, 2),
        },
    }


def _single_flight_round(cache_mod: Any, threads: int) -> tuple[int, float, float]:
    """``threads`` threads ask a fresh cache for one key at once: (fetches made, wall time,
    the last caller's wait past the fetch's end)."""
    c = cache_mod.TokenCache()
    count = [0]
    lock = threading.Lock()
    fetched_at = [0.0]

    def fetch() -> Any:
        with lock:
            count[0] += 1
        time.sleep(FETCH_S)
        fetched_at[0] = time.perf_counter()
        return _token(cache_mod)

    barrier = threading.Barrier(threads + 1)
    done_at = [0.0] * threads

    def worker(i: int) -> None:
        barrier.wait()
        c.get("k", fetch)
        done_at[i] = time.perf_counter()

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join(30)
    return count[0], max(done_at) - t0, max(done_at) - fetched_at[0]


if __name__ == "__main__":
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    print(json.dumps(run(), indent=2))
