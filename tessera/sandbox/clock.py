"""The sandbox's movable clock: the system time plus an offset that a test moves forward
(``POST /_sandbox/clock {"advance": seconds}``), to see tokens, codes and refresh tokens expire
without sleeping. It is the core's clock (``Core.clock``): every ``iat``, ``exp`` and expiry
check of the sandbox reads it. ``tessera serve`` keeps the system clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: The furthest one call may move the clock (ten years): a typo should not overflow dates.
MAX_ADVANCE = 10 * 365 * 86400


class SandboxClock:
    def __init__(self, base: Callable[[], float] = time.time) -> None:
        self._base = base
        self._offset = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._base() + self._offset

    @property
    def offset(self) -> float:
        return self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (0 to ``MAX_ADVANCE``); the new offset."""
        if not 0 <= seconds <= MAX_ADVANCE:
            raise ValueError(f"advance must be between 0 and {MAX_ADVANCE} seconds")
        with self._lock:
            self._offset += seconds
            return self._offset

    def reset(self) -> None:
        """Back to the system time."""
        with self._lock:
            self._offset = 0.0
