"""The engine: one per store, with what each backend needs.

SQLite runs in WAL mode with a busy timeout and foreign keys on, and every write
transaction takes the write lock up front (``BEGIN IMMEDIATE``): no deadlock-prone lock
upgrades under concurrency. On PostgreSQL a pooled connection is checked with a
non-blocking look at its socket when it is taken from the pool (``check_alive``) rather
than a ``SELECT 1`` round trip: a server restart or a killed backend leaves the socket
readable (EOF or an error message), and the pool replaces that connection.
"""

from __future__ import annotations

import select as _select
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError, OperationalError, PendingRollbackError
from sqlalchemy.exc import InterfaceError as SAInterfaceError
from sqlalchemy.exc import TimeoutError as SATimeoutError

#: What a database that cannot be reached raises through SQLAlchemy.
UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, SAInterfaceError)
#: What a connection that the server dropped raises besides (SQLAlchemy's own errors about an
#: invalidated connection, a checkout whose reconnections all failed, a pool timeout).
GONE: tuple[type[Exception], ...] = (
    OperationalError,
    SAInterfaceError,
    DisconnectionError,
    PendingRollbackError,
    SATimeoutError,
)


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine with the settings each backend needs (SQLite: WAL, busy timeout, FKs)."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=pool_size,
            max_overflow=20,
            hide_parameters=True,
        )  # a logged database error never carries a bound value

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:  # pragma: no cover - every sqlite test
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:  # pragma: no cover
            # Take the write lock up front: no deadlock-prone lock upgrades under concurrency.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write", True) else "BEGIN")

        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's implicit one is off).
        @event.listens_for(engine, "connect")
        def _no_implicit_begin(dbapi_conn: Any, _record: Any) -> None:  # pragma: no cover
            dbapi_conn.isolation_level = None

        return engine
    postgres = url.startswith("postgresql")
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=20,
        hide_parameters=True,  # a logged database error never carries a bound value
        pool_pre_ping=not postgres,  # PostgreSQL: check_alive instead of a round trip
        connect_args={"connect_timeout": 5} if "psycopg" in url or postgres else {},
    )
    if postgres:
        event.listen(engine, "checkout", check_alive)
    return engine


def check_alive(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """A pooled PostgreSQL connection is still usable: not closed, and nothing waiting on its
    socket (an idle connection receives nothing unless the server is closing it). A cheap
    stand-in for ``pool_pre_ping``'s round trip; ``DisconnectionError`` makes the pool
    replace the connection."""
    try:
        if dbapi_conn.closed or dbapi_conn.broken or dbapi_conn.pgconn.status != 0:  # CONNECTION_OK
            raise DisconnectionError("connection closed")
        # Pooled connections never LISTEN: anything readable on an idle one is the server
        # saying goodbye (an error message, EOF). At worst a healthy one is replaced.
        poller = _select.poll()
        poller.register(dbapi_conn.pgconn.socket, _select.POLLIN | _select.POLLHUP | _select.POLLERR)
        if poller.poll(0):
            raise DisconnectionError("the server closed the connection")
    except DisconnectionError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure here means the connection is unusable
        raise DisconnectionError(str(e)) from e
