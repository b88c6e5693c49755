"""The worker's caches (Core): clients, certificates and the enrollment data are served from
memory, and a change made by another process (the CLI) is seen on the very next call, on
SQLite (notice file) and PostgreSQL (LISTEN/NOTIFY). Writes of single-use artefacts keep
the caches."""

from __future__ import annotations

import time

import pytest

from tessera.core.context import Core, CoreConfig
from tessera.core.models import Artifact, CertificateRecord, Client, Merchant, MerchantUser, Terminal
from tessera.core.ports import Capabilities
from tessera.storage.migrate import upgrade
from tessera.storage.sql import SQLStore


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow])])
def stores(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    worker, cli = SQLStore(url), SQLStore(url)
    upgrade(worker.engine)
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
    calls = [0]
    for name in ("get_client", "certificates_for_client", "terminals_at", "is_granted", "get_user", "bindings"):
        original = getattr(store, name)

        def wrapped(*a, _f=original, **kw):
            calls[0] += 1
            return _f(*a, **kw)

        setattr(store, name, wrapped)
    return calls


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
