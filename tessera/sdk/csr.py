"""The developer-certificate CSR of the Nexi document, made without the ``openssl`` CLI.

``make_csr()`` gives the same request as::

    openssl req -nodes -newkey rsa:2048 -keyout NOMEAPP.key -out NOMEAPP.csr \\
        -subj '/CN=NOMEAPP/O=NEXI/OU=API Security - STAGING/L=Milano/C=IT/' \\
        -addext 'extendedKeyUsage=clientAuth'

the subject with its RDNs in the same order and string types (UTF8String, and
PrintableString for the country), a non-critical clientAuth extended key usage in the
extension request, an RSA 2048 key (or EC P-256), signed with SHA-256. The key is
returned as unencrypted PKCS#8 PEM, as ``-nodes`` writes it: keep it secret.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["make_csr"]


def make_csr(
    common_name: str = "NOMEAPP",
    *,
    organization: str = "NEXI",
    organizational_unit: str = "API Security - STAGING",
    locality: str = "Milano",
    country: str = "IT",
    key_type: str = "rsa",
) -> tuple[bytes, bytes]:
    """A new key and its CSR: ``(csr_pem, key_pem)``. ``key_type`` is ``"rsa"`` (2048 bits)
    or ``"ec"`` (P-256). Use ``organizational_unit="API Security - PRODUCTION"``-style
    values as the platform asks for each environment."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if key_type == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif key_type == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError('key_type must be "rsa" or "ec"')
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, organizational_unit),
            x509.NameAttribute(NameOID.LOCALITY_NAME, locality),
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
        ]
    )
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return csr.public_bytes(serialization.Encoding.PEM), key_pem
