"""The Redis half of the store contract, on a real (throwaway) redis-server: atomic
``consume`` and ``claim`` under 20 threads, expiry, the CompositeStore's routing, the
shared failure limiter, revocation notices, and 503 (``StoreUnavailable``) when Redis
is down."""

from __future__ import annotations

import secrets
import threading
import time

import pytest

from tessera.core.assertions import JTI_KIND
from tessera.core.authorize import CODE_KIND
from tessera.core.models import Artifact, CertificateRecord, Client
from tessera.core.par import PAR_KIND
from tessera.core.ports import Conflict, Store, StoreUnavailable
from tessera.core.refresh import FAMILY_KIND, REFRESH_KIND
from tessera.core.tokens import REVOKED_TOKEN
from tessera.storage.redis_limits import RedisFailureLimiter
from tessera.storage.redis_store import (
    SHORT_LIVED_KINDS,
    CompositeStore,
    RedisArtifacts,
    RevocationNotices,
    connect,
)
from tests.support.redis_server import free_port, redis_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

N = 20


@pytest.fixture
def client(redis_server):  # noqa: F811
    c = connect(redis_server.url, timeout=2)
    yield c
    c.close()


@pytest.fixture
def arts(client):
    return RedisArtifacts(client, prefix=f"t{secrets.token_hex(4)}:", replay_margin=600)


def now() -> int:
    return int(time.time())


def art(kind=PAR_KIND, key=None, *, ttl=90, data=None, client_id="c1") -> Artifact:
    return Artifact(
        kind,
        key or secrets.token_hex(16),
        client_id,
        data if data is not None else {"params": {"a": [1, 2]}},
        now() + ttl,
    )


def hammer(n: int, fn):
    """``fn`` in ``n`` threads released together; their results."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        barrier.wait(10)
        results[i] = fn()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


# --- artefacts ---------------------------------------------------------------------------------


def test_put_get_round_trip(arts):
    a = art(
        data={"params": {"scope": "oidc", "tids": ["S1", "M1"], "big": 2**62, "empty": [], "none": None}, "note": "é"}
    )
    arts.put_artifact(a)
    assert arts.get_artifact(a.kind, a.key) == a  # data, ints, empty lists and unicode unchanged
    assert arts.get_artifact(a.kind, "nope") is None
    with pytest.raises(Conflict):
        arts.put_artifact(a)


def test_consume_once_then_recognised_as_used(arts):
    a = art()
    arts.put_artifact(a)
    t = now()
    won = arts.consume(a.kind, a.key, t)
    assert won is not None and won.consumed_at == t and won.data == a.data and won.client_id == "c1"
    assert arts.consume(a.kind, a.key, t) is None
    kept = arts.get_artifact(a.kind, a.key)  # kept until expiry (+ margin): a replay is recognised
    assert kept is not None and kept.consumed_at == t
    assert arts.consume(a.kind, "unknown", t) is None


def test_expired_artefact_is_not_consumed(arts):
    a = art(ttl=5)
    arts.put_artifact(a)
    assert arts.consume(a.kind, a.key, a.expires_at) is None  # expires_at <= now: expired
    assert arts.consume(a.kind, a.key, a.expires_at - 1) is not None


@pytest.mark.parametrize("round_", range(3))
def test_consume_is_atomic_under_20_threads(arts, round_):
    a = art(CODE_KIND)
    arts.put_artifact(a)
    t = now()
    results = hammer(N, lambda: arts.consume(a.kind, a.key, t))
    assert sum(r is not None for r in results) == 1, results


def test_claim(arts):
    t = now()
    assert arts.claim(JTI_KIND, "c1:jti-1", "c1", t + 60, t) is True
    assert arts.claim(JTI_KIND, "c1:jti-1", "c1", t + 60, t) is False
    assert arts.claim(JTI_KIND, "c1:jti-1", "c1", t + 60, t + 59) is False  # still unexpired
    rec = arts.get_artifact(JTI_KIND, "c1:jti-1")
    assert rec is not None and rec.consumed_at == t and rec.expires_at == t + 60
    # A lapsed record (kept for the replay margin) is taken over, as on SQL.
    assert arts.claim(JTI_KIND, "c1:jti-1", "c1", t + 200, t + 60) is True
    assert arts.get_artifact(JTI_KIND, "c1:jti-1").expires_at == t + 200


@pytest.mark.parametrize("round_", range(3))
def test_claim_is_atomic_under_20_threads(arts, round_):
    t = now()
    key = f"c1:{secrets.token_hex(8)}"
    results = hammer(N, lambda: arts.claim(JTI_KIND, key, "c1", t + 60, t))
    assert results.count(True) == 1, results


def test_keys_expire_at_expires_at_plus_margin(arts, client):
    a = art(ttl=90)
    arts.put_artifact(a)
    ttl = client.ttl(arts._key(a.kind, a.key))
    assert 90 + 600 - 5 <= ttl <= 90 + 600
    t = now()
    arts.claim(JTI_KIND, "c1:x", "c1", t + 30, t)
    assert 30 + 600 - 5 <= client.ttl(arts._key(JTI_KIND, "c1:x")) <= 30 + 600
    arts.consume(a.kind, a.key, t)  # consuming keeps the expiry
    assert client.ttl(arts._key(a.kind, a.key)) > 600


def test_records_vanish_at_expiry_without_margin(client):
    arts = RedisArtifacts(client, prefix=f"t{secrets.token_hex(4)}:", replay_margin=0)
    a = Artifact(PAR_KIND, "k", "c1", {}, int(time.time()) + 1)
    arts.put_artifact(a)
    assert arts.get_artifact(PAR_KIND, "k") is not None
    deadline = time.monotonic() + 5
    while arts.get_artifact(PAR_KIND, "k") is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert arts.get_artifact(PAR_KIND, "k") is None
    arts.put_artifact(a)  # gone for good: the key may be used again (no Conflict)
    assert arts.get_artifact(PAR_KIND, "k") is None  # already past its expiry: expired at once


def test_update_artifact_data_keeps_expiry(arts, client):
    a = art(CODE_KIND)
    arts.put_artifact(a)
    before = client.ttl(arts._key(a.kind, a.key))
    arts.update_artifact_data(a.kind, a.key, {"issued_jti": "j1"})
    assert arts.get_artifact(a.kind, a.key).data == {"issued_jti": "j1"}
    assert client.ttl(arts._key(a.kind, a.key)) >= before - 1
    arts.update_artifact_data(a.kind, "missing", {"x": 1})  # no-op, as on SQL
    assert arts.get_artifact(a.kind, "missing") is None


# --- the composite store -----------------------------------------------------------------------


@pytest.fixture
def composite(tmp_path, arts):
    from tessera.storage.migrate import upgrade
    from tessera.storage.sql import SQLStore

    sql = SQLStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(sql.engine)
    store = CompositeStore(sql, arts)
    yield store
    sql.close()


def test_composite_routes_short_lived_kinds_to_redis(composite):
    from sqlalchemy import func, select

    from tessera.storage.schema import artifacts

    assert isinstance(composite, Store)
    assert {PAR_KIND, CODE_KIND, JTI_KIND, REVOKED_TOKEN} <= SHORT_LIVED_KINDS
    assert not {REFRESH_KIND, FAMILY_KIND} & SHORT_LIVED_KINDS
    for kind in (PAR_KIND, CODE_KIND, REVOKED_TOKEN, REFRESH_KIND, FAMILY_KIND):
        composite.put_artifact(art(kind, key=f"k-{kind}"))
    t = now()
    assert composite.claim(JTI_KIND, "c1:j", "c1", t + 60, t)
    with composite.engine.connect() as c:  # SQL holds only the long-lived kinds
        kinds = {r[0] for r in c.execute(select(artifacts.c.kind).group_by(artifacts.c.kind))}
        assert kinds == {REFRESH_KIND, FAMILY_KIND}
        assert c.execute(select(func.count()).select_from(artifacts)).scalar() == 2
    for kind in (PAR_KIND, CODE_KIND, REVOKED_TOKEN):
        assert composite.artifacts.get_artifact(kind, f"k-{kind}") is not None
    # ... and everything is read back through the one Store interface.
    for kind in (PAR_KIND, CODE_KIND, REFRESH_KIND):
        assert composite.consume(kind, f"k-{kind}", t) is not None
        assert composite.consume(kind, f"k-{kind}", t) is None
    composite.update_artifact_data(FAMILY_KIND, f"k-{FAMILY_KIND}", {"revoked": True})
    assert composite.get_artifact(FAMILY_KIND, f"k-{FAMILY_KIND}").data == {"revoked": True}
    # Not artefacts: straight to SQL.
    composite.create_client(Client("cid", "n", None, created_at=t))
    assert composite.get_client("cid").name == "n"
    composite.ping()


def test_redis_down_is_store_unavailable(tmp_path):
    dead = connect(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    arts = RedisArtifacts(dead)
    started = time.monotonic()
    for call in (
        lambda: arts.put_artifact(art()),
        lambda: arts.get_artifact(PAR_KIND, "k"),
        lambda: arts.consume(PAR_KIND, "k", now()),
        lambda: arts.claim(JTI_KIND, "k", "c", now() + 5, now()),
        lambda: arts.update_artifact_data(PAR_KIND, "k", {}),
        arts.ping,
        lambda: RedisFailureLimiter(dead).locked("k"),
        lambda: RedisFailureLimiter(dead).failed("k"),
    ):
        with pytest.raises(StoreUnavailable):
            call()
    assert time.monotonic() - started < 10  # fast 503s, not hangs


def test_web_layer_renders_redis_outage_as_503():
    from tessera.web.errors import as_oauth_error

    err = as_oauth_error(StoreUnavailable("redis: ConnectionError"))
    assert err.status == 503 and err.headers.get("Retry-After")


# --- the shared failure limiter ------------------------------------------------------------------


def test_failure_limiter_is_shared_between_instances(client):
    prefix = f"t{secrets.token_hex(4)}:"
    a = RedisFailureLimiter(client, prefix=prefix, max_failures=5, window=60, lockout=30)
    b = RedisFailureLimiter(client, prefix=prefix, max_failures=5, window=60, lockout=30)
    key = "axept:1:1"
    assert [a.failed(key) for _ in range(4)] == [None] * 4
    assert a.locked(key) is None and b.locked(key) is None
    assert b.failed(key) == 30  # the fifth failure, counted on the other instance, locks
    assert 29 <= a.locked(key) <= 30 and 29 <= b.locked(key) <= 30
    b.succeeded(key)  # a success does not lift a lock
    assert a.locked(key)
    assert a.locked("axept:1:2") is None


def test_failure_limiter_success_resets_the_count(client):
    lim = RedisFailureLimiter(client, prefix=f"t{secrets.token_hex(4)}:", max_failures=3, window=60, lockout=30)
    lim.failed("k"), lim.failed("k")
    lim.succeeded("k")
    assert lim.failed("k") is None and lim.failed("k") is None
    assert lim.failed("k") == 30


def test_failure_limiter_window_and_lock_expire(client):
    lim = RedisFailureLimiter(client, prefix=f"t{secrets.token_hex(4)}:", max_failures=2, window=1, lockout=1)
    assert lim.failed("k{odd}") is None
    time.sleep(1.2)  # the window lapsed: counting starts again
    assert lim.failed("k{odd}") is None
    assert lim.failed("k{odd}") == 1
    assert lim.locked("k{odd}") == 1
    time.sleep(1.2)
    assert lim.locked("k{odd}") is None


def test_failure_limiter_counts_exactly_under_20_threads(client):
    lim = RedisFailureLimiter(client, prefix=f"t{secrets.token_hex(4)}:", max_failures=N, window=60, lockout=30)
    results = hammer(N, lambda: lim.failed("k"))
    assert results.count(30) == 1 and lim.locked("k")


# --- revocation notices ----------------------------------------------------------------------------


def test_revocation_notices(client):
    clock = [100.0]
    key = f"t{secrets.token_hex(4)}:revocation-epoch"
    worker = RevocationNotices(client, key, poll_seconds=0.1, clock=lambda: clock[0])
    admin = RevocationNotices(client, key)
    assert worker.changed() is True  # first look: nothing cached yet anyway
    clock[0] += 0.25
    assert worker.changed() is False
    assert admin.publish() is True
    assert worker.changed() is False  # checked less than 100 ms ago: not asked again yet
    clock[0] += 0.125
    assert worker.changed() is True
    clock[0] += 0.125
    assert worker.changed() is False
    client.delete(key)  # a Redis restart lost the key: that counts as a change too
    clock[0] += 0.125
    assert worker.changed() is True


def test_notices_when_redis_is_down_trust_no_cache():
    dead = connect(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    clock = [0.0]
    n = RevocationNotices(dead, "k", poll_seconds=0.1, clock=lambda: clock[0])
    assert n.changed() is True
    assert n.changed() is True  # inside the poll interval too: still no trust
    assert n.publish() is False  # logged, not raised: the revocation itself is in SQL


def test_core_drops_cached_certificates_on_notice(composite, client):
    """A worker caching for 30 s honours a revocation announced by another process
    within the poll interval."""
    from tessera.config import Settings
    from tessera.core.context import Core, CoreConfig

    t = now()
    composite.create_client(Client("cid", "n", None, created_at=t))
    composite.add_certificate(CertificateRecord("abc", "cid", "thumb", "CN=x", t - 10, t + 3600, "pem", None, t))
    worker_store = CompositeStore(
        composite.sql,
        composite.artifacts,
        RevocationNotices(client, composite.revocation_notices.key, poll_seconds=0.05),
    )
    core = Core(CoreConfig(issuer="https://x", cache_seconds=30), worker_store, keys=None, pepper=b"p")
    assert core.certificate("thumb").revoked_at is None
    composite.revoke_certificate("abc", t)  # through the store: SQL, then the notice
    time.sleep(0.06)
    assert core.certificate("thumb").revoked_at == t
    # Any commit that changes a cached table is announced on Redis, also one made through the
    # SQL store alone (tessera.storage.sql.database.CACHED_TABLES): an axept key disabled, here.
    from tessera.core import apikeys
    from tessera.core.models import Merchant

    composite.create_merchant(Merchant(7, "shop", "DK12345678", t))
    record, key = apikeys.create_key(composite, b"p", 7, t, max_enabled=2)
    assert apikeys.authenticate(core, 7, record.key_id, key).enabled
    assert core.merchant_by_vat("DK12345678").merchant_id == 7
    composite.sql.set_api_key_enabled(7, record.key_id, False, t, max_enabled=2)
    time.sleep(0.06)
    assert not core.api_key(7, record.key_id).enabled
    assert Settings.model_fields["revocation_poll_ms"].default == 100


def test_composite_combined_operations(composite):
    """claim_and_put on Redis (the jti and the request_uri are both short-lived kinds), rotate on SQL."""
    t = now()
    par = Artifact(PAR_KIND, "u1", "c1", {"p": 1}, t + 90)
    assert composite.claim_and_put(JTI_KIND, "c1:j", "c1", t + 60, t, par) is True
    assert composite.artifacts.get_artifact(PAR_KIND, "u1") is not None
    assert (
        composite.claim_and_put(JTI_KIND, "c1:j", "c1", t + 60, t, Artifact(PAR_KIND, "u2", "c1", {}, t + 90)) is False
    )
    assert composite.get_artifact(PAR_KIND, "u2") is None
    composite.put_artifact(Artifact(FAMILY_KIND, "f", "c1", {"revoked": False}, t + 500))
    composite.put_artifact(Artifact(REFRESH_KIND, "r1", "c1", {"fam": "f"}, t + 100))
    r = composite.rotate(
        REFRESH_KIND, "r1", t, family_kind=FAMILY_KIND, family="f", successor="r2", successor_expires_at=t + 100
    )
    assert r.status == "rotated" and composite.sql.get_artifact(REFRESH_KIND, "r2").data == {"fam": "f"}
    assert (
        composite.rotate(
            REFRESH_KIND, "r1", t, family_kind=FAMILY_KIND, family="f", successor="r3", successor_expires_at=t + 100
        ).status
        == "lost"
    )


def test_composite_announces_what_workers_cache(composite):
    from tessera.core.models import CertificateRecord, Merchant, MerchantUser, Terminal

    notices = composite.revocation_notices
    notices.poll_seconds = 0
    notices.changed()
    t = now()
    writes = [
        lambda: composite.create_client(Client("c9", "n", None, created_at=t)),
        lambda: composite.add_certificate(CertificateRecord("09", "c9", "th9", "CN=x", 0, t + 99, "pem", created_at=t)),
        lambda: composite.create_merchant(Merchant(9, "m", None, t)),
        lambda: composite.add_terminal(Terminal("T9", 9, "P9", "softpos")),
        lambda: composite.add_user(MerchantUser("u9@x.example", 9, "h")),
        lambda: composite.grant(9, "c9", t),
        lambda: composite.bind_username("u9@x.example", "T9", t),
    ]
    for i, write in enumerate(writes):
        write()
        assert notices.changed() is True, i  # merchants too: workers cache them by VAT number
