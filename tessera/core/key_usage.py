"""When each axept key was last used, recorded without a write on every token request.

A worker remembers, per store and key, when it last recorded a use; it writes again only
when ``INTERVAL`` seconds have passed (``ApiKeyStore.touch_api_key`` never moves the time
backwards, so workers that write out of order do no harm). The time shown is therefore
exact to the minute: at most one write per key per minute per worker.
"""

from __future__ import annotations

import threading

from tessera.core.models import ApiKey
from tessera.core.ports import Store

INTERVAL = 60
_MAX_KEYS = 100_000


class UsageRecorder:
    """One per process (``RECORDER``): the last time this worker recorded each key's use."""

    def __init__(self, interval: int = INTERVAL) -> None:
        self.interval = interval
        self._last: dict[tuple[int, int, int], int] = {}
        self._lock = threading.Lock()

    def due(self, store: object, record: ApiKey, now: int) -> bool:
        """True (and remembered) when this worker should record the use at ``now``."""
        key = (id(store), record.merchant_id, record.key_id)
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                return False
            if len(self._last) >= _MAX_KEYS:
                self._last.clear()
            self._last[key] = now
            return True

    def used(self, store: Store, record: ApiKey, now: int) -> None:
        """Record that ``record`` got a token at ``now``, at most once per ``interval``."""
        if self.due(store, record, now):
            store.touch_api_key(record.merchant_id, record.key_id, now)


RECORDER = UsageRecorder()
