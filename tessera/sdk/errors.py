"""The SDK's one exception hierarchy. Every client call raises these and nothing else from
the network (no raw ``httpx`` or ``ssl`` exception escapes)::

    SDKError
    ├── TransportError          the request failed on the network (``request_sent``: whether
    │   │                       it may have reached the server)
    │   ├── TLSError            the TLS handshake failed (unknown CA, wrong name, refused cert)
    │   └── RequestTimeout      connect, read, write or pool timeout
    └── ProviderError           the server answered, with an error (``TokenError`` is its old name)
        ├── AuthenticationError the credentials were refused (401; 400 invalid_client, B2BINPAY 2006)
        └── RateLimited         429: ``retry_after`` says when to come back (seconds, or None)

:class:`ProviderError` carries the HTTP ``status``, the provider's own ``code`` and
``message`` (Nexi and MobilePay ``error``/``error_description``, B2BINPAY's
``errors[0].code``/``detail``, axept's ``message`` or just the status) and ``retry_after``
when the server sent ``Retry-After``. ``error`` and ``description`` are the same values under
their RFC 6749 names.

Messages carry the status and the server's code and description (truncated), never the
request: no client secret, assertion or token ends up in a log line through an exception.
"""

from __future__ import annotations

import ssl
import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

__all__ = [
    "AuthenticationError",
    "ProviderError",
    "RateLimited",
    "RequestTimeout",
    "SDKError",
    "TLSError",
    "TokenError",
    "TransportError",
    "error_from_response",
    "parse_retry_after",
    "provider_error",
    "transport_error",
]

_MAX_DESCRIPTION = 300
#: Codes that mean "your credentials are refused" even under a 400.
_CREDENTIAL_CODES = frozenset({"invalid_client", "unauthorized_client", "2006"})


class SDKError(Exception):
    """Base class of the SDK's own errors."""


# ---------------------------------------------------------------------- network
class TransportError(SDKError):
    """The request failed on the network: refused connection, reset, DNS, protocol error.

    ``request_sent`` is False when the request surely never reached the server (the
    connection was never made): such a call can be sent again whatever it does."""

    def __init__(self, message: str, *, request_sent: bool = True) -> None:
        self.request_sent = request_sent
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_transport, (type(self), str(self), self.request_sent))


class TLSError(TransportError):
    """The TLS handshake failed: the server's certificate is not trusted (``verify``), names
    another host, or the server refused the client certificate."""


class RequestTimeout(TransportError):
    """A connect, read, write or pool timeout (``timeout=`` of the client)."""


def _rebuild_transport(cls: type[TransportError], message: str, request_sent: bool) -> TransportError:
    return cls(message, request_sent=request_sent)


# ---------------------------------------------------------------------- answers
class ProviderError(SDKError):
    """The server answered with an error (or an answer the SDK cannot use).

    ``status``: the HTTP status; ``code``: the provider's error code (RFC 6749 ``error``,
    B2BINPAY's ``errors[0].code``, ``"invalid_response"`` when the body was not the
    expected JSON, ``"invalid_signature"`` for a B2BINPAY answer whose ``meta.sign`` does
    not verify); ``message``: the provider's description (possibly empty);
    ``retry_after``: seconds to wait, from ``Retry-After``, or None."""

    def __init__(self, status: int, code: str, message: str = "", *, retry_after: float | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        text = f"HTTP {status} {code}"
        if message:
            text += f": {message}"
        if retry_after is not None:
            text += f" (retry after {retry_after:g} s)"
        super().__init__(text)

    @property
    def error(self) -> str:
        """The RFC 6749 name of :attr:`code`."""
        return self.code

    @property
    def description(self) -> str:
        """The RFC 6749 name of :attr:`message`."""
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:  # picklable (e.g. across process pools)
        return (_rebuild_provider, (type(self), self.status, self.code, self.message, self.retry_after))


class AuthenticationError(ProviderError):
    """The credentials were refused: 401, or 400 ``invalid_client``/``unauthorized_client``
    (B2BINPAY: 400 code 2006). Retrying with the same credentials will not help."""


class RateLimited(ProviderError):
    """429: the server throttles this client. ``retry_after`` (seconds, or None) is when
    the server said to come back."""


#: The SDK's first name for :class:`ProviderError`, kept for existing code.
TokenError = ProviderError


def _rebuild_provider(
    cls: type[ProviderError], status: int, code: str, message: str, retry_after: float | None
) -> ProviderError:
    return cls(status, code, message, retry_after=retry_after)


def provider_error(status: int, code: str, message: str = "", *, retry_after: float | None = None) -> ProviderError:
    """The :class:`ProviderError` subclass for this answer (429 → :class:`RateLimited`;
    401 or a credentials code → :class:`AuthenticationError`)."""
    cls: type[ProviderError] = ProviderError
    if status == 429:
        cls = RateLimited
    elif status == 401 or (status == 400 and code in _CREDENTIAL_CODES):
        cls = AuthenticationError
    return cls(status, code, message, retry_after=retry_after)


def clean(value: Any) -> str:
    """A printable, truncated copy of a string from the server ('' for anything else)."""
    text = value if isinstance(value, str) else ""
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text[:_MAX_DESCRIPTION]


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date → seconds from now
    (never negative); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def retry_after_of(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("retry-after"))


def error_from_response(response: httpx.Response) -> ProviderError:
    """The :class:`ProviderError` for a failed response (RFC 6749 §5.2 JSON when there is
    some). When the body has no ``error``, a Bearer ``WWW-Authenticate`` challenge (RFC 6750
    §3) is used instead."""
    error, description = "", ""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        error, description = clean(body.get("error")), clean(body.get("error_description"))
    if not error:
        error = _challenge_error(response.headers.get("www-authenticate", ""))
    if not error:
        error = "invalid_response"
        description = description or f"unexpected {response.headers.get('content-type', 'body')[:60]} answer"
    return provider_error(response.status_code, error, description, retry_after=retry_after_of(response))


def _challenge_error(header: str) -> str:
    marker = 'error="'
    i = header.find(marker)
    if i < 0:
        return ""
    j = header.find('"', i + len(marker))
    return clean(header[i + len(marker) : j if j > 0 else None])


# ---------------------------------------------------------------------- httpx → SDK
def transport_error(exc: Exception, what: str) -> TransportError:
    """The SDK error for an ``httpx`` (or ``ssl``/``OSError``) exception of a call ``what``
    (e.g. ``"POST https://host/path"``). The message names the call and the kind of
    failure, never a header or a body."""
    if isinstance(exc, httpx.TimeoutException):  # first: a handshake cut short by the timeout is a timeout
        sent = not isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))
        return RequestTimeout(f"{what}: {type(exc).__name__}", request_sent=sent)
    if _is_tls(exc):
        return TLSError(f"{what}: TLS handshake failed: {_tls_reason(exc)}", request_sent=False)
    if isinstance(exc, httpx.ConnectError):
        return TransportError(f"{what}: cannot connect ({_reason(exc)})", request_sent=False)
    return TransportError(f"{what}: {type(exc).__name__} ({_reason(exc)})", request_sent=True)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _is_tls(exc: BaseException) -> bool:
    return any(
        isinstance(e, ssl.SSLError) and not isinstance(e, (ssl.SSLWantReadError, ssl.SSLWantWriteError))
        for e in _chain(exc)
    )


def _tls_reason(exc: BaseException) -> str:
    for e in _chain(exc):
        if isinstance(e, ssl.SSLCertVerificationError):
            return clean(
                getattr(e, "verify_message", None) or getattr(e, "reason", None) or "certificate verify failed"
            )
        if isinstance(e, ssl.SSLError):
            return clean(getattr(e, "reason", None) or type(e).__name__)
    return "unknown"  # pragma: no cover - only called when _is_tls


def _reason(exc: BaseException) -> str:
    for e in reversed(_chain(exc)):
        text = clean(str(e))
        if text:
            return text[:120]
    return type(exc).__name__
