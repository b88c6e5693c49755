"""Typed protocol errors.

Core code raises these; only the web layer renders them (RFC 6749 §5.2 JSON for the
native routes, each profile's own shape for the profiles). Every error carries its
RFC 6749 code and HTTP status. ``description`` is safe to show to the caller: it never
echoes secrets, keys or tokens. ``reason`` is a short machine tag for metrics and
security events (e.g. ``"jti_replayed"``).
"""

from __future__ import annotations


class OAuthError(Exception):
    """Base class: an RFC 6749 error with its HTTP status."""

    error: str = "invalid_request"
    status: int = 400

    def __init__(self, description: str = "", *, reason: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(description or self.error)
        self.description = description
        self.reason = reason or self.error
        self.headers = headers or {}

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"{type(self).__name__}({self.description!r}, reason={self.reason!r})"


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    """RFC 6749 §5.2: 401 with a ``WWW-Authenticate`` challenge."""

    error = "invalid_client"
    status = 401


class InvalidClientAssertion(InvalidClient):
    """``invalid_client`` answered with HTTP 400: the client did not authenticate with the
    ``Authorization`` header (RFC 6749 §5.2 allows 400 then) and its assertion was refused.
    The Nexi PAR answers assertion problems so, as the provider does. No challenge header."""

    status = 400

    @classmethod
    def of(cls, err: InvalidClient) -> InvalidClientAssertion:
        """The same refusal (description, reason, headers), answered with 400."""
        return cls(err.description, reason=err.reason, headers=err.headers)


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class InvalidRequestURI(OAuthError):
    """RFC 9126 §4 / RFC 9101: the ``request_uri`` is unknown, used, expired or foreign."""

    error = "invalid_request_uri"


class InvalidToken(OAuthError):
    """RFC 6750 §3.1: a bearer token that is missing, expired, revoked or not bound to this caller."""

    error = "invalid_token"
    status = 401


class AccessDenied(OAuthError):
    error = "access_denied"
    status = 403


class UnsupportedMediaType(OAuthError):
    error = "invalid_request"
    status = 415


class MethodNotAllowed(OAuthError):
    error = "invalid_request"
    status = 405


class PayloadTooLarge(OAuthError):
    error = "invalid_request"
    status = 413


class SlowDown(OAuthError):
    """Too many attempts: 429 with ``Retry-After``."""

    error = "slow_down"
    status = 429

    def __init__(self, retry_after: int, description: str = "too many requests", *, reason: str = "rate_limited"):
        super().__init__(description, reason=reason, headers={"Retry-After": str(max(1, int(retry_after)))})
        self.retry_after = max(1, int(retry_after))


class ServiceUnavailable(OAuthError):
    """A dependency (database, Redis) is down: 503, never a wrong grant."""

    error = "temporarily_unavailable"
    status = 503


class ServerError(OAuthError):
    error = "server_error"
    status = 500
