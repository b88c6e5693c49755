"""Nested client assertions: a JWS signed with the developer certificate's key, encrypted
into a compact JWE for the platform's ``enc`` key (RFC 7519 §5.2 and §11.2).

With ``minimal_headers=True`` (what :class:`tessera.sdk.nexi.NexiSoftPOSClient` sends by
default, as Nexi's reference backend does) the inner JWS header is ``{"alg": "RS256"}`` and
the outer JWE header ``{"alg": "RSA-OAEP-256", "enc": "A128CBC-HS256"}``: no ``kid``, ``typ``,
``cty`` or ``x5t#S256``. Otherwise the inner header is ``{"alg": "RS256" | "ES256", "typ":
"JWT", "x5t#S256": ...}`` and the outer one ``{"alg", "enc", "kid", "cty": "JWT"}``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwe, jws
from joserfc.jwk import ECKey, RSAKey

from .mtls import thumbprint

__all__ = ["build_nested_assertion", "x5t_s256", "signing_alg"]

_JWE_ALGS = ("RSA-OAEP-256", "RSA-OAEP")
_JWE_ENCS = ("A128CBC-HS256", "A256CBC-HS512", "A128GCM", "A256GCM")
_MIN_RSA_BITS = 2048


def x5t_s256(certificate_pem: bytes) -> str:
    """``x5t#S256`` of a PEM certificate: base64url SHA-256 of its DER, unpadded (RFC 7515
    §4.1.8; :func:`tessera.sdk.mtls.thumbprint`)."""
    cert = x509.load_pem_x509_certificate(certificate_pem)
    return thumbprint(cert.public_bytes(serialization.Encoding.DER))


def signing_alg(private_key: Any) -> str:
    """RS256 for an RSA key (>= 2048 bits), ES256 for an EC P-256 key."""
    if isinstance(private_key, rsa.RSAPrivateKey):
        if private_key.key_size < _MIN_RSA_BITS:
            raise ValueError("the signing key is an RSA key under 2048 bits")
        return "RS256"
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(private_key.curve, ec.SECP256R1):
        return "ES256"
    raise ValueError("the signing key must be RSA (2048+ bits) or EC P-256")


def build_nested_assertion(
    claims: dict[str, Any],
    *,
    signing_key_pem: bytes | None = None,
    certificate_pem: bytes | None,
    encryption_jwk: dict[str, Any],
    alg: str = "RSA-OAEP-256",
    enc: str = "A256GCM",
    minimal_headers: bool = False,
    signing_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
) -> str:
    """Sign ``claims`` with ``signing_key_pem`` (unencrypted PEM) and encrypt the JWS to
    ``encryption_jwk`` (a public RSA JWK). With ``certificate_pem``, the certificate must hold
    the signing key's public half, and (unless ``minimal_headers``) the JWS header names it by
    ``x5t#S256``. ``minimal_headers``: only ``alg`` in the JWS header and only ``alg``/``enc``
    in the JWE header, as Nexi's reference backend sends them. Returns the compact JWE.

    ``signing_key``: the private key already loaded (``cryptography``'s RSA or EC key), instead of
    ``signing_key_pem``. Loading a PEM checks an RSA key's consistency (about 40 ms of CPU for
    2,048 bits), so a client that signs an assertion per token loads its key once and passes it
    here, as :class:`~tessera.sdk.NexiSoftPOSClient` does."""
    if alg not in _JWE_ALGS:
        raise ValueError(f"alg must be one of {', '.join(_JWE_ALGS)}")
    if enc not in _JWE_ENCS:
        raise ValueError(f"enc must be one of {', '.join(_JWE_ENCS)}")
    private_key: Any
    if signing_key is None and signing_key_pem is not None:
        private_key = serialization.load_pem_private_key(signing_key_pem, password=None)
    elif signing_key is not None and signing_key_pem is None:
        private_key = signing_key
    else:
        raise ValueError("give the signing key once: signing_key_pem or signing_key")
    sig_alg = signing_alg(private_key)
    header: dict[str, Any] = {"alg": sig_alg} if minimal_headers else {"alg": sig_alg, "typ": "JWT"}
    if certificate_pem is not None:
        cert = x509.load_pem_x509_certificate(certificate_pem)
        if _spki(cert.public_key()) != _spki(private_key.public_key()):
            raise ValueError("the certificate does not match the signing key")
        if not minimal_headers:
            header["x5t#S256"] = x5t_s256(certificate_pem)
    signer: RSAKey | ECKey
    if isinstance(private_key, rsa.RSAPrivateKey):
        signer = RSAKey.import_key(private_key)
    else:
        assert isinstance(private_key, ec.EllipticCurvePrivateKey)  # signing_alg allows these two only
        signer = ECKey.import_key(private_key)
    payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    signed = jws.serialize_compact(header, payload, signer, algorithms=[sig_alg])

    recipient = _encryption_key(encryption_jwk, need_kid=not minimal_headers)
    if minimal_headers:
        protected = {"alg": alg, "enc": enc}
    else:
        protected = {"alg": alg, "enc": enc, "kid": encryption_jwk["kid"], "cty": "JWT"}
    return jwe.encrypt_compact(protected, signed.encode("ascii"), recipient, algorithms=[alg, enc])


def _spki(public_key: Any) -> bytes:
    """A public key's SubjectPublicKeyInfo (DER): equal for the two halves of one key."""
    der: bytes = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


def _encryption_key(jwk: dict[str, Any], *, need_kid: bool = True) -> RSAKey:
    if not isinstance(jwk, dict) or jwk.get("kty") != "RSA":
        raise ValueError("the encryption key must be an RSA JWK")
    if need_kid and (not isinstance(jwk.get("kid"), str) or not jwk["kid"]):
        raise ValueError("the encryption key has no kid")
    if jwk.get("use", "enc") != "enc":
        raise ValueError("the encryption key is not an enc key")
    n = jwk.get("n")
    if not isinstance(n, str) or not isinstance(jwk.get("e"), str):
        raise ValueError("the encryption key lacks n or e")
    if int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4)), "big").bit_length() < _MIN_RSA_BITS:
        raise ValueError("the encryption key is an RSA key under 2048 bits")
    return RSAKey.import_key({k: jwk[k] for k in ("kty", "n", "e", "kid") if k in jwk})  # never private members
