"""Exact change notices: SQLite data_version and PostgreSQL LISTEN/NOTIFY."""

from __future__ import annotations

import time

import pytest

from tessera.core.models import Client
from tessera.storage.migrate import upgrade
from tessera.storage.sql import SQLStore


def _client(cid: str) -> Client:
    return Client(client_id=cid, name="n", secret_hash=None, created_at=0)


def _store(url: str) -> SQLStore:
    store = SQLStore(url)
    upgrade(store.engine)
    return store


def _wait_changed(notices, seconds: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if notices.changed():
            return True
        time.sleep(0.01)
    return False


def test_sqlite_data_version_sees_other_connections(tmp_path):
    url = f"sqlite:///{tmp_path / 'n.db'}"
    reader, writer = _store(url), _store(url)
    notices = reader.revocation_notices
    assert notices is not None and notices.exact
    notices.changed()  # first look
    assert notices.changed() is False
    writer.create_client(_client("a"))
    assert notices.changed() is True
    assert notices.changed() is False
    writer.set_client_status("a", "revoked")
    assert notices.changed() is True
    reader.close(), writer.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_listen_notify(postgres_url):
    reader, writer = _store(postgres_url), _store(postgres_url)
    notices = reader.revocation_notices
    assert notices is not None and notices.exact
    assert notices.changed() is True  # a fresh listener trusts nothing
    assert notices.changed() is False
    writer.create_client(_client("a"))
    assert _wait_changed(notices)
    assert notices.changed() is False
    writer.set_client_status("a", "revoked")
    assert _wait_changed(notices)
    writer.get_client("a")  # reads announce nothing
    time.sleep(0.05)
    assert notices.changed() is False
    reader.close(), writer.close()
