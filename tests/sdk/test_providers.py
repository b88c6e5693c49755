"""Each client knows its provider's documented environments and uses the provider's own
paths by default: a client is pointed at a tessera sandbox (or the provider) by its base URL
alone (tessera/sdk/providers.py)."""

from __future__ import annotations

import pytest

from tessera.sdk import AxeptClient, B2BinPayClient, MobilePayClient, NexiSoftPOSClient
from tessera.sdk.providers import AXEPT, B2BINPAY, MOBILEPAY, NEXI, PROVIDERS


def test_the_documented_environments() -> None:
    assert dict(NEXI.environments) == {
        "staging": "https://stgb2bsoftpos.nexigroup.com",
        "production": "https://b2bsoftpos.nexigroup.com",
    }
    assert dict(MOBILEPAY.environments) == {
        "sandbox": "https://api.sandbox.mobilepay.dk",
        "production": "https://api.mobilepay.dk",
    }
    assert dict(B2BINPAY.environments) == {
        "production": "https://api.b2binpay.com",
        "sandbox": "https://api-sandbox.b2binpay.com",
    }
    assert dict(AXEPT.environments) == {}  # the document gives no host
    assert set(PROVIDERS) == {"nexi", "mobilepay", "b2binpay", "axept"}


def test_the_table_cannot_be_changed_by_accident() -> None:
    with pytest.raises(TypeError):
        NEXI.environments["staging"] = "https://evil.example"  # type: ignore[index]


def test_a_url_passes_and_a_name_is_looked_up() -> None:
    assert NEXI.base_url("https://localhost:8443/") == "https://localhost:8443"
    assert NEXI.base_url("Staging") == "https://stgb2bsoftpos.nexigroup.com"
    with pytest.raises(ValueError, match="'staging', 'production'"):
        NEXI.base_url("sandbox")
    with pytest.raises(ValueError, match="pass the base URL"):
        AXEPT.base_url("production")
    for bad in ("", "ftp://host", "https://", "https://host/?q=1"):
        with pytest.raises(ValueError):
            NEXI.base_url(bad)


def test_nexi_defaults(rsa_dev) -> None:
    c = NexiSoftPOSClient("production", "app", "secret", rsa_dev.cert, rsa_dev.key)
    assert c.base_url == "https://b2bsoftpos.nexigroup.com"
    assert c.audience == "https://b2bsoftpos.nexigroup.com"  # aud = the environment's base URL
    assert c.url("/appenrollment/token") == "https://b2bsoftpos.nexigroup.com/softpos/appenrollment/token"
    assert c.authorize_url("urn:x").startswith("https://b2bsoftpos.nexigroup.com/softpos/as/authorize?")
    sandbox = NexiSoftPOSClient("https://localhost:8443", "app", "secret", rsa_dev.cert, rsa_dev.key)
    assert sandbox.url("/par/jwks.json") == "https://localhost:8443/softpos/par/jwks.json"


def test_mobilepay_defaults() -> None:
    assert (
        MobilePayClient("sandbox", "id", "secret").url
        == "https://api.sandbox.mobilepay.dk/integrator-authentication/connect/token"
    )
    assert MobilePayClient("production", "id", "secret").url.startswith("https://api.mobilepay.dk/")
    assert (
        MobilePayClient("https://localhost:8443", "id", "secret").url
        == "https://localhost:8443/integrator-authentication/connect/token"
    )


def test_b2binpay_defaults_are_at_the_root() -> None:
    c = B2BinPayClient("production", "login", "password")
    assert c.url("/token/") == "https://api.b2binpay.com/token/"
    assert (
        B2BinPayClient("sandbox", "l", "p").url("/token/refresh/") == "https://api-sandbox.b2binpay.com/token/refresh/"
    )
    assert B2BinPayClient("https://localhost:8443", "l", "p", prefix="/b2binpay").url("/token/") == (
        "https://localhost:8443/b2binpay/token/"
    )


def test_axept_defaults() -> None:
    assert AxeptClient("https://axept.example/", 1, 1, "k").url == "https://axept.example/v1/authenticate"
    with pytest.raises(ValueError):
        AxeptClient("production", 1, 1, "k")
