"""``Idempotency-Key`` on the admin API's creates: the same key and body within
``WINDOW`` seconds gets the first answer again (status and body), without a second create;
the same key with another body is refused (``IdempotencyMismatch``, 422); a retry while the
first request runs is a ``Conflict`` (409).

The record is a single-use artefact (``Kind.ADMIN_IDEMPOTENCY``) keyed by the SHA-256 of the
operator client, the operation and the key, so one operator's key never meets another's.
A first answer may hold a secret shown once (a client secret, an axept key): it is never
stored in clear. The answer is sealed with AES-256-GCM under a key derived from the server's
pepper and the ``Idempotency-Key`` itself (HMAC-SHA256), which the server does not keep: a
copy of the database, even with the pepper, opens no answer without the caller's key, and
only the caller who holds the key (and retries within the window) gets the secret again.
The body is compared by its SHA-256."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tessera.admin.context import Admin
from tessera.admin.errors import AdminError, Conflict, Invalid
from tessera.core.kinds import Kind
from tessera.core.models import Artifact
from tessera.core.ports import Conflict as StoreConflict

#: How long a key's first answer is replayed (seconds).
WINDOW = 24 * 3600
KIND = Kind.ADMIN_IDEMPOTENCY.value
MAX_KEY = 255


class IdempotencyMismatch(AdminError):
    """The ``Idempotency-Key`` was used with another body (RFC draft-ietf-httpapi-idempotency-key: 422)."""

    code = "idempotency_mismatch"


@dataclass(frozen=True)
class Replay:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Pending:
    """A key claimed for a first request: ``remember`` its answer (or ``forget`` it on a failure)."""

    record_key: str
    secret_key: bytes
    digest: str


def check_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_KEY or not all(0x20 < ord(ch) < 0x7F for ch in key):
        raise Invalid(f"must be 1 to {MAX_KEY} visible ASCII characters", field="Idempotency-Key")


def _record_key(actor: str, operation: str, key: str) -> str:
    return hashlib.sha256(f"{actor}\x00{operation}\x00{key}".encode()).hexdigest()


def _sealing_key(admin: Admin, actor: str, operation: str, key: str) -> bytes:
    message = f"tessera-admin-idempotency\x00{actor}\x00{operation}\x00{key}".encode()
    return hmac.new(admin.settings.pepper_bytes(), message, hashlib.sha256).digest()


def begin(admin: Admin, operation: str, key: str, body: bytes) -> Replay | Pending:
    """The first answer to replay, or the claim of ``key`` for a first request."""
    check_key(key)
    actor = admin.actor or ""
    record_key = _record_key(actor, operation, key)
    digest = hashlib.sha256(body).hexdigest()
    pending = Pending(record_key, _sealing_key(admin, actor, operation, key), digest)
    now = admin.now()
    fresh = {"digest": digest, "at": now, "state": "pending"}
    existing = admin.store.get_artifact(KIND, record_key)
    if existing is None:
        try:
            admin.store.put_artifact(Artifact(KIND, record_key, actor, fresh, now + WINDOW))
        except StoreConflict:  # another request claimed it first
            existing = admin.store.get_artifact(KIND, record_key)
        else:
            return pending
    assert existing is not None
    data = existing.data
    if int(data.get("at", 0)) + WINDOW <= now or data.get("state") == "failed":
        admin.store.update_artifact_data(KIND, record_key, fresh)  # lapsed or failed: a first request again
        return pending
    if not hmac.compare_digest(str(data.get("digest", "")), digest):
        raise IdempotencyMismatch("this Idempotency-Key was used with another request body", field="Idempotency-Key")
    if data.get("state") != "done":
        raise Conflict("a request with this Idempotency-Key is still being processed; retry shortly")
    try:
        nonce = base64.b64decode(data["nonce"])
        plain = AESGCM(pending.secret_key).decrypt(nonce, base64.b64decode(data["sealed"]), record_key.encode())
    except (KeyError, ValueError, InvalidTag):
        raise Conflict("the first answer to this Idempotency-Key cannot be replayed") from None
    return Replay(int(data["status"]), orjson.loads(plain))


def remember(admin: Admin, pending: Pending, status: int, body: dict[str, Any]) -> None:
    """Seal the first answer for its replays."""
    nonce = os.urandom(12)
    sealed = AESGCM(pending.secret_key).encrypt(nonce, orjson.dumps(body), pending.record_key.encode())
    admin.store.update_artifact_data(
        KIND,
        pending.record_key,
        {
            "digest": pending.digest,
            "at": admin.now(),
            "state": "done",
            "status": status,
            "nonce": base64.b64encode(nonce).decode(),
            "sealed": base64.b64encode(sealed).decode(),
        },
    )


def forget(admin: Admin, pending: Pending) -> None:
    """The first request failed unexpectedly: the key may be used again."""
    admin.store.update_artifact_data(KIND, pending.record_key, {"digest": pending.digest, "state": "failed"})
