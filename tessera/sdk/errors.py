"""Errors raised by the SDK clients.

Messages carry the HTTP status and the server's RFC 6749 ``error`` / ``error_description``
(truncated), never the request: no client secret, assertion or token ends up in a log line
through an exception.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["SDKError", "TokenError", "error_from_response"]

_MAX_DESCRIPTION = 300


class SDKError(Exception):
    """Base class of the SDK's own errors."""


class TokenError(SDKError):
    """A token, PAR, JWKS or code-exchange call got a non-2xx (or malformed) answer.

    ``status`` is the HTTP status, ``error`` the RFC 6749 error code (or
    ``"invalid_response"`` when the body was not the expected JSON), ``description`` the
    server's ``error_description`` (possibly empty)."""

    def __init__(self, status: int, error: str, description: str = "") -> None:
        self.status = status
        self.error = error
        self.description = description
        msg = f"HTTP {status} {error}"
        if description:
            msg += f": {description}"
        super().__init__(msg)

    def __reduce__(self) -> tuple[type[TokenError], tuple[int, str, str]]:  # picklable (e.g. across process pools)
        return (type(self), (self.status, self.error, self.description))


def _clean(value: Any) -> str:
    text = value if isinstance(value, str) else ""
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text[:_MAX_DESCRIPTION]


def error_from_response(response: httpx.Response) -> TokenError:
    """The :class:`TokenError` for a failed response (RFC 6749 §5.2 JSON when there is some).

    When the body has no ``error``, a Bearer ``WWW-Authenticate`` challenge (RFC 6750 §3) is
    used instead."""
    error, description = "", ""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        error, description = _clean(body.get("error")), _clean(body.get("error_description"))
    if not error:
        error = _challenge_error(response.headers.get("www-authenticate", ""))
    if not error:
        error = "invalid_response"
        description = description or f"unexpected {response.headers.get('content-type', 'body')[:60]} answer"
    return TokenError(response.status_code, error, description)


def _challenge_error(header: str) -> str:
    marker = 'error="'
    i = header.find(marker)
    if i < 0:
        return ""
    j = header.find('"', i + len(marker))
    return _clean(header[i + len(marker) : j if j > 0 else None])
