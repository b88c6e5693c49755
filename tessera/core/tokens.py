"""Access tokens (RFC 9068 JWTs, certificate-bound per RFC 8705) and ID tokens."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tessera.core.context import EXACT_CACHE_SECONDS, Core, _TTLCache
from tessera.core.kinds import Kind
from tessera.core.models import Artifact
from tessera.core.ports import Conflict
from tessera.core.profiles import AXEPT
from tessera.errors import InvalidToken
from tessera.jose.errors import JoseError
from tessera.jose.jwt import sign_jwt, verify_own_jwt
from tessera.jose.keyset import ServerKeys

REVOKED_TOKEN: str = Kind.REVOKED_TOKEN.value


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    jti: str
    claims: dict[str, Any]


def issue_access_token(
    core: Core,
    *,
    profile: str,
    client_id: str,
    ttl: int,
    scope: str | list[str] = "",
    subject: str | None = None,
    thumbprint: str | None = None,
    audience: str | list[str] | None = None,
    extra: dict[str, Any] | None = None,
    not_before: bool = False,
) -> IssuedToken:
    """An ``at+jwt`` of ``profile``, signed with the profile's signing key; sealed with the
    profile's issuer, audience, name and environment (tessera.core.profiles); ``cnf.x5t#S256``
    when mTLS was used. ``audience`` may widen the profile's audience into a list that holds it
    (MobilePay's two-entry ``aud``); it can never replace it."""
    seal = core.config.seal(profile)
    if (
        audience is not None
        and audience != seal.audience
        and not (isinstance(audience, list) and seal.audience in audience)
    ):
        raise ValueError(f"the audience of a {profile} token must hold {seal.audience}")
    now = core.now()
    jti = secrets.token_urlsafe(16)
    claims: dict[str, Any] = {
        **seal.claims(),
        "sub": subject or client_id,
        "aud": audience if audience is not None else seal.audience,
        "client_id": client_id,
        "iat": now,
        "exp": now + ttl,
        "jti": jti,
    }
    if scope:
        claims["scope"] = scope
    if not_before:  # nbf = iat (MobilePay's and axept's sample tokens carry it)
        claims["nbf"] = now
    if thumbprint:
        claims["cnf"] = {"x5t#S256": thumbprint}
    if extra:
        claims.update(extra)
    token = sign_jwt(claims, core.keys.get().signing_key_for(profile), typ="at+jwt")
    return IssuedToken(token, ttl, jti, claims)


def issue_id_token(core: Core, *, client_id: str, subject: str, ttl: int, extra: dict[str, Any] | None = None) -> str:
    now = core.now()
    claims: dict[str, Any] = {
        "iss": core.config.issuer,
        "sub": subject,
        "aud": client_id,
        "azp": client_id,
        "iat": now,
        "auth_time": now,
        "exp": now + ttl,
    }
    if extra:
        claims.update(extra)
    return sign_jwt(claims, core.keys.get().signing_key, typ="JWT")


def verify_access_token(
    core: Core,
    token: str | None,
    *,
    thumbprint: str | None,
    profile: str,
    bound: bool = False,
    check_revoked: bool = True,
) -> dict[str, Any]:
    """Claims of one of ``profile``'s own access tokens, checked for signature, seal (issuer,
    audience, profile, environment), expiry, certificate binding and revocation. The one place
    where an access token is read: another profile's token is refused here, whatever endpoint
    asked.

    A certificate-bound token is only good with the same certificate (RFC 8705 §3); with
    ``bound``, the endpoint takes certificate-bound tokens only. With ``check_revoked``, a token
    revoked by its jti or its refresh family, a token of a client no longer active, and a token
    bound to a certificate that is revoked or expired are refused.
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
    if not core.config.seal(profile).holds(claims):
        raise InvalidToken("the access token was not issued for this endpoint", reason="token_foreign_profile")
    exp = claims.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool) or exp <= now:
        raise InvalidToken("the access token has expired", reason="token_expired")
    bound_to = (claims.get("cnf") or {}).get("x5t#S256") if isinstance(claims.get("cnf"), dict) else None
    if bound_to is None and bound:
        raise InvalidToken("a certificate-bound access token is required", reason="token_unbound")
    if bound_to is not None and bound_to != thumbprint:
        raise InvalidToken("the access token is bound to another certificate", reason="token_binding_mismatch")
    if check_revoked:
        _check_revocations(core, claims, profile, bound_to, now)
    return claims


def _check_revocations(core: Core, claims: dict[str, Any], profile: str, bound_to: str | None, now: int) -> None:
    """``InvalidToken`` for a token revoked by its jti or its refresh family, of a client no
    longer active, or bound to a certificate that is revoked or expired."""
    if access_token_revoked(core, str(claims.get("jti"))):
        raise InvalidToken("the access token has been revoked", reason="token_revoked")
    if "fam" in claims:
        from tessera.core.refresh import family_revoked

        if family_revoked(core, str(claims["fam"])):
            raise InvalidToken("the access token has been revoked", reason="token_family_revoked")
    if profile != AXEPT:  # axept tokens name a merchant key, not a client
        client = core.client(str(claims.get("client_id")))
        if client is None or not client.active:
            raise InvalidToken("the access token's client is no longer active", reason="token_client_revoked")
    if bound_to is not None:
        cert = core.certificate(bound_to)
        if cert is None or not cert.usable(now):
            raise InvalidToken("the access token's certificate is revoked or expired", reason="token_cert_revoked")


#: Access tokens whose signature a worker verified, kept for the next request that presents
#: the same token (a Bearer token is used many times): at most this many, then forgotten.
VERIFIED_TOKENS = 4096


def _verified_tokens(core: Core, keys: ServerKeys, token: str, now: int) -> dict[str, Any] | None:
    """The claims of ``token`` if this worker verified exactly this token with the same key set
    and its key still verifies now (not lapsed); else None (verify it). Everything after the
    signature (issuer, expiry, binding, revocation) is checked on every request all the same."""
    hit = core.verified_tokens.get(token)
    if hit is None or hit[0] is not keys or keys.verification_key(hit[1], _dt(now)) is None:
        return None
    return dict(hit[2])


def _remember(core: Core, keys: ServerKeys, token: str, claims: dict[str, Any]) -> None:
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
    notice file, PostgreSQL LISTEN/NOTIFY; the ``AnnouncedKinds`` capability), each worker keeps the
    set of live marks in memory, reloaded on the next request after any announced change (and
    at least every minute): no database read per Bearer token, and a revocation is honoured
    by every worker on its next request all the same. Elsewhere (marks on Redis, notices that
    are polled) the store is asked for every token."""
    marks = _revoked_marks(core)
    if marks is None:
        return core.store.get_artifact(REVOKED_TOKEN, jti) is not None
    core.heed_notices()
    return jti in marks.get(None)


def _revoked_marks(core: Core) -> _TTLCache[None, frozenset[str]] | None:
    """The worker's cache of revoked access-token jtis (see ``access_token_revoked``), made on
    first use and dropped with the other worker caches when a change is announced; None where
    the marks cannot be kept exactly in memory."""
    marks = core.revoked_marks
    if marks is None:
        store = core.store
        # Exact notices, and the store announces the writes of the marks it holds (a store
        # that keeps them elsewhere, on Redis, does not count them among its announced kinds).
        if not core.exact_notices or REVOKED_TOKEN not in core.caps.announced_kinds:
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


def _dt(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)
