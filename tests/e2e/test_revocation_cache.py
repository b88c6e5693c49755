"""Workers cache clients and certificates, yet a revocation made by the CLI (another process)
is refused on the very next request — on SQLite and on PostgreSQL."""

from __future__ import annotations

import ssl

import httpx
import pytest

pytestmark = pytest.mark.slow


def _token(server, app):
    ctx = ssl.create_default_context(cafile=str(server.ca))
    ctx.load_cert_chain(str(app.cert), str(app.key))
    return httpx.post(
        f"https://localhost:{server.port}/softpos/appenrollment/token",
        verify=ctx,
        timeout=10,
        data={"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret},
    )


def test_certificate_revocation_is_honoured_on_the_next_request(db_live_server):
    app = db_live_server.new_app()
    for _ in range(3):  # warm the worker's cache
        assert _token(db_live_server, app).status_code == 200
    db_live_server.cli("certs", "revoke", "--serial", app.serial)
    r = _token(db_live_server, app)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_client_revocation_is_honoured_on_the_next_request(db_live_server):
    app = db_live_server.new_app()
    for _ in range(3):
        assert _token(db_live_server, app).status_code == 200
    db_live_server.cli("clients", "revoke", "--client", app.client_id)
    r = _token(db_live_server, app)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_a_new_client_is_known_at_once(db_live_server):
    """A lookup miss is cached too; creating that very client must clear it."""
    import secrets
    import time

    from tessera.core.models import Client
    from tessera.core.secrets import hash_secret

    client_id, secret = "late-" + secrets.token_hex(8), secrets.token_urlsafe(32)
    url = f"https://localhost:{db_live_server.port}/integrator-authentication/connect/token"
    verify = ssl.create_default_context(cafile=str(db_live_server.ca))
    for _ in range(2):
        r = httpx.post(
            url, auth=(client_id, secret), data={"grant_type": "client_credentials"}, verify=verify, timeout=10
        )
        assert r.status_code == 401
    db_live_server.store.create_client(
        Client(
            client_id=client_id,
            name="late",
            created_at=int(time.time()),
            secret_hash=hash_secret(secret, db_live_server.settings.pepper_bytes()),
        )
    )
    r = httpx.post(url, auth=(client_id, secret), data={"grant_type": "client_credentials"}, verify=verify, timeout=10)
    assert r.status_code == 200, r.text
