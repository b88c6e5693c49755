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
