"""Exact change notices from the SQL database, so that workers may cache clients,
certificates and the enrollment data (terminals, grants, users, bindings) without a
database read per request, and still honour a revocation on the next request.

A store *announces* a change when it commits one of those writes (``Database.announce``, tessera.storage.sql.database):
creating or revoking a client, adding or revoking a certificate, adding a terminal, a user,
a grant, or a new username binding. Other writes (single-use artefacts, refresh tokens,
events) announce nothing, so a busy server keeps its caches.

- SQLite: a small *notice file* beside the database (``<database>-notices``, 8 bytes). The
  announcing process writes a fresh random value into it right after the commit; every
  worker maps the file read-only (``mmap``) and ``changed()`` compares 8 bytes of memory
  with what it saw last: no system call, well under a microsecond. A torn read (8 bytes
  being written) can only look like a change: a spurious invalidation, harmless.
  Backstop: at most once every ``backstop_seconds`` (1 s) ``changed()`` also reads
  ``PRAGMA data_version`` (which moves on any commit by another connection) and the
  notice file's identity; a change there counts too. So a crash between the commit and the
  notice, a notice file deleted or replaced, or a hand edit of the database with the
  ``sqlite3`` shell, is seen within about a second.
- PostgreSQL: those writes run ``NOTIFY tessera_revocation`` in their transaction; a
  dedicated connection ``LISTEN``s, and a check is a non-blocking read of its socket.

Both answer "changed" when they cannot tell (a broken connection, an unreadable file): a
worker that cannot hear notices does not trust its caches. Redis-backed deployments use
the epoch in ``tessera.storage.redis_store`` instead.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("tessera.storage")

CHANNEL = "tessera_revocation"
#: The longest a change that was committed without its notice (a crash in between, a hand
#: edit of the database) goes unseen by a SQLite worker.
BACKSTOP_SECONDS = 1.0


class SQLiteNotices:
    """``changed()`` is True when a change was announced since the last call (see the module
    docstring); ``announce()`` tells every process, and is called after the commit."""

    exact = True

    def __init__(
        self, database: str, *, backstop_seconds: float = BACKSTOP_SECONDS, clock: Callable[[], float] = time.monotonic
    ):
        self._database = database
        self.path = notice_path(database)
        self._backstop = backstop_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._map: mmap.mmap | None = None
        self._ident: tuple[int, int] | None = None
        self._seen: bytes | None = None
        self._conn: sqlite3.Connection | None = None
        self._version: int | None = None
        self._next_backstop = 0.0
        self._writer: int | None = None

    # --- writing ------------------------------------------------------------------------------
    def announce(self) -> None:
        """Write a fresh value into the notice file (after the announcing commit)."""
        value = os.urandom(8)
        try:
            with self._lock:
                if self._writer is None:
                    self._writer = _open_notice_file(self.path)
                os.pwrite(self._writer, value, 0)
        except OSError as e:  # the backstop still sees the commit within backstop_seconds
            log.warning("change notice not written to %s: %s", self.path, e)
            self._close_writer()

    def _close_writer(self) -> None:
        with self._lock:
            if self._writer is not None:
                with contextlib.suppress(OSError):
                    os.close(self._writer)
                self._writer = None

    # --- reading ------------------------------------------------------------------------------
    def changed(self) -> bool:
        m = self._map
        if m is not None and self._clock() < self._next_backstop:
            try:
                value = m[:8]
            except ValueError:  # unmapped meanwhile by another thread's backstop: look again
                value = None
            if value is not None:
                if value == self._seen:
                    return False
                self._seen = value
                return True
        with self._lock:
            return self._slow_check()

    def _slow_check(self) -> bool:
        """The first look, and the backstop: (re)map the file, read data_version."""
        self._next_backstop = self._clock() + self._backstop
        changed = False
        try:
            st = os.stat(self.path)
            ident = (st.st_dev, st.st_ino)
        except OSError:
            ident = None
        if self._map is None or ident != self._ident:
            self._unmap()
            try:
                fd = _open_notice_file(self.path)
                try:
                    st = os.fstat(fd)
                    self._map = mmap.mmap(fd, 8, prot=mmap.PROT_READ)
                    self._ident = (st.st_dev, st.st_ino)
                finally:
                    os.close(fd)
            except (OSError, ValueError) as e:
                log.warning("change notices unreadable (%s): %s", self.path, e)
                self._unmap()
                self._next_backstop = 0.0  # try again on the next call
                return True
            changed = True
        value = self._map[:8]
        if value != self._seen:
            self._seen, changed = value, True
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(self._database, check_same_thread=False, isolation_level=None, timeout=5)
                self._conn.execute("PRAGMA query_only=1")
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as e:  # pragma: no cover - a vanished database file
            log.warning("data_version unreadable: %s", e)
            self._close_conn()
            self._next_backstop = 0.0
            return True
        if version != self._version:
            self._version, changed = version, True
        return changed

    def _unmap(self) -> None:
        if self._map is not None:
            with contextlib.suppress(Exception):
                self._map.close()
        self._map, self._ident, self._seen = None, None, None

    def _close_conn(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn, self._version = None, None

    def close(self) -> None:
        self._close_writer()
        with self._lock:
            self._unmap()
            self._close_conn()


def notice_path(database: str) -> str:
    """The notice file of a SQLite database: ``<database>-notices``, beside it."""
    return f"{database}-notices"


def _open_notice_file(path: str) -> int:
    """Open (creating if need be) the notice file, at least 8 bytes long. Never clobbers a
    value already written: extending a shorter file only adds zeros."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        if os.fstat(fd).st_size < 8:
            os.ftruncate(fd, 8)
    except OSError:
        os.close(fd)
        raise
    return fd


class PostgresListener:
    """LISTEN on ``tessera_revocation``; ``changed()`` drains pending notifications."""

    exact = True

    def __init__(self, dsn: str, *, retry_seconds: float = 1.0) -> None:
        self._dsn = dsn
        self._retry = retry_seconds
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._next_try = 0.0
        self._fresh = True  # the first check of a (re)connected listener counts as a change

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=2)
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    def changed(self) -> bool:
        with self._lock:
            if self._conn is None:
                now = time.monotonic()
                if now < self._next_try:
                    return True
                try:
                    self._conn = self._connect()
                except Exception as e:  # noqa: BLE001 - any failure: do not trust caches
                    log.warning("revocation listener cannot connect: %s", e)
                    self._next_try = now + self._retry
                    return True
                self._fresh = True
            conn = self._conn
            try:
                pg = conn.pgconn
                pg.consume_input()
                got = False
                while pg.notifies() is not None:
                    got = True
                if pg.status != 0:  # CONNECTION_OK
                    raise ConnectionError("listener connection lost")
            except Exception as e:  # noqa: BLE001
                log.warning("revocation listener lost: %s", e)
                self._drop()
                return True
            changed, self._fresh = got or self._fresh, False
            return changed

    def _drop(self) -> None:
        try:
            if self._conn is not None:
                self._conn.close()
        except Exception:  # noqa: BLE001
            pass
        self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()


def for_engine(engine: Engine) -> SQLiteNotices | PostgresListener | None:
    """The notice source for a SQLAlchemy engine, or None when there is none."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        database = url.database
        if not database or database == ":memory:":
            return None
        return SQLiteNotices(database)
    if url.get_backend_name() == "postgresql":
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return PostgresListener(dsn)
    return None
