"""Exact change notices from the SQL database, so that workers may cache clients and
certificates without a database read per request and still honour a revocation on the
next request.

- SQLite: ``PRAGMA data_version`` on a dedicated connection changes whenever any other
  connection (another process: the CLI, another worker) commits. One pragma per check.
- PostgreSQL: revocations run ``NOTIFY tessera_revocation`` in their transaction; a
  dedicated connection ``LISTEN``s, and a check is a non-blocking read of its socket.

Both answer "changed" when they cannot tell (a broken connection): a worker that cannot
hear notices does not trust its caches. Redis-backed deployments use the epoch in
``tessera.storage.redis_store`` instead.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

log = logging.getLogger("tessera.storage")

CHANNEL = "tessera_revocation"


class SQLiteDataVersion:
    """``changed()`` is True when the database changed since the last call."""

    exact = True

    def __init__(self, path: str):
        self._path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._seen: int | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None, timeout=5)
        conn.execute("PRAGMA query_only=1")
        return conn

    def changed(self) -> bool:
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._connect()
                version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.Error as e:  # pragma: no cover - a vanished database file
                log.warning("data_version unreadable: %s", e)
                self._conn, self._seen = None, None
                return True
            changed = version != self._seen
            self._seen = version
            return changed

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class PostgresListener:
    """LISTEN on ``tessera_revocation``; ``changed()`` drains pending notifications."""

    exact = True

    def __init__(self, dsn: str, *, retry_seconds: float = 1.0):
        self._dsn = dsn
        self._retry = retry_seconds
        self._lock = threading.Lock()
        self._conn = None
        self._next_try = 0.0
        self._fresh = True  # the first check of a (re)connected listener counts as a change

    def _connect(self):
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
            try:
                pg = self._conn.pgconn
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


def for_engine(engine):
    """The notice source for a SQLAlchemy engine, or None when there is none."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        database = url.database
        if not database or database == ":memory:":
            return None
        return SQLiteDataVersion(database)
    if url.get_backend_name() == "postgresql":
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return PostgresListener(dsn)
    return None
