"""axept authentication keys, per merchant.

Rules: at most ``axept_max_enabled_keys`` (3) enabled at once; a key's value is generated
here (256 bits), shown once and stored only as an HMAC; disabling the merchant's last enabled
key locks it out, so it needs an explicit confirmation (``ConfirmationRequired`` without)."""

from __future__ import annotations

from dataclasses import dataclass

from tessera.admin.context import Admin
from tessera.admin.errors import ConfirmationRequired, Conflict, Invalid, NotFound
from tessera.admin.fixed import check_secret
from tessera.core import apikeys
from tessera.core.models import ApiKey
from tessera.core.ports import Conflict as StoreConflict


@dataclass(frozen=True)
class CreatedKey:
    """``key`` is shown this once."""

    merchant_id: int
    key_id: int
    key: str


@dataclass(frozen=True)
class KeyInfo:
    """A key without its value or hash."""

    merchant_id: int
    key_id: int
    enabled: bool
    created_at: int
    disabled_at: int | None
    #: When the key last got a token (to the minute: see ``tessera.core.key_usage``); None: never.
    last_used_at: int | None = None

    @classmethod
    def of(cls, k: ApiKey) -> KeyInfo:
        return cls(k.merchant_id, k.key_id, k.enabled, k.created_at, k.disabled_at, k.last_used_at)


def _merchant_exists(admin: Admin, merchant_id: int) -> None:
    if admin.store.get_merchant(merchant_id) is None:
        raise NotFound(f"no merchant {merchant_id}")


def create_key(admin: Admin, merchant_id: int, *, key_id: int | None = None, value: str | None = None) -> CreatedKey:
    """A new enabled key with the merchant's next key id. ``key_id``: the id the caller expects
    (a sandbox's fixtures): refused unless it is that next id (ids are given in order, from 1).
    ``value``: a fixed key value instead of a generated one (``tessera.admin.fixed``: staging
    homes only), stored as an HMAC as usual."""
    _merchant_exists(admin, merchant_id)
    if value is not None:
        check_secret(admin, value, field="key")
    if key_id is not None:
        expected = max((k.key_id for k in admin.store.list_api_keys(merchant_id)), default=0) + 1
        if key_id != expected:
            raise Invalid(f"must be {expected}: a merchant's key ids are given in order, from 1", field="key_id")
    try:
        record, value = apikeys.create_key(
            admin.store,
            admin.settings.peppers(),
            merchant_id,
            admin.now(),
            max_enabled=admin.settings.axept_max_enabled_keys,
            value=value,
        )
    except StoreConflict as e:
        raise Conflict(str(e)) from None
    admin.record("api_key.create", merchant_id=record.merchant_id, key_id=record.key_id)
    return CreatedKey(record.merchant_id, record.key_id, value)


def list_keys(admin: Admin, merchant_id: int) -> list[KeyInfo]:
    return [KeyInfo.of(k) for k in admin.store.list_api_keys(merchant_id)]


def set_key_enabled(
    admin: Admin, merchant_id: int, key_id: int, enabled: bool, *, confirm_last: bool = False
) -> KeyInfo:
    """Enable or disable one key. Disabling the last enabled key needs ``confirm_last``;
    enabling one beyond the limit is a ``Conflict``."""
    keys = admin.store.list_api_keys(merchant_id)
    if not any(k.key_id == key_id for k in keys):
        raise NotFound(f"merchant {merchant_id} has no key {key_id}")
    others_enabled = [k for k in keys if k.enabled and k.key_id != key_id]
    if not enabled and not others_enabled and not confirm_last:
        raise ConfirmationRequired(
            f"key {key_id} is merchant {merchant_id}'s last enabled key: disabling it locks the merchant out"
        )
    try:
        record = admin.store.set_api_key_enabled(
            merchant_id, key_id, enabled, admin.now(), max_enabled=admin.settings.axept_max_enabled_keys
        )
    except StoreConflict as e:
        raise Conflict(str(e)) from None
    admin.record("api_key.enable" if enabled else "api_key.disable", merchant_id=merchant_id, key_id=key_id)
    return KeyInfo.of(record)


def disable_key(admin: Admin, merchant_id: int, key_id: int, *, confirm_last: bool = False) -> KeyInfo:
    """Disable a (compromised) key: refused from the next request on."""
    return set_key_enabled(admin, merchant_id, key_id, False, confirm_last=confirm_last)


def enable_key(admin: Admin, merchant_id: int, key_id: int) -> KeyInfo:
    return set_key_enabled(admin, merchant_id, key_id, True)
