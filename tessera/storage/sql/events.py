"""Security events in SQL (the ``EventLog`` port)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select

from tessera.core.models import SecurityEvent
from tessera.storage import schema as t
from tessera.storage.sql.database import Database


class EventRepo:
    """Security events, append-only (the purge deletes the old ones)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add_event(self, kind: str, client_id: str | None, detail: dict[str, Any], now: int) -> None:
        with self.db.write() as c:
            c.execute(insert(t.security_events).values(kind=kind, client_id=client_id, detail=detail, created_at=now))

    def list_events(self, limit: int = 1000, *, kind: str | None = None) -> list[SecurityEvent]:
        query = select(t.security_events).order_by(t.security_events.c.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(t.security_events.c.kind == kind)
        with self.db.read() as c:
            rows = c.execute(query).mappings().all()
        return [SecurityEvent(**r) for r in reversed(rows)]
