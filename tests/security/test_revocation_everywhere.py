"""Checklist rows 33 and 42: a revoked client, a revoked certificate, a revoked refresh family
and a disabled axept key are refused at once at every endpoint that takes a token or a
credential, introspection and userinfo included. On SQLite and on PostgreSQL (the workers
cache clients and certificates and drop them on the database's change notices: each check
below runs right after the revocation, with no wait). PostgreSQL hands its NOTIFY to the
worker asynchronously, a moment after the commit (docs/security.md): a request sent in that
moment may still be answered from the cache (on a machine as loaded as the test run's, the
moment has reached a few hundred milliseconds), so on PostgreSQL the first request after each
change made from the test's process is repeated until refused, within ``NOTIFY_BOUND``
(``after_notice``); every later check of the row is then made once. SQLite: no repetition.
"""

from __future__ import annotations

import json
import secrets
import ssl
import time
from collections.abc import Callable

import httpx
import pytest

from tessera.core import apikeys
from tessera.core.models import Merchant
from tests.e2e.native_helpers import INTROSPECT, REVOKE, TOKEN, USERINFO, assert_error, basic, http, register
from tests.support.live import LiveServer

JSONAPI = "application/vnd.api+json"
#: How long a PostgreSQL NOTIFY may take to reach a worker on this loaded test machine (it
#: normally takes well under a millisecond; a revocation missing it altogether would fail).
NOTIFY_BOUND = 2.0
INACTIVE = {"active": False}


def now() -> int:
    return int(time.time())


def after_notice(server: LiveServer, send: Callable[[], httpx.Response], refused: Callable[[httpx.Response], bool]):
    """``send()``'s answer; on PostgreSQL, repeated until ``refused`` or ``NOTIFY_BOUND`` has passed
    (until the worker has read the change's NOTIFY). Only for requests that change nothing when
    answered from the stale cache."""
    r = send()
    if server.backend == "postgres":
        deadline = time.monotonic() + NOTIFY_BOUND
        while not refused(r) and time.monotonic() < deadline:
            time.sleep(0.01)
            r = send()
    return r


def _status(code: int) -> Callable[[httpx.Response], bool]:
    return lambda r: r.status_code == code


def cc_token(server: LiveServer, nc, *, mtls: bool) -> str:
    with http(server, nc, mtls=mtls) as c:
        r = c.post(TOKEN, data={"grant_type": "client_credentials", "scope": "openid email"}, auth=basic(nc))
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def introspect(server: LiveServer, nc, token: str) -> httpx.Response:
    with http(server, nc, mtls=False) as c:  # client_secret_basic, no certificate on this connection
        return c.post(INTROSPECT, data={"token": token}, auth=basic(nc))


def userinfo(server: LiveServer, token: str, nc=None) -> httpx.Response:
    with http(server, nc) as c:  # with the certificate the token is bound to, when there is one
        return c.get(USERINFO, headers={"Authorization": f"Bearer {token}"})


def assert_invalid_token(r: httpx.Response) -> None:
    assert r.status_code == 401, (r.status_code, r.text[:200])
    assert 'error="invalid_token"' in r.headers.get("www-authenticate", ""), r.headers


# --- native: the certificate a token is bound to ---------------------------------------------------------------------
def test_a_token_bound_to_a_revoked_certificate_is_inactive_at_introspection_and_refused_at_userinfo(db_live_server):
    server = db_live_server
    nc = register(server, methods=("client_secret_basic", "tls_client_auth"), with_cert=True)
    token = cc_token(server, nc, mtls=True)
    body = introspect(server, nc, token).json()
    assert body["active"] is True and body["cnf"]["x5t#S256"] == nc.thumbprint
    assert userinfo(server, token, nc).status_code == 200

    server.store.revoke_certificate(nc.serial, now())
    r = after_notice(server, lambda: introspect(server, nc, token), lambda r: r.json() == INACTIVE)
    assert r.json() == INACTIVE
    assert_invalid_token(userinfo(server, token, nc))
    # the client itself is still good: a new (unbound) token works
    fresh = cc_token(server, nc, mtls=False)
    assert introspect(server, nc, fresh).json()["active"] is True


# --- native: a revoked client at every endpoint ----------------------------------------------------------------------
def test_a_revoked_client_is_refused_at_every_native_endpoint(db_live_server):
    server = db_live_server
    nc = register(server)
    token = cc_token(server, nc, mtls=False)
    with http(server, mtls=False) as c:
        assert c.post(INTROSPECT, data={"token": token}, auth=basic(nc)).json()["active"] is True
    server.store.set_client_status(nc.client_id, "revoked")
    with http(server, mtls=False) as c:
        after_notice(server, lambda: c.post(INTROSPECT, data={"token": token}, auth=basic(nc)), _status(401))
        for path, data in (
            (TOKEN, {"grant_type": "client_credentials"}),
            (INTROSPECT, {"token": token}),
            (REVOKE, {"token": token}),
        ):
            assert_error(c.post(path, data=data, auth=basic(nc)), 401, "invalid_client")
    assert_invalid_token(userinfo(server, token))


# --- native: a revoked family ---------------------------------------------------------------------------------------
def test_the_access_token_of_a_revoked_family_is_inactive_and_refused(db_live_server):
    from tests.e2e.native_helpers import authorization_code_flow

    server = db_live_server
    merchant = server.new_merchant()
    nc = register(server)
    tokens, _ = authorization_code_flow(server, nc, merchant)
    access, refresh_token = tokens["access_token"], tokens["refresh_token"]
    assert introspect(server, nc, access).json()["active"] is True
    with http(server, mtls=False) as c:  # RFC 7009: revoking the refresh token revokes its family
        assert c.post(REVOKE, data={"token": refresh_token}, auth=basic(nc)).status_code == 200
    assert introspect(server, nc, access).json() == INACTIVE
    assert introspect(server, nc, refresh_token).json() == INACTIVE
    assert_invalid_token(userinfo(server, access))
    with http(server, mtls=False) as c:
        r = c.post(TOKEN, data={"grant_type": "refresh_token", "refresh_token": refresh_token}, auth=basic(nc))
    assert_error(r, 400, "invalid_grant")


# --- the profiles: a revoked client, a revoked certificate, a disabled key -------------------------------------------
def mtls_client(server: LiveServer, app) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=str(server.ca))
    if app.cert is not None:
        ctx.load_cert_chain(str(app.cert), str(app.key))
    return httpx.Client(base_url=server.url, verify=ctx, timeout=15)


def nexi_token(server: LiveServer, app) -> httpx.Response:
    with mtls_client(server, app) as c:
        return c.post(
            "/softpos/appenrollment/token",
            data={"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret},
        )


def mobilepay(server: LiveServer, app) -> httpx.Response:
    with mtls_client(server, app) as c:
        return c.post(
            "/integrator-authentication/connect/token",
            auth=(app.client_id, app.client_secret),
            data={"grant_type": "client_credentials"},
        )


def b2b(server: LiveServer, path: str, attributes: dict) -> httpx.Response:
    with mtls_client(server, type("NoCert", (), {"cert": None})()) as c:
        return c.post(
            path,
            content=json.dumps({"data": {"type": "auth-token", "attributes": attributes}}),
            headers={"Content-Type": JSONAPI},
        )


def b2b_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, (r.status_code, r.text[:200])
    assert r.json()["errors"][0]["code"] == code, r.text


def test_a_revoked_client_is_refused_by_every_profile(db_live_server):
    server = db_live_server
    nexi = server.new_app()
    app = server.new_app(with_cert=False)
    assert nexi_token(server, nexi).status_code == 200
    assert mobilepay(server, app).status_code == 200
    login = {"login": app.client_id, "password": app.client_secret}
    refresh_token = b2b(server, "/b2binpay/token/", login).json()["data"]["attributes"]["refresh"]

    server.store.set_client_status(nexi.client_id, "revoked")
    server.store.set_client_status(app.client_id, "revoked")
    assert after_notice(server, lambda: nexi_token(server, nexi), _status(401)).status_code == 401
    r = mobilepay(server, app)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    b2b_error(b2b(server, "/b2binpay/token/", login), 400, "2006")
    b2b_error(b2b(server, "/b2binpay/token/refresh/", {"refresh": refresh_token}), 401, "2007")


def test_a_revoked_certificate_is_refused_at_the_nexi_token_endpoint(db_live_server):
    server = db_live_server
    nexi = server.new_app()
    assert nexi_token(server, nexi).status_code == 200
    server.store.revoke_certificate(nexi.serial, now())
    r = after_notice(server, lambda: nexi_token(server, nexi), _status(401))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text


def test_a_disabled_axept_key_is_refused_at_once(db_live_server):
    server = db_live_server
    mid = secrets.randbelow(10**9) + 1
    server.store.create_merchant(Merchant(mid, f"Shop {mid}", None, now()))
    record, key = apikeys.create_key(server.store, server.settings.pepper_bytes(), mid, now(), max_enabled=3)
    body = {"merchantId": record.merchant_id, "keyId": record.key_id, "key": key}
    with mtls_client(server, type("NoCert", (), {"cert": None})()) as c:
        assert c.post("/axept/v1/authenticate", json=body).status_code == 200
        server.store.set_api_key_enabled(mid, record.key_id, False, now(), max_enabled=3)
        r = after_notice(server, lambda: c.post("/axept/v1/authenticate", json=body), _status(401))
    assert r.status_code == 401, r.text


# --- Nexi: the PAR and the code exchange, after a revocation -----------------------------------------------------
def _pushed_with_code(server: LiveServer):
    """An app, its merchant, a Bearer token, and a code ready to be exchanged (PKCE verifier)."""
    from tests.e2e import nexi_helpers as nx

    app = server.new_app()
    merchant = server.new_merchant(app)
    token = nx.get_token(server, app)
    verifier, challenge = nx.pkce_pair()
    uri = nx.push(server, app, merchant, token=token, code_challenge=challenge)
    code = nx.login_for_code(server, app, merchant, uri)
    return nx, app, merchant, token, code, verifier


@pytest.mark.parametrize("what", ["certificate", "client"])
def test_nexi_par_and_code_exchange_refuse_at_once_after_a_revocation(db_live_server, what):
    server = db_live_server
    nx, app, merchant, token, code, verifier = _pushed_with_code(server)
    if what == "certificate":
        server.store.revoke_certificate(app.serial, now())
    else:
        server.store.set_client_status(app.client_id, "revoked")
    with nx.http(server, app) as c:
        # The Bearer token is bound to the revoked certificate / issued to the revoked client.
        r = after_notice(
            server,
            lambda: nx.par_request(c, token, nx.par_form(app, nx.build_assertion(server, app, merchant).token)),
            _status(401),
        )  # a stale answer only pushes a request nobody uses
        assert_invalid_token(r)
        r = nx.exchange(c, app, code, code_verifier=verifier)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
