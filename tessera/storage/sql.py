"""The SQLAlchemy implementation of the Store: SQLite (WAL) by default, PostgreSQL by URL.

Atomicity: ``consume`` is one conditional ``UPDATE ... WHERE consumed_at IS NULL AND
expires_at > now``; the database serialises the writers and exactly one sees a row
count of 1. ``claim`` is an ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` the existing
record has lapsed: a new key is inserted, a lapsed record taken over, a live one left
alone (row count 0). ``claim_and_put`` (a PAR: the assertion ``jti`` and the
``request_uri``) and ``rotate`` (a refresh token and its successor) do their work in one
transaction; on PostgreSQL each is a single statement (data-modifying CTEs) sent in
autocommit mode, one round trip.

The single-use artefact operations are the hot path of every token endpoint: they run
SQL text prepared once per dialect on the pooled DBAPI connection (``_Raw``), without
building SQLAlchemy statements (which cost about 50 µs each). Everything else goes through
SQLAlchemy Core. On PostgreSQL a pooled connection is checked with a non-blocking look at
its socket when it is taken from the pool (``_check_alive``) rather than a ``SELECT 1``
round trip: a server restart or a killed backend leaves the socket readable (EOF or an
error message), and the pool replaces that connection.

The hottest PostgreSQL statement, the rotation of a refresh token, can also be awaited on
the worker's event loop (``rotate_async``): a few asynchronous connections per worker
(``_AsyncPG``), the statement prepared once per connection and run straight on libpq.
"""

from __future__ import annotations

import contextlib
import json
import re
import select as _select
from typing import Any, Iterator

from sqlalchemy import create_engine, delete, event, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError, IntegrityError, InvalidRequestError, OperationalError
from sqlalchemy.exc import InterfaceError as SAInterfaceError
from sqlalchemy.exc import PendingRollbackError
from sqlalchemy.exc import TimeoutError as SATimeoutError

from tessera.core.models import (
    ApiKey,
    Artifact,
    CertificateRecord,
    Client,
    Enrollment,
    Merchant,
    MerchantUser,
    SecurityEvent,
    StoredKey,
    Terminal,
)
from tessera.storage import notices
from tessera.storage import schema as t
from tessera.storage.base import Conflict, PurgePolicy, Rotation, StoreUnavailable


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine with the settings each backend needs (SQLite: WAL, busy timeout, FKs)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=pool_size, max_overflow=20,
                               hide_parameters=True)  # a logged database error never carries a bound value

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every sqlite test
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # pragma: no cover
            # Take the write lock up front: no deadlock-prone lock upgrades under concurrency.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write", True) else "BEGIN")

        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's implicit one is off).
        @event.listens_for(engine, "connect")
        def _no_implicit_begin(dbapi_conn, _record):  # pragma: no cover
            dbapi_conn.isolation_level = None

        return engine
    postgres = url.startswith("postgresql")
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=20,
        hide_parameters=True,  # a logged database error never carries a bound value
        pool_pre_ping=not postgres,  # PostgreSQL: _check_alive instead of a round trip
        connect_args={"connect_timeout": 5} if "psycopg" in url or postgres else {},
    )
    if postgres:
        event.listen(engine, "checkout", _check_alive)
    return engine


def _check_alive(dbapi_conn, _record, _proxy) -> None:
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


_UNAVAILABLE = (OperationalError, SAInterfaceError)
#: What a connection that the server dropped raises besides (SQLAlchemy's own errors about an
#: invalidated connection, a checkout whose reconnections all failed, a pool timeout).
_GONE = (OperationalError, SAInterfaceError, DisconnectionError, PendingRollbackError, SATimeoutError)
#: Artefact kinds whose writes are announced like the revocation of a client (change notices):
#: the revoked marks of access tokens, which every worker keeps in memory (tessera.core.tokens)
#: instead of reading the database for each Bearer token it checks.
ANNOUNCED_KINDS = frozenset({"revoked_jti"})
#: ``Connection.info`` key: the notices to announce on once this transaction commits (SQLite).
_ANNOUNCE = "tessera_announce"


# --- the hot path: SQL text per dialect on the pooled DBAPI connection -------------------------
_A = "artifacts"
_ART_COLS = 'client_id, data, expires_at, consumed_at'
_SQL = {
    "get": f'SELECT {_ART_COLS} FROM {_A} WHERE kind = :kind AND "key" = :key',
    "put": f'INSERT INTO {_A} (kind, "key", client_id, data, expires_at, consumed_at) '
           f'VALUES (:kind, :key, :client_id, :data, :expires_at, :consumed_at)',
    "consume": f'UPDATE {_A} SET consumed_at = :now WHERE kind = :kind AND "key" = :key '
               f'AND consumed_at IS NULL AND expires_at > :now RETURNING {_ART_COLS}',
    # A new key is inserted; a lapsed record is taken over; a live one is left alone (0 rows).
    "claim": f'INSERT INTO {_A} (kind, "key", client_id, data, expires_at, consumed_at) '
             f"VALUES (:kind, :key, :client_id, '{{}}', :expires_at, :now) "
             f'ON CONFLICT (kind, "key") DO UPDATE SET client_id = excluded.client_id, data = excluded.data, '
             f'expires_at = excluded.expires_at, consumed_at = excluded.consumed_at '
             f'WHERE {_A}.expires_at <= :now',
    # rotate, step by step (SQLite): the family, the consumption, the successor
    "family": f'SELECT expires_at, data FROM {_A} WHERE kind = :family_kind AND "key" = :family',
    "successor": f'INSERT INTO {_A} (kind, "key", client_id, data, expires_at, consumed_at) '
                 f'SELECT kind, :successor, client_id, data, :successor_expires_at, NULL FROM {_A} '
                 f'WHERE kind = :kind AND "key" = :key',
}
# PostgreSQL: claim + put, and the whole rotation, as single statements (one round trip each).
_PG_CLAIM_AND_PUT = (
    f'WITH claimed AS ({_SQL["claim"]} RETURNING 1) '
    f'INSERT INTO {_A} (kind, "key", client_id, data, expires_at, consumed_at) '
    f'SELECT :p_kind, :p_key, :p_client_id, CAST(:p_data AS json), :p_expires_at, NULL FROM claimed'
)
_PG_ROTATE = (
    f"WITH fam AS (SELECT expires_at FROM {_A} WHERE kind = :family_kind AND \"key\" = :family "
    f"AND COALESCE(data->>'revoked', 'false') NOT IN ('true', '1')), "
    f'won AS (UPDATE {_A} SET consumed_at = :now WHERE kind = :kind AND "key" = :key '
    f'AND consumed_at IS NULL AND expires_at > :now AND EXISTS (SELECT 1 FROM fam) RETURNING {_ART_COLS}), '
    f'next AS (INSERT INTO {_A} (kind, "key", client_id, data, expires_at, consumed_at) '
    f'SELECT :kind, :successor, won.client_id, won.data, LEAST(CAST(:successor_expires_at AS bigint), fam.expires_at), NULL '
    f'FROM won, fam RETURNING expires_at) '
    f'SELECT (SELECT expires_at FROM fam), won.client_id, won.data, won.expires_at, won.consumed_at, '
    f'(SELECT expires_at FROM next) FROM (SELECT 1) AS one LEFT JOIN won ON true'
)


def _pg_params(sql: str) -> str:
    """``:name`` placeholders to psycopg's ``%(name)s`` (``::`` casts are not used here)."""
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql.replace("%", "%%"))


def _pg_rotation(raw: "_Raw", kind: str, key: str, row: Any) -> Rotation:
    """The row of ``_PG_ROTATE`` as a ``Rotation``."""
    fam_exp, client_id, data, exp, consumed_at, next_exp = row
    if fam_exp is None:
        return Rotation("family_revoked")
    if client_id is None:
        return Rotation("lost", family_expires_at=int(fam_exp))
    return Rotation("rotated", raw.artifact(kind, key, (client_id, data, exp, consumed_at)), int(fam_exp), int(next_exp))


#: PostgreSQL connections per worker for the statements awaited on the event loop
#: (``SQLStore.rotate_async``): enough round trips in flight to keep the worker busy while
#: PostgreSQL commits (durable: a flush per commit, shared by those committing together).
ASYNC_CONNECTIONS = 8


def _one(rows: list) -> Any:
    return rows[0] if rows else None


class _Raw:
    """The pooled DBAPI connection of an engine, with this dialect's SQL text."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        dbapi = engine.dialect.loaded_dbapi
        self.unavailable = (dbapi.OperationalError, dbapi.InterfaceError)
        self.integrity = dbapi.IntegrityError
        if self.sqlite:
            self.sql = dict(_SQL)
        else:
            self.sql = {k: _pg_params(v) for k, v in _SQL.items()}
            self.sql["put"] = self.sql["put"].replace("%(data)s", "CAST(%(data)s AS json)")
            self.sql["claim_and_put"] = _pg_params(_PG_CLAIM_AND_PUT)
            self.sql["rotate"] = _pg_params(_PG_ROTATE)

    @contextlib.contextmanager
    def cursor(self, *, write: bool, autocommit: bool = False) -> Iterator[Any]:
        """A cursor in a transaction (SQLite: ``BEGIN IMMEDIATE`` for a write), committed on
        success; or, with ``autocommit``, for one self-contained statement (SQLite: reads only,
        a write always takes the write lock up front). Fetch every row (``fetchall``): a
        statement left half-read keeps its transaction open."""
        try:
            fairy = self.engine.raw_connection()
        except _GONE + (InvalidRequestError,) as e:  # InvalidRequestError: "reconnection attempts exhausted"
            raise StoreUnavailable(str(getattr(e, "orig", None) or e)) from e
        except self.unavailable as e:
            raise StoreUnavailable(str(e)) from e
        conn = fairy.driver_connection
        begun = False
        try:
            cur = conn.cursor()
            if self.sqlite:
                if write or not autocommit:
                    cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                    begun = True
            elif autocommit:
                conn.autocommit = True
            yield cur
            if begun:
                cur.execute("COMMIT")
                begun = False
            elif not self.sqlite and not autocommit:
                conn.commit()
        except self.unavailable as e:
            fairy.invalidate(e)
            raise StoreUnavailable(str(e)) from e
        except BaseException:
            try:
                if begun:
                    conn.execute("ROLLBACK")
                elif not self.sqlite and not autocommit:
                    conn.rollback()
            except self.unavailable as e:
                fairy.invalidate(e)
            raise
        finally:
            try:
                if not self.sqlite and autocommit and not conn.closed:
                    conn.autocommit = False
            finally:
                fairy.close()

    def artifact(self, kind: str, key: str, row) -> Artifact | None:
        if row is None:
            return None
        client_id, data, expires_at, consumed_at = row
        if isinstance(data, (str, bytes)):
            data = json.loads(data)
        return Artifact(kind, key, client_id, data, int(expires_at), None if consumed_at is None else int(consumed_at))

    def dumps(self, data: dict[str, Any]) -> str:
        return json.dumps(data)


def _rotate_params(kind: str, key: str, now: int, family_kind: str, family: str, successor: str,
                   successor_expires_at: int) -> dict[str, Any]:
    """The named parameters of the rotation statements (``rotate`` and ``rotate_async``)."""
    return {"kind": kind, "key": key, "now": int(now), "family_kind": family_kind, "family": family,
            "successor": successor, "successor_expires_at": int(successor_expires_at)}


class _AsyncPG:
    """A few ``psycopg.AsyncConnection`` per worker, awaited on its event loop (PostgreSQL).

    The rotation of a refresh token is one statement and one round trip; awaited on the loop
    it costs about 140 µs of CPU against about 330 µs through a thread pool (the GIL hand-offs
    between the loop and the pool's threads cost more than the statement). Connections are
    opened on first use, at most ``size`` of them, in autocommit mode (each statement is its
    own transaction); a caller waits for a free one. Before each use an idle connection is
    checked like the synchronous pool's (``_check_alive``): a server restart leaves its socket
    readable, and it is replaced. A failure of the server or the connection is
    ``StoreUnavailable``, and the connection is dropped.

    The connections belong to one event loop (the worker's): ``usable()`` is False on
    another loop while that one runs, and the caller takes the synchronous path instead."""

    def __init__(self, engine: Engine, size: int):
        import psycopg

        self._psycopg = psycopg
        u = engine.url
        kw = {"host": u.host, "port": u.port, "user": u.username, "password": u.password, "dbname": u.database,
              **{k: v for k, v in u.query.items() if isinstance(v, str)}}
        kw.setdefault("connect_timeout", "5")
        self._conninfo = psycopg.conninfo.make_conninfo(**{k: v for k, v in kw.items() if v is not None})
        self.size = size
        self._loop: Any = None
        self._idle: list[Any] = []
        self._slots: Any = None
        self.unavailable = (psycopg.OperationalError, psycopg.InterfaceError)
        self.integrity = psycopg.IntegrityError
        from psycopg import generators, pq, waiting

        self._execute, self._wait, self._fatal = generators.execute, waiting.wait_async, pq.ExecStatus.FATAL_ERROR

    def usable(self) -> bool:
        import asyncio

        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return True
        if self._loop is not None and not self._loop.is_closed():
            return False
        self.discard()  # a closed loop's connections: closed without it
        self._loop, self._slots = loop, asyncio.Semaphore(self.size)
        return True

    def discard(self) -> None:
        """Close the idle connections (no event loop needed)."""
        for conn in self._idle:
            with contextlib.suppress(Exception):
                conn.pgconn.finish()
        self._idle = []

    async def _take(self) -> Any:
        while self._idle:
            conn = self._idle.pop()
            try:
                _check_alive(conn, None, None)
                return conn
            except DisconnectionError:
                with contextlib.suppress(Exception):
                    conn.pgconn.finish()
        try:
            conn = await self._psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        except self.unavailable as e:
            raise StoreUnavailable(str(e)) from e
        conn.tessera_prepared = set()
        return conn

    async def row(self, name: str, sql: bytes, params: list[bytes | None]) -> list[bytes | None] | None:
        """The first row (text values) of the prepared statement ``name`` (``sql``, with ``$n``
        placeholders) run with ``params``; prepared on a connection's first use of it.

        Straight on libpq (psycopg's ``pgconn`` and its wait loop): no cursor, no adapters,
        no query conversion; about half of psycopg's per-statement work."""
        async with self._slots:  # at most ``size`` connections, each used by one caller
            conn = await self._take()
            pgconn = conn.pgconn
            try:
                if name not in conn.tessera_prepared:
                    pgconn.send_prepare(name.encode(), sql)
                    self._check(await self._wait(self._execute(pgconn), pgconn.socket, _WAIT_INTERVAL))
                    conn.tessera_prepared.add(name)
                pgconn.send_query_prepared(name.encode(), params)
                res = self._check(await self._wait(self._execute(pgconn), pgconn.socket, _WAIT_INTERVAL))
                out = [res.get_value(0, i) for i in range(res.nfields)] if res.ntuples else None
            except self.integrity:  # a refused statement (autocommit: nothing is left open)
                self._idle.append(conn)
                raise
            except self.unavailable as e:
                pgconn.finish()
                raise StoreUnavailable(str(e)) from e
            except BaseException:  # cancelled mid-statement, or an unexpected failure: a fresh connection next time
                pgconn.finish()
                raise
            self._idle.append(conn)
            return out

    def _check(self, results: list[Any]) -> Any:
        """The last result; a server error as psycopg's exception (``IntegrityError``, ...)."""
        for res in results:
            if res.status == self._fatal:
                raise self._psycopg.errors.error_from_result(res, encoding="utf-8")
        return results[-1]


#: The longest an ``_AsyncPG`` wait sleeps before looking again (psycopg's own value); with
#: 0 the wait would wake up at every turn of the event loop until the answer comes.
_WAIT_INTERVAL = 0.1


def _numbered(sql: str) -> tuple[bytes, tuple[str, ...]]:
    """``:name`` placeholders to PostgreSQL's ``$n`` (text parameters), and the names in order."""
    names: list[str] = []

    def number(m: re.Match) -> str:
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    return re.sub(r"(?<![:\w]):(\w+)", number, sql).encode(), tuple(names)


_PG_ROTATE_NUMBERED = _numbered(_PG_ROTATE)


class SQLStore:
    """Store over SQLAlchemy Core."""

    #: Artefact kinds whose writes are announced (change notices): see ``ANNOUNCED_KINDS``.
    announced_kinds = ANNOUNCED_KINDS

    def __init__(self, url_or_engine: str | Engine):
        self.engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        #: Exact change notices (SQLite notice file / PostgreSQL LISTEN): lets workers cache
        #: clients and certificates and still see a revocation on the next request.
        self.revocation_notices = notices.for_engine(self.engine)
        self._raw = _Raw(self.engine)
        self._apg: _AsyncPG | None = None

    def _announce(self, c: Connection) -> None:
        """Tell every worker that something it may cache changed (clients, certificates,
        terminals, users, grants, username bindings), once this transaction commits:
        PostgreSQL ``NOTIFY`` (delivered at commit); SQLite's notice file is written by
        ``_Tx`` right after the commit (see tessera.storage.notices)."""
        if self.is_sqlite:
            c.info[_ANNOUNCE] = self.revocation_notices
        else:
            c.exec_driver_sql(f"NOTIFY {notices.CHANNEL}")

    # --- plumbing ---------------------------------------------------------------------------
    def _write(self):
        return _Tx(self.engine, write=True)

    def _read(self):
        return _Tx(self.engine, write=False)

    # --- clients --------------------------------------------------------------------------
    def create_client(self, client: Client) -> None:
        with self._write() as c:
            try:
                c.execute(insert(t.clients).values(
                    client_id=client.client_id, name=client.name, secret_hash=client.secret_hash,
                    redirect_uris=list(client.redirect_uris), scope=client.scope,
                    auth_methods=list(client.auth_methods), grant_types=list(client.grant_types),
                    require_par=client.require_par, jwks=client.jwks, status=client.status,
                    created_at=client.created_at,
                ))
            except IntegrityError as e:
                raise Conflict(f"client {client.client_id} exists") from e
            self._announce(c)

    def get_client(self, client_id: str) -> Client | None:
        with self._read() as c:
            row = c.execute(select(t.clients).where(t.clients.c.client_id == client_id)).mappings().first()
        return _client(row) if row else None

    def list_clients(self) -> list[Client]:
        with self._read() as c:
            rows = c.execute(select(t.clients).order_by(t.clients.c.created_at)).mappings().all()
        return [_client(r) for r in rows]

    def set_client_status(self, client_id: str, status: str) -> bool:
        with self._write() as c:
            res = c.execute(update(t.clients).where(t.clients.c.client_id == client_id).values(status=status))
            self._announce(c)
        return res.rowcount == 1

    # --- certificates ---------------------------------------------------------------------------
    def add_certificate(self, cert: CertificateRecord) -> None:
        with self._write() as c:
            try:
                c.execute(insert(t.certificates).values(**cert.__dict__))
            except IntegrityError as e:
                raise Conflict("certificate already recorded") from e
            self._announce(c)

    def get_certificate(self, thumbprint: str) -> CertificateRecord | None:
        with self._read() as c:
            row = c.execute(select(t.certificates).where(t.certificates.c.thumbprint == thumbprint)).mappings().first()
        return CertificateRecord(**row) if row else None

    def certificates_for_client(self, client_id: str) -> list[CertificateRecord]:
        with self._read() as c:
            rows = c.execute(
                select(t.certificates).where(t.certificates.c.client_id == client_id).order_by(t.certificates.c.created_at)
            ).mappings().all()
        return [CertificateRecord(**r) for r in rows]

    def revoke_certificate(self, serial: str, now: int) -> CertificateRecord | None:
        serial = serial.lower().removeprefix("0x").lstrip("0") or "0"
        with self._write() as c:
            c.execute(
                update(t.certificates)
                .where(t.certificates.c.serial == serial, t.certificates.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            self._announce(c)
            row = c.execute(select(t.certificates).where(t.certificates.c.serial == serial)).mappings().first()
        return CertificateRecord(**row) if row else None

    # --- server keys ---------------------------------------------------------------------------------
    def list_server_keys(self) -> list[StoredKey]:
        with self._read() as c:
            rows = c.execute(select(t.server_keys).order_by(t.server_keys.c.created_at)).mappings().all()
        return [StoredKey(**r) for r in rows]

    def save_server_keys(self, keys: list[StoredKey]) -> None:
        with self._write() as c:
            for k in keys:
                values = dict(k.__dict__)
                res = c.execute(update(t.server_keys).where(t.server_keys.c.kid == k.kid).values(**values))
                if res.rowcount == 0:
                    c.execute(insert(t.server_keys).values(**values))

    # --- merchants ------------------------------------------------------------------------------------
    def create_merchant(self, merchant: Merchant) -> None:
        with self._write() as c:
            try:
                c.execute(insert(t.merchants).values(**merchant.__dict__))
            except IntegrityError as e:
                raise Conflict(f"merchant {merchant.merchant_id} or VAT {merchant.vat} exists") from e

    def get_merchant(self, merchant_id: int) -> Merchant | None:
        with self._read() as c:
            row = c.execute(select(t.merchants).where(t.merchants.c.merchant_id == merchant_id)).mappings().first()
        return Merchant(**row) if row else None

    def get_merchant_by_vat(self, vat: str) -> Merchant | None:
        with self._read() as c:
            row = c.execute(select(t.merchants).where(t.merchants.c.vat == vat)).mappings().first()
        return Merchant(**row) if row else None

    def add_terminal(self, terminal: Terminal) -> None:
        with self._write() as c:
            try:
                c.execute(insert(t.terminals).values(**terminal.__dict__))
            except IntegrityError as e:
                raise Conflict(f"terminal {terminal.tid} exists, or merchant {terminal.merchant_id} is unknown") from e
            self._announce(c)

    def terminals_at(self, pos: str) -> list[Terminal]:
        with self._read() as c:
            rows = c.execute(select(t.terminals).where(t.terminals.c.pos == pos)).mappings().all()
        return [Terminal(**r) for r in rows]

    def add_user(self, user: MerchantUser) -> None:
        with self._write() as c:
            try:
                c.execute(insert(t.merchant_users).values(**user.__dict__, created_at=0))
            except IntegrityError as e:
                raise Conflict(f"user {user.username} exists, or merchant {user.merchant_id} is unknown") from e
            self._announce(c)

    def get_user(self, username: str) -> MerchantUser | None:
        with self._read() as c:
            row = c.execute(
                select(t.merchant_users.c.username, t.merchant_users.c.merchant_id, t.merchant_users.c.password_hash)
                .where(t.merchant_users.c.username == username)
            ).mappings().first()
        return MerchantUser(**row) if row else None

    def grant(self, merchant_id: int, client_id: str, now: int) -> None:
        with self._write() as c:
            exists = c.execute(
                select(t.merchant_grants.c.client_id).where(
                    t.merchant_grants.c.merchant_id == merchant_id, t.merchant_grants.c.client_id == client_id
                )
            ).first()
            if exists:
                return
            try:
                c.execute(insert(t.merchant_grants).values(merchant_id=merchant_id, client_id=client_id, created_at=now))
            except IntegrityError as e:
                raise Conflict(f"unknown merchant {merchant_id} or client {client_id}") from e
            self._announce(c)

    def is_granted(self, merchant_id: int, client_id: str) -> bool:
        with self._read() as c:
            return c.execute(
                select(t.merchant_grants.c.client_id).where(
                    t.merchant_grants.c.merchant_id == merchant_id, t.merchant_grants.c.client_id == client_id
                )
            ).first() is not None

    # --- axept API keys ------------------------------------------------------------------------------------
    def create_api_key(self, merchant_id: int, key_hash: str, now: int, *, max_enabled: int) -> ApiKey:
        k = t.api_keys
        with self._write() as c:  # the write lock (SQLite) / row locks (PostgreSQL) serialise creators
            if not self.is_sqlite:
                c.execute(select(t.merchants.c.merchant_id).where(t.merchants.c.merchant_id == merchant_id).with_for_update())
            enabled = c.execute(select(func.count()).select_from(k).where(k.c.merchant_id == merchant_id, k.c.enabled.is_(True))).scalar()
            if enabled >= max_enabled:
                raise Conflict(f"merchant {merchant_id} already has {max_enabled} enabled keys; disable one first")
            next_id = (c.execute(select(func.max(k.c.key_id)).where(k.c.merchant_id == merchant_id)).scalar() or 0) + 1
            try:
                c.execute(insert(k).values(merchant_id=merchant_id, key_id=next_id, key_hash=key_hash, enabled=True, created_at=now))
            except IntegrityError as e:
                raise Conflict(f"unknown merchant {merchant_id}") from e
        return ApiKey(merchant_id, next_id, key_hash, True, now)

    def get_api_key(self, merchant_id: int, key_id: int) -> ApiKey | None:
        with self._read() as c:
            row = c.execute(select(t.api_keys).where(t.api_keys.c.merchant_id == merchant_id, t.api_keys.c.key_id == key_id)).mappings().first()
        return ApiKey(**row) if row else None

    def list_api_keys(self, merchant_id: int) -> list[ApiKey]:
        with self._read() as c:
            rows = c.execute(select(t.api_keys).where(t.api_keys.c.merchant_id == merchant_id).order_by(t.api_keys.c.key_id)).mappings().all()
        return [ApiKey(**r) for r in rows]

    def set_api_key_enabled(self, merchant_id: int, key_id: int, enabled: bool, now: int, *, max_enabled: int) -> ApiKey:
        k = t.api_keys
        with self._write() as c:
            if not self.is_sqlite:
                c.execute(select(t.merchants.c.merchant_id).where(t.merchants.c.merchant_id == merchant_id).with_for_update())
            row = c.execute(select(k).where(k.c.merchant_id == merchant_id, k.c.key_id == key_id)).mappings().first()
            if row is None:
                raise Conflict(f"merchant {merchant_id} has no key {key_id}")
            if enabled and not row["enabled"]:
                count = c.execute(select(func.count()).select_from(k).where(k.c.merchant_id == merchant_id, k.c.enabled.is_(True))).scalar()
                if count >= max_enabled:
                    raise Conflict(f"merchant {merchant_id} already has {max_enabled} enabled keys; disable one first")
            c.execute(update(k).where(k.c.merchant_id == merchant_id, k.c.key_id == key_id)
                      .values(enabled=enabled, disabled_at=None if enabled else now))
            row = c.execute(select(k).where(k.c.merchant_id == merchant_id, k.c.key_id == key_id)).mappings().first()
        return ApiKey(**row)

    # --- single-use artefacts -----------------------------------------------------------------------------
    def put_artifact(self, artifact: Artifact) -> None:
        a, raw = artifact, self._raw
        if a.kind in ANNOUNCED_KINDS:  # workers keep these in memory: the change is announced
            with self._write() as c:
                try:
                    c.execute(insert(t.artifacts).values(kind=a.kind, key=a.key, client_id=a.client_id, data=a.data,
                                                         expires_at=int(a.expires_at), consumed_at=a.consumed_at))
                except IntegrityError as e:
                    raise Conflict(f"{a.kind} exists") from e
                self._announce(c)
            return
        try:
            with raw.cursor(write=True, autocommit=True) as cur:
                cur.execute(raw.sql["put"], {"kind": a.kind, "key": a.key, "client_id": a.client_id, "data": raw.dumps(a.data),
                                             "expires_at": int(a.expires_at), "consumed_at": a.consumed_at})
        except raw.integrity as e:
            raise Conflict(f"{a.kind} exists") from e

    def artifact_keys(self, kind: str, now: int) -> frozenset[str]:
        """The keys of the live (unexpired) artefacts of ``kind``: for the kinds whose writes
        are announced (``ANNOUNCED_KINDS``), which a worker then keeps in memory."""
        a = t.artifacts
        with self._read() as c:
            rows = c.execute(select(a.c.key).where(a.c.kind == kind, a.c.expires_at > int(now))).all()
        return frozenset(r[0] for r in rows)

    def get_artifact(self, kind: str, key: str) -> Artifact | None:
        raw = self._raw
        with raw.cursor(write=False, autocommit=True) as cur:
            cur.execute(raw.sql["get"], {"kind": kind, "key": key})
            row = _one(cur.fetchall())
        return raw.artifact(kind, key, row)

    def consume(self, kind: str, key: str, now: int) -> Artifact | None:
        raw = self._raw
        with raw.cursor(write=True, autocommit=True) as cur:
            cur.execute(raw.sql["consume"], {"kind": kind, "key": key, "now": int(now)})
            row = _one(cur.fetchall())
        return raw.artifact(kind, key, row)

    def claim(self, kind: str, key: str, client_id: str, expires_at: int, now: int) -> bool:
        raw = self._raw
        with raw.cursor(write=True, autocommit=True) as cur:
            cur.execute(raw.sql["claim"], {"kind": kind, "key": key, "client_id": client_id,
                                           "expires_at": int(expires_at), "now": int(now)})
            return cur.rowcount == 1

    def claim_and_put(self, kind: str, key: str, client_id: str, expires_at: int, now: int, artifact: Artifact) -> bool:
        raw, a = self._raw, artifact
        params = {"kind": kind, "key": key, "client_id": client_id, "expires_at": int(expires_at), "now": int(now)}
        put = {"kind": a.kind, "key": a.key, "client_id": a.client_id, "data": raw.dumps(a.data),
               "expires_at": int(a.expires_at), "consumed_at": a.consumed_at}
        try:
            if raw.sqlite:
                with raw.cursor(write=True) as cur:
                    cur.execute(raw.sql["claim"], params)
                    if cur.rowcount != 1:
                        return False
                    cur.execute(raw.sql["put"], put)
                return True
            with raw.cursor(write=True, autocommit=True) as cur:  # one statement, one round trip
                cur.execute(raw.sql["claim_and_put"], {**params, **{f"p_{k}": v for k, v in put.items()}})
                return cur.rowcount == 1
        except raw.integrity as e:
            raise Conflict(f"{a.kind} exists") from e

    def rotate(self, kind: str, key: str, now: int, *, family_kind: str, family: str, successor: str,
               successor_expires_at: int) -> Rotation:
        raw = self._raw
        params = _rotate_params(kind, key, now, family_kind, family, successor, successor_expires_at)
        try:
            if not raw.sqlite:
                with raw.cursor(write=True, autocommit=True) as cur:  # one statement, one round trip
                    cur.execute(raw.sql["rotate"], params)
                    return _pg_rotation(raw, kind, key, cur.fetchall()[0])
            with raw.cursor(write=True) as cur:
                cur.execute(raw.sql["family"], params)
                fam = _one(cur.fetchall())
                if fam is None or json.loads(fam[1]).get("revoked"):
                    return Rotation("family_revoked")
                fam_exp = int(fam[0])
                cur.execute(raw.sql["consume"], params)
                row = _one(cur.fetchall())
                if row is None:
                    return Rotation("lost", family_expires_at=fam_exp)
                next_exp = min(int(successor_expires_at), fam_exp)
                cur.execute(raw.sql["successor"], {**params, "successor_expires_at": next_exp})
            return Rotation("rotated", raw.artifact(kind, key, row), fam_exp, next_exp)
        except raw.integrity as e:
            raise Conflict(f"{kind} {successor[:8]}... exists") from e

    async def rotate_async(self, kind: str, key: str, now: int, *, family_kind: str, family: str, successor: str,
                           successor_expires_at: int) -> Rotation | None:
        """``rotate`` awaited on the running event loop (PostgreSQL: one prepared statement on
        one of the worker's ``_AsyncPG`` connections); None where that is not available (SQLite,
        or another event loop than the worker's): the caller uses ``rotate`` instead."""
        apg = self._apg
        if apg is None:
            if self.is_sqlite:
                return None
            apg = self._apg = _AsyncPG(self.engine, ASYNC_CONNECTIONS)
        if not apg.usable():
            return None
        params = _rotate_params(kind, key, now, family_kind, family, successor, successor_expires_at)
        sql, names = _PG_ROTATE_NUMBERED
        try:
            row = await apg.row("tessera_rotate", sql, [str(params[n]).encode() for n in names])
        except apg.integrity as e:
            raise Conflict(f"{kind} {successor[:8]}... exists") from e
        fam_exp, client_id, data, exp, consumed_at, next_exp = (None if v is None else v.decode() for v in row)
        return _pg_rotation(self._raw, kind, key, (fam_exp, client_id, data, exp, consumed_at, next_exp))

    def update_artifact_data(self, kind: str, key: str, data: dict[str, Any]) -> None:
        with self._write() as c:
            c.execute(update(t.artifacts).where(t.artifacts.c.kind == kind, t.artifacts.c.key == key).values(data=data))

    # --- enrollments ------------------------------------------------------------------------------------------
    def bind_username(self, username: str, tid: str, now: int) -> bool:
        b = t.username_bindings
        with self._write() as c:
            row = c.execute(select(b.c.tid).where(b.c.username == username)).first()
            if row is not None:
                return row[0] == tid
            owner = c.execute(select(b.c.username).where(b.c.tid == tid)).first()
            if owner is not None:
                return False
            try:
                with c.begin_nested():
                    c.execute(insert(b).values(username=username, tid=tid, created_at=now))
            except IntegrityError:
                return False
            self._announce(c)
        return True

    def bindings(self, username: str, tid: str) -> tuple[str | None, str | None]:
        b = t.username_bindings
        with self._read() as c:
            by_user = c.execute(select(b.c.tid).where(b.c.username == username)).scalar()
            by_tid = c.execute(select(b.c.username).where(b.c.tid == tid)).scalar()
        return by_user, by_tid

    def add_enrollment(self, client_id: str, merchant_id: int, pos: str, tids: list[str], username: str, now: int,
                       device_id: str | None = None) -> Enrollment:
        with self._write() as c:
            res = c.execute(insert(t.enrollments).values(
                client_id=client_id, merchant_id=merchant_id, pos=pos, tids=list(tids), username=username, created_at=now,
                device_id=device_id,
            ))
            new_id = res.inserted_primary_key[0]
        return Enrollment(new_id, client_id, merchant_id, pos, tuple(tids), username, now, device_id)

    def list_enrollments(self) -> list[Enrollment]:
        with self._read() as c:
            rows = c.execute(select(t.enrollments).order_by(t.enrollments.c.id)).mappings().all()
        return [Enrollment(r["id"], r["client_id"], r["merchant_id"], r["pos"], tuple(r["tids"]), r["username"], r["created_at"],
                           r["device_id"]) for r in rows]

    # --- events --------------------------------------------------------------------------------------------
    def add_event(self, kind: str, client_id: str | None, detail: dict[str, Any], now: int) -> None:
        with self._write() as c:
            c.execute(insert(t.security_events).values(kind=kind, client_id=client_id, detail=detail, created_at=now))

    def list_events(self, limit: int = 1000, *, kind: str | None = None) -> list[SecurityEvent]:
        query = select(t.security_events).order_by(t.security_events.c.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(t.security_events.c.kind == kind)
        with self._read() as c:
            rows = c.execute(query).mappings().all()
        return [SecurityEvent(**r) for r in reversed(rows)]

    # --- housekeeping ----------------------------------------------------------------------------------------
    def purge(self, now: int, policy: PurgePolicy) -> dict[str, int]:
        """See ``Store.purge``. Per kind, the candidates are read a page at a time (by key) and
        deleted with their conditions checked again, one short transaction per page, so the
        workers' writes are never held up for long (SQLite has one writer)."""
        a, now = t.artifacts, int(now)
        counts: dict[str, int] = {}
        with self._read() as c:
            kinds = [r[0] for r in c.execute(select(a.c.kind).where(a.c.expires_at <= now).distinct()).all()]
        for kind in sorted(kinds):
            cond = [a.c.kind == kind, a.c.expires_at <= now]
            if kind in policy.replay_kinds:
                cond.append(or_(a.c.consumed_at.is_(None), a.c.expires_at <= now - policy.replay_margin))
            live_families: frozenset[str] = frozenset()
            if kind == policy.family_kind:
                cond.append(a.c.expires_at <= now - policy.family_margin)
                if policy.token_kind:
                    with self._read() as c:
                        fam = a.c.data["fam"].as_string()
                        live_families = frozenset(r[0] for r in c.execute(
                            select(fam).where(a.c.kind == policy.token_kind, a.c.expires_at > now).distinct()).all())
            after, deleted = "", 0
            while True:
                with self._write() as c:
                    keys = [r[0] for r in c.execute(select(a.c.key).where(*cond, a.c.key > after)
                                                    .order_by(a.c.key).limit(policy.batch)).all()]
                    if not keys:
                        break
                    after = keys[-1]
                    doomed = [k for k in keys if k not in live_families]
                    if doomed:
                        deleted += c.execute(delete(a).where(*cond, a.c.key.in_(doomed))).rowcount
            if deleted:
                counts[kind] = deleted
        if policy.events_before is not None:
            e, deleted = t.security_events, 0
            while True:
                with self._write() as c:
                    ids = [r[0] for r in c.execute(select(e.c.id).where(e.c.created_at < int(policy.events_before))
                                                   .order_by(e.c.id).limit(policy.batch)).all()]
                    if not ids:
                        break
                    deleted += c.execute(delete(e).where(e.c.id.in_(ids))).rowcount
            if deleted:
                counts["security_events"] = deleted
        return counts

    def purge_expired(self, now: int) -> int:
        return sum(self.purge(now, PurgePolicy()).values())

    def ping(self) -> None:
        with self._read() as c:
            c.exec_driver_sql("SELECT 1")

    def close(self) -> None:
        if self._apg is not None:
            self._apg.discard()
        if self.revocation_notices is not None:
            self.revocation_notices.close()
        self.engine.dispose()


class _Tx:
    """A transaction; database outages surface as ``StoreUnavailable``."""

    __slots__ = ("engine", "write", "conn", "tx")

    def __init__(self, engine: Engine, write: bool):
        self.engine = engine
        self.write = write

    def __enter__(self) -> Connection:
        try:
            self.conn = self.engine.connect()
        except _GONE + (InvalidRequestError,) as e:  # InvalidRequestError: "reconnection attempts exhausted"
            raise StoreUnavailable(str(getattr(e, "orig", None) or e)) from e
        try:
            self.conn.info["write"] = self.write
            self.tx = self.conn.begin()
        except _GONE as e:
            with contextlib.suppress(*_GONE):
                self.conn.close()
            raise StoreUnavailable(str(getattr(e, "orig", None) or e)) from e
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
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
        except _GONE as e:
            if exc_type is None:
                raise StoreUnavailable(str(e)) from e
        finally:
            with contextlib.suppress(*_GONE):
                self.conn.close()
        if announce is not None:  # SQLite: the notice file, after the commit (notices.SQLiteNotices)
            announce.announce()
        if exc_type is not None and issubclass(exc_type, _GONE):
            raise StoreUnavailable(str(exc)) from exc


def _client(row) -> Client:
    return Client(
        client_id=row["client_id"], name=row["name"], secret_hash=row["secret_hash"],
        redirect_uris=tuple(row["redirect_uris"] or ()), scope=row["scope"],
        auth_methods=tuple(row["auth_methods"] or ()), grant_types=tuple(row["grant_types"] or ()),
        require_par=bool(row["require_par"]), jwks=row["jwks"], status=row["status"], created_at=row["created_at"],
    )
