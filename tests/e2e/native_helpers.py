"""Client-side helpers for the native OAuth 2.0 tests (``/oauth2/*``).

JOSE here is built with ``jwcrypto`` (or by hand, for the deliberately broken cases),
never with tessera's own code, so the server is checked against an independent
implementation. Clients are registered straight into the server's database.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from jwcrypto import jwe, jwk, jws

from tests.support.jwkcache import jwk_from_pem
from tests.support.live import AppIdentity, LiveServer

TOKEN = "/oauth2/token"
PAR = "/oauth2/par"
AUTHORIZE = "/oauth2/authorize"
INTROSPECT = "/oauth2/introspect"
REVOKE = "/oauth2/revoke"
JWKS = "/oauth2/jwks"
USERINFO = "/oauth2/userinfo"
METADATA = "/.well-known/oauth-authorization-server"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REDIRECT = "https://platform.example.test/cb"


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def issuer(server: LiveServer) -> str:
    return f"https://localhost:{server.port}"


def http(
    server: LiveServer,
    client: NativeClient | None = None,
    *,
    mtls: bool = True,
    cert: Path | None = None,
    key: Path | None = None,
    **kw: Any,
) -> httpx.Client:
    """httpx against the issuer URL; presents ``client``'s certificate when it has one (unless mtls=False)."""
    import ssl

    ctx = ssl.create_default_context(cafile=str(server.ca))
    if cert is None and client is not None and mtls and client.cert is not None:
        cert, key = client.cert, client.key
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return httpx.Client(base_url=issuer(server), verify=ctx, timeout=30, **kw)


@dataclass
class NativeClient:
    client_id: str
    client_secret: str | None
    methods: tuple[str, ...]
    key: Path | None = None  # the certificate's private key (openssl)
    cert: Path | None = None
    thumbprint: str | None = None
    serial: str | None = None
    jwk: jwk.JWK | None = None  # the private key behind the registered JWKS
    redirect_uri: str = REDIRECT
    extra: dict[str, Any] = field(default_factory=dict)

    def identity(self) -> AppIdentity:
        return AppIdentity(
            self.client_id,
            self.client_secret or "",
            self.redirect_uri,
            self.cert,
            self.key,
            self.serial,
            self.thumbprint,
        )


def register(
    server: LiveServer,
    *,
    methods: tuple[str, ...] = ("client_secret_basic", "client_secret_post"),
    grant_types: tuple[str, ...] = ("client_credentials", "authorization_code", "refresh_token"),
    scope: str = "openid email payments:read payments:write",
    with_cert: bool = False,
    with_jwks: bool = False,
    key_type: str = "EC",
    require_par: bool = False,
    redirect_uri: str = REDIRECT,
) -> NativeClient:
    from tessera.core.models import Client
    from tessera.core.secrets import generate_client_id, generate_secret, hash_secret

    secret = generate_secret() if any(m.startswith("client_secret") for m in methods) else None
    key = None
    jwks = None
    if with_jwks:
        key = jwk.JWK.generate(kty="EC", crv="P-256") if key_type == "EC" else jwk.JWK.generate(kty="RSA", size=2048)
        key = jwk.JWK(**{**json.loads(key.export_private()), "kid": key.thumbprint()})
        jwks = {"keys": [{**json.loads(key.export_public()), "use": "sig"}]}
    client = Client(
        client_id=generate_client_id(),
        name="Platform App",
        secret_hash=hash_secret(secret, server.settings.pepper_bytes()) if secret else None,
        redirect_uris=(redirect_uri,),
        scope=scope,
        auth_methods=tuple(methods),
        grant_types=tuple(grant_types),
        require_par=require_par,
        jwks=jwks,
        created_at=int(time.time()),
    )
    server.store.create_client(client)
    nc = NativeClient(client.client_id, secret, tuple(methods), jwk=key, redirect_uri=redirect_uri)
    if with_cert:
        add_cert(server, nc)
    return nc


def add_cert(server: LiveServer, nc: NativeClient, **kw: Any) -> NativeClient:
    app = server.add_cert(AppIdentity(nc.client_id, nc.client_secret or "", nc.redirect_uri), **kw)
    nc.cert, nc.key, nc.thumbprint, nc.serial = app.cert, app.key, app.thumbprint, app.serial
    return nc


def cert_jwk(nc: NativeClient) -> jwk.JWK:
    """The certificate's private key (made by openssl) as a jwcrypto JWK."""
    return jwk_from_pem(nc.key.read_bytes())


# --- assertions ---------------------------------------------------------------------------------


def claims_for(server: LiveServer, nc: NativeClient, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": nc.client_id,
        "sub": nc.client_id,
        "aud": issuer(server),
        "iat": now,
        "exp": now + 120,
        "jti": secrets.token_urlsafe(16),
    }
    for k, v in overrides.items():
        if v is DROP:
            claims.pop(k, None)
        else:
            claims[k] = v
    return claims


DROP: Any = object()


def sign(claims: dict[str, Any], key: jwk.JWK, *, alg: str | None = None, header: dict[str, Any] | None = None) -> str:
    if alg is None:
        alg = "ES256" if key.get("kty") == "EC" else "RS256"
    h = {"alg": alg, "typ": "JWT"}
    if key.get("kid"):
        h["kid"] = key.get("kid")
    h.update(header or {})
    token = jws.JWS(json.dumps(claims).encode())
    token.add_signature(key, alg=alg, protected=json.dumps(h))
    return token.serialize(compact=True)


def unsigned(claims: dict[str, Any]) -> str:
    return b64u(json.dumps({"alg": "none", "typ": "JWT"}).encode()) + "." + b64u(json.dumps(claims).encode()) + "."


def hs256_with_public_key(claims: dict[str, Any], public_pem: bytes) -> str:
    import hmac

    head = b64u(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64u(json.dumps(claims).encode())
    sig = hmac.new(public_pem, head.encode(), hashlib.sha256).digest()
    return head + "." + b64u(sig)


def server_enc_key(server: LiveServer) -> jwk.JWK:
    with http(server) as c:
        keys = c.get(JWKS).json()["keys"]
    enc = [k for k in keys if k.get("use") == "enc"]
    return jwk.JWK(**enc[0])


def encrypt(
    plaintext: str | bytes,
    key: jwk.JWK,
    *,
    alg: str = "RSA-OAEP-256",
    enc: str = "A256GCM",
    header: dict[str, Any] | None = None,
    kid: Any = "default",
) -> str:
    from jwcrypto.common import json_encode

    h = {"alg": alg, "enc": enc, "cty": "JWT"}
    if kid == "default":
        h["kid"] = key.get("kid")
    elif kid is not None:
        h["kid"] = kid
    h.update(header or {})
    token = jwe.JWE(plaintext.encode() if isinstance(plaintext, str) else plaintext, protected=json_encode(h))
    token.add_recipient(key)
    return token.serialize(compact=True)


def assertion_form(assertion: str, **extra: str) -> dict[str, str]:
    return {"client_assertion_type": JWT_BEARER, "client_assertion": assertion, **extra}


def cc_with_assertion(
    server: LiveServer, nc: NativeClient, assertion: str, *, mtls: bool = False, **extra: str
) -> httpx.Response:
    with http(server, nc, mtls=mtls) as c:
        return c.post(TOKEN, data={"grant_type": "client_credentials", **assertion_form(assertion, **extra)})


# --- secrets, tokens ----------------------------------------------------------------------------


def basic(nc: NativeClient) -> httpx.BasicAuth:
    return httpx.BasicAuth(nc.client_id, nc.client_secret)


def client_credentials(server: LiveServer, nc: NativeClient, **data: str) -> dict[str, Any]:
    with http(server, nc) as c:
        r = c.post(TOKEN, data={"grant_type": "client_credentials", **data}, auth=basic(nc))
    assert r.status_code == 200, r.text
    return r.json()


def introspect(server: LiveServer, nc: NativeClient, token: str, **data: str) -> httpx.Response:
    with http(server, nc) as c:
        return c.post(INTROSPECT, data={"token": token, **data}, auth=basic(nc))


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# --- PKCE, PAR, login ---------------------------------------------------------------------------


def pkce() -> tuple[str, str]:
    verifier = b64u(secrets.token_bytes(32))
    challenge = b64u(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge


def push(server: LiveServer, nc: NativeClient, **params: Any) -> httpx.Response:
    verifier, challenge = pkce()
    data = {
        "response_type": "code",
        "client_id": nc.client_id,
        "redirect_uri": nc.redirect_uri,
        "scope": "openid payments:read",
        "state": "st-" + secrets.token_hex(4),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    for k, v in params.items():
        if v is DROP:
            data.pop(k, None)
        else:
            data[k] = v
    with http(server, nc) as c:
        r = c.post(PAR, data=data, auth=basic(nc))
    r.verifier = verifier  # type: ignore[attr-defined]
    r.sent = data  # type: ignore[attr-defined]
    return r


def login(server: LiveServer, nc: NativeClient, request_uri: str, username: str, password: str) -> httpx.Response:
    with http(server, mtls=False) as c:
        page = c.get(AUTHORIZE, params={"client_id": nc.client_id, "request_uri": request_uri})
        assert page.status_code == 200, page.text[:300]
        return c.post(
            AUTHORIZE,
            data={"client_id": nc.client_id, "request_uri": request_uri, "username": username, "password": password},
        )


def code_from(resp: httpx.Response) -> dict[str, str]:
    assert resp.status_code == 303, (resp.status_code, resp.text[:300])
    q = parse_qs(urlsplit(resp.headers["location"]).query)
    return {k: v[0] for k, v in q.items()}


def authorization_code_flow(
    server: LiveServer, nc: NativeClient, merchant, **params: Any
) -> tuple[dict[str, Any], str]:
    """PAR → login → code → token (client_secret_basic). Returns (token response, code)."""
    pushed = push(server, nc, **params)
    assert pushed.status_code == 201, pushed.text
    back = code_from(login(server, nc, pushed.json()["request_uri"], merchant.username, merchant.password))
    with http(server, nc) as c:
        r = c.post(
            TOKEN,
            data={
                "grant_type": "authorization_code",
                "code": back["code"],
                "redirect_uri": nc.redirect_uri,
                "code_verifier": pushed.verifier,
            },
            auth=basic(nc),
        )
    assert r.status_code == 200, r.text
    return r.json(), back["code"]


def assert_error(resp: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """RFC 6749 §5.2 JSON error with no-store; invalid_client carries WWW-Authenticate."""
    assert resp.status_code == status, (resp.status_code, resp.text[:500])
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert body.get("error") == error, body
    assert "no-store" in resp.headers.get("cache-control", ""), resp.headers
    for leak in ("access_token", "refresh_token", "request_uri", "id_token"):
        assert leak not in body, body
    if error == "invalid_client":
        assert resp.headers.get("www-authenticate"), "invalid_client needs a WWW-Authenticate challenge"
    if error == "invalid_token":
        assert resp.headers.get("www-authenticate", "").lower().startswith("bearer"), resp.headers
    return body
