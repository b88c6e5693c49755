"""tessera.ca.formats: encodings, checked against independent implementations."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from tessera.ca import cert_to_pem, serial_hex, to_pkcs7_pem, x5t_s256

from .helpers import build_csr


def test_x5t_s256_known_vector():
    # SHA-256 of the empty string, base64url without padding.
    assert x5t_s256(b"") == "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"


def test_x5t_s256_of_a_certificate(ca):
    der = ca.certificate.public_bytes(serialization.Encoding.DER)
    value = x5t_s256(der)
    assert "=" not in value and "+" not in value and "/" not in value
    assert len(value) == 43
    assert base64.urlsafe_b64decode(value + "=") == hashlib.sha256(der).digest()
    fingerprint = ca.certificate.fingerprint(hashes.SHA256())
    assert value == base64.urlsafe_b64encode(fingerprint).decode().rstrip("=")


def test_x5t_s256_wants_der_bytes(ca):
    with pytest.raises(TypeError):
        x5t_s256(ca.certificate)  # type: ignore[arg-type]


def test_cert_to_pem_round_trip(ca):
    pem = cert_to_pem(ca.certificate)
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----\n")
    assert x509.load_pem_x509_certificate(pem) == ca.certificate


def test_serial_hex(ca):
    s = serial_hex(ca.certificate)
    assert s == s.lower() and not s.startswith("0x")
    assert int(s, 16) == ca.certificate.serial_number


def test_pkcs7_bundle(ca, ec_key):
    leaf = ca.sign_csr(build_csr(ec_key)).certificate
    p7b = to_pkcs7_pem([leaf, ca.certificate])
    assert p7b.startswith(b"-----BEGIN PKCS7-----\n")
    assert p7b.rstrip().endswith(b"-----END PKCS7-----")
    # certificates is a DER SET OF, so the bundle's order is not the caller's order.
    assert set(pkcs7.load_pem_pkcs7_certificates(p7b)) == {leaf, ca.certificate}


def test_pkcs7_single_certificate(ca):
    assert pkcs7.load_pem_pkcs7_certificates(to_pkcs7_pem([ca.certificate])) == [ca.certificate]


def test_pkcs7_needs_a_certificate():
    with pytest.raises(ValueError):
        to_pkcs7_pem([])
