"""SoftPOS enrollments and username bindings in SQL (the ``EnrollmentStore`` port)."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from tessera.core.models import Enrollment
from tessera.core.ports import Conflict
from tessera.storage import schema as t
from tessera.storage.sql.database import Database


class EnrollmentRepo:
    """Enrollments, and the binding of a merchant username to one TID (announced: workers cache it)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def bind_username(self, username: str, tid: str, now: int) -> bool:
        b = t.username_bindings
        with self.db.write() as c:
            row = c.execute(select(b.c.tid).where(b.c.username == username)).first()
            if row is not None:
                return bool(row[0] == tid)
            owner = c.execute(select(b.c.username).where(b.c.tid == tid)).first()
            if owner is not None:
                return False
            try:
                with c.begin_nested():
                    c.execute(insert(b).values(username=username, tid=tid, created_at=now))
            except IntegrityError:
                return False
        return True

    def bindings(self, username: str, tid: str) -> tuple[str | None, str | None]:
        b = t.username_bindings
        with self.db.read() as c:
            by_user = c.execute(select(b.c.tid).where(b.c.username == username)).scalar()
            by_tid = c.execute(select(b.c.username).where(b.c.tid == tid)).scalar()
        return by_user, by_tid

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
        with self.db.write() as c:
            try:
                res = c.execute(
                    insert(t.enrollments).values(
                        client_id=client_id,
                        merchant_id=merchant_id,
                        pos=pos,
                        tids=list(tids),
                        username=username,
                        created_at=now,
                        device_id=device_id,
                    )
                )
            except IntegrityError as e:
                raise Conflict(f"unknown client {client_id}") from e
            key = res.inserted_primary_key
            if key is None:  # pragma: no cover - an INSERT of one row always has its key
                raise RuntimeError("no id for the new enrollment")
            new_id = int(key[0])
        return Enrollment(new_id, client_id, merchant_id, pos, tuple(tids), username, now, device_id)

    def list_enrollments(self) -> list[Enrollment]:
        with self.db.read() as c:
            rows = c.execute(select(t.enrollments).order_by(t.enrollments.c.id)).mappings().all()
        return [
            Enrollment(
                r["id"],
                r["client_id"],
                r["merchant_id"],
                r["pos"],
                tuple(r["tids"]),
                r["username"],
                r["created_at"],
                r["device_id"],
            )
            for r in rows
        ]
