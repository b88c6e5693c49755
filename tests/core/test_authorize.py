"""tessera.core.authorize in process: the login page's facts, and the code a login yields for one
surface's kinds (the native extras carried over). Refusals are in test_nexi.py and test_native.py."""

from __future__ import annotations

from tessera.core import authorize, par
from tessera.core.secrets import sha256_key
from tests.core.conftest import PASSWORD

REDIRECT = "https://app.example/cb?tenant=7"


def test_a_login_yields_a_code_of_the_surface_with_its_extras(world):
    client = world.client(redirect_uris=(REDIRECT,))
    e = world.merchant(client)
    params = par.AuthorizationParams(client.client_id, REDIRECT, "openid", None, None, None)
    pushed = par.push(world.core, client, params, {"native": {"nonce": "n1"}}, prefix="urn:x:", kind="k_req")
    page = authorize.login_page(world.core, client.client_id, pushed.request_uri, par_kind="k_req")
    assert page.username == "" and page.scope == "openid" and page.request_uri == pushed.request_uri
    redirect = authorize.login(
        world.core, client.client_id, pushed.request_uri, e.username, PASSWORD, par_kind="k_req", code_kind="k_code"
    )
    assert redirect.startswith(REDIRECT + "&code=") and "state=" not in redirect
    code = redirect.split("code=")[1].split("&")[0]
    art = world.store.get_artifact("k_code", sha256_key(code))
    assert art.data["native"] == {"nonce": "n1"} and art.data["username"] == e.username
    assert art.expires_at == world.core.now() + world.core.config.code_ttl
