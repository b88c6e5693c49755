"""The ASGI application: native health routes plus one route group per profile."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tessera.config import Settings
from tessera.core.context import Core
from tessera.web.errors import NO_STORE, server_error_response
from tessera.web import housekeeping, openapi
from tessera.web.observability import ObservedStarlette, Readiness, client_address_for, configure_logging, metrics_endpoint
from tessera.web.profiles import axept, b2binpay, mobilepay, nexi
from tessera.web.profiles import native  # the native OAuth 2.0 surface (issue 4)
from tessera.web.responses import JSONResponse
from tessera.web.routing import ExactRouter
from tessera.web.runtime import Runtime


def create_app(settings: Settings, *, store=None, core: Core | None = None) -> Starlette:
    """Build the app for ``settings``. ``store``/``core`` may be given (tests, embedding)."""
    if core is None:
        if store is None:
            from tessera.home import open_store

            store = open_store(settings)
        from tessera.home import build_core  # the composition root: the core and the store's capabilities

        core = build_core(settings, store)
    configure_logging(settings.log_level)
    rt = Runtime(settings, core)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def not_found(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 405:  # RFC 9110 §15.5.6: say which methods the resource has
            return JSONResponse({"error": "invalid_request", "error_description": f"{request.method[:20]} is not allowed here"},
                                status_code=405, headers={**NO_STORE, **(exc.headers or {})})
        return JSONResponse({"error": "not_found", "error_description": f"no route for {request.url.path[:100]}"},
                            status_code=exc.status_code, headers=NO_STORE)

    async def server_error(request: Request, exc: Exception) -> Response:
        # Starlette's ServerErrorMiddleware: the same generic 500 as everywhere (nothing about
        # the cause); it re-raises, and tessera.web.routing.ProfileDispatch logs it once.
        return server_error_response(html=getattr(request.scope.get("endpoint"), "html", False))

    routes = [Route("/healthz", healthz), *nexi.routes(rt), *axept.routes(rt), *mobilepay.routes(rt), *b2binpay.routes(rt)]
    routes += native.routes(rt)
    routes += [Route("/readyz", Readiness(rt).handle, methods=["GET", "HEAD"]), Route("/metrics", metrics_endpoint(), methods=["GET", "HEAD"])]
    routes.append(Route("/openapi.json", openapi.endpoint(settings), methods=["GET", "HEAD"]))
    # Observability (request ids, metrics, access log) wraps everything: see tessera.web.observability.
    app = ObservedStarlette(routes=routes, exception_handlers={404: not_found, 405: not_found, Exception: server_error})
    # Fixed paths by one dict look-up (tessera.web.routing); the scheduled purge runs while the app serves.
    app.router = ExactRouter(routes=routes, lifespan=housekeeping.lifespan(rt))
    app.client_address = client_address_for(rt)
    app.state.runtime = rt
    return app
