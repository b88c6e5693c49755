"""Integrator apps (OAuth clients): registration with its rules, listing, revocation.

Rules: the authentication methods and grant types come from fixed sets; every redirect URI
passes ``validate_redirect_uri``; a JWKS holds public RSA (>= 2048 bits) or P-256 keys only;
a secret (256 bits) is made only for the secret methods, shown once and stored as
HMAC-SHA256 under the pepper (``hash_secret``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tessera.admin.context import Admin
from tessera.admin.errors import Conflict, Invalid, NotFound, Stale
from tessera.admin.fixed import check_client_id, check_secret
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
    #: a fixed client id instead of a generated one (``tessera.admin.fixed``: a sandbox's fixtures)
    client_id: str | None = None
    #: a fixed secret instead of a generated one: staging homes only, stored as HMAC as usual
    client_secret: str | None = None


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
    """Register an app. Its id and secret are generated unless the request fixes them
    (``tessera.admin.fixed``: a fixed secret only for the secret methods, in a staging home)."""
    methods, grants, keys = check_registration(req)
    if req.org_id is not None and admin.store.get_organisation(req.org_id) is None:
        raise NotFound(f"no organisation {req.org_id}")
    client_id = check_client_id(req.client_id) if req.client_id is not None else generate_client_id()
    uses_secret = any(m in SECRET_METHODS for m in methods)
    if req.client_secret is not None:
        if not uses_secret:
            raise Invalid(
                "is only for the secret methods (client_secret_basic, client_secret_post)", field="client_secret"
            )
        secret: str | None = check_secret(admin, req.client_secret, field="client_secret")
    else:
        secret = generate_secret() if uses_secret else None
    client = Client(
        client_id=client_id,
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


# --- changes after registration (the admin API, the CLI) ------------------------------------------------


@dataclass(frozen=True)
class UpdateClient:
    """What ``update_client`` changes; None leaves a field as it is."""

    name: str | None = None
    redirect_uris: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RotatedSecret:
    """``client_secret`` is shown this once; the previous one is accepted until
    ``previous_valid_until`` (None: not at all, the overlap was 0)."""

    client_id: str
    client_secret: str
    previous_valid_until: int | None


def _client(admin: Admin, client_id: str) -> Client:
    client = admin.store.get_client(client_id)
    if client is None:
        raise NotFound(f"no client {client_id}")
    return client


def update_client(
    admin: Admin, client_id: str, req: UpdateClient, *, check: Callable[[ClientInfo], None] | None = None
) -> ClientInfo:
    """Change an app's name and redirect URIs, checked by the registration's rules (a redirect
    URI that ``validate_redirect_uri`` refuses is ``Invalid``). Workers see it on the next request.

    With ``check`` (the admin API's ``If-Match``), ``check`` is given the app as read and may
    refuse; the change is then written only if the name and redirect URIs are still those read
    (one unit in the store), else ``Stale``."""
    client = _client(admin, client_id)
    if check is not None:
        check(ClientInfo.of(client))
    name = client.name if req.name is None else req.name
    uris = client.redirect_uris if req.redirect_uris is None else tuple(dict.fromkeys(req.redirect_uris))
    check_registration(
        RegisterClient(name=name, redirect_uris=uris, auth_methods=client.auth_methods, grant_types=client.grant_types)
    )
    expected = (client.name, client.redirect_uris) if check is not None else None
    try:
        if not admin.store.update_client_details(client_id, name, uris, expected=expected):
            raise NotFound(f"no client {client_id}")
    except StoreConflict:
        raise Stale(f"client {client_id} changed since it was read") from None
    admin.record("client.update", client_id=client_id, name=name, redirect_uris=list(uris))
    return get_client(admin, client_id)


def rotate_secret(admin: Admin, client_id: str, overlap: int | None = None) -> RotatedSecret:
    """A new secret for a client of the secret methods, shown once; the current one stays valid
    for ``overlap`` seconds (None: ``client_secret_overlap``), so that the integrator can deploy
    the new one without an outage; after it, only the new one authenticates.

    A second rotation while an overlap lasts is refused (``Conflict``): the secret it would
    drop may be the one still deployed. With ``overlap`` 0 it is allowed at any time (a leaked
    secret): both older secrets stop at once and only the new one works."""
    if overlap is None:
        overlap = admin.settings.client_secret_overlap
    if not 0 <= overlap <= 30 * 24 * 3600:
        raise Invalid("must be between 0 and 2592000 seconds", field="overlap")
    client = _client(admin, client_id)
    if not client.active:
        raise Conflict(f"client {client_id} is revoked")
    if client.secret_hash is None or not any(m in SECRET_METHODS for m in client.auth_methods):
        raise Invalid(f"client {client_id} authenticates without a secret", field="client_id")
    now = admin.now()
    if overlap > 0 and client.previous_secret(now) is not None:
        raise Conflict(
            f"client {client_id}'s previous secret is valid until {client.previous_valid_until}: "
            "rotate again after it, or with an overlap of 0 to drop both older secrets now"
        )
    secret = generate_secret()
    until = now + overlap if overlap > 0 else None
    previous = client.secret_hash if until is not None else None
    new_hash = hash_secret(secret, admin.settings.peppers())
    if not admin.store.set_client_secret(client_id, new_hash, previous, until):
        raise NotFound(f"no client {client_id}")
    admin.record("client.rotate_secret", client_id=client_id, previous_valid_until=until)
    return RotatedSecret(client_id, secret, until)


def secret_overlap_until(admin: Admin, client_id: str) -> int | None:
    """When the previous secret of ``client_id`` stops being accepted (None: no overlap now)."""
    client = _client(admin, client_id)
    return client.previous_valid_until if client.previous_secret(admin.now()) is not None else None
