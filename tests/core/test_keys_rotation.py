"""Key rotation against a live server: ``tessera jwks rotate`` promotes the published next key,
keeps the old one working, and the running server picks the change up by itself."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.nexi_helpers import (
    assert_par_created,
    b64u_decode,
    build_assertion,
    fetch_jwks,
    get_token,
    http,
    par_form,
    par_request,
    verify_server_jwt,
)

pytestmark = pytest.mark.slow

RELOAD_DEADLINE = 30.0  # the server re-reads its keys every ~10 s


def _kid(token: str) -> str:
    return json.loads(b64u_decode(token.split(".")[0]))["kid"]


def _stored(server, use: str) -> dict[str, str]:
    """The shared ring's keys (MobilePay's own ring rotates beside it: test_mobilepay_ring_rotation)."""
    from tessera.core.keys import ring_of

    return {k.kid: k.status for k in server.store.list_server_keys() if k.use == use and ring_of(k) is None}


@pytest.fixture(scope="module")
def rotated(live_server):
    server = live_server
    app = server.new_app()
    merchant = server.new_merchant(app)

    jwks_before = fetch_jwks(server)
    enc_before = _stored(server, "enc")
    sig_before = _stored(server, "sig")
    token_before = get_token(server, app)

    enc = server.cli_json("jwks", "rotate", "--use", "enc")
    sig = server.cli_json("jwks", "rotate", "--use", "sig")

    deadline = time.monotonic() + RELOAD_DEADLINE
    while True:
        jwks_after = fetch_jwks(server)
        token_after = get_token(server, app)
        if jwks_after["keys"][0]["kid"] == enc["current"] and _kid(token_after) == sig["current"]:
            break
        assert time.monotonic() < deadline, "the server did not pick up the rotated keys in time"
        time.sleep(0.5)

    return dict(
        server=server,
        app=app,
        merchant=merchant,
        jwks_before=jwks_before,
        jwks_after=jwks_after,
        enc_before=enc_before,
        sig_before=sig_before,
        enc=enc,
        sig=sig,
        token_before=token_before,
        token_after=token_after,
    )


def test_next_key_was_published_before_rotation(rotated):
    before = rotated["enc_before"]
    current = [k for k, s in before.items() if s == "current"]
    nxt = [k for k, s in before.items() if s == "next"]
    assert len(current) == 1 and len(nxt) == 1
    assert [k["kid"] for k in rotated["jwks_before"]["keys"]][:2] == [current[0], nxt[0]]


def test_enc_rotation_promotes_next_and_keeps_old(rotated):
    enc, before = rotated["enc"], rotated["enc_before"]
    old_current = next(k for k, s in before.items() if s == "current")
    old_next = next(k for k, s in before.items() if s == "next")
    assert enc["current"] == old_next
    assert enc["retired"] == old_current
    assert enc["next"] not in before
    assert enc["retire_at"] > time.time()

    kids = [k["kid"] for k in rotated["jwks_after"]["keys"]]
    assert kids[0] == old_next, "the former next key must now be listed first"
    assert old_current in kids, "the old current key must stay published"
    assert enc["next"] in kids, "a new next key must be published"
    assert len(kids) == len(set(kids))
    for k in rotated["jwks_after"]["keys"]:
        assert k["use"] == "enc" and "d" not in k
    sig_kids = set(_stored(rotated["server"], "sig"))
    assert not sig_kids & set(kids)

    after = _stored(rotated["server"], "enc")
    assert after[old_current] == "retired" and after[old_next] == "current" and after[enc["next"]] == "next"


def _par(rotated, jwks, enc_kid):
    server, app, merchant = rotated["server"], rotated["app"], rotated["merchant"]
    a = build_assertion(server, app, merchant, jwks=jwks, enc_kid=enc_kid)
    assert a.header["kid"] == enc_kid
    with http(server, app) as c:
        return par_request(c, rotated["token_after"], par_form(app, a.token))


def test_assertion_encrypted_to_the_old_key_is_accepted(rotated):
    old = rotated["enc"]["retired"]
    assert_par_created(_par(rotated, rotated["jwks_before"], old))


def test_assertion_encrypted_to_the_new_current_key_is_accepted(rotated):
    assert_par_created(_par(rotated, rotated["jwks_after"], rotated["enc"]["current"]))


def test_assertion_encrypted_to_the_new_next_key_is_accepted(rotated):
    assert_par_created(_par(rotated, rotated["jwks_after"], rotated["enc"]["next"]))


def test_sig_rotation(rotated):
    sig, before = rotated["sig"], rotated["sig_before"]
    assert sig["current"] == next(k for k, s in before.items() if s == "next")
    assert sig["retired"] == next(k for k, s in before.items() if s == "current")
    assert _kid(rotated["token_before"]) == sig["retired"]
    assert _kid(rotated["token_after"]) == sig["current"]
    verify_server_jwt(rotated["server"], rotated["token_before"])
    verify_server_jwt(rotated["server"], rotated["token_after"])


@pytest.mark.parametrize("which", ["token_before", "token_after"])
def test_tokens_signed_before_and_after_sig_rotation_work_at_par(rotated, which):
    server, app, merchant = rotated["server"], rotated["app"], rotated["merchant"]
    a = build_assertion(server, app, merchant, jwks=rotated["jwks_after"])
    with http(server, app) as c:
        assert_par_created(par_request(c, rotated[which], par_form(app, a.token)))


def test_mobilepay_ring_rotation(rotated):
    """``jwks rotate --use sig`` rotates MobilePay's RS256 ring too: its former next key (already
    published at the MobilePay JWKS) is current, the old one stays published, a new next is out."""
    import httpx

    from tessera.core.keys import ring_of

    server = rotated["server"]
    ring = rotated["sig"]["rings"]["mobilepay"]
    stored = {k.kid: k.status for k in server.store.list_server_keys() if ring_of(k) == "mobilepay"}
    assert (
        stored[ring["current"]] == "current" and stored[ring["retired"]] == "retired" and stored[ring["next"]] == "next"
    )
    url = f"https://localhost:{server.port}/integrator-authentication/.well-known/openid-configuration/jwks"
    deadline = time.monotonic() + RELOAD_DEADLINE
    while True:
        kids = [k["kid"] for k in httpx.get(url, verify=server.ssl_context()).json()["keys"]]
        if kids and kids[0] == ring["current"]:
            break
        assert time.monotonic() < deadline, "the server did not pick up the rotated MobilePay ring in time"
        time.sleep(0.5)
    assert {ring["retired"], ring["next"]} <= set(kids)
