"""The resource server's errors: RFC 6750 §3 (``invalid_token`` 401, ``insufficient_scope``
403, ``invalid_request`` 400, each with its ``WWW-Authenticate: Bearer`` challenge), MobilePay
PoS V10's refusals, and 503 when the authorization server's keys cannot be had."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from tessera.sdk.errors import SDKError

if TYPE_CHECKING:
    from starlette.responses import Response

__all__ = [
    "BearerError",
    "InsufficientScope",
    "InvalidRequestError",
    "InvalidTokenError",
    "JWKSUnavailable",
    "MerchantMismatch",
    "PosApiError",
    "ResourceError",
]


class ResourceError(SDKError):
    """An error the resource server answers with: ``status``, an RFC 6750 ``error`` code and
    ``description``, ``reason`` for logs, and the headers of :meth:`challenge_headers`.
    :meth:`body` is its JSON body; :meth:`response` renders it for Starlette. Raised through
    :func:`tessera.sdk.resource.require_token`'s dependency it is also a Starlette
    ``HTTPException``, so that Starlette and FastAPI answer it (with its headers) even
    without our handler."""

    status = 500
    error = "server_error"

    def __init__(self, description: str, *, reason: str | None = None) -> None:
        self.description = description
        self.reason = reason or self.error
        super().__init__(description)

    def __str__(self) -> str:
        return f"{self.error} ({self.reason}): {self.description}"

    def challenge_headers(self, realm: str = "tessera") -> dict[str, str]:
        return {"Cache-Control": "no-store"}

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "error_description": self.description}

    def response(self, realm: str = "tessera") -> Response:
        """The error as a Starlette ``JSONResponse`` (Starlette is loaded here, on first use:
        a verifier alone does not need it)."""
        from starlette.responses import JSONResponse

        return JSONResponse(self.body(), status_code=self.status, headers=self.challenge_headers(realm))


class BearerError(ResourceError):
    """An RFC 6750 §3.1 error, with its ``WWW-Authenticate: Bearer`` challenge."""

    scope: str | None = None

    def challenge_headers(self, realm: str = "tessera") -> dict[str, str]:
        params = [f'realm="{_quote(realm)}"']
        if self.reason != "token_missing":  # §3.1: no error code when no credentials were sent
            params.append(f'error="{self.error}"')
            params.append(f'error_description="{_quote(self.description)}"')
        if self.scope:
            params.append(f'scope="{_quote(self.scope)}"')
        return {"WWW-Authenticate": "Bearer " + ", ".join(params), "Cache-Control": "no-store"}


class InvalidTokenError(BearerError):
    """401 ``invalid_token``: missing, malformed, expired, revoked, wrongly signed or issued,
    or bound to another certificate. ``reason`` says which (for logs)."""

    status = 401
    error = "invalid_token"


class InsufficientScope(BearerError):
    """403 ``insufficient_scope``: the token is good but does not grant ``scopes``."""

    status = 403
    error = "insufficient_scope"

    def __init__(self, description: str, *, scopes: Iterable[str] = (), reason: str | None = None) -> None:
        self.scopes = tuple(scopes)
        self.scope = " ".join(self.scopes) or None
        super().__init__(description, reason=reason or "scope_missing")


class MerchantMismatch(InsufficientScope):
    """403: a token bound to one merchant (``merchant_vat``) used for another."""

    def __init__(self, description: str = "the access token is for another merchant") -> None:
        super().__init__(description, reason="merchant_mismatch")


class InvalidRequestError(BearerError):
    """400 ``invalid_request``: e.g. the merchant's VAT header is missing or malformed."""

    status = 400
    error = "invalid_request"


class PosApiError(ResourceError):
    """A refusal of MobilePay's PoS V10 API: ``{"code": "1151", "message": "...",
    "CorrelationId": "<uuid>"}`` with the API's status (400, or 403 for ``1411``)."""

    error = "pos_api_error"

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.correlation_id = str(uuid.uuid4())
        super().__init__(message, reason=f"pos_{code}")

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.description, "CorrelationId": self.correlation_id}


class JWKSUnavailable(ResourceError):
    """503: the authorization server's keys could not be fetched (and none are known)."""

    status = 503
    error = "temporarily_unavailable"

    def challenge_headers(self, realm: str = "tessera") -> dict[str, str]:
        return {"Cache-Control": "no-store", "Retry-After": "5"}


def _quote(value: str) -> str:
    return "".join(c if c.isprintable() and c not in '"\\' else "'" for c in value)
