"""tessera.core.refresh in process: rotation in one unit of work, reuse detection that revokes the
family, the grace window, the family's own lifetime, the profile seal, and the event-loop
variant (security rows on refresh)."""

from __future__ import annotations

import asyncio

import pytest

from tessera.core import refresh
from tessera.core.profiles import B2BINPAY, NATIVE
from tessera.errors import InvalidGrant
from tests.core.conftest import jwt_claims


def issue(world, client, **kw):
    kw.setdefault("ttl", 600)
    return refresh.issue_refresh(
        world.core, profile=NATIVE, client_id=client.client_id, subject="u@x.example", scope="openid", **kw
    )


def rotate(world, token, client_id, **kw):
    return refresh.rotate_refresh(world.core, token, profile=NATIVE, client_id=client_id, ttl=600, **kw)


def why(fn, *a, **kw) -> str:
    with pytest.raises(InvalidGrant) as err:
        fn(*a, **kw)
    return err.value.reason


def test_issue_and_rotate(world):
    client = world.client()
    first = issue(world, client, data={"extra": 1})
    claims = jwt_claims(first.token)
    assert (claims["prf"], claims["fam"], claims["jti"], claims["exp"]) == (
        NATIVE,
        first.family,
        first.jti,
        first.expires_at,
    )
    grant, new = rotate(world, first.token, client.client_id)
    assert (grant.client_id, grant.subject, grant.scope, grant.family, grant.jti) == (
        client.client_id,
        "u@x.example",
        "openid",
        first.family,
        first.jti,
    )
    assert grant.data["extra"] == 1 and new.family == first.family and new.jti != first.jti
    grant2, _ = rotate(world, new.token, None)  # the owner is the token's when no client is named
    assert grant2.jti == new.jti


def test_a_token_never_outlives_its_family(world):
    client = world.client()
    family, expires = refresh.start_family(world.core, client.client_id, lifetime=100)
    rt = issue(world, client, ttl=600, family=family, family_expires_at=expires)
    assert rt.expires_at == expires == world.core.now() + 100
    own = issue(world, client, ttl=50, family_ttl=500)
    assert own.expires_at == world.core.now() + 50
    grant, _ = rotate(world, own.token, client.client_id)
    assert grant.family_expires_at == world.core.now() + 500


def test_reuse_revokes_the_family_and_records_why(world):
    client = world.client()
    first = issue(world, client)
    _, second = rotate(world, first.token, client.client_id)
    assert why(rotate, world, first.token, client.client_id) == "refresh_reused"
    assert refresh.family_revoked(world.core, first.family)
    assert why(rotate, world, second.token, client.client_id) == "refresh_family_revoked"
    causes = [e.detail["cause"] for e in world.store.list_events(kind="refresh_family_revoked")]
    assert causes == ["refresh_reused"]  # revoking again records nothing


def test_an_unknown_token_of_ours_is_suspicious(world):
    """Signed by us, unexpired, but no row: "rendered suspicious" (B2BINPAY): the family is revoked."""
    client = world.client()
    family, _ = refresh.start_family(world.core, client.client_id, lifetime=600)
    now = world.core.now()
    token = refresh._sign(world.core, NATIVE, client.client_id, "never-stored", family, now, now + 600)
    assert why(rotate, world, token, client.client_id) == "refresh_reused"
    assert [e.detail["cause"] for e in world.store.list_events(kind="refresh_family_revoked")] == ["refresh_unknown"]


def test_grace_window(world):
    client = world.client()
    first = issue(world, client)
    rotate(world, first.token, client.client_id, grace=5)
    world.clock.advance(5)
    with pytest.raises(refresh.RefreshRetry) as retry:
        rotate(world, first.token, client.client_id, grace=5)
    assert retry.value.artifact.key == first.jti
    world.clock.advance(1)
    assert why(rotate, world, first.token, client.client_id, grace=5) == "refresh_reused"


def test_foreign_client_and_inactive_client_revoke_the_family(world):
    client, other = world.client(), world.client()
    first = issue(world, client)
    assert why(rotate, world, first.token, other.client_id) == "refresh_foreign"
    assert refresh.family_revoked(world.core, first.family)
    gone = world.client()
    rt = issue(world, gone)
    world.store.set_client_status(gone.client_id, "revoked")
    assert why(rotate, world, rt.token, gone.client_id) == "client_revoked"
    assert refresh.family_revoked(world.core, rt.family)


def test_invalid_expired_and_foreign_profile_tokens(world):
    client = world.client()
    assert why(rotate, world, None, client.client_id) == "refresh_missing"
    assert why(rotate, world, "garbage", client.client_id) == "refresh_invalid"
    b2b = refresh.issue_refresh(
        world.core, profile=B2BINPAY, client_id=client.client_id, subject="s", scope="", ttl=600
    )
    assert why(rotate, world, b2b.token, client.client_id) == "refresh_foreign_profile"
    assert not refresh.family_revoked(world.core, b2b.family)  # refused before anything is touched
    rt = issue(world, client, ttl=60)
    world.clock.advance(60)
    assert why(rotate, world, rt.token, client.client_id) in ("refresh_expired", "refresh_invalid")


def test_an_exp_that_is_not_an_integer_is_invalid(world, monkeypatch):
    client = world.client()
    rt = issue(world, client)
    real = refresh.verify_own_jwt
    monkeypatch.setattr(refresh, "verify_own_jwt", lambda *a, **k: {**real(*a, **k), "exp": float(rt.expires_at)})
    assert why(rotate, world, rt.token, client.client_id) == "refresh_invalid"


def test_family_revoked_when_gone(world):
    assert refresh.family_revoked(world.core, "no-such-family")
    refresh.revoke_family(world.core, "no-such-family", None, cause="test")  # still recorded
    assert world.store.list_events(kind="refresh_family_revoked")[0].detail == {
        "family": "no-such-fami",
        "cause": "test",
    }


@pytest.mark.parametrize("remote", [False, True], ids=["on-the-loop", "in-the-pool"])
def test_the_rotation_steps_on_an_event_loop_keep_the_rules(world, remote):
    """The web layer's rotation (tessera.web.dbcall ``FlowRunner.rotate``: the steps of
    ``rotate_refresh``, each where it costs least) gives the same answers and refusals."""
    from tessera.web.dbcall import FlowRunner

    runner = FlowRunner(remote=remote)
    client = world.client()
    first = issue(world, client)

    async def go(token, client_id):
        plan = refresh.plan_rotation(world.core, token, profile=NATIVE, client_id=client_id, ttl=600)
        done = await runner.rotate(world.core, plan)
        return refresh.finish_rotation(world.core, plan, done)

    assert world.core.caps.rotation is None  # the memory store: rotate(), through the runner
    grant, new = asyncio.run(go(first.token, client.client_id))
    assert grant.jti == first.jti and new.family == first.family
    with pytest.raises(InvalidGrant) as err:  # used: settle_lost revokes the family
        asyncio.run(go(first.token, client.client_id))
    assert err.value.reason == "refresh_reused"
    with pytest.raises(InvalidGrant) as err:  # the successor died with its family
        asyncio.run(go(new.token, client.client_id))
    assert err.value.reason == "refresh_family_revoked"
    second = issue(world, client)
    with pytest.raises(InvalidGrant) as err:  # a planned refusal: another client's token
        asyncio.run(go(second.token, world.client().client_id))
    assert err.value.reason == "refresh_foreign"
    assert world.core.store.get_artifact(refresh.REFRESH_KIND, second.jti).consumed_at is None
