"""The core's dependencies in one place: configuration, store, keys, clock.

``Core`` is built once per process by the composition root (``tessera.home.build_core``) and
handed to every use case. It holds no HTTP or SQL knowledge itself, and reads no settings: its
configuration is a ``CoreConfig``, its store any ``tessera.core.ports.Store``, whose optional
capabilities are looked for once, here, when the core is made (``Capabilities``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import InitVar, dataclass, field
from typing import Any, Generic, Literal, TypeVar

from tessera.core.keys import KeyRing
from tessera.core.models import ApiKey, CertificateRecord, Client, Merchant, MerchantUser, Terminal
from tessera.core.ports import Capabilities, ChangeNotices, Store
from tessera.core.profiles import ProfileSeal, default_audiences, default_issuers
from tessera.core.secrets import PepperLike

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class CoreConfig:
    issuer: str
    environment: str = "staging"
    nexi_token_ttl: int = 3600
    access_token_ttl: int = 3600
    id_token_ttl: int = 3600
    par_ttl: int = 90
    code_ttl: int = 60
    assertion_max_lifetime: int = 300
    clock_skew: int = 30
    #: Nexi PAR assertions (tessera.core.assertions.NEXI_RULES): lifetime and iat tolerance.
    nexi_assertion_max_lifetime: int = 900
    nexi_iat_tolerance: int = 2
    cache_seconds: float = 0.0
    refresh_family_max: int = 30 * 86400
    #: Per profile: the ``iss`` and ``aud`` of its tokens (tessera.core.profiles). Empty: derived
    #: from ``issuer`` with the default prefixes.
    issuers: dict[str, str] = field(default_factory=dict)
    audiences: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        defaults = dict(
            nexi_prefix="/softpos",
            mobilepay_prefix="/integrator-authentication",
            b2binpay_prefix="/b2binpay",
            axept_prefix="/axept",
        )
        if not self.issuers:
            object.__setattr__(
                self, "issuers", default_issuers(self.issuer, mobilepay_prefix=defaults["mobilepay_prefix"])
            )
        if not self.audiences:
            object.__setattr__(self, "audiences", default_audiences(self.issuer, **defaults))
        seals = {
            name: ProfileSeal(name, self.issuers[name], self.audiences[name], self.environment)
            for name in self.audiences
        }
        object.__setattr__(self, "_seals", seals)

    def seal(self, profile: str) -> ProfileSeal:
        """What ``profile``'s tokens say of themselves (issuer, audience, profile, environment)."""
        seals: dict[str, ProfileSeal] = self.__dict__["_seals"]
        return seals[profile]


#: At most this many repeatable events are remembered per worker (``Core.event(once_per=...)``).
RECENT_EVENTS = 10_000
#: How often a repeatable refusal (a revoked certificate, a replayed assertion) is written as an event.
REPEATED_EVENT_SECONDS = 60

#: With exact change notices, a cached entry is still re-read after this long (belt and braces).
EXACT_CACHE_SECONDS = 60.0


class _TTLCache(Generic[K, V]):
    """A tiny read-through cache; with ``ttl == 0`` it always reads through."""

    def __init__(self, ttl: float, loader: Callable[[K], V], maxsize: int = 50_000) -> None:
        self.ttl = ttl
        self.loader = loader
        self.maxsize = maxsize
        self._data: dict[K, tuple[float, V]] = {}
        self._generation = 0

    def get(self, key: K) -> V:
        if self.ttl <= 0:
            return self.loader(key)
        hit = self._data.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        generation = self._generation
        value = self.loader(key)
        if len(self._data) >= self.maxsize:
            self._data.clear()
        if generation == self._generation:  # not if invalidated meanwhile: the value may predate it
            self._data[key] = (now + self.ttl, value)
        return value

    def invalidate(self, key: K | None = None) -> None:
        self._generation += 1
        if key is None:
            self._data.clear()
        else:
            self._data.pop(key, None)


@dataclass
class Core:
    config: CoreConfig
    store: Store
    keys: KeyRing
    #: the HMAC pepper(s) of machine credentials (``tessera.core.secrets.Peppers``, or one key)
    pepper: PepperLike
    clock: Callable[[], float] = time.time
    #: The store's optional capabilities; None: found from the store (``Capabilities.of``).
    capabilities: InitVar[Capabilities | None] = None
    caps: Capabilities = field(init=False, repr=False)
    _clients: _TTLCache[str, Client | None] = field(init=False, repr=False)
    _certs: _TTLCache[str, CertificateRecord | None] = field(init=False, repr=False)
    #: Access tokens whose signature this worker verified (tessera.core.tokens), and the
    #: worker's set of revoked access-token jtis (None: not made yet; False: not kept here).
    verified_tokens: dict[str, Any] = field(init=False, repr=False, default_factory=dict)
    revoked_marks: _TTLCache[None, frozenset[str]] | Literal[False] | None = field(init=False, repr=False, default=None)
    #: Events written with ``once_per`` and when (see ``event``); bounded by RECENT_EVENTS.
    _recent_events: dict[tuple[Any, ...], int] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self, capabilities: Capabilities | None) -> None:
        self.caps = capabilities if capabilities is not None else Capabilities.of(self.store)
        # Clients, certificates, the enrollment data (terminals, grants, users, username
        # bindings), merchants by VAT number and axept API keys are cached per worker when the
        # store announces their changes: exactly
        # (SQLite's notice file, PostgreSQL LISTEN/NOTIFY: a revocation is honoured on the next
        # request, with no database read for them while nothing changes; see
        # tessera.storage.notices), or by polling a Redis epoch within
        # ``revocation_cache_seconds``. See heed_notices.
        notices = self.caps.notices
        exact = notices is not None and notices.exact
        ttl = self.config.cache_seconds if self.config.cache_seconds > 0 else (EXACT_CACHE_SECONDS if exact else 0)
        store = self.store
        self._clients = _TTLCache(ttl, store.get_client)
        self._certs = _TTLCache(ttl, store.get_certificate)
        self._client_certs: _TTLCache[str, tuple[CertificateRecord, ...]] = _TTLCache(
            ttl, lambda cid: tuple(store.certificates_for_client(cid))
        )
        self._terminals: _TTLCache[str, tuple[Terminal, ...]] = _TTLCache(
            ttl, lambda pos: tuple(store.terminals_at(pos))
        )
        self._grants: _TTLCache[tuple[int, str], bool] = _TTLCache(ttl, lambda key: store.is_granted(*key))
        self._users: _TTLCache[str, MerchantUser | None] = _TTLCache(ttl, store.get_user)
        self._bindings: _TTLCache[tuple[str, str], tuple[str | None, str | None]] = _TTLCache(
            ttl, lambda key: store.bindings(*key)
        )
        self._merchants_by_vat: _TTLCache[str, Merchant | None] = _TTLCache(ttl, store.get_merchant_by_vat)
        self._api_keys: _TTLCache[tuple[int, int], ApiKey | None] = _TTLCache(ttl, lambda key: store.get_api_key(*key))
        self._caches: tuple[_TTLCache[Any, Any], ...] = (
            self._clients,
            self._certs,
            self._client_certs,
            self._terminals,
            self._grants,
            self._users,
            self._bindings,
            self._merchants_by_vat,
            self._api_keys,
        )
        self._notices: ChangeNotices | None = notices if ttl > 0 else None
        if ttl > 0 and self.caps.database is not None:
            # What this process writes itself (the admin API, the portal, a re-hashed secret) is
            # dropped at once, without waiting for its notice to come back (PostgreSQL).
            self.caps.database.after_announce(self.drop_caches)

    def now(self) -> int:
        return int(self.clock())

    def client(self, client_id: str) -> Client | None:
        self.heed_notices()
        return self._clients.get(client_id)

    def certificate(self, thumbprint: str) -> CertificateRecord | None:
        self.heed_notices()
        return self._certs.get(thumbprint)

    def certificates_for(self, client_id: str) -> tuple[CertificateRecord, ...]:
        """The certificates bound to ``client_id`` (revoked and expired ones included)."""
        self.heed_notices()
        return self._client_certs.get(client_id)

    def terminals_at(self, pos: str) -> tuple[Terminal, ...]:
        self.heed_notices()
        return self._terminals.get(pos)

    def is_granted(self, merchant_id: int, client_id: str) -> bool:
        self.heed_notices()
        return self._grants.get((merchant_id, client_id))

    def user(self, username: str) -> MerchantUser | None:
        self.heed_notices()
        return self._users.get(username)

    def bindings(self, username: str, tid: str) -> tuple[str | None, str | None]:
        """As ``Store.bindings``, cached. Binding itself is always the store's (atomic) write."""
        self.heed_notices()
        return self._bindings.get((username, tid))

    def merchant_by_vat(self, vat: str) -> Merchant | None:
        """As ``Store.get_merchant_by_vat``, cached (an unknown VAT number too: a merchant created
        later is announced like any other change)."""
        self.heed_notices()
        return self._merchants_by_vat.get(vat)

    def api_key(self, merchant_id: int, key_id: int) -> ApiKey | None:
        """As ``Store.get_api_key``, cached: a key disabled (or created) is announced, and honoured
        on the next request exactly as a revoked client is."""
        self.heed_notices()
        return self._api_keys.get((merchant_id, key_id))

    def watch(self, cache: _TTLCache[Any, Any]) -> None:
        """Drop ``cache`` with the others whenever a change is announced."""
        self._caches = (*self._caches, cache)

    @property
    def exact_notices(self) -> bool:
        """True when every announced change reaches this worker before its next request."""
        return self._notices is not None and self._notices.exact

    def heed_notices(self) -> None:
        """Drop every cached entry when a change was announced (exact notices: checked on every
        call, well under a microsecond on SQLite; Redis: at most every ``revocation_poll_ms``,
        see tessera.storage.redis_store)."""
        if self._notices is not None and self._notices.changed():
            for cache in self._caches:
                cache.invalidate()

    def drop_caches(self) -> None:
        """Forget every cached entry now: this process changed what they hold (called by the
        database after each of this process's announcing commits, see ``after_announce``)."""
        for cache in self._caches:
            cache.invalidate()

    def event(self, kind: str, client_id: str | None, *, once_per: int = 0, **detail: Any) -> None:
        """Record a security event (family revocation, replayed jti, revoked certificate used, ...).

        ``once_per``: the same event (kind, client and detail) is written at most once in that
        many seconds by this worker. For events that anyone holding a stale credential can
        repeat at will (a revoked certificate, a captured assertion replayed), so that a
        stream of refusals cannot turn into a stream of writes."""
        now = self.now()
        if once_per > 0:
            key = (kind, client_id, tuple(sorted((k, str(v)) for k, v in detail.items())))
            last = self._recent_events.get(key)
            if last is not None and now - last < once_per:
                return
            if len(self._recent_events) >= RECENT_EVENTS:
                self._recent_events.clear()
            self._recent_events[key] = now
        self.store.add_event(kind, client_id, detail, now)
