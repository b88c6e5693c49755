"""Issue 11, "every path guarded": an exception that no registered exception handler takes
(while a response is sent, in Starlette's routing or 404/405 handling, in a route that is not a
profile's, on the HTML login pages) reaches the client only as a generic 500 (RFC 6749 JSON
``server_error``, or an HTML page for pages) and is logged exactly once, as one JSON line with
its type and stack but not its message, which here carries a secret.

The app is tessera's own (``create_app`` on a fresh home) with routes added that fail on
purpose, served by a real uvicorn on loopback (so that what uvicorn itself would log is seen
too); the 404-handler case runs in process with ``raise_server_exceptions=True``, which fails
if the exception escapes the app.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
import warnings

import httpx
import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

with warnings.catch_warnings():  # starlette's TestClient on httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from tessera.config import Settings
from tessera.home import init_home
from tessera.web.app import create_app
from tessera.web.routing import ProfileRoute

SECRET = "s3cr3t-" + secrets.token_hex(8)


class FailsWhenSent(Response):
    """A response that fails while it is being sent: after the handler returned it."""

    async def __call__(self, scope, receive, send) -> None:
        raise RuntimeError(f"failed while sending {SECRET}")


def build(home) -> object:
    app = create_app(Settings.load(home))

    async def starlette_route(request: Request) -> Response:
        raise KeyError(f"token={SECRET}")

    async def profile_send(request: Request) -> Response:
        return FailsWhenSent()

    async def page_send(request: Request) -> Response:
        return FailsWhenSent()

    async def b2b_handler(request: Request) -> Response:
        raise LookupError(f"handler {SECRET}")

    async def streaming(request: Request) -> Response:
        async def body():
            yield b"first part, "
            raise ValueError(f"mid-body {SECRET}")

        return StreamingResponse(body(), media_type="text/plain")

    async def caused(request: Request) -> Response:
        try:
            {}["x"]
        except KeyError as e:
            raise RuntimeError(f"wrapped {SECRET}") from e

    app.router.routes += [
        Route("/fault/starlette", starlette_route),
        ProfileRoute("/fault/profile-send", profile_send, profile="native", methods=["GET"]),
        ProfileRoute("/fault/page-send", page_send, profile="nexi-softpos", methods=["GET"], page=True),
        ProfileRoute("/fault/b2b-handler", b2b_handler, profile="b2binpay", methods=["GET"]),
        Route("/fault/streaming", streaming),
        Route("/fault/caused", caused),
    ]
    return app


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    h = tmp_path_factory.mktemp("last-resort") / "home"
    init_home(h, hostname="localhost", port=8443, issuer="https://localhost:8443", now=int(time.time()))
    return h


@pytest.fixture(scope="module")
def served(home):
    """A real uvicorn (plain HTTP on loopback, as behind a proxy) serving the app."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(build(home), host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def logged(err: str) -> list[dict]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def assert_generic_json_500(r: httpx.Response) -> None:
    assert r.status_code == 500, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"error": "server_error", "error_description": "internal server error"}
    assert "no-store" in r.headers["cache-control"]
    assert r.headers.get("x-request-id")


def assert_logged_once(err: str, exc_type: str) -> dict:
    lines = logged(err)
    unhandled = [d for d in lines if d.get("event") == "unhandled_exception"]
    assert len(unhandled) == 1, unhandled
    d = unhandled[0]
    assert d["exc_type"] == exc_type and d["level"] == "error"
    assert d["traceback"].startswith("Traceback (most recent call last):") and "test_last_resort.py" in d["traceback"]
    assert SECRET not in err, err  # neither in that line nor anywhere else
    assert "Exception in ASGI application" not in err  # uvicorn never saw it
    assert len([d for d in lines if d.get("event") == "request"]) == 1
    return d


@pytest.mark.parametrize(
    "path, exc_type",
    [
        ("/fault/starlette", "KeyError"),  # through Starlette's router and ServerErrorMiddleware
        ("/fault/profile-send", "RuntimeError"),  # a profile endpoint's response, failing while it is sent
        ("/fault/caused", "RuntimeError"),
    ],
)
def test_generic_json_500_logged_once_without_the_message(served, capfd, path, exc_type):
    capfd.readouterr()
    r = httpx.get(served + path, timeout=10)
    assert_generic_json_500(r)
    assert SECRET not in r.text
    time.sleep(0.1)
    d = assert_logged_once(capfd.readouterr().err, exc_type)
    if path == "/fault/caused":  # the chain: both types, neither message
        assert "builtins.KeyError" in d["traceback"] and "builtins.RuntimeError" in d["traceback"]


def test_a_page_gets_a_generic_html_500(served, capfd):
    capfd.readouterr()
    r = httpx.get(served + "/fault/page-send", timeout=10)
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("text/html")
    assert "no-store" in r.headers["cache-control"] and r.headers["x-frame-options"] == "DENY"
    assert "internal server error" in r.text and SECRET not in r.text and "Traceback" not in r.text
    time.sleep(0.1)
    assert_logged_once(capfd.readouterr().err, "RuntimeError")


def test_a_profile_handler_failing_gets_a_500_in_its_profile_shape(served, capfd):
    capfd.readouterr()
    r = httpx.get(served + "/fault/b2b-handler", timeout=10)
    assert r.status_code == 500 and r.headers["content-type"] == "application/vnd.api+json"
    assert r.json() == {"errors": [{"status": "500", "code": "server_error", "detail": "internal server error"}]}
    assert SECRET not in r.text and "no-store" in r.headers["cache-control"]
    time.sleep(0.1)
    assert_logged_once(capfd.readouterr().err, "LookupError")


def test_a_failure_after_the_answer_started_is_logged_once(served, capfd):
    capfd.readouterr()
    # the answer cannot be completed: the connection ends
    with pytest.raises(httpx.HTTPError), httpx.stream("GET", served + "/fault/streaming", timeout=10) as r:
        r.read()
    time.sleep(0.2)
    err = capfd.readouterr().err
    assert_logged_once(err, "ValueError")
    (access,) = [d for d in logged(err) if d.get("event") == "request"]
    assert access["route"] == "/fault/streaming" and access["reason"] == "unhandled_exception"


def test_access_line_and_metrics_say_500_unhandled(served, capfd):
    capfd.readouterr()
    httpx.get(served + "/fault/starlette", timeout=10)
    time.sleep(0.1)
    (access,) = [d for d in logged(capfd.readouterr().err) if d.get("event") == "request"]
    assert (
        access["status"] == 500 and access["reason"] == "unhandled_exception" and access["route"] == "/fault/starlette"
    )
    text = httpx.get(served + "/metrics", timeout=10).text
    assert 'reason="unhandled_exception"' in text


def test_a_failing_404_handler_is_a_generic_500(home, capfd):
    app = create_app(Settings.load(home))

    async def broken(request, exc):
        raise RuntimeError(f"404 handler {SECRET}")

    app.exception_handlers[404] = broken
    capfd.readouterr()
    r = TestClient(app, raise_server_exceptions=True).get(f"/no/such/path?code={SECRET}")  # raises if it escapes
    assert_generic_json_500(r)
    assert_logged_once(capfd.readouterr().err, "RuntimeError")


def test_ordinary_refusals_are_untouched(served):
    r = httpx.get(served + "/no/such/path", timeout=10)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = httpx.put(served + "/healthz", timeout=10)
    assert r.status_code == 405
    r = httpx.post(served + "/axept/v1/authenticate", json={}, timeout=10)
    assert r.status_code == 400
