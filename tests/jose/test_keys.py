"""keys.py: generation, RFC 7638 kids, sealing at rest, public JWK export."""

from __future__ import annotations

import json

import pytest
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey
from jwcrypto import jwk as jjwk

from tessera.jose import (
    JoseError,
    generate_encryption_key,
    generate_signing_key,
    open_private_key,
    public_jwk,
    seal_private_key,
)
from tessera.jose.keys import PRIVATE_MEMBERS

KEK = bytes(range(32))
OTHER_KEK = bytes(range(1, 33))


@pytest.fixture(scope="module")
def all_keys():
    return {
        "ES256": generate_signing_key("ES256"),
        "RS256": generate_signing_key("RS256"),
        "EdDSA": generate_signing_key("EdDSA"),
        "enc": generate_encryption_key(),
    }


# ----------------------------------------------------------------- generation


@pytest.mark.parametrize(
    ("alg", "cls", "shape"),
    [("ES256", ECKey, "P-256"), ("RS256", RSAKey, 2048), ("EdDSA", OKPKey, "Ed25519")],
)
def test_generate_signing_key_shape(alg, cls, shape):
    key = generate_signing_key(alg)
    assert isinstance(key, cls)
    assert key.is_private
    assert key.alg == alg and key.get("use") == "sig"
    if cls is RSAKey:
        assert key.private_key.key_size == shape
    else:
        assert key.curve_name == shape
    assert key.kid == key.thumbprint()


def test_generate_signing_key_defaults_to_es256():
    assert generate_signing_key().alg == "ES256"


@pytest.mark.parametrize("alg", ["HS256", "ES512", "none", "PS256", "RSA-OAEP-256", ""])
def test_generate_signing_key_refuses_other_algs(alg):
    with pytest.raises(JoseError):
        generate_signing_key(alg)


def test_generate_encryption_key_shape(all_keys):
    key = all_keys["enc"]
    assert isinstance(key, RSAKey) and key.is_private
    assert key.alg == "RSA-OAEP-256" and key.get("use") == "enc"
    assert key.private_key.key_size == 2048
    assert key.kid == key.thumbprint()


@pytest.mark.parametrize("bits", [1024, 2040, 2047, 0])
def test_generate_encryption_key_refuses_small(bits):
    with pytest.raises(JoseError):
        generate_encryption_key(bits)


@pytest.mark.parametrize("name", ["ES256", "RS256", "EdDSA", "enc"])
def test_kid_is_the_rfc7638_thumbprint_per_jwcrypto(all_keys, name):
    key = all_keys[name]
    assert jjwk.JWK(**public_jwk(key)).thumbprint() == key.kid


def test_rfc7638_section_3_1_example_thumbprint():
    # RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint.
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMs"
        "tn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1"
        "n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    key = RSAKey.import_key({"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"})
    assert public_jwk(key)["kid"] == "2011-04-29"
    assert key.thumbprint() == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


# ----------------------------------------------------------------- sealing


@pytest.mark.parametrize("name", ["ES256", "RS256", "EdDSA", "enc"])
def test_seal_open_round_trip(all_keys, name):
    key = all_keys[name]
    blob = seal_private_key(key, KEK)
    version, nonce, ct = blob.split(".")
    assert version == "v1" and nonce and ct
    opened = open_private_key(blob, KEK, key.kid)
    assert opened.as_dict(private=True) == key.as_dict(private=True)
    assert opened.kid == key.kid and opened.alg == key.alg and opened.is_private


@pytest.mark.parametrize("name", ["RS256", "enc"])
def test_an_opened_rsa_key_is_joserfcs_own_import(all_keys, name):
    """Opened RSA keys skip OpenSSL's consistency check (they came out of AES-GCM under the KEK): the
    key object must be the one joserfc's checked import makes, and sign and decrypt alike."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from joserfc.jwk import JWKRegistry

    key = all_keys[name]
    opened = open_private_key(seal_private_key(key, KEK), KEK, key.kid)
    checked = JWKRegistry.import_key(key.as_dict(private=True))
    assert type(opened) is type(checked) is RSAKey
    assert opened.dict_value == checked.dict_value and opened.thumbprint() == checked.thumbprint()
    assert opened.private_key.private_numbers() == checked.private_key.private_numbers()
    message = b"tessera"
    pss = padding.PKCS1v15()
    checked.public_key.verify(opened.private_key.sign(message, pss, hashes.SHA256()), message, pss, hashes.SHA256())
    oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    assert opened.private_key.decrypt(checked.public_key.encrypt(message, oaep), oaep) == message


def test_an_rsa_jwk_without_its_crt_members_is_left_to_joserfc(all_keys):
    """A sealed RSA JWK without the CRT members (not one tessera writes) is still opened, by joserfc."""
    import os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from joserfc.util import urlsafe_b64encode

    key = all_keys["RS256"]
    bare = {k: v for k, v in key.as_dict(private=True).items() if k not in ("p", "q", "dp", "dq", "qi")}
    nonce = os.urandom(12)
    ct = AESGCM(KEK).encrypt(nonce, json.dumps(bare).encode(), key.kid.encode())
    sealed = ".".join(("v1", urlsafe_b64encode(nonce).decode(), urlsafe_b64encode(ct).decode()))
    opened = open_private_key(sealed, KEK, key.kid)
    assert opened.private_key.private_numbers() == key.private_key.private_numbers()


def test_seal_is_randomised(all_keys):
    key = all_keys["ES256"]
    assert seal_private_key(key, KEK) != seal_private_key(key, KEK)


def test_sealed_blob_does_not_contain_key_material(all_keys):
    key = all_keys["RS256"]
    blob = seal_private_key(key, KEK)
    for member in ("d", "p", "q"):
        assert key.as_dict(private=True)[member] not in blob
    assert key.kid not in blob


def test_open_with_wrong_kek_fails(all_keys):
    key = all_keys["ES256"]
    blob = seal_private_key(key, KEK)
    with pytest.raises(JoseError) as err:
        open_private_key(blob, OTHER_KEK, key.kid)
    assert err.value.reason == "sealed key could not be opened"


@pytest.mark.parametrize("part", [1, 2])
def test_open_tampered_blob_fails(all_keys, part):
    key = all_keys["EdDSA"]
    parts = seal_private_key(key, KEK).split(".")
    seg = parts[part]
    i = len(seg) // 2
    parts[part] = seg[:i] + ("A" if seg[i] != "A" else "B") + seg[i + 1 :]
    with pytest.raises(JoseError):
        open_private_key(".".join(parts), KEK, key.kid)


def test_open_truncated_blob_fails(all_keys):
    key = all_keys["EdDSA"]
    blob = seal_private_key(key, KEK)
    with pytest.raises(JoseError):
        open_private_key(blob[:-6], KEK, key.kid)


def test_open_with_other_kid_fails(all_keys):
    key, other = all_keys["ES256"], all_keys["EdDSA"]
    blob = seal_private_key(key, KEK)
    with pytest.raises(JoseError):
        open_private_key(blob, KEK, other.kid)


@pytest.mark.parametrize(
    "blob", ["", "v1", "v1.a", "v2.AAAAAAAAAAAAAAAA.AAAA", "v1.AAAA.AAAA", "v1.!!!!.????", "v1.AAAAAAAAAAAAAAAA.AAAA.x"]
)
def test_open_malformed_blob_fails(blob):
    with pytest.raises(JoseError):
        open_private_key(blob, KEK, "kid")


@pytest.mark.parametrize("kek", [b"", bytes(16), bytes(31), bytes(33), "x" * 32])
def test_kek_must_be_32_bytes(all_keys, kek):
    with pytest.raises(JoseError):
        seal_private_key(all_keys["ES256"], kek)
    with pytest.raises(JoseError):
        open_private_key("v1.AAAAAAAAAAAAAAAA.AAAA", kek, "kid")


def test_seal_refuses_public_and_symmetric_keys(all_keys):
    public = ECKey.import_key(public_jwk(all_keys["ES256"]))
    with pytest.raises(JoseError):
        seal_private_key(public, KEK)
    with pytest.raises(JoseError):
        seal_private_key(OctKey.generate_key(256, auto_kid=True), KEK)


def test_error_reasons_never_echo_key_material(all_keys):
    key = all_keys["RS256"]
    blob = seal_private_key(key, KEK)
    with pytest.raises(JoseError) as err:
        open_private_key(blob, OTHER_KEK, key.kid)
    text = str(err.value) + err.value.reason
    assert key.as_dict(private=True)["d"][:16] not in text and blob[3:20] not in text


# ----------------------------------------------------------------- public JWK

EXPECTED_MEMBERS = {
    "ES256": {"kty", "crv", "x", "y", "kid", "use", "alg"},
    "RS256": {"kty", "n", "e", "kid", "use", "alg"},
    "EdDSA": {"kty", "crv", "x", "kid", "use", "alg"},
    "enc": {"kty", "n", "e", "kid", "use", "alg"},
}


@pytest.mark.parametrize("name", ["ES256", "RS256", "EdDSA", "enc"])
def test_public_jwk_has_public_members_only(all_keys, name):
    key = all_keys[name]
    jwk = public_jwk(key)
    assert set(jwk) == EXPECTED_MEMBERS[name]
    assert not PRIVATE_MEMBERS & set(jwk)
    private = key.as_dict(private=True)
    text = json.dumps(jwk)
    for member in PRIVATE_MEMBERS & set(private):
        assert private[member] not in text
    assert jwk["kid"] == key.kid and jwk["alg"] == key.alg


@pytest.mark.parametrize("name", ["ES256", "RS256", "EdDSA", "enc"])
def test_public_jwk_is_a_public_key_for_jwcrypto(all_keys, name):
    jc = jjwk.JWK(**public_jwk(all_keys[name]))
    assert not jc.has_private and jc.has_public


def test_public_jwk_refuses_symmetric_keys():
    with pytest.raises(JoseError):
        public_jwk(OctKey.generate_key(256, auto_kid=True))
