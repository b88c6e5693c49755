"""The Nexi PAR's assertion time rules and claim names, in process, with a fixed clock.

``check_assertion_claims`` reads only ``core.config`` and ``core.now()``; the enrollment
helpers read only the claims. Native rules (300 s, clock_skew) and Nexi rules (900 s, 2 s
ahead, "the client's clock is ahead") side by side."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tessera.core import enrollment
from tessera.core.assertions import AssertionRules, check_assertion_claims
from tessera.core.context import CoreConfig
from tessera.core.models import Client
from tessera.errors import InvalidClient, InvalidClientAssertion, InvalidRequest

NOW = 1_900_000_000
ISSUER = "https://stgb2bsoftpos.nexigroup.com"
CLIENT = Client(client_id="app-1", name="app", secret_hash=None)


@dataclass
class FixedClock:
    config: CoreConfig

    def now(self) -> int:
        return NOW


def claims(**kw):
    base = {"iss": "app-1", "sub": "app-1", "aud": ISSUER, "iat": NOW, "exp": NOW + 500, "jti": "j-1"}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture
def core():
    return FixedClock(CoreConfig(issuer=ISSUER))


def nexi(core, c):
    check_assertion_claims(core, CLIENT, c, audience=ISSUER, rules=AssertionRules.nexi(core.config))


def native(core, c):
    check_assertion_claims(core, CLIENT, c, audience=ISSUER)


@pytest.mark.parametrize("lifetime,ok", [(500, True), (800, True), (900, True), (901, False)])
def test_nexi_lifetime_up_to_900(core, lifetime, ok):
    c = claims(iat=NOW - 1, exp=NOW - 1 + lifetime)
    if ok:
        nexi(core, c)
    else:
        with pytest.raises(InvalidClient, match="900"):
            nexi(core, c)


def test_native_keeps_300(core):
    native(core, claims(exp=NOW + 300))
    with pytest.raises(InvalidClient, match="300"):
        native(core, claims(exp=NOW + 301))


@pytest.mark.parametrize("ahead,ok", [(0, True), (1, True), (2, True), (3, False), (5, False)])
def test_nexi_iat_tolerance_2s(core, ahead, ok):
    c = claims(iat=NOW + ahead, exp=NOW + ahead + 500)
    if ok:
        nexi(core, c)
    else:
        with pytest.raises(InvalidClient) as e:
            nexi(core, c)
        assert "client's clock is ahead" in e.value.description and e.value.reason == "assertion_iat_future"


def test_nexi_tolerance_is_a_setting(core):
    strict = FixedClock(CoreConfig(issuer=ISSUER, nexi_iat_tolerance=0, nexi_assertion_max_lifetime=300))
    with pytest.raises(InvalidClient):
        nexi(strict, claims(iat=NOW + 1, exp=NOW + 100))
    with pytest.raises(InvalidClient):
        nexi(strict, claims(exp=NOW + 301))
    nexi(core, claims(iat=NOW + 1, exp=NOW + 100))


def test_native_keeps_clock_skew(core):
    native(core, claims(iat=NOW + 8, exp=NOW + 100))
    with pytest.raises(InvalidClient) as e:
        native(core, claims(iat=NOW + 31, exp=NOW + 100))
    assert "clock" not in e.value.description


@pytest.mark.parametrize("name", ["iat", "exp", "nbf"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), True, False, 2**53 + 1, "1900000000"])
def test_numericdates_must_be_finite_numbers(core, name, value):
    with pytest.raises(InvalidClient):
        nexi(core, claims(**{name: value}))
    with pytest.raises(InvalidClient):
        native(core, claims(**{name: value}))


def test_invalid_client_assertion_is_400_invalid_client():
    e = InvalidClientAssertion.of(InvalidClient("client_assertion: x", reason="r"))
    assert (e.status, e.error, e.description, e.reason) == (400, "invalid_client", "client_assertion: x", "r")
    assert isinstance(e, InvalidClient) and InvalidClient("y").status == 401


@pytest.mark.parametrize(
    "c,expected",
    [
        ({"username_merchant": "A@shop.example"}, "a@shop.example"),
        ({"app_username_merchant": "a@shop.example"}, "a@shop.example"),
        ({"username_merchant": "a@shop.example", "app_username_merchant": "A@Shop.example"}, "a@shop.example"),
    ],
)
def test_both_username_claims(c, expected):
    assert enrollment._username(c) == expected


@pytest.mark.parametrize(
    "c",
    [
        {},
        {"username_merchant": "a@shop.example", "app_username_merchant": "b@shop.example"},
        {"app_username_merchant": "not-an-email"},
        {"app_username_merchant": 7},
    ],
)
def test_username_claim_refusals(c):
    with pytest.raises(InvalidRequest):
        enrollment._username(c)


@pytest.mark.parametrize(
    "value,ok",
    [
        ("A1B2-C3D4", True),
        ("x" * 256, True),
        ("x" * 257, False),
        ("", False),
        ("a\x00b", False),
        ("a\nb", False),
        ("a\u202eb", False),
        (12, False),
    ],
)
def test_app_deviceid(value, ok):
    if ok:
        assert enrollment._device_id({"app_deviceid": value}) == value
    else:
        with pytest.raises(InvalidRequest):
            enrollment._device_id({"app_deviceid": value})
    assert enrollment._device_id({}) is None


def test_device_id_travels_in_the_pushed_request():
    req = enrollment.EnrollmentRequest(1, "POS", ("S",), "a@shop.example", "S", "dev-1")
    assert enrollment.EnrollmentRequest.from_dict(req.as_dict()) == req
    old = {k: v for k, v in req.as_dict().items() if k != "device_id"}  # a request pushed before the upgrade
    assert enrollment.EnrollmentRequest.from_dict(old).device_id is None
