"""What the server recorded: SoftPOS enrollments and security events (read only)."""

from __future__ import annotations

from tessera.admin.context import ADMIN_CHANGE, Admin
from tessera.admin.errors import Invalid
from tessera.core.models import Enrollment, SecurityEvent

#: The kinds the server records today (``Core.event``); others may be added.
EVENT_KINDS = (
    ADMIN_CHANGE,
    "refresh_family_revoked",
    "jti_replayed",
    "revoked_certificate_used",
    "brute_force_lockout",
    "credential_failures_spread",
    "authorization_code_replayed",
)
MAX_EVENTS = 100_000


def list_enrollments(admin: Admin) -> list[Enrollment]:
    return admin.store.list_enrollments()


def list_events(admin: Admin, *, kind: str | None = None, limit: int = 100) -> list[SecurityEvent]:
    """The latest ``limit`` events (of ``kind``, if given), oldest first."""
    if not 1 <= limit <= MAX_EVENTS:
        raise Invalid(f"must be between 1 and {MAX_EVENTS}", field="limit")
    return admin.store.list_events(limit, kind=kind)
