"""The runtime view of the server's own keys and its published JWK Sets.

A key goes ``next`` (published ahead of use, RFC 7517 §5 / OIDC key
rotation) -> ``current`` (signs, or is the advertised encryption key) ->
``retired`` (no longer used, still published and accepted until
``retire_at``, so tokens and assertions made just before a rotation keep
working).

:class:`ServerKeys` is immutable after construction apart from its JWKS cache;
keys are parsed once, by whoever builds the :class:`ManagedKey` list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import JoseError
from .keys import ENCRYPTION_ALGS, SIGNING_ALGS, AsymmetricKey, check_key_for_alg, public_jwk

__all__ = ["ManagedKey", "ServerKeys", "USES", "STATUSES"]

USES = ("sig", "enc")
STATUSES = ("next", "current", "retired")
_ALGS_BY_USE = {"sig": SIGNING_ALGS, "enc": ENCRYPTION_ALGS}
_STATUS_ORDER = {"current": 0, "next": 1, "retired": 2}


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
    own kid (if any) equals ``kid``; for every use present, exactly one
    ``current`` key.
    """

    def __init__(self, keys: list[ManagedKey]) -> None:
        by_kid: dict[str, ManagedKey] = {}
        current: dict[str, ManagedKey] = {}
        for mk in keys:
            if not isinstance(mk, ManagedKey):
                raise JoseError("keys must be ManagedKey instances")
            if not isinstance(mk.kid, str) or not mk.kid:
                raise JoseError("key has no kid")
            if mk.kid in by_kid:
                raise JoseError("duplicate kid in key set")
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
            if mk.status == "current":
                if mk.use in current:
                    raise JoseError(f"more than one current {mk.use} key")
                current[mk.use] = mk
            by_kid[mk.kid] = mk

        for use in USES:
            if any(mk.use == use for mk in keys) and use not in current:
                raise JoseError(f"no current {use} key")

        self._by_kid = by_kid
        self._current = current
        # publication order: current, then next, then retired (input order kept within a status)
        self._ordered: dict[str, tuple[ManagedKey, ...]] = {
            use: tuple(sorted((mk for mk in keys if mk.use == use), key=lambda m: _STATUS_ORDER[m.status]))
            for use in USES
        }
        # public JWKs are derived once per key
        self._public: dict[str, dict[str, Any]] = {}
        # use -> (valid_from, valid_until, keys list); see jwks()
        self._jwks_cache: dict[str, tuple[datetime | None, datetime | None, tuple[dict[str, Any], ...]]] = {}

    # ------------------------------------------------------------------ #

    @property
    def signing_key(self) -> ManagedKey:
        """The current ``sig`` key."""
        mk = self._current.get("sig")
        if mk is None:
            raise JoseError("no current signing key")
        return mk

    @property
    def keys(self) -> tuple[ManagedKey, ...]:
        """All keys, current first then next then retired, sig before enc."""
        return self._ordered["sig"] + self._ordered["enc"]

    def _public_of(self, mk: ManagedKey) -> dict[str, Any]:
        jwk = self._public.get(mk.kid)
        if jwk is None:
            jwk = public_jwk(mk.key)
            jwk.update(kid=mk.kid, use=mk.use, alg=mk.alg)
            self._public[mk.kid] = jwk
        return jwk

    def jwks(self, use: str, now: datetime) -> dict[str, Any]:
        """The JWK Set (RFC 7517 §5) to publish for ``use`` at ``now``.

        Current first, then next, then retired keys with ``retire_at > now``;
        public members only. The result is cached per use and stays valid for
        ``now`` in ``[latest lapse already passed, earliest lapse to come)``;
        outside that window it is recomputed. A fresh outer structure is
        returned each call so callers cannot corrupt the cache.
        """
        if use not in USES:
            raise JoseError("key use must be 'sig' or 'enc'")
        _check_now(now)
        cached = self._jwks_cache.get(use)
        if cached is not None:
            lo, hi, items = cached
            if (lo is None or now >= lo) and (hi is None or now < hi):
                return {"keys": [dict(jwk) for jwk in items]}

        lo = hi = None
        published: list[dict[str, Any]] = []
        for mk in self._ordered[use]:
            if mk.status == "retired":
                if mk.retire_at is None:
                    continue
                if now >= mk.retire_at:
                    lo = mk.retire_at if lo is None else max(lo, mk.retire_at)
                    continue
                hi = mk.retire_at if hi is None else min(hi, mk.retire_at)
            published.append(self._public_of(mk))
        items = tuple(published)
        self._jwks_cache[use] = (lo, hi, items)
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

    def verification_key(self, kid: str | None, now: datetime) -> ManagedKey | None:
        """The ``sig`` key named ``kid`` if current, next, or retired but not lapsed."""
        return self._live_key(kid, "sig", now)
