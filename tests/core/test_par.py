"""tessera.core.par in process: scope, redirect URI and PKCE rules of a pushed request, and the
single-use ``request_uri`` bound to its client, with a fixed clock (security rows on PAR)."""

from __future__ import annotations

import pytest

from tessera.core import par
from tessera.core.assertions import JTI_KIND
from tessera.core.models import Client
from tessera.errors import InvalidClient, InvalidRequest, InvalidRequestURI, InvalidScope

CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
CLIENT = Client("app-1", "app", None, redirect_uris=("https://app.example/cb", "pizzapay://confirm-pay"))


@pytest.mark.parametrize("scope", ["openid", "oidc", "openid email", "oidc profile phone address"])
def test_nexi_scopes_accepted(scope):
    assert par.check_nexi_scope(scope) == scope


@pytest.mark.parametrize(
    "scope,reason",
    [
        (None, "scope_missing"),
        ("", "scope_missing"),
        ("openid  email", "scope_syntax"),
        (" openid", "scope_syntax"),
        ("openid openid", "scope_syntax"),
        ("openid admin", "scope_unknown"),
        ("email profile", "scope_no_oidc"),
    ],
)
def test_nexi_scope_refusals(scope, reason):
    with pytest.raises((InvalidRequest, InvalidScope)) as e:
        par.check_nexi_scope(scope)
    assert e.value.reason == reason


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example/cb",
        "https://app.example/cb?x=1",
        "http://localhost:8080/cb",
        "http://127.0.0.1/cb",
        "http://[::1]/cb",
        "pizzapay://confirm-pay",
        "com.example.app:/cb",
    ],
)
def test_redirect_uris_fit_to_register(uri):
    assert par.validate_redirect_uri(uri) == uri


@pytest.mark.parametrize(
    "uri,words",
    [
        ("", "non-empty"),
        (None, "non-empty"),
        ("https://a.example/" + "x" * 2048, "2048"),
        ("https://a.example/c b", "whitespace"),
        ("https://a.example/\x00", "control"),
        ("https://a.example/\x7f", "control"),
        ("no-scheme", "absolute"),
        ("1http://x", "absolute"),
        ("https:", "absolute"),
        ("javascript:alert(1)", "javascript"),
        ("DATA:text/html,x", "data"),
        ("file:///etc/passwd", "file"),
        ("https://a.example/cb#frag", "fragment"),
        ("https:///path", "needs a host"),
        ("http://app.example/cb", "loopback"),
        ("https://[::1/cb", "valid URI"),
    ],
)
def test_redirect_uri_refusals(uri, words):
    with pytest.raises(ValueError, match=words):
        par.validate_redirect_uri(uri)


def test_redirect_uri_matches_exactly():
    assert par.check_redirect_uri(CLIENT, "pizzapay://confirm-pay") == "pizzapay://confirm-pay"
    for sent, reason in (
        (None, "redirect_uri_missing"),
        ("", "redirect_uri_missing"),
        ("https://app.example/cb/", "redirect_uri_mismatch"),
        ("https://APP.example/cb", "redirect_uri_mismatch"),
    ):
        with pytest.raises(InvalidRequest) as e:
            par.check_redirect_uri(CLIENT, sent)
        assert e.value.reason == reason


def test_pkce_s256_only():
    assert par.check_pkce(None, None) == (None, None)
    assert par.check_pkce(CHALLENGE, "S256") == (CHALLENGE, "S256")
    for challenge, method, reason in (
        (None, "S256", "pkce_method_alone"),
        (CHALLENGE, None, "pkce_method_missing"),
        (CHALLENGE, "plain", "pkce_plain"),
        ("short", "S256", "pkce_challenge_syntax"),
        (CHALLENGE + "=", "S256", "pkce_challenge_syntax"),
    ):
        with pytest.raises(InvalidRequest) as e:
            par.check_pkce(challenge, method)
        assert e.value.reason == reason


def _params(client: Client) -> par.AuthorizationParams:
    return par.AuthorizationParams(client.client_id, "https://app.example/cb", "openid", "st", CHALLENGE, "S256")


def test_push_load_consume_single_use_and_bound_to_its_client(world):
    client = world.client(redirect_uris=("https://app.example/cb",))
    pushed = par.push(world.core, client, _params(client), {"enrollment": {"username": "u@x.example"}}, prefix="urn:t_")
    assert pushed.request_uri.startswith("urn:t_") and pushed.expires_in == world.core.config.par_ttl == 90
    art = par.load(world.core, client.client_id, pushed.request_uri)
    assert art.data["params"]["code_challenge"] == CHALLENGE and art.data["enrollment"]["username"] == "u@x.example"
    with pytest.raises(InvalidRequestURI) as e:
        par.load(world.core, "another-client", pushed.request_uri)
    assert e.value.reason == "request_uri_foreign"
    with pytest.raises(InvalidRequestURI):
        par.consume(world.core, "another-client", pushed.request_uri)  # its use is spent all the same
    with pytest.raises(InvalidRequestURI) as e:
        par.load(world.core, client.client_id, pushed.request_uri)
    assert e.value.reason == "request_uri_invalid"


def test_consume_once(world):
    client = world.client()
    pushed = par.push(world.core, client, _params(client), {}, prefix="urn:t_")
    assert par.consume(world.core, client.client_id, pushed.request_uri).client_id == client.client_id
    with pytest.raises(InvalidRequestURI):
        par.consume(world.core, client.client_id, pushed.request_uri)


def test_request_uri_expires_after_par_ttl(world):
    client = world.client()
    pushed = par.push(world.core, client, _params(client), {}, prefix="urn:t_")
    world.clock.advance(89)
    par.load(world.core, client.client_id, pushed.request_uri)
    world.clock.advance(1)
    with pytest.raises(InvalidRequestURI):
        par.load(world.core, client.client_id, pushed.request_uri)


def test_load_needs_a_request_uri_and_kinds_are_apart(world):
    client = world.client()
    with pytest.raises(InvalidRequest) as e:
        par.load(world.core, client.client_id, None)
    assert e.value.reason == "request_uri_missing"
    pushed = par.push(world.core, client, _params(client), {}, prefix="urn:t_", kind="native_request_uri")
    with pytest.raises(InvalidRequestURI):
        par.load(world.core, client.client_id, pushed.request_uri)  # another surface's kind
    with pytest.raises(InvalidRequestURI):
        par.load(world.core, client.client_id, "urn:t_unknown")


def test_push_with_claims_claims_the_jti_in_the_same_write(world):
    client = world.client()
    claims = {"jti": "j-1", "exp": world.core.now() + 300}
    pushed = par.push(world.core, client, _params(client), {}, prefix="urn:t_", claims=claims)
    assert par.load(world.core, client.client_id, pushed.request_uri)
    assert world.store.get_artifact(JTI_KIND, f"{client.client_id}:j-1") is not None
    with pytest.raises(InvalidClient) as e:  # a replayed assertion stores nothing
        par.push(world.core, client, _params(client), {"second": True}, prefix="urn:t_", claims=claims)
    assert e.value.reason == "assertion_replay"


def test_authorization_params_as_dict():
    p = _params(CLIENT)
    assert p.as_dict() == {
        "client_id": "app-1",
        "redirect_uri": "https://app.example/cb",
        "scope": "openid",
        "state": "st",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
