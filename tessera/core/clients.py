"""Client authentication: shared secrets and certificate binding (RFC 6749 §2.3, RFC 8705).

The rules of two methods of the registry in ``tessera.core.client_auth``
(``client_secret_basic``/``client_secret_post``), and the certificate binding that
``tls_client_auth``, ``nexi_nested_jwe`` and the native endpoints check; callers authenticate
through that registry."""

from __future__ import annotations

from dataclasses import dataclass

from tessera.core.context import REPEATED_EVENT_SECONDS, Core
from tessera.core.models import CertificateRecord, Client
from tessera.core.secrets import hash_secret, needs_rehash, verify_secret
from tessera.errors import InvalidClient


@dataclass(frozen=True)
class ClientCredentials:
    """What the caller presented, as parsed by the web layer."""

    client_id: str | None
    client_secret: str | None
    method: str  # "client_secret_basic" | "client_secret_post" | "none"


@dataclass(frozen=True)
class PeerCert:
    """The verified TLS client certificate, as the core sees it (see ``tessera.web.mtls``)."""

    thumbprint: str
    der: bytes = b""


def authenticate_secret(core: Core, creds: ClientCredentials) -> Client:
    """The client whose secret was presented, or ``InvalidClient``.

    The same answer for an unknown client, a wrong secret and a revoked client, and
    the same work (one HMAC) for each. While a rotated secret's overlap lasts
    (``Client.previous_valid_until``), the previous secret is accepted as well (a second
    HMAC comparison, for that client only); after it, only the new one.
    """
    client = core.client(creds.client_id) if creds.client_id else None
    ok = current = verify_secret(creds.client_secret, client.secret_hash if client else None, core.pepper)
    previous = client.previous_secret(core.now()) if client is not None and not ok else None
    if previous is not None:  # a rotation's overlap (tessera.admin.clients.rotate_secret): the old one too
        ok = verify_secret(creds.client_secret, previous, core.pepper)
    if client is None or not ok:
        raise InvalidClient("client authentication failed", reason="bad_client_credentials")
    if not client.active:
        raise InvalidClient("client authentication failed", reason="client_revoked")
    if creds.method not in client.auth_methods:
        raise InvalidClient(f"{creds.method} is not allowed for this client", reason="auth_method_not_allowed")
    # Only the current secret is stored again: the previous one of an overlap must never replace it.
    if current and client.secret_hash and creds.client_secret and needs_rehash(client.secret_hash, core.pepper):
        rehash_client_secret(core, client, creds.client_secret)
    return client


def rehash_client_secret(core: Core, client: Client, secret: str) -> None:
    """Store the secret that just verified again under the current pepper (pepper rotation:
    ``tessera pepper``). A failure is harmless: the old hash keeps verifying while its pepper
    is configured, and the next use tries again."""
    store = core.caps.rehash
    if store is None or client.secret_hash is None:
        return
    try:
        store.rehash_client_secret(client.client_id, client.secret_hash, hash_secret(secret, core.pepper))
    except Exception:  # noqa: BLE001 - never fail an authentication that succeeded
        return


def bound_certificate(core: Core, client: Client, peer: PeerCert | None) -> CertificateRecord:
    """The developer certificate presented over mTLS, checked to be bound to ``client`` and usable now."""
    if peer is None:
        raise InvalidClient("a client certificate is required (mutual TLS)", reason="mtls_missing")
    record = core.certificate(peer.thumbprint)
    if record is None or record.client_id != client.client_id:
        raise InvalidClient("the client certificate is not bound to this client", reason="cert_not_bound")
    if record.revoked_at is not None:
        core.event("revoked_certificate_used", client.client_id, serial=record.serial, once_per=REPEATED_EVENT_SECONDS)
        raise InvalidClient("the client certificate has been revoked", reason="cert_revoked")
    if not record.usable(core.now()):
        raise InvalidClient("the client certificate is not valid now", reason="cert_expired")
    return record
