"""``ExactDispatch`` awaits a profile's coroutine endpoints itself (``ProfileRoute.direct``)
instead of through Starlette's ``request_response`` and exception wrapper: every kind of answer
(a success, a typed error, a Starlette ``HTTPException``, an error no handler takes, a sync
endpoint, a route with its own middleware) is the same on both paths, byte for byte. And the
request body read from the ASGI messages (``tessera.web.forms.read_body``) keeps its rules."""

from __future__ import annotations

import asyncio
import warnings

import pytest
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse

with warnings.catch_warnings():  # starlette's TestClient on httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from tessera.errors import InvalidClient, PayloadTooLarge, SlowDown
from tessera.web.app import compose
from tessera.web.forms import read_body, read_form
from tessera.web.routing import Before, ProfileRoute
from tessera.web.runtime import no_store_json


class Handlers:
    async def ok(self, request: Request):
        form = await read_form(request, 64)
        return no_store_json({"got": form})

    async def typed(self, request: Request):
        raise InvalidClient("wrong secret", reason="bad_secret")

    async def http(self, request: Request):
        raise HTTPException(409, "conflict")

    async def unhandled(self, request: Request):
        raise RuntimeError("a bug")

    def sync(self, request: Request):
        return PlainTextResponse("sync")


def _limit(request: Request) -> None:
    raise SlowDown(7, reason="rate_limit_address")


def _routes():
    h = Handlers()
    return [
        ProfileRoute("/ok", h.ok, profile="native", methods=["POST"]),
        ProfileRoute("/typed", h.typed, profile="axept", methods=["POST"]),
        ProfileRoute("/http", h.http, profile="b2binpay", methods=["POST"]),
        ProfileRoute("/unhandled", h.unhandled, profile="native", methods=["POST"]),
        ProfileRoute("/sync", h.sync, profile="native", methods=["POST"]),
        ProfileRoute(
            "/limited", h.ok, profile="native", methods=["POST"], middleware=[Middleware(Before, check=_limit)]
        ),
    ]


def test_which_routes_are_awaited_directly():
    direct = {r.path: r.direct for r in _routes()}
    assert direct == {
        "/ok": True,
        "/typed": True,
        "/http": True,
        "/unhandled": True,
        "/sync": False,  # a sync endpoint: Starlette's thread pool, as before
        "/limited": False,  # its own middleware: Starlette's wrapper around it, as before
    }


@pytest.mark.parametrize(
    ("path", "kw", "status"),
    [
        ("/ok", {"data": {"a": "1", "b": "é"}}, 200),
        ("/ok", {"content": b"a=1&a=2", "headers": {"content-type": "application/x-www-form-urlencoded"}}, 400),
        ("/ok", {"data": {"a": "x" * 100}}, 413),
        ("/typed", {}, 401),
        ("/http", {}, 409),
        ("/unhandled", {}, 500),
        ("/sync", {}, 200),
        ("/limited", {}, 429),
    ],
)
def test_both_paths_answer_the_same_bytes(path, kw, status):
    answers = []
    for fast in (False, True):
        app = compose(_routes(), fast_routing=fast)
        with TestClient(app, raise_server_exceptions=False) as c:
            r = c.post(path, **kw)
        answers.append((r.status_code, [(k, v) for k, v in r.headers.multi_items() if k != "x-request-id"], r.content))
    assert answers[0] == answers[1]
    assert answers[0][0] == status


def _request(messages: list[dict], headers: list[tuple[bytes, bytes]] = ()) -> Request:
    it = iter(messages)

    async def receive():
        return next(it)

    return Request({"type": "http", "method": "POST", "headers": list(headers)}, receive)


def test_read_body_joins_chunks_and_keeps_the_body_for_starlette():
    chunks = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    ]
    request = _request(chunks)

    async def run():
        return await read_body(request, 10), await request.body()

    assert asyncio.run(run()) == (b"abcd", b"abcd")


def test_read_body_refuses_a_body_over_the_limit_as_it_streams_in():
    request = _request([{"type": "http.request", "body": b"x" * 6, "more_body": True}] * 3)
    with pytest.raises(PayloadTooLarge):
        asyncio.run(read_body(request, 10))
    declared = _request([], headers=[(b"content-length", b"11")])  # refused before reading anything
    with pytest.raises(PayloadTooLarge):
        asyncio.run(read_body(declared, 10))


def test_read_body_of_a_client_gone_away():
    request = _request([{"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.disconnect"}])
    with pytest.raises(ClientDisconnect):
        asyncio.run(read_body(request, 10))
