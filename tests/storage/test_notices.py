"""Exact change notices: the SQLite notice file (with its data_version backstop) and PostgreSQL LISTEN/NOTIFY."""

from __future__ import annotations

import os
import sqlite3
import time

import pytest

from tessera.core.models import Artifact, CertificateRecord, Client, Merchant, MerchantUser, Terminal
from tessera.storage import notices as notices_mod
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


def test_sqlite_notices_see_announced_changes_only(tmp_path):
    url = f"sqlite:///{tmp_path / 'n.db'}"
    reader, writer = _store(url), _store(url)
    notices = reader.revocation_notices
    assert notices is not None and notices.exact
    assert os.path.basename(notices.path) == "n.db-notices"
    assert notices.changed() is True  # the first look trusts nothing
    assert notices.changed() is False
    writer.create_client(_client("a"))
    assert notices.changed() is True
    assert notices.changed() is False
    writer.set_client_status("a", "revoked")
    assert notices.changed() is True
    # Writes of things no worker caches announce nothing: neither another process's nor
    # this store's own (the old data_version check saw every commit as a change).
    for store in (writer, reader):
        store.put_artifact(Artifact("k", f"x-{id(store)}", "a", {}, 2**40))
        store.consume("k", f"x-{id(store)}", 1)
        store.claim("j", f"y-{id(store)}", "a", 2**40, 1)
        store.add_event("e", "a", {}, 1)
    assert notices.changed() is False
    reader.close(), writer.close()


@pytest.mark.parametrize("write", ["certificate", "revoke_certificate", "terminal", "user", "grant", "binding"])
def test_sqlite_every_cached_kind_is_announced(tmp_path, write):
    url = f"sqlite:///{tmp_path / 'n.db'}"
    reader, writer = _store(url), _store(url)
    writer.create_client(_client("a"))
    writer.create_merchant(Merchant(1, "m", None, 0))
    writer.add_terminal(Terminal("T0", 1, "P", "softpos"))
    writer.add_certificate(CertificateRecord("1a", "a", "th", "CN=x", 0, 2**40, "pem", created_at=0))
    notices = reader.revocation_notices
    notices.changed()
    assert notices.changed() is False
    {
        "certificate": lambda: writer.add_certificate(
            CertificateRecord("02", "a", "th2", "CN=x", 0, 2**40, "pem", created_at=0)
        ),
        "revoke_certificate": lambda: writer.revoke_certificate("1A", 5),
        "terminal": lambda: writer.add_terminal(Terminal("T1", 1, "P", "mpos")),
        "user": lambda: writer.add_user(MerchantUser("u@x.example", 1, "h")),
        "grant": lambda: writer.grant(1, "a", 0),
        "binding": lambda: writer.bind_username("u@x.example", "T0", 0),
    }[write]()
    assert notices.changed() is True
    if write == "binding":  # binding again to the same TID writes nothing: no notice
        assert writer.bind_username("u@x.example", "T0", 0) is True
        assert notices.changed() is False
    reader.close(), writer.close()


def test_sqlite_a_write_that_changes_no_row_is_not_announced(tmp_path):
    """Workers keep their caches when a write touched nothing (an unknown serial, a status set
    on a client that does not exist, a grant withdrawn twice)."""
    url = f"sqlite:///{tmp_path / 'n.db'}"
    reader, writer = _store(url), _store(url)
    writer.create_client(_client("a"))
    writer.create_merchant(Merchant(1, "m", None, 0))
    notices = reader.revocation_notices
    notices.changed()
    assert writer.revoke_certificate("ff", 5) is None
    assert writer.set_client_status("nobody", "revoked") is False
    assert writer.withdraw_grant(1, "a") is False
    assert notices.changed() is False
    assert writer.set_client_status("a", "revoked") is True  # and a real change still is
    assert notices.changed() is True
    reader.close(), writer.close()


def test_sqlite_backstop_sees_an_unannounced_commit_within_a_second(tmp_path):
    """A hand edit (or a crash between the commit and the notice) is still seen, by the
    data_version backstop, within BACKSTOP_SECONDS."""
    db = tmp_path / "n.db"
    reader = _store(f"sqlite:///{db}")
    reader.create_client(_client("a"))
    notices = reader.revocation_notices
    notices.changed()
    assert notices.changed() is False
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE clients SET status = 'revoked' WHERE client_id = 'a'")
    assert notices.changed() is False  # not at once: the fast path reads the notice file only
    assert _wait_changed(notices, notices_mod.BACKSTOP_SECONDS + 1.0)
    reader.close()


def test_sqlite_notice_file_replaced_or_deleted(tmp_path):
    url = f"sqlite:///{tmp_path / 'n.db'}"
    reader, writer = _store(url), _store(url)
    notices = reader.revocation_notices
    notices.changed()
    os.unlink(notices.path)  # the reader's map now shows a file nobody writes
    writer.create_client(_client("a"))  # the writer had no file open yet: creates a new one
    assert _wait_changed(notices, notices_mod.BACKSTOP_SECONDS + 1.0)
    assert notices.changed() is False
    writer.set_client_status("a", "revoked")
    assert notices.changed() is True  # the new file is mapped now: at once again
    reader.close(), writer.close()


def test_sqlite_changed_is_cheap(tmp_path):
    url = f"sqlite:///{tmp_path / 'n.db'}"
    reader = _store(url)
    notices = reader.revocation_notices
    notices.changed()
    n = 20000
    from tests.support.timing import untraced

    with untraced():  # under coverage (make test-fast) the tracer would be what is measured
        t0 = time.perf_counter()
        for _ in range(n):
            notices.changed()
        per_call = (time.perf_counter() - t0) / n
    assert per_call < 5e-6, f"{per_call * 1e6:.2f} us per changed()"  # the old PRAGMA cost ~15 us
    reader.close()


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
