"""Expiry without sleeping: ``tessera_clock`` (the plugin's sandbox, its clock put back after the
test) moves the sandbox's clock forward; tokens, request_uris and refresh tokens then expire as
they would after that long."""

from __future__ import annotations

import httpx
import pytest

from tessera.sdk import AxeptClient, NexiSoftPOSClient, TokenCache
from tests.integrator.test_providers import (
    AXEPT_KEY,
    AXEPT_KEY_ID,
    B2B_LOGIN,
    MERCHANT,
    NEXI_APP,
    NEXI_SECRET,
    POS,
    REDIRECT_URI,
    TIDS,
    USER,
    claims,
)

pytestmark = pytest.mark.slow


def nexi_client(sandbox) -> NexiSoftPOSClient:
    app = sandbox.nexi_apps[0]
    return NexiSoftPOSClient(
        sandbox.base_url,
        NEXI_APP,
        NEXI_SECRET,
        app.certificate,
        app.key,
        verify=str(sandbox.ca_file),
        cache=TokenCache(),
    )


def test_the_clock_moves_and_comes_back(tessera_clock):
    before = tessera_clock.server_time()
    assert tessera_clock.advance_clock(3600) >= before + 3600
    assert tessera_clock.reset_clock() < before + 3600


def test_nexi_token_expires_after_an_hour(tessera_clock):
    with nexi_client(tessera_clock) as nexi:
        token = nexi.token()
        assertion = nexi.client_assertion(point_of_sale=POS, terminal_ids=TIDS, username_merchant=USER)
    tessera_clock.advance_clock(3601)
    app = tessera_clock.nexi_apps[0]
    with httpx.Client(verify=tessera_clock.ssl_context(certificate=app.certificate, key=app.key)) as http:
        r = http.post(
            f"{tessera_clock.base_url}/softpos/as/par",
            data={"client_assertion": assertion, "client_id": NEXI_APP, "scope": "oidc", "redirect_uri": REDIRECT_URI},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"


def test_request_uri_expires_after_90_seconds(tessera_clock):
    with nexi_client(tessera_clock) as nexi:
        assertion = nexi.client_assertion(point_of_sale=POS, terminal_ids=TIDS, username_merchant=USER)
        pushed = nexi.par(scope="oidc", redirect_uri=REDIRECT_URI, client_assertion=assertion)
        url = nexi.authorize_url(pushed["request_uri"])
    with httpx.Client(verify=tessera_clock.ssl_context()) as browser:
        assert browser.get(url).status_code == 200
        tessera_clock.advance_clock(91)
        assert browser.get(url).status_code == 400


def test_b2binpay_refresh_token_expires(tessera_clock):
    pair = tessera_clock.issue_token("b2binpay", login=B2B_LOGIN)
    tessera_clock.advance_clock(6 * 3600 + 1)
    r = httpx.post(
        f"{tessera_clock.base_url}/token/refresh/",
        json={"data": {"type": "auth-token", "attributes": {"refresh": pair.refresh}}},
        headers={"Content-Type": "application/vnd.api+json"},
        verify=tessera_clock.ssl_context(),
    )
    assert r.status_code == 401 and r.json()["errors"][0]["code"] == "2007"


def test_axept_token_dates_follow_the_clock(tessera_clock):
    def axept_exp() -> int:
        with AxeptClient(
            tessera_clock.base_url,
            MERCHANT,
            AXEPT_KEY_ID,
            AXEPT_KEY,
            verify=str(tessera_clock.ca_file),
            cache=TokenCache(),
        ) as axept:
            return int(claims(axept.token())["exp"])

    today = axept_exp()
    tessera_clock.advance_clock(86400)
    assert axept_exp() - today >= 86400
