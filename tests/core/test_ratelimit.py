"""``MemoryFailureLimiter`` and ``guard()`` with an injected clock: window, lockout, reset on success."""

from __future__ import annotations

import threading

import pytest

from tessera.core.ratelimit import MemoryFailureLimiter, guard


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def limiter(clock: Clock, **kw) -> MemoryFailureLimiter:
    kw = {"max_failures": 5, "window": 60, "lockout": 30, **kw}
    return MemoryFailureLimiter(clock=clock, **kw)


def fail(lim: MemoryFailureLimiter, key: str, n: int) -> list[int | None]:
    return [lim.failed(key) for _ in range(n)]


# --- threshold and lockout ------------------------------------------------------------------
def test_unknown_key_is_not_locked(clock):
    assert limiter(clock).locked("k") is None


def test_failures_below_the_threshold_do_not_lock(clock):
    lim = limiter(clock)
    assert fail(lim, "k", 4) == [None] * 4
    assert lim.locked("k") is None


def test_the_fifth_failure_locks_for_the_lockout(clock):
    lim = limiter(clock)
    assert fail(lim, "k", 5) == [None, None, None, None, 30]
    # Asked at the very instant of the lock: exactly the lockout, never more.
    assert lim.locked("k") == 30


def test_lock_counts_down_rounding_up_and_ends(clock):
    lim = limiter(clock)
    fail(lim, "k", 5)
    clock.advance(0.5)
    assert lim.locked("k") == 30  # 29.5 s left: retry after 30 (never too early)
    clock.advance(10)
    assert lim.locked("k") == 20  # 19.5 left
    clock.advance(19.4)
    assert lim.locked("k") == 1  # 0.1 left
    clock.advance(0.1)
    assert lim.locked("k") is None
    clock.advance(1000)
    assert lim.locked("k") is None


@pytest.mark.parametrize("offset", [0.0, 0.25, 0.5, 0.999, 1.0, 7.0, 29.0, 29.999])
def test_retry_after_is_between_one_and_the_lockout(clock, offset):
    lim = limiter(clock)
    fail(lim, "k", 5)
    clock.advance(offset)
    wait = lim.locked("k")
    assert isinstance(wait, int)
    assert 1 <= wait <= 30
    # Never tells the caller to come back before the lock ends.
    assert clock.t + wait >= 1000.0 + 30


def test_after_the_lockout_a_full_budget_again(clock):
    lim = limiter(clock, lockout=2)
    fail(lim, "k", 5)
    clock.advance(2.01)
    assert lim.locked("k") is None
    assert fail(lim, "k", 4) == [None] * 4
    assert lim.locked("k") is None
    assert lim.failed("k") == 2
    assert lim.locked("k") == 2


def test_keys_are_independent(clock):
    lim = limiter(clock)
    fail(lim, "a", 5)
    fail(lim, "b", 4)
    assert lim.locked("a") == 30
    assert lim.locked("b") is None
    assert lim.locked("c") is None


def test_custom_threshold(clock):
    lim = limiter(clock, max_failures=1, lockout=7)
    assert lim.failed("k") == 7
    assert lim.locked("k") == 7


# --- window --------------------------------------------------------------------------------------
def test_failures_outside_the_window_do_not_add_up(clock):
    lim = limiter(clock)
    fail(lim, "k", 4)
    clock.advance(60.5)  # the window (60 s from the first failure) has passed
    assert fail(lim, "k", 4) == [None] * 4
    assert lim.locked("k") is None
    assert lim.failed("k") == 30  # the fifth of the new window


def test_failures_inside_the_window_add_up(clock):
    lim = limiter(clock)
    for _ in range(4):
        lim.failed("k")
        clock.advance(14.9)  # 4 x 14.9 = 59.6 s < 60
    assert lim.failed("k") == 30
    assert lim.locked("k") == 30


# --- reset on success ---------------------------------------------------------------------------------
def test_success_resets_the_counter(clock):
    lim = limiter(clock)
    fail(lim, "k", 4)
    lim.succeeded("k")
    assert fail(lim, "k", 4) == [None] * 4
    assert lim.locked("k") is None


def test_success_during_the_lock_does_not_unlock(clock):
    lim = limiter(clock)
    fail(lim, "k", 5)
    lim.succeeded("k")
    assert lim.locked("k") == 30


def test_success_of_unknown_key_is_harmless(clock):
    lim = limiter(clock)
    lim.succeeded("nobody")
    assert lim.locked("nobody") is None


def test_success_resets_only_its_own_key(clock):
    lim = limiter(clock)
    fail(lim, "a", 4)
    fail(lim, "b", 4)
    lim.succeeded("a")
    assert lim.failed("a") is None
    assert lim.failed("b") == 30


# --- guard() ------------------------------------------------------------------------------------------
def test_guard_none_when_nothing_locked(clock):
    lim = limiter(clock)
    fail(lim, "a", 4)
    assert guard(lim, "a", "b") is None
    assert guard(lim) is None


def test_guard_reports_any_locked_key(clock):
    lim = limiter(clock)
    fail(lim, "addr", 5)
    assert guard(lim, "cred", "addr") == 30
    assert guard(lim, "addr", "cred") == 30
    assert guard(lim, "cred") is None


def test_guard_reports_the_longest_wait(clock):
    lim = limiter(clock)
    fail(lim, "a", 5)
    clock.advance(20)
    fail(lim, "b", 5)
    assert lim.locked("a") == 10
    assert lim.locked("b") == 30
    assert guard(lim, "a", "b") == 30
    assert guard(lim, "b", "a") == 30


def test_guard_does_not_count_a_failure(clock):
    lim = limiter(clock)
    fail(lim, "k", 4)
    for _ in range(10):
        assert guard(lim, "k") is None
    assert lim.failed("k") == 30


# --- memory bound and threads -----------------------------------------------------------------------------
def test_eviction_never_drops_an_active_lock(clock):
    """Filling the table with fresh keys (cheap for an attacker with many addresses or
    logins) must not lift the lock on the credential being brute-forced."""
    lim = limiter(clock, max_keys=8)
    fail(lim, "victim", 5)
    for i in range(100):
        lim.failed(f"noise-{i}")
    assert lim.locked("victim") == 30
    assert len(lim._state) <= 8


def test_eviction_drops_stale_entries_first(clock):
    lim = limiter(clock, max_keys=4)
    lim.failed("old")
    clock.advance(61)
    for i in range(3):
        lim.failed(f"k{i}")
    fail(lim, "recent", 4)  # triggers eviction: "old" is stale and goes, "recent" keeps its count
    assert "old" not in lim._state
    assert lim.failed("recent") == 30


def test_concurrent_failures_are_all_counted(clock):
    threads, per_thread = 8, 500
    lim = limiter(clock, max_failures=threads * per_thread)
    barrier = threading.Barrier(threads)
    locks: list[int] = []

    def run() -> None:
        barrier.wait()
        for _ in range(per_thread):
            if (w := lim.failed("k")) is not None:
                locks.append(w)

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert locks == [30]  # exactly the last failure locked, none were lost
    assert lim.locked("k") == 30


def test_default_clock_is_monotonic():
    import time

    assert MemoryFailureLimiter().clock is time.monotonic
