"""Shared keys for the JOSE tests (generated once per session: RSA generation is slow)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tessera.jose import ManagedKey, ServerKeys, generate_encryption_key, generate_signing_key

NOW = datetime(2031, 3, 14, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Ring:
    """The server key set used by most tests, with handles on each key."""

    keys: ServerKeys
    sig_current: ManagedKey
    sig_next: ManagedKey
    sig_retired: ManagedKey  # retire_at = NOW + 1 day: still live at NOW
    sig_lapsed: ManagedKey  # retire_at = NOW - 1 day: gone at NOW
    enc_current: ManagedKey
    enc_next: ManagedKey
    enc_retired: ManagedKey
    enc_lapsed: ManagedKey


def managed(key, use: str, status: str, retire_at: datetime | None = None) -> ManagedKey:
    return ManagedKey(kid=key.kid, use=use, alg=key.alg, status=status, key=key, retire_at=retire_at)


@pytest.fixture(scope="session")
def ring() -> Ring:
    sig_current = managed(generate_signing_key("ES256"), "sig", "current")
    sig_next = managed(generate_signing_key("EdDSA"), "sig", "next")
    sig_retired = managed(generate_signing_key("RS256"), "sig", "retired", NOW + DAY)
    sig_lapsed = managed(generate_signing_key("ES256"), "sig", "retired", NOW - DAY)
    enc_current = managed(generate_encryption_key(), "enc", "current")
    enc_next = managed(generate_encryption_key(), "enc", "next")
    enc_retired = managed(generate_encryption_key(), "enc", "retired", NOW + DAY)
    enc_lapsed = managed(generate_encryption_key(), "enc", "retired", NOW - DAY)
    keys = ServerKeys([enc_lapsed, sig_retired, enc_next, sig_lapsed, sig_current, enc_retired, sig_next, enc_current])
    return Ring(keys, sig_current, sig_next, sig_retired, sig_lapsed, enc_current, enc_next, enc_retired, enc_lapsed)


@pytest.fixture(scope="session")
def client_rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def client_ec() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def other_rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def weak_rsa() -> rsa.RSAPrivateKey:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)
