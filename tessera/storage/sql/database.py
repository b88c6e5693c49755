"""The database every SQL repository shares: its engine, its transactions, its change notices.

A transaction (``Database.write()``, ``Database.read()``) is a ``with`` block on one pooled
connection, committed on success; a database that cannot be reached, or a connection the
server dropped, surfaces as ``StoreUnavailable``. A write that changes what workers cache
is announced: PostgreSQL ``NOTIFY`` in its transaction (delivered at commit), or SQLite's
notice file, written right after the commit (tessera.storage.notices). Any insert, update or
delete of a table in ``CACHED_TABLES`` is announced by itself (an engine event), whichever
repository method runs it, so a new writer cannot forget; the revoked-token marks, rows of the
shared artefact table, call ``announce`` themselves. ``after_announce`` callbacks run after each
announcing commit (a Redis epoch, tessera.storage.redis_store; the caches of each Core of this process).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, InvalidRequestError

from tessera.core.ports import StoreUnavailable
from tessera.storage import notices
from tessera.storage.sql.engine import GONE, make_engine

#: ``Connection.info`` key: the databases to announce on once this transaction commits.
_ANNOUNCE = "tessera_announce"

#: The tables whose rows workers cache (tessera.core.context): clients, certificates, the
#: enrollment data, merchants (by VAT number), axept API keys, and the server keys.
CACHED_TABLES = frozenset(
    {
        "clients",
        "certificates",
        "server_keys",
        "merchants",
        "terminals",
        "merchant_users",
        "merchant_grants",
        "username_bindings",
        "api_keys",
    }
)

#: Columns of cached tables that no worker's cache reads: an update of these alone announces
#: nothing (the axept key's last use, written about once a minute per key and worker).
UNCACHED_COLUMNS: dict[str, frozenset[str]] = {"api_keys": frozenset({"last_used_at"})}


class Database:
    """One engine and what goes with it (the ``SQLDatabase`` capability of the SQL stores)."""

    def __init__(self, url_or_engine: str | Engine) -> None:
        self.engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        #: Exact change notices (SQLite notice file / PostgreSQL LISTEN): lets workers cache
        #: clients and certificates and still see a revocation on the next request.
        self.notices = notices.for_engine(self.engine)
        #: Called after every commit that announced a change (``after_announce``).
        self._on_announce: list[Callable[[], Callable[[], object] | None]] = []
        event.listen(self.engine, "after_execute", self._announce_cached_writes)

    def _announce_cached_writes(self, conn: Connection, clause: Any, _m: Any, _p: Any, _o: Any, result: Any) -> None:
        """Announce an insert, update or delete of a cached table (``CACHED_TABLES``) that changed
        a row, except an update of bookkeeping columns alone (``UNCACHED_COLUMNS``: a key's last
        use). This is the only way the repositories announce their writes."""
        if not getattr(clause, "is_dml", False) or getattr(result, "rowcount", -1) == 0:
            return
        table = getattr(clause.table, "name", None)
        if table not in CACHED_TABLES:
            return
        if getattr(clause, "is_update", False):
            names = {getattr(column, "key", column) for column in (getattr(clause, "_values", None) or {})}
            if names and names <= UNCACHED_COLUMNS.get(table, frozenset()):
                return
        self.announce(conn)

    @property
    def remote(self) -> bool:
        """True for a database server (a call waits for a round trip), False for SQLite."""
        return not self.is_sqlite

    def write(self) -> Tx:
        return Tx(self.engine, write=True)

    def read(self) -> Tx:
        return Tx(self.engine, write=False)

    def announce(self, c: Connection) -> None:
        """Tell every worker that something it may cache changed, once this transaction commits:
        PostgreSQL ``NOTIFY`` (delivered at commit); SQLite's notice file is written by ``Tx``
        right after the commit (see tessera.storage.notices), then the ``after_announce`` callbacks."""
        announcing: list[Database] = c.info.setdefault(_ANNOUNCE, [])
        if self in announcing:
            return  # once per transaction
        announcing.append(self)  # (two stores over one engine: each announces its own)
        if not self.is_sqlite:
            c.exec_driver_sql(f"NOTIFY {notices.CHANNEL}")

    def committed(self) -> None:
        """After a commit that announced: the notice file (SQLite), then the ``after_announce`` callbacks."""
        if isinstance(self.notices, notices.SQLiteNotices):
            self.notices.announce()
        for ref in list(self._on_announce):
            callback = ref()
            if callback is None:  # its owner (a Core) is gone
                with contextlib.suppress(ValueError):  # another thread removed it first
                    self._on_announce.remove(ref)
            else:
                callback()

    def after_announce(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` after every announcing commit of this process: the Redis epoch of a
        composite store, and each ``Core`` on this database dropping its caches at once (the
        notice it will also receive comes back later on PostgreSQL). A bound method is held
        weakly, so a Core that is gone is not kept alive."""
        ref: Callable[[], Callable[[], object] | None]
        if inspect.ismethod(callback):
            ref = weakref.WeakMethod(callback)
        else:
            ref = functools.partial(_strong, callback)
        self._on_announce.append(ref)

    def ping(self) -> None:
        with self.read() as c:
            c.exec_driver_sql("SELECT 1")

    def close(self) -> None:
        if event.contains(self.engine, "after_execute", self._announce_cached_writes):
            event.remove(self.engine, "after_execute", self._announce_cached_writes)
        if self.notices is not None:
            self.notices.close()
        self.engine.dispose()


def _reason(e: BaseException) -> str:
    """The driver's message of a SQLAlchemy error (its ``orig``), else the error's own."""
    return str((e.orig if isinstance(e, DBAPIError) else None) or e)


class Tx:
    """A transaction; database outages surface as ``StoreUnavailable``."""

    __slots__ = ("engine", "write", "conn", "tx")

    def __init__(self, engine: Engine, write: bool) -> None:
        self.engine = engine
        self.write = write

    def __enter__(self) -> Connection:
        try:
            self.conn = self.engine.connect()
        except GONE + (InvalidRequestError,) as e:  # InvalidRequestError: "reconnection attempts exhausted"
            raise StoreUnavailable(_reason(e)) from e
        try:
            self.conn.info["write"] = self.write
            self.conn.info.pop(_ANNOUNCE, None)  # (kept by a pooled connection whose last transaction failed)
            self.tx = self.conn.begin()
        except GONE as e:
            with contextlib.suppress(*GONE):
                self.conn.close()
            raise StoreUnavailable(_reason(e)) from e
        return self.conn

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # After a failed statement the connection may be invalidated (the server went away):
        # then even ``Connection.info`` raises (PendingRollbackError). Touch nothing but the
        # rollback and the close on that path, and let neither hide the outage.
        announce = None
        try:
            if exc_type is None:
                announce = self.conn.info.pop(_ANNOUNCE, None)
                self.tx.commit()
            else:
                self.tx.rollback()
        except GONE as e:
            if exc_type is None:
                raise StoreUnavailable(str(e)) from e
        finally:
            with contextlib.suppress(*GONE):
                self.conn.close()
        for db in announce or ():  # the notice file (SQLite) and the callbacks, after the commit
            db.committed()
        if exc_type is not None and issubclass(exc_type, GONE):
            raise StoreUnavailable(str(exc)) from exc


def _strong(callback: Callable[[], object]) -> Callable[[], object]:
    return callback
