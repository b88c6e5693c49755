"""The SDK against a real ``tessera serve`` over TLS with an openssl-made developer
certificate: the whole SoftPOS enrollment, as an integrator would run it."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import threading
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from tessera.sdk import CachedToken, NexiSoftPOSClient, TokenCache, TokenError, make_pkce

pytestmark = pytest.mark.slow

REQUEST_URI = re.compile(r"^urn:softpos_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
SCOPE = "openid oidc email"


def base_url(live_server) -> str:
    return f"https://localhost:{live_server.port}"


def sdk_client(live_server, app, cache: TokenCache | None = None) -> NexiSoftPOSClient:
    return NexiSoftPOSClient(
        base_url(live_server),
        app.client_id,
        app.client_secret,
        app.cert,
        app.key,
        verify=str(live_server.ca),
        cache=cache or TokenCache(),
    )


class Recorder:
    """httpx event hooks: every request's path and every response's status."""

    def __init__(self, client: NexiSoftPOSClient) -> None:
        self.requests: list[str] = []
        self.statuses: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        client.http.event_hooks["request"].append(self._request)
        client.http.event_hooks["response"].append(self._response)

    def _request(self, request: httpx.Request) -> None:
        with self._lock:
            self.requests.append(request.url.path)

    def _response(self, response: httpx.Response) -> None:
        with self._lock:
            self.statuses.append((response.request.url.path, response.status_code))

    def count(self, path: str) -> int:
        return self.requests.count(path)


class LoginForm(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.action, self.method = a.get("action"), (a.get("method") or "get").lower()
        elif tag == "input" and a.get("name"):
            self.fields[a["name"]] = a.get("value") or ""


def merchant_login(live_server, url: str, username: str, password: str) -> httpx.Response:
    """What the merchant's browser does: open the page, fill in the form, submit it."""
    with httpx.Client(verify=live_server.ssl_context(), follow_redirects=False) as browser:
        page = browser.get(url)
        assert page.status_code == 200, page.text[:300]
        assert page.headers["content-type"].startswith("text/html")
        form = LoginForm()
        form.feed(page.text)
        assert form.method == "post" and form.action
        assert set(form.fields) == {"client_id", "request_uri", "username", "password"}
        form.fields.update(username=username, password=password)
        return browser.post(urljoin(url, form.action), data=form.fields)


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.mark.parametrize("key_type", ["rsa", "ec"])
def test_full_enrollment_flow(live_server, key_type):
    app = live_server.new_app(key_type=key_type)
    merchant = live_server.new_merchant(app)
    with sdk_client(live_server, app) as client:
        rec = Recorder(client)

        # token over mTLS, then from the cache
        token = client.token()
        assert client.token() == token
        assert rec.count("/softpos/appenrollment/token") == 1
        assert jwt_claims(token)["client_id"] == app.client_id

        # JWKS: the current enc key comes first
        jwks = client.jwks()
        enc = client.encryption_key()
        assert enc["kty"] == "RSA" and enc["use"] == "enc" and enc["kid"]
        assert enc in [k for k in jwks["keys"] if k.get("use") == "enc"]  # picked at random, as the reference

        # PAR with the nested assertion, state and PKCE
        verifier, challenge = make_pkce()
        state = secrets.token_urlsafe(16)
        assertion = client.client_assertion(
            point_of_sale=merchant.pos,
            terminal_ids=[merchant.softpos_tid, merchant.mpos_tid],
            username_merchant=merchant.username,
        )
        pushed = client.par(
            scope=SCOPE,
            redirect_uri=app.redirect_uri,
            client_assertion=assertion,
            state=state,
            code_challenge=challenge,
        )
        assert ("/softpos/as/par", 201) in rec.statuses
        assert set(pushed) == {"request_uri", "expires_in"}
        assert REQUEST_URI.match(pushed["request_uri"]), pushed["request_uri"]
        assert pushed["expires_in"] == 90
        assert rec.count("/softpos/appenrollment/token") == 1  # the PAR used the cached token

        # the assertion's jti is single-use
        with pytest.raises(TokenError) as info:
            client.par(scope=SCOPE, redirect_uri=app.redirect_uri, client_assertion=str(assertion))
        assert (info.value.status, info.value.error) == (400, "invalid_client")  # the provider's 400

        # the merchant signs in; the server redirects with code, state and iss
        answer = merchant_login(
            live_server, client.authorize_url(pushed["request_uri"]), merchant.username, merchant.password
        )
        assert answer.status_code == 303, answer.text[:300]
        location = answer.headers["location"]
        assert location.startswith(app.redirect_uri + "?")
        query = parse_qs(urlsplit(location).query)
        assert query["state"] == [state]
        assert query["iss"] == [base_url(live_server)]
        code = query["code"][0]

        # code exchange with the PKCE verifier
        body = client.exchange_code(code=code, redirect_uri=app.redirect_uri, code_verifier=verifier)
        assert body["token_type"] == "Bearer" and body["scope"] == SCOPE
        assert body["access_token"] and body["expires_in"] > 0
        id_claims = jwt_claims(body["id_token"])
        assert id_claims["aud"] == app.client_id and id_claims["sub"] == merchant.username
        assert id_claims["email"] == merchant.username
        assert jwt_claims(body["access_token"])["sub"] == merchant.username

        # a code is single-use
        with pytest.raises(TokenError) as info:
            client.exchange_code(code=code, redirect_uri=app.redirect_uri, code_verifier=verifier)
        assert (info.value.status, info.value.error) == (400, "invalid_grant")


def test_100_threads_cold_cache_one_token(live_server):
    app = live_server.new_app()
    with sdk_client(live_server, app) as client:
        rec = Recorder(client)
        barrier = threading.Barrier(100)
        results: list[str] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def worker():
            barrier.wait()
            try:
                tok = client.token()
                with lock:
                    results.append(tok)
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=worker) for _ in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert len(results) == 100 and len(set(results)) == 1
        assert rec.count("/softpos/appenrollment/token") == 1  # the server issued exactly one token
        assert rec.statuses == [("/softpos/appenrollment/token", 200)]


def test_async_tasks_cold_cache_one_token(live_server):
    app = live_server.new_app()
    cache = TokenCache()
    with sdk_client(live_server, app, cache) as client:
        fetches = []
        original = client._afetch

        async def counting():
            fetches.append(1)
            return await original()

        client._afetch = counting

        async def main():
            return await asyncio.gather(*(client.atoken() for _ in range(50)))

        tokens = asyncio.run(main())
        assert len(set(tokens)) == 1 and len(fetches) == 1
        assert jwt_claims(tokens[0])["client_id"] == app.client_id
        assert client.token() == tokens[0]  # the sync side reads the same cache entry


def test_rejected_token_is_refreshed(live_server):
    """A cached token the server refuses (401 invalid_token): PAR refreshes it once and
    retries with a new assertion; ``httpx.Client(auth=client)`` does the same."""
    app = live_server.new_app()
    merchant = live_server.new_merchant(app)
    with sdk_client(live_server, app) as client:
        rec = Recorder(client)
        client.cache.get(client.cache_key, lambda: CachedToken("not-a-token", time.time() + 3600))
        assertion = client.client_assertion(
            point_of_sale=merchant.pos, terminal_ids=[merchant.softpos_tid], username_merchant=merchant.username
        )
        pushed = client.par(scope="oidc", redirect_uri=app.redirect_uri, client_assertion=assertion)
        assert REQUEST_URI.match(pushed["request_uri"])
        assert [s for s in rec.statuses if s[0] != "/softpos/par/jwks.json"] == [
            ("/softpos/as/par", 401),
            ("/softpos/appenrollment/token", 200),
            ("/softpos/as/par", 201),
        ]

        # as an httpx.Auth on a Bearer-protected endpoint of the platform
        client.cache.invalidate(client.cache_key)
        client.cache.get(client.cache_key, lambda: CachedToken("not-a-token", time.time() + 3600))
        fresh = client.client_assertion(
            point_of_sale=merchant.pos, terminal_ids=[merchant.softpos_tid], username_merchant=merchant.username
        )
        with httpx.Client(auth=client, verify=live_server.ssl_context(app.cert, app.key)) as api:
            r = api.post(
                client.url("/as/par"),
                data={
                    "client_assertion": fresh,
                    "client_id": app.client_id,
                    "scope": "oidc",
                    "redirect_uri": app.redirect_uri,
                },
            )
        assert r.status_code == 201, r.text
        assert client.token() != "not-a-token"


def test_wrong_secret_and_missing_certificate(live_server, tmp_path):
    app = live_server.new_app()
    with NexiSoftPOSClient(
        base_url(live_server),
        app.client_id,
        "wrong-secret-value",
        app.cert,
        app.key,
        verify=str(live_server.ca),
        cache=TokenCache(),
    ) as client:
        with pytest.raises(TokenError) as info:
            client.token()
        assert (info.value.status, info.value.error) == (401, "invalid_client")
        assert "wrong-secret-value" not in str(info.value)

    other = live_server.new_app()  # a valid certificate, but bound to another client
    with NexiSoftPOSClient(
        base_url(live_server),
        app.client_id,
        app.client_secret,
        other.cert,
        other.key,
        verify=str(live_server.ca),
        cache=TokenCache(),
    ) as client:
        with pytest.raises(TokenError) as info:
            client.token()
        assert info.value.status in (400, 401)
        assert app.client_secret not in str(info.value)
