"""The MobilePay and axept token use cases in process, with a fixed clock: the exact header and
claims of each provider's sample token, MobilePay's own RS256 key ring (certificate, x5t,
rotation, homes made before it existed), and the seal (another profile's verifier refuses them).

Signatures are checked with jwcrypto, independently of tessera's JOSE layer."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import time
from datetime import UTC

import pytest
from cryptography import x509
from jwcrypto import jwk, jwt

from tessera.core import tokens
from tessera.core.clients import ClientCredentials, authenticate_secret
from tessera.core.context import Core, CoreConfig
from tessera.core.flows import axept as axept_flow
from tessera.core.flows import mobilepay as mp
from tessera.core.keys import KeyRing, _new_stored_key, create_initial_keys, ensure_ring_keys, ring_of, rotate
from tessera.core.models import ApiKey, Client, Merchant
from tessera.core.secrets import hash_secret
from tessera.errors import InvalidClient, InvalidScope, InvalidToken, UnauthorizedClient
from tessera.jose.errors import JoseError
from tessera.jose.jwt import verify_own_jwt
from tessera.storage.sql import SQLStore
from tests.support import migrated

ISSUER = "https://as.example"
KEK = b"k" * 32
PEPPER = b"p" * 32
SECRET = "s3cret-s3cret-s3cret-s3cret-s3cret"
VAT = "DK12345678"


def _store(tmp_path, name="t.db") -> SQLStore:
    return SQLStore(migrated.sqlite_url(tmp_path / name))


@pytest.fixture(scope="module")
def _template(tmp_path_factory):
    """One database with the keys (four RSA-2048 among them), the client and the merchants, made once
    per module: each test gets a copy of the file, so no test sees another's writes."""
    path = tmp_path_factory.mktemp("template") / "t.db"
    store = _store(path.parent)
    now = int(time.time())
    create_initial_keys(store, KEK, signing_alg="ES256", enc_bits=2048, now=now)
    store.create_client(Client("integrator-1", "Kasse Systems A/S", hash_secret(SECRET, PEPPER), created_at=now))
    store.create_merchant(Merchant(42, "Bageriet", VAT, now))
    store.grant(42, "integrator-1", now)
    store.create_merchant(Merchant(43, "Other", "FI87654321", now))
    store.close()
    assert not path.with_name("t.db-wal").exists()
    return path, now


@pytest.fixture
def env(tmp_path, _template):
    template, now = _template
    shutil.copyfile(template, tmp_path / "t.db")
    store = SQLStore(f"sqlite:///{tmp_path / 't.db'}")
    core = Core(
        config=CoreConfig(issuer=ISSUER), store=store, keys=KeyRing(store, KEK), pepper=PEPPER, clock=lambda: now
    )
    yield store, core, now
    store.close()


def _b64url_json(segment: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _mp_token(core, *, method="client_secret_basic", vat=None, scope=None) -> mp.TokenResult:
    creds = ClientCredentials("integrator-1", SECRET, method)
    return mp.token(
        core,
        mp.TokenRequest(creds, "client_credentials", vat, scope),
        ttl=3700,
        authenticate=lambda c: authenticate_secret(core, c),
    )


def _published(core, now, ring=None) -> dict:
    from datetime import datetime

    return core.keys.get().jwks("sig", datetime.fromtimestamp(now, tz=UTC), ring=ring)


def test_mobilepay_token_is_the_providers_sample(env):
    store, core, now = env
    result = _mp_token(core, vat=VAT)
    assert (result.expires_in, result.token_type, result.scope) == (3700, "Bearer", "integrator_scope")
    header = _b64url_json(result.access_token.split(".")[0])
    jwks = _published(core, now, ring="mobilepay")
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    assert set(header) == {"alg", "kid", "x5t", "typ"}
    assert header["alg"] == "RS256" and header["typ"] == "at+jwt"
    der = base64.b64decode(key["x5c"][0])
    assert header["x5t"] == key["x5t"] == base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()
    cert = x509.load_der_x509_certificate(der)
    numbers = cert.public_key().public_numbers()
    assert numbers.n == int.from_bytes(base64.urlsafe_b64decode(key["n"] + "=="), "big")

    checked = jwt.JWT(jwt=result.access_token, key=jwk.JWKSet.from_json(json.dumps(jwks)), algs=["RS256"])
    claims = json.loads(checked.claims)
    assert claims == {
        "iss": ISSUER + "/integrator-authentication",
        "aud": [ISSUER + "/integrator-authentication/resources", "integrator_scope"],
        "prf": "mobilepay",
        "env": "staging",
        "sub": "integrator-1",
        "client_id": "integrator-1",
        "integrator_id": "integrator-1",
        "integrator_name": "Kasse Systems A/S",
        "integratorclient_name": "Kasse Systems A/S",
        "scope": ["integrator_scope"],
        "merchant_vat": VAT,
        "iat": now,
        "nbf": now,
        "exp": now + 3700,
        "jti": claims["jti"],
    }
    # still tessera's own token, for MobilePay only
    assert (
        tokens.verify_access_token(core, result.access_token, thumbprint=None, profile="mobilepay")["merchant_vat"]
        == VAT
    )
    for other in ("native", "axept", "nexi-softpos", "b2binpay"):
        with pytest.raises(InvalidToken):
            tokens.verify_access_token(core, result.access_token, thumbprint=None, profile=other)


def test_mobilepay_without_vat_has_no_merchant_claim(env):
    _, core, _ = env
    claims = _mp_token(core).claims
    assert "merchant_vat" not in claims and claims["scope"] == ["integrator_scope"]


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_both_advertised_methods_are_accepted(env, method):
    _, core, _ = env
    assert _mp_token(core, method=method).claims["client_id"] == "integrator-1"


def test_no_secret_is_refused(env):
    _, core, _ = env
    with pytest.raises(InvalidClient):
        _mp_token(core, method="none")


def test_merchant_rules(env):
    store, core, now = env
    with pytest.raises(UnauthorizedClient):
        _mp_token(core, vat="FI87654321")  # exists, did not grant
    with pytest.raises(UnauthorizedClient):
        _mp_token(core, vat="DK99999999")  # unknown
    store.grant(43, "integrator-1", now)  # announced: the cached answer is dropped
    assert _mp_token(core, vat="FI87654321").claims["merchant_vat"] == "FI87654321"


def test_scope_parameter(env):
    _, core, _ = env
    assert _mp_token(core, scope="integrator_scope").scope == "integrator_scope"
    for bad in ("offline_access", "integrator_scope offline_access", "openid", ""):
        with pytest.raises(InvalidScope):
            _mp_token(core, scope=bad)


def test_other_profiles_keep_es256_and_the_shared_ring(env):
    _, core, now = env
    issued = tokens.issue_access_token(core, profile="native", client_id="integrator-1", ttl=60)
    header = _b64url_json(issued.token.split(".")[0])
    assert header["alg"] == "ES256" and "x5t" not in header
    everything = _published(core, now)
    mobilepay = _published(core, now, ring="mobilepay")
    assert {k["alg"] for k in mobilepay["keys"]} == {"RS256"} and len(mobilepay["keys"]) == 2  # current + next
    assert all("x5c" in k and "x5t" in k and "tessera_ring" not in k for k in mobilepay["keys"])
    assert {k["kid"] for k in mobilepay["keys"]} < {k["kid"] for k in everything["keys"]}
    assert everything["keys"][0]["alg"] == "ES256"  # the shared current key first


def test_tampered_x5t_is_refused(env):
    _, core, now = env
    token = _mp_token(core).access_token
    head, payload, sig = token.split(".")
    header = _b64url_json(head)
    header["x5t"] = "A" * 27
    forged_head = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    from datetime import datetime

    with pytest.raises(JoseError):
        verify_own_jwt(
            f"{forged_head}.{payload}.{sig}", core.keys.get(), typ="at+jwt", now=datetime.fromtimestamp(now, tz=UTC)
        )


def test_a_home_made_before_the_ring_gets_it_on_start(tmp_path):
    store = _store(tmp_path, "old.db")
    now = int(time.time())
    store.save_server_keys(
        [
            _new_stored_key(use, status, alg="ES256", bits=2048, kek=KEK, now=now)
            for use in ("sig", "enc")
            for status in ("current", "next")
        ]
    )
    assert not [k for k in store.list_server_keys() if ring_of(k)]
    core = Core(
        config=CoreConfig(issuer=ISSUER), store=store, keys=KeyRing(store, KEK), pepper=PEPPER, clock=lambda: now
    )
    key = core.keys.get().signing_key_for("mobilepay")
    assert key.alg == "RS256" and key.x5t
    rings = sorted(k.status for k in store.list_server_keys() if ring_of(k) == "mobilepay")
    assert rings == ["current", "next"]
    assert ensure_ring_keys(store, KEK, now=now) == []  # nothing more to create
    store.close()


def test_workers_racing_to_create_the_ring_agree(tmp_path):
    store = _store(tmp_path, "race.db")
    now = int(time.time())
    store.save_server_keys(
        [_new_stored_key(use, "current", alg="ES256", bits=2048, kek=KEK, now=now) for use in ("sig", "enc")]
    )
    stored = store.list_server_keys()
    first = ensure_ring_keys(store, KEK, now=now, stored=stored)
    second = ensure_ring_keys(store, KEK, now=now + 1, stored=stored)  # both saw an empty ring
    assert len(first) == len(second) == 2
    a, b = KeyRing(store, KEK).get(), KeyRing(store, KEK).get()
    winner = min((k for k in first + second if k.status == "current"), key=lambda k: (k.created_at, k.kid))
    assert a.signing_key_for("mobilepay").kid == b.signing_key_for("mobilepay").kid == winner.kid
    out = rotate(store, KEK, "sig", retain_seconds=3730, signing_alg="ES256", enc_bits=2048, now=now + 2)
    currents = [k for k in store.list_server_keys() if ring_of(k) == "mobilepay" and k.status == "current"]
    assert [k.kid for k in currents] == [out["rings"]["mobilepay"]["current"]]
    store.close()


def test_rotation_promotes_the_published_next_key_of_each_ring(env):
    store, core, now = env
    before = _published(core, now, ring="mobilepay")
    nxt = next(k.kid for k in store.list_server_keys() if ring_of(k) == "mobilepay" and k.status == "next")
    old = core.keys.get().signing_key_for("mobilepay").kid
    token = _mp_token(core).access_token
    assert nxt in {k["kid"] for k in before["keys"]}  # published before it signs
    out = rotate(store, KEK, "sig", retain_seconds=3730, signing_alg="ES256", enc_bits=2048, now=now)
    ring = out["rings"]["mobilepay"]
    assert (ring["current"], ring["retired"]) == (nxt, old) and ring["retire_at"] == now + 3730
    assert set(out) >= {"use", "retired", "retire_at", "current", "next"}  # the shared ring, as before
    keys = core.keys.reload()
    assert keys.signing_key_for("mobilepay").kid == nxt and keys.signing_key_for("mobilepay").alg == "RS256"
    assert keys.signing_key.alg == "ES256" and keys.signing_key.kid == out["current"]
    assert {old, nxt, ring["next"]} <= {k["kid"] for k in _published(core, now, ring="mobilepay")["keys"]}
    assert tokens.verify_access_token(
        core, token, thumbprint=None, profile="mobilepay"
    )  # the retired key still verifies
    assert _b64url_json(_mp_token(core).access_token.split(".")[0])["kid"] == nxt


def test_axept_token_is_the_providers_sample(env):
    store, core, now = env
    result = axept_flow.issue(
        core, ApiKey(merchant_id=13327, key_id=1, key_hash="x", enabled=True, created_at=now), ttl=1800
    )
    header = _b64url_json(result.token.split(".")[0])
    assert header["alg"] == "ES256" and header["typ"] == "at+jwt"
    claims = json.loads(
        jwt.JWT(jwt=result.token, key=jwk.JWKSet.from_json(json.dumps(_published(core, now))), algs=["ES256"]).claims
    )
    assert claims["unique_name"] == "13327"
    assert claims["iat"] == claims["nbf"] == now and claims["exp"] == now + 1800
    assert claims["iss"] == ISSUER and claims["aud"] == "axeptConnectCloud-merchant-client"
    assert "merchantId" not in claims and "keyId" not in claims
    assert result.expires_at == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims["exp"]))
    assert tokens.verify_access_token(core, result.token, thumbprint=None, profile="axept")["unique_name"] == "13327"
    with pytest.raises(InvalidToken):
        tokens.verify_access_token(core, result.token, thumbprint=None, profile="mobilepay")
