"""``CompositeStore``: the short-lived artefact kinds on Redis, everything else on SQL.

Clients, certificates, keys, merchants, refresh tokens and their families, enrollments and
events stay in SQL, which must survive any restart; the kinds of ``RedisArtifacts.kinds``
(pushed requests, codes, assertion ``jti``\\ s, revoked-token marks) go to Redis.
Revocations (clients, certificates, API keys, server keys) and the other writes of what
workers cache (new clients and certificates, terminals, users, grants, username bindings)
are written to SQL first, then announced on Redis (``RevocationNotices``): the SQL database
announces every committed write of a cached table by itself, and its ``after_announce`` hook
publishes the Redis epoch, so no method here publishes on its own.

Every method of the ``Store`` is written out here: nothing is forwarded implicitly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

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
from tessera.core.ports import ArtifactStore, PurgePolicy, Rotation
from tessera.storage.redis_store.artifacts import RedisArtifacts
from tessera.storage.redis_store.client import connect
from tessera.storage.redis_store.epoch import RevocationNotices
from tessera.storage.sql import Database, SQLStore

if TYPE_CHECKING:
    import redis as redis_lib

    from tessera.config import Settings


def rotate_stepwise(
    store: ArtifactStore,
    kind: str,
    key: str,
    now: int,
    *,
    family_kind: str,
    family: str,
    successor: str,
    successor_expires_at: int,
) -> Rotation:
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


class CompositeStore:
    """The ``Store`` over a ``SQLStore`` and ``RedisArtifacts`` (see the module docstring).

    Capabilities: ``AnnouncesChanges`` (the Redis epoch, polled), ``AnnouncedKinds`` (the SQL
    store's, less the kinds on Redis), ``AsyncRotation`` (the SQL store's, for the kinds it
    holds), ``SQLBacked`` and ``RedisHandle``."""

    def __init__(self, sql: SQLStore, artifacts: RedisArtifacts, notices: RevocationNotices | None = None) -> None:
        self.sql = sql
        self.artifacts = artifacts
        self.notices = notices or RevocationNotices(artifacts.redis, f"{artifacts.prefix}revocation-epoch")
        # Every SQL commit that changed a cached table is announced on Redis too, whichever
        # store method made it (tessera.storage.sql.database.CACHED_TABLES).
        sql.database.after_announce(self.notices.publish)

    @classmethod
    def from_settings(cls, settings: Settings, sql: SQLStore) -> CompositeStore:
        client = connect(settings.redis_url or "", timeout=settings.redis_timeout)
        artifacts = RedisArtifacts(client, prefix=settings.redis_prefix)
        notices = RevocationNotices(
            client, f"{settings.redis_prefix}revocation-epoch", poll_seconds=settings.revocation_poll_ms / 1000
        )
        return cls(sql, artifacts, notices)

    # --- capabilities -----------------------------------------------------------------------
    @property
    def revocation_notices(self) -> RevocationNotices:
        return self.notices

    @property
    def announced_kinds(self) -> frozenset[str]:
        return self.sql.announced_kinds - self.artifacts.kinds

    @property
    def database(self) -> Database:
        return self.sql.database

    @property
    def engine(self) -> Engine:
        return self.sql.engine

    @property
    def redis(self) -> redis_lib.Redis:
        return self.artifacts.redis

    def ping_redis(self) -> None:
        self.artifacts.ping()

    def _redis(self, kind: str) -> bool:
        return kind in self.artifacts.kinds

    def _for(self, kind: str) -> ArtifactStore | RedisArtifacts:
        return self.artifacts if kind in self.artifacts.kinds else self.sql

    # --- single-use artefacts -------------------------------------------------------------
    def put_artifact(self, artifact: Artifact) -> None:
        self._for(artifact.kind).put_artifact(artifact)

    def get_artifact(self, kind: str, key: str) -> Artifact | None:
        return self._for(kind).get_artifact(kind, key)

    def consume(self, kind: str, key: str, now: int) -> Artifact | None:
        return self._for(kind).consume(kind, key, now)

    def claim(self, kind: str, key: str, client_id: str, expires_at: int, now: int) -> bool:
        return self._for(kind).claim(kind, key, client_id, expires_at, now)

    def update_artifact_data(self, kind: str, key: str, data: dict[str, Any]) -> None:
        self._for(kind).update_artifact_data(kind, key, data)

    def artifact_keys(self, kind: str, now: int) -> frozenset[str]:
        return self._for(kind).artifact_keys(kind, now)

    def claim_and_put(self, kind: str, key: str, client_id: str, expires_at: int, now: int, artifact: Artifact) -> bool:
        if not self._redis(kind) and not self._redis(artifact.kind):
            return self.sql.claim_and_put(kind, key, client_id, expires_at, now, artifact)
        # Apart (Redis, or Redis and SQL): the atomic claim first, then the put. Should the put
        # fail, the claim stays spent: the client sends a new assertion.
        if not self.claim(kind, key, client_id, expires_at, now):
            return False
        self.put_artifact(artifact)
        return True

    def rotate(
        self, kind: str, key: str, now: int, *, family_kind: str, family: str, successor: str, successor_expires_at: int
    ) -> Rotation:
        if not self._redis(kind) and not self._redis(family_kind):
            return self.sql.rotate(
                kind,
                key,
                now,
                family_kind=family_kind,
                family=family,
                successor=successor,
                successor_expires_at=successor_expires_at,
            )
        return rotate_stepwise(
            self,
            kind,
            key,
            now,
            family_kind=family_kind,
            family=family,
            successor=successor,
            successor_expires_at=successor_expires_at,
        )

    async def rotate_async(
        self, kind: str, key: str, now: int, *, family_kind: str, family: str, successor: str, successor_expires_at: int
    ) -> Rotation | None:
        """The SQL store's ``rotate_async`` for the kinds it holds; None (use ``rotate``) else."""
        if self._redis(kind) or self._redis(family_kind):
            return None
        return await self.sql.rotate_async(
            kind,
            key,
            now,
            family_kind=family_kind,
            family=family,
            successor=successor,
            successor_expires_at=successor_expires_at,
        )

    # --- housekeeping ---------------------------------------------------------------------------
    def purge(self, now: int, policy: PurgePolicy) -> dict[str, int]:
        return self.sql.purge(now, policy)  # Redis expires its keys itself

    def purge_expired(self, now: int) -> int:
        return self.sql.purge_expired(now)

    def ping(self) -> None:
        self.sql.ping()
        self.artifacts.ping()

    def close(self) -> None:
        try:
            self.artifacts.close()
        finally:
            self.sql.close()

    # --- what workers cache: SQL, announced on Redis by the database's after_announce hook--------
    def create_client(self, client: Client) -> None:
        self.sql.create_client(client)

    def set_client_status(self, client_id: str, status: str) -> bool:
        return self.sql.set_client_status(client_id, status)

    def add_certificate(self, cert: CertificateRecord) -> None:
        self.sql.add_certificate(cert)

    def revoke_certificate(self, serial: str, now: int) -> CertificateRecord | None:
        return self.sql.revoke_certificate(serial, now)

    def save_server_keys(self, keys: list[StoredKey]) -> None:
        self.sql.save_server_keys(keys)

    def add_terminal(self, terminal: Terminal) -> None:
        self.sql.add_terminal(terminal)

    def add_user(self, user: MerchantUser) -> None:
        self.sql.add_user(user)

    def grant(self, merchant_id: int, client_id: str, now: int) -> None:
        self.sql.grant(merchant_id, client_id, now)

    def set_api_key_enabled(
        self, merchant_id: int, key_id: int, enabled: bool, now: int, *, max_enabled: int
    ) -> ApiKey:
        return self.sql.set_api_key_enabled(merchant_id, key_id, enabled, now, max_enabled=max_enabled)

    def bind_username(self, username: str, tid: str, now: int) -> bool:
        return self.sql.bind_username(username, tid, now)

    # --- the rest: the SQL store's own ---------------------------------------------------------------
    def get_client(self, client_id: str) -> Client | None:
        return self.sql.get_client(client_id)

    def list_clients(self) -> list[Client]:
        return self.sql.list_clients()

    def create_organisation(self, org: Organisation) -> None:
        self.sql.create_organisation(org)

    def get_organisation(self, org_id: str) -> Organisation | None:
        return self.sql.get_organisation(org_id)

    def list_organisations(self) -> list[Organisation]:
        return self.sql.list_organisations()

    def clients_of(self, org_id: str) -> list[Client]:
        return self.sql.clients_of(org_id)

    # --- RehashesSecrets (pepper rotation): the SQL store's ---------------------------------------
    def rehash_client_secret(self, client_id: str, old: str, new: str) -> bool:
        return self.sql.rehash_client_secret(client_id, old, new)

    def rehash_api_key(self, merchant_id: int, key_id: int, old: str, new: str) -> bool:
        return self.sql.rehash_api_key(merchant_id, key_id, old, new)

    def credential_hashes(self) -> dict[str, list[str]]:
        return self.sql.credential_hashes()

    def get_certificate(self, thumbprint: str) -> CertificateRecord | None:
        return self.sql.get_certificate(thumbprint)

    def certificates_for_client(self, client_id: str) -> list[CertificateRecord]:
        return self.sql.certificates_for_client(client_id)

    def list_server_keys(self) -> list[StoredKey]:
        return self.sql.list_server_keys()

    def create_merchant(self, merchant: Merchant) -> None:
        self.sql.create_merchant(merchant)

    def get_merchant(self, merchant_id: int) -> Merchant | None:
        return self.sql.get_merchant(merchant_id)

    def get_merchant_by_vat(self, vat: str) -> Merchant | None:
        return self.sql.get_merchant_by_vat(vat)

    def terminals_at(self, pos: str) -> list[Terminal]:
        return self.sql.terminals_at(pos)

    def get_user(self, username: str) -> MerchantUser | None:
        return self.sql.get_user(username)

    def is_granted(self, merchant_id: int, client_id: str) -> bool:
        return self.sql.is_granted(merchant_id, client_id)

    def create_api_key(self, merchant_id: int, key_hash: str, now: int, *, max_enabled: int) -> ApiKey:
        return self.sql.create_api_key(merchant_id, key_hash, now, max_enabled=max_enabled)

    def get_api_key(self, merchant_id: int, key_id: int) -> ApiKey | None:
        return self.sql.get_api_key(merchant_id, key_id)

    def list_api_keys(self, merchant_id: int) -> list[ApiKey]:
        return self.sql.list_api_keys(merchant_id)

    def bindings(self, username: str, tid: str) -> tuple[str | None, str | None]:
        return self.sql.bindings(username, tid)

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
        return self.sql.add_enrollment(client_id, merchant_id, pos, tids, username, now, device_id)

    def list_enrollments(self) -> list[Enrollment]:
        return self.sql.list_enrollments()

    def add_event(self, kind: str, client_id: str | None, detail: dict[str, Any], now: int) -> None:
        self.sql.add_event(kind, client_id, detail, now)

    def list_events(self, limit: int = 1000, *, kind: str | None = None) -> list[SecurityEvent]:
        return self.sql.list_events(limit, kind=kind)

    # --- the admin layer's (AdminQueries): the client writes announced, the rest the SQL store's ------------
    def update_client_details(
        self,
        client_id: str,
        name: str,
        redirect_uris: tuple[str, ...],
        *,
        expected: tuple[str, tuple[str, ...]] | None = None,
    ) -> bool:
        return self.sql.update_client_details(client_id, name, redirect_uris, expected=expected)

    def set_client_secret(
        self, client_id: str, secret_hash: str | None, previous_hash: str | None, previous_valid_until: int | None
    ) -> bool:
        return self.sql.set_client_secret(client_id, secret_hash, previous_hash, previous_valid_until)

    def list_merchants(self) -> list[Merchant]:
        return self.sql.list_merchants()

    def terminals_of(self, merchant_id: int) -> list[Terminal]:
        return self.sql.terminals_of(merchant_id)

    def users_of(self, merchant_id: int) -> list[MerchantUser]:
        return self.sql.users_of(merchant_id)

    def certificate_by_serial(self, serial: str) -> CertificateRecord | None:
        return self.sql.certificate_by_serial(serial)

    def events_after(
        self,
        after_id: int,
        limit: int,
        *,
        kind: str | None = None,
        client_id: str | None = None,
        since: int | None = None,
    ) -> list[SecurityEvent]:
        return self.sql.events_after(after_id, limit, kind=kind, client_id=client_id, since=since)

    # --- the portal: developer accounts and the merchant side (the SQL store's; grants announced) ---------
    def create_developer(self, dev: Developer) -> None:
        self.sql.create_developer(dev)

    def get_developer(self, email: str) -> Developer | None:
        return self.sql.get_developer(email)

    def list_developers(self, org_id: str) -> list[Developer]:
        return self.sql.list_developers(org_id)

    def activate_developer(self, email: str, password_hash: str, totp_sealed: str, totp_step: int) -> bool:
        return self.sql.activate_developer(email, password_hash, totp_sealed, totp_step)

    def set_developer_status(self, email: str, status: str) -> bool:
        return self.sql.set_developer_status(email, status)

    def use_totp_step(self, email: str, step: int) -> bool:
        return self.sql.use_totp_step(email, step)

    def withdraw_grant(self, merchant_id: int, client_id: str) -> bool:
        return self.sql.withdraw_grant(merchant_id, client_id)

    def grants_of(self, merchant_id: int) -> list[Grant]:
        return self.sql.grants_of(merchant_id)

    def grants_to(self, client_id: str) -> list[Grant]:
        return self.sql.grants_to(client_id)

    def set_user_password(self, username: str, password_hash: str) -> bool:
        return self.sql.set_user_password(username, password_hash)

    def touch_api_key(self, merchant_id: int, key_id: int, now: int) -> None:
        self.sql.touch_api_key(merchant_id, key_id, now)
