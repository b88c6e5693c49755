"""The nested client assertion: a JWE (RFC 7516) wrapping a signed JWT (RFC 7519 §5.2, §11.2).

Two steps, kept apart because the caller decides which client's keys to try
between them:

1. :func:`decrypt_assertion` - the outer compact JWE, encrypted to one of the
   server's ``enc`` keys. Everything an attacker controls in the protected
   header is checked *before* any private-key operation; then joserfc decrypts.
2. :func:`verify_signed_assertion` - the inner compact JWS, signed by the
   client with a key bound to one of its certificates.

Only the compact serializations are accepted (RFC 7516 §7.1, RFC 7515 §7.1),
with fixed allow-lists (RFC 8725 §3.1, §3.2): no RSA1_5 (draft-ietf-jose-
deprecate-none-rsa15), no ``none``/HMAC inside, no compression (RFC 8725
§3.6), no header-supplied keys or key URLs, no ``crit`` extensions.

Decryption failures are deliberately uniform (RFC 7516 §11.5, RFC 3218
§2.3.2): whatever step fails - RSA-OAEP unpadding, a truncated IV or tag, a
tampered ciphertext or tag - the error reason is the same and the work done
is the same: an OAEP failure continues with a random CEK into the content
decryption step, and malformed IV/tag/encrypted-key segments are replaced by
dummies of the right size *for the ``enc`` in use* (GCM: 12-byte IV, 16-byte
tag; A128CBC-HS256: 16-byte IV, 16-byte tag; A256CBC-HS512: 16-byte IV,
32-byte tag) so the full RSA + content-decryption path still runs.

A JWE without ``kid`` (Nexi's reference backend sends none, and picks a random
key of the published JWKS) is opened by trying each published ``enc`` key in
turn (current, next, retired-but-unlapsed: exactly what ``jwks("enc", now)``
publishes), at most one decryption per published key. The first key that
decrypts wins: the sender chose that key, so the time a success takes tells it
nothing new. A failure always costs one full decryption per published key, and
gives the same reason as any other decryption failure, so it does not tell
which key (if any) came close.

The work per assertion is the cryptography and little else (issue 14: a PAR costs one
RSA-OAEP decryption and one signature verification). Each segment is decoded once and the
protected headers parsed once, by this module, with joserfc's own header registry
(``check_registry_header``: the same type rules joserfc applies) on top of the allow-lists
above; then the primitives run directly: the server key's RSA-OAEP unwrap (``cryptography``,
with joserfc's padding for the ``alg``, on the private key derived once per key,
``ManagedKey.rsa_decryption``), joserfc's content-decryption model for the ``enc``
(AES-GCM, AES-CBC + HMAC), and joserfc's JWS algorithm model for the inner signature (its
key checks and verification), with the client's keys imported once per certificate by the
caller. joserfc's generic JWE/JWS message machinery (which parses every segment again and
looks keys and algorithms up per call) is not on the path; tests/jose/test_nested_fastpath.py
checks, over many valid, malformed and tampered inputs, that this module and joserfc's
``jwe.decrypt_compact`` / ``jws.deserialize_compact`` accept and refuse the same tokens and
give the same plaintext and claims.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ec import (
    SECP256R1,
    EllipticCurvePrivateKey,
    EllipticCurvePublicKey,
)
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from joserfc import jwe
from joserfc import jws as _jws
from joserfc.errors import JoseError as _LibJoseError
from joserfc.jwk import ECKey, RSAKey
from joserfc.registry import JWE_HEADER_REGISTRY, JWS_HEADER_REGISTRY, check_registry_header
from joserfc.util import urlsafe_b64decode

from tessera.limits import MAX_TOKEN_BYTES

from .errors import JoseError
from .keys import MIN_RSA_BITS, rsa_bits
from .keyset import RSADecryptionKey, ServerKeys

__all__ = [
    "JWE_ALGS",
    "JWE_ENCS",
    "JWS_ALGS",
    "MAX_TOKEN_BYTES",
    "DECRYPT_FAILED",
    "decrypt_assertion",
    "verify_signed_assertion",
]

#: Key management algorithms (RFC 7518 §4.3). RSA1_5 is refused.
JWE_ALGS = ("RSA-OAEP-256", "RSA-OAEP")
#: Content encryption algorithms (RFC 7518 §5.2, §5.3). Nexi's reference backend sends
#: A128CBC-HS256 (provider-docs/reference-facts.md); A192* are not accepted.
JWE_ENCS = ("A128CBC-HS256", "A256CBC-HS512", "A128GCM", "A256GCM")
#: Inner signature algorithms (RFC 7518 §3.3-3.5). ``none`` and HS* are refused.
JWS_ALGS = ("RS256", "PS256", "ES256")

#: The one reason given for every failure once decryption has started.
DECRYPT_FAILED = "client_assertion could not be decrypted"

#: Header parameters that would let the sender choose or ship keys (RFC 8725 §3.10).
_FORBIDDEN_JWE_HEADERS = ("jku", "x5u", "jwk", "x5c")
_FORBIDDEN_JWS_HEADERS = ("jku", "x5u", "jwk", "crit", "b64")
#: Registered parameters whose value must be a string when present (RFC 7515 §4.1, RFC 7516 §4.1).
_STRING_HEADERS = ("kid", "typ", "cty", "x5t", "x5t#S256")

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
#: (IV bytes, tag bytes) per ``enc``: RFC 7518 §5.2.3, §5.2.5 (CBC-HMAC), §5.3 (GCM).
_IV_TAG_BYTES = {
    "A128CBC-HS256": (16, 16),
    "A256CBC-HS512": (16, 32),
    "A128GCM": (12, 16),
    "A256GCM": (12, 16),
}


# --------------------------------------------------------------------------- #
# joserfc's algorithm models, looked up once
# --------------------------------------------------------------------------- #

#: joserfc's limits on the segments of a compact JWE (``JWERegistry``), as base64url text:
#: a longer protected header is refused by joserfc before any decryption; here it takes the
#: uniform failure path. (The other segments either have one right length, checked below, or
#: fit under MAX_TOKEN_BYTES anyway.)
_MAX_JWE_HEADER_SEGMENT = jwe.JWERegistry.max_protected_header_length
#: joserfc's limits on a compact JWS's header (raised: room for an x5c chain; the token cap
#: still applies) and signature segments.
_MAX_JWS_HEADER_SEGMENT = 8192
_MAX_JWS_SIGNATURE_SEGMENT = _jws.JWSRegistry.max_signature_length


@dataclass(frozen=True)
class _Suite:
    """One allowed (``alg``, ``enc``) pair: joserfc's OAEP padding for the ``alg``, joserfc's
    content-decryption model for the ``enc``, and the sizes the uniform path needs."""

    alg: str
    enc: str
    padding: Any
    cipher: Any
    iv_bytes: int
    tag_bytes: int
    cek_bytes: int


def _suite(alg: str, enc: str) -> _Suite:
    key_model: Any = jwe.JWERegistry.algorithms["alg"][alg]  # RSA-OAEP: its ``padding`` (OAEP + hash)
    model = jwe.JWERegistry.algorithms["enc"][enc]
    iv_bytes, tag_bytes = _IV_TAG_BYTES[enc]
    return _Suite(alg, enc, key_model.padding, model, iv_bytes, tag_bytes, model.cek_size // 8)


_SUITES = {(alg, enc): _suite(alg, enc) for alg in JWE_ALGS for enc in JWE_ENCS}
_JWS_MODELS = {alg: _jws.JWSRegistry.algorithms[alg] for alg in JWS_ALGS}


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 7515 §5.2 step 4 / RFC 7516 §5.2: reject duplicate header names.
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate member")
    return out


#: One decoder for every protected header (``json.loads`` with a hook builds one per call).
_HEADER_JSON = json.JSONDecoder(object_pairs_hook=_no_duplicates)


def _decode_header(segment: str) -> dict[str, Any] | None:
    try:
        data = _HEADER_JSON.decode(urlsafe_b64decode(segment.encode("ascii")).decode("utf-8"))
    except (ValueError, TypeError, UnicodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _b64(segment: str) -> bytes | None:
    try:
        return urlsafe_b64decode(segment.encode("ascii"))
    except (ValueError, UnicodeError):
        return None


def _compact_parts(token: Any, count: int, what: str) -> list[str]:
    if isinstance(token, (bytes, bytearray)):
        try:
            token = bytes(token).decode("ascii")
        except UnicodeDecodeError:
            raise JoseError(f"{what} is malformed") from None
    if not isinstance(token, str):
        raise JoseError(f"{what} must be a string")
    if len(token) > MAX_TOKEN_BYTES:
        raise JoseError(f"{what} is too large")
    if not token.isascii():
        raise JoseError(f"{what} is malformed")
    if token.lstrip().startswith("{"):
        raise JoseError(f"{what} must use the compact serialization")
    parts = token.split(".")
    if len(parts) != count or not parts[0] or not all(_B64URL.fullmatch(p) for p in parts):
        raise JoseError(f"{what} must use the compact serialization")
    return parts


def _check_string_headers(header: dict[str, Any], what: str) -> None:
    for name in _STRING_HEADERS:
        if name in header and not isinstance(header[name], str):
            raise JoseError(f"{what} header is malformed")


def _check_registered_headers(header: dict[str, Any], registry: Any, what: str) -> None:
    """joserfc's own type rules for the registered header parameters (``x5c`` a list of
    strings, ``b64`` a boolean, ...), which its generic path applies before any key is used."""
    try:
        check_registry_header(registry, header)
    except (_LibJoseError, ValueError, TypeError):
        raise JoseError(f"{what} header is malformed") from None


# --------------------------------------------------------------------------- #
# outer JWE
# --------------------------------------------------------------------------- #


def decrypt_assertion(token: str, keys: ServerKeys, now: datetime) -> bytes:
    """Decrypt a compact-JWE client assertion; return its plaintext (a compact JWS).

    Before any decryption: size <= MAX_TOKEN_BYTES; exactly five base64url
    parts (JSON serialization refused); the protected header is a JSON object
    without duplicate names; ``alg`` in JWE_ALGS, ``enc`` in JWE_ENCS; no
    ``zip`` (refused before anything could be inflated); no
    ``jku``/``x5u``/``jwk``/``x5c``; no ``crit``; registered parameters of the
    registered types; ``kid``, when present, naming a live ``enc`` key. Without
    ``kid``, each published ``enc`` key is tried (see the module docstring). Every
    later failure raises ``JoseError(DECRYPT_FAILED)``.
    """
    parts = _compact_parts(token, 5, "client_assertion")
    header = _checked_jwe_header(parts[0])
    suite = _SUITES[(header["alg"], header["enc"])]
    if "kid" not in header:
        return _decrypt_without_kid(parts, suite, published_decryption_keys(keys, now))
    kid = header["kid"]
    if not kid:
        raise JoseError("JWE kid is empty")
    managed = keys.decryption_key(kid, now)
    key = None if managed is None else managed.rsa_decryption  # enc keys are RSA (keys.ENCRYPTION_ALGS)
    if key is None:
        raise JoseError("JWE kid does not name a decryption key")
    plaintext = _try_decrypt(parts, key, suite)
    if plaintext is None:
        raise JoseError(DECRYPT_FAILED)
    return plaintext


def _checked_jwe_header(segment: str) -> dict[str, Any]:
    """The JWE protected header, refused before any decryption unless it is a JSON object
    with an allowed ``alg`` and ``enc``, no ``zip``, ``jku``/``x5u``/``jwk``/``x5c`` or
    ``crit``, and registered parameters of their registered types."""
    header = _decode_header(segment)
    if header is None:
        raise JoseError("JWE protected header is not a JSON object")
    if header.get("alg") not in JWE_ALGS or not isinstance(header.get("alg"), str):
        raise JoseError("JWE alg is not allowed")
    if header.get("enc") not in JWE_ENCS or not isinstance(header.get("enc"), str):
        raise JoseError("JWE enc is not allowed")
    if "zip" in header:
        raise JoseError("compressed JWE (zip) is not accepted")
    for name in _FORBIDDEN_JWE_HEADERS:
        if name in header:
            raise JoseError(f"JWE header parameter {name} is not accepted")
    if "crit" in header:
        raise JoseError("JWE crit header is not accepted")
    _check_string_headers(header, "JWE")
    _check_registered_headers(header, JWE_HEADER_REGISTRY, "JWE")
    return header


def published_decryption_keys(keys: ServerKeys, now: datetime) -> list[RSADecryptionKey]:
    """The ``enc`` keys that ``keys.jwks("enc", now)`` publishes, in the same order
    (current, next, retired-but-unlapsed), ready to decrypt: the keys a kid-less JWE may be
    encrypted to."""
    return [key for mk in keys.decryption_keys(now) if (key := mk.rsa_decryption) is not None]


def _decrypt_without_kid(parts: list[str], suite: _Suite, candidates: list[RSADecryptionKey]) -> bytes:
    """At most one decryption per published key; the first that opens the JWE wins.

    A failure has tried every key, each on the full uniform path, and raises the one
    reason: neither the answer nor the time tells which key was (nearly) right."""
    for key in candidates:
        plaintext = _try_decrypt(parts, key, suite)
        if plaintext is not None:
            return plaintext
    raise JoseError(DECRYPT_FAILED)


def _try_decrypt(parts: list[str], key: RSADecryptionKey, suite: _Suite) -> bytes | None:
    """The plaintext, or None after the full uniform path (never an exception).

    RFC 7516 §5.2 for one recipient of a compact JWE, whose header was checked: the CEK
    unwrapped with the server key (an OAEP failure, or a CEK of the wrong length, goes on
    with a random CEK, RFC 7516 §11.5), then the content decrypted and authenticated with the
    protected header's base64url text as additional data (§5.2 steps 14-16)."""
    header_seg, ek_seg, iv_seg, ct_seg, tag_seg = parts
    ek, iv, ct, tag = _b64(ek_seg), _b64(iv_seg), _b64(ct_seg), _b64(tag_seg)
    malformed = len(header_seg) > _MAX_JWE_HEADER_SEGMENT
    # Replace malformed pieces by dummies of the right size and still run the
    # whole RSA + content-decryption path, so they cost what a bad tag costs. An encrypted
    # key of the wrong length or not below the modulus would otherwise be
    # rejected by the RSA primitive before the modular exponentiation.
    if ek is None or len(ek) != key.size or int.from_bytes(ek, "big") >= key.modulus:
        ek, malformed = bytes(key.size), True
    if iv is None or len(iv) != suite.iv_bytes:
        iv, malformed = bytes(suite.iv_bytes), True
    if tag is None or len(tag) != suite.tag_bytes:
        tag, malformed = bytes(suite.tag_bytes), True
    if ct is None:
        ct, malformed = b"", True
    try:
        cek = key.private.decrypt(ek, suite.padding)
    except ValueError:  # OAEP decoding failed: go on, as with a tampered ciphertext
        cek = b""
    if len(cek) != suite.cek_bytes:
        cek = secrets.token_bytes(suite.cek_bytes)
    plaintext: bytes | None
    try:
        plaintext = suite.cipher.decrypt(ct, tag, cek, iv, header_seg.encode("ascii"))
    except Exception:  # noqa: BLE001 - every decryption-stage failure must look the same
        plaintext = None
    if malformed:
        return None
    return plaintext


# --------------------------------------------------------------------------- #
# inner JWS
# --------------------------------------------------------------------------- #


def _usable_keys(candidate_keys: list[Any], alg: str) -> tuple[list[Any], bool]:
    """joserfc keys among ``candidate_keys`` that can verify ``alg``.

    RS256/PS256 need RSA >= 2048 bits; ES256 needs EC P-256. Anything else
    (symmetric secrets, PEM text, other curves) is skipped, so an HMAC key
    can never be derived from a public key (key confusion, RFC 8725 §2.1).
    ``cryptography`` keys are imported here (callers on a hot path pass joserfc keys
    imported once, tessera.core.assertions). Returns the keys and whether an RSA key was
    skipped for being too small.
    """
    usable: list[Any] = []
    too_small = False
    for cand in candidate_keys or ():
        if alg in ("RS256", "PS256"):
            if isinstance(cand, (RSAPublicKey, RSAPrivateKey)):
                if cand.key_size < MIN_RSA_BITS:
                    too_small = True
                    continue
                usable.append(RSAKey.import_key(cand))
            elif isinstance(cand, RSAKey):
                if rsa_bits(cand) < MIN_RSA_BITS:
                    too_small = True
                    continue
                usable.append(cand)
        elif alg == "ES256":
            if isinstance(cand, (EllipticCurvePublicKey, EllipticCurvePrivateKey)):
                if isinstance(cand.curve, SECP256R1):
                    usable.append(ECKey.import_key(cand))
            elif isinstance(cand, ECKey) and cand.curve_name == "P-256":
                usable.append(cand)
    return usable, too_small


def _checked_jws_header(segment: str) -> dict[str, Any]:
    """The inner JWS header: a JSON object with an allowed ``alg``, none of the refused
    parameters, and registered parameters of their registered types."""
    header = _decode_header(segment)
    if header is None:
        raise JoseError("JWS protected header is not a JSON object")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in JWS_ALGS:
        raise JoseError("JWS alg is not allowed")
    for name in _FORBIDDEN_JWS_HEADERS:
        if name in header:
            raise JoseError(f"JWS header parameter {name} is not accepted")
    _check_string_headers(header, "JWS")
    _check_registered_headers(header, JWS_HEADER_REGISTRY, "JWS")
    return header


def _verifies(model: Any, key: Any, signing_input: bytes, signature: bytes) -> bool:
    """joserfc's algorithm model on one candidate: its key checks (type, ``use``, ``alg``,
    ``key_ops``), then the verification; a key it refuses does not verify."""
    try:
        model.check_key(key)
        return bool(model.verify(signing_input, signature, key))
    except (_LibJoseError, ValueError, TypeError):
        return False


def verify_signed_assertion(jws: bytes | str, candidate_keys: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify the inner compact JWS against the client's candidate public keys.

    ``candidate_keys``: cryptography public keys or joserfc RSA/EC keys taken
    from the certificates bound to the client. The header ``alg`` must be in
    JWS_ALGS and fit the key type; ``jku``/``x5u``/``jwk``/``crit``/``b64`` are
    refused (an ``x5c`` hint is tolerated but never used to pick a key). Each
    usable candidate is tried. Returns ``(header, claims)``; claims are not
    validated here.
    """
    parts = _compact_parts(jws, 3, "signed assertion")
    header = _checked_jws_header(parts[0])
    alg: str = header["alg"]
    if not parts[2]:
        raise JoseError("signed assertion has no signature")

    usable, too_small = _usable_keys(candidate_keys, alg)
    if not usable:
        if too_small:
            raise JoseError("client RSA key is smaller than 2048 bits")
        raise JoseError("no client key fits the assertion's alg")

    header_seg, payload_seg, signature_seg = parts
    payload = _b64(payload_seg)
    if len(header_seg) > _MAX_JWS_HEADER_SEGMENT or len(signature_seg) > _MAX_JWS_SIGNATURE_SEGMENT or payload is None:
        raise JoseError("signed assertion is malformed")
    signature = _b64(signature_seg)
    signing_input = f"{header_seg}.{payload_seg}".encode("ascii")
    model = _JWS_MODELS[alg]
    if signature is None or not any(_verifies(model, key, signing_input, signature) for key in usable):
        raise JoseError("client_assertion signature is invalid")

    try:
        claims = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise JoseError("signed assertion payload is not JSON") from None
    if not isinstance(claims, dict):
        raise JoseError("signed assertion payload is not a JSON object")
    return dict(header), claims
