"""Machine credentials and people's passwords.

Machine credentials (client secrets, API keys, B2BINPAY passwords) are generated here
with 256 bits of entropy, stored as HMAC-SHA256 under a server pepper and compared in
constant time: a slow hash would cap the token endpoint at a handful of requests per
second per core, and buys nothing against a 256-bit random value. Passwords chosen by
people (merchant users) use argon2id.

Peppers are versioned (``Peppers``): a stored hash records the id of the pepper it was made
under (``p<id>$<hex>``; a bare 64-digit hex is pepper 1, the format of every hash made before
versions), a check uses the recorded pepper, and ``needs_rehash`` tells the caller to store the
secret again under the current pepper after it verified. So a new pepper takes over one
credential at a time, as each is used, and an old pepper is retired once no hash needs it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

SECRET_BYTES = 32

_hasher = PasswordHasher()  # argon2id, the library's current RFC 9106 defaults


#: An argon2id hash, made with the hasher's parameters, of a random password that nobody kept:
#: what an unknown username's login is verified against, so that it costs what a known user's
#: does. It is never accepted (``verify_password`` answers False without a stored hash); it is
#: a constant so that no process pays an argon2id hash (~0.2 s of CPU) to make one at start.
DUMMY_PASSWORD_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$4YdLKkmXH6+Y5OX/8CTZcw$x1TbjZvI7Man9cNwAn8ZwhE4eMKOpaQNZvzv7hPkrmE"
)


def _same_cost(stored: str) -> bool:
    """Whether ``stored`` was made with the hasher's own parameters (so verifies at its cost)."""
    p = extract_parameters(stored)
    h = _hasher
    return (p.type, p.time_cost, p.memory_cost, p.parallelism, p.hash_len, p.salt_len) == (
        h.type,
        h.time_cost,
        h.memory_cost,
        h.parallelism,
        h.hash_len,
        h.salt_len,
    )


@functools.cache
def dummy_password_hash() -> str:
    """The hash an unknown username's password is verified against: ``DUMMY_PASSWORD_HASH``
    while it carries the hasher's parameters; should a new argon2-cffi change its defaults, a
    hash of a random password made once, on first use, with the new ones."""
    if _same_cost(DUMMY_PASSWORD_HASH):
        return DUMMY_PASSWORD_HASH
    return _hasher.hash(secrets.token_urlsafe(16))


def generate_secret() -> str:
    """A new machine credential: 256 random bits, base64url."""
    return secrets.token_urlsafe(SECRET_BYTES)


def generate_client_id() -> str:
    """A new client id: 144 random bits, base64url, never beginning with ``-``. An id is typed
    as a command's argument (``tessera clients rotate-secret ID``), where a leading ``-`` reads
    as an option: one id in 64 would have been refused so (seen in a test run)."""
    while True:
        client_id = secrets.token_urlsafe(18)
        if not client_id.startswith("-"):
            return client_id


#: The pepper id of a hash without a recorded one (every hash made before versions).
LEGACY_PEPPER_ID = 1
_VERSIONED = re.compile(r"^p([1-9][0-9]{0,8})\$([0-9a-f]{64})$")


@dataclass(frozen=True)
class Peppers:
    """The current pepper (``current`` is its id) and the earlier ones still accepted."""

    current: int
    keys: Mapping[int, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise ValueError("the current pepper is not among the keys")

    @classmethod
    def single(cls, pepper: bytes) -> Peppers:
        return cls(LEGACY_PEPPER_ID, {LEGACY_PEPPER_ID: pepper})

    @property
    def current_key(self) -> bytes:
        return self.keys[self.current]


PepperLike = bytes | Peppers


def _peppers(pepper: PepperLike) -> Peppers:
    return pepper if isinstance(pepper, Peppers) else Peppers.single(pepper)


def pepper_id_of(stored: str) -> int | None:
    """The pepper id a stored hash records (1 for the bare legacy hex); None if malformed."""
    if len(stored) == 64:  # the hot path: a legacy hash (a malformed one fails the comparison anyway)
        return LEGACY_PEPPER_ID
    m = _VERSIONED.match(stored) if stored.startswith("p") else None
    return int(m.group(1)) if m else None


@functools.lru_cache(maxsize=16)  # a handful of peppers
def _keyed(key: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 keyed with a pepper, copied for each secret: a copy costs about two thirds
    of ``hmac.new`` (the key schedule is done once)."""
    return hmac.new(key, digestmod=hashlib.sha256)


def _hmac(secret: str, key: bytes) -> str:
    h = _keyed(key).copy()
    h.update(secret.encode("utf-8"))
    return h.hexdigest()


def hash_secret(secret: str, pepper: PepperLike) -> str:
    """The stored form of ``secret`` under the current pepper (bare hex for pepper 1)."""
    p = _peppers(pepper)
    digest = _hmac(secret, p.current_key)
    return digest if p.current == LEGACY_PEPPER_ID else f"p{p.current}${digest}"


def verify_secret(secret: str | None, stored: str | None, pepper: PepperLike) -> bool:
    """Constant-time check of a presented credential against its stored HMAC, under the
    pepper the hash records. A hash under a pepper that is not configured never verifies."""
    p = _peppers(pepper)
    pid = pepper_id_of(stored) if stored else None
    key = p.keys.get(pid) if pid is not None else None
    if not secret or not stored or key is None:
        # Still spend the HMAC so a missing secret costs the same as a wrong one.
        hmac.compare_digest(_hmac(secret or "", p.current_key), "0" * 64)
        return False
    return hmac.compare_digest(_hmac(secret, key), stored[-64:])


def needs_rehash(stored: str, pepper: PepperLike) -> bool:
    """Whether ``stored`` (which just verified) is under another pepper than the current one."""
    return pepper_id_of(stored) != _peppers(pepper).current


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
