"""Routing: profile routes declare their methods, a wrong method is a 405 in the profile's own
shape, and the fast path (``fast_routing``) answers exactly as the full Starlette path does.

In process, on one fresh home (SQLite), with tessera's own ``create_app``."""

from __future__ import annotations

import base64
import re
import time
import warnings

import pytest

with warnings.catch_warnings():  # starlette's TestClient on httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from tessera.config import Settings
from tessera.core import apikeys
from tessera.core.models import Client, Merchant
from tessera.core.secrets import hash_secret
from tessera.home import init_home, open_store
from tessera.web.app import create_app
from tessera.web.routing import ExactDispatch, ProfileRoute

CLIENT_ID = "routing-client"
SECRET = "s" * 43


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    h = tmp_path_factory.mktemp("routing") / "home"
    init_home(h, hostname="localhost", port=8443, issuer="https://localhost:8443", now=int(time.time()))
    settings = Settings.load(h)
    store = open_store(settings)
    now = int(time.time())
    store.create_client(Client(CLIENT_ID, "routing", hash_secret(SECRET, settings.pepper_bytes()), created_at=now))
    store.create_merchant(Merchant(4242, "Shop", None, now))
    record, value = apikeys.create_key(store, settings.pepper_bytes(), 4242, now, max_enabled=3)
    store.close()
    return h, record.key_id, value


def client(home, *, fast: bool, address: str) -> TestClient:
    settings = Settings.load(home[0])
    return TestClient(create_app(settings, fast_routing=fast), raise_server_exceptions=False, client=(address, 50000))


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# --- ProfileRoute: the methods declared, and 405 in the profile's shape ---------------------------------------
def test_a_profile_route_has_exactly_the_methods_it_declares():
    async def endpoint(request):  # pragma: no cover - never called
        raise AssertionError

    route = ProfileRoute("/x", endpoint, profile="native", methods=["GET", "POST"])
    assert route.methods == {"GET", "POST"} and route.allow == ("GET", "POST")  # no implicit HEAD
    assert route.profile == "native" and not route.page


@pytest.mark.parametrize(
    "method, path, allow, shape",
    [
        ("GET", "/oauth2/token", "POST", "rfc6749"),
        ("TRACE", "/oauth2/token", "POST", "rfc6749"),  # a method no route has: the same answer
        ("PUT", "/oauth2/authorize", "GET, POST", "rfc6749"),  # a login page: JSON, not a page, for a wrong method
        ("POST", "/oauth2/jwks", "GET, HEAD", "rfc6749"),
        ("GET", "/softpos/as/par", "POST", "rfc6749"),
        ("DELETE", "/integrator-authentication/connect/token", "POST", "rfc6749"),
        ("GET", "/axept/v1/authenticate", "POST", "axept"),
        ("OPTIONS", "/b2binpay/token/", "POST", "jsonapi"),
        ("GET", "/b2binpay/token/refresh", "POST", "jsonapi"),
    ],
)
def test_wrong_method_is_405_in_the_profile_shape_with_allow(home, method, path, allow, shape):
    r = client(home, fast=False, address="10.9.0.1").request(method, path)
    assert r.status_code == 405 and r.headers["allow"] == allow
    assert r.headers["cache-control"] == "no-store"
    if shape == "rfc6749":
        assert r.json() == {"error": "invalid_request", "error_description": f"use {allow.replace(', ', ' or ')}"}
    elif shape == "axept":
        assert r.json() == {"status": 405, "error": "Method Not Allowed", "message": "use POST"}
    else:
        assert r.headers["content-type"] == "application/vnd.api+json"
        assert r.json() == {"errors": [{"status": "405", "code": "invalid", "detail": "use POST"}]}


def test_other_routes_keep_starlettes_405_and_404(home):
    c = client(home, fast=False, address="10.9.0.2")
    r = c.put("/healthz")
    assert r.status_code == 405 and r.json()["error"] == "invalid_request"
    assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD"}
    r = c.get("/no/such/path")
    assert r.status_code == 404 and r.json() == {
        "error": "not_found",
        "error_description": "no route for /no/such/path",
    }


# --- the fast path: one switch, the same bytes ------------------------------------------------------------
_JWT = re.compile(rb"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_RANDOM = [
    _JWT,
    re.compile(rb"urn:[a-z:_]+[0-9a-f-]{36}"),
    re.compile(rb'"refresh":"[^"]+"'),
    re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"),
    re.compile(rb"[0-9a-f]{64}"),
]


def _normal(body: bytes) -> bytes:
    """The body with what differs from one call to the next (signed tokens, request_uris,
    times) replaced by a placeholder of its own."""
    for i, pattern in enumerate(_RANDOM):
        body = pattern.sub(f"<{i}>".encode(), body)
    return body


def _requests(key_id: int, key: str) -> list[tuple[str, str, dict]]:
    """A representative set: every profile, successes and refusals, errors of every kind."""
    form = {"grant_type": "client_credentials"}
    b2b = {"data": {"type": "auth-token", "attributes": {"login": CLIENT_ID, "password": SECRET}}}
    return [
        # native: discovery, a token, refusals, 405, an unknown grant
        ("GET", "/.well-known/oauth-authorization-server", {}),
        ("POST", "/oauth2/token", {"data": form, "headers": basic(CLIENT_ID, SECRET)}),
        ("POST", "/oauth2/token", {"data": form, "headers": basic(CLIENT_ID, "wrong")}),
        ("POST", "/oauth2/token", {"data": {"grant_type": "magic"}, "headers": basic(CLIENT_ID, SECRET)}),
        (
            "POST",
            "/oauth2/token",
            {"content": b"a=1&a=2", "headers": {"content-type": "application/x-www-form-urlencoded"}},
        ),
        ("GET", "/oauth2/token", {}),
        ("GET", "/oauth2/authorize", {"params": {"client_id": "nobody"}}),  # an HTML error page
        ("GET", "/oauth2/userinfo", {}),
        # nexi: jwks, token without a certificate, PAR without a bearer, 405
        ("GET", "/softpos/par/jwks.json", {}),
        ("POST", "/softpos/appenrollment/token", {"data": form, "headers": basic(CLIENT_ID, SECRET)}),
        ("POST", "/softpos/as/par", {"data": {"client_id": CLIENT_ID}}),
        ("PUT", "/softpos/as/par", {}),
        # mobilepay: a token, a bad VAT, discovery
        ("POST", "/integrator-authentication/connect/token", {"data": form, "headers": basic(CLIENT_ID, SECRET)}),
        (
            "POST",
            "/integrator-authentication/connect/token",
            {"data": {**form, "merchant_vat": "XX1"}, "headers": basic(CLIENT_ID, SECRET)},
        ),
        ("GET", "/integrator-authentication/.well-known/openid-configuration", {}),
        # axept: a token, a syntax error, wrong key
        ("POST", "/axept/v1/authenticate", {"json": {"merchantId": 4242, "keyId": key_id, "key": key}}),
        ("POST", "/axept/v1/authenticate", {"json": {"merchantId": "x"}}),
        ("POST", "/axept/v1/authenticate", {"json": {"merchantId": 4242, "keyId": key_id, "key": "wrong"}}),
        # b2binpay: a login, a bad refresh, a wrong media type, 405
        ("POST", "/b2binpay/token/", {"json": b2b, "headers": {"content-type": "application/vnd.api+json"}}),
        (
            "POST",
            "/b2binpay/token/refresh/",
            {
                "json": {"data": {"type": "auth-token", "attributes": {"refresh": "x.y.z"}}},
                "headers": {"content-type": "application/vnd.api+json"},
            },
        ),
        ("POST", "/b2binpay/token/", {"content": b"{}", "headers": {"content-type": "text/plain"}}),
        ("GET", "/b2binpay/token/", {}),
        # neither: health, 404
        ("GET", "/healthz", {}),
        ("GET", "/no/such/path", {}),
    ]


def test_fast_routing_gives_the_same_bytes_as_the_full_path(home):
    full, fast = client(home, fast=False, address="10.9.1.1"), client(home, fast=True, address="10.9.1.2")
    assert not any(m.cls is ExactDispatch for m in full.app.user_middleware)
    assert any(m.cls is ExactDispatch for m in fast.app.user_middleware)
    for method, path, kw in _requests(home[1], home[2]):
        a, b = full.request(method, path, **kw), fast.request(method, path, **kw)
        assert a.status_code == b.status_code, (method, path)
        ha = [(k, v) for k, v in a.headers.multi_items() if k not in ("date", "x-request-id")]
        hb = [(k, v) for k, v in b.headers.multi_items() if k not in ("date", "x-request-id")]
        assert ha == hb, (method, path)
        assert _normal(a.content) == _normal(b.content), (method, path, a.content[:200], b.content[:200])
    # the set holds successes and refusals of every profile
    statuses = {full.request(m, p, **kw).status_code for m, p, kw in _requests(home[1], home[2])}
    assert {200, 400, 401, 404, 405} <= statuses


def test_fast_routing_takes_the_profile_routes_only(home):
    app = client(home, fast=True, address="10.9.1.3").app
    stack, dispatch = app.build_middleware_stack(), None
    while stack is not None and dispatch is None:
        dispatch = stack if isinstance(stack, ExactDispatch) else None
        stack = getattr(stack, "app", None)
    assert dispatch is not None
    assert "/oauth2/token" in dispatch.exact and "/b2binpay/token/" in dispatch.exact
    assert "/healthz" not in dispatch.exact and "/metrics" not in dispatch.exact


def test_the_fast_path_does_not_go_through_the_router(home):
    """With the router emptied of profile routes, a profile route still answers on the fast
    path (and 404s on the full one): the look-up really is the dictionary's."""
    for fast, status in ((True, 200), (False, 404)):
        c = client(home, fast=fast, address="10.9.1.4")
        c.app.router.routes = [r for r in c.app.router.routes if not isinstance(r, ProfileRoute)]
        assert c.get("/oauth2/jwks").status_code == status
        assert c.post("/oauth2/jwks").status_code == 404  # a method it does not declare: the full way


def test_the_switch_is_a_setting(home, monkeypatch):
    assert Settings.load(home[0]).fast_routing is True  # the default
    assert any(m.cls is ExactDispatch for m in create_app(Settings.load(home[0])).user_middleware)
    monkeypatch.setenv("TESSERA_FAST_ROUTING", "false")
    settings = Settings.load(home[0])
    assert settings.fast_routing is False
    assert not any(m.cls is ExactDispatch for m in create_app(settings).user_middleware)


def test_a_route_middleware_limit_is_rendered_alike_on_both_paths(home):
    """The login endpoints' budget of unauthenticated writes is declared with the route
    (``Before``): over it, both paths answer the same 429 page, before the handler runs."""
    answers = []
    for fast, address in ((False, "10.9.2.1"), (True, "10.9.2.2")):
        c = client(home, fast=fast, address=address)
        budget = c.app.state.runtime.settings.unauthenticated_writes_per_minute
        statuses = [c.get("/oauth2/authorize", params={"client_id": "nobody"}).status_code for _ in range(budget)]
        assert set(statuses) == {400}
        r = c.get("/oauth2/authorize", params={"client_id": "nobody"})
        assert r.status_code == 429 and r.headers["content-type"].startswith("text/html") and r.headers["retry-after"]
        answers.append(
            (
                r.status_code,
                [(k, v) for k, v in r.headers.multi_items() if k not in ("date", "x-request-id")],
                r.content,
            )
        )
    assert answers[0] == answers[1]
