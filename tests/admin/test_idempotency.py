"""``Idempotency-Key`` records (tessera.admin.idempotency): the first answer replayed, sealed
(never the secret in clear), another body refused, a running first request a conflict, a
failed one forgotten, a lapsed key a first request again; one operator's key is not another's."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tessera.admin import Admin, Conflict, Invalid
from tessera.admin import idempotency as idem

from .conftest import Clock

SECRET = "s3cr3t-shown-once-" + "x" * 30
#: Spaces: never in the sealed record's base64 by chance (a two-letter id was, once in ~30 runs).
CLIENT_ID = "client id in clear"


def test_first_answer_replayed_and_sealed(admin: Admin) -> None:
    ops = replace(admin, actor="ops-1")
    first = idem.begin(ops, "POST /admin/v1/apps", "k", b'{"name":"a"}')
    assert isinstance(first, idem.Pending)
    idem.remember(ops, first, 201, {"client_id": CLIENT_ID, "client_secret": SECRET})
    again = idem.begin(ops, "POST /admin/v1/apps", "k", b'{"name":"a"}')
    assert again == idem.Replay(201, {"client_id": CLIENT_ID, "client_secret": SECRET})
    stored = admin.store.get_artifact(idem.KIND, first.record_key)
    assert stored is not None and SECRET not in str(stored.data) and CLIENT_ID not in str(stored.data)
    assert "k" != first.record_key and len(first.record_key) == 64


def test_another_body_running_and_failed(admin: Admin) -> None:
    ops = replace(admin, actor="ops-1")
    pending = idem.begin(ops, "POST /x", "k", b"{}")
    assert isinstance(pending, idem.Pending)
    with pytest.raises(Conflict):  # still running
        idem.begin(ops, "POST /x", "k", b"{}")
    with pytest.raises(idem.IdempotencyMismatch) as e:
        idem.begin(ops, "POST /x", "k", b'{"other":1}')
    assert e.value.field == "Idempotency-Key"
    idem.forget(ops, pending)
    assert isinstance(idem.begin(ops, "POST /x", "k", b"{}"), idem.Pending)


def test_keys_are_per_operator_and_operation_and_lapse(admin: Admin, clock: Clock) -> None:
    one, two = replace(admin, actor="ops-1"), replace(admin, actor="ops-2")
    p = idem.begin(one, "POST /x", "k", b"{}")
    assert isinstance(p, idem.Pending)
    idem.remember(one, p, 201, {"n": 1})
    assert isinstance(idem.begin(two, "POST /x", "k", b"{}"), idem.Pending)
    assert isinstance(idem.begin(one, "POST /y", "k", b"{}"), idem.Pending)
    clock.now += idem.WINDOW - 1
    assert isinstance(idem.begin(one, "POST /x", "k", b"{}"), idem.Replay)
    clock.now += 1
    assert isinstance(idem.begin(one, "POST /x", "k", b"{}"), idem.Pending)


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "naïve"])
def test_malformed_keys(admin: Admin, key: str) -> None:
    with pytest.raises(Invalid):
        idem.begin(replace(admin, actor="ops"), "POST /x", key, b"{}")
