"""Routing by exact path, and a direct way in for the profile handlers.

Every tessera route is a fixed path, and every profile answers every method itself (405
in its own error shape). Starlette's ``Router`` tries the routes' regular expressions one
after another; with some forty routes, the token endpoints sit near the end of that scan.
``ExactRouter`` finds a fixed path with one dictionary look-up and hands over exactly as
``Router`` would (``scope["route"]``, ``endpoint``, ``path_params``); anything else
(a path with parameters, a method a route does not list, a miss) falls back to
``Router``'s own scan, redirects and 404 handling.

``ProfileDispatch`` goes one step further for the profile endpoints (the handlers
wrapped by ``tessera.web.runtime.endpoint``, which turn every exception into the
profile's own error response themselves): it calls them straight from the
observability middleware, without the four ASGI layers Starlette puts in between
(``ServerErrorMiddleware``, ``ExceptionMiddleware``, the router, the route's
exception-handler wrapper), none of which has anything left to do for them. The
scope gets the same keys the router would set. Every other request takes the full
Starlette path.

``ProfileDispatch`` is also the last resort for an exception that escapes everything
below it (a response that fails while it is sent, Starlette's routing, its 404/405
handling, the health, metrics and OpenAPI routes, a handler outside the ``endpoint``
wrapper): it is logged once (``tessera.web.errors.log_unexpected``: its type and stack,
never its message) and, unless an answer has started, the client gets a generic 500:
JSON ``server_error``, or an HTML page on the login pages. Starlette's own
``ServerErrorMiddleware`` answers with the same generic 500 (``tessera.web.app``) and
re-raises, so that the exception reaches this one place to be logged; it never reaches
uvicorn, which would log its message.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tessera.web.errors import log_unexpected, server_error_response


class ExactRouter(Router):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._exact: dict[str, Route] = {}
        for route in self.routes:
            if isinstance(route, Route) and not route.param_convertors and route.path not in self._exact:
                self._exact[route.path] = route

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            route = self._exact.get(scope["path"])
            if route is not None and (route.methods is None or scope["method"] in route.methods):
                scope.setdefault("router", self)
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {}
                await route.handle(scope, receive, send)
                return
        await super().app(scope, receive, send)


class ProfileDispatch:
    """ASGI: profile endpoints at fixed paths called directly; everything else to ``app``."""

    __slots__ = ("app", "router", "_direct")

    def __init__(self, app: ASGIApp, router: Router) -> None:
        self.app = app
        self.router = router
        self._direct: dict[str, Route] = {}
        for route in router.routes:
            if (isinstance(route, Route) and not route.param_convertors and route.path not in self._direct
                    and getattr(route.endpoint, "profile", None) is not None):
                self._direct[route.path] = route

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
            if not scope.get("root_path"):
                route = self._direct.get(scope["path"])
                if route is not None and (route.methods is None or scope["method"] in route.methods):
                    scope["router"] = self.router
                    scope["route"] = route
                    scope["endpoint"] = endpoint = route.endpoint
                    scope["path_params"] = {}
                    response: Any = await endpoint(Request(scope, receive, tracked))
                    await response(scope, receive, tracked)
                    return
            await self.app(scope, receive, tracked)
        except Exception as exc:  # noqa: BLE001 - the last resort: see the module docstring
            log_unexpected(exc)
            state = scope.setdefault("state", {})
            state.setdefault("error_reason", "unhandled_exception")
            if not started:
                html = getattr(scope.get("endpoint"), "html", False)
                await server_error_response(html=html)(scope, receive, send)
