"""Merchants, terminals, users and grants in SQL (the ``MerchantDirectory`` port)."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from tessera.core.models import Merchant, MerchantUser, Terminal
from tessera.core.ports import Conflict
from tessera.storage import schema as t
from tessera.storage.sql.database import Database


class MerchantRepo:
    """Merchants and what hangs from them; the writes of what workers cache are announced."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create_merchant(self, merchant: Merchant) -> None:
        with self.db.write() as c:
            try:
                c.execute(insert(t.merchants).values(**merchant.__dict__))
            except IntegrityError as e:
                raise Conflict(f"merchant {merchant.merchant_id} or VAT {merchant.vat} exists") from e

    def get_merchant(self, merchant_id: int) -> Merchant | None:
        with self.db.read() as c:
            row = c.execute(select(t.merchants).where(t.merchants.c.merchant_id == merchant_id)).mappings().first()
        return Merchant(**row) if row else None

    def get_merchant_by_vat(self, vat: str) -> Merchant | None:
        with self.db.read() as c:
            row = c.execute(select(t.merchants).where(t.merchants.c.vat == vat)).mappings().first()
        return Merchant(**row) if row else None

    def add_terminal(self, terminal: Terminal) -> None:
        with self.db.write() as c:
            try:
                c.execute(insert(t.terminals).values(**terminal.__dict__))
            except IntegrityError as e:
                raise Conflict(f"terminal {terminal.tid} exists, or merchant {terminal.merchant_id} is unknown") from e

    def terminals_at(self, pos: str) -> list[Terminal]:
        with self.db.read() as c:
            rows = c.execute(select(t.terminals).where(t.terminals.c.pos == pos)).mappings().all()
        return [Terminal(**r) for r in rows]

    def add_user(self, user: MerchantUser) -> None:
        with self.db.write() as c:
            try:
                c.execute(insert(t.merchant_users).values(**user.__dict__, created_at=0))
            except IntegrityError as e:
                raise Conflict(f"user {user.username} exists, or merchant {user.merchant_id} is unknown") from e

    def get_user(self, username: str) -> MerchantUser | None:
        with self.db.read() as c:
            row = (
                c.execute(
                    select(
                        t.merchant_users.c.username, t.merchant_users.c.merchant_id, t.merchant_users.c.password_hash
                    ).where(t.merchant_users.c.username == username)
                )
                .mappings()
                .first()
            )
        return MerchantUser(**row) if row else None

    def grant(self, merchant_id: int, client_id: str, now: int) -> None:
        with self.db.write() as c:
            exists = c.execute(
                select(t.merchant_grants.c.client_id).where(
                    t.merchant_grants.c.merchant_id == merchant_id, t.merchant_grants.c.client_id == client_id
                )
            ).first()
            if exists:
                return
            try:
                c.execute(
                    insert(t.merchant_grants).values(merchant_id=merchant_id, client_id=client_id, created_at=now)
                )
            except IntegrityError as e:
                raise Conflict(f"unknown merchant {merchant_id} or client {client_id}") from e

    def is_granted(self, merchant_id: int, client_id: str) -> bool:
        with self.db.read() as c:
            return (
                c.execute(
                    select(t.merchant_grants.c.client_id).where(
                        t.merchant_grants.c.merchant_id == merchant_id, t.merchant_grants.c.client_id == client_id
                    )
                ).first()
                is not None
            )
