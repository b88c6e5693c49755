"""Brute-force protection: failures counted per credential and per client address.

After ``max_failures`` failures inside ``window`` seconds a key is locked for
``lockout`` seconds; every attempt during the lock is refused with the seconds left
(rendered as 429 with ``Retry-After``) without checking the credential at all. A success
clears the credential's counter. This in-process limiter serves one instance; with
several instances a shared limiter (Redis) keeps the same contract.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable, Protocol


class FailureLimiter(Protocol):
    def locked(self, key: str) -> int | None:
        """Seconds until ``key`` may try again, or None."""

    def failed(self, key: str) -> int | None:
        """Count a failure; returns the lock's seconds if this failure locked the key."""

    def succeeded(self, key: str) -> None: ...


class MemoryFailureLimiter:
    def __init__(self, *, max_failures: int = 5, window: int = 60, lockout: int = 60,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000):
        self.max_failures, self.window, self.lockout = max_failures, window, lockout
        self.clock = clock
        self.max_keys = max_keys
        self._state: dict[str, list[float]] = {}  # key -> [window_start, count, locked_until]
        self._lock = threading.Lock()

    def locked(self, key: str) -> int | None:
        st = self._state.get(key)
        if st is None:
            return None
        left = st[2] - self.clock()
        return math.ceil(left) if left > 0 else None

    def failed(self, key: str) -> int | None:
        now = self.clock()
        with self._lock:
            st = self._state.get(key)
            if st is None or now - st[0] > self.window:
                if len(self._state) >= self.max_keys:
                    self._evict(now)
                st = self._state[key] = [now, 0, 0.0]
            st[1] += 1
            if st[1] >= self.max_failures:
                st[2] = now + self.lockout
                st[0], st[1] = now, 0
                return self.lockout
        return None

    def succeeded(self, key: str) -> None:
        with self._lock:
            st = self._state.get(key)
            if st is not None and st[2] <= self.clock():
                del self._state[key]

    def _evict(self, now: float) -> None:
        """Make room: stale counters first, then the oldest counters; an active lock goes
        last (dropping it would lift it), and then the one that ends soonest."""
        stale = [k for k, st in self._state.items() if now - st[0] > self.window and st[2] <= now]
        for k in stale:
            del self._state[k]
        excess = len(self._state) - max(0, int(self.max_keys * 0.9))
        if excess > 0 and len(self._state) >= self.max_keys:
            order = sorted(self._state, key=lambda k: (self._state[k][2] > now, self._state[k][2], self._state[k][0]))
            for k in order[:excess]:
                del self._state[k]


def guard(limiter: FailureLimiter, *keys: str) -> int | None:
    """The longest remaining lock among ``keys``, or None."""
    waits = [w for k in keys if (w := limiter.locked(k))]
    return max(waits) if waits else None
