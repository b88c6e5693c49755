"""tessera.core.profiles: each profile's seal (issuer, audience, name, environment) and what it
honours; the default issuers and audiences."""

from __future__ import annotations

from tessera.core import profiles as p

ISSUER = "https://as.example"


def test_default_audiences_and_issuers():
    aud = p.default_audiences(
        ISSUER, nexi_prefix="/softpos", mobilepay_prefix="/mp", b2binpay_prefix="/b2b", axept_prefix="/axept"
    )
    assert aud == {
        p.NATIVE: ISSUER,
        p.NEXI: ISSUER + "/softpos",
        p.MOBILEPAY: ISSUER + "/mp/resources",
        p.AXEPT: p.AXEPT_AUDIENCE,
        p.B2BINPAY: ISSUER + "/b2b",
    }
    iss = p.default_issuers(ISSUER, mobilepay_prefix="/mp")
    assert iss[p.MOBILEPAY] == ISSUER + "/mp" and {iss[n] for n in p.PROFILES if n != p.MOBILEPAY} == {ISSUER}


def test_a_seal_names_and_holds_only_its_own_tokens():
    seal = p.ProfileSeal(p.NEXI, ISSUER, ISSUER + "/softpos", "staging")
    claims = {**seal.claims(), "aud": ISSUER + "/softpos"}
    assert claims["prf"] == p.NEXI and claims["env"] == "staging"
    assert seal.names(claims) and seal.holds(claims)
    assert seal.holds({**claims, "aud": ["other", ISSUER + "/softpos"]})
    assert not seal.holds({**claims, "aud": ISSUER}) and not seal.holds({**claims, "aud": ["other"]})
    assert not seal.holds({**claims, "env": "production"}) and not seal.names({**claims, "prf": p.NATIVE})
    assert not seal.names({**claims, "iss": "https://evil.example"})
