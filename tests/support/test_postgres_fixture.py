"""The PostgreSQL test harness: real server, real concurrency, isolation, clean stop."""

from __future__ import annotations

import subprocess
import threading

import pytest
import sqlalchemy as sa

pytest.register_assert_rewrite("tests.support.postgres")

from tests.support.postgres import (  # noqa: E402
    PostgresError,
    PostgresServer,
    find_pg_bin,
    require_pg_bin,
)

pytest_plugins = ["tests.support.postgres"]

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

RACERS = 20


def _pgrep(pattern: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if line.strip()]


def test_concurrent_claim_has_exactly_one_winner(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url, pool_size=RACERS + 2, max_overflow=0)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (id integer PRIMARY KEY, used boolean NOT NULL)"))
            conn.execute(sa.text("INSERT INTO t (id, used) VALUES (1, false)"))

        barrier = threading.Barrier(RACERS, timeout=30)
        results: list[int] = []
        backends: set[int] = set()
        errors: list[BaseException] = []
        lock = threading.Lock()

        def racer() -> None:
            try:
                with engine.connect() as conn:
                    pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
                    conn.commit()
                    # Every racer holds its own open server connection before anyone updates.
                    barrier.wait()
                    with conn.begin():
                        rc = conn.execute(sa.text("UPDATE t SET used = true WHERE id = 1 AND used = false")).rowcount
                with lock:
                    results.append(rc)
                    backends.add(pid)
            except BaseException as exc:  # reported below
                with lock:
                    errors.append(exc)

        threads = [threading.Thread(target=racer) for _ in range(RACERS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=60)
        assert not any(th.is_alive() for th in threads), "a racer hung"
        assert not errors, errors
        assert len(backends) == RACERS, "the racers did not hold separate server sessions"
        assert sorted(results) == [0] * (RACERS - 1) + [1]
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT used FROM t WHERE id = 1")).scalar_one() is True
    finally:
        engine.dispose()


def test_databases_are_isolated(postgres_server: PostgresServer) -> None:
    url_a = postgres_server.create_database("iso_a")
    url_b = postgres_server.create_database("iso_b")
    assert url_a == f"postgresql+psycopg://{postgres_server.user}@127.0.0.1:{postgres_server.port}/iso_a"
    eng_a, eng_b = sa.create_engine(url_a), sa.create_engine(url_b)
    try:
        with eng_a.begin() as conn:
            conn.execute(sa.text("CREATE TABLE only_in_a (x integer)"))
            conn.execute(sa.text("INSERT INTO only_in_a VALUES (42)"))
        assert "only_in_a" in sa.inspect(eng_a).get_table_names()
        assert "only_in_a" not in sa.inspect(eng_b).get_table_names()
        with eng_b.connect() as conn:
            assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == "iso_b"
    finally:
        eng_a.dispose()
        # Dropping works even with a connection still open (it is closed by force).
        held = eng_b.connect()
        postgres_server.drop_database("iso_a")
        postgres_server.drop_database("iso_b")
        held.invalidate()
        eng_b.dispose()
    with postgres_server.connect_admin() as admin:
        names = {r[0] for r in admin.execute("SELECT datname FROM pg_database")}
    assert not names & {"iso_a", "iso_b"}


def test_postgres_url_is_a_fresh_database(postgres_url: str, postgres_server: PostgresServer) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW max_connections")).scalar_one() == "200"
            assert conn.execute(sa.text("SHOW listen_addresses")).scalar_one() == "127.0.0.1"
            assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == postgres_url.rsplit("/", 1)[1]
            assert conn.execute(sa.text("SELECT current_database()")).scalar_one() != postgres_server.dbname
    finally:
        engine.dispose()


def test_stop_leaves_no_postgres_process_behind() -> None:
    server = PostgresServer(bindir=require_pg_bin())
    with server:
        assert server.running
        datadir, workdir = str(server.datadir), server.workdir
        assert len(_pgrep(datadir)) == 1, _pgrep(datadir)  # the postmaster, and only it
        engine = sa.create_engine(server.url)
        conn = engine.connect()  # a live session must not block the stop
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
        server.stop()
        conn.invalidate()
        engine.dispose()
    assert not server.running
    assert _pgrep(datadir) == []
    assert not workdir.exists()
    server.stop()  # a second stop is harmless
    assert server.start_seconds is not None and server.stop_seconds is not None


def test_failed_start_reports_the_server_log_and_cleans_up() -> None:
    server = PostgresServer(bindir=require_pg_bin(), max_connections=-1)  # the server refuses this setting
    with pytest.raises(PostgresError) as info:
        server.start()
    message = str(info.value)
    assert "server log" in message and "max_connections" in message
    assert not server.running
    assert server.workdir is not None and not server.workdir.exists()
    assert _pgrep(str(server.datadir)) == []
    server.stop()


def test_find_pg_bin_returns_a_usable_bindir() -> None:
    bindir = require_pg_bin()
    assert find_pg_bin() == bindir
    for tool in ("initdb", "pg_ctl", "postgres"):
        assert (bindir / tool).is_file()
