"""A thread-safe, auto-evicting, single-flight token cache shared by every SDK client.

One :class:`TokenCache` serves threads and asyncio event loops (several loops in several
threads) at once:

- An entry is *fresh* while ``now < expires_at - skew``. When a token lives less than
  ``2 * skew`` seconds, half its lifetime is used as the skew instead, so short tokens are
  still cached. Stale entries are evicted when they are looked at and whenever a new
  entry is stored.
- *Single flight*: when no fresh entry exists, exactly one caller (thread or task) runs
  ``fetch``; every other caller of the same key waits for that one result, wherever it
  waits from: a thread blocks on an event, a task awaits a future of its own loop that
  the leader resolves with ``call_soon_threadsafe``.
- If ``fetch`` raises, every waiter of that flight gets the exception and nothing is
  cached: the next call fetches again. If the leader is cancelled (or interrupted), its
  waiters are woken and one of them leads a new flight.
- The threading lock is never held across an ``await`` or a ``fetch``.

A thread that already leads a flight for a key (``fetch`` calling back into the cache, or
synchronous code on the thread of the event loop whose task leads the flight) cannot
wait for it without deadlocking; such a caller runs its own fetch instead.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CachedToken", "TokenCache", "default_cache"]

log = logging.getLogger("tessera.sdk.cache")


@dataclass(frozen=True)
class CachedToken:
    """A token and when it expires (epoch seconds). ``data`` holds the other fields of the
    token response (token_type, scope, a refresh token, ...)."""

    access_token: str
    expires_at: float
    data: dict[str, Any] = field(default_factory=dict)
    #: When to fetch a new one at the latest (epoch seconds), if earlier than ``expires_at``
    #: minus the cache's skew (e.g. at 75 % of the token's life, as Nexi's reference does).
    renew_at: float | None = None

    def __repr__(self) -> str:  # never print the token itself
        return f"CachedToken(access_token='…', expires_at={self.expires_at!r}, data=<{len(self.data)} fields>)"


@dataclass
class _Entry:
    token: CachedToken
    stale_at: float


class _Flight:
    """One fetch in progress for one key, and who waits for it."""

    __slots__ = ("thread", "task", "done", "result", "error", "retry", "waiters")

    def __init__(self, task: asyncio.Task[Any] | None = None) -> None:
        self.thread = threading.get_ident()
        self.task = task  # the leading task, or None when a thread leads synchronously
        self.done = threading.Event()
        self.result: CachedToken | None = None
        self.error: BaseException | None = None
        self.retry = False  # the leader gave up (cancelled): waiters start a new flight
        self.waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[CachedToken | None]]] = []


def _resolve(fut: asyncio.Future[CachedToken | None]) -> None:
    if not fut.done():
        fut.set_result(None)


class TokenCache:
    """Tokens by key, with freshness skew and single-flight fetching (sync and asyncio)."""

    def __init__(self, *, skew: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        if skew < 0:
            raise ValueError("skew must be >= 0")
        self.skew = float(skew)
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[Hashable, _Entry] = {}
        self._flights: dict[Hashable, _Flight] = {}

    # ------------------------------------------------------------------ reading
    def peek(self, key: Hashable) -> CachedToken | None:
        """The fresh entry for ``key``, or None (a stale entry is evicted)."""
        with self._lock:
            return self._fresh(key, self.clock())

    def invalidate(self, key: Hashable, *, token: str | None = None) -> None:
        """Forget the entry for ``key``. With ``token``, only if the cached access token is
        still that one (so that many callers rejecting the same token refetch once)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (token is None or entry.token.access_token == token):
                del self._entries[key]

    def clear(self) -> None:
        """Forget every entry (flights in progress still complete and store their result)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            self._evict(self.clock())
            return len(self._entries)

    # ------------------------------------------------------------------ sync
    def get(self, key: Hashable, fetch: Callable[[], CachedToken]) -> CachedToken:
        """The fresh token for ``key``; when there is none, one caller runs ``fetch``."""
        me = threading.get_ident()
        while True:
            with self._lock:
                entry = self._fresh(key, self.clock())
                if entry is not None:
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug("hit %s", _describe(key))
                    return entry
                flight = self._flights.get(key)
                lead = flight is None
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("miss %s: %s", _describe(key), "fetching" if lead else "waiting for the fetch")
                if flight is None:
                    flight = self._flights[key] = _Flight()
                elif flight.thread == me:
                    flight = None  # waiting would deadlock: fetch on our own
            if flight is None:
                token = _checked(fetch())
                self._store(key, token)
                return token
            if lead:
                return self._lead_sync(key, flight, fetch)
            flight.done.wait()
            if flight.retry:
                continue
            if flight.error is not None:
                raise flight.error
            return flight.result  # type: ignore[return-value]

    def _lead_sync(self, key: Hashable, flight: _Flight, fetch: Callable[[], CachedToken]) -> CachedToken:
        try:
            token = _checked(fetch())
        except Exception as e:
            self._finish(key, flight, error=e)
            raise
        except BaseException:
            self._finish(key, flight, retry=True)
            raise
        self._finish(key, flight, result=token)
        return token

    # ------------------------------------------------------------------ asyncio
    async def aget(self, key: Hashable, fetch: Callable[[], Awaitable[CachedToken]]) -> CachedToken:
        """Like :meth:`get` for asyncio: ``fetch`` is awaited by one task, across every
        thread and loop; the others await the result without blocking their loop."""
        loop = asyncio.get_running_loop()
        me = threading.get_ident()
        while True:
            fut: asyncio.Future[CachedToken | None] | None = None
            with self._lock:
                entry = self._fresh(key, self.clock())
                if entry is not None:
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug("hit %s", _describe(key))
                    return entry
                flight = self._flights.get(key)
                lead = flight is None
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("miss %s: %s", _describe(key), "fetching" if lead else "waiting for the fetch")
                if flight is None:
                    flight = self._flights[key] = _Flight(asyncio.current_task())
                elif _reentrant(flight, me):
                    flight = None  # awaiting our own flight would never end: fetch on our own
                else:
                    fut = loop.create_future()
                    flight.waiters.append((loop, fut))
            if flight is None:
                token = _checked(await fetch())
                self._store(key, token)
                return token
            if lead:
                return await self._lead_async(key, flight, fetch)
            await fut  # type: ignore[misc]
            if flight.retry:
                continue
            if flight.error is not None:
                raise flight.error
            return flight.result  # type: ignore[return-value]

    async def _lead_async(
        self, key: Hashable, flight: _Flight, fetch: Callable[[], Awaitable[CachedToken]]
    ) -> CachedToken:
        try:
            token = _checked(await fetch())
        except Exception as e:
            self._finish(key, flight, error=e)
            raise
        except BaseException:  # CancelledError, GeneratorExit when the loop is torn down
            self._finish(key, flight, retry=True)
            raise
        self._finish(key, flight, result=token)
        return token

    # ------------------------------------------------------------------ internals
    def _finish(
        self,
        key: Hashable,
        flight: _Flight,
        *,
        result: CachedToken | None = None,
        error: BaseException | None = None,
        retry: bool = False,
    ) -> None:
        with self._lock:
            if result is not None:
                self._put(key, result)
            if self._flights.get(key) is flight:
                del self._flights[key]
            flight.result, flight.error, flight.retry = result, error, retry
            waiters, flight.waiters = flight.waiters, []
            flight.done.set()
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # that loop is closed: nobody is left to wake
                pass

    def _store(self, key: Hashable, token: CachedToken) -> None:
        with self._lock:
            self._put(key, token)

    def _put(self, key: Hashable, token: CachedToken) -> None:
        now = self.clock()
        self._evict(now)
        lifetime = max(0.0, token.expires_at - now)
        skew = min(self.skew, lifetime / 2)
        stale_at = token.expires_at - skew
        if token.renew_at is not None:
            stale_at = min(stale_at, token.renew_at)
        if stale_at > now:
            self._entries[key] = _Entry(token, stale_at)
        else:
            self._entries.pop(key, None)

    def _fresh(self, key: Hashable, now: float) -> CachedToken | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now < entry.stale_at:
            return entry.token
        del self._entries[key]
        return None

    def _evict(self, now: float) -> None:
        for k in [k for k, e in self._entries.items() if now >= e.stale_at]:
            del self._entries[k]


def _describe(key: Hashable) -> str:
    """A cache key for a log line: its first member (the client's kind), and the number of
    the others (a key holds a client id, a login or a URL, never a secret; still, a log line
    needs none of them)."""
    if isinstance(key, tuple) and key:
        return f"{key[0]!s:.40}[{len(key) - 1} fields]"
    return type(key).__name__


def _checked(token: object) -> CachedToken:
    if not isinstance(token, CachedToken):
        raise TypeError(f"fetch must return a CachedToken, not {type(token).__name__}")
    return token


def _reentrant(flight: _Flight, thread: int) -> bool:
    """True when the current task cannot wait for ``flight``: the flight is led by this
    very task (``fetch`` calling back into the cache), or synchronously by this thread
    (whose ``fetch`` is running this loop). A flight led by another task is awaited."""
    if flight.task is not None:
        return flight.task is asyncio.current_task()
    return flight.thread == thread


_default: TokenCache | None = None
_default_lock = threading.Lock()


def default_cache() -> TokenCache:
    """The process-wide shared cache (created on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = TokenCache()
        return _default
