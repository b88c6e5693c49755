"""tessera.core.client_auth: one registry {method: authenticator}; each profile names the
methods it accepts and the request's presentation picks one. Real SQLite store, fixed clock."""

from __future__ import annotations

import json

import pytest
from jwcrypto import jwk, jwt

from tessera.core import apikeys
from tessera.core.client_auth import (
    AUTHENTICATORS,
    AXEPT_METHODS,
    JWT_BEARER,
    METHODS,
    NEXI_PAR_METHODS,
    ApiKeyCredentials,
    AuthenticatedClient,
    AuthenticatedKey,
    ClientAuthRequest,
    ClientCredentials,
    PeerCert,
    authenticate,
    authenticate_with,
)
from tessera.core.context import Core, CoreConfig
from tessera.core.flows import b2binpay
from tessera.core.keys import KeyRing
from tessera.core.models import Client, Merchant
from tessera.core.secrets import hash_secret
from tessera.errors import InvalidClient, InvalidRequest
from tessera.storage.sql import SQLStore
from tests.support import migrated

ISSUER = "https://as.example"
KEK = b"k" * 32
PEPPER = b"p" * 32
SECRET = "s3cret-s3cret-s3cret-s3cret-s3cret"
NOW = 1_800_000_000


@pytest.fixture
def env(tmp_path, _server_keys):
    store = SQLStore(migrated.sqlite_url(tmp_path / "auth.db"))
    store.save_server_keys(list(_server_keys))  # made once per worker (tests/core/conftest.py)
    core = Core(
        config=CoreConfig(issuer=ISSUER), store=store, keys=KeyRing(store, KEK), pepper=PEPPER, clock=lambda: NOW
    )
    store.create_client(Client("secret-app", "a", hash_secret(SECRET, PEPPER), created_at=NOW))
    key = jwk.JWK.generate(kty="EC", crv="P-256", kid="k1")
    store.create_client(
        Client(
            "jwt-app",
            "b",
            None,
            auth_methods=("private_key_jwt",),
            jwks={"keys": [{**json.loads(key.export_public()), "use": "sig"}]},
            created_at=NOW,
        )
    )
    yield core, store, key
    store.close()


def secret(method: str, client_secret: str = SECRET) -> ClientAuthRequest:
    return ClientAuthRequest(credentials=ClientCredentials("secret-app", client_secret, method))


def assertion(key: jwk.JWK, jti: str = "j-1", **over) -> str:
    claims = {"iss": "jwt-app", "sub": "jwt-app", "aud": ISSUER, "iat": NOW, "exp": NOW + 60, "jti": jti, **over}
    token = jwt.JWT(header={"alg": "ES256", "kid": "k1"}, claims=claims)
    token.make_signed_token(key)
    return token.serialize()


def test_the_registry_holds_every_method_and_each_surface_names_its_own():
    assert set(AUTHENTICATORS) == {
        "client_secret_basic",
        "client_secret_post",
        "tls_client_auth",
        "private_key_jwt",
        "nexi_nested_jwe",
        "axept_api_key",
    }
    for accepted in (METHODS, NEXI_PAR_METHODS, AXEPT_METHODS, b2binpay.AUTH_METHODS):
        assert set(accepted) <= set(AUTHENTICATORS)


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_secrets_pick_their_method(env, method):
    core, _store, _key = env
    auth = authenticate(core, secret(method))
    assert isinstance(auth, AuthenticatedClient)
    assert (auth.client.client_id, auth.method, auth.certificate) == ("secret-app", method, None)
    with pytest.raises(InvalidClient) as e:
        authenticate(core, secret(method, SECRET + "x"))
    assert e.value.reason == "bad_client_credentials"


def test_a_method_the_surface_does_not_accept_is_no_authentication(env):
    core, _store, _key = env
    # B2BINPAY takes its login/password in the body only: Basic is not presented there.
    with pytest.raises(InvalidClient) as e:
        authenticate_with(core, b2binpay.AUTH_METHODS, secret("client_secret_basic"))
    assert e.value.reason == "no_client_auth"
    assert authenticate_with(core, b2binpay.AUTH_METHODS, secret("client_secret_post")).method == "client_secret_post"


def test_nothing_presented_and_two_methods_at_once(env):
    core, _store, key = env
    with pytest.raises(InvalidClient) as e:
        authenticate(core, ClientAuthRequest(credentials=ClientCredentials("secret-app", None, "none")))
    assert e.value.reason == "no_client_auth"
    with pytest.raises(InvalidRequest) as e:
        authenticate(
            core,
            ClientAuthRequest(
                credentials=ClientCredentials("secret-app", SECRET, "client_secret_post"),
                assertion_type=JWT_BEARER,
                assertion=assertion(key),
            ),
        )
    assert e.value.reason == "two_auth_methods"


def test_private_key_jwt_with_the_registered_jwks_single_use(env):
    core, _store, key = env
    req = ClientAuthRequest(assertion_type=JWT_BEARER, assertion=assertion(key))
    auth = authenticate(core, req)
    assert (auth.client.client_id, auth.method) == ("jwt-app", "private_key_jwt")
    assert auth.claims is not None and auth.claims["jti"] == "j-1"
    with pytest.raises(InvalidClient) as e:
        authenticate(core, req)
    assert e.value.reason == "assertion_replay"
    with pytest.raises(InvalidClient) as e:  # a secret client may not use private_key_jwt
        authenticate(
            core,
            ClientAuthRequest(
                credentials=ClientCredentials("secret-app", None, "none"),
                assertion_type=JWT_BEARER,
                assertion=assertion(key, iss="secret-app"),
            ),
        )
    assert e.value.reason == "auth_method_not_allowed"


def test_tls_client_auth_needs_a_bound_certificate(env):
    core, store, _key = env
    store.create_client(Client("tls-app", "c", None, auth_methods=("tls_client_auth",), created_at=NOW))
    with pytest.raises(InvalidClient) as e:
        authenticate(
            core,
            ClientAuthRequest(
                credentials=ClientCredentials("tls-app", None, "none"), peer=PeerCert("not-a-bound-thumbprint")
            ),
        )
    assert e.value.reason == "cert_not_bound"
    with pytest.raises(InvalidClient) as e:  # the secret app is not registered for tls_client_auth
        authenticate(
            core,
            ClientAuthRequest(
                credentials=ClientCredentials("secret-app", None, "none"), peer=PeerCert("not-a-bound-thumbprint")
            ),
        )
    assert e.value.reason == "auth_method_not_allowed"


def test_nexi_nested_jwe_needs_mutual_tls(env):
    core, _store, _key = env
    with pytest.raises(InvalidClient) as e:
        authenticate_with(
            core,
            NEXI_PAR_METHODS,
            ClientAuthRequest(credentials=ClientCredentials("secret-app", None, "none"), assertion="a.b.c.d.e"),
        )
    assert e.value.reason == "mtls_missing"


def test_axept_api_key(env):
    core, store, _key = env
    store.create_merchant(Merchant(42, "Shop", None, NOW))
    record, value = apikeys.create_key(store, PEPPER, 42, NOW, max_enabled=3)
    auth = authenticate_with(
        core, AXEPT_METHODS, ClientAuthRequest(api_key=ApiKeyCredentials(42, record.key_id, value))
    )
    assert isinstance(auth, AuthenticatedKey) and auth.key.key_id == record.key_id and auth.method == "axept_api_key"
    with pytest.raises(InvalidClient) as e:
        authenticate_with(
            core, AXEPT_METHODS, ClientAuthRequest(api_key=ApiKeyCredentials(42, record.key_id, value + "x"))
        )
    assert e.value.reason == "bad_api_key"
    # The native surface does not take an API key.
    with pytest.raises(InvalidClient) as e:
        authenticate(core, ClientAuthRequest(api_key=ApiKeyCredentials(42, record.key_id, value)))
    assert e.value.reason == "no_client_auth"
