"""The one place where errors become HTTP responses.

RFC 6749 §5.2 JSON (``error``, ``error_description``) with ``Cache-Control: no-store``.
``invalid_client`` carries a ``WWW-Authenticate`` challenge (RFC 6749 §5.2),
``invalid_token`` a Bearer one (RFC 6750 §3). Profiles that have their own error shape
register their own ``render`` function (``ErrorHandlers``, keyed by the profile of the
matched ``ProfileRoute``); the headers rules stay the same. An unexpected exception becomes
a 500 ``server_error`` that says nothing about its cause.

The path of an error, on Starlette's own mechanisms:

- a typed error (``OAuthError``), a store that cannot be reached (``StoreUnavailable``,
  SQLAlchemy's errors of a database gone) and Starlette's ``HTTPException`` (404, and 405
  for a method the route does not declare) reach ``ErrorHandlers``, registered as the app's
  ``exception_handlers``: the profile's renderer, or the login pages' HTML error page;
- anything else (a bug, a response that fails while it is sent, a failing handler) reaches
  ``LastResort``, a middleware just inside the request middleware: logged once (its type and
  stack, never its message) and, unless an answer has started, a generic 500 in the
  profile's shape (an HTML page on the login pages). It never reaches uvicorn, which would
  log its message.

Either way the refusal's reason is named to the request middleware (``refused``).
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tessera.core.ports import StoreUnavailable
from tessera.errors import InvalidClient, InvalidToken, MethodNotAllowed, OAuthError, ServerError, ServiceUnavailable
from tessera.web.middleware import refused
from tessera.web.pages import error_page
from tessera.web.responses import JSONResponse
from tessera.web.routing import ProfileRoute

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
_SA_GONE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.PendingRollbackError,
    sa_exc.TimeoutError,
)


def database_gone(exc: BaseException) -> bool:
    """True for an error that means "the database cannot be used now": SQLAlchemy's, or a
    driver's own ``OperationalError``/``InterfaceError`` (psycopg, sqlite3) that escaped it."""
    if isinstance(exc, _SA_GONE):
        return True
    cls = type(exc)
    return cls.__module__.split(".")[0] in ("psycopg", "sqlite3") and any(
        c.__name__ in ("OperationalError", "InterfaceError") for c in cls.__mro__
    )


def as_oauth_error(exc: BaseException) -> OAuthError:
    """Map anything raised below the web layer to a typed error, logging the unexpected."""
    if isinstance(exc, OAuthError):
        return exc
    if isinstance(exc, StoreUnavailable) or database_gone(exc):
        # The driver's own first line ("connection refused", "terminating connection ..."), never
        # SQLAlchemy's rendering of the statement.
        message = str(getattr(exc, "orig", None) or exc).splitlines()
        log.error("store_unavailable", error=(message[0] if message else "")[:200], exc_type=type(exc).__name__)
        return ServiceUnavailable(
            "the service is temporarily unavailable; retry shortly",
            reason="store_unavailable",
            headers={"Retry-After": "1"},
        )
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
        parts.append(
            f"Traceback (most recent call last):\n{frames}{type(current).__module__}.{type(current).__qualname__}"
        )
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return "\n\nwhile handling or caused by:\n".join(reversed(parts))


def log_unexpected(exc: BaseException) -> None:
    """Log an unexpected exception once, as one JSON line: its type and ``safe_traceback``."""
    log.error("unhandled_exception", exc_type=type(exc).__name__, traceback=safe_traceback(exc))


#: The answer to an unexpected exception: nothing about its cause.
SERVER_ERROR_BODY = {"error": "server_error", "error_description": "internal server error"}
_SERVER_ERROR_PAGE = (
    b'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Server error</title></head>'
    b"<body><main><h1>Something went wrong</h1><p>internal server error</p></main></body></html>"
)
_PAGE_HEADERS = {
    **NO_STORE,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
}


def server_error_response(*, html: bool = False) -> Response:
    """A generic 500: RFC 6749 JSON ``server_error``, or a plain HTML page for the login pages."""
    if html:
        return Response(
            _SERVER_ERROR_PAGE, status_code=500, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS
        )
    return JSONResponse(SERVER_ERROR_BODY, status_code=500, headers=NO_STORE)


ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


class ErrorHandlers:
    """The app's exception handlers: each error rendered by the renderer of the matched
    route's profile (``renderers``, ``{profile: render}``), RFC 6749 JSON elsewhere."""

    def __init__(self, renderers: Mapping[str, Renderer]) -> None:
        self.renderers = dict(renderers)

    def handlers(self) -> dict[Any, ExceptionHandler]:
        """For ``Starlette(exception_handlers=...)``."""
        out: dict[Any, ExceptionHandler] = {
            OAuthError: self.error,
            StoreUnavailable: self.error,
            HTTPException: self.http_error,
        }
        out.update({cls: self.error for cls in _SA_GONE})
        return out

    def render(self, scope: Scope, err: OAuthError) -> Response:
        """``err`` in the shape of the route that matched (RFC 6749 JSON when none did)."""
        route = scope.get("route")
        if isinstance(route, ProfileRoute):
            return self.renderers.get(route.profile, oauth_error_response)(err)
        return oauth_error_response(err)

    async def error(self, request: Request, exc: Exception) -> Response:
        err = as_oauth_error(exc)
        refused(request.scope, err.reason)
        route = request.scope.get("route")
        if isinstance(route, ProfileRoute) and route.page and not isinstance(err, MethodNotAllowed):
            return error_page(request, err)
        return self.render(request.scope, err)

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        route = request.scope.get("route")
        if exc.status_code == 405 and isinstance(route, ProfileRoute):  # in the profile's own shape
            allow = route.allow
            return await self.error(
                request,
                MethodNotAllowed(
                    f"use {' or '.join(allow)}", reason="method_not_allowed", headers={"Allow": ", ".join(allow)}
                ),
            )
        if exc.status_code == 405:  # RFC 9110 §15.5.6: say which methods the resource has
            return JSONResponse(
                {"error": "invalid_request", "error_description": f"{request.method[:20]} is not allowed here"},
                status_code=405,
                headers={**NO_STORE, **(exc.headers or {})},
            )
        return JSONResponse(
            {"error": "not_found", "error_description": f"no route for {request.url.path[:100]}"},
            status_code=exc.status_code,
            headers=NO_STORE,
        )


class LastResort:
    """ASGI: the net under everything else (see the module docstring)."""

    __slots__ = ("app", "errors")

    def __init__(self, app: ASGIApp, *, errors: ErrorHandlers) -> None:
        self.app = app
        self.errors = errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # noqa: BLE001 - the last resort
            err = as_oauth_error(exc)  # logs the unexpected, once
            refused(scope, err.reason)
            if started:
                return
            route = scope.get("route")
            if isinstance(route, ProfileRoute) and route.page:
                response = server_error_response(html=True)
            else:
                response = self.errors.render(scope, err)
            await response(scope, receive, send)
