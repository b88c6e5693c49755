"""tokens.verify_access_token: a worker verifies the signature of a given token once (same key
set, key still live); issuer, expiry, binding and revocation are checked on every call."""

from __future__ import annotations

import base64
import json

import pytest

from tessera.core import tokens
from tessera.core.context import Core, CoreConfig
from tessera.core.models import CertificateRecord, Client
from tessera.core.ports import Capabilities
from tessera.errors import InvalidToken


class Keys:
    def __init__(self):
        self.live = True

    def verification_key(self, kid, now):
        return object() if self.live and kid == "k1" else None


class Ring:
    def __init__(self):
        self.keys = Keys()

    def get(self):
        return self.keys


class Store:
    def __init__(self):
        self.marks = set()

    def get_artifact(self, kind, key):
        return object() if kind == tokens.REVOKED_TOKEN and key in self.marks else None

    def get_client(self, client_id):
        return Client(client_id, "app", None) if client_id == "app" else None

    def get_certificate(self, thumbprint):
        return CertificateRecord("01", "app", thumbprint, "CN=app", 0, 10**10, "") if thumbprint == "T" else None

    def __getattr__(self, name):
        return lambda *a, **kw: None


def _token(jti: str) -> str:
    head = (
        base64.urlsafe_b64encode(json.dumps({"kid": "k1", "alg": "ES256", "typ": "at+jwt"}).encode())
        .decode()
        .rstrip("=")
    )
    return f"{head}.{jti}.sig"


@pytest.fixture
def setup(monkeypatch):
    clock = [1000]
    store = Store()
    core = Core(
        config=CoreConfig(issuer="https://as.example"),
        store=store,
        keys=Ring(),
        pepper=b"p",
        clock=lambda: clock[0],
        capabilities=Capabilities(),
    )  # none: the stand-in store above answers every name
    verified = []

    def fake_verify(token, keys, *, typ, now):
        verified.append(token)
        return {
            "iss": "https://as.example",
            "aud": "https://as.example",
            "prf": "native",
            "env": "staging",
            "exp": 2000,
            "jti": token.split(".")[1],
            "client_id": "app",
            "cnf": {"x5t#S256": "T"},
        }

    monkeypatch.setattr(tokens, "verify_own_jwt", fake_verify)
    return core, store, clock, verified


def test_a_token_is_verified_once_and_checked_every_time(setup):
    core, store, clock, verified = setup
    t = _token("a")
    for _ in range(3):
        assert tokens.verify_access_token(core, t, thumbprint="T", profile="native")["jti"] == "a"
    assert verified == [t]
    with pytest.raises(InvalidToken) as e:  # the binding, on every call
        tokens.verify_access_token(core, t, thumbprint="other", profile="native")
    assert e.value.reason == "token_binding_mismatch"
    store.marks.add("a")  # the revocation (no exact notices here: asked each time)
    with pytest.raises(InvalidToken) as e:
        tokens.verify_access_token(core, t, thumbprint="T", profile="native")
    assert e.value.reason == "token_revoked"
    store.marks.clear()
    clock[0] = 2000  # the expiry
    with pytest.raises(InvalidToken) as e:
        tokens.verify_access_token(core, t, thumbprint="T", profile="native")
    assert e.value.reason == "token_expired"
    assert verified == [t]


def test_new_keys_or_a_lapsed_key_verify_again(setup):
    core, store, clock, verified = setup
    t = _token("b")
    tokens.verify_access_token(core, t, thumbprint="T", profile="native")
    core.keys.keys = Keys()  # the key set changed (rotation): verified again
    tokens.verify_access_token(core, t, thumbprint="T", profile="native")
    assert verified == [t, t]
    core.keys.keys.live = False  # the key lapsed: not taken from memory
    tokens.verify_access_token(core, t, thumbprint="T", profile="native")
    assert verified == [t, t, t]


def test_memory_is_bounded(setup, monkeypatch):
    core, store, clock, verified = setup
    monkeypatch.setattr(tokens, "VERIFIED_TOKENS", 3)
    for i in range(10):
        tokens.verify_access_token(core, _token(f"t{i}"), thumbprint="T", profile="native")
    assert len(core.verified_tokens) <= 3
