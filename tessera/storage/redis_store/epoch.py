"""The revocation epoch: a value in Redis that changes with every announced change.

{prefix}revocation-epoch   STRING a fresh random value after every revocation
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable

import redis

from tessera.storage.redis_store.client import UNAVAILABLE

log = logging.getLogger("tessera.storage.redis")


class RevocationNotices:
    """A revocation epoch in Redis: processes that cache clients and certificates drop
    their caches when it changes.

    ``publish`` (called after the revocation is committed to SQL) writes a fresh random
    value; ``changed`` reads it at most once every ``poll_seconds`` and says whether it
    differs from what this process saw last. A revocation is therefore honoured by every
    process within ``poll_seconds`` (plus one request). A random value rather than a
    counter: a Redis restart that loses the key cannot bring an old value back.

    When Redis cannot be read, ``changed`` answers True every time: a process that
    cannot hear notices does not trust its caches (it reads the database instead).
    """

    def __init__(
        self, client: redis.Redis, key: str, *, poll_seconds: float = 0.1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.redis = client
        self.key = key
        self.poll_seconds = poll_seconds
        self.clock = clock
        self._seen: str | None = None
        self._checked_at: float | None = None
        self._down = False
        self._lock = threading.Lock()

    #: Polled, not exact: a change is seen within ``poll_seconds`` (see tessera.core.ports.ChangeNotices).
    exact = False

    def publish(self) -> bool:
        """Announce a revocation; False (logged) if Redis could not be told."""
        try:
            self.redis.set(self.key, f"{time.time_ns()}-{secrets.token_hex(8)}")
            return True
        except UNAVAILABLE as e:
            log.warning(
                "revocation notice not published (redis: %s); other instances honour it "
                "within revocation_cache_seconds",
                e,
            )
            return False

    def changed(self) -> bool:
        """True when a revocation was announced since the last call (or Redis is unreadable)."""
        now = self.clock()
        with self._lock:
            if self._checked_at is not None and now - self._checked_at < self.poll_seconds:
                return self._down
            self._checked_at = now
            try:
                value = self.redis.get(self.key)
            except UNAVAILABLE:
                self._down, self._seen = True, None
                return True
            self._down = False
            seen = str(value or "")
            changed = seen != self._seen  # the first read of a process (or after an outage) counts
            self._seen = seen
            return changed

    def close(self) -> None:
        """Nothing of its own to release (the client is the artefacts' and closed with them)."""
