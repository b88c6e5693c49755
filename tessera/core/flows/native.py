"""The native OAuth 2.0 use cases: authorization requests (plain and pushed), the token
grants, introspection, revocation and userinfo. No HTTP here: ``tessera.web.profiles.native``
parses the wire format and renders what these return or raise.

- The token endpoint's grants are a registry (``GRANTS``: ``{grant_type: Grant}``): each
  takes a parsed :class:`TokenRequest` and the :class:`TokenPolicy` of this deployment and
  returns the token response. ``GRANT_TYPES`` lists them, in the metadata's order.
- Client authentication goes through the registry in ``tessera.core.client_auth``
  (``METHODS``: secret basic/post, ``tls_client_auth``, ``private_key_jwt``).
- Every token issued here is sealed to the native profile (``tessera.core.profiles``): a
  native refresh token is redeemed only at ``/oauth2/token``, and only with its own client's
  authentication; a B2BINPAY one is refused there (``invalid_grant``).

- Authorization requests (RFC 6749 §4.1.1, RFC 9126): ``response_type=code``, an exactly
  registered ``redirect_uri``, a scope within the client's registration, PKCE with S256
  always (RFC 9700 §2.1.1), optional ``state`` and ``nonce``. A plain request is stored
  like a pushed one, under a server-made ``request_uri``, so the login page and the code
  are the same for both.
- Codes and requests live under their own artefact kinds: a native code is never
  accepted by the Nexi endpoints, nor a Nexi one here.
- Refresh tokens rotate on every use (``tessera.core.refresh``). With a grace window, a
  retry from the same client inside the window gets the answer of the first use again;
  that answer is kept sealed (AES-256-GCM under a key derived from the KEK), never in clear.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tessera.core import codes, par, refresh, tokens
from tessera.core.client_auth import AuthenticatedClient
from tessera.core.context import Core
from tessera.core.kinds import Kind
from tessera.core.models import Artifact, Client
from tessera.core.profiles import NATIVE
from tessera.errors import InvalidGrant, InvalidRequest, InvalidScope, InvalidToken, OAuthError, UnauthorizedClient
from tessera.jose.errors import JoseError
from tessera.jose.jwt import verify_own_jwt

PAR_KIND: str = Kind.NATIVE_REQUEST_URI.value
CODE_KIND: str = Kind.NATIVE_CODE.value
#: Native codes and their replay markers (see tessera.core.codes).
NATIVE_CODES = codes.CodeKinds(CODE_KIND, Kind.NATIVE_CODE_REPLAY.value)
#: RFC 9126 §2.2: a URN of this form names the pushed request.
REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
GRANT_TYPES = ("authorization_code", "client_credentials", "refresh_token")
#: RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
OPENID = "openid"
MAX_PARAM = 2048


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"


# --- scope ------------------------------------------------------------------------------------


def check_scope(client: Client, requested: str | None) -> str:
    """The scope to grant: the request's (each value registered for the client), or the
    client's registered scope when the request names none (RFC 6749 §3.3)."""
    allowed = client.scope.split()
    if requested is None or requested.strip() == "":
        return " ".join(allowed)
    parts = requested.split(" ")
    if any(not p or not SCOPE_TOKEN.match(p) for p in parts) or len(set(parts)) != len(parts):
        raise InvalidScope("scope must be space-separated scope values, each once", reason="scope_syntax")
    unknown = [p for p in parts if p not in allowed]
    if unknown:
        raise InvalidScope(f"scope {unknown[0][:40]!r} is not registered for this client", reason="scope_not_allowed")
    return " ".join(parts)


def check_grant_type(client: Client, grant_type: str) -> None:
    if grant_type not in client.grant_types:
        raise UnauthorizedClient(f"this client may not use the {grant_type} grant", reason="grant_not_allowed")


# --- authorization requests ------------------------------------------------------------------


@dataclass(frozen=True)
class AuthorizationRequest:
    params: par.AuthorizationParams
    nonce: str | None

    def extra(self) -> dict[str, Any]:
        return {"native": {"nonce": self.nonce, "response_type": "code"}}


def check_authorization_request(core: Core, client: Client, q: dict[str, str]) -> AuthorizationRequest:
    """Validate the parameters of an authorization request (pushed or plain)."""
    if "request_uri" in q:
        raise InvalidRequest("request_uri must not be sent to the PAR endpoint", reason="par_request_uri")
    if "request" in q:
        raise InvalidRequest("request objects are not supported", reason="request_object")
    for name, value in q.items():
        if len(value) > MAX_PARAM:
            raise InvalidRequest(f"{name[:40]} is too long", reason="param_too_long")
    if q.get("client_id") not in (None, client.client_id):
        raise InvalidRequest("client_id does not match the authenticated client", reason="client_id_mismatch")
    redirect_uri = par.check_redirect_uri(client, q.get("redirect_uri"))
    response_type = q.get("response_type")
    if not response_type:
        raise InvalidRequest("response_type is required", reason="response_type_missing")
    if response_type != "code":
        raise UnsupportedResponseType("only response_type=code is supported", reason="response_type")
    check_grant_type(client, "authorization_code")
    scope = check_scope(client, q.get("scope"))
    if q.get("code_challenge") is None and q.get("code_challenge_method") is None:
        raise InvalidRequest(
            "PKCE is required: send code_challenge with code_challenge_method=S256", reason="pkce_missing"
        )
    challenge, method = par.check_pkce(q.get("code_challenge"), q.get("code_challenge_method"))
    if q.get("response_mode") not in (None, "query"):
        raise InvalidRequest("only response_mode=query is supported", reason="response_mode")
    params = par.AuthorizationParams(client.client_id, redirect_uri, scope, q.get("state"), challenge, method)
    return AuthorizationRequest(params, q.get("nonce"))


def push(core: Core, client: Client, request: AuthorizationRequest) -> par.PushedRequest:
    return par.push(core, client, request.params, request.extra(), prefix=REQUEST_URI_PREFIX, kind=PAR_KIND)


# --- token grants -------------------------------------------------------------------------------


def client_credentials(core: Core, auth: AuthenticatedClient, *, scope: str | None, ttl: int) -> dict[str, Any]:
    """RFC 6749 §4.4: an access token, no refresh token (§4.4.3)."""
    check_grant_type(auth.client, "client_credentials")
    granted = check_scope(auth.client, scope)
    issued = tokens.issue_access_token(
        core, profile=NATIVE, client_id=auth.client.client_id, ttl=ttl, scope=granted, thumbprint=auth.thumbprint
    )
    return _token_body(issued, granted)


def _token_body(issued: tokens.IssuedToken, scope: str) -> dict[str, Any]:
    body: dict[str, Any] = {"access_token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in}
    if scope:
        body["scope"] = scope
    return body


def authorization_code(
    core: Core,
    auth: AuthenticatedClient,
    *,
    code: str | None,
    redirect_uri: str | None,
    code_verifier: str | None,
    refresh_ttl: int,
) -> dict[str, Any]:
    """RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.6): single use, unexpired, for this client and
    this redirect_uri. A replayed code revokes what it issued (RFC 6749 §4.1.2)."""
    client = auth.client
    check_grant_type(client, "authorization_code")
    if not code:
        raise InvalidRequest("code is required", reason="code_missing")
    if not redirect_uri:
        raise InvalidRequest("redirect_uri is required", reason="redirect_uri_missing")
    key, won = codes.redeem(
        core,
        NATIVE_CODES,
        client.client_id,
        code=code,
        redirect_uri=redirect_uri,
        code_verifier=code_verifier,
        pkce_required=True,
    )
    params = won.data["params"]
    subject = won.data["username"]
    scope = params["scope"]
    family = family_expires_at = None
    if "refresh_token" in client.grant_types:  # the access token joins the family: revoked with it
        family, family_expires_at = refresh.start_family(
            core, client.client_id, lifetime=core.config.refresh_family_max
        )
    issued = tokens.issue_access_token(
        core,
        profile=NATIVE,
        client_id=client.client_id,
        ttl=core.config.access_token_ttl,
        scope=scope,
        subject=subject,
        thumbprint=auth.thumbprint,
        extra={"fam": family} if family else None,
    )
    body = _token_body(issued, scope)
    if family:
        rt = refresh.issue_refresh(
            core,
            profile=NATIVE,
            client_id=client.client_id,
            subject=subject,
            scope=scope,
            ttl=refresh_ttl,
            family=family,
            family_expires_at=family_expires_at,
        )
        body["refresh_token"] = rt.token
    if OPENID in scope.split():
        nonce = (won.data.get("native") or {}).get("nonce")
        extra: dict[str, Any] = {"nonce": nonce} if nonce else {}
        if "email" in scope.split():
            extra.update(email=subject, email_verified=True)
        body["id_token"] = tokens.issue_id_token(
            core, client_id=client.client_id, subject=subject, ttl=core.config.id_token_ttl, extra=extra or None
        )
    # A replay that raced this exchange makes record_issued revoke what was just issued.
    if not codes.record_issued(core, NATIVE_CODES, key, won, jti=issued.jti, exp=issued.claims["exp"], family=family):
        raise InvalidGrant("the authorization code has already been used", reason="code_replayed")
    return body


def _narrowed(requested: str, original: str) -> str:
    """RFC 6749 §6: the scope asked for at a refresh may only narrow the original grant."""
    parts = requested.split(" ")
    if any(p not in original.split() for p in parts) or any(not p for p in parts):
        raise InvalidScope("scope may only narrow the original grant", reason="scope_widened")
    return " ".join(parts)


def refresh_token(
    core: Core,
    auth: AuthenticatedClient,
    *,
    token: str | None,
    scope: str | None,
    refresh_ttl: int,
    grace: int,
    kek: bytes,
    retry_wait: float = 2.0,
) -> dict[str, Any]:
    """RFC 6749 §6 with rotation (RFC 9700 §4.14.2). A narrower ``scope`` applies to the new
    access token only; the new refresh token keeps the original scope (RFC 6749 §6)."""
    client = auth.client
    check_grant_type(client, "refresh_token")
    if not token:
        raise InvalidRequest("refresh_token is required", reason="refresh_missing")
    if scope is not None and scope.strip():
        # A wider scope is refused before the token is used: the client's retry with the same
        # token must not count as a reuse (which would revoke the whole family).
        original = refresh.stored_scope(core, token, profile=NATIVE)
        if original is not None:
            _narrowed(scope, original)
    try:  # the token used and its successor stored in one unit of work (Store.rotate)
        grant, new = refresh.rotate_refresh(
            core, token, profile=NATIVE, client_id=client.client_id, ttl=refresh_ttl, grace=grace
        )
    except refresh.RefreshRetry as retry:
        return _replay_answer(core, retry.artifact, kek, retry_wait)
    granted = _narrowed(scope, grant.scope) if scope is not None and scope.strip() else grant.scope
    issued = tokens.issue_access_token(
        core,
        profile=NATIVE,
        client_id=client.client_id,
        ttl=core.config.access_token_ttl,
        scope=granted,
        subject=grant.subject,
        thumbprint=auth.thumbprint,
        extra={"fam": grant.family},
    )
    body = _token_body(issued, granted)
    body["refresh_token"] = new.token
    if grace > 0:
        sealed = _seal(kek, grant.jti, body)
        core.store.update_artifact_data(refresh.REFRESH_KIND, grant.jti, {**grant.data, "answer": sealed})
    return body


def _replay_answer(core: Core, artifact: Artifact, kek: bytes, wait: float) -> dict[str, Any]:
    """The sealed answer to the first use of this refresh token; the first use may still be
    writing it (a racing retry), so look again for a moment before giving up."""
    deadline = time.monotonic() + wait
    art: Artifact | None = artifact
    while True:
        sealed = (art.data if art else {}).get("answer")
        if sealed:
            try:
                return _open(kek, artifact.key, sealed)
            except (InvalidTag, ValueError):
                break
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
        art = core.store.get_artifact(refresh.REFRESH_KIND, artifact.key)
    raise InvalidGrant("the refresh token has already been used", reason="refresh_retry_unanswered")


def _answer_key(kek: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"tessera refresh retry answer v1").derive(kek)
    return AESGCM(key)


def _seal(kek: bytes, jti: str, body: dict[str, Any]) -> str:
    nonce = os.urandom(12)
    ct = _answer_key(kek).encrypt(nonce, json.dumps(body).encode(), f"refresh-answer:{jti}".encode())
    return "v1." + base64.urlsafe_b64encode(nonce + ct).decode().rstrip("=")


def _open(kek: bytes, jti: str, sealed: str) -> dict[str, Any]:
    version, _, blob = sealed.partition(".")
    if version != "v1":
        raise ValueError("unknown sealed answer version")
    raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
    plain = _answer_key(kek).decrypt(raw[:12], raw[12:], f"refresh-answer:{jti}".encode())
    answer: dict[str, Any] = json.loads(plain)
    return answer


# --- introspection, revocation, userinfo ----------------------------------------------------

INACTIVE: dict[str, Any] = {"active": False}


def _own_claims(core: Core, token: str, typ: str, profile: str = NATIVE) -> dict[str, Any] | None:
    now = core.now()
    try:
        claims = verify_own_jwt(token, core.keys.get(), typ=typ, now=datetime.fromtimestamp(now, tz=UTC))
    except JoseError:
        return None
    # Another profile's token is unknown here (RFC 7662 §2.2: inactive; RFC 7009 §2.2: ignored).
    seal = core.config.seal(profile)
    if not (seal.holds(claims) if typ == "at+jwt" else seal.names(claims)):
        return None
    if not isinstance(claims.get("exp"), int) or isinstance(claims["exp"], bool):
        return None
    return claims


def _order(hint: str | None) -> tuple[str, str]:
    return ("rt+jwt", "at+jwt") if hint == "refresh_token" else ("at+jwt", "rt+jwt")


def introspect(
    core: Core, client: Client, token: str | None, hint: str | None = None, *, profile: str = NATIVE
) -> dict[str, Any]:
    """RFC 7662 §2.2. Only the client a token was issued to sees it active; anything else
    (another client's, another profile's, expired, revoked, malformed, not ours) is
    ``{"active": false}``. ``profile``: whose tokens this endpoint knows (the native
    ``/oauth2/introspect``, MobilePay's ``connect/introspect``)."""
    if not token:
        raise InvalidRequest("token is required", reason="token_missing")
    now = core.now()
    for typ in _order(hint):
        claims = _own_claims(core, token, typ, profile)
        if claims is None:
            continue
        if claims.get("client_id") != client.client_id or claims["exp"] <= now:
            return dict(INACTIVE)
        if typ == "at+jwt":
            return _introspect_access(core, token, claims, profile)
        return _introspect_refresh(core, client, claims)
    return dict(INACTIVE)


def _introspect_access(core: Core, token: str, claims: dict[str, Any], profile: str) -> dict[str, Any]:
    """An access token of this client's: active unless revoked (its jti, its family, its
    client, its certificate)."""
    if core.store.get_artifact(tokens.REVOKED_TOKEN, str(claims.get("jti"))) is not None:
        return dict(INACTIVE)
    if "fam" in claims and refresh.family_revoked(core, str(claims["fam"])):
        return dict(INACTIVE)
    cnf = claims.get("cnf")
    try:  # the one place that reads access tokens: its client, the certificate it is bound to (row 42)
        tokens.verify_access_token(
            core, token, profile=profile, thumbprint=cnf.get("x5t#S256") if isinstance(cnf, dict) else None
        )
    except InvalidToken:
        return dict(INACTIVE)
    out: dict[str, Any] = {"active": True, "token_type": "Bearer"}
    for name in ("scope", "client_id", "sub", "exp", "iat", "iss", "aud", "jti", "cnf"):
        if name in claims:
            out[name] = claims[name]
    if isinstance(out.get("scope"), list):  # MobilePay's tokens carry a list; RFC 7662 §2.2: one string
        out["scope"] = " ".join(str(s) for s in out["scope"])
    return out


def _introspect_refresh(core: Core, client: Client, claims: dict[str, Any]) -> dict[str, Any]:
    """A refresh token of this client's: active while unused and its family stands."""
    fam = core.store.get_artifact(refresh.FAMILY_KIND, str(claims.get("fam")))
    row = core.store.get_artifact(refresh.REFRESH_KIND, str(claims.get("jti")))
    if fam is None or fam.data.get("revoked") or row is None or row.consumed_at is not None:
        return dict(INACTIVE)
    out = {
        "active": True,
        "token_type": "refresh_token",
        "client_id": client.client_id,
        "sub": row.data.get("sub", client.client_id),
        "exp": claims["exp"],
        "iat": claims.get("iat"),
        "iss": claims["iss"],
    }
    if row.data.get("scope"):
        out["scope"] = row.data["scope"]
    return out


def revoke(core: Core, client: Client, token: str | None, hint: str | None = None, *, profile: str = NATIVE) -> None:
    """RFC 7009 §2.1: revoke an access token (its jti) or a refresh token (its whole family).
    Unknown, malformed and expired tokens (and another profile's) are no error. Another
    client's token is refused, and nothing is revoked."""
    if not token:
        raise InvalidRequest("token is required", reason="token_missing")
    for typ in _order(hint):
        claims = _own_claims(core, token, typ, profile)
        if claims is None:
            continue
        if claims.get("client_id") != client.client_id:
            raise InvalidRequest("the client is not authorized to revoke the presented token", reason="revoke_foreign")
        if typ == "at+jwt":
            tokens.revoke_token(core, str(claims.get("jti")), client.client_id, int(claims["exp"]))
        else:
            refresh.revoke_family(core, str(claims.get("fam")), client.client_id, cause="revoked_by_client")
        return


def userinfo(core: Core, token: str | None, *, thumbprint: str | None) -> dict[str, Any]:
    """OIDC Core §5.3: who the access token stands for. A certificate-bound token is good
    only with its certificate (RFC 8705 §3)."""
    claims = tokens.verify_access_token(core, token, thumbprint=thumbprint, profile=NATIVE)
    out: dict[str, Any] = {"sub": claims.get("sub")}
    if "email" in str(claims.get("scope", "")).split() and claims.get("sub") != claims.get("client_id"):
        out.update(email=claims["sub"], email_verified=True)
    return out


# --- the token endpoint's grants, a registry --------------------------------------------------------


@dataclass(frozen=True)
class TokenRequest:
    """A ``POST /oauth2/token`` as the web layer parsed it (after client authentication)."""

    grant_type: str
    auth: AuthenticatedClient
    scope: str | None = None
    code: str | None = None
    redirect_uri: str | None = None
    code_verifier: str | None = None
    refresh_token: str | None = None


@dataclass(frozen=True)
class TokenPolicy:
    """What the grants read from the settings: the refresh token's lifetime, the retry grace
    window, and the KEK that seals a grace-window answer."""

    refresh_ttl: int
    grace: int
    kek: bytes

    @classmethod
    def from_settings(cls, s: Any) -> TokenPolicy:
        return cls(s.refresh_token_ttl, s.refresh_grace_seconds, s.kek_bytes())


@dataclass(frozen=True)
class Grant:
    """One grant type: ``handle(core, request, policy)`` returns the token response.
    ``blocking``: it may wait (a grace-window retry waits for the first answer), so the
    caller runs it off the event loop."""

    handle: Callable[[Core, TokenRequest, TokenPolicy], dict[str, Any]]
    blocking: bool = False


GRANTS: dict[str, Grant] = {
    "authorization_code": Grant(
        lambda core, req, policy: authorization_code(
            core,
            req.auth,
            code=req.code,
            redirect_uri=req.redirect_uri,
            code_verifier=req.code_verifier,
            refresh_ttl=policy.refresh_ttl,
        )
    ),
    "client_credentials": Grant(
        lambda core, req, policy: client_credentials(core, req.auth, scope=req.scope, ttl=core.config.access_token_ttl)
    ),
    "refresh_token": Grant(
        lambda core, req, policy: refresh_token(
            core,
            req.auth,
            token=req.refresh_token,
            scope=req.scope,
            refresh_ttl=policy.refresh_ttl,
            grace=policy.grace,
            kek=policy.kek,
        ),
        blocking=True,
    ),
}
assert tuple(GRANTS) == GRANT_TYPES
