"""Brute-force protection: failed credential checks counted so that a stranger cannot lock anyone out.

Which counters a failure spends (``Attempt.keys``) depends on what was guessed:

* a **machine credential** (a client secret, which is also a B2BINPAY password; an axept
  merchant key: 256 random bits made by the server): the pair (credential, address) and the
  address. Nobody can guess such a secret, so a per-credential lock would protect nothing and
  would hand anyone who knows a public client id a way to lock that client out everywhere.
  Wrong secrets from one address throttle that address (and that pair); the client keeps
  working from its own addresses.
* a **person's password** (a merchant user at a login page): the account and the address.
  People choose guessable passwords, so an account must stop answering after a few wrong
  guesses from anywhere; a stranger can then keep one person's login page locked, which is
  the price of that (nothing a machine uses is affected).
* **nothing to guess** (a signed assertion, a refresh token): the address only.

"The address" of the address counter is an IPv4 address or an IPv6 /64 (``address_group``).

A machine credential's failures are also counted over every address (``Attempt.watch``),
with the address threshold; reaching it locks nothing but records a
``credential_failures_spread`` event, so that an operator sees many wrong secrets sent for
one client from many places.

After ``max_failures`` failures inside ``window`` seconds a key is locked for ``lockout``
seconds; every attempt during the lock is refused with the seconds left (rendered as 429
with ``Retry-After``) without checking the credential at all. A success clears the counter
of its credential at its address (or of the account). This in-process limiter serves one
instance; with several instances a shared limiter (Redis) keeps the same contract.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

#: Prefixes of the limiter keys: a client address, a (credential, address) pair, and the
#: watch on one machine credential's failures from every address (it never locks anything).
ADDRESS, PAIR, SPREAD = "addr:", "pair:", "spread:"


def address_group(address: str) -> str:
    """The address as its failure counter sees it: an IPv4 address as it is, an IPv6 address
    as its /64 (one host commonly holds a whole /64, so counting /128s would give it 2^64
    budgets). Anything else (a proxy's unusual ``X-Real-IP``) as it is."""
    if ":" not in address:
        return address
    try:
        ip = ipaddress.IPv6Address(address.split("%", 1)[0])
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return f"{ipaddress.IPv6Network((int(ip) >> 64 << 64, 64))}"


@dataclass(frozen=True)
class Attempt:
    """One credential check, as the brute-force counters see it (see the module docstring).

    ``credential``: the key of what could be guessed (``client:<id>``, ``axept:<m>:<k>``,
    ``user:<name>``), or None when nothing can be; ``account``: it is a person's password."""

    address: str
    credential: str | None = None
    account: bool = False

    @property
    def keys(self) -> tuple[str, ...]:
        """The limiter keys a failure counts against (and that are checked before trying).
        The address's own counter is per ``address_group`` (an IPv6 /64); a pair is per exact
        address, so that a client on the stranger's network is hit by the address limit only."""
        addr = ADDRESS + address_group(self.address)
        if self.credential is None:
            return (addr,)
        if self.account:
            return (self.credential[:240], addr)
        return (f"{PAIR}{self.address} {self.credential[:240]}", addr)

    @property
    def watch(self) -> str | None:
        """A machine credential's count over every address: it locks nothing (that would be
        the weapon), but reaching the address threshold records an event for the operator
        (many wrong secrets for one client, from many places)."""
        if self.credential is None or self.account:
            return None
        return SPREAD + self.credential[:240]

    @property
    def cleared(self) -> str | None:
        """The key a success clears (never the address's: one success must not wipe a spray):
        the first of ``keys``, made without the address's."""
        if self.credential is None:
            return None
        if self.account:
            return self.credential[:240]
        return f"{PAIR}{self.address} {self.credential[:240]}"


def describe(key: str) -> dict[str, str]:
    """A limiter key as the ``brute_force_lockout`` event records it: ``{"key": …}``, plus
    ``"address"`` for a (credential, address) pair."""
    if key.startswith(PAIR):
        address, _, credential = key[len(PAIR) :].partition(" ")
        return {"key": credential[:80], "address": address[:64]}
    if key.startswith(SPREAD):
        return {"key": key[len(SPREAD) :][:80]}
    return {"key": key[:80]}


class FailureLimiter(Protocol):
    def locked(self, key: str) -> int | None:
        """Seconds until ``key`` may try again, or None."""

    def failed(self, key: str) -> int | None:
        """Count a failure; returns the lock's seconds if this failure locked the key."""

    def succeeded(self, key: str) -> None: ...


class MemoryFailureLimiter:
    def __init__(
        self,
        *,
        max_failures: int = 5,
        window: int = 60,
        lockout: int = 60,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ):
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
        if key not in self._state:  # the usual success: nothing was counted against it
            return
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


class SplitFailureLimiter:
    """Two limiters behind one contract: keys of client addresses (``addr:…``), and the
    watch on a credential over every address (``spread:…``), go to one with a higher
    threshold than the others (a credential at one address, an account). Many
    integrators' POS systems share one egress address; five mistakes from one of them must
    not lock the whole fleet out, while five wrong guesses at one credential from one
    address do lock that pair (and five at one person's password, that account)."""

    def __init__(self, credentials: FailureLimiter, addresses: FailureLimiter):
        self.credentials, self.addresses = credentials, addresses

    def _for(self, key: str) -> FailureLimiter:
        return self.addresses if key.startswith((ADDRESS, SPREAD)) else self.credentials

    def locked(self, key: str) -> int | None:
        return self._for(key).locked(key)

    def failed(self, key: str) -> int | None:
        return self._for(key).failed(key)

    def succeeded(self, key: str) -> None:
        self._for(key).succeeded(key)


class FallbackFailureLimiter:
    """Shared counters (Redis, across instances) with this process's own counters while the
    shared ones cannot be reached: brute-force protection goes on per process, and the
    endpoints it guards (every token endpoint) keep answering through an outage."""

    def __init__(self, shared: FailureLimiter, local: FailureLimiter, *, unavailable: tuple[type[Exception], ...]):
        self.shared, self.local, self.unavailable = shared, local, unavailable

    def locked(self, key: str) -> int | None:
        try:
            return self.shared.locked(key)
        except self.unavailable:
            return self.local.locked(key)

    def failed(self, key: str) -> int | None:
        try:
            return self.shared.failed(key)
        except self.unavailable:
            return self.local.failed(key)

    def succeeded(self, key: str) -> None:
        try:
            self.shared.succeeded(key)
        except self.unavailable:
            self.local.succeeded(key)


def guard(limiter: FailureLimiter, *keys: str) -> int | None:
    """The longest remaining lock among ``keys``, or None."""
    waits = [w for k in keys if (w := limiter.locked(k))]
    return max(waits) if waits else None


# --- request-rate limits ------------------------------------------------------------------------
class RateLimiter(Protocol):
    """Requests per second per key (a credential, a client address), with bursts.

    ``hit`` is the normal check: it spends one request of ``key``'s budget, or refuses
    without spending. ``wait`` only looks, and ``charge`` spends without refusing: together
    they limit a request whose credential is known for sure only after a step that must not
    run when the request is refused (a refresh token is consumed by its own check)."""

    def hit(self, key: str) -> int | None:
        """None if allowed (and counted); else the whole seconds to wait (Retry-After)."""

    def wait(self, key: str) -> int | None:
        """What ``hit`` would answer now, without counting anything."""

    def charge(self, key: str) -> None:
        """Count one request, refused or not."""


class MemoryRateLimiter:
    """``RateLimiter`` in this process: GCRA, the token bucket kept as one float per key.

    Each key holds its *theoretical arrival time* (TAT): when its bucket would be full
    again. A request costs ``1 / rate`` seconds; it is allowed while that pushes the TAT at
    most ``burst / rate`` seconds ahead of now. So ``burst`` requests may come at once,
    then ``rate`` per second; a refused request costs nothing. A key whose TAT has passed
    is the same as an absent one, which is what eviction relies on.

    The hot path is one clock read, one dict look-up and one store under a lock held for
    a few bytecodes (the event loop and the thread pool may both call it).
    """

    __slots__ = ("rate", "burst", "interval", "tau", "clock", "max_keys", "_tat", "_lock")

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate, self.burst = float(rate), int(burst)
        self.interval = 1.0 / self.rate
        self.tau = self.burst * self.interval
        self.clock = clock
        self.max_keys = max_keys
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> int | None:
        now = self.clock()
        with self._lock:
            tat = self._tat.get(key, now)
            new = (tat if tat > now else now) + self.interval
            late = new - now - self.tau
            if late > 1e-9:
                return _seconds(late)
            if len(self._tat) >= self.max_keys and key not in self._tat:
                self._evict(now)
            self._tat[key] = new
        return None

    def wait(self, key: str) -> int | None:
        now = self.clock()
        tat = self._tat.get(key, now)
        late = (tat if tat > now else now) + self.interval - now - self.tau
        return _seconds(late) if late > 1e-9 else None

    def charge(self, key: str) -> None:
        now = self.clock()
        with self._lock:
            tat = self._tat.get(key, now)
            if len(self._tat) >= self.max_keys and key not in self._tat:
                self._evict(now)
            # Never more than one refusal's worth ahead: a charged flood does not lock a key out for longer.
            self._tat[key] = min((tat if tat > now else now) + self.interval, now + self.tau + self.interval)

    def _evict(self, now: float) -> None:
        """Make room (under the lock): keys whose bucket is full again first (dropping them
        changes nothing), then the ones closest to full, down to 90 % of ``max_keys``."""
        tat = self._tat
        for k in [k for k, v in tat.items() if v <= now]:
            del tat[k]
        excess = len(tat) - int(self.max_keys * 0.9)
        if excess > 0:
            for k in sorted(tat, key=tat.__getitem__)[:excess]:
                del tat[k]


def _seconds(late: float) -> int:
    """Whole seconds to wait (Retry-After), never 0 and never too early."""
    return max(1, math.ceil(late - 1e-9))
