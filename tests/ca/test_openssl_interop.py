"""The provider's onboarding flow, end to end with the openssl CLI.

The developer makes a CSR exactly as the provider document says, tessera signs
it, and openssl (not our own code) judges the result.
"""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tessera.ca import CertificateAuthority, x5t_s256

pytestmark = pytest.mark.slow


def _ext_block(text: str, title: str) -> list[str]:
    """The indented value lines under an ``openssl x509 -ext`` heading."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(title):
            out = []
            for value in lines[i + 1 :]:
                if not value.startswith(" "):
                    break
                out.append(value.strip())
            return out
    raise AssertionError(f"{title!r} not in openssl output:\n{text}")


@pytest.fixture
def provider_cert(ca, openssl):
    """NOMEAPP.csr made by openssl per the provider document, signed by the CA."""
    csr = openssl.req("NOMEAPP", "-newkey", "rsa:2048", addext=("extendedKeyUsage=clientAuth",))
    issued = ca.sign_csr(csr)
    openssl.write("ca.pem", ca.certificate_pem())
    openssl.write("cert.pem", issued.pem)
    return issued


def test_openssl_verifies_the_issued_certificate(openssl, provider_cert):
    assert openssl.ok("verify", "-CAfile", "ca.pem", "cert.pem").strip() == "cert.pem: OK"
    assert openssl.ok("verify", "-CAfile", "ca.pem", "-purpose", "sslclient", "cert.pem").strip() == "cert.pem: OK"
    # ...and it is not usable as a TLS server certificate.
    refused = openssl.run("verify", "-CAfile", "ca.pem", "-purpose", "sslserver", "cert.pem")
    assert refused.returncode != 0


def test_openssl_sees_ca_false_and_client_auth_only(openssl, provider_cert):
    text = openssl.ok("x509", "-in", "cert.pem", "-noout", "-ext", "basicConstraints,extendedKeyUsage")
    assert "X509v3 Basic Constraints: critical" in text
    assert _ext_block(text, "X509v3 Basic Constraints") == ["CA:FALSE"]
    assert _ext_block(text, "X509v3 Extended Key Usage") == ["TLS Web Client Authentication"]


def test_openssl_sees_subject_preserved(openssl, provider_cert):
    csr_subject = openssl.ok("req", "-in", "NOMEAPP.csr", "-noout", "-subject", "-nameopt", "RFC2253")
    cert_subject = openssl.ok("x509", "-in", "cert.pem", "-noout", "-subject", "-nameopt", "RFC2253")
    assert (
        csr_subject.strip()
        == cert_subject.strip()
        == ("subject=C=IT,L=Milano,OU=API Security - STAGING,O=NEXI,CN=NOMEAPP")
    )
    assert provider_cert.subject == "C=IT,L=Milano,OU=API Security - STAGING,O=NEXI,CN=NOMEAPP"


def test_openssl_sees_the_key_from_the_csr(openssl, provider_cert):
    from_key = openssl.ok("pkey", "-in", "NOMEAPP.key", "-pubout")
    from_cert = openssl.ok("x509", "-in", "cert.pem", "-noout", "-pubkey")
    assert from_key == from_cert


def test_openssl_validity_matches(openssl, ca):
    csr = openssl.req("v", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256")
    issued = ca.sign_csr(csr, validity_days=90)
    openssl.write("v.pem", issued.pem)
    # 90 days from "now" (minus a few seconds of test run time) is still valid; 91 days is not.
    assert openssl.run("x509", "-in", "v.pem", "-noout", "-checkend", str(89 * 86400)).returncode == 0
    assert openssl.run("x509", "-in", "v.pem", "-noout", "-checkend", str(91 * 86400)).returncode == 1
    assert issued.not_after - issued.not_before == timedelta(days=90, minutes=5)


def test_provider_p7b_conversion_gives_back_the_same_certificate(openssl, provider_cert):
    openssl.write("NOMEAPP.p7b", provider_cert.p7b)
    openssl.ok("pkcs7", "-print_certs", "-in", "NOMEAPP.p7b", "-out", "NOMEAPP.pem")
    certs = x509.load_pem_x509_certificates(openssl.read("NOMEAPP.pem"))
    assert len(certs) == 1
    der = lambda c: c.public_bytes(serialization.Encoding.DER)  # noqa: E731
    assert der(certs[0]) == der(provider_cert.certificate)


def test_x5t_s256_matches_openssl(openssl, provider_cert):
    openssl.ok("x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der")
    openssl.ok("dgst", "-sha256", "-binary", "-out", "cert.sha256", "cert.der")
    b64 = openssl.ok("base64", "-A", "-in", "cert.sha256").strip()
    expected = b64.replace("+", "-").replace("/", "_").rstrip("=")
    assert provider_cert.thumbprint == expected
    assert x5t_s256(openssl.read("cert.der")) == expected
    assert len(base64.urlsafe_b64decode(expected + "=")) == 32


def test_openssl_ec_csr_is_signed_and_verifies(openssl, ca):
    csr = openssl.req(
        "ecapp", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", addext=("extendedKeyUsage=clientAuth",)
    )
    openssl.write("ca.pem", ca.certificate_pem())
    openssl.write("ec.pem", ca.sign_csr(csr).pem)
    assert openssl.ok("verify", "-CAfile", "ca.pem", "-purpose", "sslclient", "ec.pem").strip() == "ec.pem: OK"
    text = openssl.ok("x509", "-in", "ec.pem", "-noout", "-ext", "keyUsage")
    assert _ext_block(text, "X509v3 Key Usage") == ["Digital Signature"]


def test_server_certificate_verifies_for_ssl_server(openssl, ca):
    cert_pem, key_pem = ca.issue_server_certificate("tessera.test")
    openssl.write("ca.pem", ca.certificate_pem())
    openssl.write("server.pem", cert_pem)
    openssl.write("server.key", key_pem)
    out = openssl.ok("verify", "-CAfile", "ca.pem", "-purpose", "sslserver", "server.pem")
    assert out.strip() == "server.pem: OK"
    for check in (["-verify_hostname", "tessera.test"], ["-verify_hostname", "localhost"], ["-verify_ip", "::1"]):
        out = openssl.ok("verify", "-CAfile", "ca.pem", "-purpose", "sslserver", *check, "server.pem")
        assert out.strip() == "server.pem: OK", check
    wrong = openssl.run("verify", "-CAfile", "ca.pem", "-verify_hostname", "other.test", "server.pem")
    assert wrong.returncode != 0
    san = _ext_block(
        openssl.ok("x509", "-in", "server.pem", "-noout", "-ext", "subjectAltName"), "X509v3 Subject Alternative Name"
    )
    assert san == ["DNS:tessera.test, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"]
    # The key file is the certificate's key, unencrypted.
    assert openssl.ok("pkey", "-in", "server.key", "-pubout") == openssl.ok(
        "x509", "-in", "server.pem", "-noout", "-pubkey"
    )


def test_ca_certificate_as_openssl_sees_it(openssl, ca):
    openssl.write("ca.pem", ca.certificate_pem())
    text = openssl.ok("x509", "-in", "ca.pem", "-noout", "-ext", "basicConstraints,keyUsage")
    assert _ext_block(text, "X509v3 Basic Constraints") == ["CA:TRUE, pathlen:0"]
    assert _ext_block(text, "X509v3 Key Usage") == ["Certificate Sign, CRL Sign"]
    assert "X509v3 Key Usage: critical" in text
    assert openssl.ok("verify", "-CAfile", "ca.pem", "ca.pem").strip() == "ca.pem: OK"


def test_openssl_refuses_a_certificate_from_another_ca(openssl, ca, provider_cert):
    openssl.write("other.pem", CertificateAuthority.generate().certificate_pem())
    assert openssl.run("verify", "-CAfile", "other.pem", "cert.pem").returncode != 0
