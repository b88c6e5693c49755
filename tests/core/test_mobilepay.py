"""tessera.core.flows.mobilepay in process: the request's own rules (checked before the client is
authenticated) and the whole use case with the web layer's authenticator. The token's claims
against the provider's sample are in test_mobilepay_axept_tokens.py."""

from __future__ import annotations

import pytest

from tessera.core.clients import ClientCredentials, authenticate_secret
from tessera.core.flows import mobilepay as mp
from tessera.core.models import Merchant
from tessera.errors import InvalidClient, InvalidRequest, InvalidScope, UnauthorizedClient, UnsupportedGrantType
from tests.core.conftest import NOW, SECRET, jwt_claims


def req(client_id="c", *, method="client_secret_basic", grant="client_credentials", vat=None, scope=None):
    return mp.TokenRequest(ClientCredentials(client_id, SECRET, method), grant, vat, scope)


@pytest.mark.parametrize(
    "request_,kind,why",
    [
        (req(method="none"), InvalidClient, "secret_required"),
        (req(grant=None), InvalidRequest, "grant_type_missing"),
        (req(grant="authorization_code"), UnsupportedGrantType, "grant_type"),
        (req(vat="SE12345678"), InvalidRequest, "vat_format"),
        (req(vat="DK1234567"), InvalidRequest, "vat_format"),
        (req(vat="DK١٢٣٤٥٦٧٨"), InvalidRequest, "vat_format"),
        (req(scope="openid"), InvalidScope, "scope"),
        (req(scope="integrator_scope openid"), InvalidScope, "scope"),
    ],
)
def test_request_rules(request_, kind, why):
    with pytest.raises(kind) as err:
        mp.check(request_)
    assert err.value.reason == why


def test_good_requests_pass():
    mp.check(req(vat="DK12345678", scope="integrator_scope"))
    mp.check(req(method="client_secret_post", vat="FI12345678"))


def test_the_use_case_with_a_merchant(world):
    client = world.client(name="Kasse")
    world.store.create_merchant(Merchant(5, "m", "DK12345678", NOW))
    world.store.grant(5, client.client_id, NOW)
    seen = []

    def auth(creds):
        seen.append(creds)
        return authenticate_secret(world.core, creds)

    out = mp.token(world.core, req(client.client_id, vat="DK12345678"), ttl=3700, authenticate=auth)
    assert (out.expires_in, out.token_type, out.scope) == (3700, "Bearer", "integrator_scope") and len(seen) == 1
    claims = jwt_claims(out.access_token)
    assert claims["merchant_vat"] == "DK12345678" and claims["integrator_name"] == "Kasse" and claims["nbf"] == NOW
    with pytest.raises(UnauthorizedClient):
        mp.token(world.core, req(client.client_id, vat="FI87654321"), ttl=60, authenticate=auth)
    world.store.create_merchant(Merchant(6, "n", "FI87654321", NOW))  # known, but no grant: the same answer
    with pytest.raises(UnauthorizedClient):
        mp.token(world.core, req(client.client_id, vat="FI87654321"), ttl=60, authenticate=auth)
