"""examples/payments_api.py, in-process (httpx.ASGITransport), verifying tokens that a live
tessera issued, with the SDK clients as the callers' httpx.Auth: accept and refuse cases."""

from __future__ import annotations

import asyncio
import importlib.util
import secrets
import ssl
import sys
import time
import uuid

import httpx
import pytest

from tessera.core.models import Merchant
from tessera.sdk import AxeptClient, MobilePayClient, TokenCache
from tests.support.live import REPO

pytestmark = pytest.mark.slow

VAT_HEADER = "x-mobilepay-merchant-vat-number"


def load_example():
    spec = importlib.util.spec_from_file_location("payments_api", REPO / "examples" / "payments_api.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def env(live_server):
    base = f"https://localhost:{live_server.port}"
    verify = ssl.create_default_context(cafile=str(live_server.ca))
    integrator = live_server.new_app(with_cert=False)
    merchants = []
    for _ in range(2):
        mid = secrets.randbelow(10**8) + 1
        vat = f"DK{secrets.randbelow(10**8):08d}"
        live_server.store.create_merchant(Merchant(mid, f"Shop {mid}", vat, int(time.time())))
        live_server.store.grant(mid, integrator.client_id, int(time.time()))
        merchants.append(vat)
    axept_mid = secrets.randbelow(10**8) + 1
    live_server.cli_json("merchants", "create", "--merchant-id", str(axept_mid))
    axept_key = live_server.cli_json("keys", "create", "--merchant-id", str(axept_mid))
    app = load_example().create_app(base, verify=verify)

    def mobilepay(**kw) -> MobilePayClient:
        return MobilePayClient(
            base, integrator.client_id, integrator.client_secret, cache=TokenCache(), verify=verify, **kw
        )

    def axept() -> AxeptClient:
        return AxeptClient(
            base,
            axept_key["merchantId"],
            axept_key["keyId"],
            axept_key["key"],
            path="/axept/v1/authenticate",
            cache=TokenCache(),
            verify=verify,
        )

    return app, merchants, mobilepay, axept


def assert_pos(r: httpx.Response, status: int, code: str) -> dict:
    """A refusal of the PoS V10 API: {"code", "message", "CorrelationId"}."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"code", "message", "CorrelationId"} and body["code"] == code, body
    assert str(uuid.UUID(body["CorrelationId"])) == body["CorrelationId"]
    return body


def call(app, method: str, path: str, *, auth=None, headers=None, json=None) -> httpx.Response:
    async def go():
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://payments.test", auth=auth
        ) as client:
            return await client.request(method, path, headers=headers, json=json)

    return asyncio.run(go())


def test_health_needs_no_token(env):
    app, *_ = env
    assert call(app, "GET", "/health").json() == {"status": "ok"}


def test_merchant_token_creates_and_reads_its_payment(env):
    app, (vat, _), mobilepay, _ = env
    auth = mobilepay(merchant_vat=vat)
    created = call(app, "POST", "/pos/v10/payments", auth=auth, json={"amount": 1250, "orderId": "A-1"})
    assert created.status_code == 201, created.text
    payment = created.json()
    assert payment["merchantVatNumber"] == vat and payment["amount"] == 1250
    got = call(app, "GET", f"/pos/v10/payments/{payment['paymentId']}", auth=auth)
    assert got.status_code == 200 and got.json() == payment
    same = call(app, "GET", f"/pos/v10/payments/{payment['paymentId']}", auth=auth, headers={VAT_HEADER: vat})
    assert same.status_code == 200  # naming its own merchant is fine


def test_merchant_token_for_another_merchant_is_refused(env):
    app, (vat, other), mobilepay, _ = env
    r = call(
        app,
        "POST",
        "/pos/v10/payments",
        auth=mobilepay(merchant_vat=vat),
        headers={VAT_HEADER: other},
        json={"amount": 100},
    )
    assert_pos(r, 403, "1411")


def test_unbound_token_with_the_header(env):
    app, (vat, other), mobilepay, _ = env
    auth = mobilepay(vat_for_request=other)  # the client adds x-mobilepay-merchant-vat-number
    created = call(app, "POST", "/pos/v10/payments", auth=auth, json={"amount": 700})
    assert created.status_code == 201 and created.json()["merchantVatNumber"] == other
    pid = created.json()["paymentId"]
    # The same token acting for the first merchant cannot see the second's payment: 403/1411
    assert_pos(call(app, "GET", f"/pos/v10/payments/{pid}", auth=auth, headers={VAT_HEADER: vat}), 403, "1411")
    assert (
        call(app, "GET", "/pos/v10/payments/no-such-payment", auth=auth, headers={VAT_HEADER: vat}).status_code == 404
    )


def test_unbound_token_without_the_header_is_refused(env):
    app, _, mobilepay, _ = env
    r = call(app, "POST", "/pos/v10/payments", auth=mobilepay(), json={"amount": 100})
    assert VAT_HEADER in assert_pos(r, 400, "1151")["message"]


def test_unbound_token_with_a_malformed_header_is_refused(env):
    app, _, mobilepay, _ = env
    r = call(app, "POST", "/pos/v10/payments", auth=mobilepay(), headers={VAT_HEADER: "SE12345678"}, json={"amount": 1})
    assert_pos(r, 400, "1159")


def test_duplicated_header_is_1155(env):
    app, (vat, other), mobilepay, _ = env
    r = call(
        app,
        "POST",
        "/pos/v10/payments",
        auth=mobilepay(),
        headers=[(VAT_HEADER, vat), (VAT_HEADER, other)],
        json={"amount": 1},
    )
    assert_pos(r, 400, "1155")


def test_x_ibm_client_id_of_another_client_is_401(env):
    app, (vat, _), mobilepay, _ = env
    auth = mobilepay(merchant_vat=vat)  # the SDK sends its own client id
    assert call(app, "POST", "/pos/v10/payments", auth=auth, json={"amount": 1}).status_code == 201
    r = call(
        app, "POST", "/pos/v10/payments", auth=auth, headers={"x-ibm-client-id": "another-client"}, json={"amount": 1}
    )
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]


def test_no_token_and_bad_tokens(env):
    app, (vat, _), mobilepay, _ = env
    r = call(app, "GET", "/pos/v10/payments/x")
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="tessera"'
    token = mobilepay(merchant_vat=vat).token()
    head, payload, sig = token.split(".")
    tampered = f"{head}.{payload}.{sig[:-4]}AAAA"
    r = call(app, "GET", "/pos/v10/payments/x", headers={"Authorization": f"Bearer {tampered}"})
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]


def test_axept_token_on_the_axept_routes(env):
    app, _, _, axept = env
    auth = axept()
    created = call(app, "POST", "/axept/v1/transactions", auth=auth, json={"amount": 995})
    assert created.status_code == 201, created.text
    tid = created.json()["paymentId"]
    assert call(app, "GET", f"/axept/v1/transactions/{tid}", auth=auth).json()["amount"] == 995


def test_tokens_of_one_profile_are_refused_by_the_other(env):
    app, (vat, _), mobilepay, axept = env
    r = call(app, "POST", "/pos/v10/payments", auth=axept(), headers={VAT_HEADER: vat}, json={"amount": 1})
    assert r.status_code == 401  # axept's issuer is not MobilePay's
    r = call(app, "POST", "/axept/v1/transactions", auth=mobilepay(merchant_vat=vat), json={"amount": 1})
    assert r.status_code == 401


def test_the_jwks_was_fetched_once(env):
    app, *_ = env
    assert app.state.jwks.fetches == 1
    assert app.state.axept_jwks.fetches == 1
