"""keyset.py: validation of the server's keys, JWKS publication and lapsing, key lookup."""

from __future__ import annotations

import dataclasses
import warnings
from datetime import datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import ECKey, RSAKey

import tessera.jose.keyset as keyset_module
from tessera.jose import JoseError, ManagedKey, ServerKeys, generate_encryption_key, generate_signing_key
from tessera.jose.keys import PRIVATE_MEMBERS, public_jwk

from .conftest import DAY, NOW, managed


@pytest.fixture(scope="module")
def es():
    return generate_signing_key("ES256")


@pytest.fixture(scope="module")
def enc():
    return generate_encryption_key()


# ----------------------------------------------------------------- validation


def test_minimal_key_set(es):
    keys = ServerKeys([managed(es, "sig", "current")])
    assert keys.signing_key.kid == es.kid
    assert keys.jwks("enc", NOW) == {"keys": []}
    assert keys.decryption_key(es.kid, NOW) is None


def test_refuses_duplicate_kid(es):
    with pytest.raises(JoseError, match="duplicate kid"):
        ServerKeys([managed(es, "sig", "current"), managed(es, "sig", "next")])


def test_refuses_rsa_below_2048():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        weak = RSAKey.import_key(raw, parameters={"alg": "RS256", "use": "sig"})
    weak.ensure_kid()
    with pytest.raises(JoseError, match="2048"):
        ServerKeys([managed(weak, "sig", "current")])


def test_refuses_weak_rsa_encryption_key(es):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        weak = RSAKey.import_key(raw, parameters={"alg": "RSA-OAEP-256", "use": "enc"})
    weak.ensure_kid()
    with pytest.raises(JoseError, match="2048"):
        ServerKeys([managed(es, "sig", "current"), managed(weak, "enc", "current")])


def test_refuses_two_current_keys_for_a_use(es):
    other = generate_signing_key("EdDSA")
    with pytest.raises(JoseError, match="more than one current"):
        ServerKeys([managed(es, "sig", "current"), managed(other, "sig", "current")])


def test_refuses_a_use_without_current_key(es, enc):
    with pytest.raises(JoseError, match="no current enc"):
        ServerKeys([managed(es, "sig", "current"), managed(enc, "enc", "next")])
    with pytest.raises(JoseError, match="no current sig"):
        ServerKeys([managed(es, "sig", "retired", NOW + DAY)])


@pytest.mark.parametrize(
    "change",
    [
        {"use": "both"},
        {"status": "active"},
        {"alg": "ES384"},
        {"alg": "RS256"},  # EC key recorded as RSA
        {"kid": "another-kid"},
        {"kid": ""},
        {"use": "enc"},  # ES256 is not an encryption alg
    ],
)
def test_refuses_inconsistent_records(es, change):
    record = dataclasses.replace(managed(es, "sig", "current"), **change)
    with pytest.raises(JoseError):
        ServerKeys([record])


def test_refuses_public_keys(es):
    public = ECKey.import_key(public_jwk(es))
    with pytest.raises(JoseError, match="private"):
        ServerKeys([ManagedKey(es.kid, "sig", "ES256", "current", public)])


def test_refuses_rsa1_5_encryption_record(es, enc):
    record = ManagedKey(enc.kid, "enc", "RSA1_5", "current", enc)
    with pytest.raises(JoseError):
        ServerKeys([managed(es, "sig", "current"), record])


def test_refuses_naive_retire_at(es):
    other = generate_signing_key("ES256")
    with pytest.raises(JoseError, match="timezone"):
        ServerKeys([managed(es, "sig", "current"), managed(other, "sig", "retired", datetime(2031, 1, 1))])


def test_signing_key_is_the_current_sig_key(ring):
    assert ring.keys.signing_key is ring.sig_current


# ----------------------------------------------------------------- JWKS


def test_jwks_order_and_content_sig(ring):
    published = ring.keys.jwks("sig", NOW)["keys"]
    assert [k["kid"] for k in published] == [ring.sig_current.kid, ring.sig_next.kid, ring.sig_retired.kid]
    for jwk, mk in zip(published, (ring.sig_current, ring.sig_next, ring.sig_retired), strict=True):
        assert jwk == public_jwk(mk.key)
        assert jwk["use"] == "sig" and jwk["alg"] == mk.alg
        assert not PRIVATE_MEMBERS & set(jwk)


def test_jwks_order_and_content_enc(ring):
    published = ring.keys.jwks("enc", NOW)["keys"]
    assert [k["kid"] for k in published] == [ring.enc_current.kid, ring.enc_next.kid, ring.enc_retired.kid]
    assert all(
        k["use"] == "enc" and k["alg"] == "RSA-OAEP-256" and set(k) == {"kty", "n", "e", "kid", "use", "alg"}
        for k in published
    )


def test_jwks_retired_key_lapses_and_cache_follows_time(ring):
    kids = lambda now: [k["kid"] for k in ring.keys.jwks("sig", now)["keys"]]  # noqa: E731
    assert ring.sig_retired.kid in kids(NOW)
    assert ring.sig_retired.kid not in kids(NOW + DAY)  # retire_at is exclusive
    assert ring.sig_retired.kid not in kids(NOW + 3 * DAY)
    # clocks can step back: the earlier view comes back, including the key lapsed since
    assert ring.sig_retired.kid in kids(NOW)
    assert ring.sig_lapsed.kid in kids(NOW - 2 * DAY)
    assert ring.sig_lapsed.kid not in kids(NOW)


def test_jwks_is_cached_per_use(ring, monkeypatch):
    keys = ServerKeys(list(ring.keys.keys))
    calls = []
    real = keyset_module.public_jwk
    monkeypatch.setattr(keyset_module, "public_jwk", lambda key: calls.append(key) or real(key))
    first = keys.jwks("sig", NOW)
    assert len(calls) == 3
    for _ in range(5):
        assert keys.jwks("sig", NOW) == first
    keys.jwks("sig", NOW + 2 * DAY)  # recomputed (a key lapsed) from the per-key cache
    assert len(calls) == 3


def test_jwks_result_cannot_corrupt_the_cache(ring):
    first = ring.keys.jwks("sig", NOW)
    first["keys"][0]["d"] = "oops"
    first["keys"].clear()
    again = ring.keys.jwks("sig", NOW)
    assert len(again["keys"]) == 3 and "d" not in again["keys"][0]


def test_jwks_refuses_bad_arguments(ring):
    with pytest.raises(JoseError):
        ring.keys.jwks("both", NOW)
    with pytest.raises(JoseError):
        ring.keys.jwks("sig", NOW.replace(tzinfo=None))


# ----------------------------------------------------------------- lookup


@pytest.mark.parametrize("name", ["enc_current", "enc_next", "enc_retired"])
def test_decryption_key_accepts_live_enc_keys(ring, name):
    mk = getattr(ring, name)
    assert ring.keys.decryption_key(mk.kid, NOW) is mk


def test_decryption_key_refuses_lapsed_key(ring):
    assert ring.keys.decryption_key(ring.enc_lapsed.kid, NOW) is None
    assert ring.keys.decryption_key(ring.enc_retired.kid, NOW + DAY) is None
    assert ring.keys.decryption_key(ring.enc_lapsed.kid, NOW - 2 * DAY) is ring.enc_lapsed


@pytest.mark.parametrize("name", ["sig_current", "sig_next", "sig_retired"])
def test_decryption_key_refuses_sig_keys(ring, name):
    assert ring.keys.decryption_key(getattr(ring, name).kid, NOW) is None


@pytest.mark.parametrize("kid", [None, "", "unknown", 42])
def test_decryption_key_unknown_or_missing_kid(ring, kid):
    assert ring.keys.decryption_key(kid, NOW) is None


@pytest.mark.parametrize("name", ["sig_current", "sig_next", "sig_retired"])
def test_verification_key_accepts_live_sig_keys(ring, name):
    mk = getattr(ring, name)
    assert ring.keys.verification_key(mk.kid, NOW) is mk


def test_verification_key_refuses_lapsed_enc_and_unknown(ring):
    assert ring.keys.verification_key(ring.sig_lapsed.kid, NOW) is None
    assert ring.keys.verification_key(ring.enc_current.kid, NOW) is None
    assert ring.keys.verification_key("nope", NOW) is None
    assert ring.keys.verification_key(None, NOW) is None


def test_lookup_requires_aware_now(ring):
    with pytest.raises(JoseError):
        ring.keys.decryption_key(ring.enc_current.kid, NOW.replace(tzinfo=None))


def test_retired_key_without_retire_at_counts_as_lapsed(es):
    old = generate_signing_key("ES256")
    keys = ServerKeys([managed(es, "sig", "current"), managed(old, "sig", "retired")])
    assert keys.verification_key(old.kid, NOW) is None
    assert [k["kid"] for k in keys.jwks("sig", NOW)["keys"]] == [es.kid]
