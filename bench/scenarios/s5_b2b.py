"""s5: B2BINPAY: the login alone (``s5.b2b_login``), and strict refresh rotation (after one
login per connection), on SQLite (on s1's server) and on a durable throwaway PostgreSQL
cluster (``run_pg``)."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from bench.harness.fixtures import Fixture, probe
from bench.harness.procs import log
from bench.scenarios.spec import Scenario

if TYPE_CHECKING:
    from bench.harness.session import Harness

GROUP = "s5"
SQLITE = Scenario(
    "s5.b2b_sqlite",
    "B2BINPAY refresh rotation (after a login per connection), SQLite",
    "b2b_refresh.lua",
    "POST /b2binpay/token/ + /token/refresh/",
)
PG = Scenario(
    "s5.b2b_pg", "B2BINPAY refresh rotation, PostgreSQL", "b2b_refresh.lua", "POST /b2binpay/token/ + /token/refresh/"
)
LOGIN = Scenario("s5.b2b_login", "B2BINPAY login, SQLite", "b2b_login.lua", "POST /b2binpay/token/")
SCENARIOS = (LOGIN, SQLITE, PG)
#: On PostgreSQL: one worker per core; each keeps several round trips in flight through its
#: database thread pool (tessera.web.dbcall). Measured on 2 cores: 2 workers beat 3 or 4.
B2B_PG_WORKERS = int(os.environ.get("TESSERA_BENCH_B2B_PG_WORKERS", "2"))


def b2b(
    h: Harness, sid: str, srv: Any, fx: Fixture, config: dict[str, Any], extra_groups: dict[str, list[int]] | None
) -> None:
    url = f"{srv.url}/b2binpay/token/"
    body = {"data": {"type": "auth-token", "attributes": {"login": fx.client_id, "password": fx.secret}}}
    r = probe("POST", url, content=json.dumps(body).encode(), headers={"Content-Type": "application/vnd.api+json"})
    if r.status_code != 200:
        raise RuntimeError(f"B2BINPAY probe answered {r.status_code}: {r.text[:200]}")
    db = "PostgreSQL" if config["db"] == "postgresql" else "SQLite"
    h.measure(
        sid,
        f"B2BINPAY refresh rotation (after a login per connection), {db}",
        url,
        SQLITE.lua or "",
        [fx.client_id, fx.secret],
        target="tessera",
        server=[srv.proc.pid],
        port=srv.port,
        config=config,
        extra_groups=extra_groups,
        endpoint=SQLITE.endpoint,
    )


def login(h: Harness, srv: Any, fx: Fixture, config: dict[str, Any]) -> None:
    """The login alone: every request a new refresh family (its two artefacts written)."""
    url = f"{srv.url}/b2binpay/token/"
    h.measure(
        LOGIN.id,
        LOGIN.title,
        url,
        LOGIN.lua or "",
        [fx.client_id, fx.secret],
        target="tessera",
        server=[srv.proc.pid],
        port=srv.port,
        config=config,
        endpoint=LOGIN.endpoint,
    )


def run_pg(h: Harness) -> None:
    if not h.want(PG.id):
        return
    from tests.support.postgres import PostgresServer, find_pg_bin

    if find_pg_bin() is None:
        h.unavailable(PG.id, PG.title, "no PostgreSQL server binaries (bench/run.sh installs them)")
        return
    # A durable cluster (fsync=on, synchronous_commit=on, full_page_writes=on: each commit is
    # on disk before it is acknowledged), throwaway all the same. PostgreSQL, the workers and
    # wrk share the two cores; each worker runs the rotation's round trip in its small
    # database thread pool (tessera.web.dbcall), so the event loop serves others meanwhile.
    workers = B2B_PG_WORKERS
    log(
        f"== s5: tessera, proxy mode, {workers} workers, PostgreSQL (throwaway cluster, durable: fsync and "
        "synchronous_commit on)"
    )
    config = {
        "workers": workers,
        "db": "postgresql",
        "clients": 10,
        "mtls": "proxy",
        "tls": False,
        "pg": "fsync=on, synchronous_commit=on",
    }
    with PostgresServer(base_dir=h.work, durable=True) as pg:
        url = pg.create_database("tessera_bench")
        with h.tessera("pg", workers=workers, database_url=url) as (srv, fx):
            b2b(h, PG.id, srv, fx, config, extra_groups={"db": [pg._postmaster_pid() or 0]})
