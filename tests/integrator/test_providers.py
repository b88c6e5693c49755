"""An integrator's test suite, as a POS vendor would write it: the pytest plugin's
``tessera_sandbox`` (entry point ``pytest11``, nothing imported by hand), credentials hard-coded
from the fixtures file (examples/sandbox.toml, the sandbox's default), and every provider called
through the SDK, at the provider's own paths: only the base URL (and the CA) is the sandbox's."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography import x509

from tessera.sdk import (
    AuthenticationError,
    AxeptClient,
    B2BinPayClient,
    MobilePayClient,
    NexiSoftPOSClient,
    TokenCache,
    make_pkce,
)

pytestmark = pytest.mark.slow

# Hard-coded, as an integrator's suite would: the values of examples/sandbox.toml.
NEXI_APP = "softpos-demo-app"
NEXI_SECRET = "sandbox-nexi-secret-0123456789"
REDIRECT_URI = "https://softpos.example.test/callback"
MOBILEPAY_CLIENT, MOBILEPAY_SECRET = "mobilepay-integrator", "sandbox-mobilepay-secret-0123456789"
B2B_LOGIN, B2B_PASSWORD = "b2binpay-api-user", "sandbox-b2binpay-password-0123456789"
MERCHANT, VAT, OTHER_VAT = 1001, "DK12345678", "FI87654321"
POS, TIDS = "POS-1001", ["SP100101", "MP100101"]
USER, USER_PASSWORD = "owner@demo-shop.example", "correct horse battery"
AXEPT_KEY_ID, AXEPT_KEY = 1, "sandbox-axept-key-1001-0123456789"


def claims(token: str) -> dict:
    """The payload of a JWT, unverified (what the test looks at, not a check of the token)."""
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


@pytest.fixture
def nexi(tessera_sandbox):
    app = next(a for a in tessera_sandbox.nexi_apps if a.client_id == NEXI_APP)
    with NexiSoftPOSClient(
        tessera_sandbox.base_url,
        NEXI_APP,
        NEXI_SECRET,
        app.certificate,
        app.key,
        verify=str(tessera_sandbox.ca_file),
        cache=TokenCache(),
    ) as client:
        yield client


def test_the_fixture_credentials_are_the_files(tessera_sandbox):
    assert tessera_sandbox.base_url.startswith("https://127.0.0.1:")
    assert tessera_sandbox.merchant(MERCHANT).vat == VAT
    assert [t.tid for t in tessera_sandbox.merchant(MERCHANT).points_of_sale[0].terminals] == TIDS
    assert tessera_sandbox.b2binpay_users[0].login == B2B_LOGIN
    cert = x509.load_pem_x509_certificate(tessera_sandbox.nexi_apps[0].certificate.read_bytes())
    ca = x509.load_pem_x509_certificate(tessera_sandbox.ca_file.read_bytes())
    cert.verify_directly_issued_by(ca)  # the developer certificate comes from the sandbox's CA


def test_nexi_token_jwks_par_and_code_exchange(nexi, tessera_sandbox):
    token = nexi.token()  # mutual TLS with the developer certificate
    assert claims(token)["cnf"]["x5t#S256"] == tessera_sandbox.nexi_apps[0].thumbprint
    assert any(k.get("use") == "enc" for k in nexi.jwks()["keys"])
    assertion = nexi.client_assertion(point_of_sale=POS, terminal_ids=TIDS, username_merchant=USER)
    verifier, challenge = make_pkce()
    pushed = nexi.par(
        scope="openid oidc",
        redirect_uri=REDIRECT_URI,
        client_assertion=assertion,
        state="s-1",
        code_challenge=challenge,
    )
    assert pushed["request_uri"].startswith("urn:softpos_") and pushed["expires_in"] == 90
    # The merchant signs in on the enrollment page (a browser would).
    authorize_url = nexi.authorize_url(pushed["request_uri"])
    assert authorize_url.startswith(f"{tessera_sandbox.base_url}/softpos/as/authorize?")
    with httpx.Client(verify=tessera_sandbox.ssl_context()) as browser:
        assert browser.get(authorize_url).status_code == 200
        login = browser.post(
            authorize_url.split("?")[0],
            data={
                "client_id": NEXI_APP,
                "request_uri": pushed["request_uri"],
                "username": USER,
                "password": USER_PASSWORD,
            },
        )
    assert login.status_code == 303 and login.headers["location"].startswith(REDIRECT_URI)
    query = parse_qs(urlsplit(login.headers["location"]).query)
    assert query["state"] == ["s-1"]
    tokens = nexi.exchange_code(code=query["code"][0], redirect_uri=REDIRECT_URI, code_verifier=verifier)
    assert tokens["access_token"] and "id_token" in tokens


def test_nexi_token_needs_the_certificate(tessera_sandbox):
    r = httpx.post(
        f"{tessera_sandbox.base_url}/softpos/appenrollment/token",
        data={"grant_type": "client_credentials", "client_id": NEXI_APP, "client_secret": NEXI_SECRET},
        verify=tessera_sandbox.ssl_context(),
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_axept(tessera_sandbox):
    with AxeptClient(
        tessera_sandbox.base_url,
        MERCHANT,
        AXEPT_KEY_ID,
        AXEPT_KEY,
        verify=str(tessera_sandbox.ca_file),
        cache=TokenCache(),
    ) as axept:
        token = axept.token()
    assert claims(token)["sub"] == str(MERCHANT)


def test_axept_wrong_key_is_401(tessera_sandbox):
    r = httpx.post(
        f"{tessera_sandbox.base_url}/v1/authenticate",
        json={"merchantId": MERCHANT, "keyId": AXEPT_KEY_ID, "key": "not-the-key-0123456789"},
        verify=tessera_sandbox.ssl_context(),
    )
    assert r.status_code == 401


def test_mobilepay_with_merchant_vat(tessera_sandbox):
    with MobilePayClient(
        tessera_sandbox.base_url,
        MOBILEPAY_CLIENT,
        MOBILEPAY_SECRET,
        merchant_vat=VAT,
        verify=str(tessera_sandbox.ca_file),
        cache=TokenCache(),
    ) as mobilepay:
        token = mobilepay.token()
    assert claims(token)["merchant_vat"] == VAT


def test_mobilepay_without_merchant_vat(tessera_sandbox):
    with MobilePayClient(
        tessera_sandbox.base_url,
        MOBILEPAY_CLIENT,
        MOBILEPAY_SECRET,
        verify=str(tessera_sandbox.ca_file),
        cache=TokenCache(),
    ) as mobilepay:
        token = mobilepay.token()
    assert "merchant_vat" not in claims(token) and claims(token)["integrator_id"] == MOBILEPAY_CLIENT


def test_mobilepay_merchant_that_granted_nobody_is_refused(tessera_sandbox):
    with MobilePayClient(
        tessera_sandbox.base_url,
        MOBILEPAY_CLIENT,
        MOBILEPAY_SECRET,
        merchant_vat=OTHER_VAT,
        verify=str(tessera_sandbox.ca_file),
        cache=TokenCache(),
    ) as mobilepay:
        with pytest.raises(AuthenticationError) as refused:
            mobilepay.token()
    assert refused.value.code == "unauthorized_client"


def test_b2binpay_login_and_refresh(tessera_sandbox):
    with B2BinPayClient(
        tessera_sandbox.base_url,
        B2B_LOGIN,
        B2B_PASSWORD,
        verify=str(tessera_sandbox.ca_file),
        cache=TokenCache(),
    ) as b2binpay:
        first = b2binpay.token()  # login: meta.sign checked by the client
        b2binpay.invalidate(first)
        second = b2binpay.token()  # the refresh token, rotated
    assert first != second and claims(second)["fam"] == claims(first)["fam"]
