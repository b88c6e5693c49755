"""Keys and certificates for the SDK: from a path, from PEM bytes or text, or from
``cryptography`` objects; encrypted keys take ``password=`` and never prompt.

A ``str`` holding ``-----BEGIN`` is PEM text; any other ``str`` (or a ``Path``) is a file.
``bytes`` are PEM (or DER). An encrypted key (PKCS#8 ``ENCRYPTED PRIVATE KEY`` or a
traditional ``Proc-Type: 4,ENCRYPTED`` key) needs ``password``; without it the SDK raises
``ValueError`` instead of letting OpenSSL ask on the terminal.

The client certificate goes into the TLS context through :func:`load_client_certificate`,
which never hands OpenSSL the caller's key file: it writes the chain and the key, encrypted
under a random one-time password, to a private temporary file, loads it with that password,
and deletes it.
"""

from __future__ import annotations

import os
import secrets
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = [
    "CertificateInput",
    "Password",
    "PrivateKey",
    "PrivateKeyInput",
    "load_certificates",
    "load_client_certificate",
    "load_private_key",
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
CertificateInput = str | Path | bytes | x509.Certificate | Sequence[x509.Certificate]
PrivateKeyInput = str | Path | bytes | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
Password = str | bytes | None

_PEM_MARK = "-----BEGIN"


def _read(value: str | Path | bytes, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str) and _PEM_MARK in value:
        return value.encode("ascii", "replace")
    path = Path(value)
    try:
        return path.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read the {what} file {str(path)!r}: {e.strerror or e}") from None


def load_certificates(value: CertificateInput) -> list[x509.Certificate]:
    """The certificate (and any chain after it, as ``openssl pkcs7 -print_certs`` writes
    it): a path, PEM bytes or text, DER bytes, a certificate or a list of them."""
    if isinstance(value, x509.Certificate):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        certs = list(value)
        if not certs or not all(isinstance(c, x509.Certificate) for c in certs):
            raise ValueError("a certificate list must hold x509.Certificate objects")
        return certs
    data = _read(value, "certificate")
    try:
        if _PEM_MARK.encode() in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise ValueError("the certificate is not a PEM or DER X.509 certificate") from None


def load_private_key(value: PrivateKeyInput, password: Password = None) -> PrivateKey:
    """An RSA or EC private key: a path, PEM bytes or text (PKCS#8 or traditional,
    encrypted or not), DER bytes, or a ``cryptography`` key object."""
    if isinstance(value, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        return value
    data = _read(value, "key")
    secret = password.encode("utf-8") if isinstance(password, str) else password
    try:
        if _PEM_MARK.encode() in data:
            key = serialization.load_pem_private_key(data, password=secret)
        else:
            key = serialization.load_der_private_key(data, password=secret)
    except TypeError:
        if secret is None:
            raise ValueError("the private key is encrypted: pass password=") from None
        raise ValueError("the private key is not encrypted: pass password=None") from None
    except ValueError:
        if secret is not None:
            raise ValueError("the private key cannot be read: wrong password, or not a private key") from None
        raise ValueError("the private key cannot be read (not a PEM or DER private key)") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise ValueError("the private key must be RSA or EC")
    return key


def _spki(key: object) -> bytes:
    public = key.public_key()  # type: ignore[attr-defined]
    der: bytes = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


def load_client_certificate(ctx: ssl.SSLContext, certificates: list[x509.Certificate], key: PrivateKey) -> None:
    """Load the client certificate chain and its key into ``ctx`` without a prompt and
    without ever writing the key in the clear."""
    if _spki(certificates[0]) != _spki(key):
        raise ValueError("the certificate does not match the private key")
    one_time = secrets.token_bytes(32)
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
    pem += key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(one_time)
    )
    with tempfile.TemporaryDirectory(prefix="tessera-sdk-") as directory:
        path = os.path.join(directory, "client.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        ctx.load_cert_chain(path, password=one_time)
