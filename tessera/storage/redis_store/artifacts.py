"""The short-lived single-use artefacts on Redis (the ``ArtifactStore`` operations they need).

Layout, every key under ``prefix`` (default ``tessera:``)::

    {prefix}a:{kind}:{key}     HASH  client_id, data (JSON text), expires_at,
                                     consumed_at ("" while unused)
                                     EXPIREAT expires_at + replay_margin

Atomicity: every read-check-write is one Lua script on one key, which Redis runs
alone, so under any concurrency (threads, workers, instances) exactly one ``consume``
or ``claim`` of an artefact wins. ``consume`` marks the record consumed and keeps it
until ``expires_at + replay_margin``, so a replayed code is *recognised* (and what it
issued revoked) rather than merely unknown. ``claim`` is ``SET NX`` with an expiry,
written as a script so that a lapsed record is taken over exactly as the SQL store does.
Nothing is decoded inside Lua: ``data`` is stored as opaque JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import redis

from tessera.core.kinds import Kind
from tessera.core.models import Artifact
from tessera.core.ports import Conflict
from tessera.storage.redis_store.client import unavailable_as_store_error

#: The artefact kinds kept in Redis. Refresh tokens and their families are *not* among
#: them: they live for days and must survive any restart, so they stay in SQL.
SHORT_LIVED_KINDS: frozenset[str] = frozenset(
    {Kind.REQUEST_URI, Kind.CODE, Kind.ASSERTION_JTI, Kind.REVOKED_TOKEN, Kind.NATIVE_REQUEST_URI, Kind.NATIVE_CODE}
)

#: How long a record outlives its ``expires_at``: a replayed (consumed) code is still
#: recognised as a replay for this long, and its tokens revoked.
DEFAULT_REPLAY_MARGIN = 3600


# --- Lua ------------------------------------------------------------------------------------
# KEYS[1] the record; ARGV: client_id, data, expires_at, consumed_at ("" = unused), expire-at (unix s)
_PUT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'client_id', ARGV[1], 'data', ARGV[2], 'expires_at', ARGV[3], 'consumed_at', ARGV[4])
redis.call('EXPIREAT', KEYS[1], ARGV[5])
return 1
"""

# ARGV: now. The record, consumed now, if it was unconsumed and unexpired; else nil.
_CONSUME = """
local v = redis.call('HMGET', KEYS[1], 'expires_at', 'consumed_at')
if not v[1] then return false end
if v[2] ~= '' then return false end
if tonumber(v[1]) <= tonumber(ARGV[1]) then return false end
redis.call('HSET', KEYS[1], 'consumed_at', ARGV[1])
return redis.call('HMGET', KEYS[1], 'client_id', 'data', 'expires_at', 'consumed_at')
"""

# ARGV: client_id, expires_at, now, expire-at. SET NX, except that a lapsed record
# (expires_at <= now, kept for the replay margin) is taken over, as the SQL store does.
_CLAIM = """
local e = redis.call('HGET', KEYS[1], 'expires_at')
if e and tonumber(e) > tonumber(ARGV[3]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'client_id', ARGV[1], 'data', '{}', 'expires_at', ARGV[2], 'consumed_at', ARGV[3])
redis.call('EXPIREAT', KEYS[1], ARGV[4])
return 1
"""

# ARGV: data. Replace the data of an existing record (its expiry is kept).
_UPDATE_DATA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'data', ARGV[1])
return 1
"""

_FIELDS = ("client_id", "data", "expires_at", "consumed_at")


class RedisArtifacts:
    """The single-use artefacts of ``kinds`` on Redis (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "tessera:",
        replay_margin: int = DEFAULT_REPLAY_MARGIN,
        kinds: Iterable[str] = SHORT_LIVED_KINDS,
    ) -> None:
        self.redis = client
        self.prefix = prefix
        self.replay_margin = replay_margin
        self.kinds = frozenset(kinds)
        self._put = client.register_script(_PUT)
        self._consume = client.register_script(_CONSUME)
        self._claim = client.register_script(_CLAIM)
        self._update = client.register_script(_UPDATE_DATA)

    def _key(self, kind: str, key: str) -> str:
        return f"{self.prefix}a:{kind}:{key}"

    def _expire_at(self, expires_at: int) -> int:
        return int(expires_at) + self.replay_margin

    def put_artifact(self, artifact: Artifact) -> None:
        a = artifact
        consumed = "" if a.consumed_at is None else str(int(a.consumed_at))
        with unavailable_as_store_error():
            done = self._put(
                keys=[self._key(a.kind, a.key)],
                args=[a.client_id, _dumps(a.data), int(a.expires_at), consumed, self._expire_at(a.expires_at)],
            )
        if not done:
            raise Conflict(f"{a.kind} exists")

    def get_artifact(self, kind: str, key: str) -> Artifact | None:
        with unavailable_as_store_error():
            row = self.redis.hmget(self._key(kind, key), _FIELDS)
        return _artifact(kind, key, row)

    def consume(self, kind: str, key: str, now: int) -> Artifact | None:
        with unavailable_as_store_error():
            row = self._consume(keys=[self._key(kind, key)], args=[int(now)])
        return _artifact(kind, key, row) if row else None

    def claim(self, kind: str, key: str, client_id: str, expires_at: int, now: int) -> bool:
        with unavailable_as_store_error():
            won = self._claim(
                keys=[self._key(kind, key)], args=[client_id, int(expires_at), int(now), self._expire_at(expires_at)]
            )
        return bool(won)

    def update_artifact_data(self, kind: str, key: str, data: dict[str, Any]) -> None:
        with unavailable_as_store_error():
            self._update(keys=[self._key(kind, key)], args=[_dumps(data)])

    def artifact_keys(self, kind: str, now: int) -> frozenset[str]:
        """The keys of the live (unexpired) artefacts of ``kind``: a ``SCAN`` of the kind's keys
        (for completeness of the contract; no worker keeps a Redis kind in memory)."""
        start = len(self._key(kind, ""))
        with unavailable_as_store_error():
            names = list(self.redis.scan_iter(match=self._key(kind, "*"), count=1000))
            pipe = self.redis.pipeline(transaction=False)
            for name in names:
                pipe.hget(name, "expires_at")
            expiries = pipe.execute()
        return frozenset(
            name[start:] for name, e in zip(names, expiries, strict=True) if e is not None and int(e) > int(now)
        )

    def ping(self) -> None:
        with unavailable_as_store_error():
            self.redis.ping()

    def close(self) -> None:
        self.redis.close()
        self.redis.connection_pool.disconnect()


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _artifact(kind: str, key: str, row: Any) -> Artifact | None:
    if not row or row[0] is None:
        return None
    client_id, data, expires_at, consumed_at = row
    return Artifact(
        kind=kind,
        key=key,
        client_id=client_id,
        data=json.loads(data),
        expires_at=int(expires_at),
        consumed_at=int(consumed_at) if consumed_at else None,
    )
