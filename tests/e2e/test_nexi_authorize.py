"""The end of the SoftPOS enrollment: ``/softpos/as/authorize`` (the merchant's login, which
uses the request_uri up) and ``/softpos/as/token`` (the authorization code, with PKCE)."""

from __future__ import annotations

import time

import httpx
import pytest

from tessera.core.models import MerchantUser
from tessera.core.secrets import hash_password
from tests.e2e.nexi_helpers import (
    AUTHORIZE_PATH,
    assert_error,
    base_url,
    build_assertion,
    code_from,
    count_artifacts,
    enrollments_of,
    exchange,
    get_token,
    http,
    login,
    login_for_code,
    par_form,
    par_request,
    pkce_pair,
    push,
    verify_server_jwt,
    x5t_s256,
)
from tests.support.live import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(live_server):
    return live_server.new_app()


@pytest.fixture(scope="module")
def other(live_server):
    return live_server.new_app()


@pytest.fixture(scope="module")
def browser(live_server):
    """The merchant's browser: no client certificate."""
    with http(live_server, cert=None) as c:
        yield c


@pytest.fixture(scope="module")
def backend(live_server, app):
    with http(live_server, app) as c:
        yield c


@pytest.fixture
def merchant(live_server, app):
    return live_server.new_merchant(app)


def assert_page(resp: httpx.Response, status: int, error: str | None = None) -> str:
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    assert resp.headers["content-type"].startswith("text/html")
    assert "no-store" in resp.headers.get("cache-control", "")
    assert resp.headers.get("x-frame-options") == "DENY"
    if error is not None:
        assert f"<code>{error}</code>" in resp.text, resp.text
    return resp.text


def authorize_get(c: httpx.Client, client_id: str | None, request_uri: str | None) -> httpx.Response:
    params = {k: v for k, v in {"client_id": client_id, "request_uri": request_uri}.items() if v is not None}
    return c.get(AUTHORIZE_PATH, params=params)


# =============================================================================================
# authorize: the login page and the request_uri
# =============================================================================================


def test_login_page(live_server, app, merchant, browser):
    uri = push(live_server, app, merchant)
    page = assert_page(authorize_get(browser, app.client_id, uri), 200)
    assert '<form method="post"' in page
    assert f'name="request_uri" value="{uri}"' in page
    assert f'name="client_id" value="{app.client_id}"' in page
    assert merchant.username in page
    assert "frame-ancestors 'none'" in authorize_get(browser, app.client_id, uri).headers["content-security-policy"]


def test_login_page_without_request_uri(app, browser):
    assert_page(authorize_get(browser, app.client_id, None), 400, "invalid_request")


def test_login_page_unknown_request_uri(app, browser):
    assert_page(
        authorize_get(browser, app.client_id, "urn:softpos_00000000-0000-4000-8000-000000000000"),
        400,
        "invalid_request_uri",
    )


def test_wrong_password_keeps_request_uri_usable(live_server, app, merchant, browser):
    uri = push(live_server, app, merchant, state="s1")
    codes_before = count_artifacts(live_server, "authorization_code", app.client_id)
    r = login(browser, app, uri, merchant.username, "wrong password")
    page = assert_page(r, 401)
    assert 'id="error"' in page and "location" not in r.headers
    assert count_artifacts(live_server, "authorization_code", app.client_id) == codes_before
    assert_page(authorize_get(browser, app.client_id, uri), 200)
    q = code_from(login(browser, app, uri, merchant.username, merchant.password), app)
    assert q["state"] == "s1"


def test_another_users_credentials_refused(live_server, app, merchant, browser):
    """A user of another merchant, with their own correct password: not the username pushed."""
    stranger = live_server.new_merchant(app)
    uri = push(live_server, app, merchant)
    assert_page(login(browser, app, uri, stranger.username, stranger.password), 401)
    code_from(login(browser, app, uri, merchant.username, merchant.password), app)


def test_another_clients_request_uri(live_server, app, other, merchant, browser):
    uri = push(live_server, app, merchant)
    assert_page(authorize_get(browser, other.client_id, uri), 400, "invalid_request_uri")
    assert_page(login(browser, other, uri, merchant.username, merchant.password), 400, "invalid_request_uri")
    # the owner can still use it
    code_from(login(browser, app, uri, merchant.username, merchant.password), app)


def test_login_redirects_with_code_state_and_iss(live_server, app, merchant, browser):
    uri = push(live_server, app, merchant, state="opaque-state-123")
    r = login(browser, app, uri, merchant.username.upper(), merchant.password)  # usernames are case-insensitive
    assert "no-store" in r.headers.get("cache-control", "")
    q = code_from(r, app)
    assert q["state"] == "opaque-state-123"
    assert q["iss"] == base_url(live_server)
    assert len(q["code"]) >= 32


def test_request_uri_reused_after_login(live_server, app, merchant, browser):
    uri = push(live_server, app, merchant)
    code_from(login(browser, app, uri, merchant.username, merchant.password), app)
    assert_page(authorize_get(browser, app.client_id, uri), 400, "invalid_request_uri")
    assert_page(login(browser, app, uri, merchant.username, merchant.password), 400, "invalid_request_uri")


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_authorize_wrong_method(browser, method):
    assert_error(browser.request(method, AUTHORIZE_PATH), 405, "invalid_request")


# =============================================================================================
# token: the authorization code
# =============================================================================================


def fresh_code(live_server, app, merchant, *, pkce: bool = True, scope: str = "oidc"):
    verifier, challenge = pkce_pair()
    uri = push(live_server, app, merchant, code_challenge=challenge if pkce else None, scope=scope)
    return login_for_code(live_server, app, merchant, uri), (verifier if pkce else None)


def test_code_exchange_success(live_server, app, merchant, backend):
    code, verifier = fresh_code(live_server, app, merchant, scope="openid email")
    r = exchange(backend, app, code, code_verifier=verifier)
    assert r.status_code == 200, r.text
    assert "no-store" in r.headers.get("cache-control", "")
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == "openid email"
    _, at = verify_server_jwt(live_server, body["access_token"])
    assert at["client_id"] == app.client_id and at["sub"] == merchant.username
    assert at["cnf"]["x5t#S256"] == x5t_s256(app.cert)
    header, idt = verify_server_jwt(live_server, body["id_token"])
    assert idt["aud"] == app.client_id
    assert idt["sub"] == merchant.username
    assert idt["iss"] == base_url(live_server)
    assert idt["exp"] > time.time()
    assert idt["email"] == merchant.username

    rows = [
        e
        for e in live_server.cli_json("enrollments", "list")["enrollments"]
        if e["client_id"] == app.client_id and e["username_merchant"] == merchant.username
    ]
    assert len(rows) == 1
    e = rows[0]
    assert e["merchantId"] == merchant.merchant_id
    assert e["pointOfSale"] == merchant.pos
    assert e["terminal_ids"] == [merchant.softpos_tid, merchant.mpos_tid]


def test_code_exchange_without_pkce(live_server, app, merchant, backend):
    code, _ = fresh_code(live_server, app, merchant, pkce=False)
    r = exchange(backend, app, code)
    assert r.status_code == 200, r.text
    assert "id_token" in r.json()


def test_code_verifier_missing(live_server, app, merchant, backend):
    code, verifier = fresh_code(live_server, app, merchant)
    assert_error(exchange(backend, app, code), 400, "invalid_request")
    assert not [e for e in enrollments_of(live_server, app.client_id) if e.username == merchant.username]
    # a malformed request does not use the code up
    assert exchange(backend, app, code, code_verifier=verifier).status_code == 200


def test_code_verifier_wrong(live_server, app, merchant, backend):
    code, verifier = fresh_code(live_server, app, merchant)
    other_verifier, _ = pkce_pair()
    assert_error(exchange(backend, app, code, code_verifier=other_verifier), 400, "invalid_grant")
    # a wrong verifier burns the code (grants.authorization_code): the right one comes too late
    assert_error(exchange(backend, app, code, code_verifier=verifier), 400, "invalid_grant")
    assert not [e for e in enrollments_of(live_server, app.client_id) if e.username == merchant.username]


def test_code_verifier_without_pushed_challenge(live_server, app, merchant, backend):
    code, _ = fresh_code(live_server, app, merchant, pkce=False)
    verifier, _ = pkce_pair()
    assert_error(exchange(backend, app, code, code_verifier=verifier), 400, "invalid_grant")


def test_code_replay_revokes_the_first_token(live_server, app, merchant, backend):
    code, verifier = fresh_code(live_server, app, merchant)
    first = exchange(backend, app, code, code_verifier=verifier)
    assert first.status_code == 200, first.text
    token = first.json()["access_token"]

    # the token works at PAR before the replay ...
    a = build_assertion(live_server, app, merchant)
    assert par_request(backend, token, par_form(app, a.token)).status_code == 201

    assert_error(exchange(backend, app, code, code_verifier=verifier), 400, "invalid_grant")

    # ... and is refused once the code was replayed
    b = build_assertion(live_server, app, merchant)
    body = assert_error(par_request(backend, token, par_form(app, b.token)), 401, "invalid_token")
    assert "revoked" in body.get("error_description", "")
    assert any(
        ev.kind == "authorization_code_replayed" and ev.client_id == app.client_id
        for ev in live_server.store.list_events()
    )


def test_code_used_by_another_client(live_server, app, other, merchant):
    code, verifier = fresh_code(live_server, app, merchant)
    with http(live_server, other) as c:
        assert_error(
            exchange(c, other, code, code_verifier=verifier, redirect_uri=app.redirect_uri), 400, "invalid_grant"
        )
    assert not [e for e in live_server.store.list_enrollments() if e.username == merchant.username]


def test_code_redirect_uri_mismatch(live_server, app, merchant, backend):
    code, verifier = fresh_code(live_server, app, merchant)
    assert_error(
        exchange(backend, app, code, code_verifier=verifier, redirect_uri=app.redirect_uri + "/"), 400, "invalid_grant"
    )
    assert_error(exchange(backend, app, code, code_verifier=verifier, redirect_uri=None), 400, "invalid_grant")


def test_id_token_is_not_an_access_token(live_server, app, merchant, backend):
    """Token confusion: the id_token (same issuer, same signing key) presented as the Bearer token."""
    code, verifier = fresh_code(live_server, app, merchant)
    id_token = exchange(backend, app, code, code_verifier=verifier).json()["id_token"]
    a = build_assertion(live_server, app, merchant)
    assert_error(par_request(backend, id_token, par_form(app, a.token)), 401, "invalid_token")


def test_code_unknown(app, backend):
    assert_error(exchange(backend, app, "not-a-code"), 400, "invalid_grant")


def test_code_missing(app, backend):
    assert_error(exchange(backend, app, None), 400, "invalid_request")


def test_code_exchange_needs_client_authentication(live_server, app, merchant, backend):
    code, verifier = fresh_code(live_server, app, merchant)
    assert_error(exchange(backend, app, code, code_verifier=verifier, client_secret="wrong"), 401, "invalid_client")
    with http(live_server, cert=None) as c:
        assert_error(exchange(c, app, code, code_verifier=verifier), 401, "invalid_client")
    assert_error(
        exchange(backend, app, code, code_verifier=verifier, grant_type="client_credentials"),
        400,
        "unsupported_grant_type",
    )
    # none of that used the code up
    assert exchange(backend, app, code, code_verifier=verifier).status_code == 200


def test_tid_bound_at_exchange_time(live_server, app, merchant, backend):
    """Two users of one merchant pushed for the same SoftPOS TID before either finished:
    the second exchange is refused and enrolls nothing."""
    user2 = f"other{merchant.merchant_id}@shop.example"
    live_server.store.add_user(MerchantUser(user2, merchant.merchant_id, hash_password("pw two")))
    second = type(merchant)(
        merchant.merchant_id, merchant.pos, merchant.softpos_tid, merchant.mpos_tid, user2, "pw two"
    )
    code1, v1 = fresh_code(live_server, app, merchant)
    code2, v2 = fresh_code(live_server, app, second)
    assert exchange(backend, app, code1, code_verifier=v1).status_code == 200
    assert_error(exchange(backend, app, code2, code_verifier=v2), 400, "invalid_grant")
    assert not [e for e in live_server.store.list_enrollments() if e.username == user2]


# =============================================================================================
# expiry: a server with short lifetimes
# =============================================================================================


@pytest.fixture(scope="module")
def expired(tmp_path_factory):
    """A server with short lifetimes. Everything is set up at once, then one wait lets the
    Nexi token (3 s), the request_uri (2 s) and the code (1 s) all expire."""
    server = LiveServer(
        tmp_path_factory.mktemp("short-ttl"),
        env={"TESSERA_PAR_TTL": "2", "TESSERA_CODE_TTL": "1", "TESSERA_NEXI_TOKEN_TTL": "3"},
    ).start()
    try:
        app = server.new_app()
        m1, m2, m3 = (server.new_merchant(app) for _ in range(3))
        token = get_token(server, app)
        issued = time.time()
        uri = push(server, app, m1, token=token, expires_in=2)
        verifier, challenge = pkce_pair()
        code = login_for_code(
            server, app, m2, push(server, app, m2, token=token, code_challenge=challenge, expires_in=2)
        )
        time.sleep(max(0.0, issued + 4.1 - time.time()))
        yield dict(server=server, app=app, m1=m1, m2=m2, m3=m3, token=token, uri=uri, code=code, verifier=verifier)
    finally:
        server.stop()


def test_expired_request_uri(expired):
    server, app, m1 = expired["server"], expired["app"], expired["m1"]
    with http(server, cert=None) as b:
        assert_page(authorize_get(b, app.client_id, expired["uri"]), 400, "invalid_request_uri")
        assert_page(login(b, app, expired["uri"], m1.username, m1.password), 400, "invalid_request_uri")


def test_expired_code(expired):
    server, app = expired["server"], expired["app"]
    with http(server, app) as c:
        assert_error(exchange(c, app, expired["code"], code_verifier=expired["verifier"]), 400, "invalid_grant")
    assert not enrollments_of(server, app.client_id)


def test_expired_nexi_token_at_par(expired):
    server, app = expired["server"], expired["app"]
    a = build_assertion(server, app, expired["m3"])
    with http(server, app) as c:
        body = assert_error(par_request(c, expired["token"], par_form(app, a.token)), 401, "invalid_token")
    assert "expired" in body.get("error_description", "")
