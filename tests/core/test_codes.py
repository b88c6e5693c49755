"""tessera.core.codes in process: a code is single use, short-lived, bound to its client and
redirect_uri, needs its PKCE verifier; a replay revokes what the code issued, whichever order
the replay and the winning exchange run in (security rows on codes)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from tessera.core import codes, refresh, tokens
from tessera.core.models import Artifact
from tessera.core.profiles import NATIVE
from tessera.core.secrets import sha256_key
from tessera.errors import InvalidGrant, InvalidRequest, InvalidToken

KINDS = codes.CodeKinds("test_code", "test_code_replay")
VERIFIER = "v" * 43
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
REDIRECT = "https://app.example/cb"


def put_code(world, client_id: str, code: str = "the-code", *, challenge: str | None = CHALLENGE, ttl: int = 60) -> str:
    params = {"redirect_uri": REDIRECT, "scope": "openid", "code_challenge": challenge}
    world.store.put_artifact(
        Artifact(KINDS.code, sha256_key(code), client_id, {"params": params, "username": "u"}, world.core.now() + ttl)
    )
    return code


def redeem(world, client_id, code="the-code", *, redirect_uri=REDIRECT, verifier=VERIFIER, pkce_required=False):
    return codes.redeem(
        world.core,
        KINDS,
        client_id,
        code=code,
        redirect_uri=redirect_uri,
        code_verifier=verifier,
        pkce_required=pkce_required,
    )


def reason_of(fn, *args, **kw) -> str:
    with pytest.raises((InvalidGrant, InvalidRequest)) as e:
        fn(*args, **kw)
    return e.value.reason


def test_pkce_matches():
    assert codes.pkce_matches(VERIFIER, CHALLENGE)
    assert not codes.pkce_matches("w" * 43, CHALLENGE)


def test_a_good_code_is_redeemed_once(world):
    client = world.client()
    put_code(world, client.client_id)
    key, won = redeem(world, client.client_id)
    assert key == sha256_key("the-code") and won.consumed_at == world.core.now()
    assert reason_of(redeem, world, client.client_id) == "code_replayed"


def test_refusals_before_anything_is_used(world):
    client = world.client()
    put_code(world, client.client_id)
    assert reason_of(redeem, world, client.client_id, None) == "code_missing"
    assert reason_of(redeem, world, client.client_id, "not-a-code") == "code_unknown"
    assert reason_of(redeem, world, "another-client") == "code_foreign"
    assert reason_of(redeem, world, client.client_id, redirect_uri=REDIRECT + "/") == "code_redirect_uri"
    assert reason_of(redeem, world, client.client_id, verifier=None) == "pkce_verifier_missing"
    redeem(world, client.client_id)  # none of those spent it


def test_expired_code(world):
    client = world.client()
    put_code(world, client.client_id, ttl=60)
    world.clock.advance(60)
    assert reason_of(redeem, world, client.client_id) == "code_expired"


@pytest.mark.parametrize("verifier", ["w" * 43, "short", "v" * 42 + "!"])
def test_a_wrong_verifier_burns_the_code(world, verifier):
    client = world.client()
    put_code(world, client.client_id)
    assert reason_of(redeem, world, client.client_id, verifier=verifier) == "pkce_mismatch"
    assert reason_of(redeem, world, client.client_id) == "code_replayed"


def test_pkce_required_without_a_challenge_and_an_unexpected_verifier(world):
    client = world.client()
    put_code(world, client.client_id, "c1", challenge=None)
    assert (
        reason_of(redeem, world, client.client_id, "c1", verifier=None, pkce_required=True) == "pkce_verifier_missing"
    )
    assert reason_of(redeem, world, client.client_id, "c1", pkce_required=True) == "pkce_mismatch"
    put_code(world, client.client_id, "c2", challenge=None)
    assert reason_of(redeem, world, client.client_id, "c2") == "pkce_unexpected"
    put_code(world, client.client_id, "c3", challenge=None)
    assert redeem(world, client.client_id, "c3", verifier=None)[1].client_id == client.client_id


def _issue(world, client_id, family=None):
    return tokens.issue_access_token(
        world.core, profile=NATIVE, client_id=client_id, ttl=600, extra={"fam": family} if family else None
    )


def test_a_replay_after_the_exchange_revokes_the_token_and_the_family(world):
    client = world.client()
    put_code(world, client.client_id)
    key, won = redeem(world, client.client_id)
    family, _ = refresh.start_family(world.core, client.client_id, lifetime=3600)
    issued = _issue(world, client.client_id, family)
    assert codes.record_issued(
        world.core, KINDS, key, won, jti=issued.jti, exp=issued.claims["exp"], family=family, extra={"note": 1}
    )
    tokens.verify_access_token(world.core, issued.token, thumbprint=None, profile=NATIVE)
    assert reason_of(redeem, world, client.client_id) == "code_replayed"
    with pytest.raises(InvalidToken) as e:
        tokens.verify_access_token(world.core, issued.token, thumbprint=None, profile=NATIVE)
    assert e.value.reason == "token_revoked"
    assert refresh.family_revoked(world.core, family)
    events = world.store.list_events(kind="authorization_code_replayed")
    assert [e.detail["revoked_jti"] for e in events] == [issued.jti]
    assert reason_of(redeem, world, client.client_id) == "code_replayed"  # a second replay: the marker is there


def test_a_replay_racing_the_exchange_revokes_what_it_issues_next(world):
    """The replay lands between the winner's consume and its record: the winner finds the marker."""
    client = world.client()
    put_code(world, client.client_id)
    key, won = redeem(world, client.client_id)
    assert reason_of(redeem, world, client.client_id) == "code_replayed"  # nothing issued yet to revoke
    issued = _issue(world, client.client_id)
    assert not codes.record_issued(world.core, KINDS, key, won, jti=issued.jti, exp=issued.claims["exp"])
    with pytest.raises(InvalidToken):
        tokens.verify_access_token(world.core, issued.token, thumbprint=None, profile=NATIVE)


def test_a_consume_lost_to_a_concurrent_exchange_is_a_replay(world, monkeypatch):
    """Two exchanges pass the checks together; the store lets one consume: the other is a replay."""
    client = world.client()
    put_code(world, client.client_id)
    store = world.store
    real = store.consume

    def lose(kind, key, now):  # the other exchange consumed it first
        real(kind, key, now)
        return None

    monkeypatch.setattr(store, "consume", lose)
    assert reason_of(redeem, world, client.client_id) == "code_replayed"
    assert store.get_artifact(KINDS.replay, sha256_key("the-code")) is not None
