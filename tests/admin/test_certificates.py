"""Signing CSRs and revoking certificates: bound to an existing app, the CA's refusals
passed on with their reason, revocation kept from the first time."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from tessera import admin as ops
from tessera.admin import Admin, Invalid, NotFound, RegisterClient, SignCertificate
from tessera.sdk.mtls import thumbprint

from .conftest import Clock


def _csr(*, ca: bool = False) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "NOMEAPP"), x509.NameAttribute(NameOID.COUNTRY_NAME, "IT")])
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def client_id(admin: Admin) -> str:
    return ops.register_client(admin, RegisterClient(name="nexi app", auth_methods=("tls_client_auth",))).client_id


def test_sign_binds_the_certificate_to_the_client(admin: Admin, client_id: str) -> None:
    signed = ops.sign_certificate(admin, SignCertificate(client_id, _csr(), validity_days=30))
    cert = x509.load_pem_x509_certificate(signed.pem)
    assert signed.thumbprint == thumbprint(cert.public_bytes(serialization.Encoding.DER))
    assert [c.subject for c in pkcs7.load_pem_pkcs7_certificates(signed.p7b)] == [cert.subject]
    assert (signed.not_after - cert.not_valid_before_utc).days in (30, 29)
    record = admin.store.get_certificate(signed.thumbprint)
    assert record is not None and record.client_id == client_id and record.serial == signed.serial
    assert [c.serial for c in ops.list_certificates(admin, client_id)] == [signed.serial]
    assert ops.list_certificates(admin, "another") == []


def test_default_validity_is_the_homes(admin: Admin, client_id: str) -> None:
    signed = ops.sign_certificate(admin, SignCertificate(client_id, _csr()))
    cert = x509.load_pem_x509_certificate(signed.pem)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == admin.settings.cert_validity_days


def test_unknown_client_and_refused_csrs(admin: Admin, client_id: str) -> None:
    with pytest.raises(NotFound, match="no client nobody"):
        ops.sign_certificate(admin, SignCertificate("nobody", _csr()))
    with pytest.raises(Invalid, match="CSR refused"):
        ops.sign_certificate(admin, SignCertificate(client_id, _csr(ca=True)))
    with pytest.raises(Invalid, match="CSR refused"):
        ops.sign_certificate(admin, SignCertificate(client_id, b"not a CSR"))
    with pytest.raises(Invalid):
        ops.sign_certificate(admin, SignCertificate(client_id, _csr(), validity_days=5000))
    assert ops.list_certificates(admin) == []


def test_revoke_keeps_the_first_time(admin: Admin, client_id: str, clock: Clock) -> None:
    signed = ops.sign_certificate(admin, SignCertificate(client_id, _csr()))
    revoked = ops.revoke_certificate(admin, "0x" + signed.serial.upper())
    assert revoked.revoked and revoked.revoked_at == clock.now
    clock.now += 100
    assert ops.revoke_certificate(admin, signed.serial).revoked_at == clock.now - 100
    assert ops.get_certificate(admin, signed.serial).revoked
    record = admin.store.get_certificate(signed.thumbprint)
    assert record is not None and not record.usable(clock.now)
    with pytest.raises(NotFound, match="no certificate with serial ab"):
        ops.revoke_certificate(admin, "ab")
    with pytest.raises(NotFound):
        ops.get_certificate(admin, "ab")
