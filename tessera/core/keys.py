"""The server's signing and encryption keys: creation, rotation, and the cached runtime view.

Each use ("sig", "enc") has one *current* key (signs / is advertised first), one *next*
key (already published, so clients and resource servers learn it before it is used),
and *retired* keys that stay published until everything made for them has expired.
``rotate`` promotes next → current, retires the old current, and publishes a new next.
Private keys are sealed under the key-encryption key at rest and parsed once per process.

Rings: the shared ring signs every profile's tokens except those of a profile with a ring
of its own (``tessera.jose.keyset.PROFILE_RINGS``: MobilePay, RS256). A ring key carries a
self-signed X.509 certificate (its ``x5c``/``x5t``, as MobilePay's published keys do): a
certificate is what the provider's clients expect to find, and verifiers pin the key through
the JWKS, not a chain; self-signed keeps token signing independent of the developer CA (whose
key signs client certificates, a different job, and may be kept offline). The ring and the
certificate are recorded in the stored key's public JWK (``x5c``, ``x5t``, and
:data:`RING_MEMBER`, never published: the JWKS is derived from the key itself), so homes made
before rings existed need no schema change. Such a home gets its ring keys the first time a
process loads the keys (:meth:`KeyRing.reload` → :func:`ensure_ring_keys`); workers that race
to do so each save a pair, and the oldest current key wins everywhere (the others are
published as next keys, and retired by the next rotation).
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from joserfc.jwk import RSAKey

from tessera.core.models import StoredKey
from tessera.core.ports import KeyStore
from tessera.jose.keys import (
    AsymmetricKey,
    generate_encryption_key,
    generate_signing_key,
    open_private_key,
    public_jwk,
    seal_private_key,
)
from tessera.jose.keyset import PROFILE_RINGS, ManagedKey, ServerKeys, x5t_of

USES = ("sig", "enc")
#: The member of a stored key's public JWK that names its ring (absent: the shared ring).
RING_MEMBER = "tessera_ring"
#: Validity of a ring key's self-signed certificate; rotation replaces keys long before.
CERT_DAYS = 5 * 365


def ring_of(k: StoredKey) -> str | None:
    ring = k.public_jwk.get(RING_MEMBER) if isinstance(k.public_jwk, dict) else None
    return ring if isinstance(ring, str) else None


def _self_signed(key: RSAKey, ring: str, now: int) -> str:
    """A self-signed certificate for ``key`` (a joserfc RSA key), base64 DER (``x5c`` form)."""
    private, kid = key.private_key, key.kid
    if private is None or kid is None:
        raise ValueError("a ring key is a private key with a kid")
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tessera"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"tessera {ring} token signing {kid[:16]}"),
        ]
    )
    start = datetime.fromtimestamp(now, tz=UTC) - timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1 or 1)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(private, hashes.SHA256())
    )
    from cryptography.hazmat.primitives.serialization import Encoding

    return base64.b64encode(cert.public_bytes(Encoding.DER)).decode("ascii")


def _new_stored_key(
    use: str, status: str, *, alg: str, bits: int, kek: bytes, now: int, ring: str | None = None
) -> StoredKey:
    if ring is not None:
        alg = PROFILE_RINGS[ring]
    key = generate_signing_key(alg) if use == "sig" else generate_encryption_key(bits)
    jwk = public_jwk(key)
    if ring is not None:
        if not isinstance(key, RSAKey):
            raise ValueError(f"the {ring} ring signs with RSA")
        cert = _self_signed(key, ring, now)
        jwk.update(x5c=[cert], x5t=x5t_of(base64.b64decode(cert)), **{RING_MEMBER: ring})
    return StoredKey(
        kid=jwk["kid"],
        use=use,
        alg=jwk["alg"],
        status=status,
        public_jwk=jwk,
        sealed_private=seal_private_key(key, kek),
        created_at=now,
    )


def create_initial_keys(store: KeyStore, kek: bytes, *, signing_alg: str, enc_bits: int, now: int) -> list[StoredKey]:
    """A current and a next key for each use, and for each profile ring (``tessera init``)."""
    keys = [
        _new_stored_key(use, status, alg=signing_alg, bits=enc_bits, kek=kek, now=now)
        for use in USES
        for status in ("current", "next")
    ]
    keys += [
        _new_stored_key("sig", status, alg=PROFILE_RINGS[ring], bits=enc_bits, kek=kek, now=now, ring=ring)
        for ring in PROFILE_RINGS
        for status in ("current", "next")
    ]
    store.save_server_keys(keys)
    return keys


def _missing(stored: list[StoredKey]) -> list[tuple[str, str]]:
    """(ring, status) pairs that a profile ring lacks: a current key, a next key."""
    out = []
    for ring in PROFILE_RINGS:
        have = {k.status for k in stored if k.use == "sig" and ring_of(k) == ring}
        out += [(ring, status) for status in ("current", "next") if status not in have]
    return out


def ensure_ring_keys(
    store: KeyStore, kek: bytes, *, now: int, stored: list[StoredKey] | None = None
) -> list[StoredKey]:
    """Create what a profile ring lacks (a home made before the ring existed): a current and a
    next key. Returns the keys created (none when nothing was missing)."""
    stored = store.list_server_keys() if stored is None else stored
    created = [
        _new_stored_key("sig", status, alg=PROFILE_RINGS[ring], bits=2048, kek=kek, now=now, ring=ring)
        for ring, status in _missing(stored)
    ]
    if created:
        store.save_server_keys(created)
    return created


def rotate(
    store: KeyStore, kek: bytes, use: str, *, retain_seconds: int, signing_alg: str, enc_bits: int, now: int
) -> dict[str, Any]:
    """Promote the next key of ``use``, retire the current one for ``retain_seconds``, publish a new next.

    ``sig`` rotates every signing ring: the shared one and each profile's (``rings`` in the
    result, e.g. MobilePay's RS256 key with its certificate), each publishing its new next key
    before it is promoted by the following rotation. Returns the kids involved (the shared
    ring's at the top level, as before). All changes land in one transaction.
    """
    if use not in USES:
        raise ValueError("use must be 'sig' or 'enc'")
    stored = [k for k in store.list_server_keys() if k.use == use]
    changes: list[StoredKey] = []
    result = _rotate_ring(
        [k for k in stored if ring_of(k) is None],
        changes,
        use,
        None,
        retain_seconds=retain_seconds,
        alg=signing_alg,
        bits=enc_bits,
        kek=kek,
        now=now,
    )
    if use == "sig":
        result["rings"] = {
            ring: _rotate_ring(
                [k for k in stored if ring_of(k) == ring],
                changes,
                use,
                ring,
                retain_seconds=retain_seconds,
                alg=PROFILE_RINGS[ring],
                bits=enc_bits,
                kek=kek,
                now=now,
            )
            for ring in PROFILE_RINGS
        }
    store.save_server_keys(changes)
    return result


def _rotate_ring(
    keys: list[StoredKey],
    changes: list[StoredKey],
    use: str,
    ring: str | None,
    *,
    retain_seconds: int,
    alg: str,
    bits: int,
    kek: bytes,
    now: int,
) -> dict[str, Any]:
    current = sorted((k for k in keys if k.status == "current"), key=lambda k: (k.created_at, k.kid))
    nxt = sorted((k for k in keys if k.status == "next"), key=lambda k: (k.created_at, k.kid))
    retired = None
    for k in current:  # one, unless workers raced to create a ring (see ensure_ring_keys)
        changes.append(replace(k, status="retired", retire_at=now + retain_seconds))
        retired = retired or changes[-1]
    if nxt:
        promoted = replace(nxt[0], status="current")
    else:  # a home made before "next" keys existed, or a damaged one: make a current now
        promoted = _new_stored_key(use, "current", alg=alg, bits=bits, kek=kek, now=now, ring=ring)
    changes.append(promoted)
    new_next = _new_stored_key(use, "next", alg=alg, bits=bits, kek=kek, now=now, ring=ring)
    changes.append(new_next)
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

    def __init__(self, store: KeyStore, kek: bytes, *, refresh_seconds: float = 10.0) -> None:
        self._store = store
        self._kek = kek
        self._refresh = refresh_seconds
        self._parsed: dict[str, AsymmetricKey] = {}
        self._keys: ServerKeys | None = None
        self._fingerprint: tuple[tuple[str, str, int | None], ...] = ()
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
            if _missing(stored) and any(k.use == "sig" for k in stored):  # a home made before the rings
                ensure_ring_keys(self._store, self._kek, now=int(time.time()), stored=stored)
                stored = self._store.list_server_keys()
            fingerprint = tuple((k.kid, k.status, k.retire_at) for k in stored)
            if self._keys is None or fingerprint != self._fingerprint:
                now = int(time.time())
                managed = []
                winners: dict[tuple[str, str | None], StoredKey] = {}
                for k in sorted((k for k in stored if k.status == "current"), key=lambda k: (k.created_at, k.kid)):
                    winners.setdefault((k.use, ring_of(k)), k)
                for k in stored:
                    if k.status == "retired" and k.retire_at is not None and k.retire_at <= now:
                        continue
                    key = self._parsed.get(k.kid)
                    if key is None:
                        key = open_private_key(k.sealed_private, self._kek, k.kid)
                        self._parsed[k.kid] = key
                    retire_at = datetime.fromtimestamp(k.retire_at, tz=UTC) if k.retire_at else None
                    status = k.status
                    if status == "current" and winners[(k.use, ring_of(k))] is not k:
                        status = "next"  # a raced duplicate: published, never signing
                    managed.append(
                        ManagedKey(
                            kid=k.kid,
                            use=k.use,
                            alg=k.alg,
                            status=status,
                            key=key,
                            retire_at=retire_at,
                            ring=ring_of(k),
                            x5c=tuple(k.public_jwk.get("x5c") or ()),
                        )
                    )
                self._keys = ServerKeys(managed)
                self._fingerprint = fingerprint
            self._loaded_at = time.monotonic()
            return self._keys
