"""key_usage.py: when each axept key was last used, written at most once a minute per worker and
key, never backwards; in process, on the in-memory store, at fixed times."""

from __future__ import annotations

from tessera.core import key_usage
from tessera.core.models import ApiKey, Merchant
from tessera.storage.memory import MemoryStore

NOW = 1_800_000_000


def _store_with_key(merchant_id: int = 9) -> tuple[MemoryStore, ApiKey]:
    store = MemoryStore()
    store.create_merchant(Merchant(merchant_id, "Shop"))
    return store, store.create_api_key(merchant_id, "h" * 64, NOW, max_enabled=3)


def test_key_use_is_recorded_at_most_once_a_minute_per_worker():
    recorder = key_usage.UsageRecorder()
    store = object()
    key = ApiKey(1, 1, "h", True, NOW)
    assert recorder.due(store, key, NOW) is True
    assert recorder.due(store, key, NOW + 59) is False
    assert recorder.due(store, ApiKey(1, 2, "h", True, NOW), NOW + 1) is True
    assert recorder.due(store, key, NOW + 60) is True


def test_each_store_and_each_merchant_has_its_own_minute():
    recorder = key_usage.UsageRecorder()
    first, second = object(), object()
    key = ApiKey(1, 1, "h", True, NOW)
    assert recorder.due(first, key, NOW) is True
    assert recorder.due(second, key, NOW + 1) is True  # another store (another home) in this process
    assert recorder.due(first, ApiKey(2, 1, "h", True, NOW), NOW + 1) is True  # key 1 of another merchant
    assert recorder.due(first, key, NOW + 2) is False


def test_the_interval_is_a_parameter():
    recorder = key_usage.UsageRecorder(interval=5)
    key = ApiKey(1, 1, "h", True, NOW)
    store = object()
    assert recorder.due(store, key, NOW) is True
    assert recorder.due(store, key, NOW + 4) is False
    assert recorder.due(store, key, NOW + 5) is True


def test_key_use_is_written_through_the_store_once_a_minute():
    store, key = _store_with_key()
    recorder = key_usage.UsageRecorder()
    recorder.used(store, key, NOW + 5)
    recorder.used(store, key, NOW + 30)  # within the minute: not written
    assert store.get_api_key(9, key.key_id).last_used_at == NOW + 5
    recorder.used(store, key, NOW + 65)
    assert store.get_api_key(9, key.key_id).last_used_at == NOW + 65


def test_a_worker_writing_late_never_moves_the_time_back():
    """Two workers record the same key; the one whose write lands last saw the earlier use."""
    store, key = _store_with_key()
    ahead, behind = key_usage.UsageRecorder(), key_usage.UsageRecorder()
    ahead.used(store, key, NOW + 100)
    behind.used(store, key, NOW + 40)
    assert store.get_api_key(9, key.key_id).last_used_at == NOW + 100


def test_the_memory_of_a_worker_is_bounded(monkeypatch):
    """Past ``_MAX_KEYS`` remembered keys the worker forgets them all (and writes once more each)."""
    monkeypatch.setattr(key_usage, "_MAX_KEYS", 3)
    recorder = key_usage.UsageRecorder()
    store = object()
    keys = [ApiKey(1, n, "h", True, NOW) for n in range(4)]
    assert all(recorder.due(store, k, NOW) for k in keys[:3])
    assert recorder.due(store, keys[0], NOW + 1) is False
    assert recorder.due(store, keys[3], NOW + 1) is True  # the fourth: the memory was full, cleared
    assert recorder.due(store, keys[0], NOW + 2) is True  # forgotten, so recorded again
