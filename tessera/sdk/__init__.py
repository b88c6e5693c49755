"""tessera's client SDK: token clients for payment platforms' B2B channels.

- :class:`TokenCache` / :func:`default_cache`: one thread- and asyncio-safe, single-flight,
  auto-evicting token cache shared by every client;
- :class:`TokenAuth`: the ``httpx.Auth`` base of every client (Bearer, retry once on 401);
- :class:`NexiSoftPOSClient`: Nexi's B2B SoftPOS enrollment (token, JWKS, PAR, code);
- :class:`AxeptClient`, :class:`MobilePayClient`, :class:`B2BinPayClient`: the token calls of
  axept Cloud Connect, MobilePay PoS and B2BINPAY v2;
- :mod:`tessera.sdk.resource`: the resource-server side (:class:`TokenVerifier`,
  :class:`JWKSCache`, :class:`MobilePayMerchantRule`, :func:`require_token`);
- :func:`build_nested_assertion`, :func:`make_csr`, :func:`make_pkce`: the building blocks;
- :class:`RetryPolicy` (:mod:`tessera.sdk.retry`): backoff, jitter, ``Retry-After``;
- the errors (:mod:`tessera.sdk.errors`): :class:`SDKError`, :class:`TransportError`,
  :class:`TLSError`, :class:`RequestTimeout`, :class:`ProviderError` (``TokenError``),
  :class:`AuthenticationError`, :class:`RateLimited`;
- :mod:`tessera.sdk.providers`: the providers' environments and paths.

See docs/sdk.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .assertion import build_nested_assertion, x5t_s256
    from .auth import TokenAuth
    from .axept import AxeptClient
    from .b2binpay import B2BinPayClient
    from .cache import CachedToken, TokenCache, default_cache
    from .csr import make_csr
    from .errors import (
        AuthenticationError,
        ProviderError,
        RateLimited,
        RequestTimeout,
        SDKError,
        TLSError,
        TokenError,
        TransportError,
    )
    from .mobilepay import MobilePayClient
    from .nexi import ClientAssertion, NexiSoftPOSClient
    from .pkce import make_pkce
    from .resource import (
        AuthContext,
        InsufficientScope,
        InvalidRequestError,
        InvalidTokenError,
        JWKSCache,
        JWKSUnavailable,
        MerchantMismatch,
        MobilePayMerchantRule,
        ResourceError,
        TokenVerifier,
        require_token,
        resource_error_handler,
    )
    from .retry import RetryPolicy

# Every name is imported on first use (PEP 562): ``import tessera.sdk.mtls`` (which the
# server and the CA use) costs that module alone, a token client does not pay for the
# resource-server side, and Starlette comes only with require_token / resource_error_handler.
_HOMES = {
    "build_nested_assertion": "assertion",
    "x5t_s256": "assertion",
    "TokenAuth": "auth",
    "AxeptClient": "axept",
    "B2BinPayClient": "b2binpay",
    "CachedToken": "cache",
    "TokenCache": "cache",
    "default_cache": "cache",
    "make_csr": "csr",
    **dict.fromkeys(
        (
            "AuthenticationError",
            "ProviderError",
            "RateLimited",
            "RequestTimeout",
            "SDKError",
            "TLSError",
            "TokenError",
            "TransportError",
        ),
        "errors",
    ),
    "RetryPolicy": "retry",
    "MobilePayClient": "mobilepay",
    "ClientAssertion": "nexi",
    "NexiSoftPOSClient": "nexi",
    "make_pkce": "pkce",
    **dict.fromkeys(
        (
            "AuthContext",
            "InsufficientScope",
            "InvalidRequestError",
            "InvalidTokenError",
            "JWKSCache",
            "JWKSUnavailable",
            "MerchantMismatch",
            "MobilePayMerchantRule",
            "ResourceError",
            "TokenVerifier",
            "require_token",
            "resource_error_handler",
        ),
        "resource",
    ),
}


def __getattr__(name: str) -> Any:
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once: the next look-up is a plain attribute
    return value


__all__ = [
    "AuthContext",
    "AuthenticationError",
    "AxeptClient",
    "B2BinPayClient",
    "CachedToken",
    "ClientAssertion",
    "InsufficientScope",
    "InvalidRequestError",
    "InvalidTokenError",
    "JWKSCache",
    "JWKSUnavailable",
    "MerchantMismatch",
    "MobilePayClient",
    "MobilePayMerchantRule",
    "NexiSoftPOSClient",
    "ProviderError",
    "RateLimited",
    "RequestTimeout",
    "ResourceError",
    "RetryPolicy",
    "SDKError",
    "TLSError",
    "TokenAuth",
    "TokenCache",
    "TokenError",
    "TokenVerifier",
    "TransportError",
    "build_nested_assertion",
    "default_cache",
    "make_csr",
    "make_pkce",
    "require_token",
    "resource_error_handler",
    "x5t_s256",
]
