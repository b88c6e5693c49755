"""tessera.core.context in process: the configuration's seals, the worker caches (read-through,
TTL, bounded, invalidated by change notices) and the security events written once per period.
How the caches follow a real store's notices is test_context_caches.py."""

from __future__ import annotations

import pytest

from tessera.core import context
from tessera.core.context import CoreConfig, _TTLCache
from tessera.core.profiles import MOBILEPAY, NATIVE, NEXI
from tests.core.conftest import ISSUER


def test_config_seals_default_to_the_issuer():
    cfg = CoreConfig(issuer=ISSUER, environment="production")
    assert cfg.seal(NATIVE).audience == ISSUER and cfg.seal(NEXI).audience == ISSUER + "/softpos"
    assert cfg.seal(MOBILEPAY).issuer == ISSUER + "/integrator-authentication"
    assert cfg.seal(NEXI).environment == "production"
    custom = CoreConfig(issuer=ISSUER, issuers=dict(cfg.issuers), audiences={**cfg.audiences, NEXI: "nexi-aud"})
    assert custom.seal(NEXI).audience == "nexi-aud"


class Loader:
    def __init__(self):
        self.calls = 0

    def __call__(self, key):
        self.calls += 1
        return f"v{self.calls}:{key}"


def test_a_cache_without_ttl_always_reads_through():
    load = Loader()
    cache = _TTLCache(0, load)
    assert cache.get("a") != cache.get("a") and load.calls == 2


def test_a_cache_keeps_values_for_its_ttl_and_is_bounded(monkeypatch):
    t = [100.0]
    monkeypatch.setattr(context.time, "monotonic", lambda: t[0])
    load = Loader()
    cache = _TTLCache(10, load, maxsize=2)
    first = cache.get("a")
    t[0] += 9.9
    assert cache.get("a") == first and load.calls == 1
    t[0] += 0.1
    assert cache.get("a") != first and load.calls == 2
    cache.get("b")
    cache.get("c")  # a third key: the cache is full, so it starts again
    assert len(cache._data) == 1
    cache.invalidate("c")
    assert cache._data == {}
    cache.get("d")
    cache.invalidate()
    assert cache._data == {}


def test_a_value_loaded_while_the_cache_was_invalidated_is_not_kept():
    cache: _TTLCache[str, str] = _TTLCache(60, lambda key: (cache.invalidate(), key)[1])
    assert cache.get("a") == "a" and cache._data == {}


def test_events_once_per_period_and_the_memory_is_bounded(world, monkeypatch):
    core = world.core
    core.event("x", "c", once_per=60, serial="1")
    core.event("x", "c", once_per=60, serial="1")
    core.event("x", "c", once_per=60, serial="2")  # other detail: another event
    world.clock.advance(60)
    core.event("x", "c", once_per=60, serial="1")
    core.event("y", None)
    core.event("y", None)  # without once_per: every time
    assert [(e.kind, e.detail.get("serial")) for e in world.store.list_events()] == [
        ("x", "1"),
        ("x", "2"),
        ("x", "1"),
        ("y", None),
        ("y", None),
    ]
    monkeypatch.setattr(context, "RECENT_EVENTS", 2)
    core.event("z", "c", once_per=60)
    assert len(core._recent_events) == 1


def test_the_caches_read_the_store_and_follow_its_notices(world):
    client = world.client()
    core = world.core
    assert core.exact_notices  # the memory store's notices are exact: the caches keep values
    assert core.client(client.client_id).active
    world.store.set_client_status(client.client_id, "revoked")
    assert not core.client(client.client_id).active  # the change was announced: read again
    e = world.merchant(client)
    assert [t.tid for t in core.terminals_at(e.pos)] == [e.softpos, e.mpos]
    assert core.is_granted(e.merchant_id, client.client_id) and core.user(e.username).merchant_id == e.merchant_id
    assert core.bindings(e.username, e.softpos) == (None, None)
    cert = world.cert(client)
    assert core.certificate(cert.thumbprint).serial == cert.serial
    assert [c.serial for c in core.certificates_for(client.client_id)] == [cert.serial]


@pytest.mark.core_config(cache_seconds=30)
def test_cache_seconds_set_a_ttl(world):
    assert world.core._clients.ttl == 30
