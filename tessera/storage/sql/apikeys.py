"""The axept API keys in SQL (the ``ApiKeyStore`` port)."""

from __future__ import annotations

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from tessera.core.models import ApiKey
from tessera.core.ports import Conflict
from tessera.storage import schema as t
from tessera.storage.sql.database import Database


class ApiKeyRepo:
    """API keys, at most ``max_enabled`` enabled per merchant (the writers serialised per merchant)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create_api_key(self, merchant_id: int, key_hash: str, now: int, *, max_enabled: int) -> ApiKey:
        k = t.api_keys
        with self.db.write() as c:  # the write lock (SQLite) / row locks (PostgreSQL) serialise creators
            if not self.db.is_sqlite:
                c.execute(
                    select(t.merchants.c.merchant_id).where(t.merchants.c.merchant_id == merchant_id).with_for_update()
                )
            enabled = (
                c.execute(
                    select(func.count()).select_from(k).where(k.c.merchant_id == merchant_id, k.c.enabled.is_(True))
                ).scalar()
                or 0
            )
            if enabled >= max_enabled:
                raise Conflict(f"merchant {merchant_id} already has {max_enabled} enabled keys; disable one first")
            next_id = (c.execute(select(func.max(k.c.key_id)).where(k.c.merchant_id == merchant_id)).scalar() or 0) + 1
            try:
                c.execute(
                    insert(k).values(
                        merchant_id=merchant_id, key_id=next_id, key_hash=key_hash, enabled=True, created_at=now
                    )
                )
            except IntegrityError as e:
                raise Conflict(f"unknown merchant {merchant_id}") from e
        return ApiKey(merchant_id, next_id, key_hash, True, now)

    def get_api_key(self, merchant_id: int, key_id: int) -> ApiKey | None:
        with self.db.read() as c:
            row = (
                c.execute(
                    select(t.api_keys).where(t.api_keys.c.merchant_id == merchant_id, t.api_keys.c.key_id == key_id)
                )
                .mappings()
                .first()
            )
        return ApiKey(**row) if row else None

    def list_api_keys(self, merchant_id: int) -> list[ApiKey]:
        with self.db.read() as c:
            rows = (
                c.execute(
                    select(t.api_keys).where(t.api_keys.c.merchant_id == merchant_id).order_by(t.api_keys.c.key_id)
                )
                .mappings()
                .all()
            )
        return [ApiKey(**r) for r in rows]

    def set_api_key_enabled(
        self, merchant_id: int, key_id: int, enabled: bool, now: int, *, max_enabled: int
    ) -> ApiKey:
        k = t.api_keys
        with self.db.write() as c:
            if not self.db.is_sqlite:
                c.execute(
                    select(t.merchants.c.merchant_id).where(t.merchants.c.merchant_id == merchant_id).with_for_update()
                )
            row = c.execute(select(k).where(k.c.merchant_id == merchant_id, k.c.key_id == key_id)).mappings().first()
            if row is None:
                raise Conflict(f"merchant {merchant_id} has no key {key_id}")
            if enabled and not row["enabled"]:
                count = (
                    c.execute(
                        select(func.count()).select_from(k).where(k.c.merchant_id == merchant_id, k.c.enabled.is_(True))
                    ).scalar()
                    or 0
                )
                if count >= max_enabled:
                    raise Conflict(f"merchant {merchant_id} already has {max_enabled} enabled keys; disable one first")
            c.execute(
                update(k)
                .where(k.c.merchant_id == merchant_id, k.c.key_id == key_id)
                .values(enabled=enabled, disabled_at=None if enabled else now)
            )
            row = c.execute(select(k).where(k.c.merchant_id == merchant_id, k.c.key_id == key_id)).mappings().one()
        return ApiKey(**row)
