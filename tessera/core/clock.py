"""Time, injectable for tests."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]


def system_clock() -> float:
    return time.time()


def to_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


#: The last second formatted by ``iso_z`` (the token endpoints format a few times a second each).
_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def iso_z(ts: float, *, micros: bool = False) -> str:
    """UTC ISO-8601 ending in ``Z`` (with microseconds when asked): what
    ``to_datetime(ts).strftime("%Y-%m-%dT%H:%M:%S[.%f]Z")`` gives, the date and time of day
    formatted once per second and the microseconds rounded as ``datetime.fromtimestamp``
    rounds them (half to even, carried into the second)."""
    global _second
    frac, whole = math.modf(ts)
    us = round(frac * 1e6)
    sec = int(whole)
    if us >= 1_000_000:
        sec, us = sec + 1, us - 1_000_000
    elif us < 0:
        sec, us = sec - 1, us + 1_000_000
    cached = _second
    if cached[0] != sec:
        cached = _second = (sec, to_datetime(sec).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{us:06d}Z" if micros else cached[1] + "Z"
