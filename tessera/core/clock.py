"""Time, injectable for tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]


def system_clock() -> float:
    return time.time()


def to_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def iso_z(ts: float, *, micros: bool = False) -> str:
    """UTC ISO-8601 ending in ``Z`` (with microseconds when asked)."""
    dt = to_datetime(ts)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micros else "%Y-%m-%dT%H:%M:%SZ")
