"""Proxy mode: nginx terminates mTLS and forwards the certificate as a URL-encoded PEM header
(`$ssl_client_escaped_cert`); tessera honours it only from trusted proxy addresses."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from tests.support.live import LiveServer

pytestmark = pytest.mark.slow


def _token(server: LiveServer, app, header: str | None):
    headers = {"X-SSL-Client-Cert": header} if header is not None else {}
    return httpx.post(
        f"http://127.0.0.1:{server.port}/softpos/appenrollment/token",
        headers=headers,
        timeout=10,
        data={"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret},
    )


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("proxy"), env={"TESSERA_MTLS_MODE": "proxy"}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def untrusting(tmp_path_factory):
    env = {"TESSERA_MTLS_MODE": "proxy", "TESSERA_TRUSTED_PROXIES": '["10.9.8.7/32"]'}
    server = LiveServer(tmp_path_factory.mktemp("untrusting"), env=env).start()
    yield server
    server.stop()


def test_certificate_header_from_trusted_proxy_is_honoured(proxied):
    app = proxied.new_app()
    r = _token(proxied, app, quote(app.cert.read_text(), safe=""))
    assert r.status_code == 200, r.text
    import base64
    import json

    claims = json.loads(base64.urlsafe_b64decode(r.json()["access_token"].split(".")[1] + "=="))
    assert claims["cnf"]["x5t#S256"] == app.thumbprint


def test_no_header_means_no_certificate(proxied):
    app = proxied.new_app()
    r = _token(proxied, app, None)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_malformed_header_is_no_certificate(proxied):
    app = proxied.new_app()
    r = _token(proxied, app, "-----BEGIN%20CERTIFICATE-----%0Agarbage%0A-----END%20CERTIFICATE-----")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_header_from_untrusted_peer_is_ignored(untrusting):
    app = untrusting.new_app()
    r = _token(untrusting, app, quote(app.cert.read_text(), safe=""))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert "WWW-Authenticate" in r.headers
