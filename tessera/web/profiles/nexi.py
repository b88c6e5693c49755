"""The ``nexi-softpos`` profile: Nexi's B2B SoftPOS enrollment endpoints, as documented.

- ``POST {prefix}/appenrollment/token`` client_credentials over mTLS → 3600 s token
- ``GET  {prefix}/par/jwks.json``       the RSA encryption keys for client assertions
- ``POST {prefix}/as/par``               PAR with Bearer token + nested-JWE client_assertion → 201
- ``GET/POST {prefix}/as/authorize``     the merchant's login, then a redirect with a code
- ``POST {prefix}/as/token``             authorization_code (+PKCE) → access token and id_token

This module only parses the wire format, calls the core (the PAR use case is
``tessera.core.flows.nexi``), and renders the result.
"""

from __future__ import annotations

import functools

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tessera.core import authorize, grants
from tessera.core.flows import nexi as nexi_flow
from tessera.core.clients import authenticate_secret, bound_certificate
from tessera.errors import AccessDenied, OAuthError, UnsupportedGrantType
from tessera.web.forms import bearer_token, client_credentials, read_form
from tessera.web.responses import JSONResponse
from tessera.web.runtime import Runtime, endpoint, no_store_json, only, user_key

PROFILE = nexi_flow.PROFILE
REQUEST_URI_PREFIX = nexi_flow.REQUEST_URI_PREFIX


def routes(rt: Runtime) -> list[Route]:
    p = rt.settings.nexi_prefix

    @endpoint(rt, PROFILE)
    async def token(request: Request) -> Response:
        only(request, "POST")
        rt.limit_address(request)
        form = await read_form(request, rt.settings.max_body_bytes)
        if form.get("grant_type") != "client_credentials":
            raise UnsupportedGrantType("grant_type must be client_credentials", reason="grant_type")
        creds = client_credentials(request, form)
        client = rt.guarded(request, f"client:{creds.client_id or ''}", authenticate_secret, rt.core, creds)
        rt.limit_credential("client:" + client.client_id)
        peer = rt.peer(request)
        cert = bound_certificate(rt.core, client, peer)
        issued = grants.client_credentials(rt.core, client, ttl=rt.core.config.nexi_token_ttl, thumbprint=cert.thumbprint)
        rt.issued(PROFILE)
        return no_store_json({"access_token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in})

    @endpoint(rt, PROFILE)
    async def jwks(request: Request) -> Response:
        only(request, "GET", "HEAD")
        body = rt.core.keys.get().jwks("enc", rt.now_dt())
        return JSONResponse(body, headers={"Cache-Control": "public, max-age=60"})

    @endpoint(rt, PROFILE)
    async def push(request: Request) -> Response:
        only(request, "POST")
        rt.limit_address(request)
        peer = rt.peer(request)
        token = bearer_token(request)
        form = await read_form(request, rt.settings.max_body_bytes) if peer is not None and token is not None else {}
        req = nexi_flow.PushRequest(form=form, bearer_token=token, peer=peer)
        # The per-credential limit applies once the client is known, before the costly decryption.
        pushed = nexi_flow.push_authorization(rt.core, req, after_auth=lambda c: rt.limit_credential("client:" + c.client_id))
        return no_store_json({"request_uri": pushed.request_uri, "expires_in": pushed.expires_in}, status_code=201)

    @endpoint(rt, PROFILE, html=True, writes=True)  # the login stores a code: limited per address first
    async def authorize_page(request: Request) -> Response:
        only(request, "GET", "POST")
        if request.method == "GET":
            q = request.query_params
            page = authorize.login_page(rt.core, q.get("client_id"), q.get("request_uri"))
            return rt.render_login(request, page, action=f"{p}/as/authorize")
        form = await read_form(request, rt.settings.max_body_bytes)
        try:
            location = await rt.in_thread(functools.partial(
                rt.guarded, request, user_key(form), authorize.login, rt.core,
                form.get("client_id"), form.get("request_uri"), form.get("username", ""), form.get("password", ""),
                failures=(AccessDenied,)))
        except OAuthError as e:
            if e.reason != "login_failed":
                raise
            page = authorize.login_page(rt.core, form.get("client_id"), form.get("request_uri"))
            return rt.render_login(request, page, action=f"{p}/as/authorize", error=e.description, status=401)
        return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})

    @endpoint(rt, PROFILE)
    async def code_token(request: Request) -> Response:
        only(request, "POST")
        rt.limit_address(request)
        form = await read_form(request, rt.settings.max_body_bytes)
        if form.get("grant_type") != "authorization_code":
            raise UnsupportedGrantType("grant_type must be authorization_code", reason="grant_type")
        creds = client_credentials(request, form)
        client = rt.guarded(request, f"client:{creds.client_id or ''}", authenticate_secret, rt.core, creds)
        rt.limit_credential("client:" + client.client_id)
        cert = bound_certificate(rt.core, client, rt.peer(request))
        body = grants.authorization_code(
            rt.core, client, code=form.get("code"), redirect_uri=form.get("redirect_uri"),
            code_verifier=form.get("code_verifier"), thumbprint=cert.thumbprint,
        )
        rt.issued(PROFILE)
        return no_store_json(body)

    any_method = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    return [
        Route(f"{p}/appenrollment/token", token, methods=any_method),
        Route(f"{p}/par/jwks.json", jwks, methods=any_method),
        Route(f"{p}/as/par", push, methods=any_method),
        Route(f"{p}/as/authorize", authorize_page, methods=any_method),
        Route(f"{p}/as/token", code_token, methods=any_method),
    ]
