"""Enrollments and security events listed; purge deletes what has expired."""

from __future__ import annotations

import pytest

from tessera import admin as ops
from tessera.admin import Admin, CreateMerchant, Invalid, RegisterClient
from tessera.core.models import Artifact

from .conftest import Clock


def test_events_filtered_latest_first_limited(admin: Admin) -> None:
    for i in range(5):
        admin.store.add_event("jti_replayed" if i % 2 else "brute_force_lockout", f"c{i}", {"i": i}, admin.now() + i)
    assert [e.detail["i"] for e in ops.list_events(admin)] == [0, 1, 2, 3, 4]
    assert [e.detail["i"] for e in ops.list_events(admin, kind="jti_replayed")] == [1, 3]
    assert [e.detail["i"] for e in ops.list_events(admin, limit=2)] == [3, 4]
    for bad in (0, 100_001):
        with pytest.raises(Invalid):
            ops.list_events(admin, limit=bad)


def test_enrollments_listed(admin: Admin) -> None:
    assert ops.list_enrollments(admin) == []
    client = ops.register_client(admin, RegisterClient(name="softpos")).client_id
    ops.create_merchant(admin, CreateMerchant(42))
    admin.store.add_enrollment(client, 42, "POS1", ["S1"], "anna@pizzeria.example", admin.now(), device_id="dev")
    [e] = ops.list_enrollments(admin)
    assert (e.client_id, e.merchant_id, e.tids, e.device_id) == (client, 42, ("S1",), "dev")


def test_purge_deletes_only_the_expired(admin: Admin, clock: Clock) -> None:
    admin.store.put_artifact(Artifact("request_uri", "old", "c1", {}, clock.now + 10))
    admin.store.put_artifact(Artifact("request_uri", "new", "c1", {}, clock.now + 1000))
    assert ops.purge(admin) == {}
    clock.now += 11
    assert ops.purge(admin) == {"request_uri": 1}
    assert admin.store.get_artifact("request_uri", "new") is not None
