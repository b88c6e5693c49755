"""Redis for the short-lived state shared by several instances.

``RedisArtifacts`` implements the single-use artefact part of the Store contract
(``put_artifact``, ``get_artifact``, ``consume``, ``claim``, ``update_artifact_data``)
for the short-lived kinds: pushed ``request_uri``\\ s, authorization codes, the assertion
``jti`` replay cache and the revoked access-token ``jti``\\ s. ``CompositeStore`` puts them
in front of the SQL store: those kinds go to Redis, everything else (clients,
certificates, keys, refresh tokens and their families, enrollments, events) stays in
SQL, which must survive any restart.

Layout, every key under ``prefix`` (default ``tessera:``)::

    {prefix}a:{kind}:{key}     HASH  client_id, data (JSON text), expires_at,
                                     consumed_at ("" while unused)
                                     EXPIREAT expires_at + replay_margin
    {prefix}revocation-epoch   STRING a fresh random value after every revocation

Atomicity: every read-check-write is one Lua script on one key, which Redis runs
alone, so under any concurrency (threads, workers, instances) exactly one ``consume``
or ``claim`` of an artefact wins. ``consume`` marks the record consumed and keeps it
until ``expires_at + replay_margin``, so a replayed code is *recognised* (and what it
issued revoked) rather than merely unknown. ``claim`` is ``SET NX`` with an expiry,
written as a script so that a lapsed record is taken over exactly as the SQL store does.
Nothing is decoded inside Lua: ``data`` is stored as opaque JSON text.

A Redis that cannot be reached (or answers read-only, out of memory, loading) raises
``StoreUnavailable``: the web layer answers 503, never a wrong grant. Socket timeouts
are short (``redis_timeout``, 1 s by default) so that an outage is a fast 503.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
import time
from typing import Any, Callable, Iterable, Iterator

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tessera.core.assertions import JTI_KIND
from tessera.core.authorize import CODE_KIND
from tessera.core.models import Artifact
from tessera.core.flows.native import CODE_KIND as NATIVE_CODE_KIND
from tessera.core.flows.native import PAR_KIND as NATIVE_PAR_KIND
from tessera.core.par import PAR_KIND
from tessera.core.tokens import REVOKED_TOKEN
from tessera.storage.base import Conflict, Rotation, StoreUnavailable, rotate_stepwise

log = logging.getLogger("tessera.storage.redis")

#: The artefact kinds kept in Redis. Refresh tokens and their families are *not* among
#: them: they live for days and must survive any restart, so they stay in SQL.
SHORT_LIVED_KINDS = frozenset({PAR_KIND, CODE_KIND, JTI_KIND, REVOKED_TOKEN, NATIVE_PAR_KIND, NATIVE_CODE_KIND})

#: How long a record outlives its ``expires_at``: a replayed (consumed) code is still
#: recognised as a replay for this long, and its tokens revoked.
DEFAULT_REPLAY_MARGIN = 3600

#: Errors that mean "Redis is not usable now" (as opposed to a bug): rendered as 503.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,  # refused, reset, DNS, auth, LOADING, pool exhausted
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,  # a replica after a failover
    redis.exceptions.MasterDownError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
)


@contextlib.contextmanager
def unavailable_as_store_error() -> Iterator[None]:
    try:
        yield
    except _UNAVAILABLE as e:
        raise StoreUnavailable(f"redis: {type(e).__name__}: {e}"[:300]) from e


def connect(url: str, *, timeout: float = 1.0, max_connections: int = 64) -> redis.Redis:
    """A client with a bounded, blocking connection pool and short timeouts.

    One retry, on a connection error only (a pooled connection that a Redis restart
    broke); never on a timeout, since the command may have run."""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,  # waiting for a free pooled connection
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)),
    )
    return redis.Redis(connection_pool=pool)


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

    def __init__(self, client: redis.Redis, *, prefix: str = "tessera:", replay_margin: int = DEFAULT_REPLAY_MARGIN,
                 kinds: Iterable[str] = SHORT_LIVED_KINDS):
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
            done = self._put(keys=[self._key(a.kind, a.key)],
                             args=[a.client_id, _dumps(a.data), int(a.expires_at), consumed, self._expire_at(a.expires_at)])
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
            won = self._claim(keys=[self._key(kind, key)], args=[client_id, int(expires_at), int(now), self._expire_at(expires_at)])
        return bool(won)

    def update_artifact_data(self, kind: str, key: str, data: dict[str, Any]) -> None:
        with unavailable_as_store_error():
            self._update(keys=[self._key(kind, key)], args=[_dumps(data)])

    def ping(self) -> None:
        with unavailable_as_store_error():
            self.redis.ping()

    def close(self) -> None:
        self.redis.close()
        self.redis.connection_pool.disconnect()


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

    def __init__(self, client: redis.Redis, key: str, *, poll_seconds: float = 0.1,
                 clock: Callable[[], float] = time.monotonic):
        self.redis = client
        self.key = key
        self.poll_seconds = poll_seconds
        self.clock = clock
        self._seen: str | None = None
        self._checked_at: float | None = None
        self._down = False
        self._lock = threading.Lock()

    def publish(self) -> bool:
        """Announce a revocation; False (logged) if Redis could not be told."""
        try:
            self.redis.set(self.key, f"{time.time_ns()}-{secrets.token_hex(8)}")
            return True
        except _UNAVAILABLE as e:
            log.warning("revocation notice not published (redis: %s); other instances honour it "
                        "within revocation_cache_seconds", e)
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
            except _UNAVAILABLE:
                self._down, self._seen = True, None
                return True
            self._down = False
            value = value or ""
            changed = value != self._seen  # the first read of a process (or after an outage) counts
            self._seen = value
            return changed


class CompositeStore:
    """The ``Store``: short-lived artefact kinds on Redis, everything else on SQL.

    Methods not defined here (clients, certificates, keys, merchants, refresh tokens, ...)
    are the SQL store's own. Revocations (clients, certificates, API keys, server keys)
    and the other writes of what workers cache (new clients and certificates, terminals,
    users, grants, username bindings) are written to SQL first, then announced on Redis
    (``RevocationNotices``).
    """

    def __init__(self, sql, artifacts: RedisArtifacts, notices: RevocationNotices | None = None):
        self.sql = sql
        self.artifacts = artifacts
        self.redis = artifacts.redis
        self.revocation_notices = notices or RevocationNotices(artifacts.redis, f"{artifacts.prefix}revocation-epoch")

    @classmethod
    def from_settings(cls, settings, sql) -> "CompositeStore":
        client = connect(settings.redis_url, timeout=settings.redis_timeout)
        artifacts = RedisArtifacts(client, prefix=settings.redis_prefix)
        notices = RevocationNotices(client, f"{settings.redis_prefix}revocation-epoch",
                                    poll_seconds=settings.revocation_poll_ms / 1000)
        return cls(sql, artifacts, notices)

    def __getattr__(self, name: str):
        # Only called for attributes not found here: the SQL store's methods and ``engine``.
        if name in ("sql", "artifacts"):
            raise AttributeError(name)
        return getattr(self.sql, name)

    def _redis(self, kind: str) -> bool:
        return kind in self.artifacts.kinds

    # --- single-use artefacts -------------------------------------------------------------
    def put_artifact(self, artifact: Artifact) -> None:
        (self.artifacts if self._redis(artifact.kind) else self.sql).put_artifact(artifact)

    def get_artifact(self, kind: str, key: str) -> Artifact | None:
        return (self.artifacts if self._redis(kind) else self.sql).get_artifact(kind, key)

    def consume(self, kind: str, key: str, now: int) -> Artifact | None:
        return (self.artifacts if self._redis(kind) else self.sql).consume(kind, key, now)

    def claim(self, kind: str, key: str, client_id: str, expires_at: int, now: int) -> bool:
        return (self.artifacts if self._redis(kind) else self.sql).claim(kind, key, client_id, expires_at, now)

    def update_artifact_data(self, kind: str, key: str, data: dict[str, Any]) -> None:
        (self.artifacts if self._redis(kind) else self.sql).update_artifact_data(kind, key, data)

    def claim_and_put(self, kind: str, key: str, client_id: str, expires_at: int, now: int, artifact: Artifact) -> bool:
        if not self._redis(kind) and not self._redis(artifact.kind):
            return self.sql.claim_and_put(kind, key, client_id, expires_at, now, artifact)
        # Apart (Redis, or Redis and SQL): the atomic claim first, then the put. Should the put
        # fail, the claim stays spent: the client sends a new assertion.
        if not self.claim(kind, key, client_id, expires_at, now):
            return False
        self.put_artifact(artifact)
        return True

    def rotate(self, kind: str, key: str, now: int, *, family_kind: str, family: str, successor: str,
               successor_expires_at: int) -> Rotation:
        args = dict(family_kind=family_kind, family=family, successor=successor, successor_expires_at=successor_expires_at)
        if not self._redis(kind) and not self._redis(family_kind):
            return self.sql.rotate(kind, key, now, **args)
        return rotate_stepwise(self, kind, key, now, **args)

    # --- revocations: SQL first, then the notice --------------------------------------------
    def set_client_status(self, client_id: str, status: str) -> bool:
        changed = self.sql.set_client_status(client_id, status)
        if changed:
            self.revocation_notices.publish()
        return changed

    def revoke_certificate(self, serial: str, now: int):
        record = self.sql.revoke_certificate(serial, now)
        if record is not None:
            self.revocation_notices.publish()
        return record

    def set_api_key_enabled(self, merchant_id: int, key_id: int, enabled: bool, now: int, *, max_enabled: int):
        record = self.sql.set_api_key_enabled(merchant_id, key_id, enabled, now, max_enabled=max_enabled)
        self.revocation_notices.publish()
        return record

    def save_server_keys(self, keys) -> None:
        self.sql.save_server_keys(keys)
        self.revocation_notices.publish()

    # --- what workers cache besides (Core: clients, certificates, enrollment data) -------------
    def create_client(self, client) -> None:
        self.sql.create_client(client)
        self.revocation_notices.publish()

    def add_certificate(self, cert) -> None:
        self.sql.add_certificate(cert)
        self.revocation_notices.publish()

    def add_terminal(self, terminal) -> None:
        self.sql.add_terminal(terminal)
        self.revocation_notices.publish()

    def add_user(self, user) -> None:
        self.sql.add_user(user)
        self.revocation_notices.publish()

    def grant(self, merchant_id: int, client_id: str, now: int) -> None:
        self.sql.grant(merchant_id, client_id, now)
        self.revocation_notices.publish()

    def bind_username(self, username: str, tid: str, now: int) -> bool:
        bound = self.sql.bind_username(username, tid, now)
        if bound:  # new or already there: announced either way (the SQL store cannot say which)
            self.revocation_notices.publish()
        return bound

    # --- housekeeping -------------------------------------------------------------------------
    def purge_expired(self, now: int) -> int:
        return self.sql.purge_expired(now)  # Redis expires its keys itself

    def ping(self) -> None:
        self.sql.ping()
        self.artifacts.ping()

    def close(self) -> None:
        try:
            self.artifacts.close()
        finally:
            self.sql.close()


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _artifact(kind: str, key: str, row) -> Artifact | None:
    if not row or row[0] is None:
        return None
    client_id, data, expires_at, consumed_at = row
    return Artifact(kind=kind, key=key, client_id=client_id, data=json.loads(data), expires_at=int(expires_at),
                    consumed_at=int(consumed_at) if consumed_at else None)
