"""panva's ``openid-client`` (Node) against a live server: discovery, client_credentials with
tls_client_auth, then PAR + authorization code + PKCE with private_key_jwt and a refresh.

The test installs the npm packages itself into ``tests/interop/openid_client/node_modules``
(gitignored; ``npm ci`` again only when ``package.json`` or the lock file changes), then runs
``flows.mjs`` with the machine's Node, trusting the test CA through ``NODE_EXTRA_CA_CERTS``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.native_helpers import INTROSPECT, assertion_form, claims_for, claims_of, http, issuer, register, sign

pytestmark = pytest.mark.slow

HERE = Path(__file__).with_name("openid_client")


def _npm_install() -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the openid-client interop test")
    stamp = HERE / "node_modules" / ".tessera-installed"
    wanted = (HERE / "package.json").read_text() + (HERE / "package-lock.json").read_text()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    # npm ci: exactly the versions of package-lock.json (which records no download URLs)
    proc = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"npm ci failed:\n{proc.stdout}\n{proc.stderr}"
    stamp.write_text(wanted)


def test_openid_client_discovery_tls_client_auth_and_par_code_flow_with_private_key_jwt(live_server):
    _npm_install()
    merchant = live_server.new_merchant()
    tls = register(
        live_server,
        methods=("tls_client_auth",),
        with_cert=True,
        grant_types=("client_credentials",),
        scope="payments:read",
    )
    pk = register(
        live_server,
        methods=("private_key_jwt",),
        with_jwks=True,
        scope="openid payments:read",
        grant_types=("authorization_code", "refresh_token"),
        require_par=True,
    )
    private_jwk = {**json.loads(pk.jwk.export_private()), "kid": pk.jwk.get("kid")}
    job = {
        "issuer": issuer(live_server),
        "ca": str(live_server.ca),
        "tls": {"client_id": tls.client_id, "cert": str(tls.cert), "key": str(tls.key), "scope": "payments:read"},
        "pkjwt": {
            "client_id": pk.client_id,
            "jwk": private_jwk,
            "redirect_uri": pk.redirect_uri,
            "scope": "openid payments:read",
            "username": merchant.username,
            "password": merchant.password,
        },
    }
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(live_server.ca)}
    proc = subprocess.run(
        ["node", str(HERE / "flows.mjs")],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env=env,
        cwd=HERE,
        timeout=120,
    )
    assert proc.returncode == 0, f"openid-client failed:\n{proc.stdout}\n{proc.stderr}\n{live_server.log_tail()}"
    out = json.loads(proc.stdout)

    assert out["discovery"]["issuer"] == issuer(live_server)
    assert out["discovery"]["pushed_authorization_request_endpoint"] == issuer(live_server) + "/oauth2/par"

    cc = out["client_credentials"]
    assert cc["token_type"].lower() == "bearer" and cc["scope"] == "payments:read"
    at = claims_of(cc["access_token"])
    assert at["client_id"] == tls.client_id and at["cnf"] == {"x5t#S256": tls.thumbprint}

    assert out["authorization_url"].startswith(issuer(live_server) + "/oauth2/authorize?")
    assert "request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3A" in out["authorization_url"]
    code = out["authorization_code"]
    assert code["id_token_sub"] == merchant.username and code["id_token_nonce_matched"] is True
    assert claims_of(code["access_token"])["sub"] == merchant.username
    assert out["refresh"]["rotated"] is True
    # the refreshed token is live, the first refresh token is used up
    assert introspect_as(live_server, pk, out["refresh"]["access_token"])["active"] is True


def introspect_as(server, nc, token):
    """Introspect with private_key_jwt (the client's only method), built with jwcrypto."""
    with http(server, mtls=False) as c:
        r = c.post(INTROSPECT, data={"token": token, **assertion_form(sign(claims_for(server, nc), nc.jwk))})
    assert r.status_code == 200, r.text
    return r.json()
