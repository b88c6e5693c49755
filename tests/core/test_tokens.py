"""tessera.core.tokens in process: access tokens sealed to their profile and bound to a
certificate, ID tokens, and every refusal of ``verify_access_token`` (the one place that reads an
access token). The per-worker caches of verified tokens are test_access_token_checks.py."""

from __future__ import annotations

import pytest

from tessera.core import refresh, tokens
from tessera.core.profiles import AXEPT, MOBILEPAY, NATIVE, NEXI
from tessera.errors import InvalidToken
from tests.core.conftest import ISSUER, NOW, jwt_claims


def why(world, token, **kw) -> str:
    kw.setdefault("thumbprint", None)
    kw.setdefault("profile", NATIVE)
    with pytest.raises(InvalidToken) as err:
        tokens.verify_access_token(world.core, token, **kw)
    return err.value.reason


def test_an_access_token_carries_its_seal(world):
    issued = tokens.issue_access_token(
        world.core,
        profile=NEXI,
        client_id="c",
        ttl=60,
        scope="a b",
        subject="u",
        thumbprint="tp",
        extra={"x": 1},
        not_before=True,
    )
    c = issued.claims
    assert (c["iss"], c["aud"], c["prf"], c["sub"], c["scope"], c["cnf"], c["x"], c["nbf"]) == (
        ISSUER,
        ISSUER + "/softpos",
        NEXI,
        "u",
        "a b",
        {"x5t#S256": "tp"},
        1,
        NOW,
    )
    assert jwt_claims(issued.token) == c and issued.expires_in == 60 and c["exp"] == NOW + 60


def test_the_audience_may_only_widen(world):
    mp = world.core.config.seal(MOBILEPAY).audience
    assert tokens.issue_access_token(world.core, profile=MOBILEPAY, client_id="c", ttl=1, audience=[mp, "x"]).claims[
        "aud"
    ] == [mp, "x"]
    with pytest.raises(ValueError, match="must hold"):
        tokens.issue_access_token(world.core, profile=MOBILEPAY, client_id="c", ttl=1, audience="elsewhere")
    with pytest.raises(ValueError):
        tokens.issue_access_token(world.core, profile=MOBILEPAY, client_id="c", ttl=1, audience=["elsewhere"])


def test_an_id_token(world):
    c = jwt_claims(tokens.issue_id_token(world.core, client_id="c", subject="u", ttl=60, extra={"nonce": "n"}))
    assert (c["aud"], c["azp"], c["auth_time"], c["exp"], c["nonce"]) == ("c", "c", NOW, NOW + 60, "n")
    assert "nonce" not in jwt_claims(tokens.issue_id_token(world.core, client_id="c", subject="u", ttl=60))


def test_refusals(world):
    client = world.client()
    cert = world.cert(client)
    plain = tokens.issue_access_token(world.core, profile=NATIVE, client_id=client.client_id, ttl=60).token
    bound = tokens.issue_access_token(
        world.core, profile=NATIVE, client_id=client.client_id, ttl=60, thumbprint=cert.thumbprint
    ).token
    assert (
        tokens.verify_access_token(world.core, plain, thumbprint=None, profile=NATIVE)["client_id"] == client.client_id
    )
    assert why(world, None) == "token_missing"
    assert why(world, "x.y.z") == "token_invalid"
    assert why(world, plain, profile=NEXI) == "token_foreign_profile"
    assert why(world, plain, bound=True) == "token_unbound"
    assert why(world, bound) == "token_binding_mismatch"
    assert tokens.verify_access_token(world.core, bound, thumbprint=cert.thumbprint, profile=NATIVE)
    world.clock.advance(60)
    assert why(world, plain) == "token_expired"


def test_revocations(world):
    client = world.client()
    issued = tokens.issue_access_token(world.core, profile=NATIVE, client_id=client.client_id, ttl=600)
    assert tokens.verify_access_token(world.core, issued.token, thumbprint=None, profile=NATIVE, check_revoked=False)
    tokens.revoke_token(world.core, issued.jti, client.client_id, NOW + 600)
    tokens.revoke_token(world.core, issued.jti, client.client_id, NOW + 600)  # twice: no error
    assert why(world, issued.token) == "token_revoked"
    assert tokens.verify_access_token(world.core, issued.token, thumbprint=None, profile=NATIVE, check_revoked=False)
    family, _ = refresh.start_family(world.core, client.client_id, lifetime=600)
    fam = tokens.issue_access_token(
        world.core, profile=NATIVE, client_id=client.client_id, ttl=600, extra={"fam": family}
    )
    tokens.verify_access_token(world.core, fam.token, thumbprint=None, profile=NATIVE)
    refresh.revoke_family(world.core, family, client.client_id, cause="test")
    assert why(world, fam.token) == "token_family_revoked"
    gone = world.client(status="revoked")
    theirs = tokens.issue_access_token(world.core, profile=NATIVE, client_id=gone.client_id, ttl=600).token
    assert why(world, theirs) == "token_client_revoked"
    axept = tokens.issue_access_token(world.core, profile=AXEPT, client_id="axept-merchant-1", ttl=600).token
    assert tokens.verify_access_token(world.core, axept, thumbprint=None, profile=AXEPT)  # names a key, not a client


def test_the_revoked_marks_are_kept_in_memory_with_exact_notices(world):
    client = world.client()
    issued = tokens.issue_access_token(world.core, profile=NATIVE, client_id=client.client_id, ttl=600)
    assert not tokens.access_token_revoked(world.core, issued.jti)
    assert world.core.revoked_marks  # the memory store announces its marks: kept per worker
    tokens.revoke_token(world.core, issued.jti, client.client_id, NOW + 600)
    assert tokens.access_token_revoked(world.core, issued.jti)  # the announced write is seen at once


def test_a_token_with_an_unreadable_header_is_verified_every_time(world):
    core = world.core
    tokens._remember(core, core.keys.get(), "!!!.x.y", {"a": 1})
    assert "!!!.x.y" not in core.verified_tokens
