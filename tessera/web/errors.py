"""The one place where errors become HTTP responses.

RFC 6749 §5.2 JSON (``error``, ``error_description``) with ``Cache-Control: no-store``.
``invalid_client`` carries a ``WWW-Authenticate`` challenge (RFC 6749 §5.2),
``invalid_token`` a Bearer one (RFC 6750 §3). Profiles that have their own error shape
pass their own ``render`` function; the headers rules stay the same. An unexpected
exception becomes a 500 ``server_error`` that says nothing about its cause.
"""

from __future__ import annotations

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
        log.error("store_unavailable", error=str(exc)[:200], exc_type=type(exc).__name__)
        return ServiceUnavailable("the service is temporarily unavailable; retry shortly", reason="store_unavailable",
                                  headers={"Retry-After": "1"})
    log.exception("unhandled_exception", exc_type=type(exc).__name__)
    return ServerError("internal server error", reason="unhandled_exception")
