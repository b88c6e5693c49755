"""TokenCache: freshness and skew, single flight (threads, asyncio, both at once),
error propagation without poisoning, cancellation, re-entrancy."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest

from tessera.sdk.cache import CachedToken, TokenCache, default_cache


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def counted(make):
    """A fetch function that counts its calls and returns token-1, token-2, ..."""
    calls = itertools.count(1)
    lock = threading.Lock()
    state = {"n": 0}

    def fetch():
        with lock:
            state["n"] = next(calls)
            n = state["n"]
        return make(n)

    fetch.state = state
    return fetch


# ---------------------------------------------------------------------- freshness
def test_fresh_until_expiry_minus_skew():
    clock = Clock()
    cache = TokenCache(skew=30, clock=clock)
    fetch = counted(lambda n: CachedToken(f"t{n}", clock.now + 3600))
    assert cache.get("k", fetch).access_token == "t1"
    clock.now += 3569.9
    assert cache.get("k", fetch).access_token == "t1"
    assert cache.peek("k").access_token == "t1"
    clock.now += 0.1  # now == expires_at - skew: stale
    assert cache.peek("k") is None
    assert cache.get("k", fetch).access_token == "t2"
    assert fetch.state["n"] == 2


def test_configurable_skew():
    clock = Clock()
    cache = TokenCache(skew=120, clock=clock)
    cache.get("k", lambda: CachedToken("a", clock.now + 3600))
    clock.now += 3479
    assert cache.peek("k") is not None
    clock.now += 1
    assert cache.peek("k") is None


@pytest.mark.parametrize("lifetime", [40, 10, 1])
def test_short_lifetime_uses_half_of_it(lifetime):
    clock = Clock()
    cache = TokenCache(skew=30, clock=clock)
    cache.get("k", lambda: CachedToken("short", clock.now + lifetime))
    clock.now += lifetime / 2 - 0.01
    assert cache.peek("k") is not None, "a short token must still be cached"
    clock.now += 0.01
    assert cache.peek("k") is None


def test_exactly_two_skews_keeps_the_full_skew():
    clock = Clock()
    cache = TokenCache(skew=30, clock=clock)
    cache.get("k", lambda: CachedToken("x", clock.now + 60))
    clock.now += 29.99
    assert cache.peek("k") is not None
    clock.now += 0.01
    assert cache.peek("k") is None


def test_expired_token_is_returned_but_not_cached():
    clock = Clock()
    cache = TokenCache(clock=clock)
    fetch = counted(lambda n: CachedToken(f"t{n}", clock.now - 1))
    assert cache.get("k", fetch).access_token == "t1"
    assert cache.peek("k") is None
    assert cache.get("k", fetch).access_token == "t2"


def test_stale_entries_are_evicted():
    clock = Clock()
    cache = TokenCache(clock=clock)
    for i in range(5):
        cache.get(("k", i), lambda: CachedToken("t", clock.now + 100))
    assert len(cache) == 5
    clock.now += 1000
    cache.get("other", lambda: CachedToken("o", clock.now + 100))
    assert len(cache._entries) == 1  # evicted on store, without anyone looking them up
    assert len(cache) == 1


def test_keys_are_independent_and_data_is_kept():
    cache = TokenCache()
    a = cache.get(("nexi", "A"), lambda: CachedToken("a", time.time() + 100, {"refresh": "r"}))
    b = cache.get(("nexi", "B"), lambda: CachedToken("b", time.time() + 100))
    assert (a.access_token, b.access_token) == ("a", "b")
    assert cache.peek(("nexi", "A")).data == {"refresh": "r"}


def test_invalidate_and_compare_and_invalidate():
    cache = TokenCache()
    fetch = counted(lambda n: CachedToken(f"t{n}", time.time() + 3600))
    cache.get("k", fetch)
    cache.invalidate("k", token="someone-else's")
    assert cache.peek("k").access_token == "t1"
    cache.invalidate("k", token="t1")
    assert cache.peek("k") is None
    cache.get("k", fetch)
    cache.invalidate("k")
    assert cache.peek("k") is None
    cache.invalidate("missing")


def test_repr_hides_the_token():
    assert "secret-token" not in repr(CachedToken("secret-token", 1.0, {"refresh_token": "x"}))


def test_default_cache_is_shared():
    assert default_cache() is default_cache()
    assert isinstance(default_cache(), TokenCache)


def test_negative_skew_is_refused():
    with pytest.raises(ValueError):
        TokenCache(skew=-1)


# ---------------------------------------------------------------------- single flight: threads
def _run_threads(n, target):
    barrier = threading.Barrier(n)
    results, errors = [None] * n, [None] * n

    def run(i):
        barrier.wait()
        try:
            results[i] = target()
        except BaseException as e:  # noqa: BLE001
            errors[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    return results, errors


def test_single_flight_100_threads():
    cache = TokenCache()
    calls = []

    def fetch():
        calls.append(threading.get_ident())
        time.sleep(0.05)
        return CachedToken(f"token-{len(calls)}", time.time() + 3600)

    results, errors = _run_threads(100, lambda: cache.get("k", fetch))
    assert errors == [None] * 100
    assert len(calls) == 1
    assert {r.access_token for r in results} == {"token-1"}


def test_failed_flight_reaches_every_waiter_then_retries():
    cache = TokenCache()
    calls = []
    arrived = []  # every thread appends before it asks the cache

    def failing():
        calls.append(1)
        # The flight fails only once all 100 threads have asked for the key (and the others had
        # time to join this flight): a slow thread that came after the failure would rightly
        # lead a new flight, and the test would then count two.
        deadline = time.monotonic() + 20
        while len(arrived) < 100 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.5)
        raise ConnectionError("platform down")

    def ask():
        arrived.append(1)
        return cache.get("k", failing)

    results, errors = _run_threads(100, ask)
    assert len(arrived) == 100
    assert len(calls) == 1
    assert all(isinstance(e, ConnectionError) for e in errors)
    assert cache.peek("k") is None  # not poisoned
    assert cache.get("k", lambda: CachedToken("ok", time.time() + 60)).access_token == "ok"


def test_reentrant_fetch_does_not_deadlock():
    cache = TokenCache()

    def outer():
        inner = cache.get("k", lambda: CachedToken("inner", time.time() + 60))
        return CachedToken("outer:" + inner.access_token, time.time() + 60)

    done = []
    t = threading.Thread(target=lambda: done.append(cache.get("k", outer)))
    t.start()
    t.join(5)
    assert done and done[0].access_token == "outer:inner"


# ---------------------------------------------------------------------- single flight: asyncio
def test_single_flight_100_tasks():
    cache = TokenCache()
    calls = []

    async def fetch():
        calls.append(1)
        await asyncio.sleep(0.05)
        return CachedToken(f"token-{len(calls)}", time.time() + 3600)

    async def main():
        return await asyncio.gather(*(cache.aget("k", fetch) for _ in range(100)))

    results = asyncio.run(main())
    assert len(calls) == 1
    assert {r.access_token for r in results} == {"token-1"}


def test_async_failure_propagates_then_retries():
    cache = TokenCache()
    calls = []

    async def failing():
        calls.append(1)
        await asyncio.sleep(0.05)
        raise ConnectionError("platform down")

    async def ok():
        calls.append(2)
        return CachedToken("ok", time.time() + 60)

    async def main():
        out = await asyncio.gather(*(cache.aget("k", failing) for _ in range(100)), return_exceptions=True)
        assert all(isinstance(e, ConnectionError) for e in out)
        assert cache.peek("k") is None
        return await cache.aget("k", ok)

    assert asyncio.run(main()).access_token == "ok"
    assert calls == [1, 2]


def test_cancelled_leader_hands_over_to_a_waiter():
    cache = TokenCache()
    calls = []

    async def fetch():
        calls.append(1)
        await asyncio.sleep(0.1)
        return CachedToken(f"token-{len(calls)}", time.time() + 60)

    async def main():
        leader = asyncio.create_task(cache.aget("k", fetch))
        await asyncio.sleep(0.01)
        waiters = [asyncio.create_task(cache.aget("k", fetch)) for _ in range(10)]
        await asyncio.sleep(0.01)
        leader.cancel()
        out = await asyncio.wait_for(asyncio.gather(*waiters), 5)
        with pytest.raises(asyncio.CancelledError):
            await leader
        return out

    out = asyncio.run(main())
    assert len(calls) == 2  # the cancelled fetch, then one new flight
    assert {t.access_token for t in out} == {"token-2"}


def test_cancelled_waiter_does_not_disturb_the_flight():
    cache = TokenCache()

    async def fetch():
        await asyncio.sleep(0.05)
        return CachedToken("t", time.time() + 60)

    async def main():
        leader = asyncio.create_task(cache.aget("k", fetch))
        waiter = asyncio.create_task(cache.aget("k", fetch))
        await asyncio.sleep(0.01)
        waiter.cancel()
        return await leader

    assert asyncio.run(main()).access_token == "t"


def test_sync_get_inside_the_loop_of_the_leading_task_does_not_deadlock():
    """Blocking code called from a coroutine while another task of the same loop leads the
    flight cannot wait for it (it would block that loop): it fetches on its own."""
    cache = TokenCache()

    async def slow():
        await asyncio.sleep(0.2)
        return CachedToken("async", time.time() + 60)

    async def main():
        leader = asyncio.create_task(cache.aget("k", slow))
        await asyncio.sleep(0.01)
        sync = cache.get("k", lambda: CachedToken("sync", time.time() + 60))
        return sync, await leader

    sync, leader = asyncio.run(asyncio.wait_for(main(), 5))
    assert (sync.access_token, leader.access_token) == ("sync", "async")


def test_reentrant_async_fetch_does_not_deadlock():
    cache = TokenCache()

    async def inner():
        return CachedToken("inner", time.time() + 60)

    async def outer():
        got = await cache.aget("k", inner)
        return CachedToken("outer:" + got.access_token, time.time() + 60)

    assert asyncio.run(asyncio.wait_for(cache.aget("k", outer), 5)).access_token == "outer:inner"


# ---------------------------------------------------------------------- threads + loops together
def test_threads_and_two_event_loops_share_one_flight():
    """20 threads and 2 loops (in 2 more threads) x 20 tasks ask at once: one fetch in all,
    whoever wins; every caller gets the same token; no threading lock is held across an await."""
    cache = TokenCache()
    calls: list[str] = []
    lock = threading.Lock()

    def sync_fetch():
        with lock:
            calls.append("sync")
        time.sleep(0.05)
        return CachedToken("from-thread", time.time() + 3600)

    async def async_fetch():
        with lock:
            calls.append("async")
        await asyncio.sleep(0.05)
        return CachedToken("from-loop", time.time() + 3600)

    barrier = threading.Barrier(22)
    results: list[str] = []
    errors: list[BaseException] = []

    def thread_worker():
        barrier.wait()
        try:
            tok = cache.get("k", sync_fetch)
            with lock:
                results.append(tok.access_token)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def loop_worker():
        async def main():
            barrier.wait()  # all loops and threads start together
            return await asyncio.gather(*(cache.aget("k", async_fetch) for _ in range(20)))

        try:
            out = asyncio.run(main())
            with lock:
                results.extend(t.access_token for t in out)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=thread_worker) for _ in range(20)]
    threads += [threading.Thread(target=loop_worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert len(calls) == 1
    assert len(results) == 60 and len(set(results)) == 1


def test_loop_waits_for_a_flight_led_by_another_loop():
    """A task in loop B awaits a flight led by loop A, and is woken thread-safely."""
    cache = TokenCache()
    started = threading.Event()
    calls = []

    async def fetch_a():
        calls.append("a")
        started.set()
        await asyncio.sleep(0.1)
        return CachedToken("from-a", time.time() + 60)

    async def fetch_b():
        calls.append("b")
        return CachedToken("from-b", time.time() + 60)

    out = {}

    def run_a():
        out["a"] = asyncio.run(cache.aget("k", fetch_a)).access_token

    def run_b():
        started.wait(5)
        out["b"] = asyncio.run(cache.aget("k", fetch_b)).access_token

    ta, tb = threading.Thread(target=run_a), threading.Thread(target=run_b)
    ta.start(), tb.start()
    ta.join(5), tb.join(5)
    assert out == {"a": "from-a", "b": "from-a"}
    assert calls == ["a"]


def test_fetch_must_return_a_cached_token():
    cache = TokenCache()
    with pytest.raises(TypeError):
        cache.get("k", lambda: "a bare string")

    async def bad():
        return {"access_token": "x"}

    with pytest.raises(TypeError):
        asyncio.run(cache.aget("k", bad))
    assert cache.peek("k") is None
