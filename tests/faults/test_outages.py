"""Outages (issue 5): the database or Redis goes away during a run, and comes back.

While a dependency is down, what needs it answers 503 with ``Retry-After`` in the
profile's own error shape, never a wrong grant (and never a 500); ``/readyz`` is 503 and
names the failing check. When the dependency returns, the same ``tessera serve`` process
(not restarted) recovers by itself: ``/readyz`` is 200 again and every endpoint works, and a
refresh token refused with 503 during the outage was not consumed by it.

Each test has its own dependency (a dedicated PostgreSQL cluster, a dedicated redis-server),
so that stopping it disturbs no other test. A prober thread keeps calling three token
endpoints throughout: each answer must be 200 or a well-formed 503.
"""

from __future__ import annotations

import collections
import json
import secrets
import threading
import time
from urllib.parse import quote

import httpx
import pytest

from tessera.core import apikeys
from tessera.core.models import Merchant
from tests.faults.test_crash import make_assertions
from tests.support.live import LiveServer
from tests.support.postgres import PostgresServer, require_pg_bin
from tests.support.redis_server import RedisServer, require_binary

pytestmark = pytest.mark.slow

RECOVERY_DEADLINE = 20.0  # seconds for tessera to recover once the dependency is back
JSONAPI = "application/vnd.api+json"
ENV = {
    "TESSERA_MTLS_MODE": "proxy",
    "TESSERA_RATE_LIMIT_PER_CREDENTIAL": "0",
    "TESSERA_RATE_LIMIT_PER_ADDRESS": "0",
    "TESSERA_LOGIN_MAX_FAILURES": "100000",
}


# --- the client side -------------------------------------------------------------------------------------
class Fixture:
    """Credentials for every profile, and requests that succeed when everything is up."""

    def __init__(self, server: LiveServer):
        self.server = server
        self.nexi = server.new_app()
        self.merchant = server.new_merchant(self.nexi)
        self.app = server.new_app(with_cert=False)  # MobilePay, B2BINPAY, native
        mid = secrets.randbelow(10**9) + 1
        server.store.create_merchant(Merchant(mid, f"Shop {mid}", None, int(time.time())))
        record, self.axept_key = apikeys.create_key(
            server.store, server.settings.pepper_bytes(), mid, int(time.time()), max_enabled=3
        )
        self.axept_ids = {"merchantId": record.merchant_id, "keyId": record.key_id}
        self.http = self.client()
        self.cert = {"X-SSL-Client-Cert": quote(self.nexi.cert.read_text(), safe="")}
        self.jwks = self.http.get("/softpos/par/jwks.json").json()
        self.bearer = self.nexi_token().json()["access_token"]
        self.assertions = make_assertions(server, self.nexi, self.merchant, self.jwks, 6)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.server.port}", timeout=15)

    def nexi_token(self, http: httpx.Client | None = None) -> httpx.Response:
        return (http or self.http).post(
            "/softpos/appenrollment/token",
            headers=self.cert,
            data={
                "grant_type": "client_credentials",
                "client_id": self.nexi.client_id,
                "client_secret": self.nexi.client_secret,
            },
        )

    def nexi_par(self) -> httpx.Response:
        return self.http.post(
            "/softpos/as/par",
            headers={**self.cert, "Authorization": f"Bearer {self.bearer}"},
            data={
                "client_assertion": self.assertions.pop(),
                "client_id": self.nexi.client_id,
                "scope": "oidc",
                "redirect_uri": self.nexi.redirect_uri,
            },
        )

    def login_page(self, request_uri: str) -> httpx.Response:
        return self.http.get(
            "/softpos/as/authorize", params={"client_id": self.nexi.client_id, "request_uri": request_uri}
        )

    def native_token(self) -> httpx.Response:
        return self.http.post(
            "/oauth2/token",
            auth=(self.app.client_id, self.app.client_secret),
            data={"grant_type": "client_credentials"},
        )

    def introspect(self, token: str) -> httpx.Response:
        return self.http.post(
            "/oauth2/introspect", auth=(self.app.client_id, self.app.client_secret), data={"token": token}
        )

    def userinfo(self, token: str) -> httpx.Response:
        return self.http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {token}"})

    def mobilepay(self, http: httpx.Client | None = None) -> httpx.Response:
        return (http or self.http).post(
            "/integrator-authentication/connect/token",
            auth=(self.app.client_id, self.app.client_secret),
            data={"grant_type": "client_credentials"},
        )

    def axept(self, http: httpx.Client | None = None) -> httpx.Response:
        return (http or self.http).post("/axept/v1/authenticate", json={**self.axept_ids, "key": self.axept_key})

    def b2b_login(self) -> httpx.Response:
        body = {
            "data": {
                "type": "auth-token",
                "attributes": {"login": self.app.client_id, "password": self.app.client_secret},
            }
        }
        return self.http.post("/b2binpay/token/", content=json.dumps(body), headers={"Content-Type": JSONAPI})

    def b2b_refresh(self, token: str) -> httpx.Response:
        body = {"data": {"type": "auth-token", "attributes": {"refresh": token}}}
        return self.http.post("/b2binpay/token/refresh/", content=json.dumps(body), headers={"Content-Type": JSONAPI})

    def ready(self) -> httpx.Response:
        return self.http.get("/readyz")


# --- each profile's 503 ------------------------------------------------------------------------------------
def oauth_503(r: httpx.Response) -> None:
    assert r.json()["error"] == "temporarily_unavailable", r.text
    assert r.json().get("error_description")


def axept_503(r: httpx.Response) -> None:
    body = r.json()
    assert body["status"] == 503 and body["error"] == "Service Unavailable" and body["message"], body


def b2b_503(r: httpx.Response) -> None:
    assert r.headers["content-type"].startswith(JSONAPI)
    (err,) = r.json()["errors"]
    assert err["status"] == "503" and err["code"] == "temporarily_unavailable" and err["detail"], err


SHAPES = {
    "nexi-token": oauth_503,
    "nexi-par": oauth_503,
    "login-page": None,
    "native-token": oauth_503,
    "mobilepay": oauth_503,
    "axept": axept_503,
    "b2binpay-login": b2b_503,
    "b2binpay-refresh": b2b_503,
    "introspect": oauth_503,
    "userinfo": oauth_503,
}


def assert_503(name: str, r: httpx.Response) -> None:
    assert r.status_code == 503, (name, r.status_code, r.text[:300])
    assert int(r.headers["Retry-After"]) >= 1, r.headers
    assert "no-store" in r.headers.get("cache-control", ""), r.headers
    shape = SHAPES[name]
    if shape is not None:
        shape(r)
    else:  # the login page: an HTML error page, not a login form
        assert "password" not in r.text.lower() or "<form" not in r.text.lower()
    for secret in ("postgresql", "redis://", "psycopg", "Traceback"):
        assert secret not in r.text, r.text  # nothing about the cause leaks


def assert_not_ready(r: httpx.Response, check: str) -> None:
    assert r.status_code == 503, r.text
    assert check in r.json()["failing"], r.json()


class Prober(threading.Thread):
    """Calls three token endpoints in a loop: each answer must be a grant or a well-formed 503."""

    def __init__(self, fx: Fixture):
        super().__init__(daemon=True)
        self.fx = fx
        self.stop = threading.Event()
        self.seen: collections.Counter = collections.Counter()
        self.bad: list[str] = []

    def run(self) -> None:
        calls = {"nexi-token": self.fx.nexi_token, "mobilepay": self.fx.mobilepay, "axept": self.fx.axept}
        with self.fx.client() as http:
            while not self.stop.is_set():
                for name, call in calls.items():
                    try:
                        r = call(http)
                    except httpx.HTTPError as e:
                        self.bad.append(f"{name}: {type(e).__name__}")
                        continue
                    self.seen[(name, r.status_code)] += 1
                    if r.status_code == 503:
                        try:
                            assert_503(name, r)
                        except AssertionError as e:
                            self.bad.append(f"{name}: {e}")
                    elif r.status_code != 200:
                        self.bad.append(f"{name}: {r.status_code} {r.text[:200]}")
                time.sleep(0.01)

    def finish(self) -> None:
        self.stop.set()
        self.join(30)
        assert not self.bad, self.bad[:10]
        for name in ("nexi-token", "mobilepay", "axept"):
            assert self.seen[(name, 200)] > 0, self.seen


def wait_ready(fx: Fixture, since: float) -> float:
    """Seconds from ``since`` until /readyz says ready (bounded)."""
    while time.monotonic() - since < RECOVERY_DEADLINE:
        try:
            if fx.ready().status_code == 200:
                return time.monotonic() - since
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"/readyz not 200 within {RECOVERY_DEADLINE} s: {fx.ready().text}")


# --- PostgreSQL ----------------------------------------------------------------------------------------------
def pg_ctl(pg: PostgresServer, *args: str) -> None:
    """Stop or start the cluster in place (same data directory and port). PostgresServer's own
    stop() also deletes the cluster, so this drives pg_ctl through its helpers."""
    if args[0] == "stop":
        cmd = ["stop", "-D", str(pg.datadir), "-m", "fast", "-w", "-t", "30"]
    else:
        cmd = ["start", "-D", str(pg.datadir), "-l", str(pg.logfile), "-o", f"-p {pg.port}", "-w", "-t", "60"]
    pg._run([pg._tool("pg_ctl"), *cmd], 90, f"pg_ctl {args[0]}")


@pytest.mark.postgres
def test_postgres_outage_is_503_and_recovers_without_restart(tmp_path, capsys):
    pg = PostgresServer(bindir=require_pg_bin())
    pg.start()
    server = None
    try:
        server = LiveServer(tmp_path, database_url=pg.create_database("outage"), env=ENV).start()
        fx = Fixture(server)
        pid = server.proc.pid
        assert fx.ready().status_code == 200
        refresh = fx.b2b_login().json()["data"]["attributes"]["refresh"]
        access = fx.native_token().json()["access_token"]
        prober = Prober(fx)
        prober.start()
        time.sleep(0.3)

        pg_ctl(pg, "stop")
        down_at = time.monotonic()
        answers = {
            "nexi-token": fx.nexi_token(),
            "nexi-par": fx.nexi_par(),
            "native-token": fx.native_token(),
            "introspect": fx.introspect(access),
            "mobilepay": fx.mobilepay(),
            "axept": fx.axept(),
            "b2binpay-login": fx.b2b_login(),
            "b2binpay-refresh": fx.b2b_refresh(refresh),
        }
        for name, r in answers.items():
            assert_503(name, r)
        assert_not_ready(fx.ready(), "database")
        slowest_503 = max(r.elapsed.total_seconds() for r in answers.values())
        time.sleep(1.5)  # the prober sees the outage too; pooled connections go stale
        outage = time.monotonic() - down_at

        pg_ctl(pg, "start")
        recovered = wait_ready(fx, time.monotonic())
        time.sleep(0.3)
        prober.finish()
        assert any(status == 503 for (_, status) in prober.seen), prober.seen

        # The same process serves again, and the refresh token refused during the outage still works, once.
        assert server.proc.pid == pid and server.proc.poll() is None
        assert fx.nexi_token().status_code == 200
        assert fx.nexi_par().status_code == 201
        assert fx.native_token().status_code == 200
        assert fx.introspect(access).json()["active"] is True
        assert fx.mobilepay().status_code == 200
        assert fx.axept().status_code == 200
        assert fx.b2b_login().status_code == 200
        r = fx.b2b_refresh(refresh)
        assert r.status_code == 200, r.text
        assert fx.b2b_refresh(refresh).status_code == 401
        with capsys.disabled():
            print(
                f"\n  PostgreSQL outage {outage:.1f}s: every endpoint 503 (slowest {slowest_503 * 1000:.0f} ms), "
                f"/readyz 503; ready {recovered:.2f}s after PostgreSQL was back, no restart; prober answers "
                f"{dict(sorted((f'{n} {s}', c) for (n, s), c in prober.seen.items()))}"
            )
    finally:
        if server is not None:
            server.stop()
        pg.stop()


# --- Redis ---------------------------------------------------------------------------------------------------
def test_redis_outage_is_503_where_needed_and_recovers_without_restart(tmp_path, capsys):
    require_binary("redis-server", "/usr/bin/redis-server")
    redis = RedisServer().start()
    server = None
    try:
        server = LiveServer(tmp_path, env={**ENV, "TESSERA_REDIS_URL": redis.url}).start()
        fx = Fixture(server)
        pid = server.proc.pid
        assert fx.ready().status_code == 200
        r = fx.nexi_par()
        assert r.status_code == 201, r.text
        pushed = r.json()["request_uri"]
        assert fx.login_page(pushed).status_code == 200
        refresh = fx.b2b_login().json()["data"]["attributes"]["refresh"]
        spare = fx.b2b_login().json()["data"]["attributes"]["refresh"]
        access = fx.native_token().json()["access_token"]
        prober = Prober(fx)
        prober.start()
        time.sleep(0.3)

        redis.stop()
        down_at = time.monotonic()
        # What needs Redis: the short-lived artefacts (request_uris, codes, jti), the revoked access tokens.
        answers = {
            "nexi-par": fx.nexi_par(),
            "login-page": fx.login_page(pushed),
            "introspect": fx.introspect(access),
            "userinfo": fx.userinfo(access),
        }
        for name, r in answers.items():
            assert_503(name, r)
        assert_not_ready(fx.ready(), "redis")
        # What does not: every token endpoint (the request-rate and brute-force limits fall back
        # to the process; refresh tokens live in the database).
        assert fx.nexi_token().status_code == 200
        assert fx.native_token().status_code == 200
        assert fx.mobilepay().status_code == 200
        assert fx.axept().status_code == 200
        assert fx.b2b_login().status_code == 200
        assert fx.b2b_refresh(spare).status_code == 200  # refresh tokens live in the database
        slowest_503 = max(r.elapsed.total_seconds() for r in answers.values())
        time.sleep(0.5)
        outage = time.monotonic() - down_at

        redis = RedisServer(port=redis.port).start()  # the same address, empty (no persistence in the tests)
        recovered = wait_ready(fx, time.monotonic())
        time.sleep(0.3)
        prober.finish()
        # The token endpoints the prober calls need no Redis: every answer was a grant.
        assert prober.seen and all(status == 200 for (_, status) in prober.seen), prober.seen

        assert server.proc.pid == pid and server.proc.poll() is None
        r = fx.nexi_par()
        assert r.status_code == 201, r.text
        assert fx.login_page(r.json()["request_uri"]).status_code == 200
        # The request_uri pushed before the outage died with that Redis's memory: refused, not granted.
        assert fx.login_page(pushed).status_code == 400
        assert fx.mobilepay().status_code == 200
        assert fx.axept().status_code == 200
        assert fx.b2b_login().status_code == 200
        r = fx.b2b_refresh(refresh)  # refresh tokens live in the database: the one refused with 503 works
        assert r.status_code == 200, r.text
        with capsys.disabled():
            print(
                f"\n  Redis outage {outage:.1f}s: what needs Redis 503 (slowest {slowest_503 * 1000:.0f} ms), the "
                f"client-credentials tokens 200, /readyz 503; ready {recovered:.2f}s after Redis was back, no restart; "
                f"prober answers {dict(sorted((f'{n} {s}', c) for (n, s), c in prober.seen.items()))}"
            )
    finally:
        if server is not None:
            server.stop()
        redis.stop()
