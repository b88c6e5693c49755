"""CertificateAuthority: generation, loading, issuing and checking, in-process."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tessera.ca import CertificateAuthority, CSRRejected, IssuedCertificate, serial_hex, x5t_s256

from .helpers import build_csr

UTC = UTC


def ext(cert: x509.Certificate, cls):
    return cert.extensions.get_extension_for_class(cls)


# -- the CA itself --------------------------------------------------------------------------


def test_generated_ca_certificate(ca):
    cert = ca.certificate
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "tessera development CA"
    cert.verify_directly_issued_by(cert)
    assert isinstance(ca.private_key, ec.EllipticCurvePrivateKey)
    assert isinstance(ca.private_key.curve, ec.SECP256R1)

    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    ski = ext(cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert cert.serial_number > 0


def test_generated_ca_name_and_validity():
    ca = CertificateAuthority.generate("Acme sandbox CA", validity_days=30)
    cert = ca.certificate
    assert cert.subject.rfc4514_string() == "CN=Acme sandbox CA"
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=30, minutes=5)


def test_load_round_trip_with_password(ca, ec_key):
    key_pem = ca.private_key_pem(b"correct horse")
    assert key_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    loaded = CertificateAuthority.load(ca.certificate_pem(), key_pem, b"correct horse")
    assert loaded.certificate == ca.certificate
    assert loaded.private_key_pem(None) == ca.private_key_pem(None)
    # The reloaded CA signs certificates the original accepts, and vice versa.
    ca.verify_issued(loaded.sign_csr(build_csr(ec_key)).certificate)
    loaded.verify_issued(ca.sign_csr(build_csr(ec_key)).certificate)


def test_load_with_wrong_or_missing_password_fails(ca):
    key_pem = ca.private_key_pem(b"correct horse")
    with pytest.raises(ValueError):
        CertificateAuthority.load(ca.certificate_pem(), key_pem, b"battery staple")
    with pytest.raises(TypeError):
        CertificateAuthority.load(ca.certificate_pem(), key_pem)


def test_unencrypted_key_round_trip(ca):
    key_pem = ca.private_key_pem(None)
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = CertificateAuthority.load(ca.certificate_pem(), key_pem)
    assert loaded.certificate_pem() == ca.certificate_pem()


def test_load_refuses_key_of_another_ca(ca):
    other = CertificateAuthority.generate()
    with pytest.raises(ValueError, match="does not belong"):
        CertificateAuthority.load(ca.certificate_pem(), other.private_key_pem(None))


def test_load_refuses_a_leaf_certificate(ca):
    cert_pem, key_pem = ca.issue_server_certificate("localhost")
    with pytest.raises(ValueError, match="not a CA"):
        CertificateAuthority.load(cert_pem, key_pem)


# -- client certificates ----------------------------------------------------------------------


def test_sign_csr_rsa_extensions(ca, rsa_key):
    issued = ca.sign_csr(build_csr(rsa_key))  # the CSR asks for no extensions at all
    cert = issued.certificate

    assert cert.issuer == ca.certificate.subject
    cert.verify_directly_issued_by(ca.certificate)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert cert.public_key().public_numbers() == rsa_key.public_key().public_numbers()

    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature and ku.value.key_encipherment
    assert not (ku.value.key_cert_sign or ku.value.crl_sign or ku.value.key_agreement)
    assert ext(cert, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(rsa_key.public_key())
    aki = ext(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(ca.certificate, x509.SubjectKeyIdentifier).value.digest


def test_sign_csr_ec_key_usage_has_no_key_encipherment(ca, ec_key):
    cert = ca.sign_csr(build_csr(ec_key)).certificate
    ku = ext(cert, x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_encipherment


def test_only_the_cas_extensions_are_issued(ca, ec_key):
    pem = build_csr(
        ec_key,
        extensions=[
            (x509.SubjectAlternativeName([x509.DNSName("evil.example")]), False),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), True),
            (x509.BasicConstraints(ca=False, path_length=None), False),
        ],
    )
    cert = ca.sign_csr(pem).certificate
    assert {e.oid for e in cert.extensions} == {
        x509.BasicConstraints.oid,
        x509.KeyUsage.oid,
        x509.ExtendedKeyUsage.oid,
        x509.SubjectKeyIdentifier.oid,
        x509.AuthorityKeyIdentifier.oid,
    }
    assert not ext(cert, x509.ExtendedKeyUsage).critical  # the CSR's criticality isn't copied either


def test_subject_is_copied_byte_for_byte(ca, ec_key):
    pem = build_csr(ec_key, cn='Zürich app, "quoted" + plus')
    csr = x509.load_pem_x509_csr(pem)
    cert = ca.sign_csr(pem).certificate
    assert cert.subject.public_bytes() == csr.subject.public_bytes()


def test_issued_certificate_fields(ca, ec_key):
    issued = ca.sign_csr(build_csr(ec_key, cn="fields-app"))
    assert isinstance(issued, IssuedCertificate)
    cert = issued.certificate
    der = cert.public_bytes(serialization.Encoding.DER)
    assert issued.pem == cert.public_bytes(serialization.Encoding.PEM)
    assert issued.p7b.startswith(b"-----BEGIN PKCS7-----")
    assert issued.serial == serial_hex(cert) == format(cert.serial_number, "x")
    assert issued.thumbprint == x5t_s256(der)
    assert issued.not_before == cert.not_valid_before_utc
    assert issued.not_after == cert.not_valid_after_utc
    assert issued.not_before.tzinfo is not None and issued.not_before.utcoffset() == timedelta(0)
    assert issued.subject == "C=IT,O=Example Merchant,CN=fields-app"
    with pytest.raises(AttributeError):
        issued.serial = "00"  # frozen


@pytest.mark.parametrize("days", [1, 30, 365, 825])
def test_validity_is_configurable(ca, ec_key, days):
    now = datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)
    issued = ca.sign_csr(build_csr(ec_key), validity_days=days, now=now)
    assert issued.not_before == now - timedelta(minutes=5)
    assert issued.not_after == now + timedelta(days=days)
    assert issued.not_after - issued.not_before == timedelta(days=days, minutes=5)


def test_default_validity_is_a_year_from_now(ca, ec_key):
    before = datetime.now(UTC).replace(microsecond=0)
    issued = ca.sign_csr(build_csr(ec_key))
    after = datetime.now(UTC)
    assert before - timedelta(minutes=5) <= issued.not_before <= after - timedelta(minutes=5)
    assert issued.not_after - issued.not_before == timedelta(days=365, minutes=5)


def test_now_in_another_timezone_and_naive_now(ca, ec_key):
    rome = timezone(timedelta(hours=2))
    a = ca.sign_csr(build_csr(ec_key), now=datetime(2030, 6, 1, 14, 0, 0, 999_999, tzinfo=rome))
    b = ca.sign_csr(build_csr(ec_key), now=datetime(2030, 6, 1, 12, 0, 0))  # naive = UTC
    assert a.not_before == b.not_before == datetime(2030, 6, 1, 11, 55, tzinfo=UTC)


@pytest.mark.parametrize("days", [0, -1, 826, 3650, 1.5, True])
def test_validity_out_of_range_is_refused(ca, ec_key, days):
    with pytest.raises(ValueError, match="validity_days"):
        ca.sign_csr(build_csr(ec_key), validity_days=days)


def test_serials_are_unique_positive_and_large(ca, ec_key):
    pem = build_csr(ec_key)
    serials = [ca.sign_csr(pem).certificate.serial_number for _ in range(64)]
    assert len(set(serials)) == len(serials)
    assert all(0 < s < 2**159 for s in serials)
    # ~159 random bits: with 64 draws, at least one is above 2**150 unless something is badly wrong.
    assert max(serials).bit_length() > 150


def test_sign_csr_refuses_bad_csr(ca):
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(CSRRejected, match="1024 bits"):
        ca.sign_csr(build_csr(weak))


# -- server certificate ----------------------------------------------------------------------


def test_server_certificate(ca):
    cert_pem, key_pem = ca.issue_server_certificate("tessera.test")
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    assert cert.public_key() == key.public_key()
    cert.verify_directly_issued_by(ca.certificate)

    san = ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["tessera.test", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert ext(cert, x509.BasicConstraints).value.ca is False
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=825, minutes=5)


def test_server_certificate_for_localhost_has_no_duplicate(ca):
    cert_pem, _ = ca.issue_server_certificate("localhost", extra_ips=[])
    san = ext(x509.load_pem_x509_certificate(cert_pem), x509.SubjectAlternativeName).value
    assert list(san) == [x509.DNSName("localhost")]


def test_server_certificate_for_an_ip_literal(ca):
    cert_pem, _ = ca.issue_server_certificate("10.0.0.7", extra_ips=["127.0.0.1"])
    san = ext(x509.load_pem_x509_certificate(cert_pem), x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.7"),
        ipaddress.ip_address("127.0.0.1"),
    ]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]


def test_server_certificate_refuses_bad_input(ca):
    with pytest.raises(ValueError):
        ca.issue_server_certificate("localhost", extra_ips=["not-an-ip"])
    with pytest.raises(ValueError):
        ca.issue_server_certificate("")
    with pytest.raises(ValueError):
        ca.issue_server_certificate("localhost", validity_days=826)


# -- verify_issued ------------------------------------------------------------------------------


def test_verify_issued_accepts_own_client_certificate(ca, ec_key):
    ca.verify_issued(ca.sign_csr(build_csr(ec_key)).certificate)


def test_verify_issued_refuses_another_cas_certificate(ca, ec_key):
    other = CertificateAuthority.generate("some other CA")
    with pytest.raises(ValueError, match="not issued by this CA"):
        ca.verify_issued(other.sign_csr(build_csr(ec_key)).certificate)


def test_verify_issued_refuses_a_lookalike_ca_with_the_same_name(ca, ec_key):
    impostor = CertificateAuthority.generate()  # same default CN, different key
    assert impostor.certificate.subject == ca.certificate.subject
    with pytest.raises(ValueError, match="not issued by this CA"):
        ca.verify_issued(impostor.sign_csr(build_csr(ec_key)).certificate)


def test_verify_issued_refuses_expired(ca, ec_key):
    long_ago = datetime.now(UTC) - timedelta(days=400)
    cert = ca.sign_csr(build_csr(ec_key), validity_days=365, now=long_ago).certificate
    with pytest.raises(ValueError, match="expired"):
        ca.verify_issued(cert)
    ca.verify_issued(cert, now=long_ago + timedelta(days=1))  # it was fine back then


def test_verify_issued_refuses_not_yet_valid(ca, ec_key):
    later = datetime.now(UTC) + timedelta(days=10)
    cert = ca.sign_csr(build_csr(ec_key), now=later).certificate
    with pytest.raises(ValueError, match="not valid yet"):
        ca.verify_issued(cert)


def test_verify_issued_refuses_server_certificate(ca):
    cert_pem, _ = ca.issue_server_certificate("localhost")
    with pytest.raises(ValueError, match="clientAuth"):
        ca.verify_issued(x509.load_pem_x509_certificate(cert_pem))


def test_verify_issued_refuses_the_ca_certificate_itself(ca):
    with pytest.raises(ValueError, match="CA certificate"):
        ca.verify_issued(ca.certificate)
