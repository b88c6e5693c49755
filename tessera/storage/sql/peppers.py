"""Stored credential hashes and the pepper they are under (the ``RehashesSecrets`` capability):
the conditional re-hash on use, and the list that ``tessera pepper status`` counts."""

from __future__ import annotations

from sqlalchemy import select, update

from tessera.storage import schema as t
from tessera.storage.sql.database import Database


class PepperRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def rehash_client_secret(self, client_id: str, old: str, new: str) -> bool:
        """Replace the client's secret hash by ``new`` if it is still ``old`` (announced: workers cache clients)."""
        with self.db.write() as c:
            res = c.execute(
                update(t.clients)
                .where(t.clients.c.client_id == client_id, t.clients.c.secret_hash == old)
                .values(secret_hash=new)
            )
        return bool(res.rowcount)

    def rehash_api_key(self, merchant_id: int, key_id: int, old: str, new: str) -> bool:
        with self.db.write() as c:
            res = c.execute(
                update(t.api_keys)
                .where(
                    t.api_keys.c.merchant_id == merchant_id, t.api_keys.c.key_id == key_id, t.api_keys.c.key_hash == old
                )
                .values(key_hash=new)
            )
        return bool(res.rowcount)

    def credential_hashes(self) -> dict[str, list[str]]:
        """Every stored credential hash, by kind (client secrets, B2BINPAY passwords included, and axept keys)."""
        with self.db.read() as c:
            clients = [
                r[0] for r in c.execute(select(t.clients.c.secret_hash).where(t.clients.c.secret_hash.is_not(None)))
            ]
            keys = [r[0] for r in c.execute(select(t.api_keys.c.key_hash))]
        return {"client_secrets": clients, "api_keys": keys}
