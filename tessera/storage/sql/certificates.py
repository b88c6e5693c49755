"""Developer certificates in SQL (the ``CertificateDirectory`` port)."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from tessera.core.models import CertificateRecord
from tessera.core.ports import Conflict
from tessera.storage import schema as t
from tessera.storage.sql.database import Database


class CertificateRepo:
    """Certificates by thumbprint and serial: every write announced (workers cache them)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add_certificate(self, cert: CertificateRecord) -> None:
        with self.db.write() as c:
            try:
                c.execute(insert(t.certificates).values(**cert.__dict__))
            except IntegrityError as e:
                raise Conflict("certificate already recorded") from e

    def get_certificate(self, thumbprint: str) -> CertificateRecord | None:
        with self.db.read() as c:
            row = c.execute(select(t.certificates).where(t.certificates.c.thumbprint == thumbprint)).mappings().first()
        return CertificateRecord(**row) if row else None

    def certificates_for_client(self, client_id: str) -> list[CertificateRecord]:
        with self.db.read() as c:
            rows = (
                c.execute(
                    select(t.certificates)
                    .where(t.certificates.c.client_id == client_id)
                    .order_by(t.certificates.c.created_at)
                )
                .mappings()
                .all()
            )
        return [CertificateRecord(**r) for r in rows]

    def revoke_certificate(self, serial: str, now: int) -> CertificateRecord | None:
        serial = serial.lower().removeprefix("0x").lstrip("0") or "0"
        with self.db.write() as c:
            c.execute(
                update(t.certificates)
                .where(t.certificates.c.serial == serial, t.certificates.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            row = c.execute(select(t.certificates).where(t.certificates.c.serial == serial)).mappings().first()
        return CertificateRecord(**row) if row else None
