"""Concurrent use of one B2BINPAY refresh token: exactly one racer wins, on SQLite and PostgreSQL.

Twenty threads, each with its own TLS connection (already open) and its own source address
(so that no brute-force lock interferes), wait at a barrier and present the same refresh
token. Exactly one gets 200; every other one gets 401 code 2007. Because the losers presented
a token that had just been used, the family is revoked (strict rotation), so the token the
winner received is refused afterwards. Repeated three times per server.

The same runs against a server with several worker processes, where the racers really reach the
database at the same time (one worker runs its handlers one at a time).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time

import httpx
import pytest

from tests.support.live import LiveServer

pytestmark = pytest.mark.slow

MEDIA = "application/vnd.api+json"
RACERS = 20
ROUNDS = 3
#: Enough processes to race for real, without swamping a small CI machine.
WORKERS = min(4, max(2, os.cpu_count() or 2))
BACKENDS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]


def _client(server: LiveServer, address: str) -> httpx.Client:
    transport = httpx.HTTPTransport(verify=server.ssl_context(), local_address=address)
    return httpx.Client(base_url=f"https://localhost:{server.port}", transport=transport, timeout=60)


def _post(c: httpx.Client, path: str, attributes: dict) -> httpx.Response:
    body = json.dumps({"data": {"type": "auth-token", "attributes": attributes}})
    return c.post(path, content=body, headers={"Content-Type": MEDIA})


def _race(server: LiveServer, round_no: int, salt: int) -> None:
    app = server.new_app(with_cert=False)
    with _client(server, f"127.25.{salt}.{round_no}") as c:
        r = _post(c, "/b2binpay/token/", {"login": app.client_id, "password": app.client_secret})
        assert r.status_code == 200, r.text
    token = r.json()["data"]["attributes"]["refresh"]

    clients = [_client(server, f"127.26.{salt * ROUNDS + round_no}.{i + 1}") for i in range(RACERS)]
    try:
        for c in clients:  # open every TLS connection before the start
            assert c.get("/healthz").status_code == 200
        barrier = threading.Barrier(RACERS, timeout=30)
        results: list[tuple[int, dict]] = [(0, {})] * RACERS

        def run(i: int) -> None:
            barrier.wait()
            resp = _post(clients[i], "/b2binpay/token/refresh/", {"refresh": token})
            results[i] = (resp.status_code, resp.json())

        threads = [threading.Thread(target=run, args=(i,)) for i in range(RACERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        for c in clients:
            c.close()

    statuses = sorted(s for s, _ in results)
    assert statuses == [200] + [401] * (RACERS - 1), statuses
    winner = next(body for s, body in results if s == 200)
    assert set(winner) == {"data"}
    for s, body in results:
        if s == 401:
            assert body == {"errors": [{"status": "401", "code": "2007", "detail": body["errors"][0]["detail"]}]}, body

    # The losers presented a used token: the whole family is revoked, the winner's new token too.
    with _client(server, f"127.27.{salt}.{round_no}") as c:
        after = _post(c, "/b2binpay/token/refresh/", {"refresh": winner["data"]["attributes"]["refresh"]})
    assert after.status_code == 401 and after.json()["errors"][0]["code"] == "2007", after.text
    events = [
        e for e in server.store.list_events() if e.kind == "refresh_family_revoked" and e.client_id == app.client_id
    ]
    assert len(events) >= 1 and {e.detail.get("cause") for e in events} <= {"refresh_reused"}, events


@pytest.mark.parametrize("db_live_server", BACKENDS, indirect=True)
@pytest.mark.parametrize("round_no", range(1, ROUNDS + 1))
def test_one_refresh_token_twenty_racers_one_winner(db_live_server, round_no):
    _race(db_live_server, round_no, salt=1 if db_live_server.backend == "sqlite" else 2)


@pytest.fixture(scope="module")
def multi_worker_server(request, tmp_path_factory):
    url = None
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_server").create_database(f"race_{secrets.token_hex(6)}")
    server = LiveServer(
        tmp_path_factory.mktemp(f"race-{request.param}"), database_url=url, env={"TESSERA_WORKERS": str(WORKERS)}
    ).start()
    server.backend = request.param
    _warm_up(server)
    yield server
    server.stop()


def _warm_up(server: LiveServer, workers: int = WORKERS) -> None:
    """Wait until every worker has started: until then the booted ones take every connection."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        log = (server.workdir / "server.log").read_text(errors="replace")
        if log.count("Application startup complete") >= workers:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the workers did not all start:\n{server.log_tail()}")
    # Let every worker do its lazy first-request work (keys, connection pool) before the races.
    app = server.new_app(with_cert=False)

    def login(i: int) -> None:
        with _client(server, f"127.28.{workers}.{i + 1}") as c:
            assert (
                _post(c, "/b2binpay/token/", {"login": app.client_id, "password": app.client_secret}).status_code == 200
            )

    threads = [threading.Thread(target=login, args=(i,)) for i in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


@pytest.mark.parametrize("multi_worker_server", BACKENDS, indirect=True)
@pytest.mark.parametrize("round_no", range(1, ROUNDS + 1))
def test_one_refresh_token_twenty_racers_several_workers(multi_worker_server, round_no):
    _race(multi_worker_server, round_no, salt=3 if multi_worker_server.backend == "sqlite" else 4)
