"""The server's signing and encryption keys: creation, rotation, and the cached runtime view.

Each use ("sig", "enc") has one *current* key (signs / is advertised first), one *next*
key (already published, so clients and resource servers learn it before it is used),
and *retired* keys that stay published until everything made for them has expired.
``rotate`` promotes next → current, retires the old current, and publishes a new next.
Private keys are sealed under the key-encryption key at rest and parsed once per process.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import datetime, timezone

from tessera.core.models import StoredKey
from tessera.jose.keys import (
    generate_encryption_key,
    generate_signing_key,
    open_private_key,
    public_jwk,
    seal_private_key,
)
from tessera.jose.keyset import ManagedKey, ServerKeys

USES = ("sig", "enc")


def _new_stored_key(use: str, status: str, *, alg: str, bits: int, kek: bytes, now: int) -> StoredKey:
    key = generate_signing_key(alg) if use == "sig" else generate_encryption_key(bits)
    jwk = public_jwk(key)
    return StoredKey(
        kid=jwk["kid"], use=use, alg=jwk["alg"], status=status, public_jwk=jwk,
        sealed_private=seal_private_key(key, kek), created_at=now,
    )


def create_initial_keys(store, kek: bytes, *, signing_alg: str, enc_bits: int, now: int) -> list[StoredKey]:
    """A current and a next key for each use (``tessera init``)."""
    keys = [
        _new_stored_key(use, status, alg=signing_alg, bits=enc_bits, kek=kek, now=now)
        for use in USES
        for status in ("current", "next")
    ]
    store.save_server_keys(keys)
    return keys


def rotate(store, kek: bytes, use: str, *, retain_seconds: int, signing_alg: str, enc_bits: int, now: int) -> dict:
    """Promote the next key of ``use``, retire the current one for ``retain_seconds``, publish a new next.

    Returns the kids involved. All changes land in one transaction.
    """
    if use not in USES:
        raise ValueError("use must be 'sig' or 'enc'")
    keys = [k for k in store.list_server_keys() if k.use == use]
    current = [k for k in keys if k.status == "current"]
    nxt = [k for k in keys if k.status == "next"]
    changes: list[StoredKey] = []
    retired = None
    if current:
        retired = replace(current[0], status="retired", retire_at=now + retain_seconds)
        changes.append(retired)
    if nxt:
        promoted = replace(nxt[0], status="current")
    else:  # a home made before "next" keys existed, or a damaged one: make a current now
        promoted = _new_stored_key(use, "current", alg=signing_alg, bits=enc_bits, kek=kek, now=now)
    changes.append(promoted)
    new_next = _new_stored_key(use, "next", alg=signing_alg, bits=enc_bits, kek=kek, now=now)
    changes.append(new_next)
    store.save_server_keys(changes)
    return {
        "use": use,
        "retired": retired.kid if retired else None,
        "retire_at": retired.retire_at if retired else None,
        "current": promoted.kid,
        "next": new_next.kid,
    }


class KeyRing:
    """The process's view of the server keys, reloaded from the store every few seconds.

    Parsed private keys are cached by kid, so a reload after a rotation parses only the
    new key (an RSA private key costs tens of milliseconds to load).
    """

    def __init__(self, store, kek: bytes, *, refresh_seconds: float = 10.0):
        self._store = store
        self._kek = kek
        self._refresh = refresh_seconds
        self._parsed: dict[str, object] = {}
        self._keys: ServerKeys | None = None
        self._fingerprint: tuple = ()
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def get(self) -> ServerKeys:
        keys = self._keys
        if keys is None or time.monotonic() - self._loaded_at > self._refresh:
            return self.reload()
        return keys

    def reload(self) -> ServerKeys:
        with self._lock:
            stored = self._store.list_server_keys()
            fingerprint = tuple((k.kid, k.status, k.retire_at) for k in stored)
            if self._keys is None or fingerprint != self._fingerprint:
                now = int(time.time())
                managed = []
                for k in stored:
                    if k.status == "retired" and k.retire_at is not None and k.retire_at <= now:
                        continue
                    key = self._parsed.get(k.kid)
                    if key is None:
                        key = open_private_key(k.sealed_private, self._kek, k.kid)
                        self._parsed[k.kid] = key
                    retire_at = datetime.fromtimestamp(k.retire_at, tz=timezone.utc) if k.retire_at else None
                    managed.append(ManagedKey(kid=k.kid, use=k.use, alg=k.alg, status=k.status, key=key, retire_at=retire_at))
                self._keys = ServerKeys(managed)
                self._fingerprint = fingerprint
            self._loaded_at = time.monotonic()
            return self._keys
