"""Organisations: their ids and names, the apps each owns, and the refusals."""

from __future__ import annotations

import pytest

from tessera import admin as ops
from tessera.admin import Admin, Conflict, CreateOrganisation, Invalid, NotFound, RegisterClient


def test_create_with_an_id_and_list(admin: Admin) -> None:
    org = ops.create_organisation(admin, CreateOrganisation("Acme POS", "acme"))
    assert (org.org_id, org.name, org.created_at) == ("acme", "Acme POS", admin.now())
    assert ops.get_organisation(admin, "acme") == org
    assert ops.list_organisations(admin) == [org]
    with pytest.raises(Conflict):
        ops.create_organisation(admin, CreateOrganisation("Acme again", "acme"))


def test_an_id_is_made_from_the_name(admin: Admin) -> None:
    org = ops.create_organisation(admin, CreateOrganisation("Ærø Kassesystemer A/S"))
    assert org.org_id.startswith("r-kassesystemer-a-s-") and len(org.org_id) == len("r-kassesystemer-a-s-") + 4


@pytest.mark.parametrize("org_id", ["A", "-acme", "acme_pos", "x" * 65, "a"])
def test_bad_ids_are_refused(admin: Admin, org_id: str) -> None:
    with pytest.raises(Invalid) as e:
        ops.create_organisation(admin, CreateOrganisation("Acme", org_id))
    assert e.value.field == "org_id"


@pytest.mark.parametrize("name", ["", "n" * 201])
def test_bad_names_are_refused(admin: Admin, name: str) -> None:
    with pytest.raises(Invalid):
        ops.create_organisation(admin, CreateOrganisation(name, "acme"))


def test_apps_belong_to_their_organisation(admin: Admin) -> None:
    ops.create_organisation(admin, CreateOrganisation("Acme", "acme"))
    ops.create_organisation(admin, CreateOrganisation("Zeta", "zeta"))
    a = ops.register_client(admin, RegisterClient(name="acme app", org_id="acme"))
    z = ops.register_client(admin, RegisterClient(name="zeta app", org_id="zeta"))
    p = ops.register_client(admin, RegisterClient(name="platform app"))
    assert [c.client_id for c in ops.list_clients(admin, "acme")] == [a.client_id]
    assert [c.client_id for c in ops.list_clients(admin, "zeta")] == [z.client_id]
    assert {c.client_id for c in ops.list_clients(admin)} == {a.client_id, z.client_id, p.client_id}
    assert ops.get_client(admin, a.client_id).org_id == "acme"
    assert ops.get_client(admin, p.client_id).org_id is None
    with pytest.raises(NotFound):
        ops.list_clients(admin, "nope")
    with pytest.raises(NotFound):
        ops.register_client(admin, RegisterClient(name="stray", org_id="nope"))
