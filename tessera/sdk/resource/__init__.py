"""The resource-server side: verify tessera's access tokens in the payment APIs behind it.

- :class:`JWKSCache` (``jwks``) fetches the authorization server's signing keys (its
  ``jwks_uri``) and keeps them; a token signed with a ``kid`` it does not know makes it
  refetch, at most once per ``min_refetch_interval`` (a key rotation publishes the next key
  before using it, so an unknown ``kid`` is rare, and a flood of forged ``kid`` values cannot
  turn into a flood of fetches).
- :class:`TokenVerifier` (``verifier``) checks an RFC 9068 access token: the JWS signature
  against the JWKS (algorithm allow-list; ``none`` and HMAC never), ``typ: at+jwt``,
  ``exp``/``nbf``/``iat`` (with ``leeway``), ``iss``, ``aud``, the profile (``prf``, with
  ``profile=``), the RFC 8705 certificate binding (``cnf.x5t#S256`` = base64url SHA-256 of the
  presented certificate's DER) and scopes (a space-separated string, or a list as
  MobilePay's tokens carry it). Each tessera profile has its own audience (MobilePay:
  ``{issuer}/integrator-authentication/resources``; axept: ``axeptConnectCloud-merchant-client``;
  native: the issuer; see docs/configuration.md), so a verifier for one profile's audience
  refuses another's tokens; ``profile=`` checks the seal as well.
- :class:`MobilePayMerchantRule` (``mobilepay``): MobilePay PoS V10's merchant rule,
  refusing as the PoS API does (body ``{"code", "message", "CorrelationId"}``: 1151, 1155,
  1159, 1182, 403/1411; :class:`PosApiError`): a token with ``merchant_vat`` is good only for
  that merchant; a token without it must name the merchant in
  ``x-mobilepay-merchant-vat-number`` on every call; an ``x-ibm-client-id`` that is not the
  token's client is 401.
- :func:`require_token` (``starlette``): a Starlette/FastAPI dependency that reads the Bearer
  token and the client certificate (ASGI TLS extension, or a header from trusted proxies
  through :class:`tessera.sdk.mtls.MTLSExtractor`) and answers errors as RFC 6750 §3 says:
  401 ``invalid_token``, 403 ``insufficient_scope``, 400 ``invalid_request``, each with a
  ``WWW-Authenticate: Bearer`` challenge.
- the errors (``errors``).

Nothing here imports the server; Starlette is loaded only with ``require_token``,
``TokenDependency`` or ``resource_error_handler`` (from :mod:`tessera.sdk.resource.starlette`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tessera.sdk.resource.errors import (
    BearerError,
    InsufficientScope,
    InvalidRequestError,
    InvalidTokenError,
    JWKSUnavailable,
    MerchantMismatch,
    PosApiError,
    ResourceError,
)
from tessera.sdk.resource.jwks import JWKSCache
from tessera.sdk.resource.mobilepay import MobilePayMerchantRule
from tessera.sdk.resource.verifier import AuthContext, TokenVerifier

if TYPE_CHECKING:
    from tessera.sdk.resource.starlette import TokenDependency, require_token, resource_error_handler

_STARLETTE = frozenset({"TokenDependency", "require_token", "resource_error_handler"})


def __getattr__(name: str) -> Any:
    if name in _STARLETTE:
        from tessera.sdk.resource import starlette

        return getattr(starlette, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AuthContext",
    "BearerError",
    "InsufficientScope",
    "InvalidRequestError",
    "InvalidTokenError",
    "JWKSCache",
    "JWKSUnavailable",
    "MerchantMismatch",
    "MobilePayMerchantRule",
    "PosApiError",
    "ResourceError",
    "TokenDependency",
    "TokenVerifier",
    "require_token",
    "resource_error_handler",
]
