"""requests-oauthlib with oauthlib's ``BackendApplicationClient`` (client_credentials)
against a live server, then a protected call (userinfo) with the token it got."""

from __future__ import annotations

import pytest
from oauthlib.oauth2 import BackendApplicationClient
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from tests.e2e.native_helpers import claims_of, issuer, register

pytestmark = pytest.mark.slow


def test_backend_application_client_with_http_basic(live_server):
    nc = register(live_server)
    session = OAuth2Session(client=BackendApplicationClient(client_id=nc.client_id), scope=["payments:read"])
    token = session.fetch_token(
        token_url=issuer(live_server) + "/oauth2/token",
        auth=HTTPBasicAuth(nc.client_id, nc.client_secret),
        scope="payments:read",
        verify=str(live_server.ca),
    )
    assert token["token_type"] == "Bearer" and token["scope"] == ["payments:read"]
    assert claims_of(token["access_token"])["client_id"] == nc.client_id
    r = session.get(issuer(live_server) + "/oauth2/userinfo", verify=str(live_server.ca))
    assert r.status_code == 200 and r.json() == {"sub": nc.client_id}


def test_backend_application_client_with_client_secret_post(live_server):
    nc = register(live_server)
    session = OAuth2Session(client=BackendApplicationClient(client_id=nc.client_id))
    token = session.fetch_token(
        token_url=issuer(live_server) + "/oauth2/token",
        client_id=nc.client_id,
        client_secret=nc.client_secret,
        include_client_id=True,
        verify=str(live_server.ca),
    )
    assert claims_of(token["access_token"])["client_id"] == nc.client_id
