"""Registering apps: the allowed methods and grants, redirect-URI validation, the JWKS check,
and a secret made only for the secret methods, shown once and stored as an HMAC."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

from tessera import admin as ops
from tessera.admin import Admin, Invalid, NotFound, RegisterClient
from tessera.core.secrets import hash_secret, verify_secret


def test_register_makes_a_secret_stored_only_as_its_hmac(admin: Admin) -> None:
    reg = ops.register_client(
        admin, RegisterClient(name="pos app", redirect_uris=("https://app.example/cb",), scope="payments")
    )
    assert reg.client_secret is not None and len(reg.client_secret) >= 43  # 256 bits
    stored = admin.store.get_client(reg.client_id)
    assert stored is not None
    assert stored.secret_hash == hash_secret(reg.client_secret, admin.settings.pepper_bytes())
    assert verify_secret(reg.client_secret, stored.secret_hash, admin.settings.pepper_bytes())
    assert stored.auth_methods == ("client_secret_basic", "client_secret_post")
    assert stored.grant_types == ("client_credentials", "authorization_code")
    assert stored.created_at == admin.now()
    info = ops.get_client(admin, reg.client_id)
    assert info.name == "pos app" and info.redirect_uris == ("https://app.example/cb",) and info.status == "active"
    assert "secret_hash" not in {f.name for f in fields(info)}  # what the API and portal show has no hash
    assert [c.client_id for c in ops.list_clients(admin)] == [reg.client_id]


def test_certificate_only_client_gets_no_secret(admin: Admin) -> None:
    reg = ops.register_client(admin, RegisterClient(name="softpos", auth_methods=("tls_client_auth",)))
    assert reg.client_secret is None
    stored = admin.store.get_client(reg.client_id)
    assert stored is not None and stored.secret_hash is None


def test_methods_and_grants_repeated_are_kept_once(admin: Admin) -> None:
    reg = ops.register_client(
        admin,
        RegisterClient(
            name="a",
            auth_methods=("client_secret_basic", "client_secret_basic"),
            grant_types=("refresh_token", "authorization_code", "refresh_token"),
        ),
    )
    stored = admin.store.get_client(reg.client_id)
    assert stored is not None
    assert stored.auth_methods == ("client_secret_basic",)
    assert stored.grant_types == ("refresh_token", "authorization_code")


@pytest.mark.parametrize(
    ("req", "field", "words"),
    [
        (RegisterClient(name="a", auth_methods=("client_secret_jwt",)), "auth_methods", "must be one of"),
        (RegisterClient(name="a", auth_methods=()), "auth_methods", "at least one"),
        (RegisterClient(name="a", grant_types=("password",)), "grant_types", "must be one of"),
        (RegisterClient(name="a", redirect_uris=("javascript:alert(1)",)), "redirect_uris", "not allowed"),
        (RegisterClient(name="a", redirect_uris=("http://app.example/cb",)), "redirect_uris", "loopback"),
        (RegisterClient(name="a", redirect_uris=("https://app.example/cb#x",)), "redirect_uris", "fragment"),
        (RegisterClient(name="a", redirect_uris=("/relative",)), "redirect_uris", "absolute"),
        (RegisterClient(name="a", jwks={"keys": []}), "jwks", "at least one key"),
        (RegisterClient(name=""), "name", "1 to 200"),
    ],
)
def test_invalid_registrations_name_their_field_and_store_nothing(
    admin: Admin, req: RegisterClient, field: str, words: str
) -> None:
    with pytest.raises(Invalid) as e:
        ops.register_client(admin, req)
    assert e.value.field == field and words in e.value.message, e.value
    assert e.value.code == "invalid"
    assert ops.list_clients(admin) == []


def test_redirect_uris_accepted_loopback_http_and_private_scheme(admin: Admin) -> None:
    uris = ("http://127.0.0.1:8080/cb", "pizzapay://confirm-pay", "https://app.example/cb")
    reg = ops.register_client(admin, RegisterClient(name="a", redirect_uris=uris))
    assert ops.get_client(admin, reg.client_id).redirect_uris == uris


def test_jwks_public_p256_accepted_private_refused(admin: Admin) -> None:
    key = ECKey.import_key(ec.generate_private_key(ec.SECP256R1()))
    public = {"keys": [key.as_dict(private=False)]}
    reg = ops.register_client(admin, RegisterClient(name="pkjwt", auth_methods=("private_key_jwt",), jwks=public))
    stored = admin.store.get_client(reg.client_id)
    assert stored is not None and json.dumps(stored.jwks, sort_keys=True) == json.dumps(public, sort_keys=True)
    with pytest.raises(Invalid) as e:
        ops.register_client(
            admin,
            RegisterClient(name="leak", auth_methods=("private_key_jwt",), jwks={"keys": [key.as_dict(private=True)]}),
        )
    assert e.value.field == "jwks" and "public keys only" in e.value.message


def test_revoke_and_unknown_clients(admin: Admin) -> None:
    reg = ops.register_client(admin, RegisterClient(name="a"))
    assert ops.revoke_client(admin, reg.client_id).status == "revoked"
    stored = admin.store.get_client(reg.client_id)
    assert stored is not None and not stored.active
    for call in (lambda: ops.revoke_client(admin, "nope"), lambda: ops.get_client(admin, "nope")):
        with pytest.raises(NotFound, match="no client nope"):
            call()
