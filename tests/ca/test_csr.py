"""check_csr: what the CA agrees to sign, and what it refuses."""

from __future__ import annotations

import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID

from tessera.ca import CSRRejected, check_csr

from .helpers import build_csr, der_to_pem, pem_to_der


def _ku(**on: bool) -> x509.KeyUsage:
    flags = dict.fromkeys(
        [
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ],
        False,
    )
    flags.update(on)
    return x509.KeyUsage(**flags)


# -- produced by the openssl CLI exactly as a developer would --------------------------------


@pytest.mark.slow
def test_provider_rsa_csr_is_accepted(openssl):
    pem = openssl.req("NOMEAPP", "-newkey", "rsa:2048", addext=("extendedKeyUsage=clientAuth",))
    csr = check_csr(pem)
    assert csr.public_key().key_size == 2048
    assert csr.subject.rfc4514_string() == "C=IT,L=Milano,OU=API Security - STAGING,O=NEXI,CN=NOMEAPP"


@pytest.mark.slow
@pytest.mark.parametrize("curve", ["P-256", "P-384"])
def test_openssl_ec_csr_is_accepted(openssl, curve):
    pem = openssl.req("ec", "-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{curve}")
    key = check_csr(pem).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.curve.name == {"P-256": "secp256r1", "P-384": "secp384r1"}[curve]


@pytest.mark.slow
def test_openssl_csr_without_eku_is_accepted(openssl):
    pem = openssl.req("noeku", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256")
    csr = check_csr(pem)
    with pytest.raises(x509.ExtensionNotFound):
        csr.extensions.get_extension_for_class(x509.ExtendedKeyUsage)


@pytest.mark.slow
def test_der_csr_is_accepted(openssl):
    openssl.req("der", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256")
    openssl.ok("req", "-in", "der.csr", "-outform", "DER", "-out", "der.der")
    assert check_csr(openssl.read("der.der")).subject == check_csr(openssl.read("der.csr")).subject


@pytest.mark.slow
def test_rsa_1024_is_refused(openssl):
    pem = openssl.req("weak", "-newkey", "rsa:1024", addext=("extendedKeyUsage=clientAuth",))
    with pytest.raises(CSRRejected) as err:
        check_csr(pem)
    assert err.value.reason == "RSA key is 1024 bits; 2048 is the minimum"


@pytest.mark.slow
def test_ca_true_is_refused(openssl):
    pem = openssl.req(
        "ca",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        addext=("basicConstraints=critical,CA:TRUE",),
    )
    with pytest.raises(CSRRejected, match="CA:TRUE"):
        check_csr(pem)


@pytest.mark.slow
def test_extra_eku_is_refused(openssl):
    pem = openssl.req(
        "extra",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        addext=("extendedKeyUsage=clientAuth,serverAuth",),
    )
    with pytest.raises(CSRRejected) as err:
        check_csr(pem)
    assert "serverAuth" in err.value.reason


@pytest.mark.slow
def test_server_auth_only_is_refused(openssl):
    pem = openssl.req(
        "srv",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        addext=("extendedKeyUsage=serverAuth",),
    )
    with pytest.raises(CSRRejected) as err:
        check_csr(pem)
    assert "serverAuth" in err.value.reason


@pytest.mark.slow
def test_key_cert_sign_is_refused(openssl):
    pem = openssl.req(
        "kcs",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        addext=("keyUsage=digitalSignature,keyCertSign",),
    )
    with pytest.raises(CSRRejected, match="keyCertSign"):
        check_csr(pem)


@pytest.mark.slow
def test_bad_self_signature_is_refused(openssl):
    pem = openssl.req("tamper", "-newkey", "rsa:2048", addext=("extendedKeyUsage=clientAuth",))
    check_csr(pem)  # the original is fine
    der = bytearray(pem_to_der(pem))
    # An RSA-2048 signature is the last 256 bytes of the DER; flip a bit well inside it.
    der[-100] ^= 0x01
    tampered = der_to_pem(bytes(der), "CERTIFICATE REQUEST")
    x509.load_pem_x509_csr(tampered)  # still a well-formed CSR...
    with pytest.raises(CSRRejected, match="signature"):  # ...but not a signed one
        check_csr(tampered)


@pytest.mark.slow
def test_secp256k1_is_refused(openssl):
    pem = openssl.req("k1", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp256k1")
    with pytest.raises(CSRRejected, match="secp256k1"):
        check_csr(pem)


@pytest.mark.slow
def test_ed25519_is_refused(openssl):
    pem = openssl.req("ed", "-newkey", "ed25519")
    with pytest.raises(CSRRejected, match="not accepted"):
        check_csr(pem)


# -- in-process CSRs for the cases openssl makes awkward ---------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   \n",
        b"this is not a CSR",
        os.urandom(300),
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        b"\x30\x03\x02\x01\x00",
        "not even bytes",
        None,
    ],
    ids=["empty", "blank", "text", "random", "bad-pem", "bad-der", "str", "none"],
)
def test_garbage_is_refused(data):
    with pytest.raises(CSRRejected):
        check_csr(data)


def test_certificate_instead_of_csr_is_refused(ca):
    with pytest.raises(CSRRejected, match="PKCS#10"):
        check_csr(ca.certificate_pem())


def test_tampered_subject_is_refused(rsa_key):
    der = bytearray(pem_to_der(build_csr(rsa_key, cn="alice-app")))
    at = der.index(b"alice-app")
    der[at] = ord("m")  # "mlice-app": the signed bytes change, the signature does not
    with pytest.raises(CSRRejected, match="signature"):
        check_csr(der_to_pem(bytes(der), "CERTIFICATE REQUEST"))


def test_rejection_is_a_value_error_with_reason(rsa_key):
    pem = build_csr(rsa_key, extensions=[(x509.BasicConstraints(ca=True, path_length=None), True)])
    with pytest.raises(ValueError) as err:
        check_csr(pem)
    assert isinstance(err.value, CSRRejected)
    assert err.value.reason == str(err.value)


@pytest.mark.parametrize("curve", [ec.SECP521R1(), ec.SECP256K1(), ec.SECP224R1()], ids=lambda c: c.name)
def test_other_ec_curves_are_refused(curve):
    with pytest.raises(CSRRejected, match="P-256 and P-384"):
        check_csr(build_csr(ec.generate_private_key(curve)))


def test_dsa_is_refused():
    key = dsa.generate_private_key(key_size=2048)
    with pytest.raises(CSRRejected, match="DSA"):
        check_csr(build_csr(key))


def test_ed25519_in_process_is_refused():
    with pytest.raises(CSRRejected, match="Ed25519"):
        check_csr(build_csr(ed25519.Ed25519PrivateKey.generate(), algorithm=None))


@pytest.mark.parametrize(
    "eku",
    [
        [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE],
        [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.CODE_SIGNING],
        [x509.ObjectIdentifier("1.3.6.1.4.1.99999.1")],
    ],
    ids=["any", "client+codesign", "private-oid"],
)
def test_eku_other_than_client_auth_is_refused(ec_key, eku):
    with pytest.raises(CSRRejected, match="only clientAuth"):
        check_csr(build_csr(ec_key, extensions=[(x509.ExtendedKeyUsage(eku), False)]))


def test_crl_sign_is_refused(ec_key):
    pem = build_csr(ec_key, extensions=[(_ku(digital_signature=True, crl_sign=True), True)])
    with pytest.raises(CSRRejected, match="cRLSign"):
        check_csr(pem)


def test_harmless_requests_are_accepted(rsa_key):
    pem = build_csr(
        rsa_key,
        extensions=[
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (_ku(digital_signature=True, key_encipherment=True), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
            (x509.SubjectAlternativeName([x509.DNSName("app.example")]), False),
        ],
    )
    assert check_csr(pem).public_bytes(serialization.Encoding.PEM) == pem


def test_str_pem_is_accepted(ec_key):
    assert check_csr(build_csr(ec_key).decode()).subject.rfc4514_string().startswith("C=IT")


def test_sha384_signed_csr_is_accepted(rsa_key):
    # The CSR's hash is only for proof of possession; the CA signs with SHA-256 anyway.
    check_csr(build_csr(rsa_key, algorithm=hashes.SHA384()))
