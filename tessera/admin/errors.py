"""The admin layer's typed errors. Each names what went wrong in one sentence that holds no
secret; the CLI prints it on one line, the admin API maps ``code`` to its status."""

from __future__ import annotations

from typing import ClassVar


class AdminError(Exception):
    """An operator request that cannot be carried out. ``code`` is stable (``not_found``,
    ``conflict``, ``invalid``, ``confirmation_required``); ``field`` names the input at fault
    when there is one, and ``message`` then describes it without naming it."""

    code: ClassVar[str] = "admin_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class NotFound(AdminError):
    """The client, merchant, certificate or key named does not exist."""

    code = "not_found"


class Conflict(AdminError):
    """The change collides with what exists: a duplicate id, a TID already bound, a point of
    sale of another merchant, more enabled keys than allowed."""

    code = "conflict"


class Invalid(AdminError):
    """An input is malformed or out of its allowed set (``field`` names it)."""

    code = "invalid"


class ConfirmationRequired(AdminError):
    """The change is allowed but harmful (disabling a merchant's last enabled key): repeat it
    with the explicit confirmation."""

    code = "confirmation_required"


class NoHome(AdminError):
    """There is no tessera home (``tessera init`` was not run there)."""

    code = "no_home"


class Stale(AdminError):
    """The resource changed since the caller read it (the admin API's ``If-Match``): read it again."""

    code = "stale"
