"""tessera.core.keys in process: initial keys, rotation of each ring (promote next, retire current,
publish a new next), a damaged home, rings added to an old home, and the KeyRing's reload rules.
The live rotation (tessera keys rotate against a running server) is test_keys_rotation.py."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from tessera.core import keys
from tessera.core.keys import KeyRing, ensure_ring_keys, ring_of, rotate
from tessera.jose.keyset import PROFILE_RINGS
from tessera.storage.memory import MemoryStore
from tests.core.conftest import KEK


@pytest.fixture
def store(_server_keys):
    s = MemoryStore()
    s.save_server_keys(list(_server_keys))
    return s


def by_status(store, use, ring=None):
    out: dict[str, list[str]] = {}
    for k in store.list_server_keys():
        if k.use == use and ring_of(k) == ring:
            out.setdefault(k.status, []).append(k.kid)
    return out


def test_initial_keys_a_current_and_a_next_per_use_and_ring(store):
    for use in keys.USES:
        assert {s: len(v) for s, v in by_status(store, use).items()} == {"current": 1, "next": 1}
    for ring in PROFILE_RINGS:
        assert {s: len(v) for s, v in by_status(store, "sig", ring).items()} == {"current": 1, "next": 1}
    assert ensure_ring_keys(store, KEK, now=1) == []  # nothing missing


def test_rotation_promotes_next_and_retires_current(store):
    before = by_status(store, "enc")
    now = int(time.time())
    result = rotate(store, KEK, "enc", retain_seconds=600, signing_alg="ES256", enc_bits=2048, now=now)
    after = by_status(store, "enc")
    assert result["retired"] == before["current"][0] and after["current"] == before["next"]
    assert before["current"][0] in after["retired"] and len(after["next"]) == 1 and "rings" not in result
    ring = KeyRing(store, KEK)
    assert {k.kid for k in ring.get().keys if k.use == "enc"} >= {*after["current"], *after["next"], *after["retired"]}


def test_sig_rotation_rotates_every_ring(store):
    rings_before = {ring: by_status(store, "sig", ring) for ring in PROFILE_RINGS}
    result = rotate(store, KEK, "sig", retain_seconds=600, signing_alg="ES256", enc_bits=2048, now=int(time.time()))
    for ring in PROFILE_RINGS:
        assert by_status(store, "sig", ring)["current"] == rings_before[ring]["next"]
        assert result["rings"][ring]["retired"] == rings_before[ring]["current"][0]


def test_rotation_of_an_unknown_use(store):
    with pytest.raises(ValueError, match="sig"):
        rotate(store, KEK, "both", retain_seconds=1, signing_alg="ES256", enc_bits=2048, now=1)


def test_a_home_without_next_keys_gets_a_current_made(_server_keys):
    store = MemoryStore()
    store.save_server_keys([k for k in _server_keys if not (k.use == "enc" and k.status == "next")])
    result = rotate(store, KEK, "enc", retain_seconds=60, signing_alg="ES256", enc_bits=2048, now=int(time.time()))
    now_enc = by_status(store, "enc")
    assert len(now_enc["current"]) == 1 and len(now_enc["next"]) == 1 and result["retired"] in now_enc["retired"]


def test_a_home_made_before_the_rings_gets_them_on_reload(_server_keys):
    store = MemoryStore()
    store.save_server_keys([k for k in _server_keys if ring_of(k) is None])
    ring = KeyRing(store, KEK)
    assert {k.ring for k in ring.get().keys} >= set(PROFILE_RINGS)
    assert len(ensure_ring_keys(store, KEK, now=1)) == 0


def test_a_retired_key_past_its_time_is_dropped_and_a_raced_duplicate_never_signs(_server_keys):
    now = int(time.time())
    current = next(k for k in _server_keys if k.use == "sig" and ring_of(k) is None and k.status == "current")
    nxt = next(k for k in _server_keys if k.use == "sig" and ring_of(k) is None and k.status == "next")
    store = MemoryStore()
    others = [k for k in _server_keys if k.kid not in (current.kid, nxt.kid)]
    store.save_server_keys(
        [
            *others,
            replace(current, status="retired", retire_at=now - 1),
            replace(nxt, status="current", created_at=current.created_at + 1),
        ]
    )
    ring = KeyRing(store, KEK)
    kids = {k.kid: k.status for k in ring.get().keys}
    assert current.kid not in kids and kids[nxt.kid] == "current"
    duplicate = replace(current, status="current", retire_at=None, created_at=nxt.created_at + 5)
    store.save_server_keys([duplicate])  # a second "current" of the shared ring: a racing worker's
    kids = {k.kid: k.status for k in ring.reload().keys}
    assert kids[nxt.kid] == "current" and kids[current.kid] == "next"


def test_the_ring_is_read_again_only_after_refresh_seconds(store):
    ring = KeyRing(store, KEK, refresh_seconds=3600)
    first = ring.get()
    rotate(store, KEK, "enc", retain_seconds=60, signing_alg="ES256", enc_bits=2048, now=int(time.time()))
    assert ring.get() is first
    assert ring.reload() is not first
    again = KeyRing(store, KEK, refresh_seconds=0)  # reads the store on every get
    kept = again.get()
    assert again.get() is kept  # nothing changed: the same ServerKeys
    rotate(store, KEK, "enc", retain_seconds=60, signing_alg="ES256", enc_bits=2048, now=int(time.time()))
    assert again.get() is not kept


def test_a_ring_key_needs_a_private_key_with_a_kid():
    from joserfc.jwk import RSAKey

    public_only = RSAKey.import_key(RSAKey.generate_key(2048).as_dict(private=False))
    with pytest.raises(ValueError, match="private key with a kid"):
        keys._self_signed(public_only, "mobilepay", 1)
