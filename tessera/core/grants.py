"""Token grants: client_credentials (RFC 6749 §4.4) and authorization_code with PKCE
(RFC 6749 §4.1, RFC 7636)."""

from __future__ import annotations

from typing import Any

from tessera.core import codes, tokens
from tessera.core.authorize import CODE_KIND
from tessera.core.context import Core
from tessera.core.enrollment import EnrollmentRequest
from tessera.core.kinds import Kind
from tessera.core.models import Client
from tessera.core.profiles import NEXI
from tessera.errors import InvalidGrant

#: Nexi codes and their replay markers (see tessera.core.codes).
NEXI_CODES = codes.CodeKinds(CODE_KIND, Kind.CODE_REPLAY.value)
OIDC_SCOPES = ("openid", "oidc")


def client_credentials(
    core: Core,
    client: Client,
    *,
    ttl: int,
    thumbprint: str | None,
    scope: str = "",
    extra: dict[str, Any] | None = None,
) -> tokens.IssuedToken:
    return tokens.issue_access_token(
        core, profile=NEXI, client_id=client.client_id, ttl=ttl, scope=scope, thumbprint=thumbprint, extra=extra
    )


def authorization_code(
    core: Core,
    client: Client,
    *,
    code: str | None,
    redirect_uri: str | None,
    code_verifier: str | None,
    thumbprint: str | None,
) -> dict[str, Any]:
    """Exchange a code: single-use, unexpired, for this client and this redirect_uri, with the
    PKCE verifier when a challenge was pushed. A replayed code revokes what it issued."""
    key, won = codes.redeem(
        core,
        NEXI_CODES,
        client.client_id,
        code=code,
        redirect_uri=redirect_uri,
        code_verifier=code_verifier,
        pkce_required=False,
    )
    now = core.now()
    params = won.data["params"]
    enrollment = EnrollmentRequest.from_dict(won.data["enrollment"])
    scope = params["scope"]
    issued = tokens.issue_access_token(
        core,
        profile=NEXI,
        client_id=client.client_id,
        ttl=core.config.access_token_ttl,
        scope=scope,
        subject=enrollment.username,
        thumbprint=thumbprint,
    )
    body: dict[str, Any] = {
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": scope,
    }
    scopes = scope.split()
    if any(s in scopes for s in OIDC_SCOPES):
        extra = {"email": enrollment.username, "email_verified": True} if "email" in scopes else None
        body["id_token"] = tokens.issue_id_token(
            core, client_id=client.client_id, subject=enrollment.username, ttl=core.config.id_token_ttl, extra=extra
        )
    # A replay that raced this exchange makes record_issued revoke what was just issued.
    codes.record_issued(core, NEXI_CODES, key, won, jti=issued.jti, exp=issued.claims["exp"])
    if not core.store.bind_username(enrollment.username, enrollment.bound_tid, now):
        tokens.revoke_token(core, issued.jti, client.client_id, issued.claims["exp"])
        raise InvalidGrant("username_merchant is bound to another TID", reason="username_bound")
    # app_deviceid travelled with the request_uri and then the code: the enrollment keeps it.
    core.store.add_enrollment(
        client.client_id,
        enrollment.merchant_id,
        enrollment.pos,
        list(enrollment.tids),
        enrollment.username,
        now,
        device_id=enrollment.device_id,
    )
    return body
