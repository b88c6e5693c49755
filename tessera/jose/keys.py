"""Server key generation, sealing at rest, and public JWK export.

* Keys are joserfc JWK objects (RFC 7517) carrying ``alg``, ``use`` and a
  ``kid`` equal to their RFC 7638 JWK thumbprint (SHA-256).
* Private keys are sealed at rest with AES-256-GCM (NIST SP 800-38D) under a
  32-byte key-encryption key (KEK); the ``kid`` is bound as additional
  authenticated data so a blob cannot be swapped onto another key's row.
* :func:`public_jwk` is the only way key material leaves this layer for
  publication; it copies an explicit allow-list of public members
  (RFC 7518 §6.2.1, §6.3.1; RFC 8037 §2) and refuses to return anything that
  carries a private member.
"""

from __future__ import annotations

import binascii
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateNumbers, RSAPublicNumbers
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc.jwk import ECKey, JWKRegistry, KeyParameters, OKPKey, RSAKey
from joserfc.util import base64_to_int, urlsafe_b64decode, urlsafe_b64encode

from .errors import JoseError

__all__ = [
    "SIGNING_ALGS",
    "ENCRYPTION_ALGS",
    "MIN_RSA_BITS",
    "AsymmetricKey",
    "generate_signing_key",
    "generate_encryption_key",
    "seal_private_key",
    "open_private_key",
    "public_jwk",
    "check_key_for_alg",
]

#: What the server may sign with (RFC 7518 §3.3/§3.4, RFC 8037 §3.1).
SIGNING_ALGS = ("ES256", "RS256", "EdDSA")
#: Key management algorithms a server encryption key may be used with
#: (RFC 7518 §4.3). Generated keys are labelled with the first one.
ENCRYPTION_ALGS = ("RSA-OAEP-256", "RSA-OAEP")
#: RFC 7518 §3.3 / §4.3: "A key of size 2048 bits or larger MUST be used".
MIN_RSA_BITS = 2048

AsymmetricKey = RSAKey | ECKey | OKPKey

_SEAL_VERSION = "v1"
_NONCE_BYTES = 12  # 96-bit IV, NIST SP 800-38D §8.2
_KEK_BYTES = 32  # AES-256

#: Public members per key type, RFC 7518 §6.2.1 (EC), §6.3.1 (RSA), RFC 8037 §2 (OKP).
_PUBLIC_MEMBERS: dict[str, tuple[str, ...]] = {
    "RSA": ("n", "e"),
    "EC": ("crv", "x", "y"),
    "OKP": ("crv", "x"),
}
#: Every private (or symmetric) member a JWK can carry; never published.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


# --------------------------------------------------------------------------- #
# generation
# --------------------------------------------------------------------------- #


def generate_signing_key(alg: str = "ES256") -> AsymmetricKey:
    """Generate a fresh private signing key for ``alg``.

    ES256 -> EC P-256, RS256 -> RSA 2048, EdDSA -> OKP Ed25519. The key
    carries ``alg``, ``use="sig"`` and ``kid`` = RFC 7638 thumbprint.
    """
    params: KeyParameters = {"alg": alg, "use": "sig"}
    key: AsymmetricKey
    if alg == "ES256":
        key = ECKey.generate_key("P-256", parameters=params)
    elif alg == "RS256":
        key = RSAKey.generate_key(MIN_RSA_BITS, parameters=params)
    elif alg == "EdDSA":
        key = OKPKey.generate_key("Ed25519", parameters=params)
    else:
        raise JoseError("unsupported signing algorithm")
    key.ensure_kid()  # RFC 7638 thumbprint over the required public members
    return key


def generate_encryption_key(bits: int = 2048) -> RSAKey:
    """Generate an RSA key for receiving JWEs (RSA-OAEP-256, ``use="enc"``)."""
    if not isinstance(bits, int) or bits < MIN_RSA_BITS or bits % 8:
        raise JoseError("RSA encryption keys must be at least 2048 bits")
    key = RSAKey.generate_key(bits, parameters={"alg": ENCRYPTION_ALGS[0], "use": "enc"})
    key.ensure_kid()
    return key


# --------------------------------------------------------------------------- #
# checks shared with the key set
# --------------------------------------------------------------------------- #


def rsa_bits(key: Any) -> int:
    """Modulus size in bits of an RSA key (joserfc or cryptography)."""
    raw = key.public_key if isinstance(key, RSAKey) else key
    return int(raw.key_size)


def check_key_for_alg(key: Any, alg: str) -> None:
    """Raise :class:`JoseError` unless ``key`` is the right type for ``alg``.

    Covers the server's own algorithms: SIGNING_ALGS and ENCRYPTION_ALGS.
    """
    if alg == "ES256":
        ok = isinstance(key, ECKey) and key.curve_name == "P-256"
    elif alg == "EdDSA":
        ok = isinstance(key, OKPKey) and key.curve_name == "Ed25519"
    elif alg == "RS256" or alg in ENCRYPTION_ALGS:
        ok = isinstance(key, RSAKey)
        if ok and rsa_bits(key) < MIN_RSA_BITS:
            raise JoseError("RSA keys must be at least 2048 bits")
    else:
        raise JoseError("unsupported key algorithm")
    if not ok:
        raise JoseError("key type does not match its algorithm")


# --------------------------------------------------------------------------- #
# sealing at rest
# --------------------------------------------------------------------------- #


def _check_kek(kek: bytes) -> AESGCM:
    if not isinstance(kek, (bytes, bytearray)) or len(kek) != _KEK_BYTES:
        raise JoseError("key-encryption key must be 32 bytes")
    return AESGCM(bytes(kek))


def seal_private_key(key: AsymmetricKey, kek: bytes) -> str:
    """Seal a private key for storage: ``"v1.<b64url nonce>.<b64url ct>"``.

    The plaintext is the private JWK (JSON); AES-256-GCM with a random 96-bit
    nonce and AAD = UTF-8 ``kid``.
    """
    aead = _check_kek(kek)
    if not isinstance(key, (RSAKey, ECKey, OKPKey)) or not key.is_private:
        raise JoseError("only private asymmetric keys can be sealed")
    kid = key.kid
    if not kid:
        raise JoseError("key has no kid")
    plaintext = json.dumps(key.as_dict(private=True), separators=(",", ":"), sort_keys=True)
    nonce = os.urandom(_NONCE_BYTES)
    ct = aead.encrypt(nonce, plaintext.encode("utf-8"), kid.encode("utf-8"))
    return ".".join((_SEAL_VERSION, urlsafe_b64encode(nonce).decode(), urlsafe_b64encode(ct).decode()))


def open_private_key(blob: str, kek: bytes, kid: str) -> AsymmetricKey:
    """Open a blob made by :func:`seal_private_key`; the inverse operation.

    Raises :class:`JoseError` on a wrong KEK, any tampering, a malformed blob,
    or when ``kid`` is not the kid the blob was sealed for.
    """
    aead = _check_kek(kek)
    if not isinstance(blob, str) or not isinstance(kid, str) or not kid:
        raise JoseError("sealed key is malformed")
    parts = blob.split(".")
    if len(parts) != 3 or parts[0] != _SEAL_VERSION:
        raise JoseError("sealed key is malformed")
    try:
        nonce = urlsafe_b64decode(parts[1].encode("ascii"))
        ct = urlsafe_b64decode(parts[2].encode("ascii"))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise JoseError("sealed key is malformed") from None
    if len(nonce) != _NONCE_BYTES:
        raise JoseError("sealed key is malformed")
    try:
        plaintext = aead.decrypt(nonce, ct, kid.encode("utf-8"))
    except InvalidTag:
        # wrong KEK, tampered blob and kid mismatch are indistinguishable here
        raise JoseError("sealed key could not be opened") from None
    try:
        data = json.loads(plaintext)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        key = _import_opened(data)
    except Exception:  # noqa: BLE001 - any import failure is "malformed"
        raise JoseError("sealed key is malformed") from None
    if not isinstance(key, (RSAKey, ECKey, OKPKey)) or not key.is_private:
        raise JoseError("sealed key is malformed")
    if key.kid != kid:
        raise JoseError("sealed key does not match its kid")
    return key


_RSA_PRIVATE_MEMBERS = ("n", "e", "d", "p", "q", "dp", "dq", "qi")


def _import_opened(data: dict[str, Any]) -> Any:
    """The key a sealed blob held, as joserfc's ``JWKRegistry.import_key`` would give it.

    An RSA private key is made without OpenSSL's consistency check (``RSA_check_key``: about 35 ms
    for a 2,048-bit key, where making the key object takes 0.2 ms). The check guards against a key
    someone else supplied; this one was generated here and its JWK came out of AES-GCM under the KEK,
    bound to its kid, so it is the key that was sealed, bit for bit. Every server start and every
    key-ring reload (a rotation notice, on each worker) opens each RSA key in the ring: four at least.
    Anything else, an RSA key with other members included, goes through joserfc unchanged.
    """
    if data.get("kty") != "RSA" or "oth" in data or not all(isinstance(data.get(m), str) for m in _RSA_PRIVATE_MEMBERS):
        return JWKRegistry.import_key(data)
    RSAKey.validate_dict_key(data)
    n, e, d, p, q, dp, dq, qi = (base64_to_int(data[m]) for m in _RSA_PRIVATE_MEMBERS)
    numbers = RSAPrivateNumbers(p, q, d, dp, dq, qi, RSAPublicNumbers(e, n))
    return RSAKey(numbers.private_key(unsafe_skip_rsa_key_validation=True), data)


# --------------------------------------------------------------------------- #
# publication
# --------------------------------------------------------------------------- #


def public_jwk(key: AsymmetricKey) -> dict[str, Any]:
    """The public JWK of ``key``: public members + ``kid``, ``use``, ``alg``.

    Built from an allow-list, then checked: a result carrying any of
    d/p/q/dp/dq/qi/oth/k is never returned (symmetric keys are refused).
    """
    kty = getattr(key, "key_type", None)
    members = _PUBLIC_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise JoseError("only RSA, EC and OKP keys can be published")
    full = key.as_dict(private=False)
    out: dict[str, Any] = {"kty": kty}
    for name in members:
        out[name] = full[name]
    out["kid"] = key.kid or key.thumbprint()
    for name in ("use", "alg"):
        if name in full:
            out[name] = full[name]
    if PRIVATE_MEMBERS.intersection(out):  # explicit, not `assert` (survives -O)
        raise JoseError("refusing to publish private key members")
    return out
