"""Checklist row 41: a flood of unauthenticated writes from one address is refused (429)
before it costs storage, and what it stored is purged once expired. On SQLite and PostgreSQL.

The flood (bounded, loopback only): 2,000 plain ``GET /oauth2/authorize`` (each one that is
answered 200 stores a pushed request) from 4 threads on one address, then 200 posts of the
native and Nexi login forms. The server runs with the default budget of unauthenticated
writes (60 a minute from one address), a 5 s ``par_ttl`` and no purge schedule, so that the
rows can be counted: they stop growing once the limit answers 429, and after expiry
``tessera purge`` deletes every one of them. A second server shows the schedule doing the
same on its own. The figures are printed.
"""

from __future__ import annotations

import collections
import re
import secrets
import threading
import time

import httpx
import pytest
from sqlalchemy import text

from tessera.core.flows import native
from tests.e2e.native_helpers import AUTHORIZE, http, pkce, register
from tests.support.live import LiveServer

pytestmark = pytest.mark.slow

FLOOD, THREADS, POSTS = 2000, 4, 200
PAR_TTL = 5
BUDGET = 60  # the default TESSERA_UNAUTHENTICATED_WRITES_PER_MINUTE
ENV = {
    "TESSERA_UNAUTHENTICATED_WRITES_PER_MINUTE": str(BUDGET),
    "TESSERA_PAR_TTL": str(PAR_TTL),
    "TESSERA_PURGE_INTERVAL_SECONDS": "0",
}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request, tmp_path_factory):
    url = None
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_server").create_database(f"flood_{secrets.token_hex(6)}")
    s = LiveServer(tmp_path_factory.mktemp(f"flood-{request.param}"), database_url=url, env=ENV).start()
    s.backend = request.param
    yield s
    s.stop()


def rows(server: LiveServer, kind: str = native.PAR_KIND) -> int:
    with server.store.engine.connect() as c:
        return c.execute(text("SELECT count(*) FROM artifacts WHERE kind = :k"), {"k": kind}).scalar_one()


def plain_request(nc) -> dict[str, str]:
    _, challenge = pkce()
    return {
        "response_type": "code",
        "client_id": nc.client_id,
        "redirect_uri": nc.redirect_uri,
        "scope": "payments:read",
        "state": secrets.token_hex(4),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }


def assert_429_page(r: httpx.Response) -> None:
    assert r.status_code == 429, (r.status_code, r.text[:200])
    assert int(r.headers["Retry-After"]) >= 1
    assert r.headers["content-type"].startswith("text/html") and "no-store" in r.headers["cache-control"]
    assert "<form" not in r.text  # an error page, not a login form


def test_a_flood_of_plain_authorization_requests_and_login_posts_is_bounded_then_purged(server, capsys):
    nc = register(server)
    before = rows(server)
    statuses: collections.Counter = collections.Counter()
    rows_at_first_429: list[int] = []
    bad: list[str] = []
    lock = threading.Lock()
    started = time.monotonic()

    def flood(n: int) -> None:
        with http(server, mtls=False) as c:
            for _ in range(n):
                r = c.get(AUTHORIZE, params=plain_request(nc))
                with lock:
                    statuses[r.status_code] += 1
                    if r.status_code == 429 and not rows_at_first_429:
                        rows_at_first_429.append(rows(server))
                if r.status_code == 429:
                    try:
                        assert_429_page(r)
                    except AssertionError as e:
                        bad.append(str(e))
                elif r.status_code != 200:
                    bad.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=flood, args=(FLOOD // THREADS,)) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    elapsed = time.monotonic() - started
    after_flood = rows(server)

    # The login forms (native and Nexi), with a pushed request of the flood: refused before any check.
    posts_started = time.monotonic()
    with http(server, mtls=False) as c:
        for i in range(POSTS):
            path = AUTHORIZE if i % 2 else f"{server.settings.nexi_prefix}/as/authorize"
            r = c.post(
                path,
                data={
                    "client_id": nc.client_id,
                    "request_uri": "urn:x",
                    "username": "u@example.test",
                    "password": "wrong",
                },
            )
            if r.status_code == 429:
                assert_429_page(r)
            else:  # the budget refills one a second: such a post is checked, and refused (nothing stored)
                assert r.status_code == 400, (r.status_code, r.text[:200])
            statuses[f"post {r.status_code}"] += 1
    posts_elapsed = time.monotonic() - posts_started
    after_posts = rows(server)

    assert not bad, bad[:5]
    assert statuses[200] + statuses[429] == FLOOD
    written = after_flood - before
    assert written == statuses[200]  # one row per answered request, none for a 429
    # The budget: 60 at once, then one a second (for the whole flood, and the few seconds it took)
    assert statuses[200] <= BUDGET + int(elapsed) + 2, (statuses, elapsed)
    assert statuses[429] >= FLOOD - BUDGET - int(elapsed) - 2
    assert rows_at_first_429 and after_flood - rows_at_first_429[0] <= int(elapsed) + 2
    assert statuses["post 429"] >= POSTS - int(elapsed + posts_elapsed) - 2 and after_posts == after_flood, statuses

    # The 429s are counted by reason in /metrics.
    with http(server, mtls=False) as c:
        metrics = c.get("/metrics").text
    by_reason: collections.Counter = collections.Counter()
    for reason, value in re.findall(
        r'tessera_rate_limited_total\{[^}]*reason="(rate_limit_[a-z_]+)"[^}]*\} (\S+)', metrics
    ):
        by_reason[reason] += float(value)
    # the budget of unauthenticated writes, and (4 threads are faster than 200/s) the address rate
    assert by_reason["rate_limit_unauthenticated_writes"] > 0
    assert (
        by_reason["rate_limit_unauthenticated_writes"] + by_reason["rate_limit_address"]
        == statuses[429] + statuses["post 429"]
    ), by_reason

    # After expiry, tessera purge deletes every row the flood wrote.
    time.sleep(PAR_TTL + 1.5)
    result = server.cli_json("purge")
    assert result["deleted"].get(native.PAR_KIND) == after_posts, result
    assert rows(server) == 0
    assert server.cli_json("purge")["total"] == 0
    with capsys.disabled():
        print(
            f"\n  flood [{server.backend}]: {FLOOD} plain authorization requests in {elapsed:.1f}s from one address "
            f"({THREADS} threads): {statuses[200]} answered 200, {statuses[429]} answered 429 ({dict(by_reason)}); "
            f"{POSTS} login posts: {statuses['post 429']} answered 429, "
            f"{statuses['post 400']} (the budget's refill) 400; "
            f"pushed-request rows {before} before, {rows_at_first_429[0]} at the first 429, "
            f"{after_flood} after the flood, {after_posts} after the posts; "
            f"tessera purge after expiry deleted {result['deleted'].get(native.PAR_KIND)}: "
            f"{rows(server)} left"
        )


def test_the_server_purges_on_its_own_schedule(tmp_path, capsys):
    server = LiveServer(tmp_path, env={**ENV, "TESSERA_PURGE_INTERVAL_SECONDS": "1"}).start()
    try:
        nc = register(server)
        with http(server, mtls=False) as c:
            for _ in range(20):
                assert c.get(AUTHORIZE, params=plain_request(nc)).status_code == 200
        assert rows(server) == 20
        deadline = time.monotonic() + PAR_TTL + 10
        while rows(server) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert rows(server) == 0, "the schedule did not purge the expired requests"
        with http(server, mtls=False) as c:
            metrics = c.get("/metrics").text
        purged = re.findall(rf'tessera_purged_total\{{kind="{native.PAR_KIND}"\}} (\S+)', metrics)
        assert purged and float(purged[0]) == 20, metrics[-2000:]
        log = (tmp_path / "server.log").read_text()
        assert '"event": "purge"' in log or '"event":"purge"' in log, server.log_tail()
    finally:
        server.stop()
