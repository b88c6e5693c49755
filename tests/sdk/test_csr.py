"""make_csr() against the Nexi document's own ``openssl req`` command."""

from __future__ import annotations

import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tessera.sdk import make_csr

SUBJECT = "/CN=NOMEAPP/O=NEXI/OU=API Security - STAGING/L=Milano/C=IT/"


def openssl_csr(tmp_path, *newkey: str) -> x509.CertificateSigningRequest:
    subprocess.run(
        [
            "openssl",
            "req",
            "-nodes",
            *newkey,
            "-keyout",
            "NOMEAPP.key",
            "-out",
            "NOMEAPP.csr",
            "-subj",
            SUBJECT,
            "-addext",
            "extendedKeyUsage=clientAuth",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    return x509.load_pem_x509_csr((tmp_path / "NOMEAPP.csr").read_bytes())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return openssl_csr(tmp_path_factory.mktemp("openssl"), "-newkey", "rsa:2048")


def test_same_subject_bytes_and_extensions_as_openssl(reference):
    csr_pem, key_pem = make_csr()
    ours = x509.load_pem_x509_csr(csr_pem)
    assert ours.subject.public_bytes() == reference.subject.public_bytes()
    assert [a.oid for a in ours.subject] == [
        NameOID.COMMON_NAME,
        NameOID.ORGANIZATION_NAME,
        NameOID.ORGANIZATIONAL_UNIT_NAME,
        NameOID.LOCALITY_NAME,
        NameOID.COUNTRY_NAME,
    ]
    assert ours.subject.rfc4514_string() == reference.subject.rfc4514_string()
    ref_ext = {e.oid: e for e in reference.extensions}
    our_ext = {e.oid: e for e in ours.extensions}
    assert set(our_ext) == set(ref_ext) == {x509.ExtendedKeyUsage.oid}
    eku_ours, eku_ref = our_ext[x509.ExtendedKeyUsage.oid], ref_ext[x509.ExtendedKeyUsage.oid]
    assert eku_ours.critical is eku_ref.critical is False
    assert list(eku_ours.value) == list(eku_ref.value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert eku_ours.value.public_bytes() == eku_ref.value.public_bytes()


def test_rsa_2048_sha256_and_matching_key(reference):
    csr_pem, key_pem = make_csr()
    csr = x509.load_pem_x509_csr(csr_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048 == reference.public_key().key_size
    assert key.public_key().public_numbers().e == reference.public_key().public_numbers().e == 65537
    assert csr.public_key().public_numbers() == key.public_key().public_numbers()
    assert isinstance(csr.signature_hash_algorithm, hashes.SHA256)
    assert csr.signature_algorithm_oid == reference.signature_algorithm_oid
    assert csr.is_signature_valid
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # unencrypted PKCS#8, as -nodes writes


def test_ec_p256(tmp_path):
    reference = openssl_csr(tmp_path, "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256")
    csr_pem, key_pem = make_csr(key_type="ec")
    csr = x509.load_pem_x509_csr(csr_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    assert csr.subject.public_bytes() == reference.subject.public_bytes()
    assert csr.signature_algorithm_oid == reference.signature_algorithm_oid  # ecdsa-with-SHA256
    assert csr.is_signature_valid


def test_other_names_and_openssl_can_read_it(tmp_path):
    csr_pem, _ = make_csr("SHOPAPP", organizational_unit="API Security - PRODUCTION")
    (tmp_path / "x.csr").write_bytes(csr_pem)
    out = subprocess.run(
        ["openssl", "req", "-in", "x.csr", "-noout", "-verify", "-subject"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    assert "CN = SHOPAPP, O = NEXI, OU = API Security - PRODUCTION, L = Milano, C = IT" in out.stdout
    with pytest.raises(ValueError):
        make_csr(key_type="dsa")
