"""The server's own JWTs: access tokens (RFC 9068) and other self-issued JWTs.

Compact JWS (RFC 7515 §7.1) with header ``{alg, kid, x5t, typ}`` (``x5t``, the
SHA-1 thumbprint of the key's certificate, only for keys that have one: MobilePay's
ring). Only the
algorithm recorded on the :class:`~tessera.jose.keyset.ManagedKey` is ever
used or accepted for that key (RFC 8725 §3.1: never let the token choose the
algorithm). Claim validation (``exp``, ``aud``, ...) is the caller's job.

Hot path: keys arrive already parsed inside the ``ManagedKey``; the per-alg
joserfc registries are built once at import. Signing reuses, per key and ``typ``,
the protected-header segment (it never changes), and a signing function bound to
the key's ``cryptography`` private key, checked once by joserfc (``check_key``,
``get_op_key("sign")``): ES256 and RS256 then sign as joserfc's own algorithms do
(ECDSA over SHA-256 as the fixed-width ``r || s`` of RFC 7518 §3.4; RSASSA-PKCS1-v1_5
over SHA-256), without looking the key's operations up again for every token; any
other algorithm goes through joserfc's. So a token costs one JSON encoding of its
claims, one base64url pass and the signature itself (joserfc's ``serialize_compact``
would rebuild and re-check the header for every token).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from joserfc import jws
from joserfc.errors import JoseError as _LibJoseError
from joserfc.jwa import JWSAlgModel
from joserfc.jws import JWSRegistry
from joserfc.util import json_b64encode, urlsafe_b64decode, urlsafe_b64encode

from tessera.limits import MAX_TOKEN_BYTES

from .errors import JoseError
from .keys import SIGNING_ALGS
from .keyset import ManagedKey, ServerKeys
from .registry import norm_typ as _norm_typ
from .registry import single_alg_registry

__all__ = ["sign_jwt", "verify_own_jwt"]


_REGISTRIES: dict[str, JWSRegistry] = {alg: single_alg_registry(alg) for alg in SIGNING_ALGS}
_PARSE_REGISTRY = JWSRegistry(algorithms=SIGNING_ALGS)


Signer = Callable[[bytes], bytes]

#: (id of the parsed key, kid, alg, typ) -> (protected-header segment + ".", signing function).
_SIGNERS: dict[tuple[int, str, str, str | None], tuple[bytes, Signer]] = {}


def _sign_with(alg: JWSAlgModel, key: Any) -> Signer:
    """``alg.sign(·, key)``, bound once: straight to the private key for ES256 and RS256 (the
    same bytes as joserfc's; RS256 is deterministic, ES256 the same encoding), joserfc's own
    call for anything else."""
    private = key.get_op_key("sign")
    if alg.name == "ES256" and isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp256r1":
        ecdsa = ec.ECDSA(hashes.SHA256())

        def es256(signing_input: bytes) -> bytes:
            r, s = decode_dss_signature(private.sign(signing_input, ecdsa))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

        return es256
    if alg.name == "RS256" and isinstance(private, rsa.RSAPrivateKey):
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
        return lambda signing_input: private.sign(signing_input, pkcs1, sha256)
    return lambda signing_input: alg.sign(signing_input, key)


def _signer(key: ManagedKey, typ: str | None) -> tuple[bytes, Signer]:
    """The cached header segment and signing function for ``key`` (checked once per key and typ)."""
    cache_key = (id(key.key), key.kid, key.alg, typ)
    found = _SIGNERS.get(cache_key)
    if found is None:
        registry = _REGISTRIES.get(key.alg)
        if registry is None:
            raise JoseError("unsupported signing algorithm")
        header: dict[str, Any] = {"alg": key.alg, "kid": key.kid}
        if key.x5t:  # RFC 7515 §4.1.7: the key's certificate, as MobilePay's tokens name it
            header["x5t"] = key.x5t
        if typ:
            header["typ"] = typ
        try:
            registry.check_header(header)
            alg = registry.get_alg(key.alg)
            alg.check_key(key.key)
            sign = _sign_with(alg, key.key)
        except (_LibJoseError, ValueError, TypeError) as exc:
            raise JoseError("signing failed") from exc
        if len(_SIGNERS) > 64:  # rotations only ever add a handful
            _SIGNERS.clear()
        found = _SIGNERS[cache_key] = (json_b64encode(header) + b".", sign)
    return found


def sign_jwt(claims: dict[str, Any], key: ManagedKey, *, typ: str | None = "at+jwt") -> str:
    """Sign ``claims`` as a compact JWS with ``key`` (header ``{alg, kid[, x5t], typ}``).

    ``typ`` defaults to ``at+jwt`` (RFC 9068 §2.1); pass ``None`` to omit it.
    """
    if not isinstance(key, ManagedKey) or key.use != "sig":
        raise JoseError("not a signing key")
    if key.status == "retired":
        raise JoseError("retired keys do not sign")
    if not isinstance(claims, dict):
        raise JoseError("claims must be a JSON object")
    header_segment, sign = _signer(key, typ)
    try:
        payload = orjson.dumps(claims)
    except (TypeError, ValueError):
        raise JoseError("claims are not JSON serializable") from None
    signing_input = header_segment + urlsafe_b64encode(payload)
    try:
        signature = sign(signing_input)
    except (_LibJoseError, ValueError, TypeError) as exc:
        raise JoseError("signing failed") from exc
    return (signing_input + b"." + urlsafe_b64encode(signature)).decode("ascii")


Verifier = Callable[[bytes, bytes], bool]

#: (id of the parsed key, kid, alg) -> its verifying function (``_verifier``).
_VERIFIERS: dict[tuple[int, str, str], Verifier] = {}
#: Header segments of tokens that verified -> the header joserfc decoded from them (``verify_own_jwt``).
_HEADERS: dict[bytes, dict[str, Any]] = {}
_MAX_SIGNATURE = _PARSE_REGISTRY.max_signature_length


def _verify_with(alg: JWSAlgModel, key: Any) -> Verifier:
    """``alg.verify(·, ·, key)``, bound once: straight to the public key for ES256 (the fixed-width
    ``r || s`` of RFC 7518 §3.4 turned into DER, as joserfc's own ``ESAlgorithm.verify`` does),
    joserfc's own call for anything else."""
    public = key.get_op_key("verify")
    if alg.name == "ES256" and isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1":
        ecdsa = ec.ECDSA(hashes.SHA256())

        def es256(signing_input: bytes, signature: bytes) -> bool:
            if len(signature) != 64:
                return False
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
            try:
                public.verify(der, signing_input, ecdsa)
            except InvalidSignature:
                return False
            return True

        return es256
    return lambda signing_input, signature: bool(alg.verify(signing_input, signature, key))


def _verifier(key: ManagedKey) -> Verifier:
    """The cached verifying function of ``key`` (its key checked once by joserfc, ``check_key``)."""
    cache_key = (id(key.key), key.kid, key.alg)
    found = _VERIFIERS.get(cache_key)
    if found is None:
        registry = _REGISTRIES[key.alg]
        alg = registry.get_alg(key.alg)
        alg.check_key(key.key)
        if len(_VERIFIERS) > 64:  # rotations only ever add a handful
            _VERIFIERS.clear()
        found = _VERIFIERS[cache_key] = _verify_with(alg, key.key)
    return found


def verify_own_jwt(token: str, keys: ServerKeys, *, typ: str | None, now: datetime) -> dict[str, Any]:
    """Verify a JWT this server issued and return its claims.

    The key is found by ``kid`` among live ``sig`` keys
    (:meth:`ServerKeys.verification_key`); the header ``alg`` must equal that
    key's alg; ``typ`` is compared when given. ``exp``/``aud`` are NOT checked.

    A token whose header segment is, byte for byte, that of a token verified before (every
    token of one key and ``typ`` has the same: ``sign_jwt``) takes a shorter way to the same
    checks: the header that joserfc decoded then, checked again by the same rules
    (``_header_key``), the signature by the key's bound function (``_verifier``), the payload
    by the same strict base64url and JSON. Anything else goes through joserfc's
    ``extract_compact`` and ``validate_compact``; ``tests/jose/test_jwt_fast_verify.py``
    holds the two ways to the same answers.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES:  # ours are far smaller
        raise JoseError("malformed token")
    header = _HEADERS.get(token.partition(".")[0].encode("ascii", "replace"))
    if header is not None:
        return _verify_known(token, header, keys, typ=typ, now=now)
    try:
        obj = jws.extract_compact(token.encode("ascii"), registry=_PARSE_REGISTRY)
    except (_LibJoseError, ValueError, TypeError, UnicodeError):
        raise JoseError("malformed token") from None
    mk = _header_key(obj.headers(), keys, typ=typ, now=now)
    try:
        valid = jws.validate_compact(obj, mk.key, registry=_REGISTRIES[mk.alg])
    except (_LibJoseError, ValueError, TypeError):
        valid = False
    if not valid:
        raise JoseError("invalid token signature")
    claims = _claims(obj.payload)
    head = obj.segments["header"]
    if head not in _HEADERS:
        if len(_HEADERS) >= 64:  # a handful of keys and types; only headers of verified tokens come here
            _HEADERS.clear()
        _HEADERS[head] = dict(obj.headers())
    return claims


def _verify_known(
    token: str, header: dict[str, Any], keys: ServerKeys, *, typ: str | None, now: datetime
) -> dict[str, Any]:
    """``verify_own_jwt`` for a header segment seen before in a token that verified: the same
    checks in the same order as joserfc's way, on the header it decoded then."""
    try:
        raw = token.encode("ascii")
    except UnicodeError:
        raise JoseError("malformed token") from None
    parts = raw.split(b".")
    if len(parts) != 3 or len(parts[2]) > _MAX_SIGNATURE:
        raise JoseError("malformed token")
    head, payload_segment, signature_segment = parts
    try:
        payload = urlsafe_b64decode(payload_segment)
    except (TypeError, ValueError):
        raise JoseError("malformed token") from None
    mk = _header_key(header, keys, typ=typ, now=now)
    try:
        signature = urlsafe_b64decode(signature_segment)
        valid = _verifier(mk)(head + b"." + payload_segment, signature)
    except (_LibJoseError, ValueError, TypeError):
        valid = False
    if not valid:
        raise JoseError("invalid token signature")
    return _claims(payload)


def _claims(payload: bytes) -> dict[str, Any]:
    try:
        claims = orjson.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise JoseError("token payload is not JSON") from None
    if not isinstance(claims, dict):
        raise JoseError("token payload is not a JSON object")
    return claims


def _header_key(header: Any, keys: ServerKeys, *, typ: str | None, now: datetime) -> ManagedKey:
    """The live ``sig`` key the header names, once the header fits it (``alg``, ``x5t``,
    ``typ``; no ``crit`` or ``b64``)."""
    if not isinstance(header, dict):
        raise JoseError("malformed token")
    if "crit" in header or "b64" in header:
        raise JoseError("unsupported token header")
    mk = keys.verification_key(header.get("kid"), now)
    if mk is None:
        raise JoseError("unknown signing key")
    if header.get("alg") != mk.alg:
        raise JoseError("token alg does not match its key")
    if "x5t" in header and header["x5t"] != mk.x5t:
        raise JoseError("token x5t does not match its key")
    if typ is not None and _norm_typ(header.get("typ")) != _norm_typ(typ):
        raise JoseError("unexpected token type")
    return mk
