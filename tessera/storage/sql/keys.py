"""The server keys in SQL (the ``KeyStore`` port)."""

from __future__ import annotations

from sqlalchemy import insert, select, update

from tessera.core.models import StoredKey
from tessera.storage import schema as t
from tessera.storage.sql.database import Database


class KeyRepo:
    """Server keys; a save is one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def list_server_keys(self) -> list[StoredKey]:
        with self.db.read() as c:
            rows = c.execute(select(t.server_keys).order_by(t.server_keys.c.created_at)).mappings().all()
        return [StoredKey(**r) for r in rows]

    def save_server_keys(self, keys: list[StoredKey]) -> None:
        with self.db.write() as c:
            for k in keys:
                values = dict(k.__dict__)
                res = c.execute(update(t.server_keys).where(t.server_keys.c.kid == k.kid).values(**values))
                if res.rowcount == 0:
                    c.execute(insert(t.server_keys).values(**values))
