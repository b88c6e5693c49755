"""tessera.core.grants in process: the Nexi client_credentials grant (certificate-bound), the code
exchange's ID token and e-mail claims, and the enrollment it records. The whole PAR-to-token
journey is test_nexi.py."""

from __future__ import annotations

from tessera.core import grants
from tessera.core.profiles import NEXI
from tests.core.conftest import jwt_claims


def test_client_credentials_is_a_nexi_token_bound_to_the_certificate(world):
    client = world.client()
    issued = grants.client_credentials(world.core, client, ttl=3600, thumbprint="tp", scope="s", extra={"k": "v"})
    c = jwt_claims(issued.token)
    assert (c["prf"], c["cnf"], c["scope"], c["k"], c["exp"] - c["iat"]) == (NEXI, {"x5t#S256": "tp"}, "s", "v", 3600)


def test_the_oidc_scopes():
    assert grants.OIDC_SCOPES == ("openid", "oidc") and grants.NEXI_CODES.code == "authorization_code"
