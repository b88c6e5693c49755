"""Databases already at the migrations' head, for the tests that are not about migrating.

Alembic's upgrade of an empty database costs about 85 ms on SQLite (seven migrations, SQLite's
batch table copies among them) and more on PostgreSQL, and the store, admin and core tests made
several hundred of them. Each pytest process migrates one template per backend, once, and copies
it for each test: the SQLite file byte for byte, the PostgreSQL database with
``CREATE DATABASE … TEMPLATE``. What a test then gets is what ``upgrade`` would have left.

Migrating itself is tested where it is the subject: tests/storage/test_migrations.py (head twice,
down to base and up again, no autogenerate difference from the models), and every ``tessera
init``, home and live server the other tests make.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from tessera.storage.migrate import upgrade
from tessera.storage.sql import SQLStore

if TYPE_CHECKING:
    from tests.support.postgres import PostgresServer

_lock = threading.Lock()
_sqlite_template: Path | None = None


def _migrate(url: str) -> None:
    store = SQLStore(url)
    try:
        upgrade(store.engine)
    finally:
        store.close()


def sqlite_url(path: Path) -> str:
    """A SQLite database at ``path`` (which must not exist) at the head, and its URL."""
    global _sqlite_template
    with _lock:
        if _sqlite_template is None:
            folder = Path(tempfile.mkdtemp(prefix="tessera-migrated-"))
            atexit.register(shutil.rmtree, folder, True)
            _migrate(f"sqlite:///{folder / 'head.db'}")
            _sqlite_template = folder / "head.db"
        if path.exists():
            raise FileExistsError(path)
        shutil.copyfile(_sqlite_template, path)
    return f"sqlite:///{path}"


def postgres_url(server: PostgresServer, name: str) -> str:
    """A new database ``name`` on the test PostgreSQL ``server``, at the head, and its URL; the
    caller drops it (``server.drop_database(name)``)."""
    with _lock:
        template = server.migrated_template
        if template is None:
            template = f"head_{uuid.uuid4().hex[:12]}"
            _migrate(server.create_database(template))
            server.migrated_template = template
    return server.create_database(name, template=template)
