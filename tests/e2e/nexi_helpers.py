"""Client-side helpers for the Nexi SoftPOS end-to-end tests.

Everything JOSE here is built with ``jwcrypto`` (or by hand, for the deliberately broken
cases), never with tessera's own code: the tests check the server against an independent
implementation. The app's signing key is the private key file made by ``openssl``.

``build_assertion`` makes the nested client assertion of the PAR call — a JWT signed
with the developer certificate's key, encrypted (JWE) to a key of the server's
``/softpos/par/jwks.json`` — and has one knob for each way to break it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from jwcrypto import jwe, jwk, jws
from sqlalchemy import func, select

from tests.support.jwkcache import jwk_from_pem
from tests.support.live import AppIdentity, LiveServer, MerchantSetup

TOKEN_PATH = "/softpos/appenrollment/token"
JWKS_PATH = "/softpos/par/jwks.json"
PAR_PATH = "/softpos/as/par"
AUTHORIZE_PATH = "/softpos/as/authorize"
CODE_TOKEN_PATH = "/softpos/as/token"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

#: Sentinel: "leave the default".
DEFAULT: Any = object()
#: Sentinel for ``kid``: no ``kid`` header at all.
MISSING: Any = object()


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def base_url(server: LiveServer) -> str:
    """The issuer: ``https://localhost:{port}`` (the name in the server certificate)."""
    return f"https://localhost:{server.port}"


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------


def ssl_ctx(server: LiveServer, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """Trust the server's CA; present ``cert``/``key`` as the client certificate, if given.

    (httpx 0.28 deprecates ``cert=(cert, key)``; loading the chain into the context it
    uses for ``verify`` is exactly what that argument did.)"""
    ctx = ssl.create_default_context(cafile=str(server.ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def http(
    server: LiveServer,
    app: AppIdentity | None = None,
    *,
    cert: Path | None = DEFAULT,
    key: Path | None = DEFAULT,
    timeout: float = 30.0,
    **kw: Any,
) -> httpx.Client:
    """An httpx client for ``server``: with ``app``'s certificate unless ``cert=None``."""
    if cert is DEFAULT:
        cert = app.cert if app is not None else None
    if key is DEFAULT:
        key = app.key if app is not None else None
    return httpx.Client(base_url=base_url(server), verify=ssl_ctx(server, cert, key), timeout=timeout, **kw)


def assert_error(resp: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """RFC 6749 §5.2 JSON error with ``Cache-Control: no-store``; challenges on 401."""
    assert resp.status_code == status, (resp.status_code, resp.text[:500])
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert body.get("error") == error, body
    assert "no-store" in resp.headers.get("cache-control", ""), resp.headers
    for leak in ("access_token", "request_uri", "id_token"):
        assert leak not in body, body
    if error == "invalid_client" and status == 401:
        assert resp.headers.get("www-authenticate"), "invalid_client needs a WWW-Authenticate challenge"
    if error == "invalid_client" and status == 400:
        # RFC 6749 §5.2: a 400 invalid_client (no Authorization header was used) challenges nothing
        assert "www-authenticate" not in resp.headers, resp.headers
    if error == "invalid_token":
        assert resp.headers.get("www-authenticate", "").lower().startswith("bearer"), resp.headers
    return body


def token_request(c: httpx.Client, app: AppIdentity, **overrides: Any) -> httpx.Response:
    data = {"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret}
    data.update(overrides)
    data = {k: v for k, v in data.items() if v is not None}
    return c.post(TOKEN_PATH, data=data, headers=FORM)


def get_token(server: LiveServer, app: AppIdentity, *, cert: Path | None = DEFAULT, key: Path | None = DEFAULT) -> str:
    with http(server, app, cert=cert, key=key) as c:
        r = token_request(c, app)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def fetch_jwks(server: LiveServer) -> dict[str, Any]:
    with http(server) as c:
        r = c.get(JWKS_PATH)
    assert r.status_code == 200, r.text
    return r.json()


def server_public_keys(server: LiveServer, use: str) -> list[dict[str, Any]]:
    """The server's public JWKs of ``use``, read from its store (the Nexi profile does not
    publish its signing keys)."""
    return [dict(k.public_jwk, kid=k.kid) for k in server.store.list_server_keys() if k.use == use]


def verify_server_jwt(server: LiveServer, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify a server-issued JWT with jwcrypto against the server's ``sig`` keys."""
    header = json.loads(b64u_decode(token.split(".")[0]))
    keys = {k["kid"]: k for k in server_public_keys(server, "sig")}
    assert header.get("kid") in keys, (header, list(keys))
    pub = jwk.JWK(**keys[header["kid"]])
    obj = jws.JWS()
    obj.deserialize(token)
    obj.verify(pub, alg=header["alg"])  # raises on a bad signature
    return header, json.loads(obj.payload)


def x5t_s256(cert_path: Path) -> str:
    """RFC 8705 thumbprint computed here: base64url(SHA-256(DER))."""
    der = ssl.PEM_cert_to_DER_cert(Path(cert_path).read_text())
    return b64u(hashlib.sha256(der).digest())


# --------------------------------------------------------------------------------------------
# the client assertion
# --------------------------------------------------------------------------------------------


def app_private_jwk(app: AppIdentity, key_path: Path | None = None) -> jwk.JWK:
    return jwk_from_pem(Path(key_path or app.key).read_bytes())


def default_claims(
    server: LiveServer, app: AppIdentity, merchant: MerchantSetup | None, *, now: int | None = None
) -> dict[str, Any]:
    now = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": app.client_id,
        "sub": app.client_id,
        "aud": base_url(server),
        "iat": now,
        "exp": now + 120,
        "jti": str(uuid.uuid4()),
        "appId": app.client_id,
    }
    if merchant is not None:
        claims.update(
            {
                "pointOfSale": merchant.pos,
                "terminal_ids": [merchant.softpos_tid, merchant.mpos_tid],
                "username_merchant": merchant.username,
            }
        )
    return claims


@dataclass
class Assertion:
    token: str
    claims: dict[str, Any]
    header: dict[str, Any] = field(default_factory=dict)

    @property
    def jti(self) -> Any:
        return self.claims.get("jti")


def _sign_inner(
    payload: bytes, app: AppIdentity, *, inner: str, sign_alg: str, sign_key: Path | None, jws_header: dict[str, Any]
) -> bytes:
    if inner == "plain-json":
        return payload
    if inner == "none":
        header = {"alg": "none", "typ": "JWT", **jws_header}
        return f"{b64u(json.dumps(header).encode())}.{b64u(payload)}.".encode()
    if inner == "hs256-pubkey":
        # Key confusion: the app's *public* key PEM used as an HMAC secret.
        pem = app_private_jwk(app, sign_key).export_to_pem()
        secret = jwk.JWK(kty="oct", k=b64u(pem))
        obj = jws.JWS(payload)
        obj.allowed_algs = ["HS256"]
        obj.add_signature(secret, alg="HS256", protected=json.dumps({"alg": "HS256", "typ": "JWT", **jws_header}))
        return obj.serialize(compact=True).encode()
    assert inner == "jws", inner
    key = app_private_jwk(app, sign_key)
    obj = jws.JWS(payload)
    obj.allowed_algs = [sign_alg]
    obj.add_signature(key, alg=sign_alg, protected=json.dumps({"alg": sign_alg, "typ": "JWT", **jws_header}))
    return obj.serialize(compact=True).encode()


def _recipient_key(jwks: dict[str, Any], jwe_alg: str, jwe_enc: str, enc_kid: str | None) -> jwk.JWK:
    if jwe_alg.startswith("RSA"):
        keys = jwks["keys"]
        chosen = next(k for k in keys if k["kid"] == enc_kid) if enc_kid else keys[0]
        return jwk.JWK(**chosen)
    if jwe_alg == "dir":
        size = {"A128GCM": 128, "A192GCM": 192, "A256GCM": 256, "A128CBC-HS256": 256, "A256CBC-HS512": 512}[jwe_enc]
        return jwk.JWK.generate(kty="oct", size=size)
    if jwe_alg.endswith("KW"):
        return jwk.JWK.generate(kty="oct", size=int(jwe_alg[1:4]))
    raise ValueError(jwe_alg)


def build_assertion(
    server: LiveServer,
    app: AppIdentity,
    merchant: MerchantSetup | None,
    *,
    jwks: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    drop: Iterable[str] = (),
    now: int | None = None,
    inner: str = "jws",  # "jws" | "none" | "hs256-pubkey" | "plain-json"
    sign_alg: str = "RS256",
    sign_key: Path | None = None,  # default: the app's own openssl key
    jws_header: dict[str, Any] | None = None,
    jwe_alg: str = "RSA-OAEP-256",
    jwe_enc: str = "A256GCM",
    enc_kid: str | None = None,  # which published key to encrypt to (default: the first, current)
    kid: Any = DEFAULT,  # DEFAULT: the recipient key's kid; MISSING: no kid; else this string
    zip_def: bool = False,
    extra_header: dict[str, Any] | None = None,
    serialization: str = "compact",  # "compact" | "json"
    mangle: str | None = None,  # "truncate-tag" | "truncate-iv" | "tamper-ciphertext" | "tamper-tag"
    pad_bytes: int = 0,  # add a junk claim this long (oversized assertions)
) -> Assertion:
    """The nested client assertion of the Nexi PAR call, built with jwcrypto."""
    body = default_claims(server, app, merchant, now=now)
    if claims:
        body.update(claims)
    for name in drop:
        body.pop(name, None)
    if pad_bytes:
        body["pad"] = "x" * pad_bytes
    payload = json.dumps(body).encode()
    plaintext = _sign_inner(
        payload, app, inner=inner, sign_alg=sign_alg, sign_key=sign_key, jws_header=jws_header or {}
    )

    jwks = jwks if jwks is not None else fetch_jwks(server)
    recipient = _recipient_key(jwks, jwe_alg, jwe_enc, enc_kid)
    header: dict[str, Any] = {"alg": jwe_alg, "enc": jwe_enc, "cty": "JWT"}
    if kid is DEFAULT:
        if recipient.get("kid"):
            header["kid"] = recipient["kid"]
    elif kid is not MISSING:
        header["kid"] = kid
    if zip_def:
        header["zip"] = "DEF"
    header.update(extra_header or {})

    obj = jwe.JWE(plaintext, protected=json.dumps(header))
    obj.allowed_algs = [jwe_alg, jwe_enc]
    obj.add_recipient(recipient)
    if serialization == "json":
        return Assertion(obj.serialize(compact=False), body, header)
    token = obj.serialize(compact=True)
    if mangle:
        token = _mangle(token, mangle)
    return Assertion(token, body, header)


def _mangle(token: str, how: str) -> str:
    h, ek, iv, ct, tag = token.split(".")
    if how == "truncate-tag":
        tag = b64u(b64u_decode(tag)[:-4])
    elif how == "truncate-iv":
        iv = b64u(b64u_decode(iv)[:-4])
    elif how == "tamper-ciphertext":
        raw = bytearray(b64u_decode(ct))
        raw[len(raw) // 2] ^= 0x01
        ct = b64u(bytes(raw))
    elif how == "tamper-tag":
        raw = bytearray(b64u_decode(tag))
        raw[0] ^= 0x80
        tag = b64u(bytes(raw))
    else:
        raise ValueError(how)
    return ".".join((h, ek, iv, ct, tag))


# --------------------------------------------------------------------------------------------
# PAR, login, code exchange
# --------------------------------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    verifier = b64u(secrets.token_bytes(32))
    challenge = b64u(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge


def par_form(app: AppIdentity, assertion: str | None, **overrides: Any) -> dict[str, str]:
    form = {
        "client_assertion": assertion,
        "client_id": app.client_id,
        "scope": "oidc",
        "redirect_uri": app.redirect_uri,
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def par_request(c: httpx.Client, token: str | None, form: dict[str, str]) -> httpx.Response:
    headers = dict(FORM)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return c.post(PAR_PATH, data=form, headers=headers)


def assert_par_created(resp: httpx.Response, expires_in: int = 90) -> str:
    assert resp.status_code == 201, resp.text
    assert "no-store" in resp.headers.get("cache-control", "")
    body = resp.json()
    assert set(body) == {"request_uri", "expires_in"}, body
    assert body["expires_in"] == expires_in, body
    uri = body["request_uri"]
    assert uri.startswith("urn:softpos_")
    assert uuid.UUID(uri.removeprefix("urn:softpos_")).version == 4
    return uri


def push(
    server: LiveServer,
    app: AppIdentity,
    merchant: MerchantSetup,
    *,
    token: str | None = None,
    jwks: dict[str, Any] | None = None,
    scope: str = "oidc",
    state: str | None = None,
    code_challenge: str | None = None,
    expires_in: int = 90,
    **assertion_kw: Any,
) -> str:
    """A successful PAR; returns the request_uri."""
    token = token or get_token(server, app)
    a = build_assertion(server, app, merchant, jwks=jwks, **assertion_kw)
    extra: dict[str, str] = {}
    if state is not None:
        extra["state"] = state
    if code_challenge is not None:
        extra.update(code_challenge=code_challenge, code_challenge_method="S256")
    with http(server, app) as c:
        r = par_request(c, token, par_form(app, a.token, scope=scope, **extra))
    return assert_par_created(r, expires_in)


def login(c: httpx.Client, app: AppIdentity, request_uri: str, username: str, password: str) -> httpx.Response:
    return c.post(
        AUTHORIZE_PATH,
        data={"client_id": app.client_id, "request_uri": request_uri, "username": username, "password": password},
        headers=FORM,
    )


def code_from(resp: httpx.Response, app: AppIdentity) -> dict[str, str]:
    assert resp.status_code == 303, (resp.status_code, resp.text[:300])
    loc = resp.headers["location"]
    assert loc.startswith(app.redirect_uri + "?"), loc
    q = {k: v[0] for k, v in parse_qs(urlsplit(loc).query).items()}
    assert q.get("code"), loc
    return q


def login_for_code(server: LiveServer, app: AppIdentity, merchant: MerchantSetup, request_uri: str) -> str:
    with http(server, cert=None) as c:
        r = login(c, app, request_uri, merchant.username, merchant.password)
    return code_from(r, app)["code"]


def exchange(
    c: httpx.Client,
    app: AppIdentity,
    code: str | None,
    *,
    redirect_uri: Any = DEFAULT,
    code_verifier: str | None = None,
    **extra: Any,
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "code": code,
        "redirect_uri": app.redirect_uri if redirect_uri is DEFAULT else redirect_uri,
        "code_verifier": code_verifier,
        **extra,
    }
    return c.post(CODE_TOKEN_PATH, data={k: v for k, v in data.items() if v is not None}, headers=FORM)


def enroll(server: LiveServer, app: AppIdentity, merchant: MerchantSetup, **assertion_kw: Any) -> dict[str, Any]:
    """The whole flow: token, PAR, login, code exchange. Returns the token response body."""
    verifier, challenge = pkce_pair()
    uri = push(server, app, merchant, code_challenge=challenge, **assertion_kw)
    code = login_for_code(server, app, merchant, uri)
    with http(server, app) as c:
        r = exchange(c, app, code, code_verifier=verifier)
    assert r.status_code == 200, r.text
    return r.json()


# --------------------------------------------------------------------------------------------
# looking into the server's database (read-only)
# --------------------------------------------------------------------------------------------


def count_artifacts(server: LiveServer, kind: str, client_id: str | None = None) -> int:
    from tessera.storage.schema import artifacts

    q = select(func.count()).select_from(artifacts).where(artifacts.c.kind == kind)
    if client_id is not None:
        q = q.where(artifacts.c.client_id == client_id)
    with server.store.engine.connect() as conn:
        return int(conn.execute(q).scalar_one())


def enrollments_of(server: LiveServer, client_id: str) -> list[Any]:
    return [e for e in server.store.list_enrollments() if e.client_id == client_id]


# --------------------------------------------------------------------------------------------
# races
# --------------------------------------------------------------------------------------------


def race(
    n: int,
    make_client: Callable[[], httpx.Client],
    fire: Callable[[httpx.Client], httpx.Response],
    warmup: str = "/healthz",
) -> list[httpx.Response]:
    """``n`` threads, each with its own TLS connection (opened and warmed before the start),
    released together by a barrier; returns every response."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        with make_client() as c:
            c.get(warmup)  # the TLS handshake happens here, not in the race
            try:
                barrier.wait(timeout=60)
            except threading.BrokenBarrierError as e:
                results[i] = e
                return
            try:
                results[i] = fire(c)
            except Exception as e:  # noqa: BLE001 - reported by the caller
                results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    errors = [r for r in results if not isinstance(r, httpx.Response)]
    assert not errors, errors
    return results
