"""The server's own housekeeping: the scheduled purge (tessera.core.purge), one task per process.

Every ``purge_interval_seconds`` (± 20 % jitter, so that workers started together drift
apart) each process asks for the turn (``take_turn``, an atomic claim in the database) and,
if it got it, purges in a worker thread: the event loop keeps serving. A failure (the
database down) is logged and tried again at the next interval; it never stops the server.
The counts are logged (``purge`` event) and counted in ``tessera_purged_total{kind}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog

from tessera.core import purge
from tessera.web.metrics import count_purged

log = structlog.get_logger("tessera.housekeeping")
JITTER = 0.2


_RNG = random.SystemRandom()


def next_delay(interval: float, rng: random.Random = _RNG) -> float:
    return interval * (1 + rng.uniform(-JITTER, JITTER))


async def run_once(rt: Any) -> dict[str, int] | None:
    """One scheduled round: the purge's counts, or None when another process had the turn."""
    core, settings = rt.core, rt.settings

    def work() -> dict[str, int] | None:
        now = core.now()
        if not purge.take_turn(core.store, now, settings.purge_interval_seconds):
            return None
        return purge.purge(core.store, settings, now)

    counts = await asyncio.to_thread(work)
    if counts is not None:
        count_purged(counts)
        log.info("purge", deleted=sum(counts.values()), **{k: v for k, v in counts.items()})
    return counts


async def _loop(rt: Any) -> None:
    interval = rt.settings.purge_interval_seconds
    while True:
        await asyncio.sleep(next_delay(interval))
        try:
            await run_once(rt)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - housekeeping never takes the server down
            log.warning("purge_failed", exc_type=type(e).__name__, error=str(e)[:200])


def lifespan(rt: Any) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """A Starlette lifespan that runs the schedule while the app serves (none when disabled)."""

    @contextlib.asynccontextmanager
    async def run(app: Any) -> AsyncIterator[None]:
        task = asyncio.create_task(_loop(rt)) if rt.settings.purge_interval_seconds > 0 else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    return run
