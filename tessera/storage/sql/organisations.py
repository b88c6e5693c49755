"""Organisations in SQL (the ``OrganisationDirectory`` port)."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from tessera.core.models import Client, Organisation
from tessera.core.ports import Conflict
from tessera.storage import schema as t
from tessera.storage.sql.clients import client_from_row
from tessera.storage.sql.database import Database


class OrganisationRepo:
    """Organisations, and the clients each owns (read through ``clients.org_id``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create_organisation(self, org: Organisation) -> None:
        with self.db.write() as c:
            try:
                c.execute(insert(t.organisations).values(org_id=org.org_id, name=org.name, created_at=org.created_at))
            except IntegrityError as e:
                raise Conflict(f"organisation {org.org_id} exists") from e

    def get_organisation(self, org_id: str) -> Organisation | None:
        with self.db.read() as c:
            row = c.execute(select(t.organisations).where(t.organisations.c.org_id == org_id)).mappings().first()
        return Organisation(**row) if row else None

    def list_organisations(self) -> list[Organisation]:
        with self.db.read() as c:
            rows = c.execute(
                select(t.organisations).order_by(t.organisations.c.created_at, t.organisations.c.org_id)
            ).mappings()
            return [Organisation(**r) for r in rows]

    def clients_of(self, org_id: str) -> list[Client]:
        with self.db.read() as c:
            rows = (
                c.execute(select(t.clients).where(t.clients.c.org_id == org_id).order_by(t.clients.c.created_at))
                .mappings()
                .all()
            )
        return [client_from_row(r) for r in rows]
