"""tessera.core.clients in process: the secret check (one answer for every failure) and the
certificate binding of mTLS (bound to this client, unrevoked, valid now)."""

from __future__ import annotations

import pytest

from tessera.core.clients import ClientCredentials, PeerCert, authenticate_secret, bound_certificate
from tessera.errors import InvalidClient
from tests.core.conftest import NOW, SECRET


def reason(fn, *a) -> str:
    with pytest.raises(InvalidClient) as err:
        fn(*a)
    return err.value.reason


def test_secrets(world):
    client = world.client(auth_methods=("client_secret_basic",))
    ok = ClientCredentials(client.client_id, SECRET, "client_secret_basic")
    assert authenticate_secret(world.core, ok) == client
    assert (
        reason(authenticate_secret, world.core, ClientCredentials(client.client_id, "x", "client_secret_basic"))
        == "bad_client_credentials"
    )
    assert (
        reason(authenticate_secret, world.core, ClientCredentials("nobody", SECRET, "client_secret_basic"))
        == "bad_client_credentials"
    )
    assert (
        reason(authenticate_secret, world.core, ClientCredentials(client.client_id, SECRET, "client_secret_post"))
        == "auth_method_not_allowed"
    )
    keyless = world.client(secret_hash=None)
    assert (
        reason(authenticate_secret, world.core, ClientCredentials(keyless.client_id, SECRET, "client_secret_basic"))
        == "bad_client_credentials"
    )


def test_certificate_binding(world):
    client = world.client()
    cert = world.cert(client)
    assert bound_certificate(world.core, client, PeerCert(cert.thumbprint)).serial == cert.serial
    assert reason(bound_certificate, world.core, client, None) == "mtls_missing"
    assert reason(bound_certificate, world.core, client, PeerCert("unknown")) == "cert_not_bound"
    other = world.cert(world.client())
    assert reason(bound_certificate, world.core, client, PeerCert(other.thumbprint)) == "cert_not_bound"
    early = world.cert(client, not_before=NOW + 60)
    assert reason(bound_certificate, world.core, client, PeerCert(early.thumbprint)) == "cert_expired"


def test_a_revoked_certificate_is_refused_and_recorded_once_a_minute(world):
    client = world.client()
    cert = world.cert(client, revoked_at=NOW - 1)
    for _ in range(3):
        assert reason(bound_certificate, world.core, client, PeerCert(cert.thumbprint)) == "cert_revoked"
    assert [e.detail for e in world.store.list_events(kind="revoked_certificate_used")] == [{"serial": cert.serial}]
