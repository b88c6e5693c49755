"""MobilePayClient: the document's curl on the wire, caching per merchant_vat, errors, the
PoS API auth (Bearer + x-mobilepay-merchant-vat-number), and against a live tessera."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import ssl
import threading
import time

import httpx
import pytest

from tessera.core.models import Merchant
from tessera.sdk import MobilePayClient, TokenCache, TokenError

BASE = "https://api.sandbox.mobilepay.dk"
CLIENT_ID = "integrator-1"
SECRET = "s3cr3t+VALUE/never-in-messages"
VAT = "DK12345678"


class FakeMobilePay:
    def __init__(self, status: int = 200, body: dict | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.status, self.body = status, body
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
            n = len(self.requests)
        if self.status != 200 or self.body is not None:
            return httpx.Response(self.status, json=self.body)
        return httpx.Response(
            200,
            json={"access_token": f"mp-{n}", "expires_in": 3700, "token_type": "Bearer", "scope": "integrator_scope"},
        )


def client(fake, cache=None, **kw) -> MobilePayClient:
    return MobilePayClient(
        BASE,
        CLIENT_ID,
        SECRET,
        cache=cache if cache is not None else TokenCache(),
        transport=httpx.MockTransport(fake),
        async_transport=httpx.MockTransport(fake),
        **kw,
    )


def test_request_is_the_documents_curl():
    fake = FakeMobilePay()
    client(fake, merchant_vat=VAT).token()
    (req,) = fake.requests
    assert req.method == "POST"
    assert str(req.url) == "https://api.sandbox.mobilepay.dk/integrator-authentication/connect/token"
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"
    # base64("client_id:client_secret"), exactly as the curl builds it
    assert req.headers["authorization"] == "Basic " + base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    assert req.content == b"grant_type=client_credentials&merchant_vat=DK12345678"


def test_without_merchant_vat_only_the_grant_type_is_sent():
    fake = FakeMobilePay()
    token = client(fake).cached_token()
    assert fake.requests[0].content == b"grant_type=client_credentials"
    assert token.expires_at == pytest.approx(time.time() + 3700, abs=2)
    assert token.data == {"expires_in": 3700, "token_type": "Bearer", "scope": "integrator_scope"}


def test_cache_key_includes_the_merchant_vat():
    fake = FakeMobilePay()
    cache = TokenCache()
    plain, dk, fi = (
        client(fake, cache),
        client(fake, cache, merchant_vat=VAT),
        client(fake, cache, merchant_vat="FI87654321"),
    )
    tokens = {plain.token(), dk.token(), fi.token(), plain.token(), dk.token(), fi.token()}
    assert len(tokens) == 3 and len(fake.requests) == 3
    assert client(fake, cache, merchant_vat=VAT).token() == dk.token()  # another instance, same key


def test_errors_are_token_errors_without_the_secret():
    fake = FakeMobilePay(401, {"error": "invalid_client", "error_description": "client authentication failed"})
    with pytest.raises(TokenError) as info:
        client(fake).token()
    assert (info.value.status, info.value.error) == (401, "invalid_client")
    assert SECRET not in str(info.value) and SECRET not in repr(client(fake))


@pytest.mark.parametrize(
    "body",
    [
        {"expires_in": 3700, "token_type": "Bearer"},
        {"access_token": "t", "token_type": "mac"},
        {"access_token": "t", "expires_in": "3700"},
    ],
)
def test_malformed_answers(body):
    with pytest.raises(TokenError) as info:
        client(FakeMobilePay(body=body)).token()
    assert info.value.error == "invalid_response"


@pytest.mark.parametrize("vat", ["DK1234567", "SE12345678", "dk12345678", "DK123456789"])
def test_malformed_vat_is_refused_locally(vat):
    with pytest.raises(ValueError):
        MobilePayClient(BASE, CLIENT_ID, SECRET, merchant_vat=vat)
    with pytest.raises(ValueError):
        MobilePayClient(BASE, CLIENT_ID, SECRET, vat_for_request=vat)


def pos_api(seen: list[httpx.Request]):
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    return handler


def test_auth_adds_the_vat_header_for_an_unbound_token():
    seen: list[httpx.Request] = []
    c = client(FakeMobilePay(), vat_for_request=VAT)
    with httpx.Client(auth=c, transport=httpx.MockTransport(pos_api(seen))) as api:
        api.get("https://api.example/pos/v10/payments/1")
        api.get("https://api.example/pos/v10/payments/2", headers={"X-MobilePay-Merchant-VAT-Number": "FI11111111"})
    assert seen[0].headers["authorization"] == "Bearer mp-1"
    assert seen[0].headers["x-mobilepay-merchant-vat-number"] == VAT
    assert seen[1].headers["x-mobilepay-merchant-vat-number"] == "FI11111111"  # the request's own is kept


def test_auth_picks_the_vat_per_request():
    seen: list[httpx.Request] = []
    c = client(FakeMobilePay(), vat_for_request=lambda r: "FI" + r.url.path[-8:] if r.url.path[-8:].isdigit() else None)

    async def main():
        async with httpx.AsyncClient(auth=c, transport=httpx.MockTransport(pos_api(seen))) as api:
            await api.get("https://api.example/merchants/22222222")
            await api.get("https://api.example/health")

    asyncio.run(main())
    assert seen[0].headers["x-mobilepay-merchant-vat-number"] == "FI22222222"
    assert "x-mobilepay-merchant-vat-number" not in seen[1].headers
    assert {r.headers["authorization"] for r in seen} == {"Bearer mp-1"}


def test_auth_sends_no_vat_header_with_a_merchant_token():
    seen: list[httpx.Request] = []
    c = client(FakeMobilePay(), merchant_vat=VAT, vat_for_request="FI11111111")
    with httpx.Client(auth=c, transport=httpx.MockTransport(pos_api(seen))) as api:
        api.get("https://api.example/pos/v10/payments/1")
    assert "x-mobilepay-merchant-vat-number" not in seen[0].headers


def test_async_auth_retries_once_on_401():
    fake = FakeMobilePay()
    c = client(fake, vat_for_request=VAT)
    seen: list[tuple[str, str, bytes]] = []  # the same request object is sent twice: copy what it held

    def api_handler(request: httpx.Request) -> httpx.Response:
        seen.append(
            (request.headers["authorization"], request.headers["x-mobilepay-merchant-vat-number"], request.content)
        )
        ok = request.headers["authorization"] == "Bearer mp-2"
        return httpx.Response(200 if ok else 401)

    async def main():
        async with httpx.AsyncClient(auth=c, transport=httpx.MockTransport(api_handler)) as api:
            return await api.post("https://api.example/pos/v10/payments", json={"amount": 1})

    assert asyncio.run(main()).status_code == 200
    assert [auth for auth, _, _ in seen] == ["Bearer mp-1", "Bearer mp-2"]
    assert {vat for _, vat, _ in seen} == {VAT}
    assert [json.loads(body) for _, _, body in seen] == [{"amount": 1}] * 2


# ---------------------------------------------------------------------- live
def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture(scope="module")
def live(live_server):
    app = live_server.new_app(with_cert=False)
    mid = secrets.randbelow(10**8) + 1
    vat = f"DK{secrets.randbelow(10**8):08d}"
    live_server.store.create_merchant(Merchant(mid, "Hjørnebutikken", vat, int(time.time())))
    live_server.store.grant(mid, app.client_id, int(time.time()))
    verify = ssl.create_default_context(cafile=str(live_server.ca))
    return live_server, app, vat, verify


@pytest.mark.slow
def test_live_with_merchant_vat(live):
    server, app, vat, verify = live
    c = MobilePayClient(
        f"https://localhost:{server.port}",
        app.client_id,
        app.client_secret,
        merchant_vat=vat,
        cache=TokenCache(),
        verify=verify,
    )
    token = c.cached_token()
    assert token.data["scope"] == "integrator_scope" and token.data["expires_in"] == 3700
    assert token.expires_at == pytest.approx(time.time() + 3700, abs=5)
    claims = _claims(token.access_token)
    assert claims["merchant_vat"] == vat and claims["client_id"] == app.client_id
    assert claims["iss"] == f"https://localhost:{server.port}/integrator-authentication"


@pytest.mark.slow
def test_live_without_merchant_vat(live):
    server, app, _, verify = live
    c = MobilePayClient(
        f"https://localhost:{server.port}", app.client_id, app.client_secret, cache=TokenCache(), verify=verify
    )
    token = asyncio.run(c.atoken())
    assert "merchant_vat" not in _claims(token)
    assert c.token() == token


@pytest.mark.slow
def test_live_merchant_that_has_not_granted(live):
    server, app, _, verify = live
    c = MobilePayClient(
        f"https://localhost:{server.port}",
        app.client_id,
        app.client_secret,
        merchant_vat="FI00000001",
        cache=TokenCache(),
        verify=verify,
    )
    with pytest.raises(TokenError) as info:
        c.token()
    assert (info.value.status, info.value.error) == (400, "unauthorized_client")


@pytest.mark.slow
def test_live_wrong_secret(live):
    server, app, _, verify = live
    c = MobilePayClient(
        f"https://localhost:{server.port}", app.client_id, app.client_secret + "x", cache=TokenCache(), verify=verify
    )
    with pytest.raises(TokenError) as info:
        c.token()
    assert (info.value.status, info.value.error) == (401, "invalid_client")
