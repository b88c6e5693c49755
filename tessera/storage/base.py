"""The one storage contract.

Every implementation must make ``consume`` and ``claim`` atomic: under any concurrency,
across threads, processes and hosts, exactly one caller wins a given artefact; the
combined operations (``claim_and_put``, ``rotate``) keep that guarantee for the artefact
they claim or consume.
Everything that must survive a restart is committed before the method returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from tessera.core.models import (
    ApiKey,
    Artifact,
    CertificateRecord,
    Client,
    Enrollment,
    Merchant,
    MerchantUser,
    SecurityEvent,
    StoredKey,
    Terminal,
)


@dataclass(frozen=True)
class Rotation:
    """What ``Store.rotate`` did: ``status`` is ``rotated`` (``consumed`` is the used artefact;
    the successor was stored, expiring at ``successor_expires_at``), ``family_revoked`` (the
    family is gone or revoked: nothing was consumed) or ``lost`` (the artefact is used,
    expired or unknown: nothing was stored)."""

    status: str
    consumed: Artifact | None = None
    family_expires_at: int | None = None
    successor_expires_at: int | None = None


def rotate_stepwise(store, kind: str, key: str, now: int, *, family_kind: str, family: str, successor: str,
                    successor_expires_at: int) -> Rotation:
    """``rotate`` from the other operations, for a store whose kinds live apart: the family
    check, the atomic ``consume`` and the successor's ``put_artifact``, one after another."""
    fam = store.get_artifact(family_kind, family)
    if fam is None or fam.data.get("revoked"):
        return Rotation("family_revoked")
    won = store.consume(kind, key, now)
    if won is None:
        return Rotation("lost", family_expires_at=fam.expires_at)
    expires_at = min(int(successor_expires_at), fam.expires_at)
    store.put_artifact(Artifact(kind, successor, won.client_id, won.data, expires_at))
    return Rotation("rotated", won, fam.expires_at, expires_at)


@dataclass(frozen=True)
class PurgePolicy:
    """What ``Store.purge`` may delete at ``now``: every artefact whose ``expires_at`` has
    passed, except what must outlive it (tessera.core.purge builds the policy from the core's
    rules and the settings):

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


class Conflict(Exception):
    """A unique value already exists (a duplicate id, a TID already bound, ...)."""


class StoreUnavailable(Exception):
    """The backing database cannot be reached; callers answer 503, never a wrong grant."""


@runtime_checkable
class Store(Protocol):
    # --- clients --------------------------------------------------------------------------
    def create_client(self, client: Client) -> None: ...
    def get_client(self, client_id: str) -> Client | None: ...
    def list_clients(self) -> list[Client]: ...
    def set_client_status(self, client_id: str, status: str) -> bool: ...

    # --- developer certificates -------------------------------------------------------------
    def add_certificate(self, cert: CertificateRecord) -> None: ...
    def get_certificate(self, thumbprint: str) -> CertificateRecord | None: ...
    def certificates_for_client(self, client_id: str) -> list[CertificateRecord]: ...
    def revoke_certificate(self, serial: str, now: int) -> CertificateRecord | None: ...

    # --- server keys ------------------------------------------------------------------------
    def list_server_keys(self) -> list[StoredKey]: ...
    def save_server_keys(self, keys: list[StoredKey]) -> None:
        """Insert or update these keys in one transaction (a rotation is all or nothing)."""

    # --- merchants ----------------------------------------------------------------------------
    def create_merchant(self, merchant: Merchant) -> None: ...
    def get_merchant(self, merchant_id: int) -> Merchant | None: ...
    def get_merchant_by_vat(self, vat: str) -> Merchant | None: ...
    def add_terminal(self, terminal: Terminal) -> None: ...
    def terminals_at(self, pos: str) -> list[Terminal]: ...
    def add_user(self, user: MerchantUser) -> None: ...
    def get_user(self, username: str) -> MerchantUser | None: ...
    def grant(self, merchant_id: int, client_id: str, now: int) -> None: ...
    def is_granted(self, merchant_id: int, client_id: str) -> bool: ...

    # --- axept API keys ----------------------------------------------------------------------
    def create_api_key(self, merchant_id: int, key_hash: str, now: int, *, max_enabled: int) -> ApiKey:
        """A new enabled key with the next key id; ``Conflict`` if ``max_enabled`` are enabled already."""

    def get_api_key(self, merchant_id: int, key_id: int) -> ApiKey | None: ...
    def list_api_keys(self, merchant_id: int) -> list[ApiKey]: ...
    def set_api_key_enabled(self, merchant_id: int, key_id: int, enabled: bool, now: int, *, max_enabled: int) -> ApiKey:
        """Enable or disable one key; ``Conflict`` when enabling would exceed ``max_enabled``."""

    # --- single-use artefacts -------------------------------------------------------------------
    def put_artifact(self, artifact: Artifact) -> None: ...
    def get_artifact(self, kind: str, key: str) -> Artifact | None: ...
    def consume(self, kind: str, key: str, now: int) -> Artifact | None:
        """Atomically mark an unexpired, unconsumed artefact consumed and return it; else None."""

    def claim(self, kind: str, key: str, client_id: str, expires_at: int, now: int) -> bool:
        """Atomically record first use of ``key`` (e.g. an assertion jti) until ``expires_at``.

        True for the first caller; False while an unexpired record exists.
        """

    def claim_and_put(self, kind: str, key: str, client_id: str, expires_at: int, now: int, artifact: Artifact) -> bool:
        """``claim(kind, key, ...)`` and, if it was won, ``put_artifact(artifact)``, as one unit:
        False (and nothing stored) when the claim is lost; ``Conflict`` (and nothing claimed)
        when ``artifact`` exists. (A PAR: the assertion's jti and the pushed request.)"""

    def rotate(self, kind: str, key: str, now: int, *, family_kind: str, family: str, successor: str,
               successor_expires_at: int) -> "Rotation":
        """Strict rotation as one unit. If the artefact ``family_kind/family`` exists and its
        data is not ``revoked``, ``consume(kind, key, now)``; if that is won, store the
        successor ``kind/successor`` with the consumed artefact's client_id and data, expiring
        at ``min(successor_expires_at, the family's expires_at)``. Returns a ``Rotation``:
        ``rotated``, ``family_revoked`` (nothing consumed) or ``lost`` (not consumable)."""

    def update_artifact_data(self, kind: str, key: str, data: dict[str, Any]) -> None: ...

    # --- enrollments ------------------------------------------------------------------------------
    def bind_username(self, username: str, tid: str, now: int) -> bool:
        """Bind a merchant username to one TID. True if bound now or already bound to this TID."""

    def bindings(self, username: str, tid: str) -> tuple[str | None, str | None]:
        """(the TID ``username`` is bound to, the username ``tid`` is bound to); None where unbound."""

    def add_enrollment(self, client_id: str, merchant_id: int, pos: str, tids: list[str], username: str, now: int,
                       device_id: str | None = None) -> Enrollment: ...
    def list_enrollments(self) -> list[Enrollment]: ...

    # --- security events --------------------------------------------------------------------------
    def add_event(self, kind: str, client_id: str | None, detail: dict[str, Any], now: int) -> None: ...
    def list_events(self, limit: int = 1000, *, kind: str | None = None) -> list[SecurityEvent]:
        """The latest ``limit`` events (of ``kind``, if given), oldest first."""

    # --- housekeeping --------------------------------------------------------------------------------
    def purge(self, now: int, policy: PurgePolicy) -> dict[str, int]:
        """Delete what ``policy`` allows at ``now``; the number of rows deleted per artefact
        kind (and ``security_events``), kinds with nothing deleted left out."""

    def purge_expired(self, now: int) -> int:
        """``purge(now, PurgePolicy())``: every expired artefact; the total."""

    def ping(self) -> None: ...
    def close(self) -> None: ...
