"""The runtime view of the server's own keys and its published JWK Sets.

A key goes ``next`` (published ahead of use, RFC 7517 §5 / OIDC key
rotation) -> ``current`` (signs, or is the advertised encryption key) ->
``retired`` (no longer used, still published and accepted until
``retire_at``, so tokens and assertions made just before a rotation keep
working).

Keys come in *rings*: the shared ring (``ring=None``) signs every profile's
tokens, except a profile listed in :data:`PROFILE_RINGS`, whose tokens are
signed by its own ring (MobilePay: RS256 with an X.509 certificate, ``x5c`` and
``x5t`` in its JWKS and ``x5t`` in the token header, as the provider's keys are).
Each ring rotates on its own: one ``current`` key per (use, ring).

:class:`ServerKeys` is immutable after construction apart from its JWKS cache;
keys are parsed once, by whoever builds the :class:`ManagedKey` list.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from joserfc.jwk import RSAKey

from .errors import JoseError
from .keys import ENCRYPTION_ALGS, SIGNING_ALGS, AsymmetricKey, check_key_for_alg, public_jwk

__all__ = ["ManagedKey", "RSADecryptionKey", "ServerKeys", "USES", "STATUSES", "PROFILE_RINGS", "x5t_of"]

USES = ("sig", "enc")
STATUSES = ("next", "current", "retired")
_ALGS_BY_USE = {"sig": SIGNING_ALGS, "enc": ENCRYPTION_ALGS}
_STATUS_ORDER = {"current": 0, "next": 1, "retired": 2}

#: Profiles whose tokens are signed by a ring of their own, and that ring's algorithm.
#: MobilePay's integrator tokens are RS256 with ``kid`` and ``x5t`` (provider-docs/reference-facts.md).
PROFILE_RINGS: dict[str, str] = {"mobilepay": "RS256"}


def x5t_of(der: bytes) -> str:
    """RFC 7515 §4.1.7 / RFC 7517 §4.8: base64url of the certificate's SHA-1 digest."""
    return base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode("ascii")  # noqa: S324 - the spec's digest


@dataclass(frozen=True)
class RSADecryptionKey:
    """An ``enc`` key made ready for RSA-OAEP decryption (tessera.jose.nested): the
    ``cryptography`` private key and its modulus, taken from the joserfc key once. Kept with
    its :class:`ManagedKey` (``ManagedKey.rsa_decryption``), so a rotation, which builds a
    new key set, drops it with the rest."""

    kid: str
    key: RSAKey
    private: RSAPrivateKey
    modulus: int
    #: the modulus' length in bytes: the one length an RSA-OAEP encrypted key may have
    size: int

    @classmethod
    def of(cls, kid: str, key: RSAKey) -> RSADecryptionKey:
        private = key.private_key
        if not isinstance(private, RSAPrivateKey):
            raise JoseError("an RSA decryption key needs its private key")
        modulus = private.public_key().public_numbers().n
        return cls(kid, key, private, modulus, (modulus.bit_length() + 7) // 8)


@dataclass(frozen=True)
class ManagedKey:
    """One server key and its place in the rotation.

    ``retire_at`` (timezone-aware) matters for ``retired`` keys only: they are
    published and accepted while ``now < retire_at``. A retired key without
    ``retire_at`` counts as lapsed.
    """

    kid: str
    use: str
    alg: str
    status: str
    key: AsymmetricKey
    retire_at: datetime | None = None
    #: None: the shared ring; else the profile whose own ring this key belongs to.
    ring: str | None = None
    #: The key's certificate chain (RFC 7517 §4.7: base64 DER, the key's own first), if any.
    x5c: tuple[str, ...] = ()

    @property
    def x5t(self) -> str | None:
        """The SHA-1 thumbprint of ``x5c[0]`` (RFC 7517 §4.8), if the key has a certificate."""
        if not self.x5c:
            return None
        cached = self.__dict__.get("_x5t")
        if cached is None:
            cached = x5t_of(base64.b64decode(self.x5c[0]))
            object.__setattr__(self, "_x5t", cached)
        return cached

    @property
    def rsa_decryption(self) -> RSADecryptionKey | None:
        """This key ready for RSA-OAEP decryption (derived once, kept with the key), or None
        unless it is an RSA ``enc`` key."""
        cached = self.__dict__.get("_rsa_decryption")
        if cached is None:
            if self.use != "enc" or not isinstance(self.key, RSAKey):
                return None
            cached = RSADecryptionKey.of(self.kid, self.key)
            object.__setattr__(self, "_rsa_decryption", cached)
        return cached

    def live(self, now: datetime) -> bool:
        """Whether the key may still be published / accepted at ``now``."""
        if self.status != "retired":
            return True
        return self.retire_at is not None and now < self.retire_at


def _check_now(now: datetime) -> None:
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise JoseError("now must be a timezone-aware datetime")


class ServerKeys:
    """The server's keys, validated once.

    Rules: unique kids; ``use``/``status``/``alg`` from the fixed lists; the
    key object is a private key of the type the alg needs (RSA >= 2048) and its
    own kid (if any) equals ``kid``; for every (use, ring) present, exactly one
    ``current`` key; a key with ``x5c`` holds a certificate of that very key;
    a ring of :data:`PROFILE_RINGS` signs with that ring's algorithm only.
    """

    def __init__(self, keys: list[ManagedKey]) -> None:
        by_kid: dict[str, ManagedKey] = {}
        current: dict[tuple[str, str | None], ManagedKey] = {}
        for mk in keys:
            if not isinstance(mk, ManagedKey):
                raise JoseError("keys must be ManagedKey instances")
            if not isinstance(mk.kid, str) or not mk.kid:
                raise JoseError("key has no kid")
            if mk.kid in by_kid:
                raise JoseError("duplicate kid in key set")
            _check_managed_key(mk)
            if mk.status == "current":
                if (mk.use, mk.ring) in current:
                    raise JoseError(
                        f"more than one current {mk.use} key" + (f" in the {mk.ring} ring" if mk.ring else "")
                    )
                current[(mk.use, mk.ring)] = mk
            by_kid[mk.kid] = mk

        for use, ring in {(mk.use, mk.ring) for mk in keys}:
            if (use, ring) not in current:
                raise JoseError(f"no current {use} key" + (f" in the {ring} ring" if ring else ""))

        self._by_kid = by_kid
        self._current = current
        # publication order: current, then next, then retired (input order kept within a status),
        # the shared ring before the profiles' rings
        self._ordered: dict[str, tuple[ManagedKey, ...]] = {
            use: tuple(
                sorted(
                    (mk for mk in keys if mk.use == use), key=lambda m: (_STATUS_ORDER[m.status], m.ring is not None)
                )
            )
            for use in USES
        }
        # public JWKs are derived once per key
        self._public: dict[str, dict[str, Any]] = {}
        # (use, ring filter) -> (valid_from, valid_until, keys list); see jwks()
        self._jwks_cache: dict[
            tuple[str, str | None], tuple[datetime | None, datetime | None, tuple[dict[str, Any], ...]]
        ] = {}

    # ------------------------------------------------------------------ #

    @property
    def signing_key(self) -> ManagedKey:
        """The current ``sig`` key."""
        mk = self._current.get(("sig", None))
        if mk is None:
            raise JoseError("no current signing key")
        return mk

    def signing_key_for(self, profile: str) -> ManagedKey:
        """The key that signs ``profile``'s tokens: the current key of the profile's own ring
        (:data:`PROFILE_RINGS`: MobilePay's RS256 key with its certificate), else the current
        shared ``sig`` key."""
        if profile in PROFILE_RINGS:
            mk = self._current.get(("sig", profile))
            if mk is None:
                raise JoseError(f"no current signing key in the {profile} ring")
            return mk
        return self.signing_key

    @property
    def keys(self) -> tuple[ManagedKey, ...]:
        """All keys, current first then next then retired, sig before enc."""
        return self._ordered["sig"] + self._ordered["enc"]

    def _public_of(self, mk: ManagedKey) -> dict[str, Any]:
        jwk = self._public.get(mk.kid)
        if jwk is None:
            jwk = public_jwk(mk.key)
            jwk.update(kid=mk.kid, use=mk.use, alg=mk.alg)
            if mk.x5c:  # RFC 7517 §4.7, §4.8
                jwk.update(x5t=mk.x5t, x5c=list(mk.x5c))
            self._public[mk.kid] = jwk
        return jwk

    def jwks(self, use: str, now: datetime, *, ring: str | None = None) -> dict[str, Any]:
        """The JWK Set (RFC 7517 §5) to publish for ``use`` at ``now``: every ring's keys, or
        with ``ring`` only that profile's ring (MobilePay's JWKS publishes its own keys only).

        Current first, then next, then retired keys with ``retire_at > now``;
        public members only. The result is cached per use and stays valid for
        ``now`` in ``[latest lapse already passed, earliest lapse to come)``;
        outside that window it is recomputed. A fresh outer structure is
        returned each call so callers cannot corrupt the cache.
        """
        if use not in USES:
            raise JoseError("key use must be 'sig' or 'enc'")
        _check_now(now)
        cached = self._jwks_cache.get((use, ring))
        if cached is not None:
            lo, hi, items = cached
            if (lo is None or now >= lo) and (hi is None or now < hi):
                return {"keys": [dict(jwk) for jwk in items]}

        lo = hi = None
        published: list[dict[str, Any]] = []
        for mk in self._ordered[use]:
            if ring is not None and mk.ring != ring:
                continue
            if mk.status == "retired":
                if mk.retire_at is None:
                    continue
                if now >= mk.retire_at:
                    lo = mk.retire_at if lo is None else max(lo, mk.retire_at)
                    continue
                hi = mk.retire_at if hi is None else min(hi, mk.retire_at)
            published.append(self._public_of(mk))
        items = tuple(published)
        self._jwks_cache[(use, ring)] = (lo, hi, items)
        return {"keys": [dict(jwk) for jwk in items]}

    def _live_key(self, kid: str | None, use: str, now: datetime) -> ManagedKey | None:
        _check_now(now)
        if not isinstance(kid, str) or not kid:
            return None
        mk = self._by_kid.get(kid)
        if mk is None or mk.use != use or not mk.live(now):
            return None
        return mk

    def decryption_key(self, kid: str | None, now: datetime) -> ManagedKey | None:
        """The ``enc`` key named ``kid`` if current, next, or retired but not lapsed."""
        return self._live_key(kid, "enc", now)

    def decryption_keys(self, now: datetime) -> tuple[ManagedKey, ...]:
        """The ``enc`` keys that ``jwks("enc", now)`` publishes, in the same order (current,
        next, retired-but-unlapsed): the keys a JWE without ``kid`` may be encrypted to."""
        _check_now(now)
        return tuple(mk for mk in self._ordered["enc"] if mk.live(now))

    def verification_key(self, kid: str | None, now: datetime) -> ManagedKey | None:
        """The ``sig`` key named ``kid`` if current, next, or retired but not lapsed."""
        return self._live_key(kid, "sig", now)


def _check_managed_key(mk: ManagedKey) -> None:
    """One key's own rules (see :class:`ServerKeys`): use, status and alg from the fixed
    lists, a private key of the alg's type, its kid/use/alg as recorded, an aware
    ``retire_at``, a profile ring's algorithm, a certificate of this very key."""
    if mk.use not in USES:
        raise JoseError("key use must be 'sig' or 'enc'")
    if mk.status not in STATUSES:
        raise JoseError("key status must be next, current or retired")
    if mk.alg not in _ALGS_BY_USE[mk.use]:
        raise JoseError("key algorithm not allowed for its use")
    check_key_for_alg(mk.key, mk.alg)
    if not getattr(mk.key, "is_private", False):
        raise JoseError("server keys must be private keys")
    if mk.key.kid is not None and mk.key.kid != mk.kid:
        raise JoseError("key kid does not match its record")
    own_use, own_alg = mk.key.get("use"), mk.key.get("alg")
    if (own_use is not None and own_use != mk.use) or (own_alg is not None and own_alg != mk.alg):
        raise JoseError("key use/alg does not match its record")
    if mk.retire_at is not None and mk.retire_at.tzinfo is None:
        raise JoseError("retire_at must be timezone-aware")
    if mk.ring is not None and (mk.use != "sig" or PROFILE_RINGS.get(mk.ring) != mk.alg):
        raise JoseError("a profile's ring holds signing keys of its own algorithm only")
    if mk.x5c:
        _check_certificate(mk)


def _check_certificate(mk: ManagedKey) -> None:
    """``x5c[0]`` must be a certificate of ``mk``'s own public key (RFC 7517 §4.7)."""
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode(mk.x5c[0], validate=True))
        spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        same = cert.public_key().public_bytes(*spki) == mk.key.public_key.public_bytes(*spki)
    except (ValueError, TypeError, AttributeError) as exc:
        raise JoseError("key certificate (x5c) is malformed") from exc
    if not same:
        raise JoseError("key certificate (x5c) is not for this key")
