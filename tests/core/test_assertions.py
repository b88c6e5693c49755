"""tessera.core.assertions in process: decrypting the nested JWE, verifying the inner JWS with a
bound certificate's key, the RFC 7523 §3 claim rules and the single-use jti (security rows on
assertions). The time rules of the Nexi surface are in test_nexi_assertion_rules.py."""

from __future__ import annotations

import math

import pytest

from tessera.core import assertions
from tessera.core.assertions import AssertionRules, check_assertion_claims, claim_jti, open_nested_assertion
from tessera.errors import InvalidClient
from tests.core.conftest import ISSUER, NOW, make_cert


@pytest.fixture
def app(world):
    client = world.client()
    return world, client, world.cert(client)


def reason(fn, *a, **kw) -> str:
    with pytest.raises(InvalidClient) as err:
        fn(*a, **kw)
    return err.value.reason


def test_open_nested_assertion(app):
    world, client, cert = app
    claims = world.nexi_claims(client)
    got = open_nested_assertion(world.core, client, world.nested(cert, claims))
    assert got.claims == claims and got.header["alg"] == "ES256"
    minimal = world.nested(cert, claims, minimal_headers=True)  # as Nexi's reference backend sends it
    assert open_nested_assertion(world.core, client, minimal).claims == claims


def test_the_preferred_certificate_is_tried_first_and_any_bound_one_verifies(app):
    world, client, cert = app
    second = world.cert(client)
    claims = world.nexi_claims(client)
    assert (
        open_nested_assertion(
            world.core, client, world.nested(cert, claims), preferred_thumbprint=second.thumbprint
        ).claims
        == claims
    )
    keys = assertions.certificate_keys(world.core, client, preferred=second.thumbprint)
    assert len(keys) == 2 and keys[0].public_numbers() == make_pub(second)


def make_pub(cert):
    from cryptography import x509

    return x509.load_pem_x509_certificate(cert.pem).public_key().public_numbers()


def test_unusable_certificates_give_no_key(world):
    client = world.client()
    world.cert(client, revoked_at=NOW - 1)
    world.cert(client, not_before=NOW + 60)
    world.cert(client, not_after=NOW - 1, not_before=NOW - 7200)
    assert assertions.certificate_keys(world.core, client) == []
    signer = make_cert(client.client_id)
    assert (
        reason(open_nested_assertion, world.core, client, world.nested(signer, world.nexi_claims(client)))
        == "assertion_no_key"
    )


def test_decryption_refusals(app):
    world, client, cert = app
    assert reason(open_nested_assertion, world.core, client, None) == "assertion_missing"
    assert reason(open_nested_assertion, world.core, client, "a.b.c.d.e") == "assertion_jwe"
    good = world.nested(cert, world.nexi_claims(client))
    head, key, iv, ct, tag = good.split(".")
    assert reason(assertions.decrypt, world.core, ".".join((head, key, iv, ct, tag[:-2] + "AA"))) == "assertion_jwe"


def test_a_jwe_that_holds_no_ascii_jws(app, monkeypatch):
    world, client, _cert = app
    monkeypatch.setattr(assertions, "decrypt_assertion", lambda *a: b"\xff\xfe")
    assert reason(assertions.decrypt, world.core, "x") == "assertion_jws"


def test_a_signature_by_an_unbound_key_is_refused(app):
    world, client, _cert = app
    stranger = make_cert(client.client_id)
    assert (
        reason(open_nested_assertion, world.core, client, world.nested(stranger, world.nexi_claims(client)))
        == "assertion_jws"
    )


def claims(**kw):
    base = {"iss": "app-1", "sub": "app-1", "aud": ISSUER, "iat": NOW, "exp": NOW + 60, "jti": "j-1"}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(
    "over,why",
    [
        ({"iss": "other"}, "assertion_iss"),
        ({"sub": None}, "assertion_sub"),
        ({"sub": ""}, "assertion_sub"),
        ({"sub": 7}, "assertion_sub"),
        ({"sub": "other"}, "assertion_sub"),
        ({"aud": None}, "assertion_aud"),
        ({"aud": [ISSUER]}, "assertion_aud"),
        ({"aud": ISSUER + "/token"}, "assertion_aud"),
        ({"exp": None}, "assertion_exp"),
        ({"exp": "soon"}, "assertion_exp"),
        ({"exp": True}, "assertion_exp"),
        ({"exp": math.inf}, "assertion_exp"),
        ({"exp": 2**53 + 1}, "assertion_exp"),
        ({"exp": NOW}, "assertion_expired"),
        ({"iat": None}, "assertion_iat"),
        ({"iat": math.nan}, "assertion_iat"),
        ({"iat": NOW + 31}, "assertion_iat_future"),
        ({"nbf": "x"}, "assertion_nbf"),
        ({"nbf": NOW + 31}, "assertion_nbf_future"),
        ({"iat": NOW - 300, "exp": NOW + 1}, "assertion_lifetime"),
        ({"jti": None}, "assertion_jti"),
        ({"jti": ""}, "assertion_jti"),
        ({"jti": 5}, "assertion_jti"),
        ({"jti": "j" * 129}, "assertion_jti"),
    ],
)
def test_claim_refusals_native_rules(world, over, why):
    client = world.client("app-1")
    assert reason(check_assertion_claims, world.core, client, claims(**over), audience=ISSUER) == why


def test_claims_accepted_at_the_edges(world):
    client = world.client("app-1")
    check_assertion_claims(
        world.core, client, claims(aud=ISSUER + "/", iat=NOW + 30, nbf=NOW + 30, exp=NOW + 330), audience=ISSUER
    )
    check_assertion_claims(world.core, client, claims(iat=NOW - 0.5, exp=NOW + 0.5), audience=ISSUER)


def test_nexi_rules_say_the_clock_is_ahead_for_nbf_too(world):
    client = world.client("app-1")
    with pytest.raises(InvalidClient) as err:
        check_assertion_claims(
            world.core, client, claims(nbf=NOW + 3), audience=ISSUER, rules=AssertionRules.nexi(world.core.config)
        )
    assert err.value.reason == "assertion_nbf_future" and "clock is ahead" in err.value.description


def test_a_jti_is_single_use_until_the_assertion_expires(world):
    client = world.client("app-1")
    claim_jti(world.core, client, claims(jti="once"))
    assert reason(claim_jti, world.core, client, claims(jti="once")) == "assertion_replay"
    assert reason(claim_jti, world.core, client, claims(jti="once")) == "assertion_replay"
    events = world.store.list_events(kind="jti_replayed")
    assert len(events) == 1 and events[0].detail["jti"] == "once"  # written once a minute, not per refusal
    other = world.client("app-2")
    claim_jti(world.core, other, claims(jti="once"))  # the jti space is per client
