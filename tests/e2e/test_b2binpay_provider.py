"""B2BINPAY as the provider and its public clients see it, against a real ``tessera serve``.

- The login endpoint takes 15 requests a minute from one client address (the provider's limit
  on requests made without prior authentication, provider-docs/reference-facts.md), then
  answers 429 ``throttled`` in the JSON:API shape with ``Retry-After``.
- ``meta.sign`` as the public clients check it (``bgrusnak/b2binpay-ts``: crypto-js
  ``HmacSHA256(meta.time + refresh, SHA256(login + password)).toString()``, i.e. keyed with
  the raw 32-byte digest, lowercase hex), computed here with the ``openssl`` command, not
  with Python's hmac nor tessera's code.
- The refresh answer read as the TypeScript client reads it: ``body.data.attributes``.
- The seal: a native refresh token is refused at ``/b2binpay/token/refresh/`` (401 2007) and
  a B2BINPAY one at ``/oauth2/token`` (400 ``invalid_grant``); a native refresh token needs
  its own client's authentication. Nothing is issued or consumed by a refusal.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa

from tessera.storage import schema
from tests.e2e import native_helpers as nh
from tests.e2e.test_b2binpay import (
    LOGIN,
    MEDIA,
    REFRESH,
    fresh_address,
    login_body,
    refresh_body,
    send,
)
from tests.support.live import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory) -> LiveServer:
    """The provider's budget, as shipped (LiveServer lifts it for the other suites)."""
    server = LiveServer(tmp_path_factory.mktemp("b2b-limit"), env={"TESSERA_B2BINPAY_LOGIN_PER_MINUTE": "15"}).start()
    yield server
    server.stop()


def refresh_rows(server: LiveServer) -> int:
    a = schema.artifacts
    with server.store.engine.connect() as c:
        return c.execute(sa.select(sa.func.count()).select_from(a).where(a.c.kind == "refresh_token")).scalar()


def openssl_sign(login: str, password: str, time_: str, refresh: str) -> str:
    """The third-party clients' check, done by openssl: key = the raw SHA-256 digest of
    login + password (given to openssl as hex bytes), message = meta.time + refresh."""
    digest = subprocess.run(
        ["openssl", "dgst", "-sha256", "-binary"], input=(login + password).encode(), capture_output=True, check=True
    ).stdout
    assert len(digest) == 32
    out = subprocess.run(
        ["openssl", "dgst", "-sha256", "-mac", "HMAC", "-macopt", f"hexkey:{digest.hex()}"],
        input=(time_ + refresh).encode(),
        capture_output=True,
        check=True,
    ).stdout.decode()
    return out.strip().rsplit(" ", 1)[-1].lower()


def assert_throttled(r: httpx.Response) -> None:
    assert r.status_code == 429, (r.status_code, r.text)
    assert r.headers["content-type"].split(";")[0].strip() == MEDIA
    assert r.headers["cache-control"] == "no-store"
    assert int(r.headers["retry-after"]) >= 1
    body = r.json()
    assert set(body) == {"errors"}, body
    (err,) = body["errors"]
    assert err["status"] == "429" and err["code"] == "throttled", err
    assert err["detail"].startswith("Request was throttled")


# --- the provider's login budget -------------------------------------------------------------------------------


def test_login_takes_15_a_minute_per_address_then_throttled(limited_server):
    app = limited_server.new_app(with_cert=False)
    address = fresh_address()
    for i in range(15):
        r = send(limited_server, LOGIN, login_body(app.client_id, app.client_secret), address=address)
        assert r.status_code == 200, (i, r.text)
    before = refresh_rows(limited_server)
    assert_throttled(send(limited_server, LOGIN, login_body(app.client_id, app.client_secret), address=address))
    # ... and a wrong password is throttled the same, before the password is even looked at.
    assert_throttled(send(limited_server, LOGIN, login_body(app.client_id, "wrong"), address=address))
    assert refresh_rows(limited_server) == before  # nothing issued
    # Another address has its own budget; the refresh endpoint is not part of this one.
    other = send(limited_server, LOGIN, login_body(app.client_id, app.client_secret), address=fresh_address())
    assert other.status_code == 200, other.text
    again = send(limited_server, REFRESH, refresh_body(other.json()["data"]["attributes"]["refresh"]), address=address)
    assert again.status_code == 200, again.text


def test_failed_logins_spend_the_budget_too(limited_server):
    app = limited_server.new_app(with_cert=False)
    address = fresh_address()
    for _ in range(4):  # below the brute-force lock of the login (5), which is a different limit
        assert send(limited_server, LOGIN, login_body(app.client_id, "wrong"), address=address).status_code == 400
    other = limited_server.new_app(with_cert=False)
    for i in range(11):
        r = send(limited_server, LOGIN, login_body(other.client_id, other.client_secret), address=address)
        assert r.status_code == 200, (i, r.text)
    assert_throttled(send(limited_server, LOGIN, login_body(other.client_id, other.client_secret), address=address))


def test_zero_lifts_the_budget(live_server):
    """``TESSERA_B2BINPAY_LOGIN_PER_MINUTE=0`` (how the other suites and the bench run)."""
    assert live_server.settings.b2binpay_login_per_minute == 0
    app = live_server.new_app(with_cert=False)
    address = fresh_address()
    for i in range(20):
        r = send(live_server, LOGIN, login_body(app.client_id, app.client_secret), address=address)
        assert r.status_code == 200, (i, r.text)


def test_the_default_budget_is_the_providers(tmp_path):
    from tessera.config import Settings

    assert Settings.load(tmp_path).b2binpay_login_per_minute == 15


# --- the public clients --------------------------------------------------------------------------------------


def test_sign_as_the_public_clients_compute_it(live_server):
    app = live_server.new_app(with_cert=False)
    r = send(live_server, LOGIN, login_body(app.client_id, app.client_secret))
    assert r.status_code == 200, r.text
    data = r.json()
    message_time, refresh = data["meta"]["time"], data["data"]["attributes"]["refresh"]
    expected = openssl_sign(app.client_id, app.client_secret, message_time, refresh)
    assert data["meta"]["sign"] == expected
    # The raw digest is the key: the hex text of the digest (the Python client's mistake) is not.
    hex_keyed = hmac.new(
        hashlib.sha256((app.client_id + app.client_secret).encode()).hexdigest().encode(),
        (message_time + refresh).encode(),
        hashlib.sha256,
    ).hexdigest()
    assert data["meta"]["sign"] != hex_keyed
    # A refresh answered after the login: the clients keep the new refresh token; a second
    # login signs its own pair again, which they check the same way.
    r2 = send(live_server, REFRESH, refresh_body(refresh))
    assert r2.status_code == 200, r2.text
    r3 = send(live_server, LOGIN, login_body(app.client_id, app.client_secret))
    body3 = r3.json()
    assert body3["meta"]["sign"] == openssl_sign(
        app.client_id, app.client_secret, body3["meta"]["time"], body3["data"]["attributes"]["refresh"]
    )


def test_refresh_answer_read_as_the_typescript_client_reads_it(live_server):
    """``const { data } = await sock.post(...)`` then ``data.data.attributes.{access, refresh,
    access_expired_at, refresh_expired_at, is_2fa_confirmed}`` (bgrusnak/b2binpay-ts)."""
    app = live_server.new_app(with_cert=False)
    first = send(live_server, LOGIN, login_body(app.client_id, app.client_secret)).json()
    r = send(live_server, REFRESH, refresh_body(first["data"]["attributes"]["refresh"]))
    assert r.status_code == 200, r.text
    data = r.json()  # axios's ``data``: the body
    attributes = data["data"]["attributes"]
    access_token, refresh_token = attributes["access"], attributes["refresh"]
    assert isinstance(access_token, str) and access_token.count(".") == 2
    assert isinstance(refresh_token, str) and refresh_token != first["data"]["attributes"]["refresh"]
    access_at = datetime.fromisoformat(attributes["access_expired_at"].replace("Z", "+00:00"))  # moment(...) parses it
    refresh_at = datetime.fromisoformat(attributes["refresh_expired_at"].replace("Z", "+00:00"))
    now = datetime.now(UTC)
    assert now < access_at < refresh_at
    assert attributes["is_2fa_confirmed"] is False
    # The next refresh, with the token just read, works: the client's loop goes on.
    assert send(live_server, REFRESH, refresh_body(refresh_token)).status_code == 200


def test_the_typescript_clients_requests_as_it_sends_them(live_server):
    """bgrusnak/b2binpay-ts posts ``{data: {data: {type, attributes}}}`` with axios's default
    ``Content-Type: application/json``, to ``/token/`` and to ``/token/refresh/``, and checks
    ``meta.sign`` with ``HmacSHA256(meta.time + refresh, SHA256(login + password))``: the login,
    the check and the refresh all work; the answers stay JSON:API."""
    app = live_server.new_app(with_cert=False)

    def ts_post(path: str, attributes: dict) -> httpx.Response:
        body = json.dumps({"data": {"data": {"type": "auth-token", "attributes": attributes}}}).encode()
        return send(live_server, path, body, media="application/json;charset=utf-8")

    r = ts_post(LOGIN, {"login": app.client_id, "password": app.client_secret})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].split(";")[0].strip() == MEDIA
    data = r.json()
    refresh = data["data"]["attributes"]["refresh"]
    assert data["meta"]["sign"] == openssl_sign(app.client_id, app.client_secret, data["meta"]["time"], refresh)
    r = ts_post(REFRESH, {"refresh": refresh})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["attributes"]["refresh"] != refresh
    # Only that one extra level: a resource object beside the inner data is still refused.
    body = json.dumps({"data": {"data": {"type": "auth-token", "attributes": {"refresh": refresh}}, "type": "x"}})
    assert send(live_server, REFRESH, body.encode(), media="application/json").status_code == 400


# --- the seal between B2BINPAY and the native surface --------------------------------------------------------


@pytest.fixture(scope="module")
def merchant(live_server):
    return live_server.new_merchant()


def native_refresh(server: LiveServer, nc: nh.NativeClient, merchant) -> str:
    tokens, _code = nh.authorization_code_flow(server, nc, merchant, scope="openid payments:read")
    return tokens["refresh_token"]


def native_grant(server: LiveServer, nc: nh.NativeClient, token: str) -> httpx.Response:
    with nh.http(server, nc) as c:
        return c.post(nh.TOKEN, data={"grant_type": "refresh_token", "refresh_token": token}, auth=nh.basic(nc))


def test_native_refresh_token_is_refused_at_the_b2binpay_refresh(live_server, merchant):
    nc = nh.register(live_server)
    token = native_refresh(live_server, nc, merchant)
    before = refresh_rows(live_server)
    r = send(live_server, REFRESH, refresh_body(token))
    assert r.status_code == 401, r.text
    (err,) = r.json()["errors"]
    assert err["code"] == "2007" and err["status"] == "401"
    assert "refresh" not in json.dumps(r.json()).replace("refresh token", "")
    assert refresh_rows(live_server) == before  # nothing issued
    # Nothing consumed either: the token still works where it belongs.
    ok = native_grant(live_server, nc, token)
    assert ok.status_code == 200, ok.text


def test_b2binpay_refresh_token_is_refused_at_the_native_token_endpoint(live_server):
    nc = nh.register(live_server)  # client_secret_basic and _post, refresh_token grant
    first = send(live_server, LOGIN, login_body(nc.client_id, nc.client_secret))
    assert first.status_code == 200, first.text
    token = first.json()["data"]["attributes"]["refresh"]
    before = refresh_rows(live_server)
    r = native_grant(live_server, nc, token)
    nh.assert_error(r, 400, "invalid_grant")
    assert refresh_rows(live_server) == before
    ok = send(live_server, REFRESH, refresh_body(token))  # still good at its own endpoint
    assert ok.status_code == 200, ok.text


def test_native_refresh_token_needs_its_own_clients_authentication(live_server, merchant):
    a, b = nh.register(live_server), nh.register(live_server)
    token = native_refresh(live_server, a, merchant)
    before = refresh_rows(live_server)
    r = native_grant(live_server, b, token)
    body = nh.assert_error(r, 400, "invalid_grant")
    assert "refresh_token" not in body and "access_token" not in body
    assert refresh_rows(live_server) == before
    # A presented with B's secret under A's id is a failed client authentication, not a grant.
    with nh.http(live_server, a) as c:
        wrong = c.post(
            nh.TOKEN,
            data={"grant_type": "refresh_token", "refresh_token": token},
            auth=httpx.BasicAuth(a.client_id, b.client_secret),
        )
    nh.assert_error(wrong, 401, "invalid_client")
    assert refresh_rows(live_server) == before


def test_the_php_clients_idempotency_key_and_login_after_a_refused_refresh(live_server):
    """``basbit/b2binpay``: ``Idempotency-Key: <uuid4>`` on every call; a refused refresh makes it log in again."""
    import uuid

    from tests.e2e.test_b2binpay import client

    app = live_server.new_app(with_cert=False)
    with client(live_server) as c:

        def post(path: str, body: dict) -> httpx.Response:
            return c.post(
                path,
                content=json.dumps(body).encode(),
                headers={"Content-Type": MEDIA, "Idempotency-Key": str(uuid.uuid4())},
            )

        first = post(LOGIN, login_body(app.client_id, app.client_secret))
        assert first.status_code == 200, first.text
        token = first.json()["data"]["attributes"]["refresh"]
        assert post(REFRESH, refresh_body(token)).status_code == 200
        refused = post(REFRESH, refresh_body(token))  # used: refused, the family revoked
        assert refused.status_code == 401 and refused.json()["errors"][0]["code"] == "2007"
        again = post(LOGIN, login_body(app.client_id, app.client_secret))
        assert again.status_code == 200, again.text
        assert post(REFRESH, refresh_body(again.json()["data"]["attributes"]["refresh"])).status_code == 200
