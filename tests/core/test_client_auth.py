"""tessera.core.client_auth in process, beyond the registry (test_client_auth_registry.py):
each authenticator's refusals, the native rule that a presented certificate must be bound,
private_key_jwt wrapped in a JWE, the unverified-issuer peek, and JWKS validation."""

from __future__ import annotations

import base64
import json

import pytest
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from tessera.core import client_auth
from tessera.core.client_auth import (
    JWT_BEARER,
    ApiKeyCredentials,
    ClientAuthRequest,
    ClientCredentials,
    PeerCert,
    authenticate,
    authenticate_with,
    validate_jwks,
)
from tessera.errors import InvalidClient, InvalidRequest, PayloadTooLarge
from tests.core.conftest import ISSUER, NOW, SECRET, make_cert

EC_KEY = ECKey.generate_key("P-256", parameters={"kid": "k1"})


def public_jwks(*keys, **extra) -> dict:
    return {"keys": [{**k.as_dict(private=False), "use": "sig", **extra} for k in keys]}


def signed(claims: dict, key=EC_KEY, alg: str = "ES256") -> str:
    return jws.serialize_compact({"alg": alg, "kid": key.kid}, json.dumps(claims).encode(), key, algorithms=[alg])


def claims_for(client_id: str, **over) -> dict:
    c = {"iss": client_id, "sub": client_id, "aud": ISSUER, "iat": NOW, "exp": NOW + 60, "jti": f"j-{over.pop('n', 1)}"}
    c.update(over)
    return c


def jwt_req(assertion, client_id=None, assertion_type=JWT_BEARER, peer=None) -> ClientAuthRequest:
    return ClientAuthRequest(ClientCredentials(client_id, None, "none"), assertion_type, assertion, peer)


def reason(fn, *a, **kw) -> str:
    with pytest.raises((InvalidClient, InvalidRequest, PayloadTooLarge)) as err:
        fn(*a, **kw)
    return err.value.reason


@pytest.fixture
def jwt_app(world):
    client = world.client(auth_methods=("private_key_jwt",), secret_hash=None, jwks=public_jwks(EC_KEY))
    return world, client


def test_private_key_jwt(jwt_app):
    world, client = jwt_app
    auth = authenticate(world.core, jwt_req(signed(claims_for(client.client_id))))
    assert auth.method == "private_key_jwt" and auth.claims["jti"] == "j-1" and auth.thumbprint is None


def test_private_key_jwt_wrapped_in_a_jwe(jwt_app):
    from joserfc import jwe

    world, client = jwt_app
    enc = world.enc_jwk()
    inner = signed(claims_for(client.client_id))
    wrapped = jwe.encrypt_compact(
        {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": enc["kid"]},
        inner.encode(),
        RSAKey.import_key({k: enc[k] for k in ("kty", "n", "e", "kid")}),
        algorithms=["RSA-OAEP-256", "A256GCM"],
    )
    assert authenticate(world.core, jwt_req(wrapped)).claims["iss"] == client.client_id


def test_private_key_jwt_with_a_bound_certificate_key(world):
    client = world.client(auth_methods=("private_key_jwt",), secret_hash=None)
    cert = world.cert(client)
    key = ECKey.import_key(cert.key_pem)
    token = jws.serialize_compact(
        {"alg": "ES256"}, json.dumps(claims_for(client.client_id)).encode(), key, algorithms=["ES256"]
    )
    auth = authenticate(world.core, jwt_req(token, client.client_id, peer=PeerCert(cert.thumbprint)))
    assert auth.thumbprint == cert.thumbprint and auth.certificate.serial == cert.serial


@pytest.mark.parametrize(
    "case,why",
    [
        ("type", "assertion_type"),
        ("missing", "assertion_missing"),
        ("huge", "assertion_too_large"),
        ("parts", "assertion_jws"),
        ("payload", "assertion_jws"),
        ("list", "assertion_jws"),
        ("mismatch", "assertion_client_id"),
        ("unknown", "client_unknown"),
        ("no_iss", "client_unknown"),
        ("signature", "assertion_jws"),
        ("claims", "assertion_aud"),
    ],
)
def test_private_key_jwt_refusals(jwt_app, case, why):
    world, client = jwt_app
    good = signed(claims_for(client.client_id))
    cid = None
    at = JWT_BEARER
    if case == "type":
        a, at = good, "urn:other"
    elif case == "missing":
        a = ""
    elif case == "huge":
        a = "x" * 16385
    elif case == "parts":
        a = "a.b"
    elif case == "payload":
        a = "e30." + base64.urlsafe_b64encode(b"{nope").decode().rstrip("=") + ".sig"
    elif case == "list":
        a = "e30." + base64.urlsafe_b64encode(b"[1]").decode().rstrip("=") + ".sig"
    elif case == "mismatch":
        a, cid = good, "someone-else"
    elif case == "unknown":
        a = signed(claims_for("nobody"))
    elif case == "no_iss":
        a = signed({k: v for k, v in claims_for(client.client_id).items() if k != "iss"})
    elif case == "signature":
        a = signed(claims_for(client.client_id), ECKey.generate_key("P-256", parameters={"kid": "k1"}))
    else:
        a = signed(claims_for(client.client_id, aud=[ISSUER]))
    assert reason(authenticate, world.core, jwt_req(a, cid, at)) == why


def test_private_key_jwt_needs_the_method_a_key_and_an_active_client(world):
    plain = world.client()
    assert reason(authenticate, world.core, jwt_req(signed(claims_for(plain.client_id)))) == "auth_method_not_allowed"
    keyless = world.client(auth_methods=("private_key_jwt",), secret_hash=None)
    assert reason(authenticate, world.core, jwt_req(signed(claims_for(keyless.client_id)))) == "assertion_no_key"
    gone = world.client(auth_methods=("private_key_jwt",), jwks=public_jwks(EC_KEY), status="revoked")
    assert reason(authenticate, world.core, jwt_req(signed(claims_for(gone.client_id)))) == "client_revoked"


def test_a_replayed_private_key_jwt(jwt_app):
    world, client = jwt_app
    a = signed(claims_for(client.client_id))
    authenticate(world.core, jwt_req(a))
    assert reason(authenticate, world.core, jwt_req(a)) == "assertion_replay"


def test_secret_methods(world):
    client = world.client(auth_methods=("client_secret_post",))
    basic = ClientAuthRequest(ClientCredentials(client.client_id, SECRET, "client_secret_basic"))
    post = ClientAuthRequest(ClientCredentials(client.client_id, SECRET, "client_secret_post"))
    assert authenticate(world.core, post).method == "client_secret_post"
    assert reason(authenticate, world.core, basic) == "auth_method_not_allowed"
    wrong = ClientAuthRequest(ClientCredentials(client.client_id, "wrong", "client_secret_post"))
    assert reason(authenticate, world.core, wrong) == "bad_client_credentials"
    nobody = ClientAuthRequest(ClientCredentials(None, SECRET, "client_secret_post"))
    assert reason(authenticate, world.core, nobody) == "bad_client_credentials"
    gone = world.client(status="revoked")
    revoked = ClientAuthRequest(ClientCredentials(gone.client_id, SECRET, "client_secret_basic"))
    assert reason(authenticate, world.core, revoked) == "client_revoked"


def test_a_certificate_presented_with_a_secret_must_be_bound_and_then_binds(world):
    client = world.client()
    cert = world.cert(client)
    req = ClientAuthRequest(
        ClientCredentials(client.client_id, SECRET, "client_secret_basic"), peer=PeerCert(cert.thumbprint)
    )
    assert authenticate(world.core, req).thumbprint == cert.thumbprint
    other = world.cert(world.client())
    req = ClientAuthRequest(
        ClientCredentials(client.client_id, SECRET, "client_secret_basic"), peer=PeerCert(other.thumbprint)
    )
    assert reason(authenticate, world.core, req) == "cert_not_bound"


def test_tls_client_auth(world):
    client = world.client(auth_methods=("tls_client_auth",), secret_hash=None)
    cert = world.cert(client)
    ok = ClientAuthRequest(ClientCredentials(client.client_id, None, "none"), peer=PeerCert(cert.thumbprint))
    assert authenticate(world.core, ok).method == "tls_client_auth"
    no_id = ClientAuthRequest(ClientCredentials(None, None, "none"), peer=PeerCert(cert.thumbprint))
    assert reason(authenticate, world.core, no_id) == "client_id_missing"
    plain = world.client()
    pc = world.cert(plain)
    not_allowed = ClientAuthRequest(ClientCredentials(plain.client_id, None, "none"), peer=PeerCert(pc.thumbprint))
    assert reason(authenticate, world.core, not_allowed) == "auth_method_not_allowed"
    revoked = world.cert(client, revoked_at=NOW - 5)
    bad = ClientAuthRequest(ClientCredentials(client.client_id, None, "none"), peer=PeerCert(revoked.thumbprint))
    assert reason(authenticate, world.core, bad) == "cert_revoked"
    expired = world.cert(client, not_before=NOW - 7200, not_after=NOW - 1)
    bad = ClientAuthRequest(ClientCredentials(client.client_id, None, "none"), peer=PeerCert(expired.thumbprint))
    assert reason(authenticate, world.core, bad) == "cert_expired"


def test_one_method_per_request_and_none_at_all(world):
    client = world.client()
    both = ClientAuthRequest(ClientCredentials(client.client_id, SECRET, "client_secret_basic"), JWT_BEARER, "x.y.z")
    assert reason(authenticate, world.core, both) == "two_auth_methods"
    assert reason(authenticate, world.core, ClientAuthRequest()) == "no_client_auth"


def test_the_nexi_method_needs_a_known_client_and_a_bound_certificate(world):
    nexi = client_auth.NEXI_PAR_METHODS
    req = ClientAuthRequest(ClientCredentials(None, None, "none"), assertion="x")
    assert reason(authenticate_with, world.core, nexi, req) == "client_unknown"
    client = world.client()
    req = ClientAuthRequest(
        ClientCredentials(client.client_id, None, "none"),
        assertion="x",
        peer=PeerCert(make_cert(client.client_id).thumbprint),
    )
    assert reason(authenticate_with, world.core, nexi, req) == "cert_not_bound"


def test_axept_api_key_refusals(world):
    from tessera.core.models import Merchant

    world.store.create_merchant(Merchant(77, "m", None, NOW))
    req = ClientAuthRequest(api_key=ApiKeyCredentials(77, 1, "nope"))
    assert reason(authenticate_with, world.core, client_auth.AXEPT_METHODS, req) == "bad_api_key"


def test_client_keys_skip_what_cannot_sign():
    from tessera.core.models import Client

    rsa = RSAKey.generate_key(2048, parameters={"kid": "r1"})
    jwks = {
        "keys": [
            {**rsa.as_dict(private=False)},
            {**EC_KEY.as_dict(private=False), "use": "enc"},
            {"kty": "oct", "k": "c2VjcmV0"},
            "not-a-key",
            {"kty": "EC", "crv": "P-256", "x": "bad", "y": "bad"},
        ]
    }
    client = Client("c", "c", None, jwks=jwks)
    keys = client_auth._jwks_keys(json.dumps(client.jwks, sort_keys=True))
    assert len(keys) == 1 and keys[0].kid == "r1"
    assert client_auth._jwks_keys(json.dumps([1])) == ()


@pytest.mark.parametrize(
    "jwks,words",
    [
        (None, "keys"),
        ({"keys": []}, "keys"),
        ({"keys": "x"}, "keys"),
        ({"keys": ["x"]}, "JSON object"),
        ({"keys": [{"kty": "EC", "d": "x"}]}, "public keys only"),
        ({"keys": [{"kty": "oct"}]}, "RSA or EC"),
    ],
)
def test_validate_jwks_refusals(jwks, words):
    with pytest.raises(ValueError, match=words):
        validate_jwks(jwks)


def test_validate_jwks_key_sizes_and_curves():
    assert validate_jwks(public_jwks(EC_KEY)) == public_jwks(EC_KEY)
    validate_jwks({"keys": [RSAKey.generate_key(2048).as_dict(private=False)]})
    with pytest.raises(ValueError, match="2048"):
        validate_jwks({"keys": [RSAKey.generate_key(1024, auto_kid=True, private=True).as_dict(private=False)]})
    with pytest.raises(ValueError, match="P-256"):
        validate_jwks({"keys": [ECKey.generate_key("P-384").as_dict(private=False)]})
