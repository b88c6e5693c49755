"""Token builders for the JOSE tests, on jwcrypto (an implementation independent of joserfc).

Nothing here uses tessera's own signing or encryption code: assertions built
with these helpers are what a real, third-party client would send.
"""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

from jwcrypto import jwe as jjwe
from jwcrypto import jwk as jjwk
from jwcrypto import jws as jjws

from tessera.jose.keys import public_jwk

CLAIMS = {
    "iss": "client-7f3a",
    "sub": "client-7f3a",
    "aud": "https://as.example.test/token",
    "jti": "d4c1e2b0-6f0a-4b9e-9a51-0e8b1b7b3c11",
    "iat": 1_900_000_000,
    "exp": 1_900_000_060,
}


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_json(obj: Any) -> str:
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def jc_key(key: Any) -> jjwk.JWK:
    """A jwcrypto JWK from a cryptography key object or from a tessera (joserfc) key's public JWK."""
    if hasattr(key, "key_type"):  # joserfc key: go through its published form only
        return jjwk.JWK(**public_jwk(key))
    if hasattr(key, "private_numbers"):
        return _from_private(key)
    return jjwk.JWK.from_pyca(key)


@functools.lru_cache(maxsize=256)
def _from_private(key: Any) -> jjwk.JWK:
    """One jwcrypto JWK per key object: jwcrypto rebuilds a private RSA key from its numbers, with
    OpenSSL's consistency check (about 40 ms), the first time each JWK signs. The tests sign with a
    handful of client keys made once per module; they only sign with the JWK."""
    return jjwk.JWK.from_pyca(key)


def sign_inner(claims: dict[str, Any] | bytes, key: Any, alg: str, **header: Any) -> str:
    """A compact JWS signed by jwcrypto."""
    payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    token = jjws.JWS(payload)
    token.add_signature(
        key if isinstance(key, jjwk.JWK) else jc_key(key),
        alg=alg,
        protected=json.dumps({"alg": alg, "typ": "JWT", **header}),
    )
    return token.serialize(compact=True)


def encrypt_outer(
    plaintext: str | bytes,
    enc_key: Any,
    *,
    kid: str | None,
    alg: str = "RSA-OAEP-256",
    enc: str = "A256GCM",
    compact: bool = True,
    **header: Any,
) -> str:
    """A JWE (compact by default) made by jwcrypto to ``enc_key`` (the server's public key)."""
    protected: dict[str, Any] = {"alg": alg, "enc": enc, "cty": "JWT", **header}
    if kid is not None:
        protected["kid"] = kid
    data = plaintext.encode() if isinstance(plaintext, str) else plaintext
    token = jjwe.JWE(data, protected=json.dumps(protected), algs=[alg, enc])
    token.add_recipient(enc_key if isinstance(enc_key, jjwk.JWK) else jc_key(enc_key))
    return token.serialize(compact=compact)


def replace_part(token: str, index: int, value: str) -> str:
    parts = token.split(".")
    parts[index] = value
    return ".".join(parts)


def flip_char(segment: str, position: int | None = None) -> str:
    """Change one base64url character in the middle of ``segment`` (keeps it decodable)."""
    i = len(segment) // 2 if position is None else position
    c = segment[i]
    return segment[:i] + ("A" if c != "A" else "B") + segment[i + 1 :]
