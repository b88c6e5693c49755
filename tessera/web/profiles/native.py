"""The native OAuth 2.0 surface: what a standard OAuth client library expects to find.

- ``GET  /.well-known/oauth-authorization-server`` and ``/.well-known/openid-configuration``
  (RFC 8414, OIDC Discovery): the same document, listing only what is supported.
- ``POST /oauth2/token``       client_credentials, authorization_code (+PKCE S256), refresh_token
- ``POST /oauth2/par``         pushed authorization requests (RFC 9126) → 201
- ``GET/POST /oauth2/authorize`` the merchant user's login, then a redirect with ``code``,
  ``state`` and ``iss`` (RFC 9207); plain (non-pushed) requests where the client allows them
- ``POST /oauth2/introspect``  RFC 7662, for the client a token was issued to
- ``POST /oauth2/revoke``      RFC 7009
- ``GET  /oauth2/jwks``        the server's public keys (``use`` on each)
- ``GET/POST /oauth2/userinfo`` OIDC Core §5.3, honouring certificate binding (RFC 8705 §3)

Client authentication on every client-facing endpoint: client_secret_basic,
client_secret_post, tls_client_auth, private_key_jwt (``tessera.core.client_auth``).
This module only parses the wire format, calls the core, and renders the result.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from tessera.core import authorize, par
from tessera.core.client_auth import METHODS, SIGNING_ALGS, AuthenticatedClient, ClientAuthRequest, authenticate
from tessera.core.flows import native
from tessera.errors import InvalidRequest, OAuthError, UnsupportedGrantType
from tessera.web.errors import NO_STORE, oauth_error_response
from tessera.web.forms import bearer_token, client_credentials, parse_form, read_form
from tessera.web.pages import login_page
from tessera.web.responses import JSONResponse
from tessera.web.routing import Before, ProfileRoute
from tessera.web.runtime import Runtime, no_store_json

PROFILE = "native"
#: RFC 6749 §5.2 JSON.
render = oauth_error_response
TOKEN = "/oauth2/token"
PAR = "/oauth2/par"
AUTHORIZE = "/oauth2/authorize"
INTROSPECT = "/oauth2/introspect"
REVOKE = "/oauth2/revoke"
JWKS = "/oauth2/jwks"
USERINFO = "/oauth2/userinfo"
#: Form fields that carry client authentication, not request parameters.
AUTH_FIELDS = ("client_secret", "client_assertion", "client_assertion_type")


def metadata(rt: Runtime) -> dict[str, Any]:
    """RFC 8414 §2 (and OIDC Discovery §3) for this server."""
    iss = rt.core.config.issuer
    methods = list(METHODS)
    algs = list(SIGNING_ALGS)
    aliases = {
        name: iss + path
        for name, path in (
            ("token_endpoint", TOKEN),
            ("pushed_authorization_request_endpoint", PAR),
            ("introspection_endpoint", INTROSPECT),
            ("revocation_endpoint", REVOKE),
            ("userinfo_endpoint", USERINFO),
        )
    }
    return {
        "issuer": iss,
        "authorization_endpoint": iss + AUTHORIZE,
        "token_endpoint": iss + TOKEN,
        "pushed_authorization_request_endpoint": iss + PAR,
        "require_pushed_authorization_requests": False,
        "introspection_endpoint": iss + INTROSPECT,
        "revocation_endpoint": iss + REVOKE,
        "userinfo_endpoint": iss + USERINFO,
        "jwks_uri": iss + JWKS,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(native.GRANT_TYPES),
        "scopes_supported": list(rt.settings.native_scopes_supported),
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": algs,
        "introspection_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_signing_alg_values_supported": algs,
        "revocation_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_signing_alg_values_supported": algs,
        "tls_client_certificate_bound_access_tokens": True,
        "mtls_endpoint_aliases": aliases,
        "authorization_response_iss_parameter_supported": True,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [rt.settings.signing_alg],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "email", "email_verified"],
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
    }


def _add_query(uri: str, extra: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = parts.query + ("&" if parts.query else "") + urlencode(extra)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class Endpoints:
    """The native endpoints, one method each (importable, and testable one by one)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.core = rt.core
        self.settings = rt.settings
        self.policy = native.TokenPolicy.from_settings(rt.settings)

    def client_auth(self, request: Request, form: dict[str, str]) -> AuthenticatedClient:
        creds = client_credentials(request, form)
        # A secret can be guessed; a signed assertion cannot: those count per address only.
        who = f"client:{creds.client_id}" if creds.client_id and "client_assertion" not in form else None
        auth: AuthenticatedClient = self.rt.guarded(
            request,
            who,
            authenticate,
            self.core,
            ClientAuthRequest(
                credentials=creds,
                assertion_type=form.get("client_assertion_type"),
                assertion=form.get("client_assertion"),
                peer=self.rt.peer(request),
            ),
        )
        return auth

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(metadata(self.rt), headers={"Cache-Control": "public, max-age=300"})

    async def jwks(self, request: Request) -> Response:
        keys = self.core.keys.get()
        now = self.rt.now_dt()
        # RFC 8414 §2: the jwks_uri may also hold the encryption keys (for JWE-wrapped
        # client assertions); every key then carries "use".
        body = {"keys": keys.jwks("sig", now)["keys"] + keys.jwks("enc", now)["keys"]}
        return JSONResponse(body, headers={"Cache-Control": "public, max-age=60"})

    def token_flow(
        self, request: Request, form: dict[str, str], grant: native.Grant, grant_type: str
    ) -> dict[str, Any]:
        auth = self.client_auth(request, form)
        self.rt.limit_credential("client:" + auth.client.client_id)
        req = native.TokenRequest(
            grant_type,
            auth,
            scope=form.get("scope"),
            code=form.get("code"),
            redirect_uri=form.get("redirect_uri"),
            code_verifier=form.get("code_verifier"),
            refresh_token=form.get("refresh_token"),
        )
        return grant.handle(self.core, req, self.policy)

    async def token(self, request: Request) -> Response:
        self.rt.limit_address(request)
        form = await read_form(request, self.settings.max_body_bytes)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise InvalidRequest("grant_type is required", reason="grant_type_missing")
        grant = native.GRANTS.get(grant_type)
        if grant is None:
            raise UnsupportedGrantType(f"grant_type {grant_type[:60]!r} is not supported", reason="grant_type")
        # A grant that may wait (a refresh retried inside its grace window) leaves the loop whatever the database.
        body = await self.rt.run_flow(self.token_flow, request, form, grant, grant_type, waits=grant.blocking)
        self.rt.issued(PROFILE)
        return no_store_json(body)

    def push_flow(self, request: Request, form: dict[str, str]) -> par.PushedRequest:
        auth = self.client_auth(request, form)
        self.rt.limit_credential("client:" + auth.client.client_id)
        params = {k: v for k, v in form.items() if k not in AUTH_FIELDS}
        req = native.check_authorization_request(self.core, auth.client, params)
        return native.push(self.core, auth.client, req)

    async def push(self, request: Request) -> Response:
        self.rt.limit_address(request)
        form = await read_form(request, self.settings.max_body_bytes)
        pushed = await self.rt.run_flow(self.push_flow, request, form)
        return no_store_json({"request_uri": pushed.request_uri, "expires_in": pushed.expires_in}, status_code=201)

    async def authorize_page(self, request: Request) -> Response:
        if request.method == "POST":
            return await self.login(request)
        q = parse_form(request.url.query.encode("latin-1"))
        return await self.rt.run_flow(self.authorization_request, request, q)

    def authorization_request(self, request: Request, q: dict[str, str]) -> Response:
        client_id = q.get("client_id")
        if "request_uri" in q:  # RFC 9126 §4: only client_id and request_uri count
            page = authorize.login_page(self.core, client_id, q["request_uri"], par_kind=native.PAR_KIND)
            return login_page(request, page, action=AUTHORIZE)
        client = self.core.client(client_id) if client_id else None
        if client is None or not client.active:
            raise InvalidRequest("client_id is missing or unknown", reason="client_unknown")
        redirect_uri = par.check_redirect_uri(client, q.get("redirect_uri"))  # never redirect before this
        if client.require_par:
            raise InvalidRequest("this client must push its authorization requests (PAR)", reason="par_required")
        try:
            req = native.check_authorization_request(self.core, client, q)
        except OAuthError as e:  # RFC 6749 §4.1.2.1: tell the client at its redirect_uri
            back = {"error": e.error}
            if e.description:
                back["error_description"] = e.description
            if q.get("state") is not None:
                back["state"] = q["state"]
            back["iss"] = self.core.config.issuer
            return RedirectResponse(
                _add_query(redirect_uri, back), status_code=303, headers={"Cache-Control": "no-store"}
            )
        pushed = native.push(self.core, client, req)
        page = authorize.login_page(self.core, client.client_id, pushed.request_uri, par_kind=native.PAR_KIND)
        return login_page(request, page, action=AUTHORIZE)

    async def login(self, request: Request) -> Response:
        form = await read_form(request, self.settings.max_body_bytes)
        return await self.rt.sign_in(
            request, form, action=AUTHORIZE, par_kind=native.PAR_KIND, code_kind=native.CODE_KIND
        )

    def introspect_flow(self, request: Request, form: dict[str, str]) -> dict[str, Any]:
        auth = self.client_auth(request, form)
        return native.introspect(self.core, auth.client, form.get("token"), form.get("token_type_hint"))

    def revoke_flow(self, request: Request, form: dict[str, str]) -> None:
        auth = self.client_auth(request, form)
        native.revoke(self.core, auth.client, form.get("token"), form.get("token_type_hint"))

    async def introspect(self, request: Request) -> Response:
        form = await read_form(request, self.settings.max_body_bytes)
        return no_store_json(await self.rt.run_flow(self.introspect_flow, request, form))

    async def revoke(self, request: Request) -> Response:
        form = await read_form(request, self.settings.max_body_bytes)
        await self.rt.run_flow(self.revoke_flow, request, form)
        return Response(status_code=200, headers=NO_STORE)

    async def userinfo(self, request: Request) -> Response:
        peer = self.rt.peer(request)
        body = await self.rt.run_flow(
            native.userinfo, self.core, bearer_token(request), thumbprint=peer.thumbprint if peer else None
        )
        return no_store_json(body)


def routes(rt: Runtime) -> list[ProfileRoute]:
    e = Endpoints(rt)

    def route(
        path: str, endpoint: Any, methods: list[str], *, page: bool = False, middleware: list[Middleware] | None = None
    ) -> ProfileRoute:
        return ProfileRoute(path, endpoint, profile=PROFILE, methods=methods, page=page, middleware=middleware)

    return [
        route("/.well-known/oauth-authorization-server", e.discovery, ["GET", "HEAD"]),
        route("/.well-known/openid-configuration", e.discovery, ["GET", "HEAD"]),
        route(TOKEN, e.token, ["POST"]),
        route(PAR, e.push, ["POST"]),
        # A plain request and the login store: counted per address first (the unauthenticated-writes budget).
        route(
            AUTHORIZE,
            e.authorize_page,
            ["GET", "POST"],
            page=True,
            middleware=[Middleware(Before, check=rt.limit_writes)],
        ),
        route(INTROSPECT, e.introspect, ["POST"]),
        route(REVOKE, e.revoke, ["POST"]),
        route(JWKS, e.jwks, ["GET", "HEAD"]),
        route(USERINFO, e.userinfo, ["GET", "POST"]),
    ]
