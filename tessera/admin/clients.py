"""Integrator apps (OAuth clients): registration with its rules, listing, revocation.

Rules: the authentication methods and grant types come from fixed sets; every redirect URI
passes ``validate_redirect_uri``; a JWKS holds public RSA (>= 2048 bits) or P-256 keys only;
a secret (256 bits) is made only for the secret methods, shown once and stored as
HMAC-SHA256 under the pepper (``hash_secret``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tessera.admin.context import Admin
from tessera.admin.errors import Conflict, Invalid, NotFound
from tessera.core.client_auth import SECRET_METHODS, validate_jwks
from tessera.core.flows.native import GRANT_TYPES
from tessera.core.models import AUTH_METHODS, Client
from tessera.core.par import validate_redirect_uri
from tessera.core.ports import Conflict as StoreConflict
from tessera.core.secrets import generate_client_id, generate_secret, hash_secret

DEFAULT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
DEFAULT_GRANT_TYPES = ("client_credentials", "authorization_code")


@dataclass(frozen=True)
class RegisterClient:
    name: str
    redirect_uris: tuple[str, ...] = ()
    scope: str = ""
    auth_methods: tuple[str, ...] = DEFAULT_AUTH_METHODS
    grant_types: tuple[str, ...] = DEFAULT_GRANT_TYPES
    require_par: bool = False
    #: the client's public keys (``private_key_jwt``), as parsed JSON
    jwks: Any = None
    #: the organisation that owns the app (``tessera.admin.organisations``); None: the platform's own
    org_id: str | None = None


@dataclass(frozen=True)
class RegisteredClient:
    """``client_secret`` is shown this once (None for the secret-less methods)."""

    client_id: str
    client_secret: str | None


@dataclass(frozen=True)
class ClientInfo:
    """A client as an operator sees it: never its secret's hash."""

    client_id: str
    name: str
    status: str
    redirect_uris: tuple[str, ...]
    scope: str
    auth_methods: tuple[str, ...]
    grant_types: tuple[str, ...]
    require_par: bool
    created_at: int
    org_id: str | None = None

    @classmethod
    def of(cls, c: Client) -> ClientInfo:
        return cls(
            c.client_id,
            c.name,
            c.status,
            c.redirect_uris,
            c.scope,
            c.auth_methods,
            c.grant_types,
            c.require_par,
            c.created_at,
            c.org_id,
        )


def _one_of(values: tuple[str, ...], allowed: tuple[str, ...], field: str) -> tuple[str, ...]:
    unique = tuple(dict.fromkeys(values))
    if not unique:
        raise Invalid("must name at least one value", field=field)
    for v in unique:
        if v not in allowed:
            raise Invalid(f"must be one of {', '.join(allowed)} (got {v!r})", field=field)
    return unique


def check_registration(req: RegisterClient) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, Any] | None]:
    """The request's methods, grant types and JWKS once checked; ``Invalid`` naming the field."""
    if not req.name or len(req.name) > 200:
        raise Invalid("must have 1 to 200 characters", field="name")
    methods = _one_of(req.auth_methods, AUTH_METHODS, "auth_methods")
    grants = _one_of(req.grant_types, GRANT_TYPES, "grant_types")
    for uri in req.redirect_uris:
        try:
            validate_redirect_uri(uri)
        except ValueError as e:
            raise Invalid(str(e), field="redirect_uris") from None
    keys = None
    if req.jwks is not None:
        try:
            keys = validate_jwks(req.jwks)
        except (ValueError, TypeError) as e:
            raise Invalid(str(e), field="jwks") from None
    return methods, grants, keys


def register_client(admin: Admin, req: RegisterClient) -> RegisteredClient:
    methods, grants, keys = check_registration(req)
    if req.org_id is not None and admin.store.get_organisation(req.org_id) is None:
        raise NotFound(f"no organisation {req.org_id}")
    secret = generate_secret() if any(m in SECRET_METHODS for m in methods) else None
    client = Client(
        client_id=generate_client_id(),
        name=req.name,
        secret_hash=hash_secret(secret, admin.settings.peppers()) if secret else None,
        redirect_uris=tuple(req.redirect_uris),
        scope=req.scope,
        auth_methods=methods,
        grant_types=grants,
        require_par=req.require_par,
        jwks=keys,
        created_at=admin.now(),
        org_id=req.org_id,
    )
    try:
        admin.store.create_client(client)
    except StoreConflict as e:
        raise Conflict(str(e)) from None
    admin.record("client.register", client_id=client.client_id, auth_methods=list(methods), org_id=req.org_id)
    return RegisteredClient(client.client_id, secret)


def get_client(admin: Admin, client_id: str) -> ClientInfo:
    client = admin.store.get_client(client_id)
    if client is None:
        raise NotFound(f"no client {client_id}")
    return ClientInfo.of(client)


def list_clients(admin: Admin, org_id: str | None = None) -> list[ClientInfo]:
    """Every client, or (``org_id``) the clients that organisation owns."""
    if org_id is None:
        return [ClientInfo.of(c) for c in admin.store.list_clients()]
    if admin.store.get_organisation(org_id) is None:
        raise NotFound(f"no organisation {org_id}")
    return [ClientInfo.of(c) for c in admin.store.clients_of(org_id)]


def revoke_client(admin: Admin, client_id: str) -> ClientInfo:
    """Revoke a client: its credentials stop working on the next request."""
    if not admin.store.set_client_status(client_id, "revoked"):
        raise NotFound(f"no client {client_id}")
    admin.record("client.revoke", client_id=client_id)
    return get_client(admin, client_id)
