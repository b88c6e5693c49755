"""The check of tessera's (RFC 9068) access tokens: :class:`TokenVerifier`, and
:class:`AuthContext`, what a verified request carries."""

from __future__ import annotations

import binascii
import hmac
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

import anyio.to_thread
from joserfc import jws
from joserfc.errors import JoseError

from tessera.limits import MAX_TOKEN_BYTES
from tessera.sdk.jose_rules import norm_typ as _norm_typ
from tessera.sdk.jose_rules import single_alg_registry
from tessera.sdk.mtls import PeerCertificate, thumbprint
from tessera.sdk.resource.errors import InsufficientScope, InvalidTokenError
from tessera.sdk.resource.jwks import JWKSCache, KeySource, StaticKeys, VerificationKey

__all__ = ["DEFAULT_ALGORITHMS", "MAX_TOKEN_BYTES", "AuthContext", "TokenVerifier"]

DEFAULT_ALGORITHMS = ("ES256", "RS256", "EdDSA")
_ALG_KTY = {
    "ES256": "EC",
    "ES384": "EC",
    "ES512": "EC",
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "PS512": "RSA",
    "EdDSA": "OKP",
    "Ed25519": "OKP",
}


class TokenVerifier:
    """Verifies tessera's (RFC 9068) access tokens for one resource server.

    ``jwks``: a :class:`JWKSCache`, or a JWK Set as a dict. ``issuer``: the accepted
    ``iss`` value(s). ``audience``: the ``aud`` this API must find in the token.
    ``required_scopes``: scopes every token must carry (more per call with ``scopes=``).
    ``leeway``: seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
    ``algorithms``: the JWS algorithms accepted; ``none`` and HMAC are never accepted.
    """

    def __init__(
        self,
        jwks: JWKSCache | Mapping[str, Any],
        *,
        issuer: str | Iterable[str],
        audience: str,
        required_scopes: Iterable[str] = (),
        leeway: float = 30,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        clock: Callable[[], float] = time.time,
        profile: str | None = None,
    ) -> None:
        self.jwks: KeySource = jwks if isinstance(jwks, JWKSCache) else StaticKeys(jwks)
        self.issuers = frozenset([issuer] if isinstance(issuer, str) else issuer)
        if not self.issuers or not all(isinstance(i, str) and i for i in self.issuers):
            raise ValueError("issuer must be a non-empty string or a list of them")
        if not isinstance(audience, str) or not audience:
            raise ValueError("audience must be a non-empty string")
        self.audience = audience
        if profile is not None and (not isinstance(profile, str) or not profile):
            raise ValueError("profile must be a non-empty string")
        self.profile = profile
        self.required_scopes = tuple(required_scopes)
        self.leeway = float(leeway)
        algs = tuple(algorithms)
        bad = [a for a in algs if a not in _ALG_KTY]
        if bad or not algs:
            raise ValueError(f"unsupported algorithms: {', '.join(bad) or '(none given)'}")
        self.algorithms = frozenset(algs)
        self.clock = clock

    # ------------------------------------------------------------------ public
    def verify(self, token: str, *, client_cert_der: bytes | None = None, scopes: Iterable[str] = ()) -> dict[str, Any]:
        """The token's claims, once everything checks out; else :class:`InvalidTokenError`
        (401) or :class:`InsufficientScope` (403). May fetch the JWKS (blocking)."""
        header, signed = self._parse(token)
        key = self.jwks.get_key(header.get("kid"))
        return self._check(signed, header, key, client_cert_der, scopes)

    async def averify(
        self, token: str, *, client_cert_der: bytes | None = None, scopes: Iterable[str] = ()
    ) -> dict[str, Any]:
        """:meth:`verify` for asyncio: a JWKS fetch runs in a worker thread."""
        header, signed = self._parse(token)
        kid = header.get("kid")
        if self.jwks.needs_fetch(kid):
            key = await anyio.to_thread.run_sync(self.jwks.get_key, kid)
        else:
            key = self.jwks.get_key(kid)
        return self._check(signed, header, key, client_cert_der, scopes)

    # ------------------------------------------------------------------ steps
    def _parse(self, token: Any) -> tuple[dict[str, Any], Any]:
        if not isinstance(token, str) or not token:
            raise InvalidTokenError("a Bearer access token is required", reason="token_missing")
        if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
            raise InvalidTokenError("the access token is invalid", reason="token_malformed")
        try:
            signed = jws.extract_compact(token.encode("ascii"))
            header = signed.headers()
        except (JoseError, ValueError, TypeError, UnicodeError, binascii.Error):
            raise InvalidTokenError("the access token is invalid", reason="token_malformed") from None
        if not isinstance(header, dict):
            raise InvalidTokenError("the access token is invalid", reason="token_malformed")
        alg = header.get("alg")
        if alg not in self.algorithms:  # "none", HS256, anything not allowed
            raise InvalidTokenError("the access token is invalid", reason="alg_not_allowed")
        if "crit" in header or "b64" in header or "jku" in header or "x5u" in header or "jwk" in header:
            raise InvalidTokenError("the access token is invalid", reason="header_not_allowed")
        if _norm_typ(header.get("typ")) != "at+jwt":
            raise InvalidTokenError("the access token is invalid", reason="typ_not_at_jwt")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidTokenError("the access token is invalid", reason="token_malformed")
        return header, signed

    def _check(
        self,
        signed: Any,
        header: dict[str, Any],
        key: VerificationKey | None,
        client_cert_der: bytes | None,
        scopes: Iterable[str],
    ) -> dict[str, Any]:
        alg = header["alg"]
        if key is None:
            raise InvalidTokenError("the access token is invalid", reason="unknown_kid")
        if _ALG_KTY.get(alg) != key.kty or (key.alg is not None and key.alg != alg):
            raise InvalidTokenError("the access token is invalid", reason="alg_key_mismatch")
        try:
            valid = jws.validate_compact(signed, key.key, registry=single_alg_registry(alg))
        except (JoseError, ValueError, TypeError):
            valid = False
        if not valid:
            raise InvalidTokenError("the access token is invalid", reason="bad_signature")
        try:
            claims = json.loads(signed.payload)
        except (ValueError, UnicodeDecodeError):
            claims = None
        if not isinstance(claims, dict):
            raise InvalidTokenError("the access token is invalid", reason="token_malformed")
        self._check_times(claims)
        if claims.get("iss") not in self.issuers:
            raise InvalidTokenError("the access token is invalid", reason="wrong_issuer")
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if self.audience not in auds:
            raise InvalidTokenError("the access token is invalid", reason="wrong_audience")
        if self.profile is not None and claims.get("prf") != self.profile:
            raise InvalidTokenError("the access token is invalid", reason="wrong_profile")
        _check_binding(claims, client_cert_der)
        granted_set = _scopes(claims.get("scope"))
        wanted = list(dict.fromkeys([*self.required_scopes, *scopes]))
        missing = [s for s in wanted if s not in granted_set]
        if missing:
            raise InsufficientScope("the access token does not grant the scope this call needs", scopes=wanted)
        return claims

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self.clock()
        exp = claims.get("exp")
        if not _is_number(exp):
            raise InvalidTokenError("the access token is invalid", reason="exp_missing")
        if now >= exp + self.leeway:
            raise InvalidTokenError("the access token has expired", reason="token_expired")
        nbf = claims.get("nbf")
        if nbf is not None and (not _is_number(nbf) or now + self.leeway < nbf):
            raise InvalidTokenError("the access token is not valid yet", reason="token_not_yet_valid")
        iat = claims.get("iat")
        if iat is not None and (not _is_number(iat) or now + self.leeway < iat):
            raise InvalidTokenError("the access token is invalid", reason="issued_in_future")


def _check_binding(claims: dict[str, Any], client_cert_der: bytes | None) -> None:
    """RFC 8705 §3: a token with ``cnf.x5t#S256`` is good only with that certificate."""
    cnf = claims.get("cnf")
    if cnf is None:
        return
    if not isinstance(cnf, dict):
        raise InvalidTokenError("the access token is invalid", reason="token_malformed")
    bound = cnf.get("x5t#S256")
    if bound is None:
        return
    if not isinstance(bound, str):
        raise InvalidTokenError("the access token is invalid", reason="token_malformed")
    if client_cert_der is None:
        raise InvalidTokenError(
            "the access token is bound to a client certificate, and none was presented", reason="certificate_required"
        )
    if not hmac.compare_digest(bound.encode("ascii", "replace"), thumbprint(client_cert_der).encode("ascii")):
        raise InvalidTokenError("the access token is bound to another certificate", reason="certificate_mismatch")


def _scopes(scope: Any) -> frozenset[str]:
    """RFC 9068 §2.2.3: a space-separated string; MobilePay's tokens carry a list."""
    if isinstance(scope, str):
        return frozenset(scope.split())
    if isinstance(scope, list):
        return frozenset(s for s in scope if isinstance(s, str))
    return frozenset()


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class AuthContext:
    """What :func:`require_token` hands to the endpoint (also in ``request.state.auth``)."""

    token: str
    claims: dict[str, Any]
    certificate: PeerCertificate | None = None
    merchant_vat: str | None = None  # with a merchant rule: the merchant the request acts for

    @property
    def client_id(self) -> str | None:
        value = self.claims.get("client_id")
        return value if isinstance(value, str) else None

    @property
    def scopes(self) -> frozenset[str]:
        return _scopes(self.claims.get("scope"))
