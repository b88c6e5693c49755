"""The ``mobilepay`` profile: MobilePay PoS integrator authentication, on the wire.

``POST {prefix}/connect/token`` — the client secret (HTTP Basic as in the document's curl, or
``client_secret_post``: the provider's discovery document advertises both),
``grant_type=client_credentials`` and an optional ``merchant_vat`` (``^(DK|FI)\\d{8}$``)
→ ``{access_token, expires_in: 3700, token_type: "Bearer", scope: "integrator_scope"}``.
``GET {prefix}/.well-known/openid-configuration`` describes it, IdentityServer-style, and
``GET {prefix}/.well-known/openid-configuration/jwks`` publishes MobilePay's own RS256 keys
(``x5c``, ``x5t``). Tokens name ``{issuer}{prefix}`` as their issuer, so discovery is
consistent (OIDC Discovery §4.3). The use case lives in ``tessera.core.flows.mobilepay``;
this module parses the form and renders. See docs/profiles/mobilepay.md.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tessera.core.clients import ClientCredentials, authenticate_secret
from tessera.core.flows import mobilepay as flow
from tessera.core.flows import native
from tessera.core.models import Client
from tessera.jose.keyset import PROFILE_RINGS
from tessera.web.errors import oauth_error_response
from tessera.web.forms import client_credentials, read_form
from tessera.web.responses import JSONResponse
from tessera.web.routing import ProfileRoute
from tessera.web.runtime import Runtime, no_store_json

PROFILE = "mobilepay"
VAT = flow.VAT
SCOPE = flow.SCOPE
#: MobilePay's errors are RFC 6749 JSON (IdentityServer's).
render = oauth_error_response


def issuer(rt: Runtime) -> str:
    return rt.core.config.seal(PROFILE).issuer


def discovery_document(rt: Runtime) -> dict[str, Any]:
    """What the provider's document lists, for the endpoints this server has: the token,
    introspection (RFC 7662) and revocation (RFC 7009) endpoints of MobilePay's tokens. The
    provider's ``connect/authorize``, ``userinfo``, ``endsession`` and ``deviceauthorization``
    serve user sign-in, which an integrator's client-credentials token never involves: they do
    not exist here, so they are not advertised."""
    iss = issuer(rt)
    return {
        "issuer": iss,
        "jwks_uri": f"{iss}/.well-known/openid-configuration/jwks",
        "token_endpoint": f"{iss}/connect/token",
        "introspection_endpoint": f"{iss}/connect/introspect",
        "revocation_endpoint": f"{iss}/connect/revocation",
        "scopes_supported": [SCOPE],
        "claims_supported": [
            "client_id",
            "integrator_id",
            "integrator_name",
            "integratorclient_name",
            "merchant_vat",
            "scope",
        ],
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["token"],
        "token_endpoint_auth_methods_supported": list(flow.AUTH_METHODS),
        "id_token_signing_alg_values_supported": [PROFILE_RINGS[PROFILE]],
        "subject_types_supported": ["public"],
    }


def routes(rt: Runtime) -> list[ProfileRoute]:
    p = rt.settings.mobilepay_prefix

    def authenticate(request: Request, creds: ClientCredentials) -> Client:
        # Brute force: counted per client (the same key as the other profiles that check this
        # secret) and per address; 429 with Retry-After while locked.
        client: Client = rt.guarded(request, f"client:{creds.client_id or ''}", authenticate_secret, rt.core, creds)
        rt.limit_credential("client:" + client.client_id)
        return client

    async def token(request: Request) -> Response:
        rt.limit_address(request)
        form = await read_form(request, rt.settings.max_body_bytes)
        parsed = flow.TokenRequest(
            credentials=client_credentials(request, form),
            grant_type=form.get("grant_type"),
            merchant_vat=form.get("merchant_vat"),
            scope=form.get("scope"),
        )
        result = await rt.run_flow(
            flow.token,
            rt.core,
            parsed,
            ttl=rt.settings.mobilepay_token_ttl,
            authenticate=lambda creds: authenticate(request, creds),
        )
        rt.issued(PROFILE)
        return no_store_json(
            {
                "access_token": result.access_token,
                "expires_in": result.expires_in,
                "token_type": result.token_type,
                "scope": result.scope,
            }
        )

    def introspect_flow(request: Request, form: dict[str, str]) -> dict[str, Any]:
        client = authenticate(request, flow.client_credentials_of(client_credentials(request, form)))
        return native.introspect(rt.core, client, form.get("token"), form.get("token_type_hint"), profile=PROFILE)

    def revocation_flow(request: Request, form: dict[str, str]) -> None:
        client = authenticate(request, flow.client_credentials_of(client_credentials(request, form)))
        native.revoke(rt.core, client, form.get("token"), form.get("token_type_hint"), profile=PROFILE)

    async def introspect(request: Request) -> Response:
        rt.limit_address(request)
        form = await read_form(request, rt.settings.max_body_bytes)
        return no_store_json(await rt.run_flow(introspect_flow, request, form))

    async def revocation(request: Request) -> Response:
        rt.limit_address(request)
        form = await read_form(request, rt.settings.max_body_bytes)
        await rt.run_flow(revocation_flow, request, form)
        return Response(status_code=200, headers={"Cache-Control": "no-store"})

    async def discovery(request: Request) -> Response:
        return JSONResponse(discovery_document(rt), headers={"Cache-Control": "public, max-age=300"})

    async def jwks(request: Request) -> Response:
        return JSONResponse(
            rt.core.keys.get().jwks("sig", rt.now_dt(), ring=PROFILE), headers={"Cache-Control": "public, max-age=300"}
        )

    return [
        ProfileRoute(f"{p}/connect/token", token, profile=PROFILE, methods=["POST"]),
        ProfileRoute(f"{p}/connect/introspect", introspect, profile=PROFILE, methods=["POST"]),
        ProfileRoute(f"{p}/connect/revocation", revocation, profile=PROFILE, methods=["POST"]),
        ProfileRoute(f"{p}/.well-known/openid-configuration", discovery, profile=PROFILE, methods=["GET", "HEAD"]),
        ProfileRoute(f"{p}/.well-known/openid-configuration/jwks", jwks, profile=PROFILE, methods=["GET", "HEAD"]),
    ]
