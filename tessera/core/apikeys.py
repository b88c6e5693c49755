"""axept authentication keys: per merchant, at most N enabled, stored only as an HMAC.

``authenticate`` is the ``axept_api_key`` method of the registry in ``tessera.core.client_auth``.

``authenticate`` gives the same answer, after the same work, whichever of merchantId,
keyId or key was wrong, and for a disabled key.
"""

from __future__ import annotations

from tessera.core.context import Core
from tessera.core.models import ApiKey
from tessera.core.ports import ApiKeyStore
from tessera.core.secrets import PepperLike, generate_secret, hash_secret, needs_rehash, verify_secret
from tessera.errors import InvalidClient


def create_key(
    store: ApiKeyStore, pepper: PepperLike, merchant_id: int, now: int, *, max_enabled: int, value: str | None = None
) -> tuple[ApiKey, str]:
    """A new key: (record, the value — shown to the caller once and never again). ``value``: a
    fixed value (checked by ``tessera.admin.fixed``) instead of a generated one."""
    value = value if value is not None else generate_secret()
    record = store.create_api_key(merchant_id, hash_secret(value, pepper), now, max_enabled=max_enabled)
    return record, value


def authenticate(core: Core, merchant_id: int, key_id: int, key: str) -> ApiKey:
    record = core.api_key(merchant_id, key_id)
    ok = verify_secret(key, record.key_hash if record else None, core.pepper)
    if record is None or not ok or not record.enabled:
        raise InvalidClient("the merchantId, keyId and key are not valid", reason="bad_api_key")
    store = core.caps.rehash
    if store is not None and needs_rehash(record.key_hash, core.pepper):
        try:  # pepper rotation (tessera pepper): moved to the current pepper on use
            store.rehash_api_key(merchant_id, key_id, record.key_hash, hash_secret(key, core.pepper))
        except Exception:  # noqa: BLE001 - never fail an authentication that succeeded
            pass
    return record
