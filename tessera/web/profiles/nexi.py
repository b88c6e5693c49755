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

from typing import Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from tessera.core import authorize, grants, par
from tessera.core.clients import ClientCredentials, PeerCert, authenticate_secret, bound_certificate
from tessera.core.flows import nexi as nexi_flow
from tessera.core.models import Client
from tessera.core.tokens import IssuedToken
from tessera.errors import UnsupportedGrantType
from tessera.web.errors import oauth_error_response
from tessera.web.forms import bearer_token, client_credentials, read_form
from tessera.web.pages import login_page
from tessera.web.responses import JSONResponse
from tessera.web.routing import Before, ProfileRoute
from tessera.web.runtime import Runtime, no_store_json

PROFILE = nexi_flow.PROFILE
REQUEST_URI_PREFIX = nexi_flow.REQUEST_URI_PREFIX
#: Nexi's errors are RFC 6749 JSON.
render = oauth_error_response


class Endpoints:
    """The profile's endpoints, one method each (importable, and testable one by one)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.prefix = rt.settings.nexi_prefix
        self.core = rt.core

    def authenticated(self, request: Request, creds: ClientCredentials, peer: PeerCert | None) -> tuple[Client, str]:
        """The client (its secret checked under brute-force protection, its rate counted) and the
        thumbprint of the certificate it is bound to."""
        client: Client = self.rt.guarded(
            request, f"client:{creds.client_id or ''}", authenticate_secret, self.core, creds
        )
        self.rt.limit_credential("client:" + client.client_id)
        return client, bound_certificate(self.core, client, peer).thumbprint

    async def token(self, request: Request) -> Response:
        self.rt.limit_address(request)
        form = await read_form(request, self.rt.settings.max_body_bytes)
        if form.get("grant_type") != "client_credentials":
            raise UnsupportedGrantType("grant_type must be client_credentials", reason="grant_type")
        creds, peer = client_credentials(request, form), self.rt.peer(request)

        def flow() -> IssuedToken:
            client, thumbprint = self.authenticated(request, creds, peer)
            return grants.client_credentials(
                self.core, client, ttl=self.core.config.nexi_token_ttl, thumbprint=thumbprint
            )

        issued = await self.rt.run_flow(flow)
        self.rt.issued(PROFILE)
        return no_store_json({"access_token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in})

    async def jwks(self, request: Request) -> Response:
        body = self.core.keys.get().jwks("enc", self.rt.now_dt())
        return JSONResponse(body, headers={"Cache-Control": "public, max-age=60"})

    async def push(self, request: Request) -> Response:
        self.rt.limit_address(request)
        peer = self.rt.peer(request)
        token = bearer_token(request)
        form = (
            await read_form(request, self.rt.settings.max_body_bytes) if peer is not None and token is not None else {}
        )
        req = nexi_flow.PushRequest(form=form, bearer_token=token, peer=peer)

        def after_auth(client: Client) -> None:
            # The per-credential limit applies once the client is known, before the costly decryption.
            self.rt.limit_credential("client:" + client.client_id)

        pushed = await self.rt.run_flow(nexi_flow.push_authorization, self.core, req, after_auth=after_auth)
        return no_store_json({"request_uri": pushed.request_uri, "expires_in": pushed.expires_in}, status_code=201)

    async def authorize_page(self, request: Request) -> Response:
        if request.method == "GET":
            q = request.query_params
            page = await self.rt.run_flow(authorize.login_page, self.core, q.get("client_id"), q.get("request_uri"))
            return login_page(request, page, action=f"{self.prefix}/as/authorize")
        form = await read_form(request, self.rt.settings.max_body_bytes)
        return await self.rt.sign_in(
            request, form, action=f"{self.prefix}/as/authorize", par_kind=par.PAR_KIND, code_kind=authorize.CODE_KIND
        )

    async def code_token(self, request: Request) -> Response:
        self.rt.limit_address(request)
        form = await read_form(request, self.rt.settings.max_body_bytes)
        if form.get("grant_type") != "authorization_code":
            raise UnsupportedGrantType("grant_type must be authorization_code", reason="grant_type")
        creds, peer = client_credentials(request, form), self.rt.peer(request)

        def flow() -> dict[str, Any]:
            client, thumbprint = self.authenticated(request, creds, peer)
            return grants.authorization_code(
                self.core,
                client,
                code=form.get("code"),
                redirect_uri=form.get("redirect_uri"),
                code_verifier=form.get("code_verifier"),
                thumbprint=thumbprint,
            )

        body = await self.rt.run_flow(flow)
        self.rt.issued(PROFILE)
        return no_store_json(body)


def routes(rt: Runtime) -> list[ProfileRoute]:
    e = Endpoints(rt)
    return [
        ProfileRoute(f"{e.prefix}/appenrollment/token", e.token, profile=PROFILE, methods=["POST"]),
        ProfileRoute(f"{e.prefix}/par/jwks.json", e.jwks, profile=PROFILE, methods=["GET", "HEAD"]),
        ProfileRoute(f"{e.prefix}/as/par", e.push, profile=PROFILE, methods=["POST"]),
        # The login stores a code: counted per address first (the unauthenticated-writes budget).
        ProfileRoute(
            f"{e.prefix}/as/authorize",
            e.authorize_page,
            profile=PROFILE,
            methods=["GET", "POST"],
            page=True,
            middleware=[Middleware(Before, check=rt.limit_writes)],
        ),
        ProfileRoute(f"{e.prefix}/as/token", e.code_token, profile=PROFILE, methods=["POST"]),
    ]
