"""What every command shares: the ``--home`` and ``--json`` options, the two consoles, one-line
errors, the JSON output, and the ``Admin`` over the chosen home."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:  # imported where used: a command that needs no home loads none of them
    from tessera.admin import Admin, AdminError
    from tessera.config import Settings

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

HomeOpt = Annotated[Path | None, typer.Option("--home", help="tessera home (default $TESSERA_HOME, else ./.tessera)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]

_global_home: dict[str, Path | None] = {"home": None}

#: How the admin layer's field names read on the command line.
FLAGS = {
    "auth_methods": "--auth-method",
    "grant_types": "--grant-type",
    "redirect_uris": "--redirect-uri",
    "jwks": "--jwks",
    "kind": "--kind",
    "username": "--username",
    "password": "the password",
    "use": "--use",
    "limit": "--limit",
    "name": "--name",
    "org_id": "--org",
    "validity_days": "--validity-days",
}


def set_global_home(home: Path | None) -> None:
    _global_home["home"] = home


def global_home() -> Path | None:
    return _global_home["home"]


def settings(home: Path | None, **overrides: Any) -> Settings:
    from tessera.config import Settings

    return Settings.load(home or _global_home["home"], **overrides)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def describe(e: AdminError) -> str:
    """An admin error in the CLI's words: its field named by the flag that gave it."""
    if e.field is None:
        return e.message
    flag = FLAGS.get(e.field, e.field)
    return f"{flag} {e.message}" if e.message.startswith("must") else f"{flag}: {e.message}"


def fail_admin(e: AdminError, *, hint: str = "") -> NoReturn:
    fail(describe(e) + hint)


def emit(as_json: bool, data: dict[str, Any], human: str | None = None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
    else:
        out.print(human if human is not None else "\n".join(f"{k}: {v}" for k, v in data.items()))


def require(s: Settings) -> None:
    from tessera.admin.compose import require_home
    from tessera.admin.errors import AdminError

    try:
        require_home(s)
    except AdminError as e:
        fail_admin(e)


@contextmanager
def admin(home: Path | None) -> Iterator[Admin]:
    """The ``Admin`` over the home; its store closed on the way out; an ``AdminError`` raised
    inside becomes a one-line error (exit 1)."""
    from tessera.admin.compose import open_admin
    from tessera.admin.errors import AdminError

    s = settings(home)
    try:
        a = open_admin(s)
    except AdminError as e:
        fail_admin(e)
    try:
        yield a
    except AdminError as e:
        fail_admin(e)
    finally:
        a.store.close()
