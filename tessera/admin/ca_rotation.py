"""Rotating the developer CA, with an overlap.

Rules:

* ``rotate_ca`` makes a new CA key and certificate. The trust bundle ``ca.pem`` then holds the
  new CA first and the old one(s) after it: client certificates of both are accepted (by the
  embedded TLS server once restarted, by nginx once reloaded); the new CA signs every new
  certificate (``secrets/ca-key.pem`` is the new key, sealed under the KEK; the old key is
  deleted: nothing is signed with it again). The bundle is written before the key, so an
  interrupted rotation never leaves a key without its certificate in the bundle.
* ``retire_ca`` removes an old CA from the bundle. Refused for the signing CA, and, unless
  forced, while certificates it signed are still usable (not revoked, not expired): those
  clients would be locked out. The server's own TLS certificate (``server.pem``), if the retired
  CA signed it, is issued again by the signing CA.
* ``ca_status`` lists the bundle's CAs with the count of usable certificates each signed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from tessera.admin.context import Admin
from tessera.admin.errors import Conflict, Invalid, NotFound
from tessera.ca.authority import CertificateAuthority
from tessera.ca.bundle import bundle_pem, find, issued_by, read_bundle
from tessera.ca.formats import serial_hex


@dataclass(frozen=True)
class CaInfo:
    serial: str
    subject: str
    not_after: int
    signing: bool
    active_certificates: int

    def as_dict(self) -> dict[str, object]:
        return {
            "serial": self.serial,
            "subject": self.subject,
            "not_after": self.not_after,
            "signing": self.signing,
            "active_certificates": self.active_certificates,
        }


def _write_replacing(path: Path, data: bytes, mode: int) -> None:
    staged = path.with_name(f".{path.name}.new")
    staged.unlink(missing_ok=True)
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if path.exists() and os.geteuid() == 0:  # run as root: keep the file's owner
        st = path.stat()
        os.chown(staged, st.st_uid, st.st_gid)
    os.replace(staged, path)


def _bundle(admin: Admin) -> list[x509.Certificate]:
    return read_bundle(admin.settings.ca_cert_path.read_bytes())


def _usable_certificates(admin: Admin) -> list[x509.Certificate]:
    now = admin.now()
    out = []
    for cid in [c.client_id for c in admin.store.list_clients()]:
        for record in admin.store.certificates_for_client(cid):
            if record.usable(now):
                out.append(x509.load_pem_x509_certificate(record.pem.encode()))
    return out


def ca_status(admin: Admin) -> list[CaInfo]:
    signing = serial_hex(admin.ca().certificate)
    usable = _usable_certificates(admin)
    return [
        CaInfo(
            serial_hex(ca),
            ca.subject.rfc4514_string(),
            int(ca.not_valid_after_utc.timestamp()),
            serial_hex(ca) == signing,
            sum(1 for c in usable if issued_by(c, ca)),
        )
        for ca in _bundle(admin)
    ]


def rotate_ca(admin: Admin, *, validity_days: int = 3650) -> CaInfo:
    old = admin.ca()  # the signing CA, opened with the KEK
    names = old.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    base = str(names[0].value) if names else f"tessera {admin.settings.environment} developer CA"
    base = base.split(" (", 1)[0]
    stamp = datetime.fromtimestamp(admin.now(), UTC).strftime("%Y-%m-%d")
    new = CertificateAuthority.generate(f"{base} ({stamp})", validity_days=validity_days)
    bundle = [new.certificate, *_bundle(admin)]
    _write_replacing(admin.settings.ca_cert_path, bundle_pem(bundle), 0o644)
    _write_replacing(admin.settings.ca_key_path, new.private_key_pem(admin.settings.kek_bytes()), 0o600)
    admin.record("ca.rotate", serial=serial_hex(new.certificate), previous=serial_hex(old.certificate))
    return CaInfo(
        serial_hex(new.certificate),
        new.certificate.subject.rfc4514_string(),
        int(new.certificate.not_valid_after_utc.timestamp()),
        True,
        0,
    )


def retire_ca(admin: Admin, serial: str, *, force: bool = False) -> CaInfo:
    bundle = _bundle(admin)
    ca = find(bundle, serial)
    if ca is None:
        raise NotFound(f"no CA with serial {serial} in {admin.settings.ca_cert_path}")
    signing = admin.ca()
    if serial_hex(ca) == serial_hex(signing.certificate):
        raise Invalid("this is the signing CA: rotate the CA first (tessera ca rotate)")
    active = sum(1 for c in _usable_certificates(admin) if issued_by(c, ca))
    if active and not force:
        raise Conflict(
            f"{active} usable certificate(s) signed by this CA remain: re-issue them under the new CA and revoke "
            "them (tessera certs revoke), or let them expire, or pass --force to lock their clients out"
        )
    kept = [c for c in bundle if c is not ca]
    _write_replacing(admin.settings.ca_cert_path, bundle_pem(kept), 0o644)
    server = admin.settings.tls_cert_path
    if server.exists() and issued_by(x509.load_pem_x509_certificate(server.read_bytes()), ca):
        cert_pem, key_pem = signing.issue_server_certificate(admin.settings.hostname)
        _write_replacing(admin.settings.tls_key_path, key_pem, 0o600)
        _write_replacing(server, cert_pem, 0o644)
    admin.record("ca.retire", serial=serial_hex(ca), forced=bool(active))
    return CaInfo(serial_hex(ca), ca.subject.rfc4514_string(), int(ca.not_valid_after_utc.timestamp()), False, active)
