"""ONE TokenCache shared by all four clients (Nexi, axept, MobilePay, B2BINPAY) at once:
100 threads, 100 asyncio tasks, or both together, with a cold cache → exactly one network
call per client; the same after expiry (B2BINPAY refreshing rather than logging in)."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest

from tessera.sdk import AxeptClient, B2BinPayClient, MobilePayClient, NexiSoftPOSClient, TokenCache
from tessera.sdk.b2binpay import response_sign

DELAY = 0.05  # long enough for every caller to pile up behind the first


def iso(ts: float, micros: bool = True) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micros else "%Y-%m-%dT%H:%M:%SZ")


class Provider:
    """One fake provider: counts its calls, answers its own token format."""

    def __init__(self, name: str, clock) -> None:
        self.name, self.clock = name, clock
        self.paths: list[str] = []
        self._lock = threading.Lock()

    def answer(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.paths.append(request.url.path)
            n = len(self.paths)
        now = self.clock()
        if self.name == "nexi":
            return httpx.Response(200, json={"access_token": f"nexi-{n}", "token_type": "Bearer", "expires_in": 3600})
        if self.name == "axept":
            return httpx.Response(200, json={"token": f"axept-{n}", "expiresAt": iso(now + 1800, micros=False)})
        if self.name == "mobilepay":
            return httpx.Response(
                200,
                json={
                    "access_token": f"mp-{n}",
                    "expires_in": 3700,
                    "token_type": "Bearer",
                    "scope": "integrator_scope",
                },
            )
        attrs = {
            "access": f"b2b-{n}",
            "refresh": f"R{n}",
            "access_expired_at": iso(now + 900),
            "refresh_expired_at": iso(now + 21600),
            "is_2fa_confirmed": False,
        }
        data = {"type": "auth-token", "id": "0", "attributes": attrs}
        if request.url.path.endswith("/refresh/"):
            return httpx.Response(200, json={"data": data})
        t = iso(now)
        return httpx.Response(
            200, json={"data": data, "meta": {"time": t, "sign": response_sign("login", "password", t, f"R{n}")}}
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        time.sleep(DELAY)
        return self.answer(request)

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(DELAY)
        return self.answer(request)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(rsa_dev):
    clock = Clock()
    cache = TokenCache(clock=clock)
    providers = {name: Provider(name, clock) for name in ("nexi", "axept", "mobilepay", "b2binpay")}

    def transports(name):
        p = providers[name]
        return {"transport": httpx.MockTransport(p), "async_transport": httpx.MockTransport(p.handle_async)}

    clients = {
        "nexi": NexiSoftPOSClient(
            "https://nexi.example", "app-1", "secret", rsa_dev.cert, rsa_dev.key, cache=cache, **transports("nexi")
        ),
        "axept": AxeptClient("https://axept.example", 12345, 1, "key", cache=cache, **transports("axept")),
        "mobilepay": MobilePayClient(
            "https://mobilepay.example",
            "integrator",
            "secret",
            merchant_vat="DK12345678",
            cache=cache,
            **transports("mobilepay"),
        ),
        "b2binpay": B2BinPayClient(
            "https://b2binpay.example", "login", "password", prefix="/b2binpay", cache=cache, **transports("b2binpay")
        ),
    }
    return clock, cache, providers, clients


def assert_one_call_each(providers, results):
    for name, p in providers.items():
        assert len(p.paths) == 1, (name, p.paths)
        assert {r[name] for r in results} == {
            f"{'mp' if name == 'mobilepay' else 'b2b' if name == 'b2binpay' else name}-1"
        }


def _all_sync(clients) -> dict[str, str]:
    names = list(clients)
    random.shuffle(names)
    return {name: clients[name].token() for name in names}


async def _all_async(clients) -> dict[str, str]:
    names = list(clients)
    random.shuffle(names)
    tokens = await asyncio.gather(*(clients[name].atoken() for name in names))
    return dict(zip(names, tokens, strict=True))


def test_100_threads_over_all_four_clients(world):
    _, cache, providers, clients = world
    barrier = threading.Barrier(100)
    results: list[dict] = []

    def worker():
        barrier.wait()
        results.append(_all_sync(clients))

    threads = [threading.Thread(target=worker) for _ in range(100)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(results) == 100
    assert_one_call_each(providers, results)
    assert len(cache) == 4


def test_100_tasks_over_all_four_clients(world):
    _, cache, providers, clients = world

    async def main():
        return await asyncio.gather(*(_all_async(clients) for _ in range(100)))

    results = asyncio.run(main())
    assert_one_call_each(providers, results)
    assert len(cache) == 4


def test_100_threads_and_100_tasks_at_once(world):
    _, _, providers, clients = world
    results: list[dict] = []
    lock = threading.Lock()
    start = threading.Event()

    def thread_worker():
        start.wait()
        r = _all_sync(clients)
        with lock:
            results.append(r)

    def loop_worker():
        async def main():
            start.wait()
            return await asyncio.gather(*(_all_async(clients) for _ in range(100)))

        r = asyncio.run(main())
        with lock:
            results.extend(r)

    threads = [threading.Thread(target=thread_worker) for _ in range(100)] + [threading.Thread(target=loop_worker)]
    [t.start() for t in threads]
    start.set()
    [t.join() for t in threads]
    assert len(results) == 200
    assert_one_call_each(providers, results)


def test_httpx_auth_for_all_four_from_100_threads(world):
    _, _, providers, clients = world
    seen: dict[str, set[str]] = {name: set() for name in clients}
    lock = threading.Lock()

    def api(request: httpx.Request) -> httpx.Response:
        with lock:
            seen[request.url.host.split(".")[0]].add(request.headers["authorization"])
        return httpx.Response(200, json={})

    sessions = {name: httpx.Client(auth=c, transport=httpx.MockTransport(api)) for name, c in clients.items()}
    barrier = threading.Barrier(100)

    def worker():
        barrier.wait()
        for name in random.sample(list(clients), 4):
            assert sessions[name].post(f"https://{name}.api.example/payments", json={"amount": 100}).status_code == 200

    threads = [threading.Thread(target=worker) for _ in range(100)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    [s.close() for s in sessions.values()]
    assert {name: len(p.paths) for name, p in providers.items()} == {name: 1 for name in providers}
    assert all(len(tokens) == 1 for tokens in seen.values()), seen


def test_after_expiry_one_more_call_each_and_b2binpay_refreshes(world):
    clock, _, providers, clients = world
    asyncio.run(_all_async(clients))
    clock.now += 3700  # every token is now due

    async def main():
        return await asyncio.gather(*(_all_async(clients) for _ in range(100)))

    results = asyncio.run(main())
    assert {name: len(p.paths) for name, p in providers.items()} == {name: 2 for name in providers}
    assert providers["b2binpay"].paths == ["/b2binpay/token/", "/b2binpay/token/refresh/"]
    assert {r["b2binpay"] for r in results} == {"b2b-2"}


def test_keys_do_not_collide(world):
    _, _, _, clients = world
    assert len({c.cache_key for c in clients.values()}) == 4
    json.dumps([repr(c.cache_key) for c in clients.values()])
