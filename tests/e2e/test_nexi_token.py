"""``POST /softpos/appenrollment/token``: client_credentials over real mTLS sockets.

The access token is verified with jwcrypto against the server's public signing keys, and
its certificate binding is checked against a thumbprint computed here from the PEM.
"""

from __future__ import annotations

import base64
import dataclasses
import time

import httpx
import pytest

from tests.e2e.nexi_helpers import (
    FORM,
    TOKEN_PATH,
    assert_error,
    base_url,
    http,
    token_request,
    verify_server_jwt,
    x5t_s256,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(live_server):
    return live_server.new_app()


@pytest.fixture(scope="module")
def other(live_server):
    return live_server.new_app()


@pytest.fixture(scope="module")
def c(live_server, app):
    with http(live_server, app) as client:
        yield client


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def assert_token_ok(server, resp: httpx.Response, app) -> dict:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}, body
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert "no-store" in resp.headers.get("cache-control", "")
    header, claims = verify_server_jwt(server, body["access_token"])
    assert header["typ"].lower() in ("at+jwt", "application/at+jwt")
    assert claims["iss"] == base_url(server)
    assert claims["client_id"] == app.client_id
    assert claims["sub"] == app.client_id
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 30
    assert isinstance(claims["jti"], str) and claims["jti"]
    assert claims["cnf"] == {"x5t#S256": x5t_s256(app.cert)}
    return claims


def test_token_client_secret_post(live_server, app, c):
    assert_token_ok(live_server, token_request(c, app), app)


def test_token_client_secret_basic(live_server, app, c):
    r = c.post(
        TOKEN_PATH,
        data={"grant_type": "client_credentials"},
        headers={**FORM, "Authorization": basic(app.client_id, app.client_secret)},
    )
    assert_token_ok(live_server, r, app)


def test_token_basic_with_matching_client_id_in_form(live_server, app, c):
    r = c.post(
        TOKEN_PATH,
        data={"grant_type": "client_credentials", "client_id": app.client_id},
        headers={**FORM, "Authorization": basic(app.client_id, app.client_secret)},
    )
    assert_token_ok(live_server, r, app)


def test_token_each_call_issues_a_fresh_token(live_server, app, c):
    a = token_request(c, app).json()["access_token"]
    b = token_request(c, app).json()["access_token"]
    assert a != b


def test_token_bound_to_the_certificate_presented(live_server, app):
    """Two certificates of one app: each token carries the thumbprint of the one presented."""
    second = live_server.add_cert(dataclasses.replace(app))
    with http(live_server, second) as c2:
        claims = assert_token_ok(live_server, token_request(c2, second), second)
    assert claims["cnf"]["x5t#S256"] == second.thumbprint != app.thumbprint


def test_token_both_basic_and_post_credentials(app, c):
    r = c.post(
        TOKEN_PATH,
        data={"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret},
        headers={**FORM, "Authorization": basic(app.client_id, app.client_secret)},
    )
    assert_error(r, 400, "invalid_request")


def test_token_without_client_certificate(live_server, app):
    with http(live_server, cert=None) as c:
        assert_error(token_request(c, app), 401, "invalid_client")


def test_token_certificate_of_app_a_with_credentials_of_app_b(live_server, app, other):
    with http(live_server, app) as c:  # app's certificate, other's credentials
        assert_error(token_request(c, other), 401, "invalid_client")


def test_token_revoked_certificate_refused_on_the_next_request(live_server):
    victim = live_server.new_app()
    with http(live_server, victim) as c:
        assert token_request(c, victim).status_code == 200
        live_server.cli("certs", "revoke", "--serial", victim.serial)
        # same keep-alive connection, same TLS session: the very next request is refused
        assert_error(token_request(c, victim), 401, "invalid_client")
    with http(live_server, victim) as fresh:
        assert_error(token_request(fresh, victim), 401, "invalid_client")


def test_token_revoked_client(live_server):
    victim = live_server.new_app()
    with http(live_server, victim) as c:
        assert token_request(c, victim).status_code == 200
        live_server.cli("clients", "revoke", "--client", victim.client_id)
        assert_error(token_request(c, victim), 401, "invalid_client")


def test_token_certificate_from_another_ca(live_server, app, tmp_path):
    """A client certificate made by openssl under a CA of our own: a TLS alert or 401, never a token."""
    from tests.support.live import openssl

    openssl(
        "req",
        "-x509",
        "-nodes",
        "-newkey",
        "rsa:2048",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Rogue CA",
        "-addext",
        "basicConstraints=critical,CA:true",
        "-addext",
        "keyUsage=critical,keyCertSign",
        cwd=tmp_path,
    )
    openssl(
        "req",
        "-nodes",
        "-newkey",
        "rsa:2048",
        "-keyout",
        "app.key",
        "-out",
        "app.csr",
        "-subj",
        "/CN=NOMEAPP",
        cwd=tmp_path,
    )
    (tmp_path / "ext.cnf").write_text("extendedKeyUsage=clientAuth\nbasicConstraints=CA:false\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "app.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "app.pem",
        cwd=tmp_path,
    )
    try:
        with http(live_server, cert=tmp_path / "app.pem", key=tmp_path / "app.key") as c:
            r = token_request(c, app)
    except (httpx.TransportError, OSError):
        return  # the handshake was refused
    assert_error(r, 401, "invalid_client")


def test_token_basic_client_id_differs_from_form(app, other, c):
    r = c.post(
        TOKEN_PATH,
        data={"grant_type": "client_credentials", "client_id": other.client_id},
        headers={**FORM, "Authorization": basic(app.client_id, app.client_secret)},
    )
    assert_error(r, 401, "invalid_client")


def test_token_wrong_secret(app, c):
    assert_error(token_request(c, app, client_secret=app.client_secret[:-2] + "xx"), 401, "invalid_client")


def test_token_wrong_secret_basic(app, c):
    r = c.post(
        TOKEN_PATH,
        data={"grant_type": "client_credentials"},
        headers={**FORM, "Authorization": basic(app.client_id, "nope")},
    )
    assert_error(r, 401, "invalid_client")


def test_token_missing_secret(app, c):
    assert_error(token_request(c, app, client_secret=None), 401, "invalid_client")


def test_token_unknown_client(app, c):
    assert_error(token_request(c, app, client_id="no-such-client"), 401, "invalid_client")


def test_token_unknown_and_wrong_secret_look_alike(app, c):
    a = assert_error(token_request(c, app, client_id="no-such-client"), 401, "invalid_client")
    b = assert_error(token_request(c, app, client_secret="wrong"), 401, "invalid_client")
    assert a == b


@pytest.mark.parametrize("grant_type", ["authorization_code", "password", "refresh_token", "CLIENT_CREDENTIALS"])
def test_token_wrong_grant_type(app, c, grant_type):
    assert_error(token_request(c, app, grant_type=grant_type), 400, "unsupported_grant_type")


def test_token_missing_grant_type(app, c):
    assert_error(token_request(c, app, grant_type=None), 400, "unsupported_grant_type")


def test_token_json_body(app, c):
    r = c.post(
        TOKEN_PATH,
        json={"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret},
    )
    assert_error(r, 400, "invalid_request")


def test_token_no_content_type(app, c):
    r = c.post(
        TOKEN_PATH, content=f"grant_type=client_credentials&client_id={app.client_id}&client_secret={app.client_secret}"
    )
    assert_error(r, 400, "invalid_request")


def test_token_non_utf8_body(app, c):
    r = c.post(TOKEN_PATH, content=b"grant_type=client_credentials&client_id=\xff\xfe", headers=FORM)
    assert_error(r, 400, "invalid_request")


def test_token_repeated_parameter(app, c):
    body = (
        f"grant_type=client_credentials&client_id={app.client_id}&client_secret={app.client_secret}"
        f"&client_secret={app.client_secret}"
    )
    assert_error(c.post(TOKEN_PATH, content=body, headers=FORM), 400, "invalid_request")


def test_token_malformed_basic_header(c):
    r = c.post(TOKEN_PATH, data={"grant_type": "client_credentials"}, headers={**FORM, "Authorization": "Basic !!!"})
    assert_error(r, 401, "invalid_client")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_token_wrong_method(c, method):
    r = c.request(method, TOKEN_PATH)
    assert_error(r, 405, "invalid_request")


def test_token_oversized_body(app, c):
    r = c.post(TOKEN_PATH, content=b"grant_type=client_credentials&pad=" + b"x" * (70 * 1024), headers=FORM)
    assert_error(r, 413, "invalid_request")
