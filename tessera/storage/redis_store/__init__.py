"""Redis for the short-lived state shared by several instances, one module per room:

- ``client``: the connection pool with short timeouts, and the errors that mean an outage
  (``StoreUnavailable``: the web layer answers 503, never a wrong grant);
- ``artifacts``: ``RedisArtifacts``, the short-lived single-use artefacts, one Lua script each;
- ``epoch``: ``RevocationNotices``, the revocation epoch that workers poll;
- ``composite``: ``CompositeStore``, those artefacts in front of the SQL store.
"""

from tessera.storage.redis_store.artifacts import DEFAULT_REPLAY_MARGIN, SHORT_LIVED_KINDS, RedisArtifacts
from tessera.storage.redis_store.client import UNAVAILABLE, connect, unavailable_as_store_error
from tessera.storage.redis_store.composite import CompositeStore, rotate_stepwise
from tessera.storage.redis_store.epoch import RevocationNotices

__all__ = [
    "DEFAULT_REPLAY_MARGIN",
    "SHORT_LIVED_KINDS",
    "UNAVAILABLE",
    "CompositeStore",
    "RedisArtifacts",
    "RevocationNotices",
    "connect",
    "rotate_stepwise",
    "unavailable_as_store_error",
]
