"""tessera.core.flows.native in process: authorization requests, the token grants (codes with
PKCE, client credentials, refresh with rotation, reuse detection and the grace window),
introspection, revocation and userinfo. A real SQLite store, the server's keys, a fixed clock."""

from __future__ import annotations

import base64
import hashlib
from types import SimpleNamespace

import pytest

from tessera.core import authorize, refresh, tokens
from tessera.core.client_auth import AuthenticatedClient
from tessera.core.flows import native
from tessera.core.profiles import B2BINPAY, NATIVE
from tessera.errors import InvalidGrant, InvalidRequest, InvalidScope, InvalidToken, UnauthorizedClient
from tests.core.conftest import KEK, PASSWORD, jwt_claims

REDIRECT = "https://app.example/cb"
VERIFIER = "n" * 64
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
ALL_GRANTS = ("authorization_code", "client_credentials", "refresh_token")


@pytest.fixture
def app(world):
    client = world.client(redirect_uris=(REDIRECT,), scope="openid email payments", grant_types=ALL_GRANTS)
    return world, client, AuthenticatedClient(client, "client_secret_basic")


def query(**over):
    q = {
        "client_id": None,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid email",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        "state": "s1",
        "nonce": "n1",
    }
    q.update(over)
    return {k: v for k, v in q.items() if v is not None}


def code_for(world, client, **over) -> str:
    req = native.check_authorization_request(world.core, client, query(**over))
    pushed = native.push(world.core, client, req)
    assert pushed.request_uri.startswith(native.REQUEST_URI_PREFIX)
    e = world.merchant(client)
    redirect = authorize.login(
        world.core,
        client.client_id,
        pushed.request_uri,
        e.username,
        PASSWORD,
        par_kind=native.PAR_KIND,
        code_kind=native.CODE_KIND,
    )
    return redirect.split("code=")[1].split("&")[0]


def exchange(world, auth, code, **kw):
    kw.setdefault("redirect_uri", REDIRECT)
    kw.setdefault("code_verifier", VERIFIER)
    return native.authorization_code(world.core, auth, code=code, refresh_ttl=3600, **kw)


def do_refresh(world, auth, token, *, scope=None, grace=0):
    return native.refresh_token(
        world.core, auth, token=token, scope=scope, refresh_ttl=3600, grace=grace, kek=KEK, retry_wait=0.2
    )


# --- scope and authorization requests ----------------------------------------------------------------


def test_check_scope(app):
    _world, client, _auth = app
    assert native.check_scope(client, None) == "openid email payments"
    assert native.check_scope(client, "  ") == "openid email payments"
    assert native.check_scope(client, "payments openid") == "payments openid"
    for scope, why in (
        ("openid  email", "scope_syntax"),
        ("openid openid", "scope_syntax"),
        ('a"b', "scope_syntax"),
        ("admin", "scope_not_allowed"),
    ):
        with pytest.raises(InvalidScope) as err:
            native.check_scope(client, scope)
        assert err.value.reason == why


@pytest.mark.parametrize(
    "over,kind,why",
    [
        ({"request_uri": "urn:x"}, InvalidRequest, "par_request_uri"),
        ({"request": "jwt"}, InvalidRequest, "request_object"),
        ({"state": "s" * 2049}, InvalidRequest, "param_too_long"),
        ({"client_id": "other"}, InvalidRequest, "client_id_mismatch"),
        ({"redirect_uri": "https://evil.example/cb"}, InvalidRequest, "redirect_uri_mismatch"),
        ({"response_type": None}, InvalidRequest, "response_type_missing"),
        ({"response_type": "token"}, native.UnsupportedResponseType, "response_type"),
        ({"scope": "admin"}, InvalidScope, "scope_not_allowed"),
        ({"code_challenge": None, "code_challenge_method": None}, InvalidRequest, "pkce_missing"),
        ({"code_challenge_method": "plain"}, InvalidRequest, "pkce_plain"),
        ({"response_mode": "fragment"}, InvalidRequest, "response_mode"),
    ],
)
def test_authorization_request_refusals(app, over, kind, why):
    world, client, _auth = app
    with pytest.raises(kind) as err:
        native.check_authorization_request(world.core, client, query(**over))
    assert err.value.reason == why


def test_authorization_request_needs_the_grant(world):
    client = world.client(redirect_uris=(REDIRECT,), scope="openid")
    with pytest.raises(UnauthorizedClient):
        native.check_authorization_request(world.core, client, query(scope="openid"))


def test_an_authorization_request_keeps_the_nonce(app):
    world, client, _auth = app
    req = native.check_authorization_request(
        world.core, client, query(client_id=client.client_id, response_mode="query")
    )
    assert req.nonce == "n1" and req.extra() == {"native": {"nonce": "n1", "response_type": "code"}}


# --- grants ------------------------------------------------------------------------------------------


def test_client_credentials(app):
    world, client, auth = app
    body = native.client_credentials(world.core, auth, scope="payments", ttl=600)
    assert body["scope"] == "payments" and body["expires_in"] == 600 and "refresh_token" not in body
    bare = world.client(grant_types=("client_credentials",))
    body = native.client_credentials(world.core, AuthenticatedClient(bare, "client_secret_post"), scope=None, ttl=600)
    assert "scope" not in body
    with pytest.raises(UnauthorizedClient):
        native.client_credentials(world.core, AuthenticatedClient(world.client(grant_types=()), "x"), scope=None, ttl=1)


def test_code_exchange_with_refresh_and_id_token(app):
    world, client, auth = app
    body = exchange(world, auth, code_for(world, client))
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "refresh_token", "id_token"}
    idt = jwt_claims(body["id_token"])
    assert idt["nonce"] == "n1" and idt["email_verified"] is True and idt["aud"] == client.client_id
    at = tokens.verify_access_token(world.core, body["access_token"], thumbprint=None, profile=NATIVE)
    assert at["fam"] == jwt_claims(body["refresh_token"])["fam"]


def test_code_exchange_without_refresh_grant_nonce_or_openid(world):
    client = world.client(redirect_uris=(REDIRECT,), scope="openid payments", grant_types=("authorization_code",))
    auth = AuthenticatedClient(client, "client_secret_basic")
    body = exchange(world, auth, code_for(world, client, scope="openid", nonce=None))
    assert "refresh_token" not in body and "nonce" not in jwt_claims(body["id_token"])
    assert "email" not in jwt_claims(body["id_token"])
    body = exchange(world, auth, code_for(world, client, scope="payments"))
    assert "id_token" not in body


def test_code_exchange_refusals(app):
    world, client, auth = app
    code = code_for(world, client)
    for kw, why in (({"code": None}, "code_missing"), ({"redirect_uri": None}, "redirect_uri_missing")):
        with pytest.raises(InvalidRequest) as err:
            native.authorization_code(
                world.core,
                auth,
                refresh_ttl=1,
                **{"code": code, "redirect_uri": REDIRECT, "code_verifier": VERIFIER, **kw},
            )
        assert err.value.reason == why
    body = exchange(world, auth, code)
    with pytest.raises(InvalidGrant) as err:
        exchange(world, auth, code)
    assert err.value.reason == "code_replayed"
    with pytest.raises(InvalidToken):  # the replay revoked the access token and its family
        tokens.verify_access_token(world.core, body["access_token"], thumbprint=None, profile=NATIVE)
    with pytest.raises(InvalidGrant):
        do_refresh(world, auth, body["refresh_token"])


def test_a_replay_racing_the_native_exchange_fails_it(app, monkeypatch):
    world, client, auth = app
    code = code_for(world, client)
    real = native.codes.record_issued

    def replay_first(core, kinds, key, won, **kw):
        from tessera.core.codes import revoke_issued

        revoke_issued(core, kinds, won)  # the replay's marker lands before the winner records
        return real(core, kinds, key, won, **kw)

    monkeypatch.setattr(native.codes, "record_issued", replay_first)
    with pytest.raises(InvalidGrant) as err:
        exchange(world, auth, code)
    assert err.value.reason == "code_replayed"


def test_refresh_rotates_and_narrows_scope_for_the_access_token_only(app):
    world, client, auth = app
    first = exchange(world, auth, code_for(world, client))
    second = do_refresh(world, auth, first["refresh_token"], scope="email")
    assert second["scope"] == "email" and second["refresh_token"] != first["refresh_token"]
    third = do_refresh(world, auth, second["refresh_token"], scope=" ")
    assert third["scope"] == "openid email"
    with pytest.raises(InvalidScope):
        do_refresh(world, auth, third["refresh_token"], scope="payments")  # wider than the grant
    other = exchange(world, auth, code_for(world, client))
    with pytest.raises(InvalidScope):
        do_refresh(world, auth, other["refresh_token"], scope="email  openid")  # an empty scope value


def test_a_refused_wider_scope_leaves_the_refresh_token_usable(app):
    """The scope is checked before the token is used: the client's retry with the same token
    (now asking for no more than its grant) is no reuse, and the family lives on."""
    world, client, auth = app
    first = exchange(world, auth, code_for(world, client))
    with pytest.raises(InvalidScope) as err:
        do_refresh(world, auth, first["refresh_token"], scope="openid payments")  # payments: not granted
    assert err.value.reason == "scope_widened"
    again = do_refresh(world, auth, first["refresh_token"], scope="openid")
    assert again["scope"] == "openid"
    tokens.verify_access_token(world.core, again["access_token"], thumbprint=None, profile=NATIVE)


def test_refresh_reuse_revokes_the_family(app):
    world, client, auth = app
    first = exchange(world, auth, code_for(world, client))
    second = do_refresh(world, auth, first["refresh_token"])
    with pytest.raises(InvalidGrant) as err:
        do_refresh(world, auth, first["refresh_token"])
    assert err.value.reason == "refresh_reused"
    with pytest.raises(InvalidGrant) as err:
        do_refresh(world, auth, second["refresh_token"])
    assert err.value.reason == "refresh_family_revoked"
    with pytest.raises(InvalidToken):
        tokens.verify_access_token(world.core, second["access_token"], thumbprint=None, profile=NATIVE)


def test_refresh_refusals(app):
    world, client, auth = app
    with pytest.raises(InvalidRequest):
        do_refresh(world, auth, None)
    with pytest.raises(UnauthorizedClient):
        do_refresh(world, AuthenticatedClient(world.client(grant_types=("authorization_code",)), "x"), "t")
    b2b = refresh.issue_refresh(
        world.core, profile=B2BINPAY, client_id=client.client_id, subject="s", scope="", ttl=600
    )
    with pytest.raises(InvalidGrant) as err:
        do_refresh(world, auth, b2b.token)
    assert err.value.reason == "refresh_foreign_profile"


def test_a_retry_inside_the_grace_window_gets_the_first_answer(app):
    world, client, auth = app
    first = exchange(world, auth, code_for(world, client))
    answer = do_refresh(world, auth, first["refresh_token"], grace=10)
    world.clock.advance(10)
    assert do_refresh(world, auth, first["refresh_token"], grace=10) == answer
    world.clock.advance(1)
    with pytest.raises(InvalidGrant) as err:
        do_refresh(world, auth, first["refresh_token"], grace=10)
    assert err.value.reason == "refresh_reused"


def test_a_retry_whose_answer_never_comes_is_refused(app):
    world, client, auth = app
    first = exchange(world, auth, code_for(world, client))
    do_refresh(world, auth, first["refresh_token"])  # grace 0: no answer kept
    jti = jwt_claims(first["refresh_token"])["jti"]
    art = world.store.get_artifact(refresh.REFRESH_KIND, jti)
    with pytest.raises(InvalidGrant) as err:
        native._replay_answer(world.core, art, KEK, 0.1)
    assert err.value.reason == "refresh_retry_unanswered"
    bad = SimpleNamespace(key=jti, data={"answer": "v2.xyz"})
    with pytest.raises(InvalidGrant):
        native._replay_answer(world.core, bad, KEK, 0.0)
    sealed = native._seal(KEK, jti, {"a": 1})
    with pytest.raises(InvalidGrant):  # sealed for another token: the tag does not match
        native._replay_answer(world.core, SimpleNamespace(key="other", data={"answer": sealed}), KEK, 0.0)
    assert native._open(KEK, jti, sealed) == {"a": 1}


def test_grants_registry_and_policy(app):
    world, client, auth = app
    assert native.GRANT_TYPES == tuple(native.GRANTS) and native.GRANTS["refresh_token"].blocking
    policy = native.TokenPolicy.from_settings(
        SimpleNamespace(refresh_token_ttl=60, refresh_grace_seconds=0, kek_bytes=lambda: KEK)
    )
    code = code_for(world, client)
    body = native.GRANTS["authorization_code"].handle(
        world.core,
        native.TokenRequest("authorization_code", auth, code=code, redirect_uri=REDIRECT, code_verifier=VERIFIER),
        policy,
    )
    again = native.GRANTS["refresh_token"].handle(
        world.core, native.TokenRequest("refresh_token", auth, refresh_token=body["refresh_token"]), policy
    )
    assert "refresh_token" in again
    cc = native.GRANTS["client_credentials"].handle(world.core, native.TokenRequest("client_credentials", auth), policy)
    assert cc["expires_in"] == world.core.config.access_token_ttl


# --- introspection, revocation, userinfo ----------------------------------------------------------------


def test_introspection(app):
    world, client, auth = app
    body = exchange(world, auth, code_for(world, client))
    at = native.introspect(world.core, client, body["access_token"])
    assert at["active"] and at["token_type"] == "Bearer" and at["scope"] == "openid email"
    rt = native.introspect(world.core, client, body["refresh_token"], "refresh_token")
    assert rt["active"] and rt["token_type"] == "refresh_token" and rt["scope"] == "openid email"
    other = world.client()
    assert native.introspect(world.core, other, body["access_token"]) == {"active": False}
    assert native.introspect(world.core, client, "not-a-token") == {"active": False}
    with pytest.raises(InvalidRequest):
        native.introspect(world.core, client, "")
    do_refresh(world, auth, body["refresh_token"])
    assert native.introspect(world.core, client, body["refresh_token"]) == {"active": False}  # used
    world.clock.advance(world.core.config.access_token_ttl)
    assert native.introspect(world.core, client, body["access_token"]) == {"active": False}  # expired


def test_introspection_of_revoked_and_unbound_tokens(app):
    world, client, auth = app
    body = exchange(world, auth, code_for(world, client))
    cc = native.client_credentials(world.core, auth, scope=None, ttl=600)["access_token"]
    native.revoke(world.core, client, cc)
    assert native.introspect(world.core, client, cc) == {"active": False}
    refresh.revoke_family(world.core, jwt_claims(body["refresh_token"])["fam"], client.client_id, cause="test")
    assert native.introspect(world.core, client, body["access_token"]) == {"active": False}
    assert native.introspect(world.core, client, body["refresh_token"]) == {"active": False}
    cert = world.cert(client)
    bound = tokens.issue_access_token(
        world.core, profile=NATIVE, client_id=client.client_id, ttl=600, thumbprint=cert.thumbprint
    ).token
    assert native.introspect(world.core, client, bound)["cnf"] == {"x5t#S256": cert.thumbprint}
    world.store.revoke_certificate(cert.serial, world.core.now())
    assert native.introspect(world.core, client, bound) == {"active": False}


def test_introspection_turns_a_scope_list_into_one_string(app):
    world, client, _auth = app
    listed = tokens.issue_access_token(
        world.core, profile=NATIVE, client_id=client.client_id, ttl=600, scope=["a", "b"]
    ).token
    assert native.introspect(world.core, client, listed)["scope"] == "a b"


def test_revocation(app):
    world, client, auth = app
    body = exchange(world, auth, code_for(world, client))
    other = world.client()
    with pytest.raises(InvalidRequest) as err:
        native.revoke(world.core, other, body["access_token"])
    assert err.value.reason == "revoke_foreign"
    with pytest.raises(InvalidRequest):
        native.revoke(world.core, client, None)
    native.revoke(world.core, client, "garbage")  # unknown tokens are no error
    native.revoke(world.core, client, body["refresh_token"], "refresh_token")
    with pytest.raises(InvalidToken):  # the family took its access token with it
        tokens.verify_access_token(world.core, body["access_token"], thumbprint=None, profile=NATIVE)


def test_userinfo(app):
    world, client, auth = app
    body = exchange(world, auth, code_for(world, client))
    info = native.userinfo(world.core, body["access_token"], thumbprint=None)
    assert info["email"] == info["sub"] and info["email_verified"]
    cc = native.client_credentials(world.core, auth, scope="email", ttl=600)["access_token"]
    assert native.userinfo(world.core, cc, thumbprint=None) == {"sub": client.client_id}
    with pytest.raises(InvalidToken):
        native.userinfo(world.core, None, thumbprint=None)


def test_own_claims_refuses_tokens_without_an_integer_exp(app, monkeypatch):
    world, client, _auth = app
    token = tokens.issue_access_token(world.core, profile=NATIVE, client_id=client.client_id, ttl=600).token
    assert native._own_claims(world.core, token, "at+jwt")["client_id"] == client.client_id
    assert native._own_claims(world.core, token, "at+jwt", B2BINPAY) is None
    real = native.verify_own_jwt
    monkeypatch.setattr(native, "verify_own_jwt", lambda *a, **k: {**real(*a, **k), "exp": True})
    assert native._own_claims(world.core, token, "at+jwt") is None
