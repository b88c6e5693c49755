"""Every operation of every client has an asyncio form, and it sends the same thing as the
blocking one (Nexi: token, JWKS, encryption key, client assertion, PAR, code exchange;
axept, MobilePay and B2BINPAY: token, login and refresh). The live forms run against a real
server in test_live_provider_paths.py."""

from __future__ import annotations

import asyncio
import inspect
from urllib.parse import parse_qs

import httpx
import pytest

from tessera.sdk import AxeptClient, B2BinPayClient, MobilePayClient, NexiSoftPOSClient, TokenCache
from tests.sdk.test_axept import FakeAxept
from tests.sdk.test_b2binpay import LOGIN, PASSWORD, Clock, FakeB2BinPay
from tests.sdk.test_mobilepay import FakeMobilePay
from tests.sdk.test_nexi_wire import FakeNexi

#: Methods that do no I/O: no async form is needed.
NO_IO = {"url", "authorize_url", "invalidate", "reset", "auth_flow", "sync_auth_flow", "async_auth_flow"}


@pytest.mark.parametrize("cls", [NexiSoftPOSClient, AxeptClient, MobilePayClient, B2BinPayClient])
def test_every_public_operation_has_an_async_twin(cls) -> None:
    names = {n for n, _ in inspect.getmembers(cls, callable) if not n.startswith("_")}
    sync_ops = {n for n in names if not n.startswith("a") or n[1:] not in names} - NO_IO
    sync_ops = {n for n in sync_ops if not inspect.iscoroutinefunction(getattr(cls, n))}
    missing = sorted(n for n in sync_ops if f"a{n}" not in names)
    assert missing == []
    for n in sync_ops:
        assert inspect.iscoroutinefunction(getattr(cls, f"a{n}")), n


@pytest.fixture
def nexi(jwks_body, enc_key, old_enc_key, rsa_dev):
    fake = FakeNexi(jwks_body, enc_key, old_enc_key)
    c = NexiSoftPOSClient(
        "staging",
        "app-1",
        "nexi-secret",
        rsa_dev.cert,
        rsa_dev.key,
        cache=TokenCache(),
        async_transport=httpx.MockTransport(fake),
        transport=httpx.MockTransport(lambda r: httpx.Response(599)),  # the blocking path is never taken
    )
    return c, fake


def test_nexi_async_operations(nexi) -> None:
    c, fake = nexi

    async def main() -> tuple:
        token = await c.atoken()
        jwks = await c.ajwks()
        assert await c.ajwks() == jwks  # cached
        key = await c.aencryption_key(choice="first")
        assertion = await c.aclient_assertion(
            point_of_sale="POS1", terminal_ids=["S1"], username_merchant="m@shop.example", device_id="dev-1"
        )
        par = await c.apar(scope="oidc", redirect_uri="https://app.example/cb", client_assertion=assertion)
        code = await c.aexchange_code(code="the-code", redirect_uri="https://app.example/cb", code_verifier="v" * 43)
        return token, jwks, key, assertion, par, code

    token, jwks, key, assertion, par, code = asyncio.run(main())
    assert token == "BE_MERCH_TOKEN_1"
    assert key["kid"] == "enc-current" and len(fake.by_path("/softpos/par/jwks.json")) == 1
    claims = fake.open_assertion(assertion)
    assert claims["app_deviceid"] == "dev-1" and claims["aud"] == "https://stgb2bsoftpos.nexigroup.com"
    assert par["request_uri"].startswith("urn:softpos_")
    (par_request,) = fake.by_path("/softpos/as/par")
    assert par_request.headers["authorization"] == "Bearer BE_MERCH_TOKEN_1"
    assert code["access_token"] == "merchant-at"
    form = parse_qs(fake.by_path("/softpos/as/token")[0].content.decode())
    assert form["code"] == ["the-code"] and form["code_verifier"] == ["v" * 43]


def test_nexi_apar_renews_the_token_and_the_assertion_once(nexi) -> None:
    c, fake = nexi
    fake.valid_tokens = {"BE_MERCH_TOKEN_2"}  # the first token is refused at PAR

    async def main() -> dict:
        a = await c.aclient_assertion(point_of_sale="P", terminal_ids=["S1"], username_merchant="m@shop.example")
        return await c.apar(scope="oidc", redirect_uri="https://app.example/cb", client_assertion=a)

    assert asyncio.run(main())["request_uri"]
    first, second = fake.by_path("/softpos/as/par")
    jti = [fake.open_assertion(parse_qs(r.content.decode())["client_assertion"][0])["jti"] for r in (first, second)]
    assert jti[0] != jti[1]  # a fresh assertion for the second try


def test_axept_and_mobilepay_async_tokens() -> None:
    axept, mobilepay = FakeAxept(), FakeMobilePay()
    a = AxeptClient("https://axept.example", 1, 2, "k", cache=TokenCache(), async_transport=httpx.MockTransport(axept))
    m = MobilePayClient("sandbox", "id", "secret", cache=TokenCache(), async_transport=httpx.MockTransport(mobilepay))

    async def main() -> tuple[str, str]:
        async with a as ca, m as cm:
            return await ca.atoken(), await cm.atoken()

    assert asyncio.run(main()) == ("jwt-1", "mp-1")
    assert axept.requests[0].url.path == "/v1/authenticate"
    assert mobilepay.requests[0].url.path == "/integrator-authentication/connect/token"


def test_b2binpay_async_login_then_refresh() -> None:
    fake, clock = FakeB2BinPay(), Clock()
    c = B2BinPayClient(
        "sandbox", LOGIN, PASSWORD, cache=TokenCache(clock=clock), async_transport=httpx.MockTransport(fake.ahandle)
    )

    async def main() -> tuple[str, str]:
        first = await c.atoken()
        clock.now += 60
        return first, await c.atoken()

    assert asyncio.run(main()) == ("A1", "A2")
    assert [p for p, _ in fake.calls] == ["/token/", "/token/refresh/"]
