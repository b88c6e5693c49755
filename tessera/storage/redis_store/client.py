"""The Redis client: a bounded connection pool with short timeouts, and what an outage raises.

A Redis that cannot be reached (or answers read-only, out of memory, loading) raises
``StoreUnavailable``: the web layer answers 503, never a wrong grant. Socket timeouts are
short (``redis_timeout``, 1 s by default) so that an outage is a fast 503.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tessera.core.ports import StoreUnavailable

#: Errors that mean "Redis is not usable now" (as opposed to a bug): rendered as 503.
UNAVAILABLE: tuple[type[BaseException], ...] = (
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
    except UNAVAILABLE as e:
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
