"""The developer certificate authority.

One CA key signs two kinds of leaf certificate:

* client certificates for mutual TLS, from a CSR the developer made
  (:meth:`CertificateAuthority.sign_csr`); the CA decides every extension and
  only the CSR's subject and public key are taken from the request;
* the server's own TLS certificate (:meth:`CertificateAuthority.issue_server_certificate`).

Datetimes given as ``now`` should be timezone-aware; a naive one is taken to
be UTC (the same convention as :mod:`cryptography`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
    PublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .csr import check_csr
from .formats import cert_to_pem, serial_hex, to_pkcs7_pem, x5t_s256

__all__ = ["CertificateAuthority", "IssuedCertificate", "MAX_LEAF_VALIDITY_DAYS"]

#: Upper bound on a leaf certificate's lifetime (the old CA/Browser Forum cap).
MAX_LEAF_VALIDITY_DAYS = 825
#: notBefore is backdated by this much to absorb clock skew between peers.
BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate the CA has just signed, with its common encodings."""

    certificate: x509.Certificate
    pem: bytes  #: PEM ``CERTIFICATE``
    p7b: bytes  #: ``to_pkcs7_pem([certificate])``, the provider's ``.p7b`` download
    serial: str  #: ``serial_hex``
    thumbprint: str  #: ``x5t_s256`` of the DER, for the RFC 8705 ``cnf`` claim
    not_before: datetime  #: aware, UTC
    not_after: datetime  #: aware, UTC
    subject: str  #: RFC 4514 string


class CertificateAuthority:
    """A CA certificate together with its private key."""

    def __init__(self, certificate: x509.Certificate, private_key: CertificateIssuerPrivateKeyTypes) -> None:
        if _public_der(private_key.public_key()) != _public_der(certificate.public_key()):
            raise ValueError("the private key does not belong to the CA certificate")
        self.certificate = certificate
        self.private_key = private_key

    # -- construction ---------------------------------------------------------

    @classmethod
    def generate(
        cls, common_name: str = "tessera development CA", *, validity_days: int = 3650
    ) -> CertificateAuthority:
        """A new self-signed CA on an EC P-256 key, allowed to sign leaves only."""
        if validity_days < 1:
            raise ValueError("validity_days must be at least 1")
        key = ec.generate_private_key(ec.SECP256R1())
        now = _utc(None)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(_new_serial())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + timedelta(days=validity_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def load(cls, cert_pem: bytes, key_pem: bytes, password: bytes | None = None) -> CertificateAuthority:
        """Load a CA from its PEM certificate and PEM (PKCS#8 or traditional) key.

        ``cert_pem`` may be a bundle (several CA certificates, as ``ca.pem`` is while a new CA
        and the old one are both trusted, see :mod:`tessera.ca.bundle`): the certificate of
        ``key_pem``'s key is the one loaded."""
        key = serialization.load_pem_private_key(key_pem, password=password)
        certs = x509.load_pem_x509_certificates(cert_pem)
        mine = [c for c in certs if _public_der(c.public_key()) == _public_der(key.public_key())]
        cert = mine[0] if mine else certs[0]  # none: __init__ refuses the pair
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        if bc is None or not bc.ca:
            raise ValueError("the certificate is not a CA certificate (basicConstraints CA:TRUE)")
        if not isinstance(
            key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)
        ):
            raise ValueError("the CA key must be an RSA, EC, Ed25519 or Ed448 key")
        return cls(cert, key)

    # -- export ---------------------------------------------------------------

    def certificate_pem(self) -> bytes:
        return cert_to_pem(self.certificate)

    def private_key_pem(self, password: bytes | None) -> bytes:
        """PKCS#8 PEM; encrypted with the best available scheme if ``password`` is given."""
        encryption: serialization.KeySerializationEncryption
        if password is None:
            encryption = serialization.NoEncryption()
        else:
            encryption = serialization.BestAvailableEncryption(password)
        return self.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)

    # -- issuing --------------------------------------------------------------

    def sign_csr(self, csr_pem: bytes, *, validity_days: int = 365, now: datetime | None = None) -> IssuedCertificate:
        """Issue a client certificate for a CSR that passes :func:`check_csr`.

        The subject is copied verbatim (same DER) from the CSR. Extensions are
        the CA's choice, never the CSR's: CA:FALSE, EKU clientAuth only,
        keyUsage digitalSignature (+ keyEncipherment for RSA), SKI and AKI.
        Validity runs from ``now - 5 minutes`` to ``now + validity_days``.
        """
        _check_validity_days(validity_days)
        csr = check_csr(csr_pem)
        public_key = csr.public_key()
        start = _utc(now)
        builder = self._leaf_builder(
            subject=csr.subject,
            public_key=public_key,
            not_before=start - BACKDATE,
            not_after=start + timedelta(days=validity_days),
            eku=ExtendedKeyUsageOID.CLIENT_AUTH,
        )
        return _issued(self._sign(builder))

    def issue_server_certificate(
        self,
        hostname: str,
        *,
        validity_days: int = MAX_LEAF_VALIDITY_DAYS,
        extra_ips: Sequence[str] = ("127.0.0.1", "::1"),
    ) -> tuple[bytes, bytes]:
        """A TLS server certificate and its new EC P-256 key, both PEM.

        SAN: ``DNS:hostname`` (an IP literal goes in as an IP address instead),
        ``DNS:localhost`` unless hostname is localhost, then ``extra_ips``.
        The key is returned unencrypted (PKCS#8).
        """
        _check_validity_days(validity_days)
        if not hostname:
            raise ValueError("hostname must not be empty")
        key = ec.generate_private_key(ec.SECP256R1())
        start = _utc(None)
        builder = self._leaf_builder(
            subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]),
            public_key=key.public_key(),
            not_before=start - BACKDATE,
            not_after=start + timedelta(days=validity_days),
            eku=ExtendedKeyUsageOID.SERVER_AUTH,
        ).add_extension(x509.SubjectAlternativeName(_server_names(hostname, extra_ips)), critical=False)
        cert = self._sign(builder)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cert_to_pem(cert), key_pem

    # -- checking -------------------------------------------------------------

    def verify_issued(self, cert: x509.Certificate, *, now: datetime | None = None) -> None:
        """Raise ``ValueError`` unless ``cert`` is a current client certificate from this CA.

        Checks: signed by this CA's key under this CA's name; ``now`` within
        notBefore..notAfter; not a CA certificate; EKU includes clientAuth.
        """
        try:
            cert.verify_directly_issued_by(self.certificate)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
            raise ValueError("certificate was not issued by this CA") from exc

        moment = _aware_utc(now)
        if moment < cert.not_valid_before_utc:
            raise ValueError("certificate is not valid yet")
        if moment > cert.not_valid_after_utc:
            raise ValueError("certificate has expired")

        exts = cert.extensions
        try:
            bc = exts.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        if bc is not None and bc.ca:
            raise ValueError("certificate is a CA certificate")
        try:
            eku = exts.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            raise ValueError("certificate has no extendedKeyUsage; clientAuth is required") from None
        if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
            raise ValueError("certificate's extendedKeyUsage lacks clientAuth")

    # -- internals ------------------------------------------------------------

    def _leaf_builder(
        self,
        *,
        subject: x509.Name,
        public_key: CertificatePublicKeyTypes,
        not_before: datetime,
        not_after: datetime,
        eku: x509.ObjectIdentifier,
    ) -> x509.CertificateBuilder:
        is_rsa = isinstance(public_key, rsa.RSAPublicKey)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(_new_serial())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True, key_encipherment=is_rsa), critical=True)
            .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._authority_key_identifier(), critical=False)
        )

    def _authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        try:
            ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        except x509.ExtensionNotFound:
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(self.private_key.public_key())
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)

    def _sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        algorithm = (
            None
            if isinstance(self.private_key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey))
            else hashes.SHA256()
        )
        return builder.sign(self.private_key, algorithm)


def _issued(cert: x509.Certificate) -> IssuedCertificate:
    return IssuedCertificate(
        certificate=cert,
        pem=cert_to_pem(cert),
        p7b=to_pkcs7_pem([cert]),
        serial=serial_hex(cert),
        thumbprint=x5t_s256(cert.public_bytes(serialization.Encoding.DER)),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        subject=cert.subject.rfc4514_string(),
    )


def _key_usage(
    *,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _server_names(hostname: str, extra_ips: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []

    def add(name: x509.GeneralName) -> None:
        if name not in names:
            names.append(name)

    try:
        add(x509.IPAddress(ipaddress.ip_address(hostname)))
    except ValueError:
        add(x509.DNSName(hostname))
    if hostname.lower() != "localhost":
        add(x509.DNSName("localhost"))
    for ip in extra_ips:
        add(x509.IPAddress(ipaddress.ip_address(ip)))
    return names


def _check_validity_days(validity_days: int) -> None:
    if isinstance(validity_days, bool) or not isinstance(validity_days, int):
        raise ValueError("validity_days must be an integer")
    if not 1 <= validity_days <= MAX_LEAF_VALIDITY_DAYS:
        raise ValueError(f"validity_days must be between 1 and {MAX_LEAF_VALIDITY_DAYS}")


def _new_serial() -> int:
    """A random positive serial of up to 159 bits (RFC 5280 allows 20 octets)."""
    while True:
        serial = x509.random_serial_number()
        if serial > 0:
            return serial


def _aware_utc(moment: datetime | None) -> datetime:
    """``moment`` (or now) as an aware UTC datetime; naive means UTC."""
    if moment is None:
        return datetime.now(UTC)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _utc(moment: datetime | None) -> datetime:
    """Like :func:`_aware_utc`, truncated to whole seconds (X.509 time precision)."""
    return _aware_utc(moment).replace(microsecond=0)


def _public_der(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
