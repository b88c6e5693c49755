"""tessera.core.enrollment in process: the enrollment claims of the Nexi assertion against a real
store (point of sale, grants, terminals, the user and its binding), with a fixed clock."""

from __future__ import annotations

import pytest

from tessera.core import enrollment
from tessera.core.enrollment import EnrollmentRequest, check_enrollment_claims
from tessera.core.models import MerchantUser, Terminal
from tessera.errors import InvalidClient, InvalidRequest
from tests.core.conftest import password_hash


@pytest.fixture
def enrolled(world):
    client = world.client()
    return world, client, world.merchant(client)


def claims(world, client, e, **over):
    return world.nexi_claims(client, e, **over)


def reason(world, client, c) -> str:
    with pytest.raises((InvalidRequest, InvalidClient)) as err:
        check_enrollment_claims(world.core, client, c)
    return err.value.reason


def test_the_softpos_tid_is_the_one_bound(enrolled):
    world, client, e = enrolled
    got = check_enrollment_claims(world.core, client, claims(world, client, e, terminal_ids=[e.mpos, e.softpos]))
    assert got == EnrollmentRequest(e.merchant_id, e.pos, (e.mpos, e.softpos), e.username, e.softpos, None)
    assert EnrollmentRequest.from_dict(got.as_dict()) == got


def test_a_single_mpos_tid_is_bound_and_the_device_id_kept(enrolled):
    world, client, e = enrolled
    got = check_enrollment_claims(
        world.core,
        client,
        claims(world, client, e, terminal_ids=[e.mpos], username_merchant=e.username.upper(), app_deviceid="dev-1"),
    )
    assert (got.bound_tid, got.username, got.device_id) == (e.mpos, e.username, "dev-1")


@pytest.mark.parametrize(
    "over,why",
    [
        ({"appId": "someone-else"}, "assertion_appid"),
        ({"pointOfSale": None}, "pos_missing"),
        ({"pointOfSale": ""}, "pos_missing"),
        ({"pointOfSale": 7}, "pos_missing"),
        ({"pointOfSale": "P" * 65}, "pos_missing"),
        ({"pointOfSale": "NOWHERE"}, "pos_unknown"),
        ({"terminal_ids": "S1"}, "tids_count"),
        ({"terminal_ids": []}, "tids_count"),
        ({"terminal_ids": ["a", "b", "c"]}, "tids_count"),
        ({"terminal_ids": [""]}, "tids_count"),
        ({"terminal_ids": [7]}, "tids_count"),
        ({"username_merchant": None}, "username_missing"),
        ({"username_merchant": "not-an-email"}, "username_format"),
        ({"username_merchant": 12}, "username_format"),
        ({"username_merchant": "a" * 250 + "@x.example"}, "username_format"),
        ({"username_merchant": "nobody@shop.example"}, "username_unknown"),
        ({"app_deviceid": ""}, "deviceid_format"),
        ({"app_deviceid": "a\nb"}, "deviceid_format"),
        ({"app_deviceid": "x" * 257}, "deviceid_format"),
        ({"app_deviceid": 5}, "deviceid_format"),
    ],
)
def test_claim_refusals(enrolled, over, why):
    world, client, e = enrolled
    assert reason(world, client, claims(world, client, e, **over)) == why


def test_terminal_rules(enrolled):
    world, client, e = enrolled
    assert reason(world, client, claims(world, client, e, terminal_ids=[e.softpos, e.softpos])) == "tids_duplicate"
    assert reason(world, client, claims(world, client, e, terminal_ids=[e.softpos, "T-OTHER"])) == "tid_foreign"
    world.store.add_terminal(Terminal("S2-" + e.softpos, e.merchant_id, e.pos, "softpos"))
    assert reason(world, client, claims(world, client, e, terminal_ids=[e.softpos, "S2-" + e.softpos])) == "tids_kind"


def test_merchant_must_have_granted_the_app_and_be_the_only_one(world):
    client = world.client()
    e = world.merchant(client, grant=False)
    assert reason(world, client, claims(world, client, e)) == "merchant_not_granted"
    world.store.grant(e.merchant_id, client.client_id, world.core.now())
    other = world.merchant(client, pos=e.pos)  # the same point-of-sale id at a second granting merchant
    assert reason(world, client, claims(world, client, e)) == "pos_ambiguous"
    assert other.pos == e.pos


def test_a_user_of_another_merchant_is_unknown_here(world):
    client = world.client()
    e, f = world.merchant(client), world.merchant(client)
    assert reason(world, client, claims(world, client, e, username_merchant=f.username)) == "username_unknown"


def test_both_username_claims_must_agree(enrolled):
    world, client, e = enrolled
    ok = claims(world, client, e, username_merchant=None, app_username_merchant=e.username.upper())
    assert check_enrollment_claims(world.core, client, ok).username == e.username
    both = claims(world, client, e, app_username_merchant="other@shop.example")
    assert reason(world, client, both) == "username_disagree"


def test_bindings_username_to_one_tid_and_tid_to_one_username(enrolled):
    world, client, e = enrolled
    assert world.store.bind_username(e.username, e.softpos, world.core.now())
    check_enrollment_claims(world.core, client, claims(world, client, e))  # the same binding again: fine
    assert reason(world, client, claims(world, client, e, terminal_ids=[e.mpos])) == "username_bound"
    # the softpos TID is bound to this user: another user of the merchant cannot enroll on it
    world.store.add_user(MerchantUser("second@shop.example", e.merchant_id, password_hash()))
    assert reason(world, client, claims(world, client, e, username_merchant="second@shop.example")) == "username_bound"


def test_constants():
    assert enrollment.USERNAME_CLAIMS == ("username_merchant", "app_username_merchant")
    assert enrollment.MAX_DEVICE_ID == 256
