"""The ``mobilepay`` profile: MobilePay PoS integrator authentication, as documented.

``POST {prefix}/connect/token`` — HTTP Basic client authentication only,
``grant_type=client_credentials`` and an optional ``merchant_vat`` (``^(DK|FI)\\d{8}$``)
→ ``{access_token, expires_in: 3700, token_type: "Bearer", scope: "integrator_scope"}``.
With ``merchant_vat`` the token carries it and is good only for that merchant, which must
have granted this integrator. ``GET {prefix}/.well-known/openid-configuration`` describes it.
Tokens name ``{issuer}{prefix}`` as their issuer, so discovery is consistent (OIDC
Discovery §4.3: the issuer plus ``/.well-known/openid-configuration`` is the document).
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tessera.core import tokens
from tessera.core.clients import authenticate_secret
from tessera.errors import InvalidClient, InvalidRequest, UnauthorizedClient, UnsupportedGrantType
from tessera.web.forms import client_credentials, read_form
from tessera.web.responses import JSONResponse
from tessera.web.runtime import Runtime, endpoint, no_store_json, only

PROFILE = "mobilepay"
VAT = re.compile(r"^(DK|FI)\d{8}$", re.ASCII)  # ASCII: \d would also take "١٢٣…" and "１２３…"
SCOPE = "integrator_scope"


def issuer(rt: Runtime) -> str:
    return rt.core.config.issuer + rt.settings.mobilepay_prefix


def routes(rt: Runtime) -> list[Route]:
    p = rt.settings.mobilepay_prefix

    @endpoint(rt, PROFILE)
    async def token(request: Request) -> Response:
        only(request, "POST")
        rt.limit_address(request)
        form = await read_form(request, rt.settings.max_body_bytes)
        creds = client_credentials(request, form)
        if creds.method != "client_secret_basic":
            raise InvalidClient("authenticate with HTTP Basic (client_id:client_secret)", reason="basic_required")
        if not form.get("grant_type"):
            raise InvalidRequest("grant_type is required", reason="grant_type_missing")
        if form.get("grant_type") != "client_credentials":
            raise UnsupportedGrantType("grant_type must be client_credentials", reason="grant_type")
        vat = form.get("merchant_vat")
        if vat is not None and not VAT.fullmatch(vat):
            raise InvalidRequest("merchant_vat must be DK or FI followed by 8 digits", reason="vat_format")
        # Brute force: counted per client (the same key as the other profiles that check this
        # secret) and per address; 429 with Retry-After while locked.
        client = rt.guarded(request, f"client:{creds.client_id or ''}", authenticate_secret, rt.core, creds)
        rt.limit_credential("client:" + client.client_id)
        extra = None
        if vat is not None:
            merchant = rt.core.store.get_merchant_by_vat(vat)
            if merchant is None or not rt.core.store.is_granted(merchant.merchant_id, client.client_id):
                raise UnauthorizedClient("the merchant has not granted this integrator access", reason="merchant_not_granted")
            extra = {"merchant_vat": vat}
        issued = tokens.issue_access_token(rt.core, client_id=client.client_id, ttl=rt.settings.mobilepay_token_ttl,
                                           scope=SCOPE, issuer=issuer(rt), extra=extra)
        rt.issued(PROFILE)
        return no_store_json({"access_token": issued.token, "expires_in": issued.expires_in,
                              "token_type": "Bearer", "scope": SCOPE})

    @endpoint(rt, PROFILE)
    async def discovery(request: Request) -> Response:
        only(request, "GET", "HEAD")
        iss = issuer(rt)
        return JSONResponse({
            "issuer": iss,
            "jwks_uri": f"{iss}/.well-known/openid-configuration/jwks",
            "token_endpoint": f"{iss}/connect/token",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "scopes_supported": [SCOPE],
            "claims_supported": ["merchant_vat", "client_id", "scope"],
            "id_token_signing_alg_values_supported": [rt.settings.signing_alg],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
        }, headers={"Cache-Control": "public, max-age=300"})

    @endpoint(rt, PROFILE)
    async def jwks(request: Request) -> Response:
        only(request, "GET", "HEAD")
        return JSONResponse(rt.core.keys.get().jwks("sig", rt.now_dt()), headers={"Cache-Control": "public, max-age=300"})

    m = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    return [
        Route(f"{p}/connect/token", token, methods=m),
        Route(f"{p}/.well-known/openid-configuration", discovery, methods=m),
        Route(f"{p}/.well-known/openid-configuration/jwks", jwks, methods=m),
    ]
