"""tessera.core.flows.axept in process: a merchant key's token (subject, client_id, expiry as the
provider writes it), through the web layer's key check."""

from __future__ import annotations

import pytest

from tessera.core import apikeys
from tessera.core.flows import axept
from tessera.core.models import Merchant
from tessera.core.profiles import AXEPT
from tessera.core.tokens import verify_access_token
from tessera.errors import InvalidClient
from tests.core.conftest import NOW, PEPPER


def test_a_merchant_key_gets_a_token(world):
    world.store.create_merchant(Merchant(42, "Corner Shop", None, NOW))
    record, value = apikeys.create_key(world.store, PEPPER, 42, NOW, max_enabled=2)

    def check(request):
        return apikeys.authenticate(world.core, request.merchant_id, request.key_id, request.key)

    out = axept.authenticate(world.core, axept.AuthenticateRequest(42, record.key_id, value), ttl=1800, check_key=check)
    assert out.expires_at == "2027-01-15T08:30:00Z" and out.claims["exp"] == NOW + 1800
    assert (out.claims["sub"], out.claims["unique_name"], out.claims["client_id"]) == ("42", "42", "axept-merchant-42")
    claims = verify_access_token(world.core, out.token, thumbprint=None, profile=AXEPT)
    assert claims["nbf"] == NOW
    with pytest.raises(InvalidClient):
        axept.authenticate(
            world.core, axept.AuthenticateRequest(42, record.key_id, value + "x"), ttl=1, check_key=check
        )
