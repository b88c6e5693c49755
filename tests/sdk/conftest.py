"""Fixtures for the SDK tests: developer certificates (made with ``cryptography``, no CA
needed for unit tests) and the platform's RSA encryption key as a jwcrypto JWK."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from jwcrypto import jwk


@dataclass
class DevCert:
    cert: Path
    key: Path
    cert_pem: bytes
    key_pem: bytes


def _self_signed(directory: Path, key_type: str) -> DevCert:
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if key_type == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "NOMEAPP")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "NOMEAPP.pem").write_bytes(cert_pem)
    (directory / "NOMEAPP.key").write_bytes(key_pem)
    return DevCert(directory / "NOMEAPP.pem", directory / "NOMEAPP.key", cert_pem, key_pem)


@pytest.fixture(scope="session")
def rsa_dev(tmp_path_factory) -> DevCert:
    return _self_signed(tmp_path_factory.mktemp("dev-rsa"), "rsa")


@pytest.fixture(scope="session")
def ec_dev(tmp_path_factory) -> DevCert:
    return _self_signed(tmp_path_factory.mktemp("dev-ec"), "ec")


@pytest.fixture(scope="session")
def enc_key() -> jwk.JWK:
    """The platform's private encryption key (the SDK only ever sees its public half)."""
    return jwk.JWK.generate(kty="RSA", size=2048, kid="enc-current", use="enc", alg="RSA-OAEP-256")


@pytest.fixture(scope="session")
def old_enc_key() -> jwk.JWK:
    return jwk.JWK.generate(kty="RSA", size=2048, kid="enc-old", use="enc", alg="RSA-OAEP-256")


@pytest.fixture(scope="session")
def jwks_body(enc_key, old_enc_key) -> dict:
    """As the server publishes it: a sig key, then the current enc key, then an older one."""
    sig = jwk.JWK.generate(kty="EC", crv="P-256", kid="sig-1", use="sig")
    return {
        "keys": [
            sig.export_public(as_dict=True),
            enc_key.export_public(as_dict=True),
            old_enc_key.export_public(as_dict=True),
        ]
    }
