"""The worker's caches (Core): clients, certificates and the enrollment data are served from
memory, and a change made by another process (the CLI) is seen on the very next call, on
SQLite (notice file) and PostgreSQL (LISTEN/NOTIFY). Writes of single-use artefacts keep
the caches."""

from __future__ import annotations

import gc
import time

import pytest

from tessera.core.context import Core, CoreConfig
from tessera.core.models import Artifact, CertificateRecord, Client, Merchant, MerchantUser, Terminal
from tessera.core.ports import Capabilities
from tessera.errors import InvalidClient
from tessera.storage.migrate import upgrade
from tessera.storage.sql import SQLStore
from tests.support import migrated


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow])])
def stores(request, tmp_path):
    if request.param == "sqlite":
        url = migrated.sqlite_url(tmp_path / "c.db")
    else:
        url = request.getfixturevalue("migrated_postgres_url")
    worker, cli = SQLStore(url), SQLStore(url)
    yield worker, cli
    worker.close(), cli.close()


def _core(store) -> Core:
    return Core(config=CoreConfig(issuer="https://as.example"), store=store, keys=None, pepper=b"p")


def _eventually(fn, seconds: float = 2.0):
    """PostgreSQL delivers a NOTIFY asynchronously (within milliseconds); SQLite at once."""
    deadline = time.monotonic() + seconds
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.005)


def _count_reads(store) -> list[int]:
    return _count(store, "get_client", "certificates_for_client", "terminals_at", "is_granted", "get_user", "bindings")


def test_enrollment_data_is_cached_and_changes_are_seen_at_once(stores):
    worker, cli = stores
    cli.create_client(Client(client_id="app", name="a", secret_hash=None, created_at=0))
    cli.create_merchant(Merchant(1, "shop", None, 0))
    cli.add_terminal(Terminal("S1", 1, "POS", "softpos"))
    reads = _count_reads(worker)
    core = _core(worker)

    def look():
        return (
            core.client("app").active,
            len(core.certificates_for("app")),
            len(core.terminals_at("POS")),
            core.is_granted(1, "app"),
            core.user("u@shop.example"),
            core.bindings("u@shop.example", "S1"),
        )

    first = look()
    assert first == (True, 0, 1, False, None, (None, None))
    n = reads[0]
    for _ in range(5):  # artefact writes (a PAR, a rotation) announce nothing: still cached
        worker.put_artifact(Artifact("request_uri", f"k{_}", "app", {}, 2**40))
        assert look() == first
    assert reads[0] == n

    cli.add_terminal(Terminal("M1", 1, "POS", "mpos"))
    assert _eventually(lambda: len(core.terminals_at("POS")) == 2)
    cli.grant(1, "app", 0)
    assert _eventually(lambda: core.is_granted(1, "app"))
    cli.add_user(MerchantUser("u@shop.example", 1, "h"))
    assert _eventually(lambda: core.user("u@shop.example") is not None)
    cli.bind_username("u@shop.example", "S1", 0)
    assert _eventually(lambda: core.bindings("u@shop.example", "S1") == ("S1", "u@shop.example"))
    cli.add_certificate(CertificateRecord("ab", "app", "th", "CN=x", 0, 2**40, "pem", created_at=0))
    assert _eventually(lambda: len(core.certificates_for("app")) == 1)
    cli.revoke_certificate("ab", 5)
    assert _eventually(lambda: core.certificates_for("app")[0].revoked_at == 5)
    cli.set_client_status("app", "revoked")
    assert _eventually(lambda: not core.client("app").active)


def test_sqlite_revocation_is_seen_on_the_very_next_call(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    worker, cli = SQLStore(url), SQLStore(url)
    upgrade(worker.engine)
    cli.create_client(Client(client_id="app", name="a", secret_hash=None, created_at=0))
    cli.add_certificate(CertificateRecord("cd", "app", "th", "CN=x", 0, 2**40, "pem", created_at=0))
    core = _core(worker)
    assert core.client("app").active and core.certificate("th").revoked_at is None
    cli.revoke_certificate("cd", 7)
    assert core.certificate("th").revoked_at == 7  # no waiting: the notice file is written before revoke returns
    cli.set_client_status("app", "revoked")
    assert not core.client("app").active
    worker.close(), cli.close()


def test_revoked_access_tokens_are_kept_in_memory_and_a_revocation_is_seen_at_once(stores):
    """The Bearer check's revoked mark (tokens.access_token_revoked): no read per token while
    nothing changes; a revocation by another process (its mark written and announced) is
    refused on the next call."""
    from tessera.core import tokens

    worker, cli = stores
    core, other = _core(worker), _core(cli)
    tokens.revoke_token(other, "old", "app", 2**40)
    reads = [0]
    original = worker.artifact_keys

    def counted(*a, **kw):
        reads[0] += 1
        return original(*a, **kw)

    worker.artifact_keys = counted
    worker.get_artifact = None  # the per-token read is gone (it would fail here)
    assert tokens.access_token_revoked(core, "old") and not tokens.access_token_revoked(core, "live")
    n = reads[0]
    for _ in range(5):
        assert not tokens.access_token_revoked(core, "live")
    assert reads[0] == n == 1

    tokens.revoke_token(other, "live", "app", 2**40)
    assert _eventually(lambda: tokens.access_token_revoked(core, "live"))
    tokens.revoke_token(other, "live", "app", 2**40)  # again: no error
    assert tokens.access_token_revoked(core, "old")


def test_revoked_access_tokens_are_read_per_token_without_exact_notices(tmp_path):
    """A store without exact notices (Redis marks, polled epochs): the store is asked each time."""
    from tessera.core import tokens

    marks = {"gone"}

    class Store:  # no revocation_notices: nothing is cached
        def get_artifact(self, kind, key):
            return object() if kind == tokens.REVOKED_TOKEN and key in marks else None

        def __getattr__(self, name):
            return lambda *a, **kw: None

    store = Store()
    core = Core(
        config=CoreConfig(issuer="https://as.example"), store=store, keys=None, pepper=b"p", capabilities=Capabilities()
    )  # no notices (the stand-in answers every name)
    assert tokens.access_token_revoked(core, "gone") and not tokens.access_token_revoked(core, "live")
    marks.add("live")
    assert tokens.access_token_revoked(core, "live")


# --- the profiles' look-ups: merchants by VAT number, axept API keys, grants --------------------------


def _count(store, *names: str) -> list[int]:
    """Counts the calls to the store's methods ``names`` (a one-item list, read after the calls)."""
    calls = [0]
    for name in names:
        original = getattr(store, name)

        def wrapped(*a, _f=original, **kw):
            calls[0] += 1
            return _f(*a, **kw)

        setattr(store, name, wrapped)
    return calls


def test_merchants_by_vat_and_api_keys_are_cached_and_changes_are_seen_at_once(stores):
    """MobilePay's merchant_vat look-up and axept's key look-up are served from the worker's
    cache; a merchant created after an unknown VAT was asked for, a key disabled, created or
    enabled again, by another process, is seen on the next call (as a revoked client is)."""
    from tessera.core import apikeys

    worker, cli = stores
    cli.create_merchant(Merchant(1, "shop", "DK12345678", 0))
    record, key = apikeys.create_key(cli, b"p", 1, 0, max_enabled=2)
    reads = _count(worker, "get_merchant_by_vat", "get_api_key")
    core = _core(worker)

    def look():
        found = core.merchant_by_vat("DK12345678")
        k = core.api_key(1, record.key_id)
        return (
            found.merchant_id if found else None,
            core.merchant_by_vat("FI87654321"),
            k.enabled if k else None,
            core.api_key(1, 2),
        )

    assert look() == (1, None, True, None)
    n = reads[0]
    for i in range(5):  # artefact writes announce nothing: still cached
        worker.put_artifact(Artifact("request_uri", f"k{i}", "app", {}, 2**40))
        assert look() == (1, None, True, None)
        assert apikeys.authenticate(core, 1, record.key_id, key).key_id == record.key_id
    assert reads[0] == n

    cli.set_api_key_enabled(1, record.key_id, False, 5, max_enabled=2)
    assert _eventually(lambda: not core.api_key(1, record.key_id).enabled)
    with pytest.raises(InvalidClient):
        apikeys.authenticate(core, 1, record.key_id, key)
    second, _ = apikeys.create_key(cli, b"p", 1, 6, max_enabled=2)
    assert _eventually(lambda: core.api_key(1, second.key_id) is not None)
    cli.set_api_key_enabled(1, record.key_id, True, 7, max_enabled=2)
    assert _eventually(lambda: core.api_key(1, record.key_id).enabled)
    cli.create_merchant(Merchant(2, "other shop", "FI87654321", 0))
    assert _eventually(lambda: core.merchant_by_vat("FI87654321") is not None)


def test_any_write_of_a_cached_table_is_announced(stores):
    """The notice hangs off the store, not off particular methods: a grant withdrawn, a merchant
    changed, a key disabled by a statement that no repository method knows about yet (an admin
    operation added later) is still seen on the next call."""
    from sqlalchemy import delete, update

    from tessera.storage import schema

    worker, cli = stores
    cli.create_client(Client(client_id="app", name="a", secret_hash=None, created_at=0))
    cli.create_merchant(Merchant(1, "shop", "DK12345678", 0))
    cli.grant(1, "app", 0)
    core = _core(worker)
    assert core.is_granted(1, "app") and core.merchant_by_vat("DK12345678").merchant_id == 1

    with cli.database.write() as c:  # a withdrawn grant
        c.execute(delete(schema.merchant_grants).where(schema.merchant_grants.c.merchant_id == 1))
    assert _eventually(lambda: not core.is_granted(1, "app"))
    with cli.database.write() as c:  # a merchant whose VAT number changed
        c.execute(update(schema.merchants).where(schema.merchants.c.merchant_id == 1).values(vat="DK00000001"))
    assert _eventually(lambda: core.merchant_by_vat("DK12345678") is None)
    assert core.merchant_by_vat("DK00000001").merchant_id == 1


def test_a_failed_transaction_does_not_swallow_the_next_announcement(stores):
    """A transaction that announced and then failed leaves nothing behind on its pooled
    connection: the next announcing write is announced."""
    worker, cli = stores
    cli.create_merchant(Merchant(1, "shop", "DK12345678", 0))
    core = _core(worker)
    assert core.merchant_by_vat("FI11111111") is None
    with pytest.raises(RuntimeError), cli.database.write() as c:
        cli.database.announce(c)
        raise RuntimeError("rolled back")
    cli.create_merchant(Merchant(2, "new", "FI11111111", 0))
    assert _eventually(lambda: core.merchant_by_vat("FI11111111") is not None)


def test_memory_store_announces_merchants_and_api_keys():
    from tessera.core import apikeys
    from tessera.storage.memory import MemoryStore

    store = MemoryStore()
    core = _core(store)
    assert core.merchant_by_vat("DK12345678") is None and core.api_key(1, 1) is None
    store.create_merchant(Merchant(1, "shop", "DK12345678", 0))
    assert core.merchant_by_vat("DK12345678").merchant_id == 1
    record, key = apikeys.create_key(store, b"p", 1, 0, max_enabled=2)
    assert apikeys.authenticate(core, 1, record.key_id, key).enabled
    store.set_api_key_enabled(1, record.key_id, False, 1, max_enabled=2)
    with pytest.raises(InvalidClient):
        apikeys.authenticate(core, 1, record.key_id, key)


def test_a_keys_last_use_is_not_announced_but_disabling_it_is(stores):
    """Recording when an axept key was last used (about once a minute per key and worker) would
    drop every worker's caches each time; it is bookkeeping no cache reads, so it announces
    nothing, while disabling the key does."""
    from tessera.core import apikeys

    worker, cli = stores
    cli.create_merchant(Merchant(1, "shop", "DK12345678", 0))
    record, _ = apikeys.create_key(cli, b"p", 1, 0, max_enabled=2)
    core = _core(worker)
    assert core.api_key(1, record.key_id).enabled
    notices = worker.revocation_notices
    notices.changed()
    cli.touch_api_key(1, record.key_id, 100)
    time.sleep(0.2)  # PostgreSQL: a NOTIFY would have arrived by now
    assert notices.changed() is False
    cli.set_api_key_enabled(1, record.key_id, False, 101, max_enabled=2)
    assert _eventually(lambda: not core.api_key(1, record.key_id).enabled)


def test_this_process_sees_its_own_writes_without_waiting_for_the_notice(stores):
    """A write made through this process's own store (the admin API, the portal) drops the
    Core's caches at its commit: no notice is needed (here the Core heeds none at all)."""
    worker, _ = stores
    worker.create_client(Client(client_id="own", name="a", secret_hash=None, created_at=0))
    core = Core(
        config=CoreConfig(issuer="https://as.example", cache_seconds=300),
        store=worker,
        keys=None,
        pepper=b"p",
        capabilities=Capabilities(database=worker.database),  # the database, no notices
    )
    assert core.client("own").active
    assert worker.set_client_status("own", "revoked") is True
    assert core.client("own").active is False  # at once, from the commit's own hook
    del core  # a Core that is gone is not kept alive by the database, nor called
    gc.collect()
    assert worker.set_client_status("own", "active") is True
