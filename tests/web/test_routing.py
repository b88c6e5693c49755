"""ExactRouter answers exactly as Starlette's Router does, only faster for fixed paths."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tessera.web.routing import ExactRouter


async def hello(request: Request):
    return PlainTextResponse(f"{request.scope['route'].path}:{request.path_params}")


def _app(router_cls):
    routes = [Route("/a", hello, methods=["GET"]), Route("/items/{id}", hello), Route("/b/", hello, methods=["POST"])]
    app = Starlette(routes=routes)
    app.router = router_cls(routes=routes)
    return TestClient(app)


def test_same_answers_as_starlette_router():
    from starlette.routing import Router

    exact, plain = _app(ExactRouter), _app(Router)
    for method, path in [("GET", "/a"), ("POST", "/a"), ("GET", "/items/7"), ("POST", "/b/"), ("POST", "/b"),
                         ("GET", "/missing"), ("GET", "/a/")]:
        a = exact.request(method, path, follow_redirects=False)
        b = plain.request(method, path, follow_redirects=False)
        assert (a.status_code, a.text, a.headers.get("location")) == (b.status_code, b.text, b.headers.get("location")), (method, path)


def test_fixed_paths_are_indexed():
    router = ExactRouter(routes=[Route("/a", hello), Route("/items/{id}", hello)])
    assert set(router._exact) == {"/a"}


def test_method_outside_every_route_gets_405_with_allow(tmp_path):
    """OPTIONS/TRACE reach no handler: the router's 405 says which methods exist (RFC 9110 §15.5.6)."""
    import time

    from tessera.config import Settings
    from tessera.home import init_home
    from tessera.web.app import create_app

    init_home(tmp_path / "home", now=int(time.time()))
    client = TestClient(create_app(Settings.load(tmp_path / "home")))
    r = client.request("TRACE", "/oauth2/token")
    assert r.status_code == 405
    assert "POST" in r.headers["allow"]
    assert r.json()["error"] == "invalid_request" and r.headers["cache-control"] == "no-store"


def test_profile_dispatch_calls_profile_endpoints_directly():
    """Profile endpoints skip Starlette's inner layers; everything else goes the full way,
    and both get the scope keys the router sets (route, endpoint, router, path_params)."""
    import asyncio

    from starlette.routing import Router

    from tessera.web.routing import ProfileDispatch

    async def profiled(request: Request):
        scope = request.scope
        return PlainTextResponse(f"direct:{scope['route'].path}:{scope['endpoint'] is profiled}:{scope['path_params']}")

    profiled.profile = "native"
    router = ExactRouter(routes=[Route("/t", profiled, methods=["POST"]), Route("/h", hello)])
    fallback_calls = []

    async def fallback(scope, receive, send):
        fallback_calls.append(scope["path"])
        await router(scope, receive, send)

    dispatch = ProfileDispatch(fallback, router)
    assert set(dispatch._direct) == {"/t"}

    def call(method, path):
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": [], "query_string": b""}
        asyncio.run(dispatch(scope, receive, send))
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]).decode()

    assert call("POST", "/t") == (200, "direct:/t:True:{}")
    assert fallback_calls == []
    assert call("GET", "/t")[0] == 405 and fallback_calls == ["/t"]  # a method the route lacks: Starlette's 405
    assert call("GET", "/h") == (200, "/h:{}") and fallback_calls[-1] == "/h"
    assert isinstance(router, Router)
