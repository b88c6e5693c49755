"""Key rotation: the retention policy max(token lifetimes) + skew for signing keys, the
longest assertion + skew + the clients' JWKS cache for encryption keys, and no new key sealed
when the KEK check fails."""

from __future__ import annotations

import pytest

from tessera import admin as ops
from tessera.admin import Admin, Invalid
from tessera.admin.server_keys import CLIENT_JWKS_CACHE


def test_retention_follows_the_longest_token(admin: Admin) -> None:
    s = admin.settings
    assert ops.retention_seconds(s, "sig") == s.mobilepay_token_ttl + s.clock_skew  # 3700: the longest by default
    longer = s.model_copy(update={"axept_token_ttl": 9000, "clock_skew": 60})
    assert ops.retention_seconds(longer, "sig") == 9060
    assert ops.retention_seconds(s, "enc") == s.nexi_assertion_max_lifetime + s.clock_skew + CLIENT_JWKS_CACHE
    with pytest.raises(Invalid) as e:
        ops.retention_seconds(s, "wrap")
    assert e.value.field == "use"


def test_rotate_sig_promotes_next_and_retains_current(keyed: Admin) -> None:
    before = {k.kid: k for k in ops.list_server_keys(keyed) if k.use == "sig"}
    rotation = ops.rotate_server_keys(keyed, "sig")
    shared = rotation.shared
    assert before[shared.current].status == "next"
    assert shared.retired is not None and before[shared.retired].status == "current"
    assert shared.retire_at == keyed.now() + ops.retention_seconds(keyed.settings, "sig")
    after = {k.kid: k for k in ops.list_server_keys(keyed)}
    assert after[shared.retired].status == "retired" and after[shared.current].status == "current"
    assert after[shared.next].status == "next"
    assert rotation.rings and set(rotation.as_dict()["rings"]) == set(rotation.rings)


def test_rotate_enc_has_no_rings(keyed: Admin) -> None:
    d = ops.rotate_server_keys(keyed, "enc").as_dict()
    assert d["use"] == "enc" and "rings" not in d
    assert d["retire_at"] == keyed.now() + ops.retention_seconds(keyed.settings, "enc")


def test_a_failing_kek_check_seals_nothing(keyed: Admin) -> None:
    class WrongKek(Exception):
        pass

    def refuse() -> None:
        raise WrongKek

    before = ops.list_server_keys(keyed)
    with pytest.raises(WrongKek):
        ops.rotate_server_keys(Admin(keyed.store, keyed.settings, keyed.ca, keyed.clock, check_kek=refuse), "sig")
    assert ops.list_server_keys(keyed) == before
