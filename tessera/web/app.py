"""The ASGI application: health and metrics routes plus one route group per profile.

Composed with Starlette's own mechanisms, outermost first:

- ``tessera.web.middleware.RequestMiddleware``: request id, metrics, the access-log line
  (just inside Starlette's ``ServerErrorMiddleware``, which has nothing left to do: every
  exception is answered below);
- ``tessera.web.errors.LastResort``: the generic 500 for whatever no handler took;
- with ``fast_routing``, ``tessera.web.routing.ExactDispatch`` (the profile routes by one
  dictionary look-up);
- Starlette's ``ExceptionMiddleware`` with the handlers of ``tessera.web.errors.ErrorHandlers``
  (each profile's own error shape), and the router.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Lifespan, Scope

from tessera.config import Settings
from tessera.core.context import Core
from tessera.core.ports import Store
from tessera.core.secrets import dummy_password_hash
from tessera.web import admin_api, housekeeping, openapi, portal
from tessera.web import logging as web_logging
from tessera.web.errors import ErrorHandlers, LastResort, Renderer
from tessera.web.health import Readiness
from tessera.web.logging import configure_logging
from tessera.web.metrics import LOG_LINES_LOST, metrics_endpoint
from tessera.web.middleware import RequestMiddleware, client_peer
from tessera.web.profiles import axept, b2binpay, mobilepay, native, nexi
from tessera.web.routing import ExactDispatch
from tessera.web.runtime import Runtime

#: Each profile's error shape, by profile name (the routes name their profile: ``ProfileRoute``).
RENDERERS: dict[str, Renderer] = {
    nexi.PROFILE: nexi.render,
    axept.PROFILE: axept.render,
    mobilepay.PROFILE: mobilepay.render,
    b2binpay.PROFILE: b2binpay.render,
    native.PROFILE: native.render,
    admin_api.PROFILE: admin_api.render,
    portal.PROFILE: portal.render,
}


def compose(
    routes: Sequence[BaseRoute],
    *,
    renderers: Mapping[str, Renderer] = RENDERERS,
    client_address: Callable[[Scope], str] = client_peer,
    fast_routing: bool = False,
    lifespan: Lifespan[Any] | None = None,
) -> Starlette:
    """A Starlette app serving ``routes`` with tessera's request middleware and error handling."""
    errors = ErrorHandlers(renderers)
    handlers = errors.handlers()
    middleware = [Middleware(RequestMiddleware, client_address=client_address), Middleware(LastResort, errors=errors)]
    if fast_routing:
        middleware.append(Middleware(ExactDispatch, routes=routes, handlers=handlers))
    return Starlette(routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=lifespan)


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    core: Core | None = None,
    fast_routing: bool | None = None,
    profiles: Collection[str] | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """Build the app for ``settings``. ``store``/``core`` may be given (tests, embedding);
    ``fast_routing`` overrides ``settings.fast_routing``. ``profiles``: serve only these
    profiles' routes (None: all); ``extra_routes``: more routes (``tessera sandbox``'s control
    routes), served with the same middleware and error handling."""
    if core is None:
        if store is None:
            from tessera.home import open_store  # the composition root opens the store only when none is given

            store = open_store(settings)
        from tessera.home import build_core  # the composition root: the core and the store's capabilities

        core = build_core(settings, store)
    configure_logging(settings.log_level)
    web_logging.on_line_lost = LOG_LINES_LOST.inc
    dummy_password_hash()  # ready now: an unknown user's first login then costs what a known user's does
    rt = Runtime(settings, core)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    caps = rt.capabilities
    ready = Readiness(caps.database or core.store, core.keys, redis=caps.redis, redis_url=settings.redis_url)
    served = [
        route
        for route in (
            *nexi.routes(rt),
            *axept.routes(rt),
            *mobilepay.routes(rt),
            *b2binpay.routes(rt),
            *native.routes(rt),
        )
        if profiles is None or route.profile in profiles
    ]
    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        *served,
        *admin_api.routes(rt),
        *portal.routes(rt),
        *extra_routes,
        Route("/readyz", ready.handle, methods=["GET", "HEAD"]),
        Route("/metrics", metrics_endpoint(), methods=["GET", "HEAD"]),
        Route("/openapi.json", openapi.endpoint(settings), methods=["GET", "HEAD"]),
    ]
    fast = settings.fast_routing if fast_routing is None else fast_routing
    app = compose(routes, client_address=rt.client_address, fast_routing=fast, lifespan=housekeeping.lifespan(rt))
    app.state.runtime = rt
    return app
