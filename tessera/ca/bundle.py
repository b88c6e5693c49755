"""The trust bundle ``ca.pem``: the CA certificates whose client certificates are accepted.

Normally one certificate. While the CA is rotated it holds the new CA first and the old one
after it, so that certificates of both are trusted (the embedded TLS server and nginx read every
certificate of the file); the old one leaves the bundle when it is retired."""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from .formats import cert_to_pem, serial_hex


def read_bundle(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem)


def bundle_pem(certs: list[x509.Certificate]) -> bytes:
    return b"".join(cert_to_pem(c) for c in certs)


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether ``ca`` signed ``cert`` (its name and its signature)."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def find(certs: list[x509.Certificate], serial: str) -> x509.Certificate | None:
    wanted = serial.lower().removeprefix("0x").lstrip("0")
    for c in certs:
        if serial_hex(c).lstrip("0") == wanted:
            return c
    return None


def expired(cert: x509.Certificate, now: datetime) -> bool:
    return cert.not_valid_after_utc <= now
