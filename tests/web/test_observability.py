"""Observability: request ids, Prometheus metrics, JSON access logs, /readyz, security
events, graceful shutdown.

The first half runs the ASGI app in-process (fast); the ``slow`` half runs a real
``tessera serve`` (TLS, uvicorn, SQLite or PostgreSQL) and reads its log file. The live tests
that need no server of their own (a signal, two workers, a dropped database) share one, whose
per-address lock is reachable (``live_server`` below); the ``tessera events`` commands run in
process through the console script's entry point (``tests.support.incli``), the walkthrough's
through the real command.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import time
import warnings
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

with warnings.catch_warnings():  # "Using httpx with starlette.testclient is deprecated"
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from tessera.config import Settings
from tessera.core.ports import StoreUnavailable
from tessera.home import init_home, open_store
from tessera.web.app import compose, create_app
from tessera.web.health import Readiness
from tessera.web.logging import configure_logging
from tessera.web.middleware import RequestMiddleware, valid_request_id
from tests.support.incli import server_cli, server_cli_json
from tests.support.live import LiveServer, module_server

HEX32 = re.compile(r"^[0-9a-f]{32}$")
SECRET_DSN = "postgresql+psycopg://tessera:hunter2-pw@db.internal.example:5432/tessera_prod"


# --- helpers -----------------------------------------------------------------------------------------------
def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def local_metric(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def access_lines(text: str) -> list[dict]:
    return [d for d in json_lines(text) if d.get("event") == "request"]


class UnpingableStore:
    """A store whose database is gone: ping fails with a message holding the DSN."""

    def __init__(self, store):
        self._store = store

    @property
    def database(self):  # the store's database (tessera.core.ports.SQLBacked): this one is gone
        return self

    @property
    def remote(self) -> bool:
        return self._store.database.remote

    def after_announce(self, callback) -> None:
        self._store.database.after_announce(callback)

    def ping(self) -> None:
        raise StoreUnavailable(f'connection to "{SECRET_DSN}" failed: FATAL: database "tessera_prod" does not exist')

    def __getattr__(self, name):
        return getattr(self._store, name)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    h = tmp_path_factory.mktemp("obs") / "home"
    init_home(h, hostname="localhost", port=8443, issuer="https://localhost:8443", now=int(time.time()))
    return h


@pytest.fixture(scope="module")
def app(home):
    return create_app(Settings.load(home))


@pytest.fixture
def client(app):
    return TestClient(app, raise_server_exceptions=False)


def tiny_app(**kw) -> Starlette:
    async def item(request):
        return PlainTextResponse(request.path_params["id"])

    async def boom(request):
        raise RuntimeError("kaboom with a secret: s3cr3t")

    return compose([Route("/items/{id}", item), Route("/boom", boom)], **kw)


# --- request ids ---------------------------------------------------------------------------------------------
def test_request_id_is_generated_and_returned(client):
    a, b = client.get("/healthz"), client.get("/healthz")
    assert a.status_code == 200
    assert HEX32.match(a.headers["x-request-id"]) and HEX32.match(b.headers["x-request-id"])
    assert a.headers["x-request-id"] != b.headers["x-request-id"]


@pytest.mark.parametrize("rid", ["abc", "A.b-c_9", "x" * 64, "0f8fad5b-d9cb-469f-a165-70867728950e"])
def test_valid_incoming_request_id_is_kept(client, rid):
    assert client.get("/healthz", headers={"X-Request-ID": rid}).headers["x-request-id"] == rid


@pytest.mark.parametrize("rid", ["x" * 65, "has space", "semi;colon", 'quote"', "é", "a/b", "{json}", "\\n"])
def test_invalid_incoming_request_id_is_replaced(client, rid):
    got = client.get("/healthz", headers={"X-Request-ID": rid.encode("utf-8")}).headers["x-request-id"]
    assert HEX32.match(got)


def test_valid_request_id_rule():
    assert valid_request_id(b"a") and valid_request_id(b"Z" * 64) and valid_request_id(b"1.2-3_4")
    assert not valid_request_id(b"") and not valid_request_id(b"a" * 65) and not valid_request_id(b"a b")
    assert not valid_request_id("é".encode()) and not valid_request_id(b"a\x00")


def test_request_id_on_errors_404_and_unhandled_500(client):
    assert HEX32.match(client.post("/axept/v1/authenticate", json={}).headers["x-request-id"])
    assert HEX32.match(client.get("/no/such/path").headers["x-request-id"])
    r = TestClient(tiny_app(), raise_server_exceptions=False).get("/boom", headers={"X-Request-ID": "boom-1"})
    assert r.status_code == 500 and r.headers["x-request-id"] == "boom-1"


# --- metrics ----------------------------------------------------------------------------------------------------
def test_metrics_by_route_template_not_raw_path():
    c = TestClient(tiny_app(), raise_server_exceptions=False)
    before = local_metric("tessera_http_requests_total", route="/items/{id}", method="GET", status="200")
    for i in range(3):
        assert c.get(f"/items/secret-{i}?token=abc").status_code == 200
    assert local_metric("tessera_http_requests_total", route="/items/{id}", method="GET", status="200") == before + 3
    assert (
        local_metric("tessera_http_request_duration_seconds_count", route="/items/{id}", method="GET", status="200")
        >= 3
    )
    c.request("BREW", "/items/1")
    assert local_metric("tessera_http_requests_total", route="/items/{id}", method="OTHER", status="405") >= 1
    c.get("/unknown/secret-path")
    assert local_metric("tessera_http_requests_total", route="unmatched", method="GET", status="404") >= 1
    c.get("/boom")
    assert local_metric("tessera_http_requests_total", route="/boom", method="GET", status="500") >= 1
    from prometheus_client import REGISTRY, generate_latest

    text = generate_latest(REGISTRY).decode()
    assert "secret-" not in text and "token=" not in text and "kaboom" not in text


def test_metrics_endpoint_refusals_and_rate_limits(app):
    client = TestClient(app, client=("10.0.0.66", 4321))  # its own address: the limiter counts per address
    r = client.post("/axept/v1/authenticate", json={"merchantId": 1})
    assert r.status_code == 400
    text = client.get("/metrics").text
    assert metric(text, "tessera_refusals_total", profile="axept", reason="field_missing") >= 1
    assert metric(text, "tessera_http_requests_total", route="/axept/v1/authenticate", method="POST", status="400") >= 1
    # brute force from one address: 5 bad keys, then 429 (login_locked)
    limited = metric(text, "tessera_rate_limited_total", profile="axept", reason="login_locked")
    statuses = [
        client.post("/axept/v1/authenticate", json={"merchantId": 7, "keyId": 1, "key": "wrong"}).status_code
        for _ in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    text = client.get("/metrics").text
    assert metric(text, "tessera_rate_limited_total", profile="axept", reason="login_locked") == limited + 1
    assert metric(text, "tessera_refusals_total", profile="axept", reason="bad_api_key") >= 5
    assert client.get("/metrics").headers["content-type"].startswith("text/plain; version=0.0.4")


def test_tokens_issued_counter_follows_runtime_issued(app):
    before = local_metric("tessera_tokens_issued_total", profile="mobilepay")
    app.state.runtime.issued("mobilepay")
    assert local_metric("tessera_tokens_issued_total", profile="mobilepay") == before + 1


def test_route_label_children_are_cached():
    mw = RequestMiddleware(tiny_app())
    c = TestClient(mw, raise_server_exceptions=False)
    for _ in range(5):
        c.get("/items/1")
        c.get("/items/2")
    assert len(mw._entries) == 1 and len(mw._routes) == 1


# --- logs -------------------------------------------------------------------------------------------------------
def test_access_log_is_one_json_line_per_request_without_secrets(client, capsys):
    capsys.readouterr()
    r = client.post(
        "/axept/v1/authenticate?request_uri=urn:softpos_QUERYSECRET",
        json={"merchantId": 1, "keyId": 1, "key": "BODYSECRET"},
        headers={"Authorization": "Bearer TOKENSECRET", "X-Request-ID": "log-test-1", "Cookie": "session=COOKIESECRET"},
    )
    assert r.status_code == 401
    err = capsys.readouterr().err
    lines = access_lines(err)
    assert len(lines) == 1, err
    line = lines[0]
    assert set(line) == {
        "event",
        "level",
        "timestamp",
        "request_id",
        "method",
        "route",
        "status",
        "duration_ms",
        "client",
        "profile",
        "reason",
    }
    assert line["request_id"] == "log-test-1" and line["method"] == "POST" and line["route"] == "/axept/v1/authenticate"
    assert line["status"] == 401 and line["profile"] == "axept" and line["reason"] == "bad_api_key"
    assert line["level"] == "info" and line["client"] == "testclient" and line["duration_ms"] >= 0
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", line["timestamp"])
    for secret in ("QUERYSECRET", "BODYSECRET", "TOKENSECRET", "COOKIESECRET", "Authorization", "authorization"):
        assert secret not in err


def test_logs_written_during_a_request_carry_its_id(capsys):
    import structlog

    async def noisy(request):
        structlog.get_logger("tessera.test").warning("something_odd", detail="x")
        return PlainTextResponse("ok")

    app = compose([Route("/noisy", noisy)])
    capsys.readouterr()
    TestClient(app).get("/noisy", headers={"X-Request-ID": "inner-1"})
    lines = json_lines(capsys.readouterr().err)
    odd = [d for d in lines if d.get("event") == "something_odd"]
    assert odd and odd[0]["request_id"] == "inner-1" and odd[0]["level"] == "warning"


def test_unhandled_exception_logged_as_json_without_its_message(capsys):
    capsys.readouterr()
    TestClient(tiny_app(), raise_server_exceptions=False).get("/boom", headers={"X-Request-ID": "boom-2"})
    err = capsys.readouterr().err
    lines = access_lines(err)
    assert lines and lines[-1]["status"] == 500 and lines[-1]["request_id"] == "boom-2"


def test_log_level_warning_drops_access_lines(home, capsys):
    try:
        configure_logging("warning")
        c = TestClient(RequestMiddleware(tiny_app()))
        capsys.readouterr()
        c.get("/items/1")
        assert access_lines(capsys.readouterr().err) == []
    finally:
        configure_logging(Settings.load(home).log_level)


# --- readiness ----------------------------------------------------------------------------------------------------
def test_readyz_ready(client):
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "checks": {"database": "ok", "keys": "ok"}}
    assert r.headers["cache-control"] == "no-store"
    assert client.get("/healthz").text == "ok"


def test_readyz_503_names_the_failing_check_and_leaks_nothing(home, capsys):
    settings = Settings.load(home)
    store = open_store(settings)
    try:
        app = create_app(settings, store=UnpingableStore(store))
        capsys.readouterr()
        r = TestClient(app).get("/readyz")
        assert r.status_code == 503
        assert r.json() == {
            "status": "unavailable",
            "checks": {"database": "fail", "keys": "ok"},
            "failing": ["database"],
        }
        err = capsys.readouterr().err
        assert any(d.get("event") == "readiness_check_failed" and d.get("check") == "database" for d in json_lines(err))
        for leak in ("hunter2", "db.internal", "postgresql", "tessera_prod"):
            assert leak not in r.text and leak not in err
    finally:
        store.close()


def test_readyz_asks_redis_and_names_it_when_it_is_gone(home, redis_server, capsys):
    """A real Redis: ready while it answers; stopped, /readyz is 503 naming ``redis``."""
    settings = Settings.load(home)
    settings.redis_url = redis_server.url
    store = open_store(settings)  # SQL with the short-lived artefacts on Redis
    try:
        c = TestClient(create_app(settings, store=store))
        assert c.get("/readyz").json() == {"status": "ready", "checks": {"database": "ok", "keys": "ok", "redis": "ok"}}
        redis_server.stop()
        capsys.readouterr()
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["failing"] == ["redis"], r.text
        assert r.json()["checks"] == {"database": "ok", "keys": "ok", "redis": "fail"}
        assert any(
            d.get("event") == "readiness_check_failed" and d.get("check") == "redis"
            for d in json_lines(capsys.readouterr().err)
        )
    finally:
        store.close()


def test_readyz_redis_unreachable_leaks_nothing(home):
    """Redis configured but unreachable (a closed port): 503 naming ``redis``, and neither the
    password nor the address of the URL in the answer."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    settings = Settings.load(home)
    settings.redis_url = f"redis://:redis-pw@127.0.0.1:{port}/0"
    store = open_store(Settings.load(home))  # the SQL store alone: readiness pings Redis itself
    try:
        r = TestClient(create_app(settings, store=store)).get("/readyz")
        assert r.status_code == 503 and r.json()["failing"] == ["redis"]
        assert "redis-pw" not in r.text and str(port) not in r.text
    finally:
        store.close()


def test_readyz_times_out_on_a_hanging_database_without_piling_up_threads(home):
    import threading

    settings = Settings.load(home)
    store = open_store(settings)
    release = threading.Event()
    calls = []

    class Hanging(UnpingableStore):
        def ping(self):
            calls.append(1)
            release.wait(10)

    try:
        hanging = Hanging(store)
        ready = Readiness(hanging.database, create_app(settings, store=hanging).state.runtime.core.keys, timeout=0.3)
        c = TestClient(compose([Route("/readyz", ready.handle)]))
        t0 = time.monotonic()
        r = c.get("/readyz")
        assert time.monotonic() - t0 < 3
        assert r.status_code == 503 and r.json()["checks"] == {"database": "timeout", "keys": "timeout"}
        r = c.get("/readyz")  # the first run still hangs: no second thread
        assert r.status_code == 503 and len(calls) == 1
        release.set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            r = c.get("/readyz")
            if r.status_code == 200:
                break
            time.sleep(0.05)
        assert r.status_code == 200, r.text
    finally:
        release.set()
        store.close()


# --- live servers --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """This module's server, for every live test that does not stop it, change its workers or
    drop its database: one whose per-address brute-force lock is reachable (5 failures, as
    ``address_lock_server``), for the events test; the other tests send at most two failures
    from 127.0.0.1 (a bogus client assertion), and the events test's come from an address of its own."""
    yield from module_server(tmp_path_factory, "obs-live", {"TESSERA_LOGIN_MAX_FAILURES_PER_ADDRESS": "5"})


@pytest.fixture(scope="module")
def address_lock_server(live_server):
    return live_server


def https(server: LiveServer, app=None, *, address: str | None = None) -> httpx.Client:
    ctx = server.ssl_context(app.cert, app.key) if app is not None else server.ssl_context()
    transport = httpx.HTTPTransport(verify=ctx, local_address=address) if address else None
    return httpx.Client(base_url=f"https://localhost:{server.port}", verify=ctx, timeout=20, transport=transport)


def nexi_token(server: LiveServer, app) -> httpx.Response:
    with https(server, app) as c:
        return c.post(
            "/softpos/appenrollment/token",
            data={"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret},
        )


@pytest.mark.slow
def test_live_readyz_healthz_and_request_id(live_server):
    with https(live_server) as c:
        r = c.get("/readyz")
        assert r.status_code == 200 and r.json() == {"status": "ready", "checks": {"database": "ok", "keys": "ok"}}
        assert HEX32.match(r.headers["x-request-id"])
        assert c.get("/healthz", headers={"X-Request-ID": "live-1"}).headers["x-request-id"] == "live-1"


@pytest.mark.slow
def test_live_metrics_count_tokens_and_refusals(live_server):
    app = live_server.new_app()
    with https(live_server) as c:
        before = c.get("/metrics").text
    r = nexi_token(live_server, app)
    assert r.status_code == 200, r.text
    with https(live_server, app) as c:
        bad = c.post("/softpos/appenrollment/token", data={"grant_type": "password", "client_id": app.client_id})
    assert bad.status_code == 400
    with https(live_server) as c:
        after = c.get("/metrics").text
    assert (
        metric(after, "tessera_tokens_issued_total", profile="nexi-softpos")
        == metric(before, "tessera_tokens_issued_total", profile="nexi-softpos") + 1
    )
    assert (
        metric(after, "tessera_refusals_total", profile="nexi-softpos", reason="grant_type")
        == metric(before, "tessera_refusals_total", profile="nexi-softpos", reason="grant_type") + 1
    )
    route = dict(route="/softpos/appenrollment/token", method="POST")
    assert metric(after, "tessera_http_requests_total", status="200", **route) >= 1
    assert metric(after, "tessera_http_requests_total", status="400", **route) >= 1
    assert metric(after, "tessera_http_request_duration_seconds_count", status="200", **route) >= 1
    assert metric(after, "process_cpu_seconds_total") > 0  # single worker: the default collectors too


@pytest.mark.slow
def test_live_logs_are_json_with_request_ids_and_no_secret(live_server):
    app = live_server.new_app()
    r = nexi_token(live_server, app)
    assert r.status_code == 200
    token = r.json()["access_token"]
    rid_token = r.headers["x-request-id"]
    marker = "urn:softpos_" + secrets.token_hex(8)
    with https(live_server, app) as c:
        par = c.post(
            "/softpos/as/par",
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "par-live-1"},
            data={
                "client_id": app.client_id,
                "client_assertion": "eyJ.bogus.assertion",
                "scope": "oidc",
                "redirect_uri": app.redirect_uri,
            },
        )
        assert par.status_code >= 400
        page = c.get("/softpos/as/authorize", params={"client_id": app.client_id, "request_uri": marker})
        assert page.status_code >= 400
    time.sleep(0.3)
    text = (live_server.workdir / "server.log").read_text()
    first_json = next(i for i, line in enumerate(text.splitlines()) if line.startswith("{"))
    after = text.splitlines()[first_json:]
    assert after and all(json.loads(line) for line in after if line.strip())  # every line from uvicorn's start is JSON
    lines = access_lines(text)
    by_id = {d["request_id"]: d for d in lines}
    assert by_id[rid_token]["route"] == "/softpos/appenrollment/token" and by_id[rid_token]["status"] == 200
    assert by_id[rid_token]["profile"] == "nexi-softpos" and by_id[rid_token]["client"] == "127.0.0.1"
    assert by_id["par-live-1"]["route"] == "/softpos/as/par" and by_id["par-live-1"]["reason"]
    assert any(d["route"] == "/softpos/as/authorize" and d["method"] == "GET" for d in lines)
    for secret in (
        app.client_secret,
        token,
        token.split(".")[1],
        marker,
        "Authorization",
        "authorization",
        "Bearer",
        "bogus.assertion",
        "client_secret",
    ):
        assert secret not in text, secret


@pytest.mark.slow
def test_live_events_cli_lists_brute_force_lockout(address_lock_server):
    live_server = address_lock_server  # its address lock is reachable (5 failures)
    mid = secrets.randbelow(10**9) + 1
    server_cli_json(live_server, "merchants", "create", "--merchant-id", str(mid))
    key = server_cli_json(live_server, "keys", "create", "--merchant-id", str(mid))
    address = f"127.55.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"
    with https(live_server, address=address) as c:
        statuses = [
            c.post(
                "/axept/v1/authenticate", json={"merchantId": mid, "keyId": key["keyId"], "key": "not-the-key"}
            ).status_code
            for _ in range(5)
        ]
        assert statuses == [401] * 5
        assert (
            c.post(
                "/axept/v1/authenticate", json={"merchantId": mid, "keyId": key["keyId"], "key": key["key"]}
            ).status_code
            == 429
        )
    out = server_cli_json(live_server, "events", "list", "--kind", "brute_force_lockout")
    assert set(out) == {"events"}
    keys = {e["detail"].get("key") for e in out["events"]}
    assert f"axept:{mid}:{key['keyId']}" in keys and f"addr:{address}" in keys
    for e in out["events"]:
        assert set(e) == {"id", "kind", "client_id", "detail", "created_at"} and e["kind"] == "brute_force_lockout"
        assert abs(e["created_at"] - time.time()) < 600
    assert key["key"] not in json.dumps(out)
    assert len(server_cli_json(live_server, "events", "list", "--limit", "1")["events"]) == 1
    assert server_cli_json(live_server, "events", "list", "--kind", "jti_replayed")["events"] == []
    human = server_cli(live_server, "events", "list").stdout
    assert "brute_force_lockout" in human


@pytest.mark.slow
@pytest.mark.postgres
def test_live_readyz_503_when_the_postgresql_database_is_dropped(postgres_server, tmp_path):
    name = f"obs_ready_{secrets.token_hex(4)}"
    url = postgres_server.create_database(name)
    server = LiveServer(tmp_path, database_url=url).start()
    try:
        with https(server) as c:
            assert c.get("/readyz").status_code == 200
            postgres_server.drop_database(name)
            r = c.get("/readyz")
            assert r.status_code == 503, r.text
            assert r.json()["failing"] == ["database"] and r.json()["checks"]["database"] == "fail"
            assert name not in r.text and str(postgres_server.port) not in r.text and "postgres" not in r.text
            assert c.get("/healthz").status_code == 200  # the process is up
        log = (tmp_path / "server.log").read_text()
        assert any(d.get("event") == "readiness_check_failed" and d.get("check") == "database" for d in json_lines(log))
    finally:
        server.stop()
        postgres_server.drop_database(name)


@pytest.mark.slow
def test_live_sigterm_drains_an_in_flight_request_then_exits_0(tmp_path):
    from tessera.core import apikeys
    from tessera.core.models import Merchant

    server = LiveServer(tmp_path).start()
    try:
        mid = secrets.randbelow(10**9) + 1
        server.store.create_merchant(Merchant(mid, "Shop", None, int(time.time())))
        record, value = apikeys.create_key(
            server.store, server.settings.pepper_bytes(), mid, int(time.time()), max_enabled=3
        )
        body = json.dumps({"merchantId": mid, "keyId": record.key_id, "key": value}).encode()
        head = (
            f"POST /axept/v1/authenticate HTTP/1.1\r\nHost: localhost:{server.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nX-Request-ID: in-flight-1\r\n\r\n"
        ).encode()
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        sock = server.ssl_context().wrap_socket(raw, server_hostname="localhost")
        sock.sendall(head + body[:10])  # the request has started: headers and part of the body
        time.sleep(0.5)
        os.kill(server.proc.pid, signal.SIGTERM)
        time.sleep(1.0)
        assert server.proc.poll() is None, "the server must wait for the in-flight request"
        with pytest.raises(OSError):  # ... while no longer accepting new connections
            socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
        sock.sendall(body[10:])
        response = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
        sock.close()
        head_out, _, payload = response.partition(b"\r\n\r\n")
        assert head_out.startswith(b"HTTP/1.1 200"), response[:300]
        assert b"x-request-id: in-flight-1" in head_out.lower()
        assert b"connection: close" in head_out.lower()
        assert set(json.loads(payload)) == {"token", "expiresAt"}
        assert server.proc.wait(15) == 0
        log = (tmp_path / "server.log").read_text()
        done = [d for d in access_lines(log) if d["request_id"] == "in-flight-1"]
        assert done and done[0]["status"] == 200
        assert any(d.get("event") == "Shutting down" for d in json_lines(log))
    finally:
        server.stop()


@pytest.mark.slow
def test_live_multiprocess_metrics_add_up_across_workers(tmp_path):
    mp = tmp_path / "prom"
    mp.mkdir()
    server = LiveServer(tmp_path, env={"TESSERA_WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(mp)}).start()
    try:
        ctx = server.ssl_context()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the workers start after the socket is bound
            try:
                if httpx.get(f"https://localhost:{server.port}/healthz", verify=ctx, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        n = 30
        for _ in range(n):  # a new connection each time: the kernel spreads them over the workers
            assert httpx.get(f"https://localhost:{server.port}/readyz", verify=ctx, timeout=10).status_code == 200
        for _ in range(3):  # whichever worker answers, it reports the sum
            text = httpx.get(f"https://localhost:{server.port}/metrics", verify=ctx, timeout=10).text
            assert metric(text, "tessera_http_requests_total", route="/readyz", method="GET", status="200") == n
            assert (
                metric(text, "tessera_http_request_duration_seconds_count", route="/readyz", method="GET", status="200")
                == n
            )
        assert list(mp.glob("*.db")), "prometheus-client wrote no multiprocess files"
    finally:
        server.stop()
    lines = (tmp_path / "server.log").read_text().splitlines()
    first_json = next(i for i, line in enumerate(lines) if line.startswith("{"))
    logged = [json.loads(line) for line in lines[first_json:] if line.strip()]  # the supervisor's lines too
    assert any(d["event"].startswith("Started parent process") for d in logged)
    assert len([d for d in logged if d.get("event") == "request" and d["route"] == "/readyz"]) == n


@pytest.mark.slow
def test_docs_walkthrough_runs(live_server, tmp_path):
    """docs/observability.md's walkthrough, run as written (as tests/docs/test_walkthroughs.py
    does), on this module's server: it reads (/readyz, /metrics, /healthz, the events) and
    changes nothing."""

    from tests.docs.test_walkthroughs import run_walkthrough, walkthrough
    from tests.support.live import REPO

    server = live_server
    proc = run_walkthrough(walkthrough(REPO / "docs" / "observability.md"), server, tmp_path / "work", timeout=120)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{server.log_tail()}"
    assert '"status":"ready"' in proc.stdout.replace(" ", "") and '{"events": [' in proc.stdout
