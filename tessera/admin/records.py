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


def events_page(
    admin: Admin,
    *,
    after_id: int = 0,
    limit: int = 100,
    kind: str | None = None,
    client_id: str | None = None,
    since: int | None = None,
) -> list[SecurityEvent]:
    """Up to ``limit`` events with an id above ``after_id`` (a cursor: the last id of the previous
    page), oldest first, of ``kind`` / ``client_id`` / created at or after ``since`` where given."""
    if not 1 <= limit <= 1000:
        raise Invalid("must be between 1 and 1000", field="limit")
    if after_id < 0:
        raise Invalid("must not be negative", field="cursor")
    return admin.store.events_after(after_id, limit, kind=kind, client_id=client_id, since=since)
