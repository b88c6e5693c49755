"""tessera.core.apikeys: axept merchant keys, stored only as an HMAC, one answer for every refusal."""

from __future__ import annotations

import pytest

from tessera.core import apikeys
from tessera.core.models import Merchant
from tessera.errors import InvalidClient
from tests.core.conftest import NOW, PEPPER


def test_a_key_is_shown_once_and_stored_as_an_hmac(world):
    world.store.create_merchant(Merchant(9, "m", None, NOW))
    record, value = apikeys.create_key(world.store, PEPPER, 9, NOW, max_enabled=3)
    assert value not in record.key_hash and len(record.key_hash) == 64
    assert apikeys.authenticate(world.core, 9, record.key_id, value) == record


def test_every_refusal_is_the_same(world):
    world.store.create_merchant(Merchant(9, "m", None, NOW))
    record, value = apikeys.create_key(world.store, PEPPER, 9, NOW, max_enabled=3)
    for merchant_id, key_id, key in (
        (9, record.key_id, value + "x"),
        (8, record.key_id, value),
        (9, record.key_id + 1, value),
    ):
        with pytest.raises(InvalidClient) as err:
            apikeys.authenticate(world.core, merchant_id, key_id, key)
        assert err.value.reason == "bad_api_key"
