"""Brute-force limits shared by every instance: ``MemoryFailureLimiter``'s contract on Redis.

Per limited key (``tessera.core.ratelimit.Attempt.keys``: a machine credential at one
address, ``pair:<address> <credential>``; a person's account; a client address,
``addr:<address>``, an IPv6 address as its /64) two Redis keys::

    {prefix}rl:{<key>}:n       failures in the current window (INCR; EXPIRE window on the first)
    {prefix}rl:{<key>}:lock    present while locked (SET ... EX lockout)

Counting a failure is one Lua script (INCR, EXPIRE on the first failure of a window,
and on reaching ``max_failures`` the lock is set and the counter cleared), so failures
counted on different instances at the same moment add up exactly. ``locked`` is one
PTTL. The braces are a Redis Cluster hash tag: both keys of one limited key live on
one shard, as a script needs.

Redis unreachable → ``StoreUnavailable``; the web layer then counts in the process instead
(``tessera.core.ratelimit.FallbackFailureLimiter``), so token endpoints keep answering.

``RedisRateLimiter`` (request rates per credential and per address) keeps one key per
limited key, ``{prefix}rate-credential:<key>`` or ``{prefix}rate-address:<key>``, and
fails open to a per-process limit (see its docstring).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis
import structlog

from tessera.storage.redis_store.client import UNAVAILABLE as _RATE_UNAVAILABLE
from tessera.storage.redis_store.client import connect, unavailable_as_store_error

if TYPE_CHECKING:
    from tessera.config import Settings

log = structlog.get_logger("tessera.ratelimit")

_FAILED = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if n >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


class RedisFailureLimiter:
    """``tessera.core.ratelimit.FailureLimiter`` on Redis, shared by every instance."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "tessera:",
        max_failures: int = 5,
        window: int = 60,
        lockout: int = 60,
    ) -> None:
        self.redis = client
        self.prefix = prefix
        self.max_failures, self.window, self.lockout = max_failures, window, lockout
        self._failed = client.register_script(_FAILED)

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis | None = None) -> RedisFailureLimiter:
        """With ``client`` (the store's) the connection pool is shared."""
        client = client or connect(settings.redis_url or "", timeout=settings.redis_timeout)
        return cls(
            client,
            prefix=settings.redis_prefix,
            max_failures=settings.login_max_failures,
            window=settings.login_failure_window,
            lockout=settings.login_lockout,
        )

    def _keys(self, key: str) -> tuple[str, str]:
        tag = key.replace("{", "(").replace("}", ")")
        base = f"{self.prefix}rl:{{{tag}}}"
        return f"{base}:n", f"{base}:lock"

    def locked(self, key: str) -> int | None:
        with unavailable_as_store_error():
            ms = self.redis.pttl(self._keys(key)[1])
        return math.ceil(ms / 1000) if ms and ms > 0 else None

    def failed(self, key: str) -> int | None:
        with unavailable_as_store_error():
            locked = self._failed(keys=list(self._keys(key)), args=[self.max_failures, self.window, self.lockout])
        return self.lockout if locked else None

    def succeeded(self, key: str) -> None:
        with unavailable_as_store_error():
            self.redis.delete(self._keys(key)[0])


# --- request-rate limits ----------------------------------------------------------------------
# GCRA (see tessera.core.ratelimit.MemoryRateLimiter) on Redis: one key per limited key
# holding its theoretical arrival time in milliseconds, on Redis's own clock (TIME), so
# that the instances need not agree on the time. KEYS[1] the key; ARGV: interval (ms),
# tau (ms = burst x interval), mode (1 hit, 0 wait, 2 charge). Returns 0 when allowed,
# else the milliseconds to wait. The key expires when its bucket is full again.
_RATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval, tau, mode = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new = tat + interval
if mode ~= 2 then
  local late = new - now - tau
  if late > 0 then return math.ceil(late) end
  if mode == 0 then return 0 end
elseif new > now + tau + interval then
  new = now + tau + interval
end
redis.call('SET', KEYS[1], string.format('%.3f', new), 'PX', math.ceil(new - now) + 1)
return 0
"""


class RedisRateLimiter:
    """``tessera.core.ratelimit.RateLimiter`` on Redis, shared by every instance: one Lua
    script (one round trip) per check.

    Unlike the brute-force limiter, this one fails *open* to a per-process limit: request
    rates protect capacity, not credentials, so an unreachable Redis must not take down
    the endpoints that do not need it (the Nexi client-credentials token). While Redis is
    unreachable each process applies the same limit in its own memory, and Redis is tried
    again at most every ``retry_seconds`` (so an outage costs no timeout per request).
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        rate: float,
        burst: int,
        prefix: str = "tessera:",
        name: str = "rate",
        retry_seconds: float = 1.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        from tessera.core.ratelimit import MemoryRateLimiter

        self.redis = client
        self.prefix = f"{prefix}{name}:"
        self.interval_ms = 1000.0 / rate
        self.tau_ms = burst * self.interval_ms
        self.local = MemoryRateLimiter(rate, burst)
        self.retry_seconds = retry_seconds
        self.clock = clock or time.monotonic
        self._down_until = 0.0
        self._script = client.register_script(_RATE)

    @classmethod
    def from_settings(
        cls, settings: Settings, client: redis.Redis | None, *, rate: float, burst: int, name: str
    ) -> RedisRateLimiter:
        client = client or connect(settings.redis_url or "", timeout=settings.redis_timeout)
        return cls(client, rate=rate, burst=burst, prefix=settings.redis_prefix, name=name)

    def _run(self, key: str, mode: int) -> int | None:
        """Milliseconds to wait (0: allowed) from Redis; None when Redis cannot be used now."""
        if self._down_until and self.clock() < self._down_until:
            return None
        try:
            ms = self._script(keys=[self.prefix + key], args=[self.interval_ms, self.tau_ms, mode])
        except _RATE_UNAVAILABLE as e:
            self._down_until = self.clock() + self.retry_seconds
            log.warning("rate_limit_redis_unavailable", error=type(e).__name__)
            return None
        self._down_until = 0.0
        return int(ms)

    def hit(self, key: str) -> int | None:
        ms = self._run(key, 1)
        if ms is None:
            return self.local.hit(key)
        return max(1, math.ceil(ms / 1000)) if ms > 0 else None

    def wait(self, key: str) -> int | None:
        ms = self._run(key, 0)
        if ms is None:
            return self.local.wait(key)
        return max(1, math.ceil(ms / 1000)) if ms > 0 else None

    def charge(self, key: str) -> None:
        if self._run(key, 2) is None:
            self.local.charge(key)
