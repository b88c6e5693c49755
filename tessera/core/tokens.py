"""Access tokens (RFC 9068 JWTs, certificate-bound per RFC 8705) and ID tokens."""

from __future__ import annotations

import base64
import json
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
    keys = core.keys.get()
    claims = _verified_tokens(core, keys, token, now)
    if claims is None:
        try:
            claims = verify_own_jwt(token, keys, typ="at+jwt", now=_dt(now))
        except JoseError:
            raise InvalidToken("the access token is invalid", reason="token_invalid") from None
        _remember(core, keys, token, claims)
    if claims.get("iss") != core.config.issuer:
        raise InvalidToken("the access token is invalid", reason="token_wrong_issuer")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= now:
        raise InvalidToken("the access token has expired", reason="token_expired")
    bound = (claims.get("cnf") or {}).get("x5t#S256")
    if bound is not None and bound != thumbprint:
        raise InvalidToken("the access token is bound to another certificate", reason="token_binding_mismatch")
    if check_revoked and access_token_revoked(core, str(claims.get("jti"))):
        raise InvalidToken("the access token has been revoked", reason="token_revoked")
    if check_revoked and "fam" in claims:
        from tessera.core.refresh import family_revoked

        if family_revoked(core, str(claims["fam"])):
            raise InvalidToken("the access token has been revoked", reason="token_family_revoked")
    return claims


#: Access tokens whose signature a worker verified, kept for the next request that presents
#: the same token (a Bearer token is used many times): at most this many, then forgotten.
VERIFIED_TOKENS = 4096


def _verified_tokens(core: Core, keys: Any, token: str, now: int) -> dict[str, Any] | None:
    """The claims of ``token`` if this worker verified exactly this token with the same key set
    and its key still verifies now (not lapsed); else None (verify it). Everything after the
    signature (issuer, expiry, binding, revocation) is checked on every request all the same."""
    hit = core.verified_tokens.get(token)
    if hit is None or hit[0] is not keys or keys.verification_key(hit[1], _dt(now)) is None:
        return None
    return dict(hit[2])


def _remember(core: Core, keys: Any, token: str, claims: dict[str, Any]) -> None:
    seen = core.verified_tokens
    if len(seen) >= VERIFIED_TOKENS:
        seen.clear()
    try:
        kid = json.loads(base64.urlsafe_b64decode(token.split(".", 1)[0] + "==")).get("kid")
    except ValueError:
        return
    seen[token] = (keys, kid, dict(claims))


def access_token_revoked(core: Core, jti: str) -> bool:
    """True when the access token ``jti`` was revoked.

    Where the store announces its revoked marks through exact change notices (SQL: SQLite's
    notice file, PostgreSQL LISTEN/NOTIFY; ``SQLStore.announced_kinds``), each worker keeps the
    set of live marks in memory, reloaded on the next request after any announced change (and
    at least every minute): no database read per Bearer token, and a revocation is honoured
    by every worker on its next request all the same. Elsewhere (marks on Redis, notices that
    are polled) the store is asked for every token."""
    marks = _revoked_marks(core)
    if marks is None:
        return core.store.get_artifact(REVOKED_TOKEN, jti) is not None
    core.heed_notices()
    return jti in marks.get(None)


def _revoked_marks(core: Core) -> Any:
    """The worker's cache of revoked access-token jtis (see ``access_token_revoked``), made on
    first use and dropped with the other worker caches when a change is announced; None where
    the marks cannot be kept exactly in memory."""
    marks = core.revoked_marks
    if marks is None:
        from tessera.core.context import EXACT_CACHE_SECONDS, _TTLCache

        store = core.store
        if (not core.exact_notices  # no notices, or polled ones (Redis)
                or REVOKED_TOKEN in getattr(getattr(store, "artifacts", None), "kinds", ())  # marks on Redis
                or REVOKED_TOKEN not in getattr(store, "announced_kinds", ())):  # their writes not announced
            marks = False
        else:
            marks = _TTLCache(EXACT_CACHE_SECONDS, lambda _key: store.artifact_keys(REVOKED_TOKEN, core.now()))
            core.watch(marks)  # invalidated with the others when a change is announced
        core.revoked_marks = marks
    return marks or None


def revoke_token(core: Core, jti: str, client_id: str, expires_at: int) -> None:
    try:
        core.store.put_artifact(Artifact(REVOKED_TOKEN, jti, client_id, {}, expires_at))
    except Conflict:
        pass


def _dt(ts: int):
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, tz=timezone.utc)
