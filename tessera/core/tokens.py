"""Access tokens (RFC 9068 JWTs, certificate-bound per RFC 8705) and ID tokens."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from tessera.core.context import Core
from tessera.core.models import Artifact
from tessera.storage.base import Conflict
from tessera.errors import InvalidToken
from tessera.jose.errors import JoseError
from tessera.jose.jwt import sign_jwt, verify_own_jwt

REVOKED_TOKEN = "revoked_jti"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    jti: str
    claims: dict[str, Any]


def issue_access_token(
    core: Core,
    *,
    client_id: str,
    ttl: int,
    scope: str = "",
    subject: str | None = None,
    thumbprint: str | None = None,
    audience: str | None = None,
    issuer: str | None = None,
    extra: dict[str, Any] | None = None,
) -> IssuedToken:
    """An ``at+jwt`` signed with the current signing key; ``cnf.x5t#S256`` when mTLS was used."""
    now = core.now()
    jti = secrets.token_urlsafe(16)
    claims: dict[str, Any] = {
        "iss": issuer or core.config.issuer,
        "sub": subject or client_id,
        "aud": audience or core.config.issuer,
        "client_id": client_id,
        "iat": now,
        "exp": now + ttl,
        "jti": jti,
    }
    if scope:
        claims["scope"] = scope
    if thumbprint:
        claims["cnf"] = {"x5t#S256": thumbprint}
    if extra:
        claims.update(extra)
    token = sign_jwt(claims, core.keys.get().signing_key, typ="at+jwt")
    return IssuedToken(token, ttl, jti, claims)


def issue_id_token(core: Core, *, client_id: str, subject: str, ttl: int, extra: dict[str, Any] | None = None) -> str:
    now = core.now()
    claims: dict[str, Any] = {
        "iss": core.config.issuer, "sub": subject, "aud": client_id, "azp": client_id,
        "iat": now, "auth_time": now, "exp": now + ttl,
    }
    if extra:
        claims.update(extra)
    return sign_jwt(claims, core.keys.get().signing_key, typ="JWT")


def verify_access_token(core: Core, token: str | None, *, thumbprint: str | None, check_revoked: bool = True) -> dict[str, Any]:
    """Claims of one of our own access tokens, checked for signature, issuer, expiry and binding.

    A certificate-bound token is only good with the same certificate (RFC 8705 §3).
    """
    if not token:
        raise InvalidToken("a Bearer access token is required", reason="token_missing")
    now = core.now()
    try:
        claims = verify_own_jwt(token, core.keys.get(), typ="at+jwt", now=_dt(now))
    except JoseError:
        raise InvalidToken("the access token is invalid", reason="token_invalid") from None
    if claims.get("iss") != core.config.issuer:
        raise InvalidToken("the access token is invalid", reason="token_wrong_issuer")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= now:
        raise InvalidToken("the access token has expired", reason="token_expired")
    bound = (claims.get("cnf") or {}).get("x5t#S256")
    if bound is not None and bound != thumbprint:
        raise InvalidToken("the access token is bound to another certificate", reason="token_binding_mismatch")
    if check_revoked and core.store.get_artifact(REVOKED_TOKEN, str(claims.get("jti"))) is not None:
        raise InvalidToken("the access token has been revoked", reason="token_revoked")
    if check_revoked and "fam" in claims:
        from tessera.core.refresh import family_revoked

        if family_revoked(core, str(claims["fam"])):
            raise InvalidToken("the access token has been revoked", reason="token_family_revoked")
    return claims


def revoke_token(core: Core, jti: str, client_id: str, expires_at: int) -> None:
    try:
        core.store.put_artifact(Artifact(REVOKED_TOKEN, jti, client_id, {}, expires_at))
    except Conflict:
        pass


def _dt(ts: int):
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, tz=timezone.utc)
