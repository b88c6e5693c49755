"""The admin layer in process, on the in-memory store and on a tmp SQLite store: settings
with fixed secrets, a CA made in memory, and a clock the test moves."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tessera.admin import Admin
from tessera.ca import CertificateAuthority
from tessera.config import Settings
from tessera.core.keys import create_initial_keys
from tessera.core.models import StoredKey
from tessera.core.ports import Store
from tessera.storage.memory import MemoryStore
from tessera.storage.sql import SQLStore
from tests.support import migrated

KEK = base64.urlsafe_b64encode(b"k" * 32).decode().rstrip("=")
PEPPER = base64.urlsafe_b64encode(b"p" * 32).decode().rstrip("=")
NOW = 1_800_000_000


@dataclass
class Clock:
    now: int = NOW

    def __call__(self) -> int:
        return self.now


@pytest.fixture(scope="session")
def authority() -> CertificateAuthority:
    return CertificateAuthority.generate()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "sqlite"])
def admin(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    authority: CertificateAuthority,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Admin]:
    for name in [n for n in os.environ if n.startswith("TESSERA_")]:
        monkeypatch.delenv(name)
    settings = Settings(home=tmp_path, kek=KEK, pepper=PEPPER, database_url=f"sqlite:///{tmp_path / 'admin.db'}")
    store: Store
    if request.param == "memory":
        store = MemoryStore()
    else:
        store = SQLStore(migrated.sqlite_url(tmp_path / "admin.db"))
    try:
        yield Admin(store=store, settings=settings, ca=lambda: authority, clock=clock)
    finally:
        store.close()


@pytest.fixture(scope="session")
def _initial_keys() -> list[StoredKey]:
    """The server keys ``tessera init`` makes, under the tests' KEK at ``NOW``: made once per
    worker (four of them are RSA-2048 keys), saved into each test's store."""
    settings = Settings(kek=KEK, pepper=PEPPER)
    keys: list[StoredKey] = create_initial_keys(
        MemoryStore(),
        settings.kek_bytes(),
        signing_alg=settings.signing_alg,
        enc_bits=settings.encryption_key_bits,
        now=NOW,
    )
    return keys


@pytest.fixture
def keyed(admin: Admin, _initial_keys: list[StoredKey]) -> Admin:
    """The admin with the server keys ``tessera init`` makes."""
    assert admin.now() == NOW
    admin.store.save_server_keys(list(_initial_keys))
    return admin
