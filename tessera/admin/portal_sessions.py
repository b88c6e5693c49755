"""The portal's server-side sessions: revocable, expiring, each with its CSRF token.

A session is a ``portal_session`` artefact keyed by the SHA-256 of the cookie's value (the
value itself is stored nowhere), holding who signed in (a developer of an organisation or a
merchant user), the synchroniser token that every form of the session must carry, and its
expiry (``portal_session_seconds`` after sign-in). Signing out consumes it; a session whose
developer was disabled, or whose merchant user is gone, is no session."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from tessera.admin.context import Admin
from tessera.admin.developers import PORTAL
from tessera.core.kinds import Kind
from tessera.core.models import Artifact
from tessera.core.secrets import sha256_key

SESSION_KIND = Kind.PORTAL_SESSION.value


@dataclass(frozen=True)
class PortalSession:
    """``role`` is ``developer`` (with ``org_id``) or ``merchant`` (with ``merchant_id``)."""

    sid: str
    role: str
    email: str
    csrf: str
    expires_at: int
    org_id: str | None = None
    merchant_id: int | None = None

    @property
    def actor(self) -> str:
        """The ``Admin.actor`` of this session's changes (the security events name it)."""
        return f"portal:{self.role}:{self.email}"

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), (token or "").encode())


def open_session(
    admin: Admin, role: str, email: str, *, org_id: str | None = None, merchant_id: int | None = None
) -> PortalSession:
    sid = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires_at = admin.now() + admin.settings.portal_session_seconds
    data = {"role": role, "email": email, "csrf": csrf, "org_id": org_id, "merchant_id": merchant_id}
    admin.store.put_artifact(Artifact(SESSION_KIND, sha256_key(sid), PORTAL, data, expires_at))
    admin.store.add_event("admin_change", f"portal:{role}:{email}", {"op": "portal.sign_in"}, admin.now())
    return PortalSession(sid, role, email, csrf, expires_at, org_id, merchant_id)


def find_session(admin: Admin, sid: str | None) -> PortalSession | None:
    """The live session of the cookie ``sid``, or None (unknown, signed out, expired, or its
    account disabled)."""
    if not sid or len(sid) > 100:
        return None
    art = admin.store.get_artifact(SESSION_KIND, sha256_key(sid))
    if art is None or art.consumed_at is not None or art.expires_at <= admin.now():
        return None
    d = art.data
    email = str(d["email"])
    if d["role"] == "developer":
        dev = admin.store.get_developer(email)
        if dev is None or dev.status != "active":
            return None
    else:
        user = admin.store.get_user(email)
        if user is None or user.merchant_id != d["merchant_id"]:
            return None
    merchant_id = d.get("merchant_id")
    return PortalSession(
        sid,
        str(d["role"]),
        email,
        str(d["csrf"]),
        art.expires_at,
        d.get("org_id"),
        int(merchant_id) if merchant_id is not None else None,
    )


def close_session(admin: Admin, session: PortalSession) -> None:
    """Sign out: the session is spent at once."""
    admin.store.consume(SESSION_KIND, sha256_key(session.sid), admin.now())
    admin.store.add_event("admin_change", session.actor, {"op": "portal.sign_out"}, admin.now())
