"""The ``b2binpay`` profile: B2BINPAY API v2 authentication, as documented.

- ``POST {prefix}/token/`` JSON:API ``{"data":{"type":"auth-token","attributes":{"login","password"}}}``
  → ``data.attributes{access, refresh, access_expired_at, refresh_expired_at, is_2fa_confirmed}`` and
  ``meta{time, sign}`` with ``sign = hex(HMAC-SHA256(SHA-256(login + password), meta.time + refresh))``.
- ``POST {prefix}/token/refresh/`` ``{"data":{"type":"auth-token","attributes":{"refresh"}}}`` → the same
  body without ``meta``. Rotation is strict: a used refresh token is dead, and presenting a used or
  unknown token that has not expired revokes the whole family (security event recorded).
- Errors are JSON:API ``errors[]``: 400 code 2006 (bad login), 401 code 2007 (bad refresh),
  429 ``throttled`` with ``Retry-After``. Both paths also answer without the trailing slash.

A login/password pair is a tessera client's id and secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tessera.core import refresh, tokens
from tessera.core.clients import ClientCredentials, authenticate_secret
from tessera.core.clock import iso_z
from tessera.core.ratelimit import guard
from tessera.errors import InvalidClient, InvalidGrant, InvalidRequest, OAuthError, SlowDown
from tessera.web.errors import NO_STORE
from tessera.web import dbcall
from tessera.web.forms import identifier, read_json
from tessera.web.responses import JSONResponse
from tessera.web.runtime import Runtime, endpoint, only

PROFILE = "b2binpay"
MEDIA = "application/vnd.api+json"
BAD_LOGIN = "No active account found with the given credentials"


def sign(login: str, password: str, time_str: str, refresh_token: str) -> str:
    """The document's response signature: HMAC-SHA256 keyed by SHA-256(login + password)."""
    key = hashlib.sha256((login + password).encode("utf-8")).digest()
    return hmac.new(key, (time_str + refresh_token).encode("utf-8"), hashlib.sha256).hexdigest()


def render(err: OAuthError) -> Response:
    if isinstance(err, SlowDown):
        status, code, detail = 429, "throttled", f"Request was throttled. Expected available in {err.retry_after} seconds."
    elif isinstance(err, InvalidClient):
        status, code, detail = 400, "2006", BAD_LOGIN
    elif isinstance(err, InvalidGrant):
        status, code, detail = 401, "2007", BAD_LOGIN
    elif err.status >= 500:
        status, code, detail = err.status, err.error, err.description or "Internal server error"
    else:
        status, code, detail = err.status if err.status != 415 else 400, "invalid", err.description or "Bad request"
    body = {"errors": [{"status": str(status), "code": code, "detail": detail}]}
    return JSONResponse(body, status_code=status, headers={**NO_STORE, **err.headers}, media_type=MEDIA)


def _attributes(body: Any, names: tuple[str, ...]) -> dict[str, str]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or data.get("type") != "auth-token":
        raise InvalidRequest('the body must be {"data": {"type": "auth-token", "attributes": {...}}}', reason="jsonapi_shape")
    attrs = data.get("attributes")
    if not isinstance(attrs, dict):
        raise InvalidRequest("data.attributes is required", reason="jsonapi_shape")
    out = {}
    for name in names:
        value = attrs.get(name)
        if not isinstance(value, str) or not value or len(value) > 4096:
            raise InvalidRequest(f"data.attributes.{name} is required (a string)", reason="jsonapi_field")
        out[name] = value
    return out


def claimed_client(token: str) -> str | None:
    """The ``client_id`` a refresh token *claims*, read without verifying it (a few µs).

    Used only to look at the client's request-rate budget before the token is checked and
    consumed; the budget is spent once the token has proved genuine."""
    try:
        part = token.split(".", 2)[1]
        claims = orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        client_id = claims.get("client_id")
    except (IndexError, ValueError, AttributeError, TypeError):
        return None
    return client_id[:200] if isinstance(client_id, str) else None


def routes(rt: Runtime) -> list[Route]:
    p = rt.settings.b2binpay_prefix
    s = rt.settings

    def pair(client_id: str, family: str | None, family_expires_at: int | None, now: float) -> tuple[dict[str, Any], str]:
        if family is None:
            family, family_expires_at = refresh.start_family(rt.core, client_id, lifetime=s.refresh_family_max_seconds)
        rt_ = refresh.issue_refresh(rt.core, client_id=client_id, subject=client_id, scope="", ttl=s.b2binpay_refresh_ttl,
                                    family=family, family_expires_at=family_expires_at)
        return attributes(client_id, rt_, now), rt_.token

    def attributes(client_id: str, rt_: refresh.IssuedRefresh, now: float) -> dict[str, Any]:
        access = tokens.issue_access_token(rt.core, client_id=client_id, ttl=s.b2binpay_access_ttl, extra={"fam": rt_.family})
        return {"type": "auth-token", "id": "0", "attributes": {
            "refresh": rt_.token, "access": access.token,
            "access_expired_at": iso_z(now + s.b2binpay_access_ttl, micros=True),
            "refresh_expired_at": iso_z(now + s.b2binpay_refresh_ttl if rt_.expires_at >= int(now) + s.b2binpay_refresh_ttl
                                        else rt_.expires_at, micros=True),
            "is_2fa_confirmed": False,
        }}

    def offload(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return dbcall.run(rt.core, fn, *args, **kwargs)

    @endpoint(rt, PROFILE, render=render)
    async def login(request: Request) -> Response:
        only(request, "POST")
        rt.limit_address(request)
        received = time.time()
        body = await read_json(request, s.max_body_bytes, media=(MEDIA,))
        attrs = _attributes(body, ("login", "password"))
        identifier(attrs["login"], "data.attributes.login")  # no NUL or control character reaches the database
        # The login is a client id: one counter per client secret, shared with the other profiles.
        client = rt.guarded(request, f"client:{attrs['login']}", authenticate_secret, rt.core,
                            ClientCredentials(attrs["login"], attrs["password"], "client_secret_post"))
        rt.limit_credential("client:" + client.client_id)
        data, refresh_token = await dbcall.run(rt.core, pair, client.client_id, None, None, received)
        time_str = iso_z(received, micros=True)
        rt.issued(PROFILE)
        return JSONResponse({"data": data, "meta": {"time": time_str, "sign": sign(attrs["login"], attrs["password"], time_str, refresh_token)}},
                            headers=NO_STORE, media_type=MEDIA)

    @endpoint(rt, PROFILE, render=render)
    async def refresh_token(request: Request) -> Response:
        only(request, "POST")
        rt.limit_address(request)
        received = time.time()
        body = await read_json(request, s.max_body_bytes, media=(MEDIA,))
        attrs = _attributes(body, ("refresh",))
        addr_key = f"addr:{rt.client_ip(request)}"
        wait = guard(rt.failures, addr_key)
        if wait:
            raise SlowDown(wait, reason="refresh_locked")
        # The client's request-rate budget: looked at before the token is consumed (a refused
        # refresh must leave it usable), spent once the token proved genuine, so that whoever
        # merely knows a login cannot spend its budget.
        limiter, claimed = rt.rate_credential, claimed_client(attrs["refresh"])
        if limiter is not None and claimed is not None and (wait := limiter.wait("client:" + claimed)):
            raise SlowDown(wait, reason="rate_limit_credential")
        # Strict rotation in one unit of work (one statement on PostgreSQL, awaited on the event
        # loop): the token is used and its successor stored together; a client no longer active
        # is refused first.
        try:
            grant, successor = await refresh.rotate_refresh_async(rt.core, attrs["refresh"], client_id=None,
                                                                  ttl=s.b2binpay_refresh_ttl, offload=offload)
        except InvalidGrant as e:
            if e.reason != "client_revoked":
                rt.fail_login(addr_key)
            raise
        if limiter is not None:
            limiter.charge("client:" + grant.client_id)
        data = attributes(grant.client_id, successor, received)
        rt.issued(PROFILE)
        return JSONResponse({"data": data}, headers=NO_STORE, media_type=MEDIA)

    m = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    return [
        Route(f"{p}/token/", login, methods=m),
        Route(f"{p}/token", login, methods=m),
        Route(f"{p}/token/refresh/", refresh_token, methods=m),
        Route(f"{p}/token/refresh", refresh_token, methods=m),
    ]
