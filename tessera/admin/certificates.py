"""Developer certificates: sign an app's CSR with the home's CA and bind the certificate to
the app; revoke; list.

Rules: the certificate is bound to an existing client; the CSR passes the CA's checks
(``CSRRejected`` becomes ``Invalid`` with the CA's reason); the validity defaults to
``cert_validity_days``; a revoked certificate is refused from the next request on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tessera.admin.context import Admin
from tessera.admin.errors import Conflict, Invalid, NotFound
from tessera.ca.csr import CSRRejected
from tessera.core.models import CertificateRecord
from tessera.core.ports import Conflict as StoreConflict


@dataclass(frozen=True)
class SignCertificate:
    client_id: str
    #: the CSR, PEM or DER
    csr: bytes
    #: None: the home's ``cert_validity_days``
    validity_days: int | None = None


@dataclass(frozen=True)
class SignedCertificate:
    serial: str
    client_id: str
    thumbprint: str  #: x5t#S256
    subject: str
    not_after: datetime
    pem: bytes
    p7b: bytes  #: PKCS#7, as the provider delivers it


@dataclass(frozen=True)
class CertificateInfo:
    serial: str
    client_id: str
    subject: str
    thumbprint: str
    not_before: int
    not_after: int
    revoked_at: int | None
    pem: str

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @classmethod
    def of(cls, r: CertificateRecord) -> CertificateInfo:
        return cls(r.serial, r.client_id, r.subject, r.thumbprint, r.not_before, r.not_after, r.revoked_at, r.pem)


def sign_certificate(admin: Admin, req: SignCertificate) -> SignedCertificate:
    if admin.store.get_client(req.client_id) is None:
        raise NotFound(f"no client {req.client_id}")
    days = req.validity_days or admin.settings.cert_validity_days
    ca = admin.ca()
    try:
        issued = ca.sign_csr(req.csr, validity_days=days)
    except CSRRejected as e:
        raise Invalid(f"CSR refused: {e.reason}") from None
    except ValueError as e:  # the validity out of the CA's range
        raise Invalid(str(e)) from None
    try:
        admin.store.add_certificate(
            CertificateRecord(
                serial=issued.serial,
                client_id=req.client_id,
                thumbprint=issued.thumbprint,
                subject=issued.subject,
                not_before=int(issued.not_before.timestamp()),
                not_after=int(issued.not_after.timestamp()),
                pem=issued.pem.decode(),
                created_at=admin.now(),
            )
        )
    except StoreConflict as e:
        raise Conflict(str(e)) from None
    admin.record("certificate.sign", client_id=req.client_id, serial=issued.serial)
    return SignedCertificate(
        issued.serial, req.client_id, issued.thumbprint, issued.subject, issued.not_after, issued.pem, issued.p7b
    )


def revoke_certificate(admin: Admin, serial: str) -> CertificateInfo:
    """Revoke a developer certificate (revoking it again keeps the first time)."""
    record = admin.store.revoke_certificate(serial, admin.now())
    if record is None:
        raise NotFound(f"no certificate with serial {serial}")
    admin.record("certificate.revoke", client_id=record.client_id, serial=record.serial)
    return CertificateInfo.of(record)


def list_certificates(admin: Admin, client_id: str | None = None) -> list[CertificateInfo]:
    """The certificates of one client (none for an unknown one), or of every client."""
    ids = [client_id] if client_id else [c.client_id for c in admin.store.list_clients()]
    return [CertificateInfo.of(r) for cid in ids for r in admin.store.certificates_for_client(cid)]


def get_certificate(admin: Admin, serial: str) -> CertificateInfo:
    """One certificate by its serial (hex, with or without ``0x`` and leading zeros)."""
    wanted = serial.lower().removeprefix("0x").lstrip("0") or "0"
    for cert in list_certificates(admin):
        if (cert.serial.lower().lstrip("0") or "0") == wanted:
            return cert
    raise NotFound(f"no certificate with serial {serial}")


# --- one certificate by serial, and its downloads (the admin API) -------------------------------------------


def find_certificate(admin: Admin, serial: str) -> CertificateInfo:
    """One certificate by its serial (hex, with or without ``0x`` and leading zeros), by one
    look-up (``get_certificate`` reads every client's)."""
    if not serial or len(serial) > 66 or any(ch not in "0123456789abcdefABCDEFxX" for ch in serial):
        raise NotFound(f"no certificate with serial {serial[:66]}")
    record = admin.store.certificate_by_serial(serial)
    if record is None:
        raise NotFound(f"no certificate with serial {serial}")
    return CertificateInfo.of(record)


def certificate_p7b(cert: CertificateInfo, *, der: bool = False) -> bytes:
    """The certificate as a certs-only PKCS#7 (``.p7b``), as the provider delivers it: PEM
    (``-----BEGIN PKCS7-----``) or DER; ``openssl pkcs7 [-inform DER] -print_certs -in`` reads it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs7

    parsed = x509.load_pem_x509_certificate(cert.pem.encode())
    encoding = serialization.Encoding.DER if der else serialization.Encoding.PEM
    return pkcs7.serialize_certificates([parsed], encoding)
