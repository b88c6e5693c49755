"""MobilePay PoS integrator authentication, wire-exact, against a real ``tessera serve`` over TLS.

``POST /integrator-authentication/connect/token`` (client_secret_basic or client_secret_post,
``grant_type=client_credentials``,
optional ``merchant_vat`` ``^(DK|FI)\\d{8}$``) → ``{access_token, expires_in: 3700,
token_type: "Bearer", scope: "integrator_scope"}``, and the OpenID discovery document.

Failing requests come from their own loopback source addresses (127.x.y.z), so that the
per-address brute-force limiter only sees what a test means it to see.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import secrets
import subprocess
import time

import httpx
import pytest
from jwcrypto import jwk, jwt

from tessera.core.models import Merchant
from tests.support.live import AppIdentity, LiveServer

pytestmark = pytest.mark.slow

PREFIX = "/integrator-authentication"
TOKEN = f"{PREFIX}/connect/token"
DISCOVERY = f"{PREFIX}/.well-known/openid-configuration"
_addresses = itertools.count(1)


def fresh_address() -> str:
    n = next(_addresses)
    return f"127.23.{n // 250}.{n % 250 + 1}"


def client(server: LiveServer, address: str | None = None) -> httpx.Client:
    transport = httpx.HTTPTransport(verify=server.ssl_context(), local_address=address or fresh_address())
    return httpx.Client(base_url=f"https://localhost:{server.port}", transport=transport, timeout=15)


def token(
    server: LiveServer,
    app: AppIdentity | None,
    data: dict | None = None,
    *,
    address: str | None = None,
    auth: tuple[str, str] | None = None,
    **kw,
) -> httpx.Response:
    data = {"grant_type": "client_credentials"} if data is None else data
    if auth is None and app is not None:
        auth = (app.client_id, app.client_secret)
    with client(server, address) as c:
        return c.post(TOKEN, data=data, auth=auth, **kw)


def new_vat() -> str:
    return secrets.choice(["DK", "FI"]) + "".join(secrets.choice("0123456789") for _ in range(8))


def store_merchant(server: LiveServer, vat: str) -> int:
    mid = secrets.randbelow(10**9) + 1
    server.store.create_merchant(Merchant(mid, f"Shop {mid}", vat, int(time.time())))
    return mid


JWKS = f"{PREFIX}/.well-known/openid-configuration/jwks"


def sig_jwks(server: LiveServer) -> dict:
    """The MobilePay JWKS as the server publishes it."""
    with client(server) as c:
        r = c.get(JWKS)
    assert r.status_code == 200
    return r.json()


def verify_jwt(keys: dict, tok: str) -> tuple[dict, dict]:
    """RS256 signature checked by jwcrypto, independently of tessera's JOSE layer, against the
    published JWKS; the header's x5t is the SHA-1 thumbprint of that key's x5c certificate."""
    t = jwt.JWT(jwt=tok, key=jwk.JWKSet.from_json(json.dumps(keys)), algs=["RS256"])
    header = json.loads(t.header)
    assert header["alg"] == "RS256" and header["typ"] == "at+jwt"
    key = next(k for k in keys["keys"] if k["kid"] == header["kid"])
    der = base64.b64decode(key["x5c"][0])
    assert header["x5t"] == key["x5t"] == base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()
    return header, json.loads(t.claims)


def assert_token(server: LiveServer, r: httpx.Response, app: AppIdentity) -> dict:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].split(";")[0] == "application/json"
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert set(body) == {"access_token", "expires_in", "token_type", "scope"}, body
    assert body["expires_in"] == 3700 and body["token_type"] == "Bearer" and body["scope"] == "integrator_scope"
    header, claims = verify_jwt(sig_jwks(server), body["access_token"])
    assert set(header) == {"alg", "kid", "x5t", "typ"}
    assert claims["client_id"] == claims["integrator_id"] == app.client_id
    assert claims["integrator_name"] == claims["integratorclient_name"] == "Test App"
    assert claims["scope"] == ["integrator_scope"]
    base = f"https://localhost:{server.port}{PREFIX}"
    assert claims["iss"] == base and claims["aud"] == [base + "/resources", "integrator_scope"]
    assert claims["nbf"] == claims["iat"] and claims["exp"] - claims["iat"] == 3700
    assert abs(claims["iat"] - time.time()) < 10
    return claims


def assert_error(r: httpx.Response, status: int, error: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].split(";")[0] == "application/json"
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["error"] == error, body
    assert set(body) <= {"error", "error_description"}
    assert "access_token" not in r.text
    return body


def assert_invalid_client(r: httpx.Response) -> dict:
    body = assert_error(r, 401, "invalid_client")
    assert r.headers["www-authenticate"].lower().startswith("basic "), r.headers
    return body


@pytest.fixture(scope="module")
def app(live_server) -> AppIdentity:
    return live_server.new_app(with_cert=False)


# --- 200 --------------------------------------------------------------------------------------------------------------
def test_token_without_merchant_vat(live_server, app):
    claims = assert_token(live_server, token(live_server, app), app)
    assert "merchant_vat" not in claims


def test_token_for_a_granted_merchant_with_curl_as_documented(live_server, app):
    vat = new_vat()
    mid = secrets.randbelow(10**9) + 1
    assert live_server.cli_json("merchants", "create", "--merchant-id", str(mid), "--vat", vat)["vat"] == vat
    assert (
        live_server.cli_json("merchants", "grant", "--merchant-id", str(mid), "--client", app.client_id)["granted"]
        is True
    )
    basic = base64.b64encode(f"{app.client_id}:{app.client_secret}".encode()).decode()
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--cacert",
            str(live_server.ca),
            "--dump-header",
            "-",
            "--location",
            "--request",
            "POST",
            f"https://localhost:{live_server.port}{TOKEN}",
            "--header",
            "Content-Type: application/x-www-form-urlencoded",
            "--header",
            f"Authorization: Basic {basic}",
            "--data-urlencode",
            "grant_type=client_credentials",
            "--data-urlencode",
            f"merchant_vat={vat}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    head, _, payload = out.stdout.replace("\r\n", "\n").partition("\n\n")
    assert head.split()[1] == "200", head
    assert "cache-control: no-store" in head.lower()
    body = json.loads(payload)
    assert set(body) == {"access_token", "expires_in", "token_type", "scope"}
    assert (body["expires_in"], body["token_type"], body["scope"]) == (3700, "Bearer", "integrator_scope")
    _, claims = verify_jwt(sig_jwks(live_server), body["access_token"])
    assert claims["merchant_vat"] == vat and claims["client_id"] == app.client_id


def test_token_for_a_granted_merchant(live_server, app):
    vat = new_vat()
    mid = store_merchant(live_server, vat)
    live_server.store.grant(mid, app.client_id, int(time.time()))
    claims = assert_token(
        live_server, token(live_server, app, {"grant_type": "client_credentials", "merchant_vat": vat}), app
    )
    assert claims["merchant_vat"] == vat


# --- merchant_vat -----------------------------------------------------------------------------------------------------
def test_merchant_that_did_not_grant_is_refused(live_server, app):
    vat = new_vat()
    mid = secrets.randbelow(10**9) + 1
    live_server.cli_json("merchants", "create", "--merchant-id", str(mid), "--vat", vat)
    r = token(live_server, app, {"grant_type": "client_credentials", "merchant_vat": vat})
    assert_error(r, 400, "unauthorized_client")


def test_unknown_vat_is_refused_like_a_merchant_that_did_not_grant(live_server, app):
    not_granted = new_vat()
    store_merchant(live_server, not_granted)
    unknown = new_vat()
    r1 = token(live_server, app, {"grant_type": "client_credentials", "merchant_vat": unknown})
    r2 = token(live_server, app, {"grant_type": "client_credentials", "merchant_vat": not_granted})
    assert_error(r1, 400, "unauthorized_client")
    assert r1.content == r2.content  # does not reveal which VAT numbers are merchants


def test_merchant_granted_to_another_integrator_is_refused(live_server, app):
    other = live_server.new_app(with_cert=False)
    vat = new_vat()
    mid = store_merchant(live_server, vat)
    live_server.store.grant(mid, other.client_id, int(time.time()))
    assert_error(
        token(live_server, app, {"grant_type": "client_credentials", "merchant_vat": vat}), 400, "unauthorized_client"
    )
    assert_token(
        live_server, token(live_server, other, {"grant_type": "client_credentials", "merchant_vat": vat}), other
    )


BAD_VATS = [
    "DK1234567",
    "SE12345678",
    "dk12345678",
    "DK123456789",
    "",
    "DK1234567a",
    "DK 12345678",
    " DK12345678",
    "FI12345678\n",
    "DKDK12345678",
    "12345678",
    "DK\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668",
    "FI\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18",
]


@pytest.mark.parametrize("vat", BAD_VATS, ids=[repr(v) for v in BAD_VATS])
def test_malformed_merchant_vat(live_server, app, vat):
    r = token(live_server, app, {"grant_type": "client_credentials", "merchant_vat": vat})
    assert_error(r, 400, "invalid_request")


# --- client authentication --------------------------------------------------------------------------------------------
def test_client_secret_post_is_accepted_as_advertised(live_server, app):
    vat = new_vat()
    live_server.store.grant(store_merchant(live_server, vat), app.client_id, int(time.time()))
    data = {
        "grant_type": "client_credentials",
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "merchant_vat": vat,
    }
    assert assert_token(live_server, token(live_server, None, data), app)["merchant_vat"] == vat
    wrong = dict(data, client_secret=app.client_secret[:-2] + "xx")
    assert_error(token(live_server, None, wrong), 401, "invalid_client")


def test_scope_parameter(live_server, app):
    data = {"grant_type": "client_credentials", "scope": "integrator_scope"}
    assert_token(live_server, token(live_server, app, data), app)
    assert_error(token(live_server, app, dict(data, scope="offline_access")), 400, "invalid_scope")


def test_no_client_authentication(live_server):
    assert_invalid_client(token(live_server, None))
    assert_invalid_client(token(live_server, None, {"grant_type": "client_credentials", "client_id": "x"}))


def test_wrong_secret_and_unknown_client_look_the_same(live_server, app):
    wrong = token(live_server, None, auth=(app.client_id, app.client_secret[:-2] + "xx"))
    unknown = token(live_server, None, auth=("no-such-client", app.client_secret))
    assert_invalid_client(wrong)
    assert_invalid_client(unknown)
    assert wrong.content == unknown.content
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"]


def test_revoked_client(live_server):
    app = live_server.new_app(with_cert=False)
    assert token(live_server, app).status_code == 200
    live_server.store.set_client_status(app.client_id, "revoked")
    assert_invalid_client(token(live_server, app))


def test_malformed_basic_header(live_server):
    with client(live_server) as c:
        r = c.post(TOKEN, data={"grant_type": "client_credentials"}, headers={"Authorization": "Basic %%%not-base64"})
    assert_invalid_client(r)


def test_basic_and_client_secret_together_is_refused(live_server, app):
    r = token(live_server, app, {"grant_type": "client_credentials", "client_secret": app.client_secret})
    assert_error(r, 400, "invalid_request")


# --- grant_type and syntax --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "grant", ["authorization_code", "password", "refresh_token", "CLIENT_CREDENTIALS", "client_credentials "]
)
def test_wrong_grant_type(live_server, app, grant):
    assert_error(token(live_server, app, {"grant_type": grant}), 400, "unsupported_grant_type")


def test_missing_grant_type(live_server, app):
    """RFC 6749 §5.2: a missing required parameter is invalid_request."""
    r = token(live_server, app, {"merchant_vat": "DK12345678"})
    body = assert_error(r, 400, "invalid_request")
    assert "grant_type" in body.get("error_description", "grant_type")
    with client(live_server) as c:  # an empty form
        r = c.post(
            TOKEN,
            content=b"",
            auth=(app.client_id, app.client_secret),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert_error(r, 400, "invalid_request")


def test_repeated_parameter(live_server, app):
    content = b"grant_type=client_credentials&grant_type=client_credentials"
    with client(live_server) as c:
        r = c.post(
            TOKEN,
            content=content,
            auth=(app.client_id, app.client_secret),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert_error(r, 400, "invalid_request")


def test_json_body_is_refused(live_server, app):
    with client(live_server) as c:
        r = c.post(TOKEN, json={"grant_type": "client_credentials"}, auth=(app.client_id, app.client_secret))
    assert_error(r, 400, "invalid_request")


def test_get_is_not_allowed(live_server, app):
    with client(live_server) as c:
        r = c.get(TOKEN, auth=(app.client_id, app.client_secret))
    assert_error(r, 405, "invalid_request")
    assert "POST" in r.headers["allow"]


# --- discovery --------------------------------------------------------------------------------------------------------
def test_discovery_describes_the_token_endpoint_and_its_keys(live_server, app):
    base = f"https://localhost:{live_server.port}"
    with client(live_server) as c:
        r = c.get(DISCOVERY)
        assert r.status_code == 200
        assert r.headers["content-type"].split(";")[0] == "application/json"
        doc = r.json()
        assert {"issuer", "token_endpoint", "jwks_uri"} <= set(doc)
        # OIDC Discovery §4.3: the issuer plus the well-known path is this very document.
        assert doc["issuer"] + "/.well-known/openid-configuration" == base + DISCOVERY
        assert doc["token_endpoint"] == base + TOKEN
        assert "client_credentials" in doc.get("grant_types_supported", ["client_credentials"])
        assert doc["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post"]
        assert doc["scopes_supported"] == ["integrator_scope"]
        assert doc["grant_types_supported"] == ["client_credentials"]
        # the provider's introspection and revocation endpoints exist here; only those are advertised
        assert doc["introspection_endpoint"] == base + "/integrator-authentication/connect/introspect"
        assert doc["revocation_endpoint"] == base + "/integrator-authentication/connect/revocation"
        assert not {"authorization_endpoint", "userinfo_endpoint", "end_session_endpoint"} & set(doc)
        for name in ("introspection_endpoint", "revocation_endpoint"):  # they exist: an unauthenticated POST is 401
            assert c.post(doc[name], data={"token": "x"}).status_code == 401

        keys = c.get(doc["jwks_uri"])
        assert keys.status_code == 200
        jwks = keys.json()
        assert jwks["keys"]
        for k in jwks["keys"]:
            assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(k), k
            assert k["kty"] == "RSA" and k["alg"] == "RS256" and k["use"] == "sig" and k["x5c"] and k["x5t"], k
        assert len({k["kid"] for k in jwks["keys"]}) == len(jwks["keys"])

        issued = c.post(
            doc["token_endpoint"], data={"grant_type": "client_credentials"}, auth=(app.client_id, app.client_secret)
        )
    assert_token(live_server, issued, app)
    header, claims = verify_jwt(jwks, issued.json()["access_token"])
    assert header["kid"] in {k["kid"] for k in jwks["keys"]}
    assert claims["iss"] == doc["issuer"]


# --- brute force ------------------------------------------------------------------------------------------------------
def assert_429(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["cache-control"] == "no-store"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.json()["error"] == "slow_down" and set(r.json()) <= {"error", "error_description"}
    assert "access_token" not in r.text


def test_five_wrong_secrets_from_one_address_lock_the_client_there_only(live_server):
    app = live_server.new_app(with_cert=False)
    stranger, home = fresh_address(), fresh_address()
    for _ in range(5):  # a stranger who knows the (public) client id
        assert_invalid_client(
            token(live_server, None, auth=(app.client_id, secrets.token_urlsafe(32)), address=stranger)
        )
    assert_429(token(live_server, app, address=stranger))  # locked there, even with the right secret
    # The client keeps working from its own addresses (checklist row 43) ...
    assert_token(live_server, token(live_server, app, address=home), app)
    assert_token(live_server, token(live_server, app), app)
    # ... and the stranger stays throttled.
    assert_429(token(live_server, None, auth=(app.client_id, secrets.token_urlsafe(32)), address=stranger))


def test_wrong_secrets_from_many_addresses_do_not_lock_the_client(live_server):
    app = live_server.new_app(with_cert=False)
    for _ in range(10):  # each from another address: no (client, address) pair reaches the limit
        assert_invalid_client(token(live_server, None, auth=(app.client_id, secrets.token_urlsafe(32))))
    assert_token(live_server, token(live_server, app), app)


def test_failures_from_one_address_lock_that_address(address_lock_server):
    live_server = address_lock_server
    app = live_server.new_app(with_cert=False)
    address, other = fresh_address(), fresh_address()
    for i in range(live_server.settings.login_max_failures_per_address):
        assert_invalid_client(token(live_server, None, auth=(f"guess-{i}", "guess"), address=address))
    assert_429(token(live_server, app, address=address))
    assert_token(live_server, token(live_server, app, address=other), app)
