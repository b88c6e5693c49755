"""The plugin's helpers: a CSR signed for an app, tokens issued directly (the resource
server's tests need no handshake), all usable with the SDK at once."""

from __future__ import annotations

import httpx
import pytest
from cryptography import x509

from tessera.sdk import NexiSoftPOSClient, TokenCache, make_csr
from tests.integrator.test_providers import (
    B2B_LOGIN,
    MERCHANT,
    MOBILEPAY_CLIENT,
    NEXI_APP,
    NEXI_SECRET,
    OTHER_VAT,
    VAT,
    claims,
)

pytestmark = pytest.mark.slow


def test_sign_csr_gives_a_certificate_the_nexi_endpoints_take(tessera_sandbox, tmp_path):
    csr, key = make_csr("MY-POS-APP")
    pem = tessera_sandbox.sign_csr(NEXI_APP, csr)
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert cert.issuer == x509.load_pem_x509_certificate(tessera_sandbox.ca_file.read_bytes()).subject
    (tmp_path / "app.crt").write_text(pem)
    (tmp_path / "app.key").write_bytes(key)
    with NexiSoftPOSClient(
        tessera_sandbox.base_url,
        NEXI_APP,
        NEXI_SECRET,
        tmp_path / "app.crt",
        tmp_path / "app.key",
        verify=str(tessera_sandbox.ca_file),
        cache=TokenCache(),
    ) as nexi:
        assert nexi.token()


def test_issue_token_per_profile(tessera_sandbox):
    thumbprint = tessera_sandbox.nexi_apps[0].thumbprint
    nexi = tessera_sandbox.issue_token("nexi", client_id=NEXI_APP, thumbprint=thumbprint)
    assert nexi.expires_in == 3600 and nexi.claims["cnf"]["x5t#S256"] == thumbprint
    mobilepay = tessera_sandbox.issue_token("mobilepay", client_id=MOBILEPAY_CLIENT, merchant_vat=VAT)
    assert mobilepay.expires_in == 3700 and mobilepay.claims["merchant_vat"] == VAT
    assert claims(mobilepay.access_token) == mobilepay.claims
    axept = tessera_sandbox.issue_token("axept", merchant_id=MERCHANT, key_id=1)
    assert axept.claims["sub"] == str(MERCHANT)
    b2b = tessera_sandbox.issue_token("b2binpay", login=B2B_LOGIN)
    assert b2b.refresh and b2b.claims["client_id"] == B2B_LOGIN


def test_issue_token_refuses_what_the_endpoint_refuses(tessera_sandbox):
    from tessera.testing import SandboxError

    with pytest.raises(SandboxError, match="unauthorized_client"):
        tessera_sandbox.issue_token("mobilepay", client_id=MOBILEPAY_CLIENT, merchant_vat=OTHER_VAT)
    with pytest.raises(SandboxError, match="404"):
        tessera_sandbox.issue_token("nexi", client_id="nobody")


def test_a_directly_issued_b2binpay_refresh_token_rotates(tessera_sandbox):
    pair = tessera_sandbox.issue_token("b2binpay", login=B2B_LOGIN)
    r = httpx.post(
        f"{tessera_sandbox.base_url}/token/refresh/",
        json={"data": {"type": "auth-token", "attributes": {"refresh": pair.refresh}}},
        headers={"Content-Type": "application/vnd.api+json"},
        verify=tessera_sandbox.ssl_context(),
    )
    assert r.status_code == 200 and r.json()["data"]["attributes"]["refresh"] != pair.refresh
