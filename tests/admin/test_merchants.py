"""Merchants: a point of sale belongs to one merchant; terminal kinds; merchant users with an
e-mail address and a password of 8 characters or more, hashed with argon2id; grants."""

from __future__ import annotations

import pytest

from tessera import admin as ops
from tessera.admin import AddTerminal, AddUser, Admin, Conflict, CreateMerchant, Invalid, NotFound, RegisterClient
from tessera.core.secrets import verify_password


@pytest.fixture
def merchant(admin: Admin) -> int:
    return ops.create_merchant(admin, CreateMerchant(42, "Pizzeria", "DK12345678")).merchant_id


def test_create_and_duplicate(admin: Admin, merchant: int) -> None:
    info = ops.get_merchant(admin, merchant)
    assert (info.name, info.vat, info.created_at) == ("Pizzeria", "DK12345678", admin.now())
    with pytest.raises(Conflict):
        ops.create_merchant(admin, CreateMerchant(42, "again"))
    with pytest.raises(NotFound, match="no merchant 7"):
        ops.get_merchant(admin, 7)


def test_a_point_of_sale_belongs_to_one_merchant(admin: Admin, merchant: int) -> None:
    ops.create_merchant(admin, CreateMerchant(43))
    ops.add_terminal(admin, AddTerminal(merchant, "POS1", "S1", "softpos"))
    ops.add_terminal(admin, AddTerminal(merchant, "POS1", "M1", "mpos"))
    with pytest.raises(Conflict, match="point of sale POS1 belongs to merchant 42"):
        ops.add_terminal(admin, AddTerminal(43, "POS1", "S2", "softpos"))
    assert sorted(t.tid for t in ops.terminals_at(admin, "POS1")) == ["M1", "S1"]
    with pytest.raises(Conflict):  # a TID is bound once
        ops.add_terminal(admin, AddTerminal(merchant, "POS2", "S1", "softpos"))


def test_terminal_kind(admin: Admin, merchant: int) -> None:
    with pytest.raises(Invalid) as e:
        ops.add_terminal(admin, AddTerminal(merchant, "POS1", "T1", "ecr"))
    assert e.value.field == "kind" and e.value.message == "must be softpos or mpos"
    assert ops.terminals_at(admin, "POS1") == []


def test_user_password_is_argon2id_and_username_lower_case(admin: Admin, merchant: int) -> None:
    user = ops.add_user(admin, AddUser(merchant, "Anna@Pizzeria.example", "correct horse"))
    assert user.username == "anna@pizzeria.example"
    stored = admin.store.get_user("anna@pizzeria.example")
    assert stored is not None and stored.password_hash.startswith("$argon2id$")
    assert verify_password("correct horse", stored.password_hash)
    assert not verify_password("wrong horse", stored.password_hash)
    with pytest.raises(Conflict):
        ops.add_user(admin, AddUser(merchant, "anna@pizzeria.example", "another one"))


@pytest.mark.parametrize(
    ("username", "password", "field"),
    [
        ("anna@pizzeria.example", "short77", "password"),
        ("anna@pizzeria.example", "x" * 1025, "password"),
        ("anna", "long enough", "username"),
        ("anna@localhost", "long enough", "username"),
    ],
)
def test_user_refusals(admin: Admin, merchant: int, username: str, password: str, field: str) -> None:
    with pytest.raises(Invalid) as e:
        ops.add_user(admin, AddUser(merchant, username, password))
    assert e.value.field == field
    assert admin.store.get_user(username.lower()) is None


def test_user_of_unknown_merchant(admin: Admin) -> None:
    with pytest.raises(NotFound, match="no merchant 9"):
        ops.add_user(admin, AddUser(9, "anna@pizzeria.example", "long enough"))


def test_grant_joins_an_existing_merchant_and_app(admin: Admin, merchant: int) -> None:
    client = ops.register_client(admin, RegisterClient(name="integrator")).client_id
    assert not ops.is_granted(admin, merchant, client)
    assert ops.grant(admin, merchant, client).granted
    assert ops.is_granted(admin, merchant, client)
    with pytest.raises(NotFound, match="no client nobody"):
        ops.grant(admin, merchant, "nobody")
    with pytest.raises(NotFound, match="no merchant 9"):
        ops.grant(admin, 9, client)
