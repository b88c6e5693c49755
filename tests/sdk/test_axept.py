"""AxeptClient: the documented request on the wire, expiry from expiresAt, caching, errors,
httpx.Auth (sync and async), and against a live tessera."""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import threading
import time
from email.utils import formatdate

import httpx
import pytest

from tessera.sdk import AxeptClient, TokenCache, TokenError
from tessera.sdk._http import parse_utc

BASE = "https://axept.example"
KEY = "R2lJMTMzZ1RCVy60T1h4V3FNshy="


class FakeAxept:
    """Answers like the documented provider and records every request."""

    def __init__(
        self, *, lifetime: int = 1800, date_offset: float | None = None, body: dict | None = None, status: int = 200
    ) -> None:
        self.requests: list[httpx.Request] = []
        self.lifetime = lifetime
        self.date_offset = date_offset
        self.body = body
        self.status = status
        self._lock = threading.Lock()
        self.n = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
            self.n += 1
            n = self.n
        if self.status != 200:
            return httpx.Response(self.status, json=self.body)
        if self.body is not None:
            return httpx.Response(200, json=self.body)
        now = time.time() + (self.date_offset or 0)
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + self.lifetime))
        headers = {"Date": formatdate(now, usegmt=True)} if self.date_offset is not None else {}
        return httpx.Response(200, json={"token": f"jwt-{n}", "expiresAt": expires}, headers=headers)


AXEPT = "/axept/v1/authenticate"  # tessera's default server (the provider's own path is /v1/authenticate)


def client(fake, **kw) -> AxeptClient:
    kw.setdefault("cache", TokenCache())
    kw.setdefault("path", "/axept/v1/authenticate")
    return AxeptClient(
        BASE, 12345, 12, KEY, transport=httpx.MockTransport(fake), async_transport=httpx.MockTransport(fake), **kw
    )


def test_request_is_exactly_the_documented_json():
    fake = FakeAxept()
    assert client(fake).token() == "jwt-1"
    (req,) = fake.requests
    assert req.method == "POST"
    assert str(req.url) == "https://axept.example/axept/v1/authenticate"
    assert req.headers["content-type"] == "application/json"
    assert json.loads(req.content) == {"merchantId": 12345, "keyId": 12, "key": KEY}
    assert "authorization" not in req.headers


def test_path_is_configurable_for_the_real_provider():
    fake = FakeAxept()
    c = AxeptClient(
        "https://provider.example/",
        1,
        2,
        "k",
        path="/v1/authenticate",
        cache=TokenCache(),
        transport=httpx.MockTransport(fake),
    )
    c.token()
    assert str(fake.requests[0].url) == "https://provider.example/v1/authenticate"


def test_expiry_comes_from_expires_at_and_the_token_is_cached():
    fake = FakeAxept(lifetime=1800)
    c = client(fake)
    token = c.cached_token()
    assert token.expires_at == pytest.approx(time.time() + 1800, abs=2)
    assert c.token() == "jwt-1" and c.token() == "jwt-1"
    assert len(fake.requests) == 1


def test_expires_at_is_read_on_the_providers_clock():
    # The provider's clock is an hour ahead: its expiresAt would look like 90 minutes
    # from here; with its Date header the token is known to last 30 minutes.
    fake = FakeAxept(lifetime=1800, date_offset=3600)
    token = client(fake).cached_token()
    assert token.expires_at == pytest.approx(time.time() + 1800, abs=3)


def test_evicted_before_expiry_with_the_cache_skew():
    now = [1_000_000.0]
    fake = FakeAxept(body={"token": "t", "expiresAt": "1970-01-12T13:48:20Z"})  # 1_000_100
    c = client(fake, cache=TokenCache(skew=30, clock=lambda: now[0]))
    assert c.token() == "t"
    now[0] += 69
    c.token()
    assert len(fake.requests) == 1
    now[0] += 1  # 30 s before expiry: stale
    c.token()
    assert len(fake.requests) == 2


def test_capitalised_field_names_are_accepted():
    fake = FakeAxept(body={"Token": "jwt-cap", "ExpiresAt": "2999-01-31T11:28:09Z"})
    token = client(fake).cached_token()
    assert token.access_token == "jwt-cap"
    assert token.expires_at == parse_utc("2999-01-31T11:28:09Z")


@pytest.mark.parametrize("status, error", [(400, "Bad Request"), (401, "Unauthorized")])
def test_errors_are_token_errors_without_the_key(status, error):
    fake = FakeAxept(
        status=status, body={"status": status, "error": error, "message": "The supplied data was not valid."}
    )
    with pytest.raises(TokenError) as info:
        client(fake).token()
    assert info.value.status == status
    assert info.value.error == error
    assert info.value.description == "The supplied data was not valid."
    assert KEY not in str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        {"expiresAt": "2999-01-01T00:00:00Z"},
        {"token": "", "expiresAt": "2999-01-01T00:00:00Z"},
        {"token": "t"},
        {"token": "t", "expiresAt": "tomorrow"},
        {"token": "t", "expiresAt": 1234},
    ],
)
def test_malformed_answers_are_refused_and_not_cached(body):
    fake = FakeAxept(body=body)
    c = client(fake)
    with pytest.raises(TokenError) as info:
        c.token()
    assert info.value.error == "invalid_response"
    assert len(c.cache) == 0


def test_non_json_error_answer():
    c = AxeptClient(
        BASE,
        1,
        1,
        "k",
        cache=TokenCache(),
        transport=httpx.MockTransport(lambda r: httpx.Response(502, text="<html>bad gateway</html>")),
    )
    with pytest.raises(TokenError) as info:
        c.token()
    assert info.value.status == 502 and info.value.error == "invalid_response"


@pytest.mark.parametrize("args", [(0, 1, "k"), (1, True, "k"), ("1", 1, "k"), (1, 1, "")])
def test_bad_arguments(args):
    with pytest.raises(ValueError):
        AxeptClient(BASE, *args)


def test_repr_hides_the_key():
    assert KEY not in repr(client(FakeAxept()))


def payment_api(valid: set[str], seen: list[str]):
    def handler(request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization", "")
        seen.append(auth)
        if auth.removeprefix("Bearer ") not in valid:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return httpx.Response(200, json={"ok": True})

    return handler


def test_httpx_auth_sends_the_bearer_token_and_refreshes_on_401():
    fake = FakeAxept()
    c = client(fake)
    seen: list[str] = []
    valid = {"jwt-1"}
    with httpx.Client(auth=c, transport=httpx.MockTransport(payment_api(valid, seen))) as api:
        assert api.get("https://api.example/transactions").status_code == 200
        valid.clear()
        valid.add("jwt-2")  # the platform no longer accepts jwt-1
        assert api.post("https://api.example/transactions", json={"amount": 1}).status_code == 200
    assert seen == ["Bearer jwt-1", "Bearer jwt-1", "Bearer jwt-2"]
    assert len(fake.requests) == 2


def test_async_httpx_auth():
    fake = FakeAxept()
    c = client(fake)
    seen: list[str] = []

    async def main():
        async with httpx.AsyncClient(auth=c, transport=httpx.MockTransport(payment_api({"jwt-1"}, seen))) as api:
            return await asyncio.gather(*(api.get("https://api.example/x") for _ in range(20)))

    responses = asyncio.run(main())
    assert {r.status_code for r in responses} == {200}
    assert len(fake.requests) == 1 and set(seen) == {"Bearer jwt-1"}


# ---------------------------------------------------------------------- live
@pytest.mark.slow
def test_live_authenticate(live_server):
    mid = secrets.randbelow(10**8) + 1
    live_server.cli_json("merchants", "create", "--merchant-id", str(mid), "--name", "Corner Shop")
    key = live_server.cli_json("keys", "create", "--merchant-id", str(mid))
    verify = ssl.create_default_context(cafile=str(live_server.ca))
    base = f"https://localhost:{live_server.port}"
    c = AxeptClient(base, key["merchantId"], key["keyId"], key["key"], path=AXEPT, cache=TokenCache(), verify=verify)
    token = c.cached_token()
    assert token.access_token.count(".") == 2
    assert token.expires_at == pytest.approx(time.time() + 1800, abs=5)
    assert c.token() == token.access_token  # cached

    async def atoken():
        return await AxeptClient(
            base, key["merchantId"], key["keyId"], key["key"], path=AXEPT, cache=TokenCache(), verify=verify
        ).atoken()

    assert asyncio.run(atoken()).count(".") == 2

    wrong = AxeptClient(
        base, key["merchantId"], key["keyId"], key["key"] + "x", path=AXEPT, cache=TokenCache(), verify=verify
    )
    with pytest.raises(TokenError) as info:
        wrong.token()
    assert info.value.status == 401 and info.value.error == "Unauthorized"
    assert key["key"] not in str(info.value)
