"""The ``b2binpay`` profile: B2BINPAY API v2 authentication, as documented.

- ``POST {prefix}/token/`` JSON:API ``{"data":{"type":"auth-token","attributes":{"login","password"}}}``
  → ``data.attributes{access, refresh, access_expired_at, refresh_expired_at, is_2fa_confirmed}`` and
  ``meta{time, sign}`` with ``sign = hex(HMAC-SHA256(SHA-256(login + password), meta.time + refresh))``.
- ``POST {prefix}/token/refresh/`` ``{"data":{"type":"auth-token","attributes":{"refresh"}}}`` → the same
  body without ``meta``. Rotation is strict: a used refresh token is dead, and presenting a used or
  unknown token that has not expired revokes the whole family (security event recorded).
- Errors are JSON:API ``errors[]``: 400 code 2006 (bad login), 401 code 2007 (bad refresh),
  429 ``throttled`` with ``Retry-After``. Both paths also answer without the trailing slash.
- The login endpoint takes at most ``b2binpay_login_per_minute`` (15) requests a minute from
  one client address, as the provider limits requests made without prior authentication.

A login/password pair is a tessera client's id and secret. The use cases (authentication,
the token pair, ``meta.sign``, the times) are ``tessera.core.flows.b2binpay``; this module
parses JSON:API into its requests and renders its answers and errors.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from tessera.core.flows import b2binpay as flow
from tessera.core.ratelimit import guard
from tessera.errors import InvalidClient, InvalidGrant, InvalidRequest, OAuthError, SlowDown
from tessera.web.errors import NO_STORE
from tessera.web.forms import identifier, read_json
from tessera.web.responses import JSONResponse, fixed_json
from tessera.web.routing import ProfileRoute
from tessera.web.runtime import Runtime

PROFILE = flow.PROFILE
MEDIA = "application/vnd.api+json"
#: What the login and refresh endpoints take: JSON:API, and plain JSON as the public
#: TypeScript client sends it (provider-docs/reference-facts.md). Answers are always JSON:API.
ACCEPTED_MEDIA = (MEDIA, "application/json")
BAD_LOGIN = "No active account found with the given credentials"
#: The login endpoint's own per-address budget (``b2binpay_login_per_minute``; tessera.web.runtime).
LOGIN_BUDGET = "b2binpay-login"


def render(err: OAuthError) -> Response:
    if isinstance(err, SlowDown):
        status, code, detail = (
            429,
            "throttled",
            f"Request was throttled. Expected available in {err.retry_after} seconds.",
        )
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
    if isinstance(data, dict) and set(data) == {"data"} and isinstance(data["data"], dict):
        # The public TypeScript client (bgrusnak/b2binpay-ts) posts {"data": {"data": {...}}} as
        # plain JSON (axios's default): the resource object one level down, and nothing beside it.
        data = data["data"]
    if not isinstance(data, dict) or data.get("type") != "auth-token":
        raise InvalidRequest(
            'the body must be {"data": {"type": "auth-token", "attributes": {...}}}', reason="jsonapi_shape"
        )
    attrs = data.get("attributes")
    if not isinstance(attrs, dict):
        raise InvalidRequest("data.attributes is required", reason="jsonapi_shape")
    out: dict[str, str] = {}
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


def routes(rt: Runtime) -> list[ProfileRoute]:
    p = rt.settings.b2binpay_prefix
    s = rt.settings
    lifetimes = flow.Lifetimes.from_settings(s)

    def login_flow(request: Request, req: flow.LoginRequest) -> flow.B2BTokens:
        # The login is a client id: one counter per client secret, shared with the other profiles.
        auth = rt.guarded(request, f"client:{req.login}", flow.authenticate, rt.core, req)
        rt.limit_credential("client:" + auth.client.client_id)
        return flow.login(rt.core, auth.client.client_id, req, lifetimes)

    async def login(request: Request) -> Response:
        rt.limit_address(request, budget=LOGIN_BUDGET)  # the provider's 15 a minute, then tessera's own rate
        body = await read_json(request, s.max_body_bytes, media=ACCEPTED_MEDIA)
        attrs = _attributes(body, ("login", "password"))
        identifier(attrs["login"], "data.attributes.login")  # no NUL or control character reaches the database
        answer = await rt.run_flow(login_flow, request, flow.LoginRequest(attrs["login"], attrs["password"]))
        rt.issued(PROFILE)
        return fixed_json({"data": answer.data(), "meta": answer.meta()}, NO_STORE, media_type=MEDIA)

    async def refresh_token(request: Request) -> Response:
        rt.limit_address(request)
        body = await read_json(request, s.max_body_bytes, media=ACCEPTED_MEDIA)
        req = flow.RefreshRequest(_attributes(body, ("refresh",))["refresh"])
        addr_key = rt.address_key(request)  # nothing to guess in a refresh token: the address's counter only
        wait = guard(rt.failures, addr_key)
        if wait:
            raise SlowDown(wait, reason="refresh_locked")
        # The client's request-rate budget: looked at before the token is consumed (a refused
        # refresh must leave it usable), spent once the token proved genuine, so that whoever
        # merely knows a login cannot spend its budget.
        limiter, claimed = rt.rate_credential, claimed_client(req.refresh)
        if limiter is not None and claimed is not None and (wait := limiter.wait("client:" + claimed)):
            raise SlowDown(wait, reason="rate_limit_credential")
        try:
            plan = flow.plan_refresh(rt.core, req, lifetimes)
            done = await rt.run_flow.rotate(rt.core, plan.rotation)
            answer = flow.refresh_answer(rt.core, plan, done, lifetimes)
        except InvalidGrant as e:
            if e.reason != "client_revoked":
                rt.fail_login(addr_key)
            raise
        if limiter is not None:
            limiter.charge("client:" + answer.client_id)
        rt.issued(PROFILE)
        # The document shows the refresh answer without ``data``; the public clients read
        # ``data.attributes`` (the TypeScript one: ``data.data.attributes``), so it stays wrapped.
        return fixed_json({"data": answer.data()}, NO_STORE, media_type=MEDIA)

    return [
        ProfileRoute(f"{p}/token/", login, profile=PROFILE, methods=["POST"]),
        ProfileRoute(f"{p}/token", login, profile=PROFILE, methods=["POST"]),
        ProfileRoute(f"{p}/token/refresh/", refresh_token, profile=PROFILE, methods=["POST"]),
        ProfileRoute(f"{p}/token/refresh", refresh_token, profile=PROFILE, methods=["POST"]),
    ]
