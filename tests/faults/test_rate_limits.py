"""Request-rate limits (issue 5): per credential and per client address on the token, PAR,
axept, B2BINPAY and MobilePay endpoints; 429 with ``Retry-After`` in each profile's own
error shape; shared through Redis by several instances.

The servers run with tiny limits from the environment: a credential may make 3 requests
at once, then one per 2 s; an address 4, then one per 2 s. They run in proxy mode (plain
HTTP on loopback; the certificate and ``X-Real-IP`` headers are honoured from 127.0.0.1),
so that each request can come from an address of its own.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest

from tessera.core import apikeys
from tessera.core.models import Merchant
from tests.support.live import PLAIN_HTTP, AppIdentity, LiveServer, SharedHomeServer
from tests.support.redis_server import RedisServer, require_binary

pytestmark = pytest.mark.slow

CRED_BURST, ADDR_BURST, RATE = 3, 4, 0.5
LIMITS = {
    "TESSERA_MTLS_MODE": "proxy",
    "TESSERA_RATE_LIMIT_PER_CREDENTIAL": str(RATE),
    "TESSERA_RATE_LIMIT_CREDENTIAL_BURST": str(CRED_BURST),
    "TESSERA_RATE_LIMIT_PER_ADDRESS": str(RATE),
    "TESSERA_RATE_LIMIT_ADDRESS_BURST": str(ADDR_BURST),
    "TESSERA_LOGIN_MAX_FAILURES": "1000",  # the brute-force lockout stays out of the way
}
FORM = "application/x-www-form-urlencoded"
JSONAPI = "application/vnd.api+json"
_addresses = itertools.count(1)


def fresh_address() -> str:
    n = next(_addresses)
    return f"198.51.{n // 250}.{n % 250 + 1}"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> LiveServer:
    srv = LiveServer(tmp_path_factory.mktemp("ratelimit"), env=LIMITS).start()
    yield srv
    srv.stop()


def post(
    srv: LiveServer,
    path: str,
    *,
    address: str | None = None,
    app: AppIdentity | None = None,
    headers: dict[str, str] | None = None,
    **kw,
) -> httpx.Response:
    h = {"X-Real-IP": address or fresh_address(), **(headers or {})}
    if app is not None and app.cert is not None:
        h["X-SSL-Client-Cert"] = quote(app.cert.read_text(), safe="")
    return httpx.post(f"http://127.0.0.1:{srv.port}{path}", headers=h, timeout=15, verify=PLAIN_HTTP, **kw)


# --- the endpoints: a request that passes the credential check, and one that does not -------------------
def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def nexi_token(srv, app, address=None, secret=None):
    return post(
        srv,
        "/softpos/appenrollment/token",
        app=app,
        address=address,
        data={
            "grant_type": "client_credentials",
            "client_id": app.client_id,
            "client_secret": secret or app.client_secret,
        },
    )


def nexi_code_token(srv, app, address=None, secret=None):
    return post(
        srv,
        "/softpos/as/token",
        app=app,
        address=address,
        data={
            "grant_type": "authorization_code",
            "client_id": app.client_id,
            "client_secret": secret or app.client_secret,
            "code": "no-such-code",
            "redirect_uri": app.redirect_uri,
            "code_verifier": "v" * 43,
        },
    )


def nexi_par(srv, app, address=None, secret=None):
    token = app.token if secret is None else "not-a-token"
    return post(
        srv,
        "/softpos/as/par",
        app=app,
        address=address,
        headers={"Authorization": f"Bearer {token}"},
        data={
            "client_assertion": "e30.e30.e30.e30.e30",
            "client_id": app.client_id,
            "scope": "oidc",
            "redirect_uri": app.redirect_uri,
        },
    )


def native_token(srv, app, address=None, secret=None):
    return post(
        srv,
        "/oauth2/token",
        address=address,
        auth=(app.client_id, secret or app.client_secret),
        data={"grant_type": "client_credentials"},
    )


def native_par(srv, app, address=None, secret=None):
    challenge = b64u(hashlib.sha256(b"verifier" * 8).digest())
    return post(
        srv,
        "/oauth2/par",
        address=address,
        auth=(app.client_id, secret or app.client_secret),
        data={
            "response_type": "code",
            "redirect_uri": app.redirect_uri,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )


def axept(srv, app, address=None, secret=None):
    return post(
        srv,
        "/axept/v1/authenticate",
        address=address,
        json={"merchantId": app.merchant_id, "keyId": app.key_id, "key": secret or app.key},
    )


def b2b_login(srv, app, address=None, secret=None):
    body = {
        "data": {"type": "auth-token", "attributes": {"login": app.client_id, "password": secret or app.client_secret}}
    }
    return post(srv, "/b2binpay/token/", address=address, content=json.dumps(body), headers={"Content-Type": JSONAPI})


def b2b_refresh_with(srv, token: str, address=None):
    body = {"data": {"type": "auth-token", "attributes": {"refresh": token}}}
    return post(
        srv, "/b2binpay/token/refresh/", address=address, content=json.dumps(body), headers={"Content-Type": JSONAPI}
    )


def mobilepay(srv, app, address=None, secret=None):
    return post(
        srv,
        "/integrator-authentication/connect/token",
        address=address,
        auth=(app.client_id, secret or app.client_secret),
        data={"grant_type": "client_credentials"},
    )


# --- each profile's 429 --------------------------------------------------------------------------------
def assert_oauth_429(r: httpx.Response) -> None:
    assert r.status_code == 429, (r.status_code, r.text[:300])
    assert r.json()["error"] == "slow_down", r.text
    assert r.headers["content-type"].startswith("application/json")


def assert_axept_429(r: httpx.Response) -> None:
    assert r.status_code == 429, (r.status_code, r.text[:300])
    body = r.json()
    assert body["status"] == 429 and body["error"] == "Too Many Requests" and body["message"], body


def assert_b2b_429(r: httpx.Response) -> None:
    assert r.status_code == 429, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith(JSONAPI)
    (err,) = r.json()["errors"]
    assert err["status"] == "429" and err["code"] == "throttled", err
    assert f"Expected available in {r.headers['Retry-After']} seconds" in err["detail"], err


def assert_429(r: httpx.Response, shape: Callable[[httpx.Response], None]) -> int:
    shape(r)
    assert "no-store" in r.headers.get("cache-control", "")
    wait = int(r.headers["Retry-After"])
    assert 1 <= wait <= 1 / RATE, wait
    return wait


@dataclass
class Case:
    name: str
    send: Callable
    shape: Callable
    ok: int  # the status of a request that passes the credential check

    def __str__(self) -> str:
        return self.name


CASES = [
    Case("nexi-token", nexi_token, assert_oauth_429, 200),
    Case("nexi-code-token", nexi_code_token, assert_oauth_429, 400),  # no such code, but the client authenticated
    Case(
        "nexi-par", nexi_par, assert_oauth_429, 400
    ),  # a genuine token; the assertion is refused (400, as Nexi) after the limit
    Case("native-token", native_token, assert_oauth_429, 200),
    Case("native-par", native_par, assert_oauth_429, 201),
    Case("axept", axept, assert_axept_429, 200),
    Case("b2binpay-login", b2b_login, assert_b2b_429, 200),
    Case("mobilepay", mobilepay, assert_oauth_429, 200),
]


def credential(srv: LiveServer, case: Case) -> AppIdentity:
    """A fresh credential for ``case`` (so that the cases do not share a budget)."""
    if case.name == "axept":
        mid = secrets.randbelow(10**9) + 1
        srv.store.create_merchant(Merchant(mid, f"Shop {mid}", None, int(time.time())))
        record, value = apikeys.create_key(srv.store, srv.settings.pepper_bytes(), mid, int(time.time()), max_enabled=3)
        app = AppIdentity("", "", "")
        app.merchant_id, app.key_id, app.key = record.merchant_id, record.key_id, value
        return app
    app = srv.new_app(with_cert=case.name.startswith("nexi"))
    if case.name == "nexi-par":
        r = nexi_token(srv, app)  # spends one of the client's requests: the budget is per credential
        assert r.status_code == 200, r.text
        app.token = r.json()["access_token"]
    return app


@pytest.mark.parametrize("case", CASES, ids=str)
def test_per_credential_limit(server, case):
    app = credential(server, case)
    spent = 1 if case.name == "nexi-par" else 0
    # Each request from an address of its own: only the credential's budget counts.
    statuses = [case.send(server, app).status_code for _ in range(CRED_BURST - spent)]
    assert statuses == [case.ok] * (CRED_BURST - spent)
    assert_429(case.send(server, app), case.shape)
    # Another credential is not affected.
    other = credential(server, case)
    assert case.send(server, other).status_code == case.ok


@pytest.mark.parametrize("case", CASES, ids=str)
def test_per_address_limit(server, case):
    app = credential(server, case)
    address = fresh_address()
    # Any request counts against its address, a failing one included (here: a wrong secret).
    statuses = [
        case.send(server, app, address, secret="wrong-" + secrets.token_hex(8)).status_code for _ in range(ADDR_BURST)
    ]
    assert 429 not in statuses and all(400 <= s < 500 for s in statuses), statuses
    assert_429(case.send(server, app, address, secret="wrong"), case.shape)
    assert_429(case.send(server, app, address), case.shape)  # the right credential too: the address is over
    assert case.send(server, app).status_code == case.ok  # from elsewhere it works


def forged_refresh(client_id: str) -> str:
    """Shaped like a refresh token of ``client_id``, but not signed by the server."""
    header = b64u(json.dumps({"alg": "ES256", "typ": "rt+jwt"}).encode())
    claims = b64u(
        json.dumps({"client_id": client_id, "jti": secrets.token_hex(8), "exp": int(time.time()) + 600}).encode()
    )
    return f"{header}.{claims}.{b64u(b'x' * 64)}"


def test_b2binpay_refresh_limit_spares_the_refused_token_and_forged_tokens_spend_nothing(server):
    app = server.new_app(with_cert=False)
    # Whoever knows the login can forge tokens naming it, but they do not spend its budget.
    for _ in range(2 * CRED_BURST):
        r = b2b_refresh_with(server, forged_refresh(app.client_id))
        assert r.status_code == 401 and r.json()["errors"][0]["code"] == "2007", r.text
    r = b2b_login(server, app)
    assert r.status_code == 200, r.text
    token = r.json()["data"]["attributes"]["refresh"]
    for _ in range(CRED_BURST - 1):  # login + 2 refreshes: the burst
        r = b2b_refresh_with(server, token)
        assert r.status_code == 200, r.text
        token = r.json()["data"]["attributes"]["refresh"]
    wait = assert_429(b2b_refresh_with(server, token), assert_b2b_429)
    # The refused refresh did not consume the token: after Retry-After it works, once.
    time.sleep(wait)
    r = b2b_refresh_with(server, token)
    assert r.status_code == 200, r.text
    # and the address limit applies to the refresh endpoint as well
    address = fresh_address()
    assert [b2b_refresh_with(server, "x.y.z", address).status_code for _ in range(ADDR_BURST)] == [401] * ADDR_BURST
    assert_429(b2b_refresh_with(server, "x.y.z", address), assert_b2b_429)


def test_rate_limit_refusals_are_counted_by_reason(server):
    text = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10, verify=PLAIN_HTTP).text
    assert 'reason="rate_limit_credential"' in text and 'reason="rate_limit_address"' in text


def test_zero_disables_the_limits(tmp_path):
    env = {**LIMITS, "TESSERA_RATE_LIMIT_PER_CREDENTIAL": "0", "TESSERA_RATE_LIMIT_PER_ADDRESS": "0"}
    srv = LiveServer(tmp_path, env=env).start()
    try:
        app = srv.new_app(with_cert=False)
        address = fresh_address()
        statuses = {mobilepay(srv, app, address).status_code for _ in range(3 * ADDR_BURST)}
        assert statuses == {200}
    finally:
        srv.stop()


# --- several instances share the limits through Redis ---------------------------------------------------
def test_limits_are_shared_through_redis_and_fall_back_to_each_process_without_it(tmp_path):
    require_binary("redis-server", "/usr/bin/redis-server")
    redis = RedisServer().start()
    started: list[LiveServer] = []
    try:
        env = {**LIMITS, "TESSERA_REDIS_URL": redis.url}
        a = LiveServer(tmp_path / "a", env=env)
        (tmp_path / "a").mkdir()
        started.append(a.start())  # initialises the shared home (SQLite, WAL: two processes are fine)
        b = SharedHomeServer(tmp_path / "b", env=env, shared_home=a.home)
        (tmp_path / "b").mkdir()
        started.append(b.start())
        b.store = a.store

        # per credential: 3 requests spread over both instances, then both refuse
        app = a.new_app(with_cert=True)
        assert [nexi_token(a, app).status_code, nexi_token(b, app).status_code, nexi_token(a, app).status_code] == [
            200
        ] * 3
        assert_429(nexi_token(b, app), assert_oauth_429)
        assert_429(nexi_token(a, app), assert_oauth_429)
        # per address: 4 requests spread over both instances, then both refuse
        others, address = [a.new_app(with_cert=False) for _ in range(3)], fresh_address()
        pairs = zip((a, b, a, b), others * 2, strict=False)  # the first four of the six
        assert [mobilepay(s, o, address).status_code for s, o in pairs] == [200] * 4
        assert_429(mobilepay(a, others[2], address), assert_oauth_429)
        assert_429(mobilepay(b, others[1], address), assert_oauth_429)
        keys = redis.client().keys("tessera:rate-*")
        assert any(k.startswith("tessera:rate-credential:client:") for k in keys), keys
        assert f"tessera:rate-address:{address}" in keys

        # Redis down: the limits fail open to each process's own (the Nexi token needs no Redis)
        redis.stop()
        third = a.new_app(with_cert=True)
        assert [nexi_token(a, third).status_code for _ in range(CRED_BURST)] == [200] * CRED_BURST
        assert_429(nexi_token(a, third), assert_oauth_429)
        assert nexi_token(b, third).status_code == 200  # instance B counts on its own meanwhile
    finally:
        for s in reversed(started):
            s.stop()
        redis.stop()
