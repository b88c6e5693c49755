"""``MemoryStore``: the ``Store`` in one process's memory, for fast in-process tests.

It keeps the same contract as the SQL and Redis stores (``tests/storage/test_store.py`` runs
one suite against all of them): one lock serialises every operation, so ``consume``, ``claim``
and the combined operations are atomic under threads, and exactly one racer wins; unique
values and the references between records (a certificate's client, a terminal's merchant)
are checked as the database's constraints check them, with ``Conflict``; artefact data is
copied through JSON on the way in and out, as a database column would.

Its change notices are exact and trivial: every announced write bumps a generation, and each
listener (one per ``Core``: ``revocation_notices`` hands out a new one) remembers the last
generation it saw. Nothing survives the process: this store is for tests and experiments.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from typing import Any

from tessera.core.kinds import Kind
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
from tessera.core.ports import Conflict, PurgePolicy, Rotation

#: The artefact kinds whose writes are announced (as the SQL store's: the revoked-token marks).
ANNOUNCED_KINDS: frozenset[str] = frozenset({Kind.REVOKED_TOKEN})


def _copy(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as a JSON column gives it back: a fresh value, JSON types only."""
    out: dict[str, Any] = json.loads(json.dumps(data))
    return out


def _serial(serial: str) -> str:
    return serial.lower().removeprefix("0x").lstrip("0") or "0"


class MemoryNotices:
    """One listener of a ``MemoryStore``'s announcements (exact: seen on the next ``changed``)."""

    exact = True

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._seen = -1  # the first look counts as a change, like the SQL listeners'

    def changed(self) -> bool:
        generation = self._store.generation
        if generation == self._seen:
            return False
        self._seen = generation
        return True

    def close(self) -> None:
        """Nothing to release."""


class MemoryStore:
    """Every ``Store`` role in memory (see the module docstring)."""

    announced_kinds: frozenset[str] = ANNOUNCED_KINDS

    def __init__(self) -> None:
        self._lock = threading.RLock()
        #: Bumped by every write that workers may cache (see ``MemoryNotices``).
        self.generation = 0
        self._clients: dict[str, Client] = {}
        self._orgs: dict[str, Organisation] = {}
        self._certs: dict[str, CertificateRecord] = {}  # by serial
        self._keys: dict[str, StoredKey] = {}
        self._merchants: dict[int, Merchant] = {}
        self._terminals: dict[str, Terminal] = {}
        self._users: dict[str, MerchantUser] = {}
        self._grants: set[tuple[int, str]] = set()
        self._grant_times: dict[tuple[int, str], int] = {}
        self._developers: dict[str, Developer] = {}
        self._api_keys: dict[tuple[int, int], ApiKey] = {}
        self._artifacts: dict[tuple[str, str], Artifact] = {}
        self._bindings: dict[str, str] = {}  # username -> tid
        self._enrollments: list[Enrollment] = []
        self._events: list[SecurityEvent] = []

    def _announce(self) -> None:
        self.generation += 1

    @property
    def revocation_notices(self) -> MemoryNotices:
        """A new listener: each reader (each ``Core``) keeps its own."""
        return MemoryNotices(self)

    # --- clients --------------------------------------------------------------------------
    def create_client(self, client: Client) -> None:
        with self._lock:
            if client.client_id in self._clients:
                raise Conflict(f"client {client.client_id} exists")
            if client.org_id is not None and client.org_id not in self._orgs:
                raise Conflict(f"unknown organisation {client.org_id}")
            self._clients[client.client_id] = client
            self._announce()

    def get_client(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    def list_clients(self) -> list[Client]:
        with self._lock:
            return sorted(self._clients.values(), key=lambda c: c.created_at)

    def set_client_status(self, client_id: str, status: str) -> bool:
        with self._lock:
            client = self._clients.get(client_id)
            if client is None:
                return False
            self._clients[client_id] = replace(client, status=status)
            self._announce()
            return True

    # --- organisations ----------------------------------------------------------------------
    def create_organisation(self, org: Organisation) -> None:
        with self._lock:
            if org.org_id in self._orgs:
                raise Conflict(f"organisation {org.org_id} exists")
            self._orgs[org.org_id] = org

    def get_organisation(self, org_id: str) -> Organisation | None:
        return self._orgs.get(org_id)

    def list_organisations(self) -> list[Organisation]:
        with self._lock:
            return sorted(self._orgs.values(), key=lambda o: (o.created_at, o.org_id))

    def clients_of(self, org_id: str) -> list[Client]:
        with self._lock:
            return sorted((c for c in self._clients.values() if c.org_id == org_id), key=lambda c: c.created_at)

    # --- certificates -----------------------------------------------------------------------
    def add_certificate(self, cert: CertificateRecord) -> None:
        with self._lock:
            if cert.serial in self._certs or any(c.thumbprint == cert.thumbprint for c in self._certs.values()):
                raise Conflict("certificate already recorded")
            if cert.client_id not in self._clients:
                raise Conflict(f"unknown client {cert.client_id}")
            self._certs[cert.serial] = cert
            self._announce()

    def get_certificate(self, thumbprint: str) -> CertificateRecord | None:
        with self._lock:
            return next((c for c in self._certs.values() if c.thumbprint == thumbprint), None)

    def certificates_for_client(self, client_id: str) -> list[CertificateRecord]:
        with self._lock:
            return sorted((c for c in self._certs.values() if c.client_id == client_id), key=lambda c: c.created_at)

    def revoke_certificate(self, serial: str, now: int) -> CertificateRecord | None:
        serial = _serial(serial)
        with self._lock:
            cert = self._certs.get(serial)
            if cert is None:
                return None
            if cert.revoked_at is None:
                cert = self._certs[serial] = replace(cert, revoked_at=now)
            self._announce()
            return cert

    # --- server keys -----------------------------------------------------------------------------
    def list_server_keys(self) -> list[StoredKey]:
        with self._lock:
            return sorted(self._keys.values(), key=lambda k: k.created_at)

    def save_server_keys(self, keys: list[StoredKey]) -> None:
        with self._lock:
            for k in keys:
                self._keys[k.kid] = k

    # --- merchants ----------------------------------------------------------------------------------
    def create_merchant(self, merchant: Merchant) -> None:
        with self._lock:
            if merchant.merchant_id in self._merchants or (
                merchant.vat is not None and any(m.vat == merchant.vat for m in self._merchants.values())
            ):
                raise Conflict(f"merchant {merchant.merchant_id} or VAT {merchant.vat} exists")
            self._merchants[merchant.merchant_id] = merchant
            self._announce()  # workers cache merchants by VAT number, unknown ones too

    def get_merchant(self, merchant_id: int) -> Merchant | None:
        return self._merchants.get(merchant_id)

    def get_merchant_by_vat(self, vat: str) -> Merchant | None:
        with self._lock:
            return next((m for m in self._merchants.values() if m.vat == vat), None)

    def add_terminal(self, terminal: Terminal) -> None:
        with self._lock:
            if terminal.tid in self._terminals or terminal.merchant_id not in self._merchants:
                raise Conflict(f"terminal {terminal.tid} exists, or merchant {terminal.merchant_id} is unknown")
            self._terminals[terminal.tid] = terminal
            self._announce()

    def terminals_at(self, pos: str) -> list[Terminal]:
        with self._lock:
            return [t for t in self._terminals.values() if t.pos == pos]

    def add_user(self, user: MerchantUser) -> None:
        with self._lock:
            if user.username in self._users or user.merchant_id not in self._merchants:
                raise Conflict(f"user {user.username} exists, or merchant {user.merchant_id} is unknown")
            self._users[user.username] = user
            self._announce()

    def get_user(self, username: str) -> MerchantUser | None:
        return self._users.get(username)

    def grant(self, merchant_id: int, client_id: str, now: int) -> None:
        with self._lock:
            if (merchant_id, client_id) in self._grants:
                return
            if merchant_id not in self._merchants or client_id not in self._clients:
                raise Conflict(f"unknown merchant {merchant_id} or client {client_id}")
            self._grants.add((merchant_id, client_id))
            self._grant_times[(merchant_id, client_id)] = now
            self._announce()

    def is_granted(self, merchant_id: int, client_id: str) -> bool:
        return (merchant_id, client_id) in self._grants

    # --- axept API keys ---------------------------------------------------------------------------------
    def _enabled(self, merchant_id: int) -> int:
        return sum(1 for k in self._api_keys.values() if k.merchant_id == merchant_id and k.enabled)

    def create_api_key(self, merchant_id: int, key_hash: str, now: int, *, max_enabled: int) -> ApiKey:
        with self._lock:
            if self._enabled(merchant_id) >= max_enabled:
                raise Conflict(f"merchant {merchant_id} already has {max_enabled} enabled keys; disable one first")
            if merchant_id not in self._merchants:
                raise Conflict(f"unknown merchant {merchant_id}")
            next_id = max((k.key_id for k in self._api_keys.values() if k.merchant_id == merchant_id), default=0) + 1
            key = self._api_keys[(merchant_id, next_id)] = ApiKey(merchant_id, next_id, key_hash, True, now)
            self._announce()
            return key

    def get_api_key(self, merchant_id: int, key_id: int) -> ApiKey | None:
        return self._api_keys.get((merchant_id, key_id))

    def list_api_keys(self, merchant_id: int) -> list[ApiKey]:
        with self._lock:
            return sorted((k for k in self._api_keys.values() if k.merchant_id == merchant_id), key=lambda k: k.key_id)

    def set_api_key_enabled(
        self, merchant_id: int, key_id: int, enabled: bool, now: int, *, max_enabled: int
    ) -> ApiKey:
        with self._lock:
            key = self._api_keys.get((merchant_id, key_id))
            if key is None:
                raise Conflict(f"merchant {merchant_id} has no key {key_id}")
            if enabled and not key.enabled and self._enabled(merchant_id) >= max_enabled:
                raise Conflict(f"merchant {merchant_id} already has {max_enabled} enabled keys; disable one first")
            key = self._api_keys[(merchant_id, key_id)] = replace(
                key, enabled=enabled, disabled_at=None if enabled else now
            )
            self._announce()
            return key

    # --- single-use artefacts ---------------------------------------------------------------------------
    def put_artifact(self, artifact: Artifact) -> None:
        with self._lock:
            self._put(artifact)

    def _put(self, a: Artifact) -> None:
        if (a.kind, a.key) in self._artifacts:
            raise Conflict(f"{a.kind} exists")
        self._artifacts[(a.kind, a.key)] = replace(a, data=_copy(a.data))
        if a.kind in ANNOUNCED_KINDS:
            self._announce()

    def get_artifact(self, kind: str, key: str) -> Artifact | None:
        with self._lock:
            a = self._artifacts.get((kind, key))
            return None if a is None else replace(a, data=_copy(a.data))

    def consume(self, kind: str, key: str, now: int) -> Artifact | None:
        with self._lock:
            return self._consume(kind, key, now)

    def _consume(self, kind: str, key: str, now: int) -> Artifact | None:
        a = self._artifacts.get((kind, key))
        if a is None or a.consumed_at is not None or a.expires_at <= now:
            return None
        a = self._artifacts[(kind, key)] = replace(a, consumed_at=int(now))
        return replace(a, data=_copy(a.data))

    def claim(self, kind: str, key: str, client_id: str, expires_at: int, now: int) -> bool:
        with self._lock:
            return self._claim(kind, key, client_id, expires_at, now)

    def _claim(self, kind: str, key: str, client_id: str, expires_at: int, now: int) -> bool:
        held = self._artifacts.get((kind, key))
        if held is not None and held.expires_at > now:
            return False
        self._artifacts[(kind, key)] = Artifact(kind, key, client_id, {}, int(expires_at), int(now))
        return True

    def claim_and_put(self, kind: str, key: str, client_id: str, expires_at: int, now: int, artifact: Artifact) -> bool:
        with self._lock:
            if (artifact.kind, artifact.key) in self._artifacts:
                held = self._artifacts.get((kind, key))
                if held is not None and held.expires_at > now:
                    return False  # the claim is lost first, as in one SQL transaction
                raise Conflict(f"{artifact.kind} exists")
            if not self._claim(kind, key, client_id, expires_at, now):
                return False
            self._put(artifact)
            return True

    def rotate(
        self, kind: str, key: str, now: int, *, family_kind: str, family: str, successor: str, successor_expires_at: int
    ) -> Rotation:
        with self._lock:
            fam = self._artifacts.get((family_kind, family))
            if fam is None or fam.data.get("revoked"):
                return Rotation("family_revoked")
            held = self._artifacts.get((kind, key))
            if held is None or held.consumed_at is not None or held.expires_at <= now:
                return Rotation("lost", family_expires_at=fam.expires_at)
            if (kind, successor) in self._artifacts:  # nothing consumed, as in one transaction
                raise Conflict(f"{kind} {successor[:8]}... exists")
            won = self._artifacts[(kind, key)] = replace(held, consumed_at=int(now))
            expires_at = min(int(successor_expires_at), fam.expires_at)
            self._put(Artifact(kind, successor, won.client_id, won.data, expires_at))
            return Rotation("rotated", replace(won, data=_copy(won.data)), fam.expires_at, expires_at)

    def update_artifact_data(self, kind: str, key: str, data: dict[str, Any]) -> None:
        with self._lock:
            a = self._artifacts.get((kind, key))
            if a is not None:
                self._artifacts[(kind, key)] = replace(a, data=_copy(data))

    def artifact_keys(self, kind: str, now: int) -> frozenset[str]:
        with self._lock:
            return frozenset(k for (kd, k), a in self._artifacts.items() if kd == kind and a.expires_at > now)

    # --- enrollments -------------------------------------------------------------------------------------
    def bind_username(self, username: str, tid: str, now: int) -> bool:
        with self._lock:
            bound = self._bindings.get(username)
            if bound is not None:
                return bound == tid
            if tid in self._bindings.values():
                return False
            self._bindings[username] = tid
            self._announce()
            return True

    def bindings(self, username: str, tid: str) -> tuple[str | None, str | None]:
        with self._lock:
            return self._bindings.get(username), next((u for u, t in self._bindings.items() if t == tid), None)

    def add_enrollment(
        self,
        client_id: str,
        merchant_id: int,
        pos: str,
        tids: list[str],
        username: str,
        now: int,
        device_id: str | None = None,
    ) -> Enrollment:
        with self._lock:
            if client_id not in self._clients:
                raise Conflict(f"unknown client {client_id}")
            e = Enrollment(
                len(self._enrollments) + 1, client_id, merchant_id, pos, tuple(tids), username, now, device_id
            )
            self._enrollments.append(e)
            return e

    def list_enrollments(self) -> list[Enrollment]:
        with self._lock:
            return list(self._enrollments)

    # --- events ------------------------------------------------------------------------------------------
    def add_event(self, kind: str, client_id: str | None, detail: dict[str, Any], now: int) -> None:
        with self._lock:
            last = self._events[-1].id if self._events else 0
            self._events.append(SecurityEvent(last + 1, kind, client_id, _copy(detail), now))

    def list_events(self, limit: int = 1000, *, kind: str | None = None) -> list[SecurityEvent]:
        with self._lock:
            events = [e for e in self._events if kind is None or e.kind == kind]
            return events[-limit:] if limit > 0 else []

    # --- what the admin layer reads and changes (AdminQueries) ------------------------------------------
    def update_client_details(
        self,
        client_id: str,
        name: str,
        redirect_uris: tuple[str, ...],
        *,
        expected: tuple[str, tuple[str, ...]] | None = None,
    ) -> bool:
        with self._lock:
            client = self._clients.get(client_id)
            if client is None:
                return False
            if expected is not None and (client.name, client.redirect_uris) != (expected[0], tuple(expected[1])):
                raise Conflict(f"client {client_id} changed since it was read")
            self._clients[client_id] = replace(client, name=name, redirect_uris=tuple(redirect_uris))
            self._announce()
            return True

    def set_client_secret(
        self, client_id: str, secret_hash: str | None, previous_hash: str | None, previous_valid_until: int | None
    ) -> bool:
        with self._lock:
            client = self._clients.get(client_id)
            if client is None:
                return False
            self._clients[client_id] = replace(
                client,
                secret_hash=secret_hash,
                previous_secret_hash=previous_hash,
                previous_valid_until=previous_valid_until,
            )
            self._announce()
            return True

    def list_merchants(self) -> list[Merchant]:
        with self._lock:
            return [self._merchants[m] for m in sorted(self._merchants)]

    def terminals_of(self, merchant_id: int) -> list[Terminal]:
        with self._lock:
            mine = [t for t in self._terminals.values() if t.merchant_id == merchant_id]
        return sorted(mine, key=lambda t: (t.pos, t.tid))

    def users_of(self, merchant_id: int) -> list[MerchantUser]:
        with self._lock:
            mine = [u for u in self._users.values() if u.merchant_id == merchant_id]
        return sorted(mine, key=lambda u: u.username)

    def certificate_by_serial(self, serial: str) -> CertificateRecord | None:
        with self._lock:
            return self._certs.get(_serial(serial))

    def events_after(
        self,
        after_id: int,
        limit: int,
        *,
        kind: str | None = None,
        client_id: str | None = None,
        since: int | None = None,
    ) -> list[SecurityEvent]:
        with self._lock:
            out = [
                e
                for e in self._events
                if e.id > after_id
                and (kind is None or e.kind == kind)
                and (client_id is None or e.client_id == client_id)
                and (since is None or e.created_at >= since)
            ]
        return out[: max(0, limit)]

    # --- housekeeping ------------------------------------------------------------------------------------
    def purge(self, now: int, policy: PurgePolicy) -> dict[str, int]:
        """See ``ArtifactStore.purge`` (all at once: there is no writer to make way for)."""
        now = int(now)
        counts: dict[str, int] = {}
        with self._lock:
            live_families = (
                frozenset(
                    str(a.data.get("fam"))
                    for (kind, _), a in self._artifacts.items()
                    if kind == policy.token_kind and a.expires_at > now
                )
                if policy.token_kind
                else frozenset()
            )
            for (kind, key), a in list(self._artifacts.items()):
                if a.expires_at > now:
                    continue
                if (
                    kind in policy.replay_kinds
                    and a.consumed_at is not None
                    and a.expires_at > now - policy.replay_margin
                ):
                    continue
                if kind == policy.family_kind and (a.expires_at > now - policy.family_margin or key in live_families):
                    continue
                del self._artifacts[(kind, key)]
                counts[kind] = counts.get(kind, 0) + 1
            if policy.events_before is not None:
                before = int(policy.events_before)
                kept = [e for e in self._events if e.created_at >= before]
                if len(kept) < len(self._events):
                    counts["security_events"] = len(self._events) - len(kept)
                    self._events = kept
        return counts

    def purge_expired(self, now: int) -> int:
        return sum(self.purge(now, PurgePolicy()).values())

    def ping(self) -> None:
        """Always there."""

    def close(self) -> None:
        """Nothing to release."""

    # --- developer accounts (the portal) -----------------------------------------------------------------
    def create_developer(self, dev: Developer) -> None:
        email = dev.email.lower()
        with self._lock:
            if email in self._developers or dev.org_id not in self._orgs:
                raise Conflict(f"developer {email} exists, or organisation {dev.org_id} is unknown")
            self._developers[email] = replace(dev, email=email)

    def get_developer(self, email: str) -> Developer | None:
        return self._developers.get(email.lower())

    def list_developers(self, org_id: str) -> list[Developer]:
        with self._lock:
            return sorted((d for d in self._developers.values() if d.org_id == org_id), key=lambda d: d.created_at)

    def activate_developer(self, email: str, password_hash: str, totp_sealed: str, totp_step: int) -> bool:
        with self._lock:
            dev = self._developers.get(email.lower())
            if dev is None or dev.status != "invited":
                return False
            self._developers[dev.email] = replace(
                dev, status="active", password_hash=password_hash, totp_sealed=totp_sealed, totp_last_step=totp_step
            )
            return True

    def set_developer_status(self, email: str, status: str) -> bool:
        with self._lock:
            dev = self._developers.get(email.lower())
            if dev is None:
                return False
            self._developers[dev.email] = replace(dev, status=status)
            return True

    def use_totp_step(self, email: str, step: int) -> bool:
        with self._lock:
            dev = self._developers.get(email.lower())
            if dev is None or step <= dev.totp_last_step:
                return False
            self._developers[dev.email] = replace(dev, totp_last_step=step)
            return True

    # --- the merchant side of the portal --------------------------------------------------------------------
    def withdraw_grant(self, merchant_id: int, client_id: str) -> bool:
        with self._lock:
            if (merchant_id, client_id) not in self._grants:
                return False
            self._grants.discard((merchant_id, client_id))
            self._grant_times.pop((merchant_id, client_id), None)
            self._announce()
            return True

    def _grant_list(self, pairs: list[tuple[int, str]]) -> list[Grant]:
        grants = [Grant(m, c, self._grant_times.get((m, c), 0)) for m, c in pairs]
        return sorted(grants, key=lambda g: (g.created_at, g.merchant_id, g.client_id))

    def grants_of(self, merchant_id: int) -> list[Grant]:
        with self._lock:
            return self._grant_list([g for g in self._grants if g[0] == merchant_id])

    def grants_to(self, client_id: str) -> list[Grant]:
        with self._lock:
            return self._grant_list([g for g in self._grants if g[1] == client_id])

    def set_user_password(self, username: str, password_hash: str) -> bool:
        with self._lock:
            user = self._users.get(username)
            if user is None:
                return False
            self._users[username] = replace(user, password_hash=password_hash)
            self._announce()
            return True

    def touch_api_key(self, merchant_id: int, key_id: int, now: int) -> None:
        with self._lock:
            key = self._api_keys.get((merchant_id, key_id))
            if key is not None and (key.last_used_at or 0) < now:
                self._api_keys[(merchant_id, key_id)] = replace(key, last_used_at=int(now))
