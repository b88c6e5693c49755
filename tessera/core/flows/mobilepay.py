"""MobilePay PoS integrator authentication: the token use case, without the wire format.

``POST {prefix}/connect/token`` (parsed by ``tessera.web.profiles.mobilepay``): client
authentication with the client secret (``client_secret_basic``, as the document's curl, or
``client_secret_post``: both advertised by the provider's discovery document),
``grant_type=client_credentials``, an optional ``merchant_vat`` (``^(DK|FI)\\d{8}$``) and an
optional ``scope`` (``integrator_scope``, the only scope a token can carry).

The token follows the provider's sample integrator token (provider-docs/reference-facts.md):
RS256 from MobilePay's own key ring (``kid``, ``x5t``), ``typ: at+jwt``, and the claims
``client_id``, ``integrator_id``, ``integrator_name``, ``integratorclient_name``,
``scope: ["integrator_scope"]``, ``aud: [<MobilePay audience>, "integrator_scope"]``, ``nbf``
(= ``iat``), ``exp``, ``iss`` (this deployment's ``{issuer}{prefix}``), and ``merchant_vat``
when one was asked for. tessera has no integrator (organisation) record: each registered
client is its own integrator, so ``integrator_id`` is the client id and ``integrator_name``
and ``integratorclient_name`` are the client's registered name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tessera.core import tokens
from tessera.core.clients import ClientCredentials
from tessera.core.context import Core
from tessera.core.models import Client
from tessera.core.profiles import MOBILEPAY
from tessera.errors import InvalidClient, InvalidRequest, InvalidScope, UnauthorizedClient, UnsupportedGrantType

VAT = re.compile(r"^(DK|FI)\d{8}$", re.ASCII)  # ASCII: \d would also take "١٢٣…" and "１２３…"
SCOPE = "integrator_scope"
TOKEN_TYPE = "Bearer"
#: The client authentication methods of the token endpoint (and of the discovery document).
AUTH_METHODS = ("client_secret_basic", "client_secret_post")


@dataclass(frozen=True)
class TokenRequest:
    credentials: ClientCredentials
    grant_type: str | None
    merchant_vat: str | None = None
    scope: str | None = None


@dataclass(frozen=True)
class TokenResult:
    access_token: str
    expires_in: int
    token_type: str
    scope: str
    claims: dict[str, Any]


def client_credentials_of(credentials: ClientCredentials) -> ClientCredentials:
    """The client secret, presented by one of ``AUTH_METHODS`` (the token, introspection and
    revocation endpoints all take it), or ``InvalidClient``."""
    if credentials.method not in AUTH_METHODS:
        raise InvalidClient(
            "authenticate with the client secret: HTTP Basic (client_id:client_secret) or "
            "client_id and client_secret in the form",
            reason="secret_required",
        )
    return credentials


def check(request: TokenRequest) -> None:
    """The request's own rules, checked before the client is authenticated."""
    client_credentials_of(request.credentials)
    if not request.grant_type:
        raise InvalidRequest("grant_type is required", reason="grant_type_missing")
    if request.grant_type != "client_credentials":
        raise UnsupportedGrantType("grant_type must be client_credentials", reason="grant_type")
    if request.merchant_vat is not None and not VAT.fullmatch(request.merchant_vat):
        raise InvalidRequest("merchant_vat must be DK or FI followed by 8 digits", reason="vat_format")
    if request.scope is not None and set(request.scope.split(" ")) != {SCOPE}:
        raise InvalidScope(f"the only scope is {SCOPE}", reason="scope")


def issue(core: Core, request: TokenRequest, client: Client, *, ttl: int) -> TokenResult:
    """The integrator token for an authenticated ``client`` (``check`` already passed)."""
    extra: dict[str, Any] = {
        "integrator_id": client.client_id,
        "integrator_name": client.name,
        "integratorclient_name": client.name,
    }
    if request.merchant_vat is not None:
        merchant = core.merchant_by_vat(request.merchant_vat)
        # The same answer for an unknown VAT number and a merchant that did not grant access.
        if merchant is None or not core.is_granted(merchant.merchant_id, client.client_id):
            raise UnauthorizedClient(
                "the merchant has not granted this integrator access", reason="merchant_not_granted"
            )
        extra["merchant_vat"] = request.merchant_vat
    audience = core.config.seal(MOBILEPAY).audience
    issued = tokens.issue_access_token(
        core,
        profile=MOBILEPAY,
        client_id=client.client_id,
        ttl=ttl,
        scope=[SCOPE],
        audience=[audience, SCOPE],
        extra=extra,
        not_before=True,
    )
    return TokenResult(issued.token, issued.expires_in, TOKEN_TYPE, SCOPE, issued.claims)


def token(
    core: Core, request: TokenRequest, *, ttl: int, authenticate: Callable[[ClientCredentials], Client]
) -> TokenResult:
    """The whole use case: ``check``, ``authenticate`` the client (the web layer passes its
    brute-force guarded authenticator), ``issue``."""
    check(request)
    return issue(core, request, authenticate(request.credentials), ttl=ttl)
