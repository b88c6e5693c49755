"""tessera.core.flows.nexi in process: the whole Nexi PAR use case (mTLS, the certificate-bound
Bearer token, the nested JWE assertion and its claims, scope, redirect URI, PKCE, one write with
the jti), then the login and the code exchange (tessera.core.authorize, tessera.core.grants).
A real SQLite store, the server's keys, a fixed clock."""

from __future__ import annotations

import pytest

from tessera.core import authorize, grants, par, tokens
from tessera.core.clients import PeerCert
from tessera.core.flows import nexi
from tessera.core.profiles import NATIVE, NEXI
from tessera.errors import (
    AccessDenied,
    InvalidClient,
    InvalidClientAssertion,
    InvalidGrant,
    InvalidRequest,
    InvalidRequestURI,
    InvalidScope,
    InvalidToken,
    PayloadTooLarge,
)
from tests.core.conftest import PASSWORD, jwt_claims

REDIRECT = "pizzapay://confirm-pay"


@pytest.fixture
def app(world):
    client = world.client(redirect_uris=(REDIRECT,), grant_types=("client_credentials", "authorization_code"))
    cert = world.cert(client)
    e = world.merchant(client)
    token = grants.client_credentials(world.core, client, ttl=3600, thumbprint=cert.thumbprint).token
    return world, client, cert, e, token


def form(world, client, cert, e, **over):
    f = {
        "client_id": client.client_id,
        "scope": "openid email",
        "redirect_uri": REDIRECT,
        "state": "st-1",
        "client_assertion": world.nested(cert, world.nexi_claims(client, e)),
    }
    f.update(over)
    return {k: v for k, v in f.items() if v is not None}


def push(world, client, cert, token, f, peer=...):
    peer = PeerCert(cert.thumbprint) if peer is ... else peer
    return nexi.push_authorization(world.core, nexi.PushRequest(f, token, peer))


def test_push_login_and_exchange(app):
    world, client, cert, e, token = app
    seen = []
    pushed = nexi.push_authorization(
        world.core,
        nexi.PushRequest(form(world, client, cert, e), token, PeerCert(cert.thumbprint)),
        after_auth=seen.append,
    )
    assert seen == [client] and pushed.request_uri.startswith("urn:softpos_") and pushed.expires_in == 90
    page = authorize.login_page(world.core, client.client_id, pushed.request_uri)
    assert (page.client_name, page.username, page.scope) == ("Test App", e.username, "openid email")
    redirect = authorize.login(world.core, client.client_id, pushed.request_uri, e.username.upper() + " ", PASSWORD)
    assert redirect.startswith(REDIRECT + "?code=") and "&state=st-1&iss=https%3A%2F%2Fas.example" in redirect
    code = redirect.split("code=")[1].split("&")[0]
    body = grants.authorization_code(
        world.core, client, code=code, redirect_uri=REDIRECT, code_verifier=None, thumbprint=cert.thumbprint
    )
    assert body["token_type"] == "Bearer" and body["scope"] == "openid email"
    at = tokens.verify_access_token(world.core, body["access_token"], thumbprint=cert.thumbprint, profile=NEXI)
    assert at["sub"] == e.username and at["cnf"] == {"x5t#S256": cert.thumbprint}
    idt = jwt_claims(body["id_token"])
    assert (idt["sub"], idt["aud"], idt["email"], idt["email_verified"]) == (
        e.username,
        client.client_id,
        e.username,
        True,
    )
    assert world.store.bindings(e.username, e.softpos) == (e.softpos, e.username)
    with pytest.raises(InvalidGrant):  # the code is spent; the replay revokes what it issued
        grants.authorization_code(
            world.core, client, code=code, redirect_uri=REDIRECT, code_verifier=None, thumbprint=cert.thumbprint
        )
    with pytest.raises(InvalidToken):
        tokens.verify_access_token(world.core, body["access_token"], thumbprint=cert.thumbprint, profile=NEXI)


def test_without_email_scope_the_id_token_has_no_email(app):
    world, client, cert, e, token = app
    pushed = push(world, client, cert, token, form(world, client, cert, e, scope="oidc"))
    redirect = authorize.login(world.core, client.client_id, pushed.request_uri, e.username, PASSWORD)
    code = redirect.split("code=")[1].split("&")[0]
    body = grants.authorization_code(
        world.core, client, code=code, redirect_uri=REDIRECT, code_verifier=None, thumbprint=None
    )
    assert "email" not in jwt_claims(body["id_token"])


def test_the_exchange_refuses_a_username_bound_meanwhile(app):
    world, client, cert, e, token = app
    pushed = push(world, client, cert, token, form(world, client, cert, e))
    code = authorize.login(world.core, client.client_id, pushed.request_uri, e.username, PASSWORD).split("code=")[1][
        :43
    ]
    world.store.bind_username(e.username, e.mpos, world.core.now())  # another enrollment won the race
    with pytest.raises(InvalidGrant) as err:
        grants.authorization_code(
            world.core, client, code=code, redirect_uri=REDIRECT, code_verifier=None, thumbprint=None
        )
    assert err.value.reason == "username_bound"


def test_login_refusals_spend_nothing(app):
    world, client, cert, e, token = app
    pushed = push(world, client, cert, token, form(world, client, cert, e, state=None))
    for username, password in ((e.username, "wrong"), ("", PASSWORD), ("nobody@shop.example", PASSWORD)):
        with pytest.raises(AccessDenied):
            authorize.login(world.core, client.client_id, pushed.request_uri, username, password)
    other = world.merchant(client)
    with pytest.raises(AccessDenied):  # a real user, but not the one the assertion named
        authorize.login(world.core, client.client_id, pushed.request_uri, other.username, PASSWORD)
    with pytest.raises(InvalidRequestURI):
        authorize.login(world.core, "another-client", pushed.request_uri, e.username, PASSWORD)
    redirect = authorize.login(world.core, client.client_id, pushed.request_uri, e.username, PASSWORD)
    assert "state=" not in redirect
    with pytest.raises(InvalidRequestURI):
        authorize.login(world.core, client.client_id, pushed.request_uri, e.username, PASSWORD)


def test_redirect_keeps_the_registered_query():
    assert authorize._add_query("https://a.example/cb?x=1", {"code": "c"}) == "https://a.example/cb?x=1&code=c"


# --- the PAR's refusals ------------------------------------------------------------------------------


def test_request_shape_refusals(app):
    world, client, cert, e, token = app
    f = form(world, client, cert, e)
    cases = [
        (nexi.PushRequest(f, token, None), InvalidClient, "mtls_missing"),
        (nexi.PushRequest(f, None, PeerCert(cert.thumbprint)), InvalidToken, "token_missing"),
        (
            nexi.PushRequest({**f, "request_uri": "urn:x"}, token, PeerCert(cert.thumbprint)),
            InvalidRequest,
            "par_request_uri",
        ),
        (nexi.PushRequest({**f, "scope": ""}, token, PeerCert(cert.thumbprint)), InvalidRequest, "scope_missing"),
        (
            nexi.PushRequest({k: v for k, v in f.items() if k != "client_assertion"}, token, PeerCert(cert.thumbprint)),
            InvalidRequest,
            "client_assertion_missing",
        ),
        (
            nexi.PushRequest({**f, "client_assertion": "x" * 20000}, token, PeerCert(cert.thumbprint)),
            PayloadTooLarge,
            "assertion_too_large",
        ),
    ]
    for req, kind, why in cases:
        with pytest.raises(kind) as err:
            nexi.push_authorization(world.core, req)
        assert err.value.reason == why


def test_the_bearer_token_must_be_a_bound_nexi_token_of_this_client(app):
    world, client, cert, e, token = app
    f = form(world, client, cert, e)
    other = world.client()
    other_token = grants.client_credentials(world.core, other, ttl=600, thumbprint=cert.thumbprint).token
    unbound = grants.client_credentials(world.core, client, ttl=600, thumbprint=None).token
    native = tokens.issue_access_token(
        world.core, profile=NATIVE, client_id=client.client_id, ttl=600, thumbprint=cert.thumbprint
    ).token
    for bearer, why in (
        (other_token, "token_client_mismatch"),
        (unbound, "token_unbound"),
        (native, "token_foreign_profile"),
        ("garbage", "token_invalid"),
    ):
        with pytest.raises(InvalidToken) as err:
            push(world, client, cert, bearer, f)
        assert err.value.reason == why
    second = world.cert(client)  # bound to the client, but the token is bound to the first one
    with pytest.raises(InvalidToken) as err:
        push(world, client, cert, token, f, peer=PeerCert(second.thumbprint))
    assert err.value.reason == "token_binding_mismatch"


def test_a_revoked_client_cannot_push(app):
    world, client, cert, e, token = app
    f = form(world, client, cert, e)
    world.store.set_client_status(client.client_id, "revoked")
    with pytest.raises(InvalidToken) as err:  # the token dies with its client
        push(world, client, cert, token, f)
    assert err.value.reason == "token_client_revoked"


def test_a_revoked_certificate_cannot_push(app):
    world, client, cert, e, token = app
    f = form(world, client, cert, e)
    world.store.revoke_certificate(cert.serial, world.core.now())
    with pytest.raises(InvalidToken) as err:
        push(world, client, cert, token, f)
    assert err.value.reason == "token_cert_revoked"


@pytest.mark.parametrize(
    "over,why",
    [
        ({"aud": "https://elsewhere.example"}, "assertion_aud"),
        ({"iss": "someone"}, "assertion_iss"),
        ({"exp": None}, "assertion_exp"),
        ({"jti": None}, "assertion_jti"),
        ({"appId": "x"}, "assertion_appid"),
    ],
)
def test_assertion_problems_are_400_invalid_client(app, over, why):
    world, client, cert, e, token = app
    f = form(world, client, cert, e, client_assertion=world.nested(cert, world.nexi_claims(client, e, **over)))
    with pytest.raises(InvalidClientAssertion) as err:
        push(world, client, cert, token, f)
    assert err.value.reason == why and err.value.status == 400 and err.value.error == "invalid_client"


def test_an_assertion_signed_by_another_certificate_is_refused(app):
    world, client, cert, e, token = app
    from tests.core.conftest import make_cert

    stranger = make_cert(client.client_id)  # never bound
    f = form(world, client, cert, e, client_assertion=world.nested(stranger, world.nexi_claims(client, e)))
    with pytest.raises(InvalidClientAssertion) as err:
        push(world, client, cert, token, f)
    assert err.value.reason == "assertion_jws"


def test_a_replayed_assertion_stores_nothing(app):
    world, client, cert, e, token = app
    f = form(world, client, cert, e)
    push(world, client, cert, token, f)
    with pytest.raises(InvalidClientAssertion) as err:
        push(world, client, cert, token, f)
    assert err.value.reason == "assertion_replay"
    assert [ev.kind for ev in world.store.list_events(kind="jti_replayed")] == ["jti_replayed"]


def test_form_rules_after_the_assertion(app):
    world, client, cert, e, token = app
    for over, kind, why in (
        ({"scope": "openid admin"}, InvalidScope, "scope_unknown"),
        ({"redirect_uri": "pizzapay://other"}, InvalidRequest, "redirect_uri_mismatch"),
        ({"code_challenge": "abc", "code_challenge_method": "S256"}, InvalidRequest, "pkce_challenge_syntax"),
    ):
        with pytest.raises(kind) as err:
            push(world, client, cert, token, form(world, client, cert, e, **over))
        assert err.value.reason == why


def test_par_params_keep_pkce(app):
    world, client, cert, e, token = app
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    pushed = push(
        world, client, cert, token, form(world, client, cert, e, code_challenge=challenge, code_challenge_method="S256")
    )
    art = par.load(world.core, client.client_id, pushed.request_uri)
    assert art.data["params"]["code_challenge"] == challenge and art.data["enrollment"]["bound_tid"] == e.softpos


def test_the_par_looks_the_client_and_its_certificate_up_once_for_the_flow_and_the_assertion(app, monkeypatch):
    """The Bearer check reads the token's client and certificate (its own rule); the flow then
    looks the client and the bound certificate up once, and the assertion's authenticator takes
    them from the flow (ClientAuthRequest.holder) instead of a third look-up."""
    world, client, cert, e, token = app
    f = form(world, client, cert, e)
    calls: list[str] = []
    for name in ("client", "certificate"):
        original = getattr(world.core, name)
        monkeypatch.setattr(world.core, name, lambda key, _f=original, _n=name: calls.append(_n) or _f(key))
    push(world, client, cert, token, f)
    assert calls == ["client", "certificate", "client", "certificate"]  # the token's, then the flow's


def test_a_holder_for_another_client_or_certificate_is_not_taken(app):
    """The authenticator takes the caller's holder only for the client and certificate the
    request names; anything else is looked up and checked as usual."""
    from tessera.core import client_auth
    from tessera.core.clients import ClientCredentials

    world, client, cert, e, token = app
    other = world.client()
    other_cert = world.cert(other)
    holder = client_auth.AuthenticatedClient(other, "bearer", other_cert)
    req = client_auth.ClientAuthRequest(
        ClientCredentials(client.client_id, None, "none"),
        assertion=world.nested(cert, world.nexi_claims(client, e)),
        peer=PeerCert(cert.thumbprint),
        holder=holder,
    )
    auth = client_auth.authenticate_with(world.core, client_auth.NEXI_PAR_METHODS, req)
    assert auth.client.client_id == client.client_id and auth.certificate.thumbprint == cert.thumbprint
    world.store.set_client_status(client.client_id, "revoked")
    with pytest.raises(InvalidClient):  # not the holder's (active) client: looked up, and refused
        client_auth.authenticate_with(world.core, client_auth.NEXI_PAR_METHODS, req)
