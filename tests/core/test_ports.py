"""tessera.core.ports: a store's optional capabilities are found once, by what it implements."""

from __future__ import annotations

from tessera.core.ports import Capabilities, Conflict, PurgePolicy, Store
from tessera.storage.memory import MemoryStore
from tessera.storage.sql import SQLStore


def test_the_memory_store_announces_changes_and_nothing_else():
    store = MemoryStore()
    caps = Capabilities.of(store)
    assert isinstance(store, Store)
    assert caps.notices is not None and caps.rotation is None and caps.database is None and caps.redis is None
    assert "revoked_jti" in caps.announced_kinds


def test_a_sqlite_store_has_a_database_and_exact_notices(tmp_path):
    store = SQLStore(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        caps = Capabilities.of(store)
        assert caps.database is not None and caps.notices is not None and caps.redis is None
        assert "revoked_jti" in caps.announced_kinds
    finally:
        store.close()


def test_an_object_with_no_capability():
    caps = Capabilities.of(object())
    assert caps == Capabilities() and caps.announced_kinds == frozenset()


def test_policy_and_conflict_are_plain():
    p = PurgePolicy(
        replay_kinds=frozenset({"a"}),
        replay_margin=1,
        family_kind="f",
        token_kind="t",
        family_margin=2,
        events_before=None,
    )
    assert p.replay_kinds == {"a"} and issubclass(Conflict, Exception)
