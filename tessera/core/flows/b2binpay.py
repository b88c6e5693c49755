"""The B2BINPAY API v2 authentication use cases: log in with a login/password pair, and
rotate a refresh token. No HTTP here: ``tessera.web.profiles.b2binpay`` parses JSON:API into
:class:`LoginRequest` / :class:`RefreshRequest` and renders :class:`B2BTokens`.

- A login/password pair is a tessera client's id and secret (``client_secret_post``, through
  the client-authentication registry, ``tessera.core.client_auth``).
- Every time in the answer (``meta.time``, ``access_expired_at``, ``refresh_expired_at``) is
  read from the core's clock (``Core.clock``), the clock the tokens' ``exp`` come from.
- ``meta.sign`` (login only): ``hex(HMAC-SHA256(SHA-256(login + password), meta.time + refresh))``,
  as the document and every public client that checks it compute it (the raw 32-byte digest
  is the key; provider-docs/reference-facts.md).
- Refresh tokens are sealed to this profile (``tessera.core.profiles``): a native refresh token
  is refused here (``InvalidGrant``: 401 code 2007) and a B2BINPAY one at ``/oauth2/token``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from tessera.core import refresh, tokens
from tessera.core.client_auth import (
    AuthenticatedClient,
    ClientAuthRequest,
    ClientCredentials,
    authenticate_with,
)
from tessera.core.clock import iso_z
from tessera.core.context import Core
from tessera.core.ports import Rotation
from tessera.core.profiles import B2BINPAY

PROFILE = B2BINPAY
#: How a B2BINPAY caller authenticates: its login and password are a client's id and secret,
#: sent in the body (tessera.core.client_auth registry).
AUTH_METHODS = ("client_secret_post",)


@dataclass(frozen=True)
class Lifetimes:
    """What the B2BINPAY use cases read from the settings (seconds)."""

    access_ttl: int
    refresh_ttl: int
    family_max: int

    @classmethod
    def from_settings(cls, s: Any) -> Lifetimes:
        return cls(s.b2binpay_access_ttl, s.b2binpay_refresh_ttl, s.refresh_family_max_seconds)


@dataclass(frozen=True)
class LoginRequest:
    """``data.attributes`` of ``POST /token/``."""

    login: str
    password: str


@dataclass(frozen=True)
class RefreshRequest:
    """``data.attributes`` of ``POST /token/refresh/``."""

    refresh: str


@dataclass(frozen=True)
class B2BTokens:
    """A token pair as the document's answer carries it; ``time``/``sign`` only for a login."""

    client_id: str
    access: str
    refresh: str
    access_expired_at: str
    refresh_expired_at: str
    time: str | None = None
    sign: str | None = None

    def data(self) -> dict[str, Any]:
        """The JSON:API resource object (``data`` of both answers)."""
        return {
            "type": "auth-token",
            "id": "0",
            "attributes": {
                "refresh": self.refresh,
                "access": self.access,
                "access_expired_at": self.access_expired_at,
                "refresh_expired_at": self.refresh_expired_at,
                "is_2fa_confirmed": False,  # "2FA is unavailable for API users"
            },
        }

    def meta(self) -> dict[str, str] | None:
        return {"time": self.time, "sign": self.sign} if self.time is not None and self.sign is not None else None


def sign(login: str, password: str, time_str: str, refresh_token: str) -> str:
    """The document's response signature: HMAC-SHA256 keyed by SHA-256(login + password)."""
    key = hashlib.sha256((login + password).encode("utf-8")).digest()
    return hmac.new(key, (time_str + refresh_token).encode("utf-8"), hashlib.sha256).hexdigest()


def authenticate(core: Core, req: LoginRequest) -> AuthenticatedClient:
    """The client whose id and secret are the login and password, or ``InvalidClient`` (400 2006)."""
    auth: AuthenticatedClient = authenticate_with(
        core,
        AUTH_METHODS,
        ClientAuthRequest(credentials=ClientCredentials(req.login, req.password, "client_secret_post")),
    )
    return auth


def login(core: Core, client_id: str, req: LoginRequest, lifetimes: Lifetimes) -> B2BTokens:
    """The answer to an authenticated login: a new family, its first refresh token, an access
    token, and ``meta{time, sign}``. One synchronous database write (the caller picks the thread)."""
    received = core.clock()
    issued = refresh.issue_first_refresh(  # the new family and its first token: one write
        core,
        profile=PROFILE,
        client_id=client_id,
        subject=client_id,
        scope="",
        ttl=lifetimes.refresh_ttl,
        family_lifetime=lifetimes.family_max,
    )
    pair = _tokens(core, client_id, issued, received, lifetimes)
    time_str = iso_z(received, micros=True)
    return B2BTokens(
        pair.client_id,
        pair.access,
        pair.refresh,
        pair.access_expired_at,
        pair.refresh_expired_at,
        time=time_str,
        sign=sign(req.login, req.password, time_str, issued.token),
    )


@dataclass(frozen=True)
class RefreshPlan:
    """A B2BINPAY refresh about to rotate (``plan_refresh``): the core's rotation plan and the
    moment the request was received (the answer's times are counted from it)."""

    rotation: refresh.RotationPlan
    received: float


def plan_refresh(core: Core, req: RefreshRequest, lifetimes: Lifetimes) -> RefreshPlan:
    """Verify the refresh token, sealed to this profile (``refresh.plan_rotation``); a client
    no longer active is planned as a refusal. No database write."""
    received = core.clock()
    rotation = refresh.plan_rotation(core, req.refresh, profile=PROFILE, client_id=None, ttl=lifetimes.refresh_ttl)
    return RefreshPlan(rotation, received)


def refresh_answer(core: Core, plan: RefreshPlan, done: Rotation, lifetimes: Lifetimes) -> B2BTokens:
    """The answer to a done rotation (``refresh.finish_rotation``): the successor and a new
    access token. No database work."""
    grant, successor = refresh.finish_rotation(core, plan.rotation, done)
    return _tokens(core, grant.client_id, successor, plan.received, lifetimes)


def refresh_tokens(core: Core, req: RefreshRequest, lifetimes: Lifetimes) -> B2BTokens:
    """Strict rotation in one unit of work (``refresh.rotate``: one statement on PostgreSQL),
    sealed to this profile; a client no longer active is refused first. Any refusal is
    ``InvalidGrant`` (401 code 2007). The web layer runs the same steps, each where it costs
    least (``plan_refresh``, ``FlowRunner.rotate``, ``refresh_answer``)."""
    plan = plan_refresh(core, req, lifetimes)
    if plan.rotation.refusal is not None:
        refresh.refuse(core, plan.rotation)
    done = refresh.rotate(core, plan.rotation)
    if done.status == "lost":
        refresh.settle_lost(core, plan.rotation)
    return refresh_answer(core, plan, done, lifetimes)


def _tokens(
    core: Core, client_id: str, issued: refresh.IssuedRefresh, received: float, lifetimes: Lifetimes
) -> B2BTokens:
    access = tokens.issue_access_token(
        core, profile=PROFILE, client_id=client_id, ttl=lifetimes.access_ttl, extra={"fam": issued.family}
    )
    # The refresh token's own expiry, unless the family ends sooner than a full lifetime: the
    # answer then says when the chain ends (never a time past the token's ``exp``).
    full = received + lifetimes.refresh_ttl
    refresh_at = full if issued.expires_at >= int(received) + lifetimes.refresh_ttl else issued.expires_at
    return B2BTokens(
        client_id,
        access.token,
        issued.token,
        iso_z(received + lifetimes.access_ttl, micros=True),
        iso_z(refresh_at, micros=True),
    )
