"""Brute-force limits shared by every instance: ``MemoryFailureLimiter``'s contract on Redis.

Per limited key (a credential, a client address) two Redis keys::

    {prefix}rl:{<key>}:n       failures in the current window (INCR; EXPIRE window on the first)
    {prefix}rl:{<key>}:lock    present while locked (SET ... EX lockout)

Counting a failure is one Lua script (INCR, EXPIRE on the first failure of a window,
and on reaching ``max_failures`` the lock is set and the counter cleared), so failures
counted on different instances at the same moment add up exactly. ``locked`` is one
PTTL. The braces are a Redis Cluster hash tag: both keys of one limited key live on
one shard, as a script needs.

Redis unreachable → ``StoreUnavailable`` (503): brute-force protection fails closed.
"""

from __future__ import annotations

import math

import redis

from tessera.storage.redis_store import connect, unavailable_as_store_error

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

    def __init__(self, client: redis.Redis, *, prefix: str = "tessera:", max_failures: int = 5, window: int = 60,
                 lockout: int = 60):
        self.redis = client
        self.prefix = prefix
        self.max_failures, self.window, self.lockout = max_failures, window, lockout
        self._failed = client.register_script(_FAILED)

    @classmethod
    def from_settings(cls, settings, client: redis.Redis | None = None) -> "RedisFailureLimiter":
        """With ``client`` (the store's) the connection pool is shared."""
        client = client or connect(settings.redis_url, timeout=settings.redis_timeout)
        return cls(client, prefix=settings.redis_prefix, max_failures=settings.login_max_failures,
                   window=settings.login_failure_window, lockout=settings.login_lockout)

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
