"""B2BinPayClient: JSON:API login with meta.sign verified, refresh before login, login again
when the refresh is refused, single use of refresh tokens under concurrency, errors; and
against a live tessera (expiry, refresh, a family revoked elsewhere, login again)."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest

from tessera.sdk import B2BinPayClient, TokenCache, TokenError
from tessera.sdk.b2binpay import response_sign
from tessera.sdk.errors import TransportError

BASE = "https://api.b2binpay.example"
LOGIN = "api-key-1"
PASSWORD = "api-secret-never-in-messages"
MEDIA = "application/vnd.api+json"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeB2BinPay:
    """The documented provider: signed login answers, strict refresh rotation (a reused
    refresh token revokes its family), JSON:API errors. ``clock`` is the server's clock."""

    def __init__(
        self,
        *,
        access_ttl: float = 60,
        refresh_ttl: float = 3600,
        clock=time.time,
        bare_refresh: bool = False,
        delay: float = 0.0,
    ) -> None:
        self.access_ttl, self.refresh_ttl, self.clock = access_ttl, refresh_ttl, clock
        self.bare_refresh = bare_refresh
        self.delay = delay
        self.calls: list[tuple[str, dict]] = []
        self.live_refresh: dict[str, int] = {}  # refresh token -> family
        self.used: dict[str, int] = {}  # used refresh token -> family
        self.revoked: set[int] = set()
        self.presented: list[str] = []  # every refresh token presented
        self.tamper = False
        self.refresh_status: int | None = None  # force an answer to /token/refresh/
        self._lock = threading.Lock()
        self._n = 0

    def _pair(self, family: int) -> dict:
        self._n += 1
        now = self.clock()
        refresh = f"R{self._n}"
        self.live_refresh[refresh] = family
        return {
            "type": "auth-token",
            "id": "0",
            "attributes": {
                "refresh": refresh,
                "access": f"A{self._n}",
                "access_expired_at": iso(now + self.access_ttl),
                "refresh_expired_at": iso(now + self.refresh_ttl),
                "is_2fa_confirmed": False,
            },
        }

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.calls if p == path)

    @staticmethod
    def error(status: int, code: str) -> httpx.Response:
        return httpx.Response(
            status,
            json={
                "errors": [
                    {
                        "status": str(status),
                        "code": code,
                        "detail": "No active account found with the given credentials",
                    }
                ]
            },
            headers={"Content-Type": MEDIA},
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        with self._lock:
            self.calls.append((request.url.path, body))
            if request.url.path.endswith("/token/"):
                attrs = body["data"]["attributes"]
                if (attrs.get("login"), attrs.get("password")) != (LOGIN, PASSWORD):
                    return self.error(400, "2006")
                data = self._pair(family=self._n + 1000)
                time_str = iso(self.clock())
                sign = response_sign(LOGIN, PASSWORD, time_str, data["attributes"]["refresh"])
                if self.tamper:
                    sign = sign[:-1] + ("0" if sign[-1] != "0" else "1")
                return httpx.Response(
                    200, json={"data": data, "meta": {"time": time_str, "sign": sign}}, headers={"Content-Type": MEDIA}
                )
            token = body["data"]["attributes"]["refresh"]
            self.presented.append(token)
            if self.refresh_status is not None:
                return self.error(self.refresh_status, "throttled" if self.refresh_status == 429 else "error")
            family = self.live_refresh.pop(token, None)
            if family is None or family in self.revoked:
                if token in self.used:  # reuse: revoke the family
                    self.revoked.add(self.used[token])
                return self.error(401, "2007")
            self.used[token] = family
            data = self._pair(family)
            return httpx.Response(
                200, json=data if self.bare_refresh else {"data": data}, headers={"Content-Type": MEDIA}
            )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.delay:
            time.sleep(self.delay)
        return self.handle(request)

    async def ahandle(self, request: httpx.Request) -> httpx.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.handle(request)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def make(fake: FakeB2BinPay, cache: TokenCache | None = None, **kw) -> B2BinPayClient:
    return B2BinPayClient(
        BASE,
        LOGIN,
        PASSWORD,
        prefix="/b2binpay",
        cache=cache if cache is not None else TokenCache(),
        transport=httpx.MockTransport(fake),
        async_transport=httpx.MockTransport(fake.ahandle),
        **kw,
    )


def test_login_is_the_documented_json_api_call():
    fake = FakeB2BinPay()
    token = make(fake).cached_token()
    ((path, body),) = fake.calls
    assert path == "/b2binpay/token/"
    assert body == {"data": {"type": "auth-token", "attributes": {"login": LOGIN, "password": PASSWORD}}}
    assert token.access_token == "A1"
    assert token.data["refresh"] == "R1" and token.data["is_2fa_confirmed"] is False
    assert token.expires_at == pytest.approx(time.time() + 60, abs=2)


def test_request_headers_and_prefix():
    seen: list[httpx.Request] = []
    fake = FakeB2BinPay()

    def handler(request):
        seen.append(request)
        return fake(request)

    B2BinPayClient(
        "https://provider.example/api/v2/",
        LOGIN,
        PASSWORD,
        prefix="",
        cache=TokenCache(),
        transport=httpx.MockTransport(handler),
    ).token()
    assert str(seen[0].url) == "https://provider.example/api/v2/token/"
    assert seen[0].headers["content-type"] == MEDIA


def test_document_example_signature():
    # sign = hex(HMAC-SHA256(SHA-256(login + password), meta.time + refresh)), as the profile docs compute it
    import hashlib
    import hmac

    key = hashlib.sha256(b"loginpassword").digest()
    expected = hmac.new(key, b"2020-12-29T05:27:11.925654ZeyJ0", hashlib.sha256).hexdigest()
    assert response_sign("login", "password", "2020-12-29T05:27:11.925654Z", "eyJ0") == expected


def test_tampered_sign_is_refused_and_nothing_is_kept():
    fake = FakeB2BinPay()
    fake.tamper = True
    c = make(fake)
    with pytest.raises(TokenError) as info:
        c.token()
    assert info.value.error == "invalid_signature"
    assert PASSWORD not in str(info.value)
    assert len(c.cache) == 0
    fake.tamper = False
    assert c.token() == "A2"  # logged in again: the unverified refresh token R1 was never kept
    assert fake.count("/b2binpay/token/refresh/") == 0 and fake.count("/b2binpay/token/") == 2


@pytest.mark.parametrize(
    "meta", [None, {"time": "2020-12-29T05:27:11.925654Z"}, {"sign": "ab"}, {"time": 1, "sign": "ab"}]
)
def test_login_answer_without_a_signature_is_refused(meta):
    def handler(request):
        body = {
            "data": {
                "type": "auth-token",
                "id": "0",
                "attributes": {
                    "refresh": "R",
                    "access": "A",
                    "access_expired_at": iso(time.time() + 60),
                    "refresh_expired_at": iso(time.time() + 600),
                    "is_2fa_confirmed": False,
                },
            }
        }
        if meta is not None:
            body["meta"] = meta
        return httpx.Response(200, json=body)

    with pytest.raises(TokenError) as info:
        B2BinPayClient(
            BASE, LOGIN, PASSWORD, prefix="/b2binpay", cache=TokenCache(), transport=httpx.MockTransport(handler)
        ).token()
    assert info.value.error == "invalid_signature"


def test_bad_login_is_a_token_error_2006():
    c = B2BinPayClient(
        BASE, LOGIN, "wrong", prefix="/b2binpay", cache=TokenCache(), transport=httpx.MockTransport(FakeB2BinPay())
    )
    with pytest.raises(TokenError) as info:
        c.token()
    assert (info.value.status, info.value.error) == (400, "2006")
    assert "No active account" in info.value.description


@pytest.mark.parametrize("bare", [False, True])
def test_refresh_before_login_when_the_access_token_is_due(bare):
    clock = Clock()
    fake = FakeB2BinPay(access_ttl=60, bare_refresh=bare)
    c = make(fake, TokenCache(skew=10, clock=clock))
    assert c.token() == "A1"
    clock.now += 49
    assert c.token() == "A1"
    clock.now += 1  # 10 s before expiry
    token = c.cached_token()
    assert token.access_token == "A2" and token.data["refresh"] == "R2"
    assert [p for p, _ in fake.calls] == ["/b2binpay/token/", "/b2binpay/token/refresh/"]
    assert fake.calls[1][1] == {"data": {"type": "auth-token", "attributes": {"refresh": "R1"}}}
    clock.now += 50
    assert c.token() == "A3"
    assert fake.presented == ["R1", "R2"]


def test_refused_refresh_logs_in_again():
    clock = Clock()
    fake = FakeB2BinPay()
    c = make(fake, TokenCache(clock=clock))
    c.token()
    fake.live_refresh.clear()  # the server forgot R1 (revoked, expired, ...)
    clock.now += 60
    assert c.token() == "A2"
    assert [p for p, _ in fake.calls] == ["/b2binpay/token/", "/b2binpay/token/refresh/", "/b2binpay/token/"]


def test_expired_refresh_token_is_not_presented():
    clock = Clock()
    fake = FakeB2BinPay(access_ttl=60, refresh_ttl=120)
    c = make(fake, TokenCache(clock=clock))
    c.token()
    clock.now += 118  # the refresh token has 2 s left: not worth presenting
    c.token()
    assert [p for p, _ in fake.calls] == ["/b2binpay/token/", "/b2binpay/token/"]


def test_throttled_refresh_keeps_the_unused_refresh_token():
    clock = Clock()
    fake = FakeB2BinPay()
    c = make(fake, TokenCache(clock=clock))
    c.token()
    clock.now += 60
    fake.refresh_status = 429
    with pytest.raises(TokenError) as info:
        c.token()
    assert (info.value.status, info.value.error) == (429, "throttled")
    fake.refresh_status = None
    assert c.token() == "A2"
    assert fake.presented == ["R1", "R1"]  # the throttled call never used it
    assert fake.count("/b2binpay/token/") == 1


def test_server_error_on_refresh_drops_the_refresh_token():
    clock = Clock()
    fake = FakeB2BinPay()
    c = make(fake, TokenCache(clock=clock))
    c.token()
    clock.now += 60
    fake.refresh_status = 500
    with pytest.raises(TokenError):
        c.token()
    fake.refresh_status = None
    c.token()  # R1 may have been used by the server: log in rather than risk a reuse
    assert fake.presented == ["R1"] and fake.count("/b2binpay/token/") == 2


def test_server_clock_offset():
    # The server's clock is an hour ahead; the token still lasts 60 s on ours.
    clock = Clock()
    fake = FakeB2BinPay(access_ttl=60, clock=lambda: clock.now + 3600)
    c = make(fake, TokenCache(clock=clock))
    assert c.cached_token().expires_at == pytest.approx(clock.now + 60, abs=1)
    clock.now += 60
    assert c.cached_token().expires_at == pytest.approx(clock.now + 60, abs=1)  # the refresh answer too
    assert fake.count("/b2binpay/token/refresh/") == 1


def test_one_refresh_for_100_threads():
    clock = Clock()
    fake = FakeB2BinPay(delay=0.05)
    cache = TokenCache(clock=clock)
    clients = [make(fake, cache) for _ in range(4)]  # four instances, one login, one cache
    clients[0].token()
    clock.now += 60
    barrier = threading.Barrier(100)
    out: list[str] = []

    def worker(i):
        barrier.wait()
        out.append(clients[i % 4].token())

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(100)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert set(out) == {"A2"}
    assert fake.presented == ["R1"] and fake.count("/b2binpay/token/") == 1


def test_two_flights_never_present_the_same_refresh_token():
    # Outside the single flight (two fetches at once, e.g. a re-entrant one), the refresh
    # token goes to one of them; the other logs in.
    fake = FakeB2BinPay(delay=0.1)
    c = make(fake)
    c.token()
    barrier = threading.Barrier(2)
    out: list[str] = []

    def fetch():
        barrier.wait()
        out.append(c._fetch().access_token)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert fake.presented == ["R1"]
    assert fake.count("/b2binpay/token/") == 2 and not fake.revoked
    assert len(set(out)) == 2


def test_async_refresh_and_tasks():
    clock = Clock()
    fake = FakeB2BinPay(delay=0.02)
    c = make(fake, TokenCache(clock=clock))

    async def main():
        first = await asyncio.gather(*(c.atoken() for _ in range(50)))
        clock.now += 60
        second = await asyncio.gather(*(c.atoken() for _ in range(50)))
        return first, second

    first, second = asyncio.run(main())
    assert set(first) == {"A1"} and set(second) == {"A2"}
    assert [p for p, _ in fake.calls] == ["/b2binpay/token/", "/b2binpay/token/refresh/"]


def test_async_tampered_sign_is_refused():
    fake = FakeB2BinPay()
    fake.tamper = True
    with pytest.raises(TokenError) as info:
        asyncio.run(make(fake).atoken())
    assert info.value.error == "invalid_signature"


def test_httpx_auth_refreshes_when_the_api_refuses_the_token():
    fake = FakeB2BinPay()
    c = make(fake)
    seen: list[str] = []

    def api(request):
        seen.append(request.headers["authorization"])
        return httpx.Response(200 if request.headers["authorization"] == "Bearer A2" else 401)

    with httpx.Client(auth=c, transport=httpx.MockTransport(api)) as client:
        assert client.get("https://api.b2binpay.example/api/v1/pay/deposits").status_code == 200
    assert seen == ["Bearer A1", "Bearer A2"]
    assert [p for p, _ in fake.calls] == ["/b2binpay/token/", "/b2binpay/token/refresh/"]


def test_reset_forgets_both_tokens():
    fake = FakeB2BinPay()
    c = make(fake)
    c.token()
    c.reset()
    c.token()
    assert fake.count("/b2binpay/token/") == 2 and fake.presented == []


def test_connect_error_keeps_the_refresh_token():
    clock = Clock()
    fake = FakeB2BinPay()
    fail = [False]

    def handler(request):
        if fail[0]:
            raise httpx.ConnectError("connection refused", request=request)
        return fake(request)

    c = B2BinPayClient(
        BASE,
        LOGIN,
        PASSWORD,
        prefix="/b2binpay",
        retry=None,
        cache=TokenCache(clock=clock),
        transport=httpx.MockTransport(handler),
    )
    c.token()
    clock.now += 60
    fail[0] = True
    with pytest.raises(TransportError) as info:  # the SDK's error, never httpx's
        c.token()
    assert info.value.request_sent is False
    fail[0] = False
    assert c.token() == "A2" and fake.presented == ["R1"]


# ---------------------------------------------------------------------- live
def _post(server, verify, path: str, attrs: dict) -> httpx.Response:
    return httpx.post(
        f"https://localhost:{server.port}/b2binpay{path}",
        verify=verify,
        content=json.dumps({"data": {"type": "auth-token", "attributes": attrs}}),
        headers={"Content-Type": MEDIA},
    )


@pytest.mark.slow
def test_live_login_refresh_revoked_family_and_login_again(live_server):
    app = live_server.new_app(with_cert=False)
    verify = ssl.create_default_context(cafile=str(live_server.ca))
    clock = Clock()
    c = B2BinPayClient(
        f"https://localhost:{live_server.port}",
        app.client_id,
        app.client_secret,
        prefix="/b2binpay",
        cache=TokenCache(clock=clock),
        verify=verify,
    )
    paths: list[str] = []
    statuses: list[tuple[str, int]] = []
    c.http.event_hooks["request"].append(lambda r: paths.append(r.url.path))
    c.http.event_hooks["response"].append(lambda r: statuses.append((r.request.url.path, r.status_code)))

    first = c.cached_token()  # login, meta.sign verified
    assert first.expires_at == pytest.approx(clock.now + 900, abs=5)  # TESSERA_B2BINPAY_ACCESS_TTL
    assert paths == ["/b2binpay/token/"]

    clock.now += 900  # the access token is due: refresh, not login
    second = c.cached_token()
    assert second.access_token != first.access_token and second.data["refresh"] != first.data["refresh"]
    assert paths == ["/b2binpay/token/", "/b2binpay/token/refresh/"]
    assert statuses[-1] == ("/b2binpay/token/refresh/", 200)

    # Someone else uses the client's current refresh token: the client's copy is now used,
    # and presenting it again makes the server revoke the whole family.
    stolen = _post(live_server, verify, "/token/refresh/", {"refresh": second.data["refresh"]})
    assert stolen.status_code == 200
    thief_refresh = stolen.json()["data"]["attributes"]["refresh"]

    clock.now += 900
    third = c.cached_token()  # refresh refused (401 / 2007) → login again
    assert paths == ["/b2binpay/token/", "/b2binpay/token/refresh/", "/b2binpay/token/refresh/", "/b2binpay/token/"]
    assert statuses[2] == ("/b2binpay/token/refresh/", 401)
    assert statuses[3] == ("/b2binpay/token/", 200)
    assert third.access_token not in (first.access_token, second.access_token)

    revoked = _post(live_server, verify, "/token/refresh/", {"refresh": thief_refresh})
    assert revoked.status_code == 401 and revoked.json()["errors"][0]["code"] == "2007"  # the family is gone

    clock.now += 900  # and the new login's family works
    fourth = c.cached_token()
    assert paths[-1] == "/b2binpay/token/refresh/" and fourth.access_token != third.access_token


@pytest.mark.slow
def test_live_short_access_ttl_async(tmp_path):
    from tests.support.live import LiveServer

    server = LiveServer(tmp_path, env={"TESSERA_B2BINPAY_ACCESS_TTL": "2"}).start()
    try:
        app = server.new_app(with_cert=False)
        verify = ssl.create_default_context(cafile=str(server.ca))
        calls: list[str] = []

        class Counting(httpx.AsyncBaseTransport):
            """The network, counting the calls."""

            def __init__(self) -> None:
                self.inner = httpx.AsyncHTTPTransport(verify=verify)

            async def handle_async_request(self, request):
                calls.append(request.url.path)
                return await self.inner.handle_async_request(request)

        async def main():
            transport = Counting()
            c = B2BinPayClient(
                f"https://localhost:{server.port}",
                app.client_id,
                app.client_secret,
                prefix="/b2binpay",
                cache=TokenCache(skew=0.5),
                verify=verify,
                async_transport=transport,
            )
            a = await c.atoken()
            assert await c.atoken() == a
            await asyncio.sleep(2.1)  # TESSERA_B2BINPAY_ACCESS_TTL=2
            b = await c.atoken()
            await transport.inner.aclose()
            return a, b

        a, b = asyncio.run(main())
        assert a != b
        assert calls == ["/b2binpay/token/", "/b2binpay/token/refresh/"]
    finally:
        server.stop()


@pytest.mark.slow
def test_live_wrong_password(live_server):
    app = live_server.new_app(with_cert=False)
    c = B2BinPayClient(
        f"https://localhost:{live_server.port}",
        app.client_id,
        "not-the-password",
        prefix="/b2binpay",
        cache=TokenCache(),
        verify=ssl.create_default_context(cafile=str(live_server.ca)),
    )
    with pytest.raises(TokenError) as info:
        c.token()
    assert (info.value.status, info.value.error) == (400, "2006")
