"""The purge (tessera.core.purge over Store.purge), in memory, on SQLite and on a real PostgreSQL.

What goes: every artefact past its expiry, old security events. What stays: anything a
check still reads: a consumed refresh token until its own ``exp`` (reuse detection), a
refresh family while a live token names it and for the longest access-token lifetime after
its expiry, a consumed code for the replay margin, a replay marker until its expiry.
"""

from __future__ import annotations

import pytest

from tessera.config import Settings
from tessera.core import authorize, purge, refresh
from tessera.core.flows import native
from tessera.core.models import Artifact
from tessera.core.ports import PurgePolicy
from tessera.storage.memory import MemoryStore
from tessera.storage.sql import SQLStore
from tests.support import migrated

NOW = 1_700_000_000


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=[pytest.mark.postgres])])
def store(request, tmp_path):
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "sqlite":
        s = SQLStore(migrated.sqlite_url(tmp_path / "store.db"))
    else:
        s = SQLStore(request.getfixturevalue("migrated_postgres_url"))
    yield s
    s.close()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path, issuer="https://auth.example", event_retention_days=30)


def put(store, kind, key, expires_at, *, consumed_at=None, data=None):
    store.put_artifact(Artifact(kind, key, "app-1", data or {}, expires_at, consumed_at))


def keys(store, kind, *candidates):
    return {k for k in candidates if store.get_artifact(kind, k) is not None}


def test_expired_requests_jtis_and_marks_go_the_live_stay(store, settings):
    for kind in ("request_uri", native.PAR_KIND, "revoked_jti", "native_code_replay"):
        put(store, kind, "old", NOW - 1)
        put(store, kind, "edge", NOW)
        put(store, kind, "live", NOW + 1)
    store.claim("assertion_jti", "app-1:old", "app-1", NOW - 1, NOW - 100)
    store.claim("assertion_jti", "app-1:live", "app-1", NOW + 30, NOW - 100)
    counts = purge.purge(store, settings, NOW)
    assert counts == {
        "request_uri": 2,
        native.PAR_KIND: 2,
        "revoked_jti": 2,
        "native_code_replay": 2,
        "assertion_jti": 1,
    }
    for kind in ("request_uri", native.PAR_KIND, "revoked_jti", "native_code_replay"):
        assert keys(store, kind, "old", "edge", "live") == {"live"}
    assert keys(store, "assertion_jti", "app-1:old", "app-1:live") == {"app-1:live"}
    assert purge.purge(store, settings, NOW) == {}


@pytest.mark.parametrize("kind", [authorize.CODE_KIND, native.CODE_KIND])
def test_a_consumed_code_outlives_its_expiry_by_the_replay_margin(store, settings, kind):
    margin = purge.policy(settings, NOW).replay_margin
    assert margin >= max(purge.REPLAY_MARGIN, purge.longest_access_token(settings))
    put(store, kind, "unused", NOW - 10)  # expired, never used: goes
    put(store, kind, "used-recent", NOW - 10, consumed_at=NOW - 50)  # used: replay still recognised
    put(store, kind, "used-old", NOW - margin, consumed_at=NOW - margin - 30)  # used, past the margin: goes
    assert purge.purge(store, settings, NOW) == {kind: 2}
    assert keys(store, kind, "unused", "used-recent", "used-old") == {"used-recent"}
    assert purge.purge(store, settings, NOW + margin) == {kind: 1}


def test_refresh_tokens_go_at_their_own_exp_and_families_only_when_no_token_needs_them(store, settings):
    margin = purge.policy(settings, NOW).family_margin
    F, R = refresh.FAMILY_KIND, refresh.REFRESH_KIND
    # a family past its expiry (and the margin) that a live (rotated, consumed) token still names
    put(store, F, "fam-live-token", NOW - margin - 10)
    put(store, R, "used-unexpired", NOW + 100, consumed_at=NOW - 5, data={"fam": "fam-live-token"})
    # a family past its expiry but inside the margin: access tokens issued with its last refresh token name it
    put(store, F, "fam-margin", NOW - margin + 10)
    put(store, R, "t-margin", NOW - margin + 10, data={"fam": "fam-margin"})
    # a family whose tokens have all expired, past the margin: goes, with its tokens
    put(store, F, "fam-dead", NOW - margin - 10)
    put(store, R, "t-dead-used", NOW - margin - 10, consumed_at=NOW - margin - 20, data={"fam": "fam-dead"})
    put(store, R, "t-dead", NOW - margin - 10, data={"fam": "fam-dead"})
    # an unexpired family
    put(store, F, "fam-young", NOW + 1000)
    counts = purge.purge(store, settings, NOW)
    assert counts == {F: 1, R: 3}, counts
    assert keys(store, F, "fam-live-token", "fam-margin", "fam-dead", "fam-young") == {
        "fam-live-token",
        "fam-margin",
        "fam-young",
    }
    # the consumed, unexpired token stays: presenting it again is still detected as a reuse
    used = store.get_artifact(R, "used-unexpired")
    assert used is not None and used.consumed_at is not None
    # once its token has expired too, the family goes (and the one that was inside the margin)
    assert purge.purge(store, settings, NOW + 101) == {R: 1, F: 2}
    assert keys(store, F, "fam-live-token", "fam-margin", "fam-young") == {"fam-young"}


def test_events_past_the_retention_go(store, settings):
    day = purge.DAY
    store.add_event("old", None, {}, NOW - 31 * day)
    store.add_event("recent", None, {}, NOW - 29 * day)
    assert purge.purge(store, settings, NOW) == {"security_events": 1}
    assert [e.kind for e in store.list_events()] == ["recent"]
    keep = settings.model_copy(update={"event_retention_days": 0})
    store.add_event("ancient", None, {}, 0)
    assert purge.purge(store, keep, NOW) == {}


def test_batches_page_through_kept_and_deleted_rows(store):
    F, R = refresh.FAMILY_KIND, refresh.REFRESH_KIND
    for i in range(10):
        put(store, "request_uri", f"r{i:02}", NOW - 1)
        put(store, F, f"f{i:02}", NOW - 1)
        if i % 2:  # half the families still have a live token
            put(store, R, f"t{i:02}", NOW + 60, data={"fam": f"f{i:02}"})
    for _ in range(7):
        store.add_event("e", None, {}, NOW - 100)
    policy = PurgePolicy(family_kind=F, token_kind=R, events_before=NOW, batch=3)
    assert store.purge(NOW, policy) == {"request_uri": 10, F: 5, "security_events": 7}
    assert store.purge(NOW, policy) == {}


def test_one_turn_per_half_interval(store):
    assert purge.take_turn(store, NOW, 300) is True
    assert purge.take_turn(store, NOW + 1, 300) is False
    assert purge.take_turn(store, NOW + 150, 300) is True
