"""Registered clients in SQL (the ``ClientDirectory`` port)."""

from __future__ import annotations

from sqlalchemy import RowMapping, insert, select, update
from sqlalchemy.exc import IntegrityError

from tessera.core.models import Client
from tessera.core.ports import Conflict
from tessera.storage import schema as t
from tessera.storage.sql.database import Database


class ClientRepo:
    """Clients: every write announced (workers cache them)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create_client(self, client: Client) -> None:
        with self.db.write() as c:
            try:
                c.execute(
                    insert(t.clients).values(
                        client_id=client.client_id,
                        name=client.name,
                        secret_hash=client.secret_hash,
                        redirect_uris=list(client.redirect_uris),
                        scope=client.scope,
                        auth_methods=list(client.auth_methods),
                        grant_types=list(client.grant_types),
                        require_par=client.require_par,
                        jwks=client.jwks,
                        status=client.status,
                        created_at=client.created_at,
                        org_id=client.org_id,
                    )
                )
            except IntegrityError as e:
                raise Conflict(f"client {client.client_id} exists or organisation {client.org_id} is unknown") from e

    def get_client(self, client_id: str) -> Client | None:
        with self.db.read() as c:
            row = c.execute(select(t.clients).where(t.clients.c.client_id == client_id)).mappings().first()
        return client_from_row(row) if row else None

    def list_clients(self) -> list[Client]:
        with self.db.read() as c:
            rows = c.execute(select(t.clients).order_by(t.clients.c.created_at)).mappings().all()
        return [client_from_row(r) for r in rows]

    def set_client_status(self, client_id: str, status: str) -> bool:
        with self.db.write() as c:
            res = c.execute(update(t.clients).where(t.clients.c.client_id == client_id).values(status=status))
        return res.rowcount == 1


def client_from_row(row: RowMapping) -> Client:
    return Client(
        client_id=row["client_id"],
        name=row["name"],
        secret_hash=row["secret_hash"],
        redirect_uris=tuple(row["redirect_uris"] or ()),
        scope=row["scope"],
        auth_methods=tuple(row["auth_methods"] or ()),
        grant_types=tuple(row["grant_types"] or ()),
        require_par=bool(row["require_par"]),
        jwks=row["jwks"],
        status=row["status"],
        created_at=row["created_at"],
        org_id=row["org_id"],
        previous_secret_hash=row.get("previous_secret_hash"),
        previous_valid_until=row.get("previous_valid_until"),
    )
