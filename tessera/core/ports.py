"""The storage core needs, declared by core: one Protocol per role, and the optional capabilities.

The use cases ask the store for what their role needs (``ClientDirectory`` for clients,
``ArtifactStore`` for the single-use artefacts, ...); ``Store`` is every role at once, which
each implementation in ``tessera.storage`` provides (memory, SQL, SQL with Redis in front).
Core imports nothing from ``tessera.storage``: the arrow points from storage to core.

The contract every implementation keeps (``tests/storage/test_store.py`` checks it on each):

- ``consume`` and ``claim`` are atomic: under any concurrency, across threads, processes
  and hosts, exactly one caller wins a given artefact; the combined operations
  (``claim_and_put``, ``rotate``) keep that guarantee for the artefact they claim or consume;
- everything that must survive a restart is committed before the method returns;
- a unique value that exists already is ``Conflict``; a backing service that cannot be
  reached is ``StoreUnavailable`` (the web layer answers 503, never a wrong grant).

Optional capabilities are Protocols of their own (``AsyncRotation``, ``AnnouncesChanges``,
``AnnouncedKinds``, ``SQLDatabase``, ``RedisHandle``). They are looked for once, when the core
is composed (``Capabilities.of``), and then read as typed fields: nothing asks a store at
request time what it can do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from tessera.core.models import (
    ApiKey,
    Artifact,
    CertificateRecord,
    Client,
    Developer,
    Enrollment,
    Grant,
    Merchant,
    MerchantUser,
    Organisation,
    SecurityEvent,
    StoredKey,
    Terminal,
)


class Conflict(Exception):
    """A unique value already exists (a duplicate id, a TID already bound, ...)."""


class StoreUnavailable(Exception):
    """The backing database cannot be reached; callers answer 503, never a wrong grant."""


RotationStatus = Literal["rotated", "family_revoked", "lost"]


@dataclass(frozen=True)
class Rotation:
    """What ``ArtifactStore.rotate`` did: ``status`` is ``rotated`` (``consumed`` is the used
    artefact; the successor was stored, expiring at ``successor_expires_at``), ``family_revoked``
    (the family is gone or revoked: nothing was consumed) or ``lost`` (the artefact is used,
    expired or unknown: nothing was stored)."""

    status: RotationStatus
    consumed: Artifact | None = None
    family_expires_at: int | None = None
    successor_expires_at: int | None = None


@dataclass(frozen=True)
class PurgePolicy:
    """What ``ArtifactStore.purge`` may delete at ``now``: every artefact whose ``expires_at``
    has passed, except what must outlive it (tessera.core.purge builds the policy from the
    core's rules and the settings):

    - a *consumed* artefact of ``replay_kinds`` (an authorization code) is kept
      ``replay_margin`` seconds longer, so that a replay is recognised as one and what the
      code issued is revoked (the Redis store keeps its records as long);
    - a refresh family (``family_kind``) is kept ``family_margin`` seconds past its own expiry
      (access tokens issued with its last refresh token name it) and, whatever its expiry,
      while any unexpired refresh token (``token_kind``) names it (``data["fam"]``);
    - security events created before ``events_before`` are deleted (None: all kept).

    Deletion runs in batches of ``batch`` rows, one short transaction each."""

    replay_kinds: frozenset[str] = frozenset()
    replay_margin: int = 0
    family_kind: str | None = None
    token_kind: str | None = None
    family_margin: int = 0
    events_before: int | None = None
    batch: int = 2000


# --- the roles ---------------------------------------------------------------------------------


@runtime_checkable
class ClientDirectory(Protocol):
    """Registered clients (apps)."""

    def create_client(self, client: Client) -> None: ...
    def get_client(self, client_id: str) -> Client | None: ...
    def list_clients(self) -> list[Client]: ...
    def set_client_status(self, client_id: str, status: str) -> bool: ...


@runtime_checkable
class OrganisationDirectory(Protocol):
    """Organisations (integrator companies) and the apps each owns (``Client.org_id``)."""

    def create_organisation(self, org: Organisation) -> None:
        """``Conflict`` if the id exists."""
        ...

    def get_organisation(self, org_id: str) -> Organisation | None: ...
    def list_organisations(self) -> list[Organisation]: ...
    def clients_of(self, org_id: str) -> list[Client]:
        """The clients the organisation owns, oldest first."""
        ...


@runtime_checkable
class CertificateDirectory(Protocol):
    """The developer certificates the CA signed, by thumbprint (``x5t#S256``) and serial."""

    def add_certificate(self, cert: CertificateRecord) -> None: ...
    def get_certificate(self, thumbprint: str) -> CertificateRecord | None: ...
    def certificates_for_client(self, client_id: str) -> list[CertificateRecord]: ...
    def revoke_certificate(self, serial: str, now: int) -> CertificateRecord | None:
        """Revoke by serial (hex, any case, ``0x`` and leading zeros allowed); a second revocation
        keeps the first time. The record, or None for an unknown serial."""
        ...


@runtime_checkable
class KeyStore(Protocol):
    """The server's signing and encryption keys (sealed under the KEK)."""

    def list_server_keys(self) -> list[StoredKey]: ...
    def save_server_keys(self, keys: list[StoredKey]) -> None:
        """Insert or update these keys in one transaction (a rotation is all or nothing)."""
        ...


@runtime_checkable
class MerchantDirectory(Protocol):
    """Merchants, their terminals and users, and the clients they granted access to."""

    def create_merchant(self, merchant: Merchant) -> None: ...
    def get_merchant(self, merchant_id: int) -> Merchant | None: ...
    def get_merchant_by_vat(self, vat: str) -> Merchant | None: ...
    def add_terminal(self, terminal: Terminal) -> None: ...
    def terminals_at(self, pos: str) -> list[Terminal]: ...
    def add_user(self, user: MerchantUser) -> None: ...
    def get_user(self, username: str) -> MerchantUser | None: ...
    def grant(self, merchant_id: int, client_id: str, now: int) -> None: ...
    def is_granted(self, merchant_id: int, client_id: str) -> bool: ...


@runtime_checkable
class ApiKeyStore(Protocol):
    """The axept API keys of each merchant (stored as hashes)."""

    def create_api_key(self, merchant_id: int, key_hash: str, now: int, *, max_enabled: int) -> ApiKey:
        """A new enabled key with the next key id; ``Conflict`` if ``max_enabled`` are enabled already."""
        ...

    def get_api_key(self, merchant_id: int, key_id: int) -> ApiKey | None: ...
    def list_api_keys(self, merchant_id: int) -> list[ApiKey]: ...
    def set_api_key_enabled(
        self, merchant_id: int, key_id: int, enabled: bool, now: int, *, max_enabled: int
    ) -> ApiKey:
        """Enable or disable one key; ``Conflict`` when enabling would exceed ``max_enabled``."""
        ...


@runtime_checkable
class ArtifactStore(Protocol):
    """Single-use artefacts (``tessera.core.kinds.Kind``): pushed requests, codes, assertion
    ``jti``\\ s, revoked-token marks, refresh tokens and their families."""

    def put_artifact(self, artifact: Artifact) -> None:
        """Store a new artefact; ``Conflict`` if one of that kind and key exists."""
        ...

    def get_artifact(self, kind: str, key: str) -> Artifact | None: ...
    def consume(self, kind: str, key: str, now: int) -> Artifact | None:
        """Atomically mark an unexpired, unconsumed artefact consumed and return it; else None."""
        ...

    def claim(self, kind: str, key: str, client_id: str, expires_at: int, now: int) -> bool:
        """Atomically record first use of ``key`` (e.g. an assertion jti) until ``expires_at``.

        True for the first caller; False while an unexpired record exists (a lapsed one is
        taken over)."""
        ...

    def claim_and_put(self, kind: str, key: str, client_id: str, expires_at: int, now: int, artifact: Artifact) -> bool:
        """``claim(kind, key, ...)`` and, if it was won, ``put_artifact(artifact)``, as one unit:
        False (and nothing stored) when the claim is lost; ``Conflict`` (and nothing claimed)
        when ``artifact`` exists. (A PAR: the assertion's jti and the pushed request.)"""
        ...

    def rotate(
        self, kind: str, key: str, now: int, *, family_kind: str, family: str, successor: str, successor_expires_at: int
    ) -> Rotation:
        """Strict rotation as one unit. If the artefact ``family_kind/family`` exists and its
        data is not ``revoked``, ``consume(kind, key, now)``; if that is won, store the
        successor ``kind/successor`` with the consumed artefact's client_id and data, expiring
        at ``min(successor_expires_at, the family's expires_at)``. Returns a ``Rotation``:
        ``rotated``, ``family_revoked`` (nothing consumed) or ``lost`` (not consumable)."""
        ...

    def update_artifact_data(self, kind: str, key: str, data: dict[str, Any]) -> None: ...

    def artifact_keys(self, kind: str, now: int) -> frozenset[str]:
        """The keys of the live (unexpired) artefacts of ``kind`` (for the kinds a worker keeps
        in memory: see ``AnnouncedKinds``)."""
        ...

    def purge(self, now: int, policy: PurgePolicy) -> dict[str, int]:
        """Delete what ``policy`` allows at ``now``; the number of rows deleted per artefact
        kind (and ``security_events``), kinds with nothing deleted left out."""
        ...

    def purge_expired(self, now: int) -> int:
        """``purge(now, PurgePolicy())``: every expired artefact; the total."""
        ...


@runtime_checkable
class EnrollmentStore(Protocol):
    """The SoftPOS enrollments and the binding of a merchant username to one TID."""

    def bind_username(self, username: str, tid: str, now: int) -> bool:
        """Bind a merchant username to one TID. True if bound now or already bound to this TID."""
        ...

    def bindings(self, username: str, tid: str) -> tuple[str | None, str | None]:
        """(the TID ``username`` is bound to, the username ``tid`` is bound to); None where unbound."""
        ...

    def add_enrollment(
        self,
        client_id: str,
        merchant_id: int,
        pos: str,
        tids: list[str],
        username: str,
        now: int,
        device_id: str | None = None,
    ) -> Enrollment: ...
    def list_enrollments(self) -> list[Enrollment]: ...


@runtime_checkable
class EventLog(Protocol):
    """Security events (a family revoked, a replayed code, a revoked certificate used, ...)."""

    def add_event(self, kind: str, client_id: str | None, detail: dict[str, Any], now: int) -> None: ...
    def list_events(self, limit: int = 1000, *, kind: str | None = None) -> list[SecurityEvent]:
        """The latest ``limit`` events (of ``kind``, if given), oldest first."""
        ...


# --- the portal's roles (developer accounts; the merchant side of the portal) ------------------


@runtime_checkable
class DeveloperDirectory(Protocol):
    """The integrators' developer accounts (``Developer``), by e-mail (stored lower-case)."""

    def create_developer(self, dev: Developer) -> None:
        """``Conflict`` if the e-mail exists or the organisation is unknown."""
        ...

    def get_developer(self, email: str) -> Developer | None: ...
    def list_developers(self, org_id: str) -> list[Developer]:
        """The organisation's developers, oldest first."""
        ...

    def activate_developer(self, email: str, password_hash: str, totp_sealed: str, totp_step: int) -> bool:
        """Set the password and TOTP secret of an ``invited`` account, make it ``active`` and
        record ``totp_step`` as used; False (nothing changed) unless it was ``invited``."""
        ...

    def set_developer_status(self, email: str, status: str) -> bool: ...
    def use_totp_step(self, email: str, step: int) -> bool:
        """Atomically record ``step`` as the last accepted TOTP step if it is later than the
        recorded one: True; False (a code of that step, or an earlier one, was used)."""
        ...


@runtime_checkable
class MerchantPortal(Protocol):
    """What the merchant side of the portal needs besides ``MerchantDirectory``/``ApiKeyStore``:
    withdrawing a grant (announced: workers cache grants), listing grants, a user's password
    set later (a user created without one), and when an axept key was last used."""

    def withdraw_grant(self, merchant_id: int, client_id: str) -> bool:
        """True if the grant existed (and is gone now)."""
        ...

    def grants_of(self, merchant_id: int) -> list[Grant]:
        """The merchant's grants, oldest first."""
        ...

    def grants_to(self, client_id: str) -> list[Grant]:
        """The merchants that granted the app access, oldest first."""
        ...

    def set_user_password(self, username: str, password_hash: str) -> bool:
        """False for an unknown user."""
        ...

    def touch_api_key(self, merchant_id: int, key_id: int, now: int) -> None:
        """Record that the key was used at ``now`` (never moves backwards)."""
        ...


@runtime_checkable
class AdminQueries(Protocol):
    """What the admin layer reads and changes besides the other roles (the admin API): an
    app's details and its secret with a rotation's overlap, the listings of merchants and
    what hangs from them (their grants: ``MerchantPortal.grants_of``), a certificate by serial,
    and a page of security events."""

    def update_client_details(
        self,
        client_id: str,
        name: str,
        redirect_uris: tuple[str, ...],
        *,
        expected: tuple[str, tuple[str, ...]] | None = None,
    ) -> bool:
        """Set the client's name and redirect URIs (announced: workers cache clients); False
        for an unknown client. With ``expected`` (the name and redirect URIs the caller read),
        only if they are still those, checked and written as one unit: ``Conflict`` if not."""
        ...

    def set_client_secret(
        self, client_id: str, secret_hash: str | None, previous_hash: str | None, previous_valid_until: int | None
    ) -> bool:
        """Replace the client's secret HMAC and its previous one (accepted until
        ``previous_valid_until``), in one write, announced; False for an unknown client."""
        ...

    def list_merchants(self) -> list[Merchant]:
        """Every merchant, by id."""
        ...

    def terminals_of(self, merchant_id: int) -> list[Terminal]:
        """The merchant's terminals, by point of sale then TID."""
        ...

    def users_of(self, merchant_id: int) -> list[MerchantUser]:
        """The merchant's users, by username."""
        ...

    def certificate_by_serial(self, serial: str) -> CertificateRecord | None:
        """One certificate by serial (hex, any case, ``0x`` and leading zeros allowed)."""
        ...

    def events_after(
        self,
        after_id: int,
        limit: int,
        *,
        kind: str | None = None,
        client_id: str | None = None,
        since: int | None = None,
    ) -> list[SecurityEvent]:
        """Up to ``limit`` events with an id above ``after_id`` (of ``kind``, of ``client_id``,
        created at or after ``since``, where given), by id."""
        ...


@runtime_checkable
class Store(
    ClientDirectory,
    OrganisationDirectory,
    CertificateDirectory,
    KeyStore,
    MerchantDirectory,
    ApiKeyStore,
    ArtifactStore,
    EnrollmentStore,
    EventLog,
    AdminQueries,
    DeveloperDirectory,
    MerchantPortal,
    Protocol,
):
    """Every role, plus a liveness check and the release of connections."""

    def ping(self) -> None:
        """Return when the store answers; ``StoreUnavailable`` (or the driver's error) when not."""
        ...

    def close(self) -> None: ...


# --- optional capabilities ---------------------------------------------------------------------


@runtime_checkable
class AsyncRotation(Protocol):
    """``rotate`` awaited on the running event loop (PostgreSQL: one prepared statement)."""

    async def rotate_async(
        self, kind: str, key: str, now: int, *, family_kind: str, family: str, successor: str, successor_expires_at: int
    ) -> Rotation | None:
        """As ``ArtifactStore.rotate``; None where it cannot run on this loop (the caller then
        uses ``rotate``)."""
        ...


@runtime_checkable
class ChangeNotices(Protocol):
    """Announcements that something workers cache has changed (a revocation, a new client, ...)."""

    @property
    def exact(self) -> bool:
        """True when every announced change is seen by the next ``changed()`` of every worker
        (SQLite's notice file, PostgreSQL LISTEN/NOTIFY); False when they are polled (Redis)."""
        ...

    def changed(self) -> bool:
        """True when a change was announced since this listener's last call (or when the
        listener cannot tell: then no cache is trusted)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class AnnouncesChanges(Protocol):
    """A store that announces the changes of what workers cache."""

    @property
    def revocation_notices(self) -> ChangeNotices | None: ...


@runtime_checkable
class AnnouncedKinds(Protocol):
    """A store whose writes of these artefact kinds are announced (``ChangeNotices``), so that a
    worker may keep their live keys in memory (the revoked access-token marks)."""

    @property
    def announced_kinds(self) -> frozenset[str]: ...


@runtime_checkable
class SQLDatabase(Protocol):
    """The SQL database behind a store: where its calls run, and its own liveness check."""

    @property
    def remote(self) -> bool:
        """True for a database server (PostgreSQL: a call waits for a round trip), False for a
        local file (SQLite)."""
        ...

    def ping(self) -> None: ...

    def after_announce(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` after every commit *of this process* that announced a change, in the
        committing thread (a bound method is held weakly). Other processes learn of it through
        the change notices; this process need not wait for its own notice to come back."""
        ...


@runtime_checkable
class SQLBacked(Protocol):
    """A store whose durable part is a SQL database."""

    @property
    def database(self) -> SQLDatabase: ...


@runtime_checkable
class RehashesSecrets(Protocol):
    """A store that can move a stored credential hash to the current pepper (a conditional
    update: only if the hash is still ``old``) and list every stored hash (for
    ``tessera pepper status``)."""

    def rehash_client_secret(self, client_id: str, old: str, new: str) -> bool: ...
    def rehash_api_key(self, merchant_id: int, key_id: int, old: str, new: str) -> bool: ...
    def credential_hashes(self) -> dict[str, list[str]]: ...


@runtime_checkable
class RedisHandle(Protocol):
    """A store with a Redis part: its client (shared by the rate and failure limiters) and its
    liveness check."""

    @property
    def redis(self) -> Any:  # a redis.Redis: core names no driver
        ...

    def ping_redis(self) -> None: ...


@dataclass(frozen=True)
class Capabilities:
    """The optional capabilities of one store, found once when the core is composed."""

    rotation: AsyncRotation | None = None
    notices: ChangeNotices | None = None
    announced_kinds: frozenset[str] = frozenset()
    database: SQLDatabase | None = None
    redis: RedisHandle | None = None
    rehash: RehashesSecrets | None = None

    @classmethod
    def of(cls, store: object) -> Capabilities:
        """What ``store`` can do besides the ``Store`` roles."""
        return cls(
            rotation=store if isinstance(store, AsyncRotation) else None,
            notices=store.revocation_notices if isinstance(store, AnnouncesChanges) else None,
            announced_kinds=frozenset(store.announced_kinds) if isinstance(store, AnnouncedKinds) else frozenset(),
            database=store.database if isinstance(store, SQLBacked) else None,
            redis=store if isinstance(store, RedisHandle) else None,
            rehash=store if isinstance(store, RehashesSecrets) else None,
        )
