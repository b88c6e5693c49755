"""Encodings of certificates that the rest of tessera hands out or compares.

Everything here is a pure function of a certificate: no keys, no I/O.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from tessera.sdk.mtls import thumbprint

__all__ = ["cert_to_pem", "serial_hex", "to_pkcs7_pem", "x5t_s256"]


def x5t_s256(cert_der: bytes) -> str:
    """Certificate thumbprint as used in the RFC 8705 ``cnf`` claim (``x5t#S256``): the
    SHA-256 digest of the certificate's DER, base64url without padding. The one
    implementation is :func:`tessera.sdk.mtls.thumbprint` (a leaf the SDK shares)."""
    return thumbprint(cert_der)


def to_pkcs7_pem(certs: list[x509.Certificate]) -> bytes:
    """A certs-only PKCS#7 (``SignedData`` with no signers) bundle, PEM encoded.

    The output starts with ``-----BEGIN PKCS7-----``; this is the ``.p7b``
    file that ``openssl pkcs7 -print_certs`` turns back into PEM certificates.
    The certificates field is a DER ``SET OF``, so a multi-certificate bundle
    need not keep the order of ``certs``.
    """
    certs = list(certs)
    if not certs:
        raise ValueError("a PKCS#7 bundle needs at least one certificate")
    return pkcs7.serialize_certificates(certs, serialization.Encoding.PEM)


def cert_to_pem(cert: x509.Certificate) -> bytes:
    """The certificate as a single PEM ``CERTIFICATE`` block."""
    return cert.public_bytes(serialization.Encoding.PEM)


def serial_hex(cert: x509.Certificate) -> str:
    """The serial number as lowercase hex, without ``0x`` and without padding."""
    return format(cert.serial_number, "x")
