"""Load a fixtures file into a home, through the admin layer (as an operator would), and
describe what was loaded: the credentials a test suite hard-codes, and the certificate files.

A Nexi app's developer certificate is signed by the home's CA from the fixture's ``csr``, or
from a CSR made with the fixture's ``key``, or from a new RSA 2048 key; the certificate (PEM)
and a generated key are written to ``<home>/apps/<client_id>.crt`` and ``.key`` (0600).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tessera import admin as ops
from tessera.admin import Admin, AdminError
from tessera.sandbox.fixtures import FixtureError, Fixtures, NexiApp

NEXI_GRANTS = ("client_credentials", "authorization_code")


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def csr_for_key(key_pem: bytes, common_name: str) -> bytes:
    """A CSR of the Nexi document's shape (``/CN=…/O=NEXI/OU=API Security - STAGING/L=Milano/C=IT``,
    clientAuth) for an unencrypted PEM private key (RSA or EC)."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("the key must be RSA or EC")
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "NEXI"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "API Security - STAGING"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Milano"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "IT"),
        ]
    )
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def new_key_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate(admin: Admin, app: NexiApp, base: Path, apps_dir: Path) -> dict[str, Any]:
    key_path: Path | None = None
    try:
        if app.csr is not None:
            csr = (base / app.csr).read_bytes()
        elif app.key is not None:
            key_path = (base / app.key).resolve()
            csr = csr_for_key(key_path.read_bytes(), app.client_id)
        else:
            key_path = apps_dir / f"{app.client_id}.key"
            key_pem = new_key_pem()
            _write_private(key_path, key_pem)
            csr = csr_for_key(key_pem, app.client_id)
    except OSError as e:
        raise FixtureError(f"nexi app {app.client_id}: cannot read {e.filename}: {e.strerror}") from None
    except ValueError as e:
        raise FixtureError(f"nexi app {app.client_id}: the key cannot be used ({e})") from None
    issued = ops.sign_certificate(admin, ops.SignCertificate(app.client_id, csr))
    cert_path = apps_dir / f"{app.client_id}.crt"
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(issued.pem)
    return {
        "certificate": str(cert_path),
        "key": str(key_path) if key_path is not None else None,
        "serial": issued.serial,
        "thumbprint": issued.thumbprint,
    }


def load_into(admin: Admin, fixtures: Fixtures, *, base: Path, apps_dir: Path) -> dict[str, Any]:
    """Register everything in ``fixtures``; the description of it (``credentials``). ``base``:
    the directory the fixture's relative paths are read from. ``FixtureError`` (one line) on
    anything the admin layer refuses."""
    try:
        return _load(admin, fixtures, base=base, apps_dir=apps_dir)
    except AdminError as e:
        raise FixtureError(f"fixtures refused: {e}") from None


def _load(admin: Admin, f: Fixtures, *, base: Path, apps_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"nexi": {"apps": []}, "mobilepay": {"clients": []}, "b2binpay": {"users": []}, "apps": []}
    for app in f.nexi.apps:
        ops.register_client(
            admin,
            ops.RegisterClient(
                name=app.name,
                redirect_uris=tuple(app.redirect_uris),
                scope=app.scope,
                grant_types=NEXI_GRANTS,
                client_id=app.client_id,
                client_secret=app.client_secret,
            ),
        )
        out["nexi"]["apps"].append(
            {
                "client_id": app.client_id,
                "client_secret": app.client_secret,
                "redirect_uris": list(app.redirect_uris),
                **_certificate(admin, app, base, apps_dir),
            }
        )
    for c in f.mobilepay.clients:
        ops.register_client(
            admin,
            ops.RegisterClient(
                name=c.name, grant_types=("client_credentials",), client_id=c.client_id, client_secret=c.client_secret
            ),
        )
        out["mobilepay"]["clients"].append({"client_id": c.client_id, "client_secret": c.client_secret})
    for u in f.b2binpay.users:
        ops.register_client(
            admin,
            ops.RegisterClient(
                name=u.name, grant_types=("client_credentials",), client_id=u.login, client_secret=u.password
            ),
        )
        out["b2binpay"]["users"].append({"login": u.login, "password": u.password})
    for a in f.apps:
        ops.register_client(
            admin,
            ops.RegisterClient(
                name=a.name,
                redirect_uris=tuple(a.redirect_uris),
                scope=a.scope,
                client_id=a.client_id,
                client_secret=a.client_secret,
            ),
        )
        out["apps"].append(
            {"client_id": a.client_id, "client_secret": a.client_secret, "redirect_uris": list(a.redirect_uris)}
        )
    out["merchants"] = [_merchant(admin, m) for m in f.merchants]
    return out


def _merchant(admin: Admin, m: Any) -> dict[str, Any]:
    ops.create_merchant(admin, ops.CreateMerchant(m.id, m.name, m.vat))
    for pos in m.points_of_sale:
        for t in pos.terminals:
            ops.add_terminal(admin, ops.AddTerminal(m.id, pos.id, t.tid, t.kind))
    for u in m.users:
        ops.add_user(admin, ops.AddUser(m.id, u.username, u.password))
    for k in m.axept_keys:
        ops.create_key(admin, m.id, key_id=k.key_id, value=k.key)
    for client_id in m.grants:
        ops.grant(admin, m.id, client_id)
    return {
        "id": m.id,
        "name": m.name,
        "vat": m.vat,
        "grants": list(m.grants),
        "points_of_sale": [
            {"id": p.id, "terminals": [{"tid": t.tid, "kind": t.kind} for t in p.terminals]} for p in m.points_of_sale
        ],
        "users": [{"username": u.username.lower(), "password": u.password} for u in m.users],
        "axept_keys": [{"key_id": k.key_id, "key": k.key} for k in m.axept_keys],
    }
