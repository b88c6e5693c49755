"""Core.event(once_per=...): a refusal anyone can repeat at will (a revoked certificate, a
replayed assertion) is written as a security event at most once a window per worker, so a
stream of refusals never becomes a stream of writes; other events are all written."""

from __future__ import annotations

from typing import Any

from tessera.core.context import RECENT_EVENTS, Core, CoreConfig
from tessera.core.ports import Capabilities


class Events:
    def __init__(self) -> None:
        self.rows: list[tuple[str, Any, dict, int]] = []

    def add_event(self, kind, client_id, detail, now):
        self.rows.append((kind, client_id, detail, now))

    def __getattr__(self, name):
        return lambda *a, **kw: None


def _core(clock: list[int]) -> tuple[Core, Events]:
    store = Events()
    core = Core(
        config=CoreConfig(issuer="https://as.example"),
        store=store,
        keys=None,
        pepper=b"p",  # type: ignore[arg-type]
        clock=lambda: clock[0],
        capabilities=Capabilities(),
    )  # none: the stand-in answers every name
    return core, store


def test_a_repeated_event_is_written_once_per_window():
    clock = [1000]
    core, store = _core(clock)
    for _ in range(500):
        core.event("jti_replayed", "app", jti="j1", once_per=60)
    assert len(store.rows) == 1
    core.event("jti_replayed", "app", jti="j2", once_per=60)  # another detail: its own event
    core.event("jti_replayed", "other", jti="j1", once_per=60)  # another client
    assert len(store.rows) == 3
    clock[0] += 59
    core.event("jti_replayed", "app", jti="j1", once_per=60)
    assert len(store.rows) == 3
    clock[0] += 1  # the window has passed: written again
    core.event("jti_replayed", "app", jti="j1", once_per=60)
    assert len(store.rows) == 4


def test_events_without_a_window_are_all_written():
    core, store = _core([1000])
    for _ in range(5):
        core.event("refresh_family_revoked", "app", family="f", cause="refresh_reused")
    assert len(store.rows) == 5


def test_the_memory_of_repeated_events_is_bounded():
    core, store = _core([1000])
    for i in range(RECENT_EVENTS + 10):
        core.event("revoked_certificate_used", "app", serial=str(i), once_per=60)
    assert len(core._recent_events) <= RECENT_EVENTS
    assert len(store.rows) == RECENT_EVENTS + 10
