"""Time, injectable for tests."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]


def system_clock() -> float:
    return time.time()


def to_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


@functools.lru_cache(maxsize=64)
def _second(sec: int) -> str:
    """The date and time of day of ``sec``, kept for the seconds ``iso_z`` formats lately (an
    answer names a few: now, when its tokens expire)."""
    return to_datetime(sec).strftime("%Y-%m-%dT%H:%M:%S")


def iso_z(ts: float, *, micros: bool = False) -> str:
    """UTC ISO-8601 ending in ``Z`` (with microseconds when asked): what
    ``to_datetime(ts).strftime("%Y-%m-%dT%H:%M:%S[.%f]Z")`` gives, the date and time of day
    formatted once per second (a few seconds kept) and the microseconds rounded as ``datetime.fromtimestamp``
    rounds them (half to even, carried into the second)."""
    frac, whole = math.modf(ts)
    us = round(frac * 1e6)
    sec = int(whole)
    if us >= 1_000_000:
        sec, us = sec + 1, us - 1_000_000
    elif us < 0:
        sec, us = sec - 1, us + 1_000_000
    text = _second(sec)
    return f"{text}.{us:06d}Z" if micros else text + "Z"
