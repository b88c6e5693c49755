"""Single-use artefacts in SQL: the ``ArtifactStore`` port, on raw SQL text per dialect.

Atomicity: ``consume`` is one conditional ``UPDATE ... WHERE consumed_at IS NULL AND
expires_at > now``; the database serialises the writers and exactly one sees a row
count of 1. ``claim`` is an ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` the existing
record has lapsed: a new key is inserted, a lapsed record taken over, a live one left
alone (row count 0). ``claim_and_put`` (a PAR: the assertion ``jti`` and the
``request_uri``) and ``rotate`` (a refresh token and its successor) do their work in one
transaction; on PostgreSQL each is a single statement (data-modifying CTEs) sent in
autocommit mode, one round trip.

These operations are the hot path of every token endpoint: they run SQL text prepared once
per dialect on the pooled DBAPI connection (``Raw``), without building SQLAlchemy statements
(which cost about 50 µs each). The rare ones (the announced puts, ``artifact_keys``,
``update_artifact_data``, ``purge``) go through SQLAlchemy Core.

The hottest PostgreSQL statement, the rotation of a refresh token, can also be awaited on
the worker's event loop (``rotate_async``): see tessera.storage.sql.pg_async.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, InvalidRequestError

from tessera.core.kinds import Kind
from tessera.core.models import Artifact
from tessera.core.ports import Conflict, PurgePolicy, Rotation, StoreUnavailable
from tessera.storage import schema as t
from tessera.storage.sql.database import Database, _reason
from tessera.storage.sql.engine import GONE
from tessera.storage.sql.pg_async import ASYNC_CONNECTIONS, AsyncPG, numbered

#: Artefact kinds whose writes are announced like the revocation of a client (change notices):
#: the revoked marks of access tokens, which every worker keeps in memory (tessera.core.tokens)
#: instead of reading the database for each Bearer token it checks.
ANNOUNCED_KINDS: frozenset[str] = frozenset({Kind.REVOKED_TOKEN})

# --- the hot path: SQL text per dialect on the pooled DBAPI connection -------------------------
_A = "artifacts"
_ART_COLS = "client_id, data, expires_at, consumed_at"
_SQL = {
    "get": f'SELECT {_ART_COLS} FROM {_A} WHERE kind = :kind AND "key" = :key',
    "put": f'INSERT INTO {_A} (kind, "key", client_id, data, expires_at, consumed_at) '
    f"VALUES (:kind, :key, :client_id, :data, :expires_at, :consumed_at)",
    "consume": f'UPDATE {_A} SET consumed_at = :now WHERE kind = :kind AND "key" = :key '
    f"AND consumed_at IS NULL AND expires_at > :now RETURNING {_ART_COLS}",
    # A new key is inserted; a lapsed record is taken over; a live one is left alone (0 rows).
    "claim": f'INSERT INTO {_A} (kind, "key", client_id, data, expires_at, consumed_at) '
    f"VALUES (:kind, :key, :client_id, '{{}}', :expires_at, :now) "
    f'ON CONFLICT (kind, "key") DO UPDATE SET client_id = excluded.client_id, data = excluded.data, '
    f"expires_at = excluded.expires_at, consumed_at = excluded.consumed_at "
    f"WHERE {_A}.expires_at <= :now",
    # rotate, step by step (SQLite): the family, the consumption, the successor
    "family": f'SELECT expires_at, data FROM {_A} WHERE kind = :family_kind AND "key" = :family',
    "successor": f'INSERT INTO {_A} (kind, "key", client_id, data, expires_at, consumed_at) '
    f"SELECT kind, :successor, client_id, data, :successor_expires_at, NULL FROM {_A} "
    f'WHERE kind = :kind AND "key" = :key',
}
# PostgreSQL: claim + put, and the whole rotation, as single statements (one round trip each).
_PG_CLAIM_AND_PUT = (
    f"WITH claimed AS ({_SQL['claim']} RETURNING 1) "
    f'INSERT INTO {_A} (kind, "key", client_id, data, expires_at, consumed_at) '
    f"SELECT :p_kind, :p_key, :p_client_id, CAST(:p_data AS json), :p_expires_at, NULL FROM claimed"
)
_PG_ROTATE = (
    f'WITH fam AS (SELECT expires_at FROM {_A} WHERE kind = :family_kind AND "key" = :family '
    f"AND COALESCE(data->>'revoked', 'false') NOT IN ('true', '1')), "
    f'won AS (UPDATE {_A} SET consumed_at = :now WHERE kind = :kind AND "key" = :key '
    f"AND consumed_at IS NULL AND expires_at > :now AND EXISTS (SELECT 1 FROM fam) RETURNING {_ART_COLS}), "
    f'next AS (INSERT INTO {_A} (kind, "key", client_id, data, expires_at, consumed_at) '
    f"SELECT :kind, :successor, won.client_id, won.data, "
    f"LEAST(CAST(:successor_expires_at AS bigint), fam.expires_at), NULL "
    f"FROM won, fam RETURNING expires_at) "
    f"SELECT (SELECT expires_at FROM fam), won.client_id, won.data, won.expires_at, won.consumed_at, "
    f"(SELECT expires_at FROM next) FROM (SELECT 1) AS one LEFT JOIN won ON true"
)


def _pg_params(sql: str) -> str:
    """``:name`` placeholders to psycopg's ``%(name)s`` (``::`` casts are not used here)."""
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql.replace("%", "%%"))


def _pg_rotation(raw: Raw, kind: str, key: str, row: Any) -> Rotation:
    """The row of ``_PG_ROTATE`` as a ``Rotation``."""
    fam_exp, client_id, data, exp, consumed_at, next_exp = row
    if fam_exp is None:
        return Rotation("family_revoked")
    if client_id is None:
        return Rotation("lost", family_expires_at=int(fam_exp))
    return Rotation(
        "rotated", raw.artifact(kind, key, (client_id, data, exp, consumed_at)), int(fam_exp), int(next_exp)
    )


#: PostgreSQL connections per worker for the statements awaited on the event loop
#: (``SQLStore.rotate_async``): enough round trips in flight to keep the worker busy while


def _one(rows: list[Any]) -> Any:
    return rows[0] if rows else None


class Raw:
    """The pooled DBAPI connection of an engine, with this dialect's SQL text."""

    def __init__(self, engine: Engine) -> None:
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
        fairy = self._checkout()
        conn: Any = fairy.driver_connection
        begun = False
        try:
            cur = conn.cursor()
            begun = self._begin(conn, cur, write=write, autocommit=autocommit)
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

    def _checkout(self) -> Any:
        """A pooled DBAPI connection (SQLAlchemy's wrapper); ``StoreUnavailable`` if none."""
        try:
            return self.engine.raw_connection()
        except GONE + (InvalidRequestError,) as e:  # InvalidRequestError: "reconnection attempts exhausted"
            raise StoreUnavailable(_reason(e)) from e
        except self.unavailable as e:
            raise StoreUnavailable(str(e)) from e

    def _begin(self, conn: Any, cur: Any, *, write: bool, autocommit: bool) -> bool:
        """Start what ``cursor`` promises; True when a transaction was begun explicitly (SQLite)."""
        if self.sqlite:
            if write or not autocommit:
                cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                return True
        elif autocommit:
            conn.autocommit = True
        return False

    def artifact(self, kind: str, key: str, row: Any) -> Artifact | None:
        if row is None:
            return None
        client_id, data, expires_at, consumed_at = row
        if isinstance(data, (str, bytes)):
            data = json.loads(data)
        return Artifact(kind, key, client_id, data, int(expires_at), None if consumed_at is None else int(consumed_at))

    def dumps(self, data: dict[str, Any]) -> str:
        return json.dumps(data)


def _rotate_params(
    kind: str, key: str, now: int, family_kind: str, family: str, successor: str, successor_expires_at: int
) -> dict[str, Any]:
    """The named parameters of the rotation statements (``rotate`` and ``rotate_async``)."""
    return {
        "kind": kind,
        "key": key,
        "now": int(now),
        "family_kind": family_kind,
        "family": family,
        "successor": successor,
        "successor_expires_at": int(successor_expires_at),
    }


_PG_ROTATE_NUMBERED = numbered(_PG_ROTATE)


class SQLArtifacts:
    """The ``ArtifactStore`` (and ``AsyncRotation``) of a SQL database."""

    #: Artefact kinds whose writes are announced (change notices): see ``ANNOUNCED_KINDS``.
    announced_kinds: frozenset[str] = ANNOUNCED_KINDS

    def __init__(self, db: Database) -> None:
        self.db = db
        self._raw = Raw(db.engine)
        self._apg: AsyncPG | None = None

    def put_artifact(self, artifact: Artifact) -> None:
        a, raw = artifact, self._raw
        if a.kind in ANNOUNCED_KINDS:  # workers keep these in memory: the change is announced
            with self.db.write() as c:
                try:
                    c.execute(
                        insert(t.artifacts).values(
                            kind=a.kind,
                            key=a.key,
                            client_id=a.client_id,
                            data=a.data,
                            expires_at=int(a.expires_at),
                            consumed_at=a.consumed_at,
                        )
                    )
                except IntegrityError as e:
                    raise Conflict(f"{a.kind} exists") from e
                self.db.announce(c)
            return
        try:
            with raw.cursor(write=True, autocommit=True) as cur:
                cur.execute(
                    raw.sql["put"],
                    {
                        "kind": a.kind,
                        "key": a.key,
                        "client_id": a.client_id,
                        "data": raw.dumps(a.data),
                        "expires_at": int(a.expires_at),
                        "consumed_at": a.consumed_at,
                    },
                )
        except raw.integrity as e:
            raise Conflict(f"{a.kind} exists") from e

    def artifact_keys(self, kind: str, now: int) -> frozenset[str]:
        """The keys of the live (unexpired) artefacts of ``kind``: for the kinds whose writes
        are announced (``ANNOUNCED_KINDS``), which a worker then keeps in memory."""
        a = t.artifacts
        with self.db.read() as c:
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
            cur.execute(
                raw.sql["claim"],
                {"kind": kind, "key": key, "client_id": client_id, "expires_at": int(expires_at), "now": int(now)},
            )
            return bool(cur.rowcount == 1)

    def claim_and_put(self, kind: str, key: str, client_id: str, expires_at: int, now: int, artifact: Artifact) -> bool:
        raw, a = self._raw, artifact
        params = {"kind": kind, "key": key, "client_id": client_id, "expires_at": int(expires_at), "now": int(now)}
        put = {
            "kind": a.kind,
            "key": a.key,
            "client_id": a.client_id,
            "data": raw.dumps(a.data),
            "expires_at": int(a.expires_at),
            "consumed_at": a.consumed_at,
        }
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
                return bool(cur.rowcount == 1)
        except raw.integrity as e:
            raise Conflict(f"{a.kind} exists") from e

    def rotate(
        self, kind: str, key: str, now: int, *, family_kind: str, family: str, successor: str, successor_expires_at: int
    ) -> Rotation:
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

    async def rotate_async(
        self, kind: str, key: str, now: int, *, family_kind: str, family: str, successor: str, successor_expires_at: int
    ) -> Rotation | None:
        """``rotate`` awaited on the running event loop (PostgreSQL: one prepared statement on
        one of the worker's ``AsyncPG`` connections); None where that is not available (SQLite,
        or another event loop than the worker's): the caller uses ``rotate`` instead."""
        apg = self._apg
        if apg is None:
            if self.db.is_sqlite:
                return None
            apg = self._apg = AsyncPG(self.db.engine, ASYNC_CONNECTIONS)
        if not apg.usable():
            return None
        params = _rotate_params(kind, key, now, family_kind, family, successor, successor_expires_at)
        sql, names = _PG_ROTATE_NUMBERED
        try:
            row = await apg.row("tessera_rotate", sql, [str(params[n]).encode() for n in names])
        except apg.integrity as e:
            raise Conflict(f"{kind} {successor[:8]}... exists") from e
        if row is None:  # pragma: no cover - the statement returns one row, whatever happened
            raise RuntimeError("the rotation statement returned no row")
        fam_exp, client_id, data, exp, consumed_at, next_exp = (None if v is None else v.decode() for v in row)
        return _pg_rotation(self._raw, kind, key, (fam_exp, client_id, data, exp, consumed_at, next_exp))

    def update_artifact_data(self, kind: str, key: str, data: dict[str, Any]) -> None:
        with self.db.write() as c:
            c.execute(update(t.artifacts).where(t.artifacts.c.kind == kind, t.artifacts.c.key == key).values(data=data))

    # --- housekeeping ----------------------------------------------------------------------------------------
    def purge(self, now: int, policy: PurgePolicy) -> dict[str, int]:
        """See ``ArtifactStore.purge``. Per kind, the candidates are read a page at a time (by key) and
        deleted with their conditions checked again, one short transaction per page, so the
        workers' writes are never held up for long (SQLite has one writer)."""
        a, now = t.artifacts, int(now)
        counts: dict[str, int] = {}
        with self.db.read() as c:
            kinds = [r[0] for r in c.execute(select(a.c.kind).where(a.c.expires_at <= now).distinct()).all()]
        for kind in sorted(kinds):
            deleted = self._purge_kind(kind, now, policy)
            if deleted:
                counts[kind] = deleted
        if policy.events_before is not None:
            deleted = self._purge_events(int(policy.events_before), policy.batch)
            if deleted:
                counts["security_events"] = deleted
        return counts

    def _purge_kind(self, kind: str, now: int, policy: PurgePolicy) -> int:
        """The artefacts of ``kind`` that ``policy`` lets go at ``now``, a page at a time."""
        a = t.artifacts
        cond = [a.c.kind == kind, a.c.expires_at <= now]
        if kind in policy.replay_kinds:
            cond.append(or_(a.c.consumed_at.is_(None), a.c.expires_at <= now - policy.replay_margin))
        live_families: frozenset[str] = frozenset()
        if kind == policy.family_kind:
            cond.append(a.c.expires_at <= now - policy.family_margin)
            if policy.token_kind:
                fam = a.c.data["fam"].as_string()
                with self.db.read() as c:
                    rows = c.execute(select(fam).where(a.c.kind == policy.token_kind, a.c.expires_at > now).distinct())
                    live_families = frozenset(r[0] for r in rows.all())
        after, deleted = "", 0
        while True:
            with self.db.write() as c:
                page = select(a.c.key).where(*cond, a.c.key > after).order_by(a.c.key).limit(policy.batch)
                keys = [r[0] for r in c.execute(page).all()]
                if not keys:
                    return deleted
                after = keys[-1]
                doomed = [k for k in keys if k not in live_families]
                if doomed:
                    deleted += c.execute(delete(a).where(*cond, a.c.key.in_(doomed))).rowcount

    def _purge_events(self, before: int, batch: int) -> int:
        """The security events created before ``before``, a page at a time."""
        e, deleted = t.security_events, 0
        while True:
            with self.db.write() as c:
                page = select(e.c.id).where(e.c.created_at < before).order_by(e.c.id).limit(batch)
                ids = [r[0] for r in c.execute(page).all()]
                if not ids:
                    return deleted
                deleted += c.execute(delete(e).where(e.c.id.in_(ids))).rowcount

    def purge_expired(self, now: int) -> int:
        return sum(self.purge(now, PurgePolicy()).values())

    def close(self) -> None:
        if self._apg is not None:
            self._apg.discard()
