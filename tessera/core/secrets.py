"""Machine credentials and people's passwords.

Machine credentials (client secrets, API keys, B2BINPAY passwords) are generated here
with 256 bits of entropy, stored as HMAC-SHA256 under a server pepper and compared in
constant time: a slow hash would cap the token endpoint at a handful of requests per
second per core, and buys nothing against a 256-bit random value. Passwords chosen by
people (merchant users) use argon2id.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

SECRET_BYTES = 32

_hasher = PasswordHasher()  # argon2id, the library's current RFC 9106 defaults


@functools.cache
def dummy_password_hash() -> str:
    """A valid hash of a random password, verified when a username is unknown so that the
    answer takes as long as for a known one. Made on first use, not at import: every process
    that imports this module (each ``tessera`` command) would pay an argon2id hash for it."""
    return _hasher.hash(secrets.token_urlsafe(16))


def generate_secret() -> str:
    """A new machine credential: 256 random bits, base64url."""
    return secrets.token_urlsafe(SECRET_BYTES)


def generate_client_id() -> str:
    return secrets.token_urlsafe(18)


def hash_secret(secret: str, pepper: bytes) -> str:
    return hmac.new(pepper, secret.encode("utf-8"), hashlib.sha256).hexdigest()


def verify_secret(secret: str | None, stored: str | None, pepper: bytes) -> bool:
    """Constant-time check of a presented credential against its stored HMAC."""
    if not secret or not stored:
        # Still spend the HMAC so a missing secret costs the same as a wrong one.
        hmac.compare_digest(hash_secret(secret or "", pepper), "0" * 64)
        return False
    return hmac.compare_digest(hash_secret(secret, pepper), stored)


def sha256_key(value: str) -> str:
    """Storage key for a bearer artefact (codes, request_uris): its SHA-256, hex."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, stored: str | None) -> bool:
    try:
        return _hasher.verify(stored or dummy_password_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False
