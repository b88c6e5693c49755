"""Run Alembic migrations programmatically (``tessera init`` and ``tessera serve`` call this).

Alembic is imported only when a migration has to run (or its API is asked for): on an
up-to-date database ``upgrade`` reads the database's revision with one plain query and
compares it with the head read from the migration files themselves (``file_head``), which a
test keeps equal to Alembic's own head. Every other case (no database yet, an older or a
newer revision, files this reader cannot follow) goes through Alembic exactly as before."""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
#: Alembic's version table (its default name; env.py keeps the default).
VERSION_TABLE = "alembic_version"


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


#: PostgreSQL advisory lock key serialising instances that migrate one database at once.
LOCK_KEY = 0x7465737365726100


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision``; safe to call on an up-to-date database, and from
    several processes at once (PostgreSQL: an advisory lock; SQLite: the write lock).

    An up-to-date database costs one read, takes no write lock and loads no Alembic, so CLI
    commands that open the store do not queue behind each other and start quickly."""
    if revision == "head":
        head = file_head()
        if head is not None and stored_revision(engine) == head:
            return
    from alembic import command

    cfg = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({LOCK_KEY})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    """Alembic's reading of the database's revision (``None``: not yet migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def stored_revision(engine: Engine) -> str | None:
    """The one revision in the database's version table, read without Alembic; ``None`` when
    there is no table, no row, or more than one row (Alembic then decides)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    return rows[0] if len(rows) == 1 else None


@lru_cache(maxsize=1)
def head_revision() -> str:
    """Alembic's head revision (its ``ScriptDirectory``)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package ships its migrations
        raise LookupError("no migration head")
    return head


@lru_cache(maxsize=1)
def file_head() -> str | None:
    """The head revision read from the migration files (their one-line ``revision`` and
    ``down_revision`` assignments, parsed, not imported): the one revision no other revises.
    ``None`` when any file cannot be read so, or there is not exactly one head: the caller
    then asks Alembic."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        if path.name.startswith(("__init__", ".#")):
            continue
        try:
            values = _assignments(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            return None
        rev, down = values.get("revision"), values.get("down_revision", ...)
        if not isinstance(rev, str) or rev in revisions:
            return None
        revisions.add(rev)
        if isinstance(down, str):
            revised.add(down)
        elif isinstance(down, tuple | list) and all(isinstance(d, str) for d in down):
            revised.update(down)
        elif down is not None:
            return None
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 and revised <= revisions else None


#: A top-level ``revision = ...`` or ``down_revision = ...`` line (annotated or not).
_ASSIGNMENT = re.compile(r"^(?:revision|down_revision)\b[^=\n]*=[^\n]*$", re.MULTILINE)


def _assignments(source: str) -> dict[str, object]:
    """The literal values of a migration's top-level ``revision`` and ``down_revision``
    (each once, on one line; anything else raises ``ValueError`` or ``SyntaxError``)."""
    found: dict[str, object] = {}
    for node in ast.parse("\n".join(_ASSIGNMENT.findall(source))).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            raise ValueError("not a plain assignment")
        if not isinstance(target, ast.Name) or target.id in found:
            raise ValueError("assigned twice")
        found[target.id] = ast.literal_eval(value)
    return found
