"""The nested client assertion, opened and verified with jwcrypto (an independent JOSE
implementation): JWE headers, inner JWS headers and signature, and the Nexi claims."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwe, jwk, jws

from tessera.sdk import NexiSoftPOSClient, TokenCache, build_nested_assertion, x5t_s256

CLIENT_ID = "app-123"
BASE = "https://stgb2bsoftpos.nexigroup.com"


def open_with_jwcrypto(token: str, enc_key: jwk.JWK, cert_pem: bytes) -> tuple[dict, dict, dict]:
    """(JWE protected header, JWS protected header, claims), every check done by jwcrypto."""
    outer = jwe.JWE()
    outer.deserialize(token, key=enc_key)  # raises unless it decrypts and the tag verifies
    jwe_header = json.loads(outer.objects["protected"])
    cert = x509.load_pem_x509_certificate(cert_pem)
    public = jwk.JWK.from_pem(
        cert.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    inner = jws.JWS()
    inner.deserialize(outer.payload.decode("ascii"))
    inner.verify(public)  # raises on a bad signature
    jws_header = json.loads(inner.objects["protected"])
    return jwe_header, jws_header, json.loads(inner.payload)


def cert_thumbprint(cert_pem: bytes) -> str:
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


@pytest.fixture(params=["rsa", "ec"])
def dev(request, rsa_dev, ec_dev):
    return rsa_dev if request.param == "rsa" else ec_dev


def test_build_nested_assertion(dev, enc_key):
    claims = {"iss": "a", "sub": "a", "aud": BASE, "iat": 1, "exp": 2, "jti": "j", "naïve": "ü"}
    token = build_nested_assertion(
        claims,
        signing_key_pem=dev.key_pem,
        certificate_pem=dev.cert_pem,
        encryption_jwk=enc_key.export_public(as_dict=True),
    )
    assert token.count(".") == 4
    jwe_header, jws_header, got = open_with_jwcrypto(token, enc_key, dev.cert_pem)
    assert jwe_header == {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "enc-current", "cty": "JWT"}
    expected_alg = "RS256" if _is_rsa(dev.key_pem) else "ES256"
    assert jws_header == {"alg": expected_alg, "typ": "JWT", "x5t#S256": cert_thumbprint(dev.cert_pem)}
    assert got == claims
    assert x5t_s256(dev.cert_pem) == cert_thumbprint(dev.cert_pem)


def _is_rsa(key_pem: bytes) -> bool:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return isinstance(serialization.load_pem_private_key(key_pem, None), rsa.RSAPrivateKey)


def test_without_certificate_there_is_no_x5t(rsa_dev, enc_key):
    token = build_nested_assertion(
        {"x": 1},
        signing_key_pem=rsa_dev.key_pem,
        certificate_pem=None,
        encryption_jwk=enc_key.export_public(as_dict=True),
    )
    _, jws_header, _ = open_with_jwcrypto(token, enc_key, rsa_dev.cert_pem)
    assert jws_header == {"alg": "RS256", "typ": "JWT"}


def test_rsa_oaep_and_a128gcm_can_be_chosen(rsa_dev, enc_key):
    token = build_nested_assertion(
        {"x": 1},
        signing_key_pem=rsa_dev.key_pem,
        certificate_pem=rsa_dev.cert_pem,
        encryption_jwk=enc_key.export_public(as_dict=True),
        alg="RSA-OAEP",
        enc="A128GCM",
    )
    jwe_header, _, _ = open_with_jwcrypto(token, enc_key, rsa_dev.cert_pem)
    assert (jwe_header["alg"], jwe_header["enc"]) == ("RSA-OAEP", "A128GCM")


@pytest.mark.parametrize("enc", ["A128CBC-HS256", "A256CBC-HS512"])
def test_minimal_headers_are_the_reference_backends(rsa_dev, enc_key, enc):
    """As NexiPayments/softpos-backend builds it: JWS {"alg": "RS256"}, JWE {"alg", "enc"}."""
    public = {k: v for k, v in enc_key.export_public(as_dict=True).items() if k != "kid"}  # no kid needed
    token = build_nested_assertion(
        {"x": 1},
        signing_key_pem=rsa_dev.key_pem,
        certificate_pem=rsa_dev.cert_pem,
        encryption_jwk=public,
        enc=enc,
        minimal_headers=True,
    )
    jwe_header, jws_header, claims = open_with_jwcrypto(token, enc_key, rsa_dev.cert_pem)
    assert jwe_header == {"alg": "RSA-OAEP-256", "enc": enc}
    assert jws_header == {"alg": "RS256"}
    assert claims == {"x": 1}


def test_bad_inputs_are_refused(rsa_dev, ec_dev, enc_key):
    public = enc_key.export_public(as_dict=True)
    kw = dict(signing_key_pem=rsa_dev.key_pem, certificate_pem=rsa_dev.cert_pem)
    with pytest.raises(ValueError, match="certificate"):
        build_nested_assertion(
            {}, signing_key_pem=rsa_dev.key_pem, certificate_pem=ec_dev.cert_pem, encryption_jwk=public
        )
    with pytest.raises(ValueError):
        build_nested_assertion({}, **kw, encryption_jwk=public, alg="RSA1_5")
    with pytest.raises(ValueError):
        build_nested_assertion({}, **kw, encryption_jwk=public, enc="A192GCM")
    with pytest.raises(ValueError, match="kid"):
        build_nested_assertion({}, **kw, encryption_jwk={k: v for k, v in public.items() if k != "kid"})
    with pytest.raises(ValueError, match="enc"):
        build_nested_assertion({}, **kw, encryption_jwk={**public, "use": "sig"})
    small = jwk.JWK.generate(kty="RSA", size=1024, kid="small").export_public(as_dict=True)
    with pytest.raises(ValueError, match="2048"):
        build_nested_assertion({}, **kw, encryption_jwk=small)
    ec_enc = jwk.JWK.generate(kty="EC", crv="P-256", kid="ec").export_public(as_dict=True)
    with pytest.raises(ValueError, match="RSA"):
        build_nested_assertion({}, **kw, encryption_jwk=ec_enc)


def test_a_loaded_signing_key_signs_as_its_pem_does(rsa_dev, ec_dev, enc_key):
    """``signing_key=`` (the client's key, loaded once) gives the same JWS as ``signing_key_pem=``;
    the key is given exactly once."""
    from cryptography.hazmat.primitives import serialization

    public = enc_key.export_public(as_dict=True)
    for dev in (rsa_dev, ec_dev):
        loaded = serialization.load_pem_private_key(dev.key_pem, password=None)
        token = build_nested_assertion(
            {"x": 1}, signing_key=loaded, certificate_pem=dev.cert_pem, encryption_jwk=public
        )
        inner = jwe.JWE()
        inner.deserialize(token, key=enc_key)
        signed = jws.JWS()
        signed.deserialize(inner.payload.decode())
        signed.verify(jwk.JWK.from_pem(dev.cert_pem))
        assert json.loads(signed.payload) == {"x": 1}
        assert signed.jose_header["x5t#S256"] == x5t_s256(dev.cert_pem)
    with pytest.raises(ValueError, match="once"):
        build_nested_assertion({}, certificate_pem=rsa_dev.cert_pem, encryption_jwk=public)
    with pytest.raises(ValueError, match="once"):
        build_nested_assertion(
            {}, signing_key_pem=rsa_dev.key_pem, signing_key=loaded, certificate_pem=None, encryption_jwk=public
        )
    with pytest.raises(ValueError, match="certificate"):
        build_nested_assertion(
            {}, signing_key=serialization.load_pem_private_key(rsa_dev.key_pem, password=None),
            certificate_pem=ec_dev.cert_pem, encryption_jwk=public,
        )  # fmt: skip


def test_private_members_of_the_jwk_are_ignored(rsa_dev, enc_key):
    """Given a full private JWK by mistake, only the public half is used."""
    token = build_nested_assertion(
        {"x": 1},
        signing_key_pem=rsa_dev.key_pem,
        certificate_pem=rsa_dev.cert_pem,
        encryption_jwk=enc_key.export_private(as_dict=True),
    )
    assert open_with_jwcrypto(token, enc_key, rsa_dev.cert_pem)[2] == {"x": 1}


def _open_with_either(token: str, keys: list[jwk.JWK], cert_pem: bytes) -> tuple[str, dict, dict, dict]:
    for key in keys:
        try:
            return (key["kid"], *open_with_jwcrypto(token, key, cert_pem))
        except Exception:  # noqa: BLE001 - not this key
            continue
    raise AssertionError("no published enc key opens the assertion")


def test_client_assertion_is_the_reference_backends(dev, enc_key, old_enc_key, jwks_body):
    """By default: exactly the reference's headers and claims, to a random enc key of the JWKS."""
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json=jwks_body))
    with NexiSoftPOSClient(
        BASE + "/", CLIENT_ID, "secret", dev.cert, dev.key, cache=TokenCache(), transport=transport
    ) as c:
        before = int(time.time())
        token = c.client_assertion(
            point_of_sale="1000000000000",
            terminal_ids=["10000000", "10000001"],
            username_merchant="shop@example.com",
            device_id="device-42",
        )
        after = int(time.time())
        used = {
            _open_with_either(
                c.client_assertion(point_of_sale="P", terminal_ids=["S"], username_merchant="shop@example.com"),
                [enc_key, old_enc_key],
                dev.cert_pem,
            )[0]
            for _ in range(24)
        }
    kid, jwe_header, jws_header, claims = _open_with_either(token, [enc_key, old_enc_key], dev.cert_pem)
    assert jwe_header == {"alg": "RSA-OAEP-256", "enc": "A128CBC-HS256"}  # no kid, no cty
    expected_alg = "RS256" if _is_rsa(dev.key_pem) else "ES256"
    assert jws_header == {"alg": expected_alg}  # no kid, no typ
    assert used == {"enc-current", "enc-old"}, used  # random among the enc keys (2^-23 to fail by chance)
    assert list(claims) == [
        "appId",
        "pointOfSale",
        "terminal_ids",
        "app_username_merchant",
        "app_deviceid",
        "iss",
        "sub",
        "aud",
        "iat",
        "exp",
        "jti",
    ]
    assert claims["appId"] == claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["pointOfSale"] == "1000000000000"
    assert claims["terminal_ids"] == ["10000000", "10000001"]
    assert claims["app_username_merchant"] == "shop@example.com"
    assert claims["app_deviceid"] == "device-42"
    assert claims["aud"] == BASE  # the environment's base URL, without the trailing slash
    assert before <= claims["iat"] <= after and claims["exp"] == claims["iat"] + 500
    assert str(uuid.UUID(claims["jti"], version=4)) == claims["jti"]


def test_client_assertion_older_shape_on_request(dev, enc_key, jwks_body):
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json=jwks_body))
    with NexiSoftPOSClient(
        BASE + "/", CLIENT_ID, "secret", dev.cert, dev.key, cache=TokenCache(), transport=transport
    ) as c:
        token = c.client_assertion(
            point_of_sale="POS42",
            terminal_ids=["S42", "M42"],
            username_merchant="shop@example.com",
            lifetime=200,
            username_claim="username_merchant",
            enc="A256GCM",
            minimal_headers=False,
            key_choice="first",
        )
        with pytest.raises(ValueError, match="lifetime"):
            c.client_assertion(point_of_sale="P", terminal_ids=["S"], username_merchant="a@b.example", lifetime=901)
        assert c.client_assertion(
            point_of_sale="P", terminal_ids=["S"], username_merchant="a@b.example", lifetime=900, key_choice="first"
        )
    jwe_header, jws_header, claims = open_with_jwcrypto(token, enc_key, dev.cert_pem)
    assert jwe_header == {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "enc-current", "cty": "JWT"}
    assert jws_header["typ"] == "JWT" and jws_header["x5t#S256"] == cert_thumbprint(dev.cert_pem)
    assert set(claims) == {
        "appId",
        "pointOfSale",
        "terminal_ids",
        "username_merchant",
        "iss",
        "sub",
        "aud",
        "iat",
        "exp",
        "jti",
    }
    assert claims["exp"] == claims["iat"] + 200
