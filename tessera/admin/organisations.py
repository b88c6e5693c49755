"""Organisations: the integrator companies that own apps.

Rules: an id is 2 to 64 characters of lower-case letters, digits and ``-`` (starting with a
letter or digit), made from the name when not given; a name has 1 to 200 characters. An app
registered for an organisation (``RegisterClient.org_id``) belongs to it for good: the portal
and an organisation-bound admin client see only their own organisation's apps."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from tessera.admin.context import Admin
from tessera.admin.errors import Conflict, Invalid, NotFound
from tessera.core.models import Organisation
from tessera.core.ports import Conflict as StoreConflict

ORG_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,63}")


@dataclass(frozen=True)
class CreateOrganisation:
    name: str
    #: None: made from the name (``acme-pos-3f9a``).
    org_id: str | None = None


@dataclass(frozen=True)
class OrganisationInfo:
    org_id: str
    name: str
    created_at: int

    @classmethod
    def of(cls, o: Organisation) -> OrganisationInfo:
        return cls(o.org_id, o.name, o.created_at)


def _org_id_from(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].strip("-") or "org"
    return f"{slug}-{secrets.token_hex(2)}"


def create_organisation(admin: Admin, req: CreateOrganisation) -> OrganisationInfo:
    if not req.name or len(req.name) > 200:
        raise Invalid("must have 1 to 200 characters", field="name")
    org_id = req.org_id if req.org_id is not None else _org_id_from(req.name)
    if not ORG_ID.fullmatch(org_id):
        raise Invalid("must be 2 to 64 lower-case letters, digits or '-', not starting with '-'", field="org_id")
    org = Organisation(org_id=org_id, name=req.name, created_at=admin.now())
    try:
        admin.store.create_organisation(org)
    except StoreConflict:
        raise Conflict(f"organisation {org_id} exists") from None
    admin.record("organisation.create", org_id=org_id)
    return OrganisationInfo.of(org)


def get_organisation(admin: Admin, org_id: str) -> OrganisationInfo:
    org = admin.store.get_organisation(org_id)
    if org is None:
        raise NotFound(f"no organisation {org_id}")
    return OrganisationInfo.of(org)


def list_organisations(admin: Admin) -> list[OrganisationInfo]:
    return [OrganisationInfo.of(o) for o in admin.store.list_organisations()]
