"""Profile routes, and the one switch of a shorter way to them.

``ProfileRoute`` is a Starlette ``Route`` that names the profile it belongs to (typed
fields, read by the error handlers of ``tessera.web.errors`` to pick the profile's error
shape, and by the request middleware for its metrics and log line). Its methods are
exactly those declared (no implicit ``HEAD``): any other method is Starlette's 405, which
the error handlers answer in the profile's own shape, with ``Allow`` in the declared order.

``ExactDispatch`` is the fast path, behind one switch (``Settings.fast_routing``, on by
default; the ``fast_routing`` argument of ``tessera.web.app.compose``). Every tessera route
is a fixed path, and Starlette's ``Router`` tries the routes' regular expressions one after
another (some forty here): measured in process, about 15 µs of CPU per request, some 12 %
of a token request. ``ExactDispatch`` sits just outside Starlette's ``ExceptionMiddleware``
and, for a profile route found by one dictionary look-up with a method it declares, sets
the scope keys the router would set and calls what ``Route.handle`` calls once the method
is allowed (the endpoint inside Starlette's own exception wrapper, with the same handlers),
so the answer is the same, byte for byte (``tests/web/test_routing.py`` checks it for
every profile). Anything else (another path, a method the route lacks, a miss) goes the
full way.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from starlette._exception_handler import _lookup_exception_handler, wrap_app_handling_exceptions
from starlette._utils import is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send


class ProfileRoute(Route):
    """A route of one profile: ``profile`` picks its error renderer, ``page`` marks the login
    pages (errors as an HTML page), ``allow`` is the declared methods, in order."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        profile: str,
        methods: Sequence[str],
        page: bool = False,
        name: str | None = None,
        middleware: Sequence[Middleware] | None = None,
    ) -> None:
        super().__init__(path, endpoint, methods=list(methods), name=name, middleware=middleware)
        self.allow: tuple[str, ...] = tuple(m.upper() for m in methods)
        self.methods = set(self.allow)  # exactly what is declared: a HEAD must be asked for
        self.profile = profile
        self.page = page
        #: The route has middleware of its own (``Before``): errors it raises are outside the
        #: endpoint's exception wrapper.
        self.wrapped = bool(middleware)
        #: The endpoint is a coroutine function (or method) that ``ExactDispatch`` may await
        #: itself, as ``request_response`` would (see ``ExactDispatch``).
        self.direct = (
            not self.wrapped
            and (inspect.isfunction(endpoint) or inspect.ismethod(endpoint))
            and is_async_callable(endpoint)
        )


class Before:
    """Route middleware (``ProfileRoute(..., middleware=[Middleware(Before, check=...)])``):
    ``check(request)`` runs before the endpoint, declared with the route, so that the handler
    cannot forget it (a limit that raises ``SlowDown``, rendered like any error of the route)."""

    __slots__ = ("app", "check")

    def __init__(self, app: ASGIApp, *, check: Callable[[Request], None]) -> None:
        self.app = app
        self.check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.check(Request(scope, receive))
        await self.app(scope, receive, send)


class ExactDispatch:
    """ASGI, just outside Starlette's ``ExceptionMiddleware``: the profile routes at fixed paths
    by one dictionary look-up, with the app's own exception handlers (see the module docstring)."""

    __slots__ = ("app", "exact", "_handlers")

    def __init__(
        self, app: ASGIApp, *, routes: Sequence[BaseRoute], handlers: Mapping[Any, Callable[..., Any]]
    ) -> None:
        self.app = app
        # As ExceptionMiddleware keeps them: by exception class, and by HTTP status.
        by_class = {key: fn for key, fn in handlers.items() if not isinstance(key, int)}
        by_status = {key: fn for key, fn in handlers.items() if isinstance(key, int)}
        self._handlers = (by_class, by_status)
        self.exact: dict[str, ProfileRoute] = {}
        for route in routes:
            if isinstance(route, ProfileRoute) and not route.param_convertors and route.path not in self.exact:
                self.exact[route.path] = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            route = self.exact.get(scope["path"])
            if route is not None and scope["method"] in route.allow:
                scope["starlette.exception_handlers"] = self._handlers
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {}
                # ``route.app`` is what ``route.handle`` calls once the method is allowed: the
                # endpoint inside Starlette's own exception wrapper. Around a route's own
                # middleware (``Before``), the wrapper ExceptionMiddleware puts around the router.
                if route.direct:
                    await self._direct(route, scope, receive, send)
                elif route.wrapped:
                    await wrap_app_handling_exceptions(route.app, Request(scope, receive, send))(scope, receive, send)
                else:
                    await route.app(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _direct(self, route: ProfileRoute, scope: Scope, receive: Receive, send: Send) -> None:
        """``route.app`` (Starlette's ``request_response`` inside ``wrap_app_handling_exceptions``)
        without its two closures and its send wrapper: the endpoint awaited here, an exception
        it raises answered by the same handler, found the same way (by status for an
        ``HTTPException``, else by the exception's class), then the response sent. The one
        difference: an exception raised while a response is being *sent* is not offered to the
        handlers (Starlette would refuse it anyway once the response has started) and goes to
        ``LastResort`` as any unhandled one."""
        request = Request(scope, receive, send)
        try:
            response: Response = await route.endpoint(request)
        except Exception as exc:
            by_class, by_status = self._handlers
            handler = by_status.get(exc.status_code) if isinstance(exc, HTTPException) else None
            if handler is None:
                handler = _lookup_exception_handler(by_class, exc)
            if handler is None:
                raise
            if is_async_callable(handler):
                answer = await handler(request, exc)  # type: ignore[arg-type]
            else:
                answer = await run_in_threadpool(handler, request, exc)
            if answer is not None:
                await answer(scope, receive, send)
            exc.__traceback__ = None  # reused exception instances accumulate tracebacks (as Starlette does)
            return
        await response(scope, receive, send)
