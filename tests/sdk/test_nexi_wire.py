"""NexiSoftPOSClient on the wire (httpx.MockTransport): exactly the documented paths, form
fields, content type and headers; caching; retries; typed errors that leak no secrets."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx
import pytest
from jwcrypto import jwe

from tessera.sdk import ClientAssertion, NexiSoftPOSClient, TokenCache, TokenError, make_pkce

BASE = "https://stgb2bsoftpos.nexigroup.com"
CLIENT_ID = "app-123"
SECRET = "s3cr3t-VALUE-never-in-messages"
FORM = "application/x-www-form-urlencoded"


class FakeNexi:
    """Answers like the documented platform and records every request."""

    def __init__(self, jwks_body: dict, enc_key, *other_enc_keys) -> None:
        self.jwks_body = jwks_body
        self.enc_key = enc_key
        self.enc_keys = (enc_key, *other_enc_keys)  # the client picks one of the published enc keys
        self.requests: list[httpx.Request] = []
        self.tokens = 0
        self.valid_tokens: set[str] | None = None  # None: every issued token is valid
        self.overrides: dict[str, httpx.Response] = {}
        self._lock = threading.Lock()

    def by_path(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
        path = request.url.path
        if path in self.overrides:
            return self.overrides[path]
        if path == "/softpos/appenrollment/token":
            with self._lock:
                self.tokens += 1
                n = self.tokens
            return httpx.Response(
                200, json={"access_token": f"BE_MERCH_TOKEN_{n}", "token_type": "Bearer", "expires_in": 3600}
            )
        if path == "/softpos/par/jwks.json":
            return httpx.Response(200, json=self.jwks_body)
        if path == "/softpos/as/par":
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if self.valid_tokens is not None and token not in self.valid_tokens:
                return httpx.Response(
                    401,
                    json={"error": "invalid_token", "error_description": "the access token has expired"},
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
            return httpx.Response(
                201, json={"request_uri": "urn:softpos_a86dd649-3a0d-4c0c-ad9e-c0aa58058d18", "expires_in": 90}
            )
        if path == "/softpos/as/token":
            return httpx.Response(
                200,
                json={
                    "access_token": "merchant-at",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "scope": "openid oidc email",
                    "id_token": "x.y.z",
                },
            )
        return httpx.Response(404, json={"error": "not_found"})

    def open_assertion(self, token: str) -> dict:
        for key in self.enc_keys:  # no kid: try each published key, as the server does
            outer = jwe.JWE()
            try:
                outer.deserialize(token, key=key)
                break
            except Exception:  # noqa: BLE001 - not this key
                continue
        else:
            raise AssertionError("no enc key opens the assertion")
        from jwcrypto import jws as _jws

        inner = _jws.JWS()
        inner.deserialize(outer.payload.decode())
        return json.loads(inner.objects["payload"])


@pytest.fixture
def fake(jwks_body, enc_key, old_enc_key) -> FakeNexi:
    return FakeNexi(jwks_body, enc_key, old_enc_key)


@pytest.fixture
def client(fake, rsa_dev):
    c = NexiSoftPOSClient(
        BASE + "/",
        CLIENT_ID,
        SECRET,
        rsa_dev.cert,
        rsa_dev.key,
        cache=TokenCache(),
        transport=httpx.MockTransport(fake),
        async_transport=httpx.MockTransport(fake),
    )
    yield c
    c.close()


def form_of(request: httpx.Request) -> list[tuple[str, str]]:
    return parse_qsl(request.content.decode("ascii"), keep_blank_values=True, strict_parsing=True)


# ---------------------------------------------------------------------- token
def test_token_request_is_exactly_the_documented_one(client, fake):
    assert client.token() == "BE_MERCH_TOKEN_1"
    (req,) = fake.requests
    assert req.method == "POST"
    assert str(req.url) == f"{BASE}/softpos/appenrollment/token"
    assert req.headers["content-type"] == FORM
    assert req.headers.get_list("content-type") == [FORM]
    assert form_of(req) == [("grant_type", "client_credentials"), ("client_id", CLIENT_ID), ("client_secret", SECRET)]
    assert "authorization" not in req.headers  # the secret travels in the form only, as documented


def test_token_is_cached_for_the_client(client, fake):
    assert client.token() == client.token() == "BE_MERCH_TOKEN_1"
    assert len(fake.requests) == 1
    entry = client.cache.peek(client.cache_key)
    assert entry.data == {"token_type": "Bearer", "expires_in": 3600}
    assert 3590 < entry.expires_at - time.time() <= 3600


def test_token_is_renewed_at_75_percent_of_its_life(fake, rsa_dev):
    """As the reference backend: a new token after 75 % of expires_in (3600 s: at 2700 s)."""
    now = [1_000_000.0]
    cache = TokenCache(clock=lambda: now[0])
    with NexiSoftPOSClient(
        BASE, CLIENT_ID, SECRET, rsa_dev.cert, rsa_dev.key, cache=cache, transport=httpx.MockTransport(fake)
    ) as c:
        assert c.token() == "BE_MERCH_TOKEN_1"
        now[0] += 2699
        assert c.token() == "BE_MERCH_TOKEN_1"
        now[0] += 2
        assert c.token() == "BE_MERCH_TOKEN_2"
        assert c.cache.peek(c.cache_key).expires_at == now[0] + 3600  # the token's own expiry is kept


def test_clients_sharing_a_cache_share_the_token(fake, rsa_dev):
    cache = TokenCache()
    kw = dict(cache=cache, transport=httpx.MockTransport(fake))
    a = NexiSoftPOSClient(BASE, CLIENT_ID, SECRET, rsa_dev.cert, rsa_dev.key, **kw)
    b = NexiSoftPOSClient(BASE + "/", CLIENT_ID, SECRET, rsa_dev.cert, rsa_dev.key, **kw)
    other = NexiSoftPOSClient(BASE, "another-app", SECRET, rsa_dev.cert, rsa_dev.key, **kw)
    assert a.token() == b.token()
    assert other.token() != a.token()
    assert fake.tokens == 2


def test_atoken_uses_the_same_wire_and_cache(client, fake):
    async def main():
        return await asyncio.gather(*(client.atoken() for _ in range(20)))

    assert set(asyncio.run(main())) == {"BE_MERCH_TOKEN_1"}
    assert client.token() == "BE_MERCH_TOKEN_1"
    (req,) = fake.requests
    assert req.headers["content-type"] == FORM
    assert form_of(req) == [("grant_type", "client_credentials"), ("client_id", CLIENT_ID), ("client_secret", SECRET)]


def test_token_error_is_typed_and_leaks_no_secret(client, fake):
    fake.overrides["/softpos/appenrollment/token"] = httpx.Response(
        401, json={"error": "invalid_client", "error_description": "client authentication failed"}
    )
    with pytest.raises(TokenError) as info:
        client.token()
    err = info.value
    assert (err.status, err.error, err.description) == (401, "invalid_client", "client authentication failed")
    assert SECRET not in str(err) and SECRET not in repr(err)
    assert client.cache.peek(client.cache_key) is None
    assert SECRET not in repr(client)


def test_non_json_error_and_malformed_success(client, fake):
    fake.overrides["/softpos/appenrollment/token"] = httpx.Response(
        502, text="<html>Bad gateway</html>", headers={"content-type": "text/html"}
    )
    with pytest.raises(TokenError) as info:
        client.token()
    assert (info.value.status, info.value.error) == (502, "invalid_response")
    fake.overrides["/softpos/appenrollment/token"] = httpx.Response(200, json={"token_type": "Bearer"})
    with pytest.raises(TokenError) as info:
        client.token()
    assert info.value.error == "invalid_response"
    fake.overrides["/softpos/appenrollment/token"] = httpx.Response(
        200, json={"access_token": "x", "token_type": "MAC"}
    )
    with pytest.raises(TokenError):
        client.token()


# ---------------------------------------------------------------------- JWKS
def test_jwks_get_cached_and_refreshed(client, fake, jwks_body):
    assert client.jwks() == jwks_body
    assert client.jwks() == jwks_body
    assert len(fake.by_path("/softpos/par/jwks.json")) == 1
    (req,) = fake.requests
    assert req.method == "GET" and str(req.url) == f"{BASE}/softpos/par/jwks.json"
    client.jwks()["keys"].clear()  # callers get a copy
    assert client.jwks(refresh=True) == jwks_body
    assert len(fake.by_path("/softpos/par/jwks.json")) == 2


def test_enc_key_is_picked_at_random_as_the_reference_does(client, enc_key, old_enc_key):
    picked = {client.encryption_key()["kid"] for _ in range(40)}
    assert picked == {enc_key.get("kid"), old_enc_key.get("kid")}  # never the sig key listed first


def test_first_enc_key_on_request(client, enc_key):
    assert client.encryption_key(choice="first")["kid"] == enc_key.get("kid")  # the sig key listed before it is skipped


def test_jwks_without_enc_key(client, fake):
    fake.jwks_body = {"keys": [{"kty": "EC", "use": "sig", "kid": "s", "crv": "P-256", "x": "x", "y": "y"}]}
    with pytest.raises(TokenError):
        client.encryption_key(refresh=True)


# ---------------------------------------------------------------------- PAR
def make_assertion(client, fake):
    return client.client_assertion(point_of_sale="POS1", terminal_ids=["S1", "M1"], username_merchant="m@shop.example")


def test_par_request_is_exactly_the_documented_one(client, fake):
    a = make_assertion(client, fake)
    out = client.par(scope="oidc", redirect_uri="https://app.example/cb", client_assertion=a)
    assert out == {"request_uri": "urn:softpos_a86dd649-3a0d-4c0c-ad9e-c0aa58058d18", "expires_in": 90}
    (req,) = fake.by_path("/softpos/as/par")
    assert req.method == "POST" and str(req.url) == f"{BASE}/softpos/as/par"
    assert req.headers["authorization"] == "Bearer BE_MERCH_TOKEN_1"
    assert req.headers.get_list("content-type") == [FORM]
    assert form_of(req) == [
        ("client_assertion", str(a)),
        ("client_id", CLIENT_ID),
        ("scope", "oidc"),
        ("redirect_uri", "https://app.example/cb"),
    ]


def test_par_with_state_and_pkce(client, fake):
    verifier, challenge = make_pkce()
    a = make_assertion(client, fake)
    client.par(
        scope="openid oidc email",
        redirect_uri="https://app.example/cb",
        client_assertion=a,
        state="xyz",
        code_challenge=challenge,
    )
    (req,) = fake.by_path("/softpos/as/par")
    assert form_of(req) == [
        ("client_assertion", str(a)),
        ("client_id", CLIENT_ID),
        ("scope", "openid oidc email"),
        ("redirect_uri", "https://app.example/cb"),
        ("state", "xyz"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
    assert SECRET not in req.content.decode()


def test_par_refreshes_token_once_with_a_new_assertion(client, fake):
    first = make_assertion(client, fake)
    client.token()  # BE_MERCH_TOKEN_1 cached, but the platform no longer takes it
    fake.valid_tokens = {"BE_MERCH_TOKEN_2"}
    client.par(scope="oidc", redirect_uri="https://app.example/cb", client_assertion=first)
    pars = fake.by_path("/softpos/as/par")
    assert [r.headers["authorization"] for r in pars] == ["Bearer BE_MERCH_TOKEN_1", "Bearer BE_MERCH_TOKEN_2"]
    sent = [dict(form_of(r))["client_assertion"] for r in pars]
    assert sent[0] == first and sent[1] != first
    j1, j2 = (fake.open_assertion(s)["jti"] for s in sent)
    assert j1 != j2
    assert client.token() == "BE_MERCH_TOKEN_2"


def test_par_gives_up_after_one_retry(client, fake):
    fake.valid_tokens = set()
    with pytest.raises(TokenError) as info:
        client.par(scope="oidc", redirect_uri="https://app.example/cb", client_assertion=make_assertion(client, fake))
    assert (info.value.status, info.value.error) == (401, "invalid_token")
    assert len(fake.by_path("/softpos/as/par")) == 2


def test_par_with_a_foreign_assertion_string_is_retried_as_is(client, fake):
    fake.valid_tokens = {"BE_MERCH_TOKEN_2"}
    client.token()
    raw = str(make_assertion(client, fake))
    client.par(scope="oidc", redirect_uri="https://app.example/cb", client_assertion=raw)
    assert [dict(form_of(r))["client_assertion"] for r in fake.by_path("/softpos/as/par")] == [raw, raw]


def test_par_other_errors_are_not_retried(client, fake):
    fake.overrides["/softpos/as/par"] = httpx.Response(
        401, json={"error": "invalid_client", "error_description": "client_assertion: jti has already been used"}
    )
    with pytest.raises(TokenError) as info:
        client.par(scope="oidc", redirect_uri="https://app.example/cb", client_assertion=make_assertion(client, fake))
    assert info.value.error == "invalid_client" and "jti" in info.value.description
    assert len(fake.by_path("/softpos/as/par")) == 1
    fake.overrides["/softpos/as/par"] = httpx.Response(400, json={"error": "invalid_scope"})
    with pytest.raises(TokenError) as info:
        client.par(scope="bogus", redirect_uri="https://app.example/cb", client_assertion="a.b.c.d.e")
    assert (info.value.status, info.value.error, info.value.description) == (400, "invalid_scope", "")


def test_client_assertion_is_renewable_str(client, fake):
    a = make_assertion(client, fake)
    assert isinstance(a, str) and isinstance(a, ClientAssertion)
    assert a.count(".") == 4
    b = a.renew()
    assert b != a and fake.open_assertion(b)["jti"] != fake.open_assertion(a)["jti"]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(terminal_ids=[]),
        dict(terminal_ids=["A", "B", "C"]),
        dict(terminal_ids=[""]),
        dict(lifetime=901),
        dict(lifetime=0),
        dict(username_merchant="not-an-email"),
        dict(username_claim="user"),
        dict(device_id=""),
    ],
)
def test_client_assertion_arguments_are_checked(client, kwargs):
    args = {"point_of_sale": "POS1", "terminal_ids": ["S1"], "username_merchant": "m@shop.example", **kwargs}
    with pytest.raises(ValueError):
        client.client_assertion(**args)


# ---------------------------------------------------------------------- authorize and code
def test_authorize_url(client):
    url = client.authorize_url("urn:softpos_a86dd649-3a0d-4c0c-ad9e-c0aa58058d18")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{BASE}/softpos/as/authorize"
    assert parse_qs(parts.query) == {
        "client_id": [CLIENT_ID],
        "request_uri": ["urn:softpos_a86dd649-3a0d-4c0c-ad9e-c0aa58058d18"],
    }


def test_exchange_code_request(client, fake):
    body = client.exchange_code(code="the-code", redirect_uri="https://app.example/cb", code_verifier="v" * 64)
    assert body["access_token"] == "merchant-at" and body["id_token"] == "x.y.z"
    (req,) = fake.requests
    assert req.method == "POST" and str(req.url) == f"{BASE}/softpos/as/token"
    assert req.headers.get_list("content-type") == [FORM]
    assert form_of(req) == [
        ("grant_type", "authorization_code"),
        ("code", "the-code"),
        ("redirect_uri", "https://app.example/cb"),
        ("client_id", CLIENT_ID),
        ("client_secret", SECRET),
        ("code_verifier", "v" * 64),
    ]
    client.exchange_code(code="c2", redirect_uri="https://app.example/cb")
    assert "code_verifier" not in dict(form_of(fake.requests[-1]))
    assert client.cache.peek(client.cache_key) is None  # the merchant's token is not the B2B token


def test_exchange_code_error(client, fake):
    fake.overrides["/softpos/as/token"] = httpx.Response(
        400, json={"error": "invalid_grant", "error_description": "the authorization code has expired"}
    )
    with pytest.raises(TokenError) as info:
        client.exchange_code(code="c", redirect_uri="https://app.example/cb")
    assert (info.value.status, info.value.error) == (400, "invalid_grant")
    assert SECRET not in str(info.value)


# ---------------------------------------------------------------------- as an httpx.Auth
def test_client_is_an_httpx_auth_for_the_payment_apis(client, fake):
    seen = []

    def api(request):
        seen.append(request.headers["authorization"])
        ok = request.headers["authorization"] == "Bearer BE_MERCH_TOKEN_2"
        return httpx.Response(200 if ok else 401)

    client.token()  # token 1, which the API has stopped accepting
    with httpx.Client(transport=httpx.MockTransport(api), auth=client) as http:
        assert http.get("https://payments.test/v1/x").status_code == 200
    assert seen == ["Bearer BE_MERCH_TOKEN_1", "Bearer BE_MERCH_TOKEN_2"]


def test_prefix_and_audience(fake, rsa_dev):
    c = NexiSoftPOSClient(
        "https://sandbox.test",
        CLIENT_ID,
        SECRET,
        rsa_dev.cert,
        rsa_dev.key,
        prefix="/",
        audience="https://stgb2bsoftpos.nexigroup.com",
        cache=TokenCache(),
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"access_token": "t", "expires_in": 60})),
    )
    assert c.url("/appenrollment/token") == "https://sandbox.test/appenrollment/token"
    assert c.audience == "https://stgb2bsoftpos.nexigroup.com"
    assert c.authorize_url("u").startswith("https://sandbox.test/as/authorize?")
    assert c.token() == "t"


def test_verify_options_build_tls_contexts(rsa_dev, tmp_path):
    import ssl

    for verify in (True, False, str(rsa_dev.cert), rsa_dev.cert):
        c = NexiSoftPOSClient(BASE, CLIENT_ID, SECRET, rsa_dev.cert, rsa_dev.key, verify=verify)
        assert isinstance(c.ssl_context, ssl.SSLContext)
        c.close()
    ctx = ssl.create_default_context()
    with NexiSoftPOSClient(BASE, CLIENT_ID, SECRET, rsa_dev.cert, rsa_dev.key, verify=ctx) as c:
        assert c.ssl_context is ctx
