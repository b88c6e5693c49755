"""With an actor (the admin API's or the portal's operator client), every change lands in
the security events as ``admin_change``, naming the actor and what changed, never a secret;
without one (the CLI) nothing is written."""

from __future__ import annotations

import json
from dataclasses import replace

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tessera import admin as ops
from tessera.admin import ADMIN_CHANGE, AddTerminal, AddUser, Admin, CreateMerchant, RegisterClient, SignCertificate


def _csr() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app")])
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )


def _everything(a: Admin) -> list[str]:
    """Every kind of change; the secrets shown once."""
    app = ops.register_client(a, RegisterClient(name="app"))
    signed = ops.sign_certificate(a, SignCertificate(app.client_id, _csr()))
    ops.revoke_certificate(a, signed.serial)
    ops.create_merchant(a, CreateMerchant(5, "shop", "DK12345678"))
    ops.add_terminal(a, AddTerminal(5, "POS1", "S1", "softpos"))
    ops.add_user(a, AddUser(5, "owner@shop.example", "a long password"))
    ops.grant(a, 5, app.client_id)
    key = ops.create_key(a, 5)
    ops.disable_key(a, 5, key.key_id, confirm_last=True)
    ops.enable_key(a, 5, key.key_id)
    ops.rotate_server_keys(a, "enc")
    ops.revoke_client(a, app.client_id)
    ops.purge(a)
    assert app.client_secret is not None
    return [app.client_secret, key.key, "a long password"]


def test_every_change_is_recorded_with_its_actor_and_no_secret(keyed: Admin) -> None:
    audited = replace(keyed, actor="ops-client")
    secrets = _everything(audited)
    events = ops.list_events(audited, kind=ADMIN_CHANGE)
    assert [e.detail["op"] for e in events] == [
        "client.register",
        "certificate.sign",
        "certificate.revoke",
        "merchant.create",
        "terminal.add",
        "user.add",
        "merchant.grant",
        "api_key.create",
        "api_key.disable",
        "api_key.enable",
        "server_keys.rotate",
        "client.revoke",
        "purge",
    ]
    assert {e.client_id for e in events} == {"ops-client"}
    assert all(e.created_at == keyed.now() for e in events)
    assert events[5].detail == {"op": "user.add", "merchant_id": 5, "username": "owner@shop.example"}
    dumped = json.dumps([e.detail for e in events])
    for secret in secrets:
        assert secret not in dumped


def test_without_an_actor_nothing_is_recorded(keyed: Admin) -> None:
    _everything(keyed)
    assert ops.list_events(keyed, kind=ADMIN_CHANGE) == []
