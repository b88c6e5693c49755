"""Admission policy for client-certificate signing requests.

:func:`check_csr` is the only gate between an uploaded CSR and the CA's
signing key, so it refuses anything a client certificate should not be:

* anything that does not parse as a PKCS#10 request (PEM or DER);
* a request whose self-signature does not verify (no proof of possession);
* RSA keys under 2048 bits, EC keys on curves other than P-256 / P-384,
  and every other key type (DSA, Ed25519, Ed448, X25519, ...);
* a request for ``basicConstraints CA:TRUE``;
* a request for ``keyUsage`` ``keyCertSign`` or ``cRLSign``;
* an ``extendedKeyUsage`` that lists anything other than ``clientAuth``.

A request with no ``extendedKeyUsage`` at all is accepted: the CA decides
the issued certificate's extensions itself and never copies them from the
request (see :meth:`tessera.ca.authority.CertificateAuthority.sign_csr`).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

__all__ = ["CSRRejected", "check_csr", "MIN_RSA_BITS", "ALLOWED_EC_CURVES"]

MIN_RSA_BITS = 2048
ALLOWED_EC_CURVES: dict[type[ec.EllipticCurve], str] = {
    ec.SECP256R1: "P-256",
    ec.SECP384R1: "P-384",
}


class CSRRejected(ValueError):
    """The CSR was refused; :attr:`reason` says why in a short human sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_csr(csr_pem: bytes) -> x509.CertificateSigningRequest:
    """Parse a CSR (PEM or DER) and return it if the CA may sign it.

    Raises :class:`CSRRejected` otherwise.
    """
    csr = _parse(csr_pem)
    _check_signature(csr)
    _check_key(csr)
    _check_extensions(csr)
    return csr


def _parse(data: object) -> x509.CertificateSigningRequest:  # bytes; anything else is refused
    if isinstance(data, str):
        data = data.encode("ascii", "replace")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CSRRejected("the CSR must be given as PEM or DER bytes")
    data = bytes(data)
    if not data.strip():
        raise CSRRejected("the CSR is empty")
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CSRRejected("not a PKCS#10 certificate signing request (PEM or DER)") from exc


def _check_signature(csr: x509.CertificateSigningRequest) -> None:
    try:
        valid = csr.is_signature_valid
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CSRRejected("the CSR's self-signature cannot be checked") from exc
    if not valid:
        raise CSRRejected("the CSR's self-signature does not verify")


def _check_key(csr: x509.CertificateSigningRequest) -> None:
    try:
        key = csr.public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CSRRejected("the CSR's public key is of an unsupported or invalid type") from exc
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CSRRejected(f"RSA key is {key.key_size} bits; {MIN_RSA_BITS} is the minimum")
        return
    if isinstance(key, ec.EllipticCurvePublicKey):
        if type(key.curve) not in ALLOWED_EC_CURVES:
            raise CSRRejected(f"EC key is on curve {key.curve.name}; only P-256 and P-384 are accepted")
        return
    raise CSRRejected(
        f"{type(key).__name__.removeprefix('_')} keys are not accepted; use RSA (2048+) or EC P-256/P-384"
    )


def _check_extensions(csr: x509.CertificateSigningRequest) -> None:
    try:
        extensions = csr.extensions
    except (ValueError, TypeError, x509.DuplicateExtension, UnsupportedAlgorithm) as exc:
        raise CSRRejected("the CSR's requested extensions cannot be parsed") from exc

    for ext in extensions:
        value = ext.value
        if isinstance(value, x509.BasicConstraints) and value.ca:
            raise CSRRejected("the CSR asks for a CA certificate (basicConstraints CA:TRUE)")
        if isinstance(value, x509.KeyUsage) and (value.key_cert_sign or value.crl_sign):
            raise CSRRejected("the CSR asks for keyUsage keyCertSign or cRLSign")
        if isinstance(value, x509.ExtendedKeyUsage):
            others = [oid for oid in value if oid != ExtendedKeyUsageOID.CLIENT_AUTH]
            if others:
                names = ", ".join(_oid_name(oid) for oid in others)
                raise CSRRejected(f"the CSR asks for extendedKeyUsage {names}; only clientAuth is allowed")


_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
}


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    return _EKU_NAMES.get(oid, oid.dotted_string)
