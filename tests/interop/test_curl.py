"""curl with a client certificate: tls_client_auth at the token endpoint, then introspection
and revocation authenticated the same way, exactly as docs/oauth.md shows them."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.e2e.native_helpers import claims_of, issuer, register

pytestmark = pytest.mark.slow


def curl(server, nc, path: str, *form: str) -> dict:
    args = [
        "curl",
        "-sS",
        "--fail-with-body",
        "--cacert",
        str(server.ca),
        "--cert",
        str(nc.cert),
        "--key",
        str(nc.key),
        f"{issuer(server)}{path}",
    ]
    for field in form:
        args += ["--data-urlencode", field]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, (out.stdout, out.stderr)
    return json.loads(out.stdout) if out.stdout.strip() else {}


def test_tls_client_auth_then_introspection_with_curl(live_server):
    nc = register(live_server, methods=("tls_client_auth",), with_cert=True)
    token = curl(
        live_server,
        nc,
        "/oauth2/token",
        "grant_type=client_credentials",
        f"client_id={nc.client_id}",
        "scope=payments:read",
    )
    assert token["token_type"] == "Bearer" and token["scope"] == "payments:read"
    assert claims_of(token["access_token"])["cnf"] == {"x5t#S256": nc.thumbprint}

    info = curl(live_server, nc, "/oauth2/introspect", f"client_id={nc.client_id}", f"token={token['access_token']}")
    assert info["active"] is True and info["client_id"] == nc.client_id
    assert info["cnf"] == {"x5t#S256": nc.thumbprint} and info["scope"] == "payments:read"

    curl(live_server, nc, "/oauth2/revoke", f"client_id={nc.client_id}", f"token={token['access_token']}")
    info = curl(live_server, nc, "/oauth2/introspect", f"client_id={nc.client_id}", f"token={token['access_token']}")
    assert info == {"active": False}


def test_curl_client_secret_basic(live_server):
    nc = register(live_server)
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--fail-with-body",
            "--cacert",
            str(live_server.ca),
            "-u",
            f"{nc.client_id}:{nc.client_secret}",
            "-d",
            "grant_type=client_credentials",
            f"{issuer(live_server)}/oauth2/token",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert claims_of(json.loads(out.stdout)["access_token"])["client_id"] == nc.client_id
