"""What the portal's users may do, each within what is theirs.

An integrator (a developer) works on its own organisation's apps only: an app, a
certificate or a serial of another organisation is ``NotFound`` (the portal answers 404, as
for one that does not exist). A merchant user works on its own merchant only. The
operations are the admin layer's (``register_client``, ``sign_certificate``, ``grant``,
...), called with the portal user as the ``Admin.actor``."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from tessera.admin.certificates import CertificateInfo, SignCertificate, SignedCertificate, list_certificates
from tessera.admin.certificates import get_certificate as _get_certificate
from tessera.admin.certificates import sign_certificate as _sign_certificate
from tessera.admin.clients import ClientInfo, RegisterClient, RegisteredClient, list_clients, register_client
from tessera.admin.context import Admin
from tessera.admin.errors import NotFound
from tessera.ca.formats import to_pkcs7_pem
from tessera.core.models import Enrollment, Terminal
from tessera.core.secrets import verify_secret

#: The provider's conversion of the mailed ``.p7b`` (Nexi SoftPOS backend integration).
P7B_TO_PEM = "openssl pkcs7 -print_certs -in cert.p7b -out cert.pem"


@dataclass(frozen=True)
class Assignment:
    """Where an app is assigned: a merchant's grant, its enrollments and their terminals."""

    merchant_id: int
    merchant_name: str
    granted_at: int | None
    enrollments: tuple[Enrollment, ...]
    terminals: tuple[Terminal, ...]


def org_apps(admin: Admin, org_id: str) -> list[ClientInfo]:
    return list_clients(admin, org_id)


def org_app(admin: Admin, org_id: str, client_id: str) -> ClientInfo:
    """The organisation's app; ``NotFound`` for another organisation's, as for none."""
    client = admin.store.get_client(client_id) if client_id and len(client_id) <= 64 else None
    if client is None or client.org_id != org_id:
        raise NotFound(f"no app {client_id[:64]}")
    return ClientInfo.of(client)


def check_app_secret(admin: Admin, org_id: str, client_id: str, secret: str) -> bool:
    """True if ``secret`` is the organisation's app's secret (the credentials download of the
    page that showed it once posts it back: tessera keeps no clear copy to serve later)."""
    org_app(admin, org_id, client_id)
    client = admin.store.get_client(client_id)
    return client is not None and verify_secret(secret, client.secret_hash, admin.settings.peppers())


def create_org_app(admin: Admin, org_id: str, name: str, redirect_uris: tuple[str, ...] = ()) -> RegisteredClient:
    """A new app of the organisation, with a client secret (shown once)."""
    return register_client(admin, RegisterClient(name.strip(), tuple(redirect_uris), org_id=org_id))


def org_sign_csr(admin: Admin, org_id: str, client_id: str, csr: bytes) -> SignedCertificate:
    org_app(admin, org_id, client_id)
    return _sign_certificate(admin, SignCertificate(client_id, csr))


def org_certificates(admin: Admin, org_id: str, client_id: str) -> list[CertificateInfo]:
    org_app(admin, org_id, client_id)
    return list_certificates(admin, client_id)


def org_certificate(admin: Admin, org_id: str, serial: str) -> CertificateInfo:
    """One certificate of the organisation's apps by serial; ``NotFound`` otherwise."""
    if not serial or len(serial) > 64:
        raise NotFound("no certificate")
    try:
        cert = _get_certificate(admin, serial)
    except NotFound:
        raise NotFound(f"no certificate with serial {serial}") from None
    client = admin.store.get_client(cert.client_id)
    if client is None or client.org_id != org_id:
        raise NotFound(f"no certificate with serial {serial}")
    return cert


def p7b_of(pem: str) -> bytes:
    """The certificate as the provider mails it: PKCS#7 (PEM), which ``P7B_TO_PEM`` converts back."""
    return to_pkcs7_pem([x509.load_pem_x509_certificate(pem.encode("ascii"))])


def assignments(admin: Admin, org_id: str, client_id: str) -> list[Assignment]:
    """The merchants that granted the app access or enrolled it, with their points of sale."""
    org_app(admin, org_id, client_id)
    grants = {g.merchant_id: g.created_at for g in admin.store.grants_to(client_id)}
    enrollments = [e for e in admin.store.list_enrollments() if e.client_id == client_id]
    merchant_ids = sorted({*grants, *(e.merchant_id for e in enrollments)})
    out = []
    for mid in merchant_ids:
        merchant = admin.store.get_merchant(mid)
        mine = tuple(e for e in enrollments if e.merchant_id == mid)
        terminals = tuple(t for pos in sorted({e.pos for e in mine}) for t in admin.store.terminals_at(pos))
        out.append(Assignment(mid, merchant.name if merchant else "", grants.get(mid), mine, terminals))
    return out


def merchant_enrollments(admin: Admin, merchant_id: int) -> list[Enrollment]:
    return [e for e in admin.store.list_enrollments() if e.merchant_id == merchant_id]


def grantable_app(admin: Admin, client_id: str) -> ClientInfo:
    """An app a merchant may grant: an active app of an organisation (an integrator's)."""
    client = admin.store.get_client(client_id) if client_id and len(client_id) <= 64 else None
    if client is None or client.status != "active" or client.org_id is None:
        raise NotFound(f"no app {client_id[:64]}")
    return ClientInfo.of(client)
