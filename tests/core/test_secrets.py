"""tessera.core.secrets: machine credentials (256-bit, HMAC under the pepper, constant-time check)
and people's passwords (argon2id)."""

from __future__ import annotations

import base64
import hashlib

from tessera.core import secrets as s

PEPPER = b"p" * 32


def test_generated_credentials_are_256_bits_and_distinct():
    a, b = s.generate_secret(), s.generate_secret()
    assert a != b and len(base64.urlsafe_b64decode(a + "=" * (-len(a) % 4))) == s.SECRET_BYTES == 32
    assert len(s.generate_client_id()) == 24


def test_hmac_under_the_pepper_and_its_check():
    stored = s.hash_secret("value", PEPPER)
    assert len(stored) == 64 and stored != s.hash_secret("value", b"q" * 32)
    assert s.verify_secret("value", stored, PEPPER)
    assert not s.verify_secret("other", stored, PEPPER)
    assert not s.verify_secret(None, stored, PEPPER) and not s.verify_secret("", stored, PEPPER)
    assert not s.verify_secret("value", None, PEPPER)


def test_artefact_keys_are_sha256():
    assert s.sha256_key("urn:x") == hashlib.sha256(b"urn:x").hexdigest()


def test_passwords_are_argon2id():
    stored = s.hash_password("correct horse")
    assert stored.startswith("$argon2id$")
    assert s.verify_password("correct horse", stored)
    assert not s.verify_password("wrong", stored)
    assert not s.verify_password("correct horse", None)  # an unknown user: the dummy hash is spent, never accepted
    assert not s.verify_password("x", "not-a-hash")


def test_the_dummy_hash_costs_what_a_real_one_costs():
    """An unknown user's login is verified against the constant dummy hash: it must carry the
    hasher's own parameters (else it would verify faster or slower than a known user's hash)."""
    from argon2 import extract_parameters

    assert s.dummy_password_hash() == s.DUMMY_PASSWORD_HASH
    real = extract_parameters(s.hash_password("correct horse"))
    dummy = extract_parameters(s.DUMMY_PASSWORD_HASH)
    assert dummy == real  # type, version, time, memory, parallelism, lengths


def test_a_dummy_hash_of_other_parameters_is_replaced(monkeypatch):
    """Should argon2-cffi's defaults change, the constant is not used: a fresh hash is."""
    from argon2 import PasswordHasher

    monkeypatch.setattr(s, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    s.dummy_password_hash.cache_clear()
    try:
        made = s.dummy_password_hash()
        assert made != s.DUMMY_PASSWORD_HASH and made.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    finally:
        s.dummy_password_hash.cache_clear()


def test_a_client_id_never_begins_with_a_dash(monkeypatch):
    """A generated id that would begin with ``-`` (read as an option on a command line) is drawn again."""
    drawn = iter(["-leading-dash-id-xyzab", "Aplain-id-0123456789x"])
    monkeypatch.setattr(s.secrets, "token_urlsafe", lambda n: next(drawn))
    assert s.generate_client_id() == "Aplain-id-0123456789x"
    monkeypatch.undo()
    assert not any(s.generate_client_id().startswith("-") for _ in range(2000))
