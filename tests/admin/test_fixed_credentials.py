"""Fixed client ids, client secrets and axept key values (a sandbox's fixtures): the rules of
tessera.admin.fixed, and a fixed value stored exactly as a generated one (HMAC under the pepper)."""

from __future__ import annotations

import dataclasses

import pytest

from tessera import admin as ops
from tessera.admin import Admin, Conflict, CreateMerchant, Invalid, RegisterClient
from tessera.core.secrets import hash_secret, verify_secret

SECRET = "fixed-secret-0123456789"


def production(admin: Admin) -> Admin:
    settings = admin.settings.model_copy(update={"environment": "production"})
    return dataclasses.replace(admin, settings=settings)


def test_fixed_id_and_secret_stored_as_hmac(admin: Admin) -> None:
    app = ops.register_client(admin, RegisterClient(name="fixture app", client_id="pos-app", client_secret=SECRET))
    assert (app.client_id, app.client_secret) == ("pos-app", SECRET)
    stored = admin.store.get_client("pos-app")
    assert stored is not None and stored.secret_hash != SECRET
    assert stored.secret_hash == hash_secret(SECRET, admin.settings.pepper_bytes())
    assert verify_secret(SECRET, stored.secret_hash, admin.settings.pepper_bytes())


def test_fixed_id_taken_is_a_conflict(admin: Admin) -> None:
    ops.register_client(admin, RegisterClient(name="a", client_id="pos-app"))
    with pytest.raises(Conflict):
        ops.register_client(admin, RegisterClient(name="b", client_id="pos-app"))


@pytest.mark.parametrize("client_id", ["", "has:colon", "has space", "x" * 129, "é"])
def test_bad_fixed_client_id(admin: Admin, client_id: str) -> None:
    with pytest.raises(Invalid) as e:
        ops.register_client(admin, RegisterClient(name="a", client_id=client_id))
    assert e.value.field == "client_id"


@pytest.mark.parametrize("secret", ["short", "has a space in it!", "x" * 257, "tab\there-0123456789"])
def test_bad_fixed_secret(admin: Admin, secret: str) -> None:
    with pytest.raises(Invalid) as e:
        ops.register_client(admin, RegisterClient(name="a", client_secret=secret))
    assert e.value.field == "client_secret" and secret not in str(e.value)


def test_fixed_secret_needs_a_secret_method(admin: Admin) -> None:
    with pytest.raises(Invalid) as e:
        ops.register_client(admin, RegisterClient(name="a", auth_methods=("tls_client_auth",), client_secret=SECRET))
    assert e.value.field == "client_secret"


def test_fixed_secrets_refused_in_production(admin: Admin) -> None:
    prod = production(admin)
    with pytest.raises(Invalid, match="production"):
        ops.register_client(prod, RegisterClient(name="a", client_secret=SECRET))
    ops.create_merchant(prod, CreateMerchant(9))
    with pytest.raises(Invalid, match="production"):
        ops.create_key(prod, 9, value=SECRET)
    # a fixed id is no secret: allowed everywhere
    assert ops.register_client(prod, RegisterClient(name="a", client_id="prod-app")).client_id == "prod-app"


def test_fixed_axept_key(admin: Admin) -> None:
    ops.create_merchant(admin, CreateMerchant(7))
    key = ops.create_key(admin, 7, key_id=1, value=SECRET)
    assert (key.key_id, key.key) == (1, SECRET)
    stored = admin.store.get_api_key(7, 1)
    assert stored is not None and stored.key_hash == hash_secret(SECRET, admin.settings.pepper_bytes())
    assert ops.create_key(admin, 7, key_id=2).key_id == 2


def test_fixed_key_id_must_be_the_next(admin: Admin) -> None:
    ops.create_merchant(admin, CreateMerchant(7))
    with pytest.raises(Invalid, match="must be 1") as e:
        ops.create_key(admin, 7, key_id=2)
    assert e.value.field == "key_id"
    assert ops.list_keys(admin, 7) == []


@pytest.mark.parametrize("vat", ["SE12345678", "DK1234567", "dk12345678", "DK１２３４５６７８", ""])
def test_merchant_vat_is_mobilepays(admin: Admin, vat: str) -> None:
    with pytest.raises(Invalid) as e:
        ops.create_merchant(admin, CreateMerchant(5, vat=vat))
    assert e.value.field == "vat"
    assert ops.create_merchant(admin, CreateMerchant(5, vat="FI12345678")).vat == "FI12345678"
