"""Refresh tokens with strict rotation and reuse detection (RFC 9700 §4.14.2).

A refresh token is a JWT signed with the server's signing key (``typ: rt+jwt``) whose
``jti`` names a single-use artefact in the store and whose ``fam`` names its *family*:
every refresh token descended from one login. Because the token is signed, a token
whose row is gone can still be recognised as ours and unexpired, which is what the
B2BINPAY document asks: "a refresh token that is found to be invalid while not being
expired must be rendered suspicious".

Using a refresh token consumes it atomically; ``rotate_refresh`` consumes it and stores
its successor in one unit of work (``Store.rotate``). Presenting one that was already used (or
is ours, unexpired, and unknown) revokes the whole family, including the token the
last rotation issued, and records a security event. A profile may allow a *grace
window*: a retry from the same client within ``grace`` seconds of the first use gets
``RefreshRetry`` carrying the consumed artefact, so the caller can answer the same again.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

from tessera.core.context import Core
from tessera.core.kinds import Kind
from tessera.core.models import Artifact
from tessera.core.ports import Rotation
from tessera.core.profiles import PROFILE_CLAIM
from tessera.errors import InvalidGrant
from tessera.jose.errors import JoseError
from tessera.jose.jwt import sign_jwt, verify_own_jwt

REFRESH_KIND: str = Kind.REFRESH_TOKEN.value
FAMILY_KIND: str = Kind.REFRESH_FAMILY.value
TYP = "rt+jwt"


@dataclass(frozen=True)
class RefreshGrant:
    """What a used refresh token stood for."""

    client_id: str
    family: str
    jti: str
    subject: str
    scope: str
    data: dict[str, Any]
    family_expires_at: int = 0


@dataclass(frozen=True)
class IssuedRefresh:
    token: str
    jti: str
    family: str
    expires_at: int


class RefreshRetry(Exception):
    """A retry inside the grace window: answer what was answered to the first use."""

    def __init__(self, artifact: Artifact):
        super().__init__("refresh retry inside the grace window")
        self.artifact = artifact


def start_family(core: Core, client_id: str, *, lifetime: int) -> tuple[str, int]:
    """A new family (one login's chain of refresh tokens) that lives at most ``lifetime`` seconds.

    Access tokens issued with the family's refresh tokens carry its id (``fam``), so revoking
    the family revokes them too."""
    family = secrets.token_urlsafe(16)
    expires_at = core.now() + lifetime
    core.store.put_artifact(Artifact(FAMILY_KIND, family, client_id, {"revoked": False}, expires_at))
    return family, expires_at


def issue_refresh(
    core: Core,
    *,
    profile: str,
    client_id: str,
    subject: str,
    scope: str,
    ttl: int,
    family: str | None = None,
    family_ttl: int | None = None,
    family_expires_at: int | None = None,
    data: dict[str, Any] | None = None,
) -> IssuedRefresh:
    """A new refresh token; a new family unless ``family`` continues one. A token never
    outlives its family (``family_expires_at``)."""
    if family is None:
        return issue_first_refresh(
            core,
            profile=profile,
            client_id=client_id,
            subject=subject,
            scope=scope,
            ttl=ttl,
            family_lifetime=max(ttl, family_ttl or ttl),
            data=data,
        )
    now = core.now()
    exp = now + ttl if not family_expires_at else min(now + ttl, family_expires_at)
    token, artifact = _made(core, profile, client_id, subject, scope, family, now, exp, data)
    core.store.put_artifact(artifact)
    return IssuedRefresh(token, artifact.key, family, exp)


def issue_first_refresh(
    core: Core,
    *,
    profile: str,
    client_id: str,
    subject: str,
    scope: str,
    ttl: int,
    family_lifetime: int,
    data: dict[str, Any] | None = None,
) -> IssuedRefresh:
    """A new family (``start_family``'s, living at most ``family_lifetime`` seconds) and its first
    refresh token, stored in one unit of work: the family's id is *claimed* (recorded once, as a
    ``jti`` is; a family with no ``revoked`` mark is live) together with the token's artefact
    (``Store.claim_and_put``), so a login costs one write, not two."""
    now = core.now()
    family = secrets.token_urlsafe(16)
    family_expires_at = now + family_lifetime
    exp = min(now + ttl, family_expires_at)
    token, artifact = _made(core, profile, client_id, subject, scope, family, now, exp, data)
    if not core.store.claim_and_put(FAMILY_KIND, family, client_id, family_expires_at, now, artifact):
        raise RuntimeError("a new refresh family's id is taken")  # 128 random bits: never in practice
    return IssuedRefresh(token, artifact.key, family, exp)


def _made(
    core: Core,
    profile: str,
    client_id: str,
    subject: str,
    scope: str,
    family: str,
    now: int,
    exp: int,
    data: dict[str, Any] | None,
) -> tuple[str, Artifact]:
    """A new refresh token of ``family`` and the artefact that records it (not yet stored)."""
    jti = secrets.token_urlsafe(16)
    token = _sign(core, profile, client_id, jti, family, now, exp)
    record = {"fam": family, "sub": subject, "scope": scope, PROFILE_CLAIM: profile, **(data or {})}
    return token, Artifact(REFRESH_KIND, jti, client_id, record, exp)


def _sign(core: Core, profile: str, client_id: str, jti: str, family: str, now: int, exp: int) -> str:
    """A refresh token: a JWT of ours (``rt+jwt``) naming its profile (and environment),
    client, family and expiry."""
    seal = core.config.seal(profile)
    return sign_jwt(
        {**seal.claims(), "client_id": client_id, "jti": jti, "fam": family, "iat": now, "exp": exp},
        core.keys.get().signing_key_for(profile),
        typ=TYP,
    )


def _verified(core: Core, token: str | None, now: int, profile: str) -> dict[str, Any]:
    """The claims of one of ``profile``'s unexpired refresh tokens, or ``InvalidGrant``: a
    refresh token of another profile (or environment) is refused before anything is touched."""
    if not token:
        raise InvalidGrant("refresh token is required", reason="refresh_missing")
    try:
        claims = verify_own_jwt(token, core.keys.get(), typ=TYP, now=datetime.fromtimestamp(now, tz=UTC))
    except JoseError:
        raise InvalidGrant("the refresh token is invalid", reason="refresh_invalid") from None
    if not core.config.seal(profile).names(claims):
        raise InvalidGrant("the refresh token was not issued for this endpoint", reason="refresh_foreign_profile")
    if not isinstance(claims.get("exp"), int) or isinstance(claims["exp"], bool):
        raise InvalidGrant("the refresh token is invalid", reason="refresh_invalid")
    if claims["exp"] <= now:
        raise InvalidGrant("the refresh token has expired", reason="refresh_expired")
    return claims


def stored_scope(core: Core, token: str | None, *, profile: str) -> str | None:
    """The scope stored with one of ``profile``'s refresh tokens, read without using it up (a
    request that asks for a narrower scope is checked before the rotation); None when the token
    is not one of ours or its record is gone (the rotation then answers as it must)."""
    try:
        claims = _verified(core, token, core.now(), profile)
    except InvalidGrant:
        return None
    row = core.store.get_artifact(REFRESH_KIND, str(claims.get("jti")))
    if row is None:
        return None
    scope = row.data.get("scope", "")
    return scope if isinstance(scope, str) else None


def _lost(core: Core, jti: str, family: str, owner: Any, now: int, grace: int) -> NoReturn:
    """The token could not be consumed: a retry inside the grace window (``RefreshRetry``),
    else a reuse (or an unknown token of ours): the family is revoked (``InvalidGrant``)."""
    seen = core.store.get_artifact(REFRESH_KIND, jti)
    if (
        grace > 0
        and seen is not None
        and seen.consumed_at is not None
        and now - seen.consumed_at <= grace
        and seen.client_id == owner
    ):
        raise RefreshRetry(seen)
    revoke_family(core, family, owner, cause="refresh_reused" if seen is not None else "refresh_unknown")
    raise InvalidGrant("the refresh token has already been used", reason="refresh_reused")


@dataclass(frozen=True)
class RotationPlan:
    """A verified refresh token about to be used (``plan_rotation``): what ``rotate`` consumes
    and ``finish_rotation`` answers with. ``refusal`` is set (cause, description, reason) when
    the token must be refused before anything is consumed (``refuse`` revokes its family)."""

    profile: str
    now: int
    jti: str
    family: str
    owner: Any
    successor: str
    successor_expires_at: int
    grace: int
    refusal: tuple[str, str, str] | None = None


def plan_rotation(
    core: Core, token: str | None, *, profile: str, client_id: str | None, ttl: int, grace: int = 0
) -> RotationPlan:
    """Verify ``token`` and plan its rotation; writes nothing (it reads the owning client, from
    the client cache). A token issued to another client than ``client_id`` (when given) or to a
    client no longer active gets a ``refusal``."""
    now = core.now()
    claims = _verified(core, token, now, profile)
    jti, family, owner = str(claims.get("jti")), str(claims.get("fam")), claims.get("client_id")
    refusal: tuple[str, str, str] | None = None
    if client_id is not None and owner != client_id:
        refusal = ("refresh_foreign_client", "the refresh token was issued to another client", "refresh_foreign")
    else:
        client = core.client(str(owner)) if isinstance(owner, str) else None
        if client is None or not client.active:
            refusal = ("client_revoked", "the client is no longer active", "client_revoked")
    return RotationPlan(profile, now, jti, family, owner, secrets.token_urlsafe(16), now + ttl, grace, refusal)


def refuse(core: Core, plan: RotationPlan) -> NoReturn:
    """A planned refusal: the family is revoked, then ``InvalidGrant`` (database work)."""
    assert plan.refusal is not None, "refuse() is for a plan with a refusal"
    cause, description, reason = plan.refusal
    revoke_family(core, plan.family, plan.owner, cause=cause)
    raise InvalidGrant(description, reason=reason)


def rotate(core: Core, plan: RotationPlan) -> Rotation:
    """Use the token and store its successor in one unit of work (``Store.rotate``, a single
    statement on PostgreSQL)."""
    return core.store.rotate(REFRESH_KIND, plan.jti, plan.now, **_successor(plan))


async def rotate_async(core: Core, plan: RotationPlan) -> Rotation | None:
    """``rotate`` awaited on an event loop where the store can (the ``AsyncRotation``
    capability: PostgreSQL, one prepared statement); None where it cannot (then ``rotate``)."""
    rotation = core.caps.rotation
    if rotation is None:
        return None
    return await rotation.rotate_async(REFRESH_KIND, plan.jti, plan.now, **_successor(plan))


def _successor(plan: RotationPlan) -> dict[str, Any]:
    return {
        "family_kind": FAMILY_KIND,
        "family": plan.family,
        "successor": plan.successor,
        "successor_expires_at": plan.successor_expires_at,
    }


def settle_lost(core: Core, plan: RotationPlan) -> NoReturn:
    """The token of a ``lost`` rotation could not be consumed: a retry inside the grace window
    (``RefreshRetry``), else a reuse that revokes the family (``InvalidGrant``). Database work."""
    _lost(core, plan.jti, plan.family, plan.owner, plan.now, plan.grace)


def finish_rotation(core: Core, plan: RotationPlan, done: Rotation) -> tuple[RefreshGrant, IssuedRefresh]:
    """The grant and the signed successor of a done rotation (no database work); a revoked
    family is ``InvalidGrant``. A ``lost`` rotation goes to ``settle_lost`` first."""
    return _rotated(core, plan.profile, done, plan.now, plan.jti, plan.family, plan.successor)


def rotate_refresh(
    core: Core, token: str | None, *, profile: str, client_id: str | None, ttl: int, grace: int = 0
) -> tuple[RefreshGrant, IssuedRefresh]:
    """Use ``token`` and issue its successor (same client, subject, scope and family, living
    ``ttl`` seconds but never past the family) in one unit of work: ``Store.rotate``, a single
    statement on PostgreSQL. A token issued to another client than ``client_id`` (when given)
    or to a client no longer active revokes its family and is refused before anything is
    consumed; a revoked family is refused (``InvalidGrant``); a token already used revokes
    its family, except for a retry inside the ``grace`` window (``RefreshRetry``).

    The steps (``plan_rotation``, ``refuse``, ``rotate`` or ``rotate_async``, ``settle_lost``,
    ``finish_rotation``) are public so that an event loop can run each where it costs least
    (tessera.web.dbcall ``FlowRunner.rotate``): the same rules and answers."""
    plan = plan_rotation(core, token, profile=profile, client_id=client_id, ttl=ttl, grace=grace)
    if plan.refusal is not None:
        refuse(core, plan)
    done = rotate(core, plan)
    if done.status == "lost":
        settle_lost(core, plan)
    return finish_rotation(core, plan, done)


def _rotated(
    core: Core, profile: str, done: Rotation, now: int, jti: str, family: str, successor: str
) -> tuple[RefreshGrant, IssuedRefresh]:
    """The grant and the signed successor of a ``rotated`` rotation; ``InvalidGrant`` when the
    family was revoked (``lost`` is handled by the caller, through ``_lost``)."""
    if done.status == "family_revoked":
        raise InvalidGrant("the refresh token has been revoked", reason="refresh_family_revoked")
    won, exp, family_exp = done.consumed, done.successor_expires_at, done.family_expires_at
    if won is None or exp is None or family_exp is None:  # not rotated: the caller saw "lost" first
        raise InvalidGrant("the refresh token has already been used", reason="refresh_reused")
    grant = RefreshGrant(
        won.client_id,
        family,
        jti,
        won.data.get("sub", won.client_id),
        won.data.get("scope", ""),
        won.data,
        int(family_exp),
    )
    exp = int(exp)
    return grant, IssuedRefresh(
        _sign(core, profile, won.client_id, successor, family, now, exp), successor, family, exp
    )


def family_revoked(core: Core, family: str) -> bool:
    """True when the family is revoked or gone (its tokens, access tokens included, are dead)."""
    fam = core.store.get_artifact(FAMILY_KIND, family)
    return fam is None or bool(fam.data.get("revoked"))


def revoke_family(core: Core, family: str, client_id: str | None, *, cause: str) -> None:
    """Revoke every refresh token of ``family`` (the newest included) and record why."""
    fam = core.store.get_artifact(FAMILY_KIND, family)
    if fam is not None and fam.data.get("revoked"):
        return
    if fam is not None:
        core.store.update_artifact_data(FAMILY_KIND, family, {**fam.data, "revoked": True, "cause": cause})
    core.event("refresh_family_revoked", client_id, family=family[:12], cause=cause)
