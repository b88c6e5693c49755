"""What the admin layer reads and changes besides the other ports, in SQL (``AdminQueries``)."""

from __future__ import annotations

from sqlalchemy import select, update

from tessera.core.models import CertificateRecord, Merchant, MerchantUser, SecurityEvent, Terminal
from tessera.core.ports import Conflict
from tessera.storage import schema as t
from tessera.storage.sql.database import Database


def normal_serial(serial: str) -> str:
    return serial.lower().removeprefix("0x").lstrip("0") or "0"


class AdminRepo:
    """Client details and secrets (announced: workers cache clients), and the listings."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def update_client_details(
        self,
        client_id: str,
        name: str,
        redirect_uris: tuple[str, ...],
        *,
        expected: tuple[str, tuple[str, ...]] | None = None,
    ) -> bool:
        with self.db.write() as c:  # SQLite: BEGIN IMMEDIATE; PostgreSQL: the row locked below
            if expected is not None:
                query = select(t.clients.c.name, t.clients.c.redirect_uris).where(t.clients.c.client_id == client_id)
                row = c.execute(query if self.db.is_sqlite else query.with_for_update()).first()
                if row is None:
                    return False
                if (row[0], tuple(row[1] or ())) != (expected[0], tuple(expected[1])):
                    raise Conflict(f"client {client_id} changed since it was read")
            res = c.execute(
                update(t.clients)
                .where(t.clients.c.client_id == client_id)
                .values(name=name, redirect_uris=list(redirect_uris))
            )
        return res.rowcount == 1

    def set_client_secret(
        self, client_id: str, secret_hash: str | None, previous_hash: str | None, previous_valid_until: int | None
    ) -> bool:
        with self.db.write() as c:
            res = c.execute(
                update(t.clients)
                .where(t.clients.c.client_id == client_id)
                .values(
                    secret_hash=secret_hash,
                    previous_secret_hash=previous_hash,
                    previous_valid_until=previous_valid_until,
                )
            )
        return res.rowcount == 1

    def list_merchants(self) -> list[Merchant]:
        with self.db.read() as c:
            rows = c.execute(select(t.merchants).order_by(t.merchants.c.merchant_id)).mappings().all()
        return [Merchant(**r) for r in rows]

    def terminals_of(self, merchant_id: int) -> list[Terminal]:
        with self.db.read() as c:
            rows = (
                c.execute(
                    select(t.terminals)
                    .where(t.terminals.c.merchant_id == merchant_id)
                    .order_by(t.terminals.c.pos, t.terminals.c.tid)
                )
                .mappings()
                .all()
            )
        return [Terminal(**r) for r in rows]

    def users_of(self, merchant_id: int) -> list[MerchantUser]:
        u = t.merchant_users.c
        with self.db.read() as c:
            rows = (
                c.execute(
                    select(u.username, u.merchant_id, u.password_hash)
                    .where(u.merchant_id == merchant_id)
                    .order_by(u.username)
                )
                .mappings()
                .all()
            )
        return [MerchantUser(**r) for r in rows]

    def certificate_by_serial(self, serial: str) -> CertificateRecord | None:
        with self.db.read() as c:
            row = (
                c.execute(select(t.certificates).where(t.certificates.c.serial == normal_serial(serial)))
                .mappings()
                .first()
            )
        return CertificateRecord(**row) if row else None

    def events_after(
        self,
        after_id: int,
        limit: int,
        *,
        kind: str | None = None,
        client_id: str | None = None,
        since: int | None = None,
    ) -> list[SecurityEvent]:
        e = t.security_events.c
        query = select(t.security_events).where(e.id > after_id).order_by(e.id).limit(limit)
        if kind is not None:
            query = query.where(e.kind == kind)
        if client_id is not None:
            query = query.where(e.client_id == client_id)
        if since is not None:
            query = query.where(e.created_at >= since)
        with self.db.read() as c:
            rows = c.execute(query).mappings().all()
        return [SecurityEvent(**r) for r in rows]
