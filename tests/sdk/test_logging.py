"""The SDK logs through ``logging.getLogger("tessera.sdk...")``: requests, retries, cache hits
and misses, new tokens, failures; and never a secret: every flow of every client runs with
the ``tessera.sdk`` loggers at DEBUG, and no client secret, password, key, assertion, code or
token appears in any record (message, arguments or exception text)."""

from __future__ import annotations

import asyncio
import logging
import re

import httpx
import pytest

from tessera.sdk import AxeptClient, B2BinPayClient, MobilePayClient, NexiSoftPOSClient, TokenCache
from tessera.sdk.errors import SDKError
from tessera.sdk.retry import RetryPolicy
from tests.sdk.test_axept import FakeAxept
from tests.sdk.test_b2binpay import LOGIN, PASSWORD, Clock, FakeB2BinPay
from tests.sdk.test_mobilepay import FakeMobilePay
from tests.sdk.test_nexi_wire import FakeNexi
from tests.sdk.test_retry_and_errors import Flaky

NEXI_SECRET = "nexi-client-secret-QWERTY-1"
MP_SECRET = "mobilepay-secret-ASDFGH-2"
AXEPT_KEY = "axept-key-ZXCVBN-3"


def no_wait() -> RetryPolicy:
    async def asleep(_: float) -> None:
        return None

    return RetryPolicy(sleep=lambda _: None, async_sleep=asleep)


def text_of(records: list[logging.LogRecord]) -> str:
    parts = []
    for r in records:
        parts.append(r.getMessage())
        if r.exc_info and r.exc_info[1] is not None:
            parts.append(repr(r.exc_info[1]))
    return "\n".join(parts)


def test_no_secret_in_any_log_record_of_any_flow(caplog, jwks_body, enc_key, rsa_dev) -> None:
    caplog.set_level(logging.DEBUG, logger="tessera.sdk")
    secrets: list[str] = [NEXI_SECRET, MP_SECRET, AXEPT_KEY, PASSWORD, "BE_MERCH_TOKEN_", "merchant-at", "the-code"]
    secrets += [line for line in rsa_dev.key_pem.decode().splitlines() if "-----" not in line][:3]

    # Nexi: token (after a 503), JWKS, assertion, PAR refused once (new token, new assertion), code exchange.
    nexi_fake = FakeNexi(jwks_body, enc_key)
    nexi_fake.valid_tokens = {"BE_MERCH_TOKEN_2", "BE_MERCH_TOKEN_3"}  # the first is refused at PAR
    flaky = Flaky(nexi_fake, "/appenrollment/token", 503)
    nexi = NexiSoftPOSClient(
        "staging", "app-1", NEXI_SECRET, rsa_dev.cert, rsa_dev.key, cache=TokenCache(), retry=no_wait(),
        transport=httpx.MockTransport(flaky), async_transport=httpx.MockTransport(flaky),
    )  # fmt: skip
    kw = {"point_of_sale": "POS1", "terminal_ids": ["S1"], "username_merchant": "m@shop.example"}
    assertion = nexi.client_assertion(**kw)
    secrets.append(str(assertion))
    nexi.par(client_assertion=assertion, scope="oidc", redirect_uri="https://app.example/cb")
    nexi.exchange_code(code="the-code", redirect_uri="https://app.example/cb")
    nexi.invalidate()
    asyncio.run(nexi.apar(client_assertion=asyncio.run(nexi.aclient_assertion(**kw)), scope="oidc",
                          redirect_uri="https://app.example/cb"))  # fmt: skip
    nexi_fake.overrides["/softpos/as/token"] = httpx.Response(400, json={"error": "invalid_grant"})
    with pytest.raises(SDKError):
        nexi.exchange_code(code="the-code", redirect_uri="https://app.example/cb")

    # axept: a token, then the API refuses it (401): a new one; a wrong key.
    axept = AxeptClient("https://axept.example", 1, 2, AXEPT_KEY, cache=TokenCache(),
                        transport=httpx.MockTransport(FakeAxept()))  # fmt: skip
    secrets.append(axept.token())

    def api(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401 if request.headers["authorization"].endswith("jwt-1") else 200)

    with httpx.Client(auth=axept, transport=httpx.MockTransport(api)) as payments:
        assert payments.get("https://payments.example/x").status_code == 200
    wrong_key = httpx.MockTransport(FakeAxept(status=401, body={"error": "Unauthorized"}))
    refused = AxeptClient("https://axept.example", 1, 2, AXEPT_KEY, cache=TokenCache(), retry=None, transport=wrong_key)
    with pytest.raises(SDKError):
        refused.token()

    # MobilePay: a token after a connection failure, cached (hits), async; refused credentials.
    mp_fake = FakeMobilePay()
    mp_flaky = Flaky(mp_fake, "/connect/token", httpx.ConnectError)
    mobilepay = MobilePayClient("sandbox", "integrator-1", MP_SECRET, cache=TokenCache(), retry=no_wait(),
                                transport=httpx.MockTransport(mp_flaky))  # fmt: skip
    secrets.append(mobilepay.token())
    assert mobilepay.token() == secrets[-1]
    with pytest.raises(SDKError):
        refusing = httpx.MockTransport(FakeMobilePay(401, {"error": "invalid_client"}))
        MobilePayClient(
            "sandbox", "integrator-1", MP_SECRET, cache=TokenCache(), retry=None, transport=refusing
        ).token()

    # B2BINPAY: login, refresh, a refused refresh (401: login again), a bad signature.
    clock = Clock()
    b2b_fake = FakeB2BinPay()
    sync_t, async_t = httpx.MockTransport(b2b_fake), httpx.MockTransport(b2b_fake.ahandle)
    b2b = B2BinPayClient(
        "sandbox", LOGIN, PASSWORD, cache=TokenCache(clock=clock), transport=sync_t, async_transport=async_t
    )
    b2b.token()
    clock.now += 60
    asyncio.run(b2b.atoken())
    b2b_fake.refresh_status = 401
    clock.now += 60
    b2b.token()
    with pytest.raises(SDKError):
        B2BinPayClient("sandbox", LOGIN, "wrong-password", cache=TokenCache(),
                       transport=httpx.MockTransport(FakeB2BinPay())).token()  # fmt: skip

    text = text_of(caplog.records)
    # Something was logged at each level of detail: requests, retries, the cache, tokens, failures.
    for needle in (
        "-> 200",
        "-> 503",
        "retrying POST",
        "hit mobilepay",
        "miss b2binpay",
        "refused the token",
        "new token",
        "no token",
    ):
        assert needle in text, needle
    assert {r.name for r in caplog.records} >= {"tessera.sdk.http", "tessera.sdk.cache", "tessera.sdk.token"}
    for secret in secrets:
        assert secret not in text, secret
    for token in ("A1", "A2", "A3", "R1", "R2", "R3", "jwt-1", "jwt-2", "mp-1"):
        assert not re.search(rf"\b{re.escape(token)}\b", text), token
