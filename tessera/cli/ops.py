"""``tessera backup`` and ``tessera restore``: the embedded (SQLite) database, online."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tessera.admin import AdminError
from tessera.admin import operations as dbops
from tessera.cli.common import HomeOpt, JsonOpt, emit, fail_admin, require, settings


def backup(
    file: Annotated[Path, typer.Argument(help="where to write the copy (a new file)", dir_okay=False)],
    force: Annotated[bool, typer.Option("--force", help="overwrite FILE if it exists")] = False,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy the SQLite database to FILE while the server runs (SQLite's online backup: one
    consistent snapshot), checked and owner-only. PostgreSQL: use pg_dump (docs/operations.md).
    Keep the KEK and the pepper with it: the copy is useless without them."""
    s = settings(home)
    require(s)
    try:
        result = dbops.backup(s, file, overwrite=force)
    except AdminError as e:
        fail_admin(e)
    emit(as_json, result.as_dict(), f"backed up {result.database} to {result.path} (migration {result.revision})")


def restore(
    file: Annotated[Path, typer.Argument(help="a backup made by `tessera backup`", exists=True, dir_okay=False)],
    force: Annotated[
        bool, typer.Option("--force", help="replace the database although a process (a server) has it open")
    ] = False,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replace the SQLite database with FILE: refused while a server has the database open
    (stop it first); FILE must be a tessera database this version knows, sealed under this
    home's KEK; it is upgraded to the current migration. The replaced database is kept beside
    it (<db>.replaced-<time>)."""
    s = settings(home)
    require(s)
    try:
        result = dbops.restore(s, file, force=force)
    except AdminError as e:
        fail_admin(e)
    emit(
        as_json,
        result.as_dict(),
        f"restored {file} into {result.database} (migration {result.revision_before} -> {result.revision})"
        + (f"; the previous database is kept as {result.replaced}" if result.replaced else ""),
    )
