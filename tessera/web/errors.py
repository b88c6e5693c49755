"""The one place where errors become HTTP responses.

RFC 6749 §5.2 JSON (``error``, ``error_description``) with ``Cache-Control: no-store``.
``invalid_client`` carries a ``WWW-Authenticate`` challenge (RFC 6749 §5.2),
``invalid_token`` a Bearer one (RFC 6750 §3). Profiles that have their own error shape
pass their own ``render`` function; the headers rules stay the same. An unexpected
exception becomes a 500 ``server_error`` that says nothing about its cause.
"""

from __future__ import annotations

import traceback
from typing import Callable

import structlog
from sqlalchemy import exc as sa_exc
from starlette.responses import Response

from tessera.errors import InvalidClient, InvalidToken, OAuthError, ServerError, ServiceUnavailable
from tessera.storage.base import StoreUnavailable
from tessera.web.responses import JSONResponse

log = structlog.get_logger("tessera.web")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

Renderer = Callable[[OAuthError], Response]


def challenge_headers(err: OAuthError, *, basic_realm: str = "tessera") -> dict[str, str]:
    headers = dict(NO_STORE)
    if isinstance(err, InvalidClient) and err.status == 401:
        # A 400 invalid_client (InvalidClientAssertion) challenges nothing: no Authorization header was used.
        headers["WWW-Authenticate"] = f'Basic realm="{basic_realm}"'
    elif isinstance(err, InvalidToken) and err.reason == "token_missing":
        # RFC 6750 §3.1: a request without credentials gets a challenge without an error code.
        headers["WWW-Authenticate"] = f'Bearer realm="{basic_realm}"'
    elif isinstance(err, InvalidToken):
        desc = err.description.replace('"', "'")
        headers["WWW-Authenticate"] = f'Bearer realm="{basic_realm}", error="invalid_token", error_description="{desc}"'
    headers.update(err.headers)
    return headers


def oauth_error_response(err: OAuthError) -> Response:
    body = {"error": err.error}
    if err.description:
        body["error_description"] = err.description
    return JSONResponse(body, status_code=err.status, headers=challenge_headers(err))


#: SQLAlchemy's errors of a database that went away (the store maps them to StoreUnavailable;
#: these are the net under it, so that an outage is never a 500 whatever path raised it).
_SA_GONE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError, sa_exc.PendingRollbackError,
            sa_exc.TimeoutError)


def database_gone(exc: BaseException) -> bool:
    """True for an error that means "the database cannot be used now": SQLAlchemy's, or a
    driver's own ``OperationalError``/``InterfaceError`` (psycopg, sqlite3) that escaped it."""
    if isinstance(exc, _SA_GONE):
        return True
    cls = type(exc)
    return cls.__module__.split(".")[0] in ("psycopg", "sqlite3") and any(
        c.__name__ in ("OperationalError", "InterfaceError") for c in cls.__mro__)


def as_oauth_error(exc: BaseException) -> OAuthError:
    """Map anything raised below the web layer to a typed error, logging the unexpected."""
    if isinstance(exc, OAuthError):
        return exc
    if isinstance(exc, StoreUnavailable) or database_gone(exc):
        # The driver's own first line ("connection refused", "terminating connection ..."), never
        # SQLAlchemy's rendering of the statement.
        message = str(getattr(exc, "orig", None) or exc).splitlines()
        log.error("store_unavailable", error=(message[0] if message else "")[:200], exc_type=type(exc).__name__)
        return ServiceUnavailable("the service is temporarily unavailable; retry shortly", reason="store_unavailable",
                                  headers={"Retry-After": "1"})
    log_unexpected(exc)
    return ServerError("internal server error", reason="unhandled_exception")


def safe_traceback(exc: BaseException, *, limit: int = 40) -> str:
    """The stack of ``exc`` (and of its causes): files, lines, functions and source lines,
    with each exception's type but never its message or arguments, which may hold anything
    a request carried (a secret, a token, a query string)."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 5:
        seen.add(id(current))
        frames = "".join(traceback.format_list(traceback.extract_tb(current.__traceback__, limit=limit)))
        parts.append(f"Traceback (most recent call last):\n{frames}{type(current).__module__}.{type(current).__qualname__}")
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return "\n\nwhile handling or caused by:\n".join(reversed(parts))


def log_unexpected(exc: BaseException) -> None:
    """Log an unexpected exception once, as one JSON line: its type and ``safe_traceback``."""
    log.error("unhandled_exception", exc_type=type(exc).__name__, traceback=safe_traceback(exc))


#: The answer to an unexpected exception: nothing about its cause.
SERVER_ERROR_BODY = {"error": "server_error", "error_description": "internal server error"}
_SERVER_ERROR_PAGE = (b"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Server error</title></head>"
                      b"<body><main><h1>Something went wrong</h1><p>internal server error</p></main></body></html>")
_PAGE_HEADERS = {**NO_STORE, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                 "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
                 "Referrer-Policy": "no-referrer"}


def server_error_response(*, html: bool = False) -> Response:
    """A generic 500: RFC 6749 JSON ``server_error``, or a plain HTML page for the login pages."""
    if html:
        return Response(_SERVER_ERROR_PAGE, status_code=500, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)
    return JSONResponse(SERVER_ERROR_BODY, status_code=500, headers=NO_STORE)
