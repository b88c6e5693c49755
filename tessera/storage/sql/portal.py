"""The portal's storage in SQL: developer accounts (the ``DeveloperDirectory`` port) and the
merchant side of the portal (``MerchantPortal``: grants withdrawn and listed, a user's password
set later, an axept key's last use)."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from tessera.core.models import Developer, Grant
from tessera.core.ports import Conflict
from tessera.storage import schema as t
from tessera.storage.sql.database import Database


class DeveloperRepo:
    """Developer accounts, by lower-case e-mail."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create_developer(self, dev: Developer) -> None:
        values = dict(dev.__dict__, email=dev.email.lower())
        with self.db.write() as c:
            try:
                c.execute(insert(t.developers).values(**values))
            except IntegrityError as e:
                raise Conflict(f"developer {values['email']} exists, or organisation {dev.org_id} is unknown") from e

    def get_developer(self, email: str) -> Developer | None:
        with self.db.read() as c:
            row = c.execute(select(t.developers).where(t.developers.c.email == email.lower())).mappings().first()
        return Developer(**row) if row else None

    def list_developers(self, org_id: str) -> list[Developer]:
        d = t.developers
        with self.db.read() as c:
            rows = c.execute(select(d).where(d.c.org_id == org_id).order_by(d.c.created_at, d.c.email)).mappings()
            return [Developer(**r) for r in rows]

    def activate_developer(self, email: str, password_hash: str, totp_sealed: str, totp_step: int) -> bool:
        d = t.developers
        with self.db.write() as c:
            done = c.execute(
                update(d)
                .where(d.c.email == email.lower(), d.c.status == "invited")
                .values(status="active", password_hash=password_hash, totp_sealed=totp_sealed, totp_last_step=totp_step)
            )
            return bool(done.rowcount)

    def set_developer_status(self, email: str, status: str) -> bool:
        d = t.developers
        with self.db.write() as c:
            return bool(c.execute(update(d).where(d.c.email == email.lower()).values(status=status)).rowcount)

    def use_totp_step(self, email: str, step: int) -> bool:
        d = t.developers
        with self.db.write() as c:  # one conditional UPDATE: exactly one caller wins a step
            done = c.execute(
                update(d).where(d.c.email == email.lower(), d.c.totp_last_step < step).values(totp_last_step=step)
            )
            return bool(done.rowcount)


class MerchantPortalRepo:
    """Grants withdrawn (announced) and listed, a user's password set, a key's last use."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def withdraw_grant(self, merchant_id: int, client_id: str) -> bool:
        g = t.merchant_grants
        with self.db.write() as c:
            done = c.execute(delete(g).where(g.c.merchant_id == merchant_id, g.c.client_id == client_id)).rowcount
            return bool(done)

    def _grants(self, *where: object) -> list[Grant]:
        g = t.merchant_grants
        with self.db.read() as c:
            rows = c.execute(select(g).where(*where).order_by(g.c.created_at, g.c.merchant_id, g.c.client_id))  # type: ignore[arg-type]
            return [Grant(int(r.merchant_id), r.client_id, int(r.created_at)) for r in rows]

    def grants_of(self, merchant_id: int) -> list[Grant]:
        return self._grants(t.merchant_grants.c.merchant_id == merchant_id)

    def grants_to(self, client_id: str) -> list[Grant]:
        return self._grants(t.merchant_grants.c.client_id == client_id)

    def set_user_password(self, username: str, password_hash: str) -> bool:
        u = t.merchant_users
        with self.db.write() as c:
            done = c.execute(update(u).where(u.c.username == username).values(password_hash=password_hash)).rowcount
            return bool(done)

    def touch_api_key(self, merchant_id: int, key_id: int, now: int) -> None:
        k = t.api_keys
        with self.db.write() as c:
            c.execute(
                update(k)
                .where(
                    k.c.merchant_id == merchant_id,
                    k.c.key_id == key_id,
                    (k.c.last_used_at.is_(None)) | (k.c.last_used_at < now),
                )
                .values(last_used_at=now)
            )
