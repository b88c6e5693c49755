"""tessera.core.purge in process: the policy (what may go, from the settings) and the turn taking,
on the in-memory store; what each store deletes under a policy is tests/storage/test_purge.py."""

from __future__ import annotations

from dataclasses import dataclass

from tessera.core import authorize, purge, refresh
from tessera.core.flows import native
from tessera.core.models import Artifact
from tessera.storage.memory import MemoryStore

NOW = 1_800_000_000


@dataclass(frozen=True)
class Settings:
    access_token_ttl: int = 3600
    id_token_ttl: int = 600
    nexi_token_ttl: int = 7200
    mobilepay_token_ttl: int = 3700
    axept_token_ttl: int = 1800
    b2binpay_access_ttl: int = 900
    clock_skew: int = 30
    event_retention_days: int = 90


def test_the_longest_access_token_and_the_policy():
    s = Settings()
    assert purge.longest_access_token(s) == 7200
    p = purge.policy(s, NOW)
    assert p.replay_kinds == frozenset({authorize.CODE_KIND, native.CODE_KIND})
    assert p.replay_margin == 7230 and p.family_margin == 7230
    assert (p.family_kind, p.token_kind) == (refresh.FAMILY_KIND, refresh.REFRESH_KIND)
    assert p.events_before == NOW - 90 * 86400


def test_short_tokens_keep_the_hour_of_replay_margin_and_zero_days_keep_events():
    p = purge.policy(
        Settings(
            access_token_ttl=60,
            id_token_ttl=60,
            nexi_token_ttl=60,
            mobilepay_token_ttl=60,
            axept_token_ttl=60,
            b2binpay_access_ttl=60,
            event_retention_days=0,
        ),
        NOW,
    )
    assert p.replay_margin == purge.REPLAY_MARGIN == 3600 and p.family_margin == 90 and p.events_before is None


def test_purge_deletes_what_expired_and_keeps_what_lives():
    store = MemoryStore()
    store.put_artifact(Artifact("request_uri", "old", "c", {}, NOW - 10))
    store.put_artifact(Artifact("request_uri", "live", "c", {}, NOW + 10))
    deleted = purge.purge(store, Settings(), NOW)
    assert deleted.get("request_uri") == 1
    assert store.get_artifact("request_uri", "live") is not None and store.get_artifact("request_uri", "old") is None


def test_one_turn_per_half_interval():
    store = MemoryStore()
    assert purge.take_turn(store, NOW, 600)
    assert not purge.take_turn(store, NOW + 299, 600)
    assert purge.take_turn(store, NOW + 300, 600)
    assert purge.take_turn(store, NOW + 600, 1)  # a turn lasts at least a second
    assert not purge.take_turn(store, NOW + 600, 1)
    assert purge.take_turn(store, NOW + 601, 1)
