"""axept keys: at most N enabled, the value shown once and stored as an HMAC, and disabling
the last enabled key only with an explicit confirmation."""

from __future__ import annotations

import pytest

from tessera import admin as ops
from tessera.admin import Admin, ConfirmationRequired, Conflict, CreateMerchant, NotFound
from tessera.core.secrets import verify_secret


@pytest.fixture
def merchant(admin: Admin) -> int:
    return ops.create_merchant(admin, CreateMerchant(7)).merchant_id


def test_value_shown_once_stored_as_hmac(admin: Admin, merchant: int) -> None:
    key = ops.create_key(admin, merchant)
    assert key.key_id == 1 and len(key.key) >= 43
    stored = admin.store.get_api_key(merchant, 1)
    assert stored is not None and stored.key_hash != key.key
    assert verify_secret(key.key, stored.key_hash, admin.settings.pepper_bytes())
    listed = ops.list_keys(admin, merchant)
    assert [(k.key_id, k.enabled, k.created_at) for k in listed] == [(1, True, admin.now())]
    assert not hasattr(listed[0], "key") and not hasattr(listed[0], "key_hash")


def test_at_most_the_configured_number_enabled(admin: Admin, merchant: int) -> None:
    limit = admin.settings.axept_max_enabled_keys
    for _ in range(limit):
        ops.create_key(admin, merchant)
    with pytest.raises(Conflict):
        ops.create_key(admin, merchant)
    ops.disable_key(admin, merchant, 1)
    fourth = ops.create_key(admin, merchant)
    assert fourth.key_id == limit + 1
    with pytest.raises(Conflict):  # enabling key 1 again would make limit + 1 enabled
        ops.enable_key(admin, merchant, 1)
    assert sum(k.enabled for k in ops.list_keys(admin, merchant)) == limit


def test_disabling_the_last_enabled_key_needs_confirmation(admin: Admin, merchant: int) -> None:
    ops.create_key(admin, merchant)
    ops.create_key(admin, merchant)
    assert not ops.disable_key(admin, merchant, 1).enabled  # another is still enabled
    with pytest.raises(ConfirmationRequired, match="last enabled key") as e:
        ops.disable_key(admin, merchant, 2)
    assert e.value.code == "confirmation_required"
    assert ops.list_keys(admin, merchant)[1].enabled  # nothing changed
    disabled = ops.disable_key(admin, merchant, 2, confirm_last=True)
    assert not disabled.enabled and disabled.disabled_at == admin.now()
    assert ops.enable_key(admin, merchant, 2).enabled


def test_unknown_merchant_and_key(admin: Admin, merchant: int) -> None:
    with pytest.raises(NotFound, match="no merchant 8"):
        ops.create_key(admin, 8)
    with pytest.raises(NotFound, match="merchant 7 has no key 1"):
        ops.disable_key(admin, merchant, 1, confirm_last=True)
