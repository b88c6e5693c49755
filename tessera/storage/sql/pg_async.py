"""An async libpq mini-pool: a few PostgreSQL connections per worker, awaited on its event loop.

Used for the hottest PostgreSQL statement, the rotation of a refresh token
(``SQLArtifacts.rotate_async``): the statement prepared once per connection and run straight
on libpq.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError

from tessera.core.ports import StoreUnavailable
from tessera.storage.sql.engine import check_alive

#: PostgreSQL connections per worker for the statements awaited on the event loop
#: (``SQLArtifacts.rotate_async``): enough round trips in flight to keep the worker busy while
#: PostgreSQL commits (durable: a flush per commit, shared by those committing together).
ASYNC_CONNECTIONS = 8


class AsyncPG:
    """A few ``psycopg.AsyncConnection`` per worker, awaited on its event loop (PostgreSQL).

    The rotation of a refresh token is one statement and one round trip; awaited on the loop
    it costs about 140 µs of CPU against about 330 µs through a thread pool (the GIL hand-offs
    between the loop and the pool's threads cost more than the statement). Connections are
    opened on first use, at most ``size`` of them, in autocommit mode (each statement is its
    own transaction); a caller waits for a free one. Before each use an idle connection is
    checked like the synchronous pool's (``check_alive``): a server restart leaves its socket
    readable, and it is replaced. A failure of the server or the connection is
    ``StoreUnavailable``, and the connection is dropped.

    The connections belong to one event loop (the worker's): ``usable()`` is False on
    another loop while that one runs, and the caller takes the synchronous path instead."""

    def __init__(self, engine: Engine, size: int) -> None:
        import psycopg

        self._psycopg = psycopg
        u = engine.url
        kw: dict[str, object] = {
            "host": u.host,
            "port": u.port,
            "user": u.username,
            "password": u.password,
            "dbname": u.database,
            **{k: v for k, v in u.query.items() if isinstance(v, str)},
        }
        kw.setdefault("connect_timeout", "5")
        self._conninfo = psycopg.conninfo.make_conninfo("", **{k: str(v) for k, v in kw.items() if v is not None})
        self.size = size
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: list[Any] = []
        self._slots = asyncio.Semaphore(size)
        self.unavailable: tuple[type[Exception], ...] = (psycopg.OperationalError, psycopg.InterfaceError)
        self.integrity: type[Exception] = psycopg.IntegrityError
        from psycopg import generators, pq, waiting

        self._execute, self._wait, self._fatal = generators.execute, waiting.wait_async, pq.ExecStatus.FATAL_ERROR

    def usable(self) -> bool:
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
                check_alive(conn, None, None)
                return conn
            except DisconnectionError:
                with contextlib.suppress(Exception):
                    conn.pgconn.finish()
        try:
            fresh: Any = await self._psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        except self.unavailable as e:
            raise StoreUnavailable(str(e)) from e
        fresh.tessera_prepared = set()  # the statements prepared on it (see ``row``)
        return fresh

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


#: The longest an ``AsyncPG`` wait sleeps before looking again (psycopg's own value); with
#: 0 the wait would wake up at every turn of the event loop until the answer comes.
_WAIT_INTERVAL = 0.1


def numbered(sql: str) -> tuple[bytes, tuple[str, ...]]:
    """``:name`` placeholders to PostgreSQL's ``$n`` (text parameters), and the names in order."""
    names: list[str] = []

    def number(m: re.Match[str]) -> str:
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    return re.sub(r"(?<![:\w]):(\w+)", number, sql).encode(), tuple(names)
