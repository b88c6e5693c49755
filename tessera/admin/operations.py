"""The operator's kit for the embedded database: online backup and restore of SQLite.

Rules:

* ``backup`` copies the live database with SQLite's online backup API in one step, inside one
  read transaction: the copy is the database as it was at one commit, while the server keeps
  serving and writing (WAL mode: a reader blocks no writer). The copy is checked
  (``PRAGMA integrity_check``, a tessera schema at a known migration), written beside the
  target and renamed into place, owner-only (it holds sealed keys and credential hashes).
* ``restore`` refuses while a process has the database open (a running server) unless forced;
  checks that the file is a tessera database at a migration this version knows (a newer one is
  refused), that the home's KEK opens its keys (a backup belongs with its KEK and pepper); then
  upgrades it to the current migration on a copy, keeps the replaced database beside it
  (``<db>.replaced-<time>``) and moves the restored one into place, with no stale ``-wal``.
* PostgreSQL is backed up with ``pg_dump`` and restored with ``pg_restore`` (docs/operations.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory

from tessera.admin.errors import AdminError, Conflict, Invalid
from tessera.config import ConfigError, Settings
from tessera.storage.migrate import alembic_config, head_revision

#: Tables every tessera database has had since its first migration.
CORE_TABLES = frozenset({"clients", "certificates", "server_keys", "alembic_version"})
#: unix VFS: every connection to a WAL database holds a shared lock on this byte of ``-shm``
#: (the "dead man switch") for as long as it is open.
_SHM_DMS_BYTE = 128


class InUse(Conflict):
    """The database is open in another process (a running server)."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    bytes: int
    revision: str
    database: Path

    def as_dict(self) -> dict[str, object]:
        return {
            "backup": str(self.path),
            "bytes": self.bytes,
            "revision": self.revision,
            "database": str(self.database),
        }


@dataclass(frozen=True)
class RestoreResult:
    database: Path
    revision_before: str
    revision: str
    replaced: Path | None

    def as_dict(self) -> dict[str, object]:
        return {
            "database": str(self.database),
            "restored_revision": self.revision_before,
            "revision": self.revision,
            "replaced": str(self.replaced) if self.replaced else None,
        }


def sqlite_path(settings: Settings) -> Path:
    """The SQLite file of the home; ``Invalid`` for another backend (PostgreSQL: pg_dump)."""
    url = settings.database_url
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url[len(prefix) :] in ("", ":memory:"):
        raise Invalid(
            "the database is not an SQLite file: back up PostgreSQL with pg_dump and restore it with "
            "pg_restore (docs/operations.md)"
        )
    return Path(url[len(prefix) :])


def in_use(database: Path) -> bool:
    """Whether another process has the (WAL) database open: its connections hold a shared
    lock on the ``-shm`` file's dead-man-switch byte. Call it before this process opens the
    database (POSIX locks are per process)."""
    try:
        fd = os.open(f"{database}-shm", os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _SHM_DMS_BYTE)
    except OSError:
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, _SHM_DMS_BYTE)
        return False
    finally:
        os.close(fd)


def known_revisions() -> set[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


def check_tessera_database(path: Path) -> str:
    """The migration revision of the SQLite file at ``path``; ``Invalid`` unless it is an
    intact tessera database at a migration this version knows."""
    try:
        with open(path, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise Invalid(f"{path} is not an SQLite database")
    except OSError as e:
        raise Invalid(f"cannot read {path}: {e.strerror}") from None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()
        if integrity is None or integrity[0] != "ok":
            raise Invalid(f"{path} is damaged (integrity_check: {integrity[0] if integrity else 'no answer'})")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not CORE_TABLES <= tables:
            raise Invalid(f"{path} is not a tessera database (no {', '.join(sorted(CORE_TABLES - tables))})")
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as e:
        raise Invalid(f"{path} cannot be read as a database: {e}") from None
    finally:
        conn.close()
    if row is None:
        raise Invalid(f"{path} records no migration")
    revision = str(row[0])
    if revision not in known_revisions():
        raise Invalid(f"{path} is at migration {revision}, which this tessera does not know (made by a newer version?)")
    return revision


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup(settings: Settings, target: Path, *, overwrite: bool = False) -> BackupResult:
    database = sqlite_path(settings)
    if not database.exists():
        raise Invalid(f"no database at {database}")
    target = target.resolve()
    if target.exists() and not overwrite:
        raise Conflict(f"{target} exists; refusing to overwrite it")
    if target == database.resolve():
        raise Invalid("the backup cannot be the database itself")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        source = sqlite3.connect(str(database), timeout=30)
        dest = sqlite3.connect(str(partial))
        try:
            source.execute("PRAGMA busy_timeout=30000")
            # One step (pages=-1): the whole database read inside one read transaction.
            source.backup(dest, pages=-1)
            dest.execute("PRAGMA journal_mode=DELETE")
        finally:
            dest.close()
            source.close()
        revision = check_tessera_database(partial)
        with open(partial, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(partial, target)
        _fsync_dir(target.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return BackupResult(target, target.stat().st_size, revision, database)


def restore(settings: Settings, source: Path, *, force: bool = False, now: int | None = None) -> RestoreResult:
    """Replace the home's SQLite database with the backup ``source`` (see the module's rules)."""
    from sqlalchemy import create_engine

    from tessera.home import check_kek
    from tessera.storage.migrate import current_revision, upgrade
    from tessera.storage.sql import SQLStore

    database = sqlite_path(settings)
    if in_use(database) and not force:
        raise InUse(
            f"{database} is open in another process (a running tessera?): stop the server first, "
            "or pass --force to replace it under the running server"
        )
    revision_before = check_tessera_database(source)
    staged = database.with_name(f".{database.name}.restore-{os.getpid()}")
    for leftover in (staged, Path(f"{staged}-wal"), Path(f"{staged}-shm")):
        leftover.unlink(missing_ok=True)
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        dst = sqlite3.connect(str(staged))
        try:
            src.backup(dst, pages=-1)
        finally:
            dst.close()
            src.close()
        engine = create_engine(f"sqlite:///{staged}")
        try:
            upgrade(engine)
            revision = current_revision(engine) or ""
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA journal_mode=DELETE")
        finally:
            engine.dispose()
        store = SQLStore(f"sqlite:///{staged}")
        try:
            check_kek(settings, store)
        except ConfigError as e:
            raise Invalid(f"the backup does not belong with this home's KEK: {e}") from None
        finally:
            store.close()
        for extra in (Path(f"{staged}-wal"), Path(f"{staged}-shm"), Path(f"{staged}-notices")):
            extra.unlink(missing_ok=True)
        with open(staged, "rb+") as f:
            os.fsync(f.fileno())
        replaced = None
        if database.exists():
            # The restored file keeps the replaced one's owner (restore run as root for the service's user).
            st = database.stat()
            if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                os.chown(staged, st.st_uid, st.st_gid)
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
            replaced = database.with_name(f"{database.name}.replaced-{stamp}")
            os.replace(database, replaced)
        for stale in (Path(f"{database}-wal"), Path(f"{database}-shm")):
            # The old database's log must not be replayed into the restored one.
            with contextlib.suppress(FileNotFoundError):
                os.replace(stale, f"{replaced}{stale.name[len(database.name) :]}") if replaced else stale.unlink()
        os.replace(staged, database)
        _fsync_dir(database.parent)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    if revision != head_revision():  # pragma: no cover - upgrade() brings it to head
        raise AdminError(f"the restored database is at {revision}, not {head_revision()}")
    return RestoreResult(database, revision_before, revision, replaced)
