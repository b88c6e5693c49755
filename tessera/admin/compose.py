"""An ``Admin`` over a tessera home (the CLI's way in): the home's store, CA and KEK check.

Kept apart from the use cases: it is the one admin module that knows the SQL store."""

from __future__ import annotations

from tessera.admin.context import Admin
from tessera.admin.errors import NoHome
from tessera.config import Settings
from tessera.home import check_kek, load_ca, open_store


def require_home(settings: Settings) -> None:
    if not settings.config_path.exists():
        raise NoHome(f"no tessera home at {settings.home} (run `tessera init` first, or pass --home)")


def open_admin(settings: Settings) -> Admin:
    """``NoHome`` if there is no home; ``ConfigError`` if its database cannot be opened.
    The caller closes ``admin.store``."""
    require_home(settings)
    store = open_store(settings)
    return Admin(
        store=store, settings=settings, ca=lambda: load_ca(settings), check_kek=lambda: check_kek(settings, store)
    )
