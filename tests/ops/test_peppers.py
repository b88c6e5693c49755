"""Versioned peppers, in process: the hash format, the check under the recorded pepper, the
re-hash on use through the SQL store, the counts, and the start-up checks of the settings."""

from __future__ import annotations

import time

import pytest

from tessera.admin.compose import open_admin
from tessera.admin.errors import Conflict, Invalid
from tessera.admin.peppers import add_pepper, pepper_usage, retire_pepper
from tessera.config import ConfigError, Settings
from tessera.core.clients import ClientCredentials, authenticate_secret
from tessera.core.models import Client
from tessera.core.secrets import Peppers, hash_secret, needs_rehash, pepper_id_of, verify_secret
from tessera.home import build_core, init_home, open_store

P1, P2, P3 = b"1" * 32, b"2" * 32, b"3" * 32


def test_hash_format_and_verification_under_the_recorded_pepper():
    legacy = hash_secret("s", P1)
    assert len(legacy) == 64 and pepper_id_of(legacy) == 1  # unchanged for every existing home
    both = Peppers(2, {1: P1, 2: P2})
    new = hash_secret("s", both)
    assert new.startswith("p2$") and pepper_id_of(new) == 2
    assert verify_secret("s", legacy, both) and verify_secret("s", new, both)
    assert not verify_secret("t", legacy, both) and not verify_secret("t", new, both)
    assert needs_rehash(legacy, both) and not needs_rehash(new, both)
    # a hash under a pepper that is not configured never verifies (not even with another key)
    assert not verify_secret("s", new, P1) and not verify_secret("s", legacy, Peppers(2, {2: P2}))
    assert not verify_secret("s", hash_secret("s", Peppers(3, {3: P3})), both)
    assert pepper_id_of("p0$" + "0" * 64) is None and pepper_id_of("xyz") is None and pepper_id_of("p2$abc") is None
    with pytest.raises(ValueError):
        Peppers(2, {1: P1})


def _b64(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
def home(tmp_path, monkeypatch):
    for k in list(__import__("os").environ):
        if k.startswith("TESSERA_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("TESSERA_PEPPER", _b64(P1))
    home = tmp_path / "home"
    init_home(home, now=int(time.time()))
    return home


def _run_on_pepper_2(monkeypatch) -> None:
    """The environment after the rotation: pepper 2 current, pepper 1 still accepted."""
    monkeypatch.setenv("TESSERA_PEPPER", _b64(P2))
    monkeypatch.setenv("TESSERA_PEPPER_ID", "2")
    monkeypatch.setenv("TESSERA_OLD_PEPPERS", f"1:{_b64(P1)}")


def _make_pepper_2_current(settings, monkeypatch) -> None:
    """``tessera pepper add --id 2`` on the home, then the environment that makes it current."""
    admin = open_admin(settings)
    add_pepper(admin, 2, P2)
    admin.store.close()
    _run_on_pepper_2(monkeypatch)


def test_a_secret_moves_to_the_current_pepper_when_it_is_used(home, monkeypatch):
    s1 = Settings.load(home)
    store = open_store(s1)
    try:
        secret = "correct-secret"
        store.create_client(Client("c1", "App", hash_secret(secret, s1.peppers()), created_at=1))
        _make_pepper_2_current(s1, monkeypatch)
        s2 = Settings.load(home)
        core = build_core(s2, store)
        creds = ClientCredentials("c1", secret, "client_secret_basic")
        assert authenticate_secret(core, creds).client_id == "c1"
        stored = store.get_client("c1")
        assert stored is not None and stored.secret_hash is not None and stored.secret_hash.startswith("p2$")
        assert authenticate_secret(core, creds).client_id == "c1"  # and keeps verifying
        admin = open_admin(s2)
        try:
            usage = pepper_usage(admin)
            assert usage.current == 2 and usage.remaining_on_old() == 0
            with pytest.raises(Invalid):
                retire_pepper(admin, 2)  # the current one
            with pytest.raises(Conflict):
                add_pepper(admin, 2, P3)  # the id is taken
            retire_pepper(admin, 1)
        finally:
            admin.store.close()
        with pytest.raises(ConfigError, match="retired"):
            Settings.load(home)  # TESSERA_OLD_PEPPERS still names pepper 1
        monkeypatch.delenv("TESSERA_OLD_PEPPERS")
        assert Settings.load(home).peppers().keys == {2: P2}
    finally:
        store.close()


def test_retiring_refused_while_hashes_remain(home, monkeypatch):
    s1 = Settings.load(home)
    admin = open_admin(s1)
    try:
        admin.store.create_client(Client("idle", "App", hash_secret("x", s1.peppers()), created_at=1))
        add_pepper(admin, 2, P2)
    finally:
        admin.store.close()
    _run_on_pepper_2(monkeypatch)
    admin = open_admin(Settings.load(home))
    try:
        with pytest.raises(Conflict, match="still under pepper 1"):
            retire_pepper(admin, 1)
        assert pepper_usage(admin).remaining_on_old() == 1
        retire_pepper(admin, 1, force=True)
    finally:
        admin.store.close()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TESSERA_PEPPER": _b64(P3)}, "is not pepper 1"),
        ({"TESSERA_PEPPER_ID": "2"}, "no check value is recorded for pepper 2"),
        ({"TESSERA_OLD_PEPPERS": f"2:{_b64(P2)}"}, "no check value is recorded for pepper 2"),
        ({"TESSERA_OLD_PEPPERS": "2:short"}, "ID:VALUE"),
        ({"TESSERA_OLD_PEPPERS": f"1:{_b64(P1)}"}, "current pepper's id"),
    ],
)
def test_start_up_checks_each_pepper(home, monkeypatch, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match=message):
        Settings.load(home).peppers()


def test_the_previous_secret_of_an_overlap_never_replaces_the_current_one(home, monkeypatch):
    """A rotated secret's overlap across a pepper rotation: the old secret still authenticates,
    but only the current secret is ever stored again under the new pepper."""
    s1 = Settings.load(home)
    store = open_store(s1)
    try:
        now = int(time.time())
        old, new = "the-previous-secret", "the-current-secret"
        store.create_client(Client("c2", "App", hash_secret(new, s1.peppers()), created_at=1))
        assert store.set_client_secret("c2", hash_secret(new, s1.peppers()), hash_secret(old, s1.peppers()), now + 3600)
        _make_pepper_2_current(s1, monkeypatch)
        core = build_core(Settings.load(home), store)
        assert authenticate_secret(core, ClientCredentials("c2", old, "client_secret_basic")).client_id == "c2"
        stored = store.get_client("c2")
        assert stored is not None and stored.secret_hash is not None
        assert pepper_id_of(stored.secret_hash) == 1  # untouched: the old secret was not stored as the current
        assert authenticate_secret(core, ClientCredentials("c2", new, "client_secret_basic")).client_id == "c2"
        stored = store.get_client("c2")
        assert stored is not None and stored.secret_hash is not None and stored.secret_hash.startswith("p2$")
        assert authenticate_secret(core, ClientCredentials("c2", old, "client_secret_basic")).client_id == "c2"
        assert authenticate_secret(core, ClientCredentials("c2", new, "client_secret_basic")).client_id == "c2"
    finally:
        store.close()
