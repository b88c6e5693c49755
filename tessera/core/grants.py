"""Token grants: client_credentials (RFC 6749 §4.4) and authorization_code with PKCE
(RFC 6749 §4.1, RFC 7636)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any

from tessera.core import tokens
from tessera.core.authorize import CODE_KIND
from tessera.core.context import Core
from tessera.core.enrollment import EnrollmentRequest
from tessera.core.models import Artifact, Client
from tessera.core.secrets import sha256_key
from tessera.errors import InvalidGrant, InvalidRequest
from tessera.storage.base import Conflict

VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
#: A marker left by every replay of a code, so that an exchange that is still issuing its
#: token when the replay arrives revokes that token itself (see ``authorization_code``).
REPLAY_KIND = "authorization_code_replay"
OIDC_SCOPES = ("openid", "oidc")


def client_credentials(core: Core, client: Client, *, ttl: int, thumbprint: str | None, scope: str = "",
                       extra: dict[str, Any] | None = None) -> tokens.IssuedToken:
    return tokens.issue_access_token(core, client_id=client.client_id, ttl=ttl, scope=scope,
                                     thumbprint=thumbprint, extra=extra)


def pkce_matches(verifier: str, challenge: str) -> bool:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return hmac.compare_digest(computed, challenge)


def authorization_code(core: Core, client: Client, *, code: str | None, redirect_uri: str | None,
                       code_verifier: str | None, thumbprint: str | None) -> dict[str, Any]:
    """Exchange a code: single-use, unexpired, for this client and this redirect_uri, with the
    PKCE verifier when a challenge was pushed. A replayed code revokes what it issued."""
    if not code:
        raise InvalidRequest("code is required", reason="code_missing")
    key = sha256_key(code)
    art = core.store.get_artifact(CODE_KIND, key)
    now = core.now()
    if art is None:
        raise InvalidGrant("the authorization code is invalid", reason="code_unknown")
    if art.client_id != client.client_id:
        raise InvalidGrant("the authorization code was issued to another client", reason="code_foreign")
    if art.consumed_at is not None:
        _revoke_issued(core, art)
        raise InvalidGrant("the authorization code has already been used", reason="code_replayed")
    if art.expires_at <= now:
        raise InvalidGrant("the authorization code has expired", reason="code_expired")
    params = art.data["params"]
    if redirect_uri != params["redirect_uri"]:
        raise InvalidGrant("redirect_uri does not match the authorization request", reason="code_redirect_uri")
    challenge = params.get("code_challenge")
    if challenge:
        if not code_verifier:
            raise InvalidRequest("code_verifier is required", reason="pkce_verifier_missing")
        if not VERIFIER.match(code_verifier) or not pkce_matches(code_verifier, challenge):
            core.store.consume(CODE_KIND, key, now)  # a wrong verifier burns the code
            raise InvalidGrant("code_verifier does not match code_challenge", reason="pkce_mismatch")
    elif code_verifier:
        raise InvalidGrant("code_verifier given but no code_challenge was pushed", reason="pkce_unexpected")

    won = core.store.consume(CODE_KIND, key, now)
    if won is None:
        fresh = core.store.get_artifact(CODE_KIND, key)
        if fresh is not None and fresh.consumed_at is not None:
            _revoke_issued(core, fresh)
        raise InvalidGrant("the authorization code has already been used", reason="code_replayed")

    enrollment = EnrollmentRequest.from_dict(won.data["enrollment"])
    scope = params["scope"]
    issued = tokens.issue_access_token(core, client_id=client.client_id, ttl=core.config.access_token_ttl,
                                       scope=scope, subject=enrollment.username, thumbprint=thumbprint)
    body: dict[str, Any] = {"access_token": issued.token, "token_type": "Bearer",
                            "expires_in": issued.expires_in, "scope": scope}
    scopes = scope.split()
    if any(s in scopes for s in OIDC_SCOPES):
        extra = {"email": enrollment.username, "email_verified": True} if "email" in scopes else None
        body["id_token"] = tokens.issue_id_token(core, client_id=client.client_id, subject=enrollment.username,
                                                 ttl=core.config.id_token_ttl, extra=extra)
    core.store.update_artifact_data(CODE_KIND, key, {**won.data, "issued_jti": issued.jti, "issued_exp": issued.claims["exp"]})
    # A replay that raced this exchange (it found the code consumed before issued_jti was
    # stored) left a marker: revoke what we just issued, as the replay would have.
    if core.store.get_artifact(REPLAY_KIND, key) is not None:
        tokens.revoke_token(core, issued.jti, client.client_id, issued.claims["exp"])
    if not core.store.bind_username(enrollment.username, enrollment.bound_tid, now):
        tokens.revoke_token(core, issued.jti, client.client_id, issued.claims["exp"])
        raise InvalidGrant("username_merchant is bound to another TID", reason="username_bound")
    core.store.add_enrollment(client.client_id, enrollment.merchant_id, enrollment.pos, list(enrollment.tids),
                              enrollment.username, now)
    return body


def _revoke_issued(core: Core, art) -> None:
    """Revoke what the code issued. The winning exchange may still be issuing: leave a marker
    first, then re-read the code. Either the winner sees the marker after storing its jti, or
    this re-read sees the jti: the token is revoked in both orders."""
    try:
        core.store.put_artifact(Artifact(REPLAY_KIND, art.key, art.client_id, {},
                                         core.now() + max(core.config.access_token_ttl, core.config.code_ttl)))
    except Conflict:
        pass
    fresh = core.store.get_artifact(CODE_KIND, art.key) or art
    jti = fresh.data.get("issued_jti")
    if jti:
        tokens.revoke_token(core, jti, fresh.client_id, int(fresh.data.get("issued_exp") or core.now() + 3600))
    core.event("authorization_code_replayed", art.client_id, revoked_jti=jti)
