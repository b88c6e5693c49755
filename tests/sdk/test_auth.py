"""TokenAuth as an httpx.Auth: Bearer from the cache, one retry with a fresh token on 401."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx

from tessera.sdk.auth import TokenAuth
from tessera.sdk.cache import CachedToken, TokenCache


class CountingAuth(TokenAuth):
    """Hands out t1, t2, ... and counts fetches."""

    def __init__(self, cache: TokenCache | None = None) -> None:
        super().__init__(cache=cache or TokenCache())
        self.fetches = 0
        self._lock = threading.Lock()

    @property
    def cache_key(self):
        return ("test", "counting")

    def _next(self) -> CachedToken:
        with self._lock:
            self.fetches += 1
            return CachedToken(f"t{self.fetches}", time.time() + 3600)

    def _fetch(self) -> CachedToken:
        time.sleep(0.02)
        return self._next()

    async def _afetch(self) -> CachedToken:
        await asyncio.sleep(0.02)
        return self._next()


class API:
    """A payment API that accepts only the tokens in ``valid``."""

    def __init__(self, valid: set[str]) -> None:
        self.valid = valid
        self.seen: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization", "")
        with self._lock:
            self.seen.append((auth, request.content))
        if auth.removeprefix("Bearer ") in self.valid:
            return httpx.Response(200, json={"ok": True})
        return httpx.Response(
            401, json={"error": "invalid_token"}, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )


def test_bearer_from_cache_without_refetch():
    auth = CountingAuth()
    api = API({"t1"})
    with httpx.Client(transport=httpx.MockTransport(api), auth=auth) as http:
        assert http.get("https://api.test/payments").status_code == 200
        assert http.get("https://api.test/payments").status_code == 200
    assert auth.fetches == 1
    assert [a for a, _ in api.seen] == ["Bearer t1", "Bearer t1"]


def test_retry_once_on_401_with_a_fresh_token_and_the_same_body():
    auth = CountingAuth()
    api = API({"t2"})

    def body():  # a streamed body: it must be buffered to be sent twice
        yield b'{"amount": '
        yield b"100}"

    with httpx.Client(transport=httpx.MockTransport(api), auth=auth) as http:
        r = http.post("https://api.test/payments", content=body())
    assert r.status_code == 200
    assert auth.fetches == 2
    assert api.seen == [("Bearer t1", b'{"amount": 100}'), ("Bearer t2", b'{"amount": 100}')]


def test_only_one_retry():
    auth = CountingAuth()
    api = API(set())
    with httpx.Client(transport=httpx.MockTransport(api), auth=auth) as http:
        r = http.get("https://api.test/payments")
    assert r.status_code == 401
    assert len(api.seen) == 2 and auth.fetches == 2


def test_non_401_errors_are_not_retried():
    auth = CountingAuth()
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(403, json={"error": "insufficient_scope"})

    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as http:
        assert http.get("https://api.test/x").status_code == 403
    assert len(calls) == 1 and auth.fetches == 1


def test_many_threads_rejected_together_refresh_once():
    """20 requests refused with the same stale token: the token is refetched once, not 20 times."""
    auth = CountingAuth()
    api = API({"t1", "t2", "t3"})
    http = httpx.Client(transport=httpx.MockTransport(api), auth=auth)
    http.get("https://api.test/warm")  # t1 is cached
    auth.cache.invalidate(auth.cache_key)  # replace it by a token the API refuses
    auth.cache.get(auth.cache_key, lambda: CachedToken("stale", time.time() + 3600))
    barrier = threading.Barrier(20)
    codes = []

    def call():
        barrier.wait()
        codes.append(http.get("https://api.test/payments").status_code)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    http.close()
    assert codes == [200] * 20
    assert auth.fetches == 2  # t1 at warm-up; then exactly one refresh (t2) for all 20
    assert {a for a, _ in api.seen[1:]} == {"Bearer stale", "Bearer t2"}


def test_async_bearer_and_retry():
    auth = CountingAuth()
    api = API({"t2"})

    async def main():
        async with httpx.AsyncClient(transport=httpx.MockTransport(api), auth=auth) as http:
            first = await http.post("https://api.test/payments", json={"amount": 100})
            second = await http.get("https://api.test/payments")
            return first.status_code, second.status_code

    assert asyncio.run(main()) == (200, 200)
    assert auth.fetches == 2
    assert [a for a, _ in api.seen] == ["Bearer t1", "Bearer t2", "Bearer t2"]
    assert api.seen[0][1] == api.seen[1][1] == b'{"amount":100}'


def test_async_concurrent_requests_fetch_once():
    auth = CountingAuth()
    api = API({"t1"})

    async def main():
        async with httpx.AsyncClient(transport=httpx.MockTransport(api), auth=auth) as http:
            return await asyncio.gather(*(http.get("https://api.test/p") for _ in range(50)))

    assert {r.status_code for r in asyncio.run(main())} == {200}
    assert auth.fetches == 1


def test_token_and_atoken_share_the_cache():
    auth = CountingAuth()
    assert auth.token() == "t1"
    assert asyncio.run(auth.atoken()) == "t1"
    auth.invalidate("not-t1")
    assert auth.token() == "t1"
    auth.invalidate("t1")
    assert asyncio.run(auth.atoken()) == "t2"
