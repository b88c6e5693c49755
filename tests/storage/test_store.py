"""The Store contract (tessera.core.ports), one suite for every implementation:

- ``memory``: ``MemoryStore``;
- ``sqlite`` (a temporary file) and ``postgres`` (a real PostgreSQL): ``SQLStore``;
- ``redis``: ``CompositeStore``, the short-lived kinds on a real Redis in front of SQLite;
- ``redis-all``: ``CompositeStore`` with every artefact kind on Redis, so that the artefact
  contract runs on Redis itself (rotate and claim_and_put stepwise over its atomic scripts).

Each test gets a fresh store. The concurrency tests run 20 threads released together by a
barrier, each with its own connection from the pool. The few rules that hold only where the
artefacts live in one database (a combined operation that fails leaves nothing spent; the
purge; another process's view) use the ``durable`` stores.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import replace

import pytest

from tessera.core.kinds import Kind
from tessera.core.models import (
    Artifact,
    CertificateRecord,
    Client,
    Merchant,
    MerchantUser,
    Organisation,
    StoredKey,
    Terminal,
)
from tessera.core.ports import (
    AnnouncedKinds,
    AnnouncesChanges,
    ApiKeyStore,
    ArtifactStore,
    AsyncRotation,
    Capabilities,
    CertificateDirectory,
    ClientDirectory,
    Conflict,
    EnrollmentStore,
    EventLog,
    KeyStore,
    MerchantDirectory,
    OrganisationDirectory,
    RedisHandle,
    SQLBacked,
    Store,
)
from tessera.storage.memory import MemoryStore
from tessera.storage.redis_store import CompositeStore, RedisArtifacts, RevocationNotices, connect
from tessera.storage.sql import SQLStore
from tests.support import migrated
from tests.support.redis_server import redis_server  # noqa: F401 - the fixture

N = 20
#: The tests' clock, near the real one: Redis expires a record at its ``expires_at`` plus the
#: replay margin in real time (``REPLAY_MARGIN``, long enough for any run of the suite).
NOW = int(time.time())
REPLAY_MARGIN = 10**7
#: Every kind the tests below use: on Redis in the ``redis-all`` store.
ALL_KINDS = frozenset({*Kind, "other_kind"})

SQL = ["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow])]
REDIS = [pytest.param("redis", marks=pytest.mark.slow), pytest.param("redis-all", marks=pytest.mark.slow)]


def _sql(request, tmp_path) -> SQLStore:
    if request.param == "postgres":
        return SQLStore(request.getfixturevalue("migrated_postgres_url"))
    return SQLStore(migrated.sqlite_url(tmp_path / "store.db"))


def _open(request, tmp_path):
    if request.param == "memory":
        return MemoryStore()
    if request.param in ("redis", "redis-all"):
        server = request.getfixturevalue("redis_server")
        client = connect(server.url, timeout=2)
        prefix = f"t{secrets.token_hex(4)}:"
        kinds = {"kinds": ALL_KINDS} if request.param == "redis-all" else {}
        artifacts = RedisArtifacts(client, prefix=prefix, replay_margin=REPLAY_MARGIN, **kinds)
        notices = RevocationNotices(client, f"{prefix}revocation-epoch", poll_seconds=0)
        return CompositeStore(_sql(request, tmp_path), artifacts, notices)
    return _sql(request, tmp_path)


@pytest.fixture(params=["memory", *SQL, *REDIS])
def store(request, tmp_path):
    s = _open(request, tmp_path)
    yield s
    s.close()


@pytest.fixture(params=["memory", *SQL])
def durable(request, tmp_path):
    """The stores whose artefacts live in one database (or one lock): memory and SQL."""
    s = _open(request, tmp_path)
    yield s
    s.close()


@pytest.fixture(params=SQL)
def sql_store(request, tmp_path):
    s = _sql(request, tmp_path)
    yield s
    s.close()


def together(n: int, fn) -> list:
    """Run ``fn(i)`` in ``n`` threads released at once; return the results (exceptions re-raised)."""
    barrier = threading.Barrier(n)
    out: list = [None] * n

    def run(i: int) -> None:
        barrier.wait(timeout=60)
        try:
            out[i] = fn(i)
        except BaseException as e:  # noqa: BLE001
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    errors = [r for r in out if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    return out


def a_client(client_id: str = "app-1", **kw) -> Client:
    base = dict(
        client_id=client_id,
        name="App One",
        secret_hash="ab" * 32,
        redirect_uris=("https://a.example/cb",),
        scope="openid",
        auth_methods=("client_secret_post",),
        grant_types=("client_credentials", "authorization_code"),
        require_par=True,
        jwks={"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}]},
        created_at=NOW,
    )
    base.update(kw)
    return Client(**base)


def a_cert(serial: str = "1a2b", client_id: str = "app-1", thumbprint: str = "tp-1", **kw) -> CertificateRecord:
    base = dict(
        serial=serial,
        client_id=client_id,
        thumbprint=thumbprint,
        subject="CN=NOMEAPP",
        not_before=NOW - 10,
        not_after=NOW + 86400,
        pem="-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n",
        created_at=NOW,
    )
    base.update(kw)
    return CertificateRecord(**base)


def test_is_a_store(store):
    assert isinstance(store, Store)
    for role in (
        ClientDirectory,
        OrganisationDirectory,
        CertificateDirectory,
        KeyStore,
        MerchantDirectory,
        ApiKeyStore,
        ArtifactStore,
        EnrollmentStore,
        EventLog,
    ):
        assert isinstance(store, role), role
    store.ping()


def test_capabilities_are_found_once_and_typed(store):
    caps = Capabilities.of(store)
    assert caps.announced_kinds == (
        frozenset({Kind.REVOKED_TOKEN}) if not isinstance(store, CompositeStore) else frozenset()
    )  # on Redis the marks are not announced
    assert caps.notices is not None and caps.notices.exact is (not isinstance(store, CompositeStore))
    assert (caps.rotation is not None) is isinstance(store, (SQLStore, CompositeStore))
    assert (caps.database is not None) is isinstance(store, (SQLStore, CompositeStore))
    assert (caps.redis is not None) is isinstance(store, CompositeStore)
    if caps.database is not None:
        assert caps.database.remote is (store.engine.dialect.name == "postgresql")
        caps.database.ping()
    if caps.redis is not None:
        assert caps.redis.redis.ping() is True
        caps.redis.ping_redis()
    for capability in (AsyncRotation, AnnouncesChanges, AnnouncedKinds, SQLBacked, RedisHandle):
        assert isinstance(store, capability) is (
            capability in {AnnouncesChanges, AnnouncedKinds}
            or isinstance(store, (SQLStore, CompositeStore))
            and (capability is not RedisHandle or isinstance(store, CompositeStore))
        )


def test_announced_writes_reach_a_listener(store):
    """Every write of what workers cache is announced (exactly, or through the Redis epoch);
    merchants and server keys themselves are not cached by the core."""
    notices = Capabilities.of(store).notices
    assert notices is not None
    notices.changed()  # the first look counts as a change
    assert notices.changed() is False
    writes = [
        ("client", lambda: store.create_client(a_client())),
        ("certificate", lambda: store.add_certificate(a_cert())),
        ("revocation", lambda: store.revoke_certificate("1a2b", NOW)),
        ("client status", lambda: store.set_client_status("app-1", "revoked")),
        (
            "terminal",
            lambda: (
                store.create_merchant(Merchant(42, "Shop")),
                store.add_terminal(Terminal("S1", 42, "POS1", "softpos")),
            ),
        ),
        ("user", lambda: store.add_user(MerchantUser("a@shop.example", 42, "h"))),
        ("grant", lambda: store.grant(42, "app-1", NOW)),
        ("binding", lambda: store.bind_username("a@shop.example", "S1", NOW)),
    ]
    for name, write in writes:
        write()
        deadline = time.monotonic() + 5  # the SQLite notice file and NOTIFY: at once; a fresh poll for Redis
        while not notices.changed():
            assert time.monotonic() < deadline, name
            time.sleep(0.01)
    if Kind.REVOKED_TOKEN in Capabilities.of(store).announced_kinds:
        store.put_artifact(Artifact(Kind.REVOKED_TOKEN, "j1", "app-1", {}, NOW + 60))
        deadline = time.monotonic() + 5
        while not notices.changed():
            assert time.monotonic() < deadline
            time.sleep(0.01)


# --- clients -------------------------------------------------------------------------------------


def test_clients(store):
    c = a_client()
    store.create_client(c)
    assert store.get_client("app-1") == c
    assert store.get_client("nope") is None
    with pytest.raises(Conflict):
        store.create_client(replace(c, name="again"))
    store.create_client(a_client("app-2", created_at=NOW + 1, jwks=None, secret_hash=None))
    assert [x.client_id for x in store.list_clients()] == ["app-1", "app-2"]
    assert store.set_client_status("app-1", "revoked") is True
    assert store.get_client("app-1").active is False
    assert store.set_client_status("nope", "revoked") is False


def test_organisations_own_clients(store):
    acme = Organisation("acme", "Acme POS", NOW)
    store.create_organisation(acme)
    store.create_organisation(Organisation("zeta", "Zeta", NOW + 1))
    assert store.get_organisation("acme") == acme
    assert store.get_organisation("nope") is None
    with pytest.raises(Conflict):
        store.create_organisation(replace(acme, name="again"))
    assert [o.org_id for o in store.list_organisations()] == ["acme", "zeta"]
    store.create_client(a_client("a-2", org_id="acme", created_at=NOW + 2))
    store.create_client(a_client("a-1", org_id="acme"))
    store.create_client(a_client("z-1", org_id="zeta"))
    store.create_client(a_client("platform"))
    assert [c.client_id for c in store.clients_of("acme")] == ["a-1", "a-2"]
    assert store.get_client("a-1").org_id == "acme" and store.get_client("platform").org_id is None
    assert store.clients_of("nope") == []
    with pytest.raises(Conflict):  # an unknown organisation owns nothing
        store.create_client(a_client("x-1", org_id="nope"))
    assert store.get_client("x-1") is None


# --- certificates --------------------------------------------------------------------------------


def test_certificates(store):
    store.create_client(a_client())
    cert = a_cert()
    store.add_certificate(cert)
    assert store.get_certificate("tp-1") == cert
    assert store.get_certificate("tp-unknown") is None
    with pytest.raises(Conflict):
        store.add_certificate(replace(cert, serial="ffff"))  # same thumbprint
    with pytest.raises(Conflict):
        store.add_certificate(replace(cert, thumbprint="tp-other"))  # same serial
    store.add_certificate(a_cert("2c", thumbprint="tp-2", created_at=NOW + 5))
    assert [r.serial for r in store.certificates_for_client("app-1")] == ["1a2b", "2c"]
    assert store.certificates_for_client("nobody") == []


def test_certificate_for_unknown_client_refused(store):
    with pytest.raises(Conflict):
        store.add_certificate(a_cert(client_id="ghost"))


@pytest.mark.parametrize("spelling", ["1a2b", "0x1a2b", "001a2b", "1A2B", "0X001A2B"])
def test_revoke_certificate_by_serial(store, spelling):
    store.create_client(a_client())
    store.add_certificate(a_cert())
    rec = store.revoke_certificate(spelling, NOW + 100)
    assert rec is not None and rec.revoked_at == NOW + 100
    assert store.get_certificate("tp-1").revoked_at == NOW + 100
    assert not store.get_certificate("tp-1").usable(NOW + 200)
    # a second revocation keeps the first time
    assert store.revoke_certificate("1a2b", NOW + 500).revoked_at == NOW + 100


def test_revoke_unknown_serial(store):
    assert store.revoke_certificate("deadbeef", NOW) is None


# --- server keys ---------------------------------------------------------------------------------


def test_server_keys(store):
    k1 = StoredKey("kid-1", "sig", "ES256", "current", {"kty": "EC", "kid": "kid-1"}, "sealed1", NOW)
    k2 = StoredKey("kid-2", "sig", "ES256", "next", {"kty": "EC", "kid": "kid-2"}, "sealed2", NOW + 1)
    store.save_server_keys([k1, k2])
    assert store.list_server_keys() == [k1, k2]
    store.save_server_keys([replace(k1, status="retired", retire_at=NOW + 99), replace(k2, status="current")])
    got = {k.kid: k for k in store.list_server_keys()}
    assert got["kid-1"].status == "retired" and got["kid-1"].retire_at == NOW + 99
    assert got["kid-2"].status == "current"
    assert len(got) == 2


# --- merchants, terminals, users, grants ---------------------------------------------------------


def test_merchants_terminals_users_grants(store):
    store.create_client(a_client())
    store.create_merchant(Merchant(42, "Shop", "DK12345678", NOW))
    assert store.get_merchant(42) == Merchant(42, "Shop", "DK12345678", NOW)
    assert store.get_merchant(43) is None
    with pytest.raises(Conflict):
        store.create_merchant(Merchant(42, "Again"))
    with pytest.raises(Conflict):
        store.create_merchant(Merchant(44, "Same VAT", "DK12345678"))

    store.add_terminal(Terminal("S1", 42, "POS1", "softpos"))
    store.add_terminal(Terminal("M1", 42, "POS1", "mpos"))
    store.add_terminal(Terminal("S2", 42, "POS2", "softpos"))
    assert sorted(t.tid for t in store.terminals_at("POS1")) == ["M1", "S1"]
    assert store.terminals_at("nowhere") == []
    with pytest.raises(Conflict):
        store.add_terminal(Terminal("S1", 42, "POS9", "softpos"))
    with pytest.raises(Conflict):
        store.add_terminal(Terminal("X1", 999, "POS1", "softpos"))  # unknown merchant

    store.add_user(MerchantUser("a@shop.example", 42, "$argon2id$..."))
    assert store.get_user("a@shop.example") == MerchantUser("a@shop.example", 42, "$argon2id$...")
    assert store.get_user("b@shop.example") is None
    with pytest.raises(Conflict):
        store.add_user(MerchantUser("a@shop.example", 42, "x"))
    with pytest.raises(Conflict):
        store.add_user(MerchantUser("c@shop.example", 999, "x"))

    assert store.is_granted(42, "app-1") is False
    store.grant(42, "app-1", NOW)
    store.grant(42, "app-1", NOW + 1)  # idempotent
    assert store.is_granted(42, "app-1") is True
    assert store.is_granted(42, "app-2") is False
    with pytest.raises(Conflict):
        store.grant(42, "ghost", NOW)
    with pytest.raises(Conflict):
        store.grant(999, "app-1", NOW)


# --- single-use artefacts ------------------------------------------------------------------------


def test_kinds_are_their_strings(store):
    """A ``Kind`` member is its string in every store: written as one, read back as the other."""
    store.put_artifact(Artifact(Kind.REQUEST_URI, "k", "app-1", {"kind": Kind.CODE}, NOW + 90))
    got = store.get_artifact("request_uri", "k")
    assert got is not None and got.kind == "request_uri" and got.data == {"kind": "authorization_code"}
    assert store.consume(Kind.REQUEST_URI, "k", NOW) is not None
    assert store.claim(Kind.ASSERTION_JTI, "app-1:j", "app-1", NOW + 9, NOW) is True
    assert store.claim("assertion_jti", "app-1:j", "app-1", NOW + 9, NOW) is False


def test_artifact_keys_are_the_live_ones_of_a_kind(store):
    for key, expires_at in (("gone", NOW), ("live", NOW + 1), ("later", NOW + 99)):
        store.put_artifact(Artifact(Kind.REVOKED_TOKEN, key, "app-1", {}, expires_at))
    store.put_artifact(Artifact(Kind.REQUEST_URI, "other", "app-1", {}, NOW + 99))
    assert store.artifact_keys(Kind.REVOKED_TOKEN, NOW) == frozenset({"live", "later"})
    assert store.artifact_keys(Kind.REVOKED_TOKEN, NOW + 1) == frozenset({"later"})
    assert store.artifact_keys("nothing_here", NOW) == frozenset()


def test_artifact_data_is_a_copy(store):
    data = {"n": [1, 2], "t": (3, 4)}
    store.put_artifact(Artifact("request_uri", "c", "app-1", data, NOW + 90))
    data["n"].append(9)
    got = store.get_artifact("request_uri", "c")
    assert got is not None and got.data == {"n": [1, 2], "t": [3, 4]}  # as JSON keeps it
    got.data["n"].append(7)
    assert store.get_artifact("request_uri", "c").data == {"n": [1, 2], "t": [3, 4]}


def test_artifacts_put_get_update(store):
    a = Artifact("request_uri", "k1", "app-1", {"params": {"scope": "oidc"}, "n": [1, 2]}, NOW + 90)
    store.put_artifact(a)
    assert store.get_artifact("request_uri", "k1") == a
    assert store.get_artifact("authorization_code", "k1") is None
    with pytest.raises(Conflict):
        store.put_artifact(replace(a, client_id="other"))
    store.update_artifact_data("request_uri", "k1", {"issued_jti": "j"})
    assert store.get_artifact("request_uri", "k1").data == {"issued_jti": "j"}


def test_consume(store):
    store.put_artifact(Artifact("authorization_code", "c1", "app-1", {"x": 1}, NOW + 60))
    won = store.consume("authorization_code", "c1", NOW)
    assert won is not None and won.consumed_at == NOW and won.data == {"x": 1} and won.client_id == "app-1"
    assert store.consume("authorization_code", "c1", NOW) is None  # consumed
    assert store.consume("authorization_code", "c1", NOW + 1) is None
    assert store.get_artifact("authorization_code", "c1").consumed_at == NOW


def test_consume_expired_and_unknown(store):
    store.put_artifact(Artifact("authorization_code", "c2", "app-1", {}, NOW + 60))
    assert store.consume("authorization_code", "c2", NOW + 60) is None  # expires_at <= now
    assert store.consume("authorization_code", "c2", NOW + 61) is None
    assert store.get_artifact("authorization_code", "c2").consumed_at is None
    assert store.consume("authorization_code", "nope", NOW) is None
    assert store.consume("request_uri", "c2", NOW) is None  # the kind is part of the key


@pytest.mark.parametrize("round_", range(3))
def test_consume_is_atomic_under_threads(store, round_):
    key = f"race-{round_}"
    store.put_artifact(Artifact("request_uri", key, "app-1", {"n": round_}, NOW + 90))
    results = together(N, lambda i: store.consume("request_uri", key, NOW))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1, results
    assert winners[0].data == {"n": round_}


def test_claim(store):
    assert store.claim("assertion_jti", "app-1:j1", "app-1", NOW + 100, NOW) is True
    assert store.claim("assertion_jti", "app-1:j1", "app-1", NOW + 100, NOW + 1) is False
    assert store.claim("assertion_jti", "app-1:j1", "app-1", NOW + 100, NOW + 99) is False
    # another key, and the same key under another kind, are independent
    assert store.claim("assertion_jti", "app-1:j2", "app-1", NOW + 100, NOW) is True
    assert store.claim("other_kind", "app-1:j1", "app-1", NOW + 100, NOW) is True
    # once the record has lapsed it can be claimed again, and then not again
    assert store.claim("assertion_jti", "app-1:j1", "app-2", NOW + 300, NOW + 100) is True
    assert store.claim("assertion_jti", "app-1:j1", "app-1", NOW + 300, NOW + 101) is False
    rec = store.get_artifact("assertion_jti", "app-1:j1")
    assert rec.client_id == "app-2" and rec.expires_at == NOW + 300


@pytest.mark.parametrize("lapsed", [False, True], ids=["fresh", "lapsed"])
def test_claim_is_atomic_under_threads(store, lapsed):
    key = f"app-1:race-{lapsed}"
    if lapsed:
        assert store.claim("assertion_jti", key, "app-1", NOW - 1, NOW - 100) is True
    results = together(N, lambda i: store.claim("assertion_jti", key, f"app-{i}", NOW + 100, NOW))
    assert results.count(True) == 1, results


def test_purge_expired(durable):
    store = durable
    store.put_artifact(Artifact("request_uri", "old", "app-1", {}, NOW - 1))
    store.put_artifact(Artifact("request_uri", "edge", "app-1", {}, NOW))
    store.put_artifact(Artifact("request_uri", "new", "app-1", {}, NOW + 1))
    store.claim("assertion_jti", "app-1:gone", "app-1", NOW - 5, NOW - 10)
    assert store.purge_expired(NOW) == 3
    assert store.get_artifact("request_uri", "old") is None
    assert store.get_artifact("request_uri", "edge") is None
    assert store.get_artifact("request_uri", "new") is not None
    assert store.purge_expired(NOW) == 0


# --- username bindings and enrollments ------------------------------------------------------------


def test_bindings(store):
    assert store.bindings("a@x.example", "S1") == (None, None)
    assert store.bind_username("a@x.example", "S1", NOW) is True
    assert store.bindings("a@x.example", "S1") == ("S1", "a@x.example")
    assert store.bindings("a@x.example", "S2") == ("S1", None)
    assert store.bindings("b@x.example", "S1") == (None, "a@x.example")
    assert store.bind_username("a@x.example", "S1", NOW + 1) is True  # already bound to this TID
    assert store.bind_username("a@x.example", "S2", NOW) is False  # a username binds one TID
    assert store.bind_username("b@x.example", "S1", NOW) is False  # a TID belongs to one username
    assert store.bindings("b@x.example", "S2") == (None, None)


def test_bind_username_is_atomic_under_threads(store):
    same_tid = together(N, lambda i: store.bind_username(f"u{i}@x.example", "S-race", NOW))
    assert same_tid.count(True) == 1, same_tid
    same_user = together(N, lambda i: store.bind_username("v@x.example", f"T{i}", NOW))
    assert same_user.count(True) == 1, same_user


def test_enrollments(store):
    store.create_client(a_client())
    e1 = store.add_enrollment("app-1", 42, "POS1", ["S1", "M1"], "a@x.example", NOW)
    e2 = store.add_enrollment("app-1", 43, "POS2", ["S2"], "b@x.example", NOW + 1)
    assert e1.id != e2.id
    assert store.list_enrollments() == [e1, e2]
    assert e1.tids == ("S1", "M1")


# --- events --------------------------------------------------------------------------------------


def test_events(store):
    for i in range(5):
        store.add_event(f"kind-{i}", "app-1" if i % 2 else None, {"i": i}, NOW + i)
    evs = store.list_events()
    assert [e.kind for e in evs] == [f"kind-{i}" for i in range(5)]
    assert evs[1].client_id == "app-1" and evs[0].client_id is None and evs[3].detail == {"i": 3}
    assert [e.kind for e in store.list_events(limit=2)] == ["kind-3", "kind-4"]  # the latest, oldest first


def test_writes_are_visible_to_a_second_store(sql_store):
    """Committed before the method returns: another engine (another process, in production) sees it."""
    store = sql_store
    other = SQLStore(store.engine.url.render_as_string(hide_password=False))
    try:
        store.put_artifact(Artifact("request_uri", "shared", "app-1", {}, int(time.time()) + 60))
        assert other.get_artifact("request_uri", "shared") is not None
        assert other.consume("request_uri", "shared", int(time.time())) is not None
        assert store.consume("request_uri", "shared", int(time.time())) is None
    finally:
        other.close()


# --- combined operations: claim_and_put (PAR), rotate (refresh tokens) -----------------------------


def test_claim_and_put(store):
    par = Artifact("request_uri", "u1", "app-1", {"params": {"scope": "oidc"}}, NOW + 90)
    assert store.claim_and_put("assertion_jti", "app-1:j1", "app-1", NOW + 100, NOW, par) is True
    assert store.get_artifact("request_uri", "u1") == par
    assert store.get_artifact("assertion_jti", "app-1:j1").consumed_at == NOW
    # the jti again: lost, and the second request is not stored
    par2 = replace(par, key="u2")
    assert store.claim_and_put("assertion_jti", "app-1:j1", "app-1", NOW + 100, NOW + 1, par2) is False
    assert store.get_artifact("request_uri", "u2") is None
    # a request_uri that exists: Conflict
    with pytest.raises(Conflict):
        store.claim_and_put("assertion_jti", "app-1:j2", "app-1", NOW + 100, NOW, par)
    assert store.claim_and_put("assertion_jti", "app-1:j3", "app-1", NOW + 100, NOW, par2) is True
    # a lapsed jti record is taken over
    par3 = replace(par, key="u3")
    assert store.claim_and_put("assertion_jti", "app-1:j1", "app-2", NOW + 300, NOW + 100, par3) is True
    assert store.get_artifact("assertion_jti", "app-1:j1").client_id == "app-2"


def test_claim_and_put_is_one_unit(durable):
    """Where the two artefacts live in one database: a Conflict on the put leaves the jti unspent,
    and a lost claim wins over an existing request (False, not Conflict). (Apart, on Redis, the
    claim comes first and stays spent: see CompositeStore.claim_and_put.)"""
    store = durable
    par = Artifact("request_uri", "u1", "app-1", {}, NOW + 90)
    store.put_artifact(par)
    with pytest.raises(Conflict):
        store.claim_and_put("assertion_jti", "app-1:j2", "app-1", NOW + 100, NOW, par)
    assert store.get_artifact("assertion_jti", "app-1:j2") is None
    assert store.claim("assertion_jti", "app-1:j3", "app-1", NOW + 100, NOW) is True
    assert store.claim_and_put("assertion_jti", "app-1:j3", "app-1", NOW + 100, NOW, par) is False


def test_rotate_onto_an_existing_successor_consumes_nothing(durable):
    store = durable
    _family(store, "f1")
    store.put_artifact(Artifact("refresh_token", "t1", "app-1", {"fam": "f1"}, NOW + 100))
    store.put_artifact(Artifact("refresh_token", "taken", "app-1", {"fam": "f1"}, NOW + 100))
    with pytest.raises(Conflict):
        store.rotate(
            "refresh_token",
            "t1",
            NOW,
            family_kind="refresh_family",
            family="f1",
            successor="taken",
            successor_expires_at=NOW + 100,
        )
    assert store.get_artifact("refresh_token", "t1").consumed_at is None
    # a token that cannot be consumed is "lost" before the successor is looked at
    store.consume("refresh_token", "t1", NOW)
    assert (
        store.rotate(
            "refresh_token",
            "t1",
            NOW,
            family_kind="refresh_family",
            family="f1",
            successor="taken",
            successor_expires_at=NOW + 100,
        ).status
        == "lost"
    )


@pytest.mark.parametrize("lapsed", [False, True], ids=["fresh", "lapsed"])
def test_claim_and_put_is_atomic_under_threads(store, lapsed):
    key = f"app-1:par-race-{lapsed}"
    if lapsed:
        assert store.claim("assertion_jti", key, "app-1", NOW - 1, NOW - 100) is True
    results = together(
        N,
        lambda i: store.claim_and_put(
            "assertion_jti",
            key,
            "app-1",
            NOW + 100,
            NOW,
            Artifact("request_uri", f"r{lapsed}{i}", "app-1", {"i": i}, NOW + 90),
        ),
    )
    assert results.count(True) == 1, results
    stored = [i for i in range(N) if store.get_artifact("request_uri", f"r{lapsed}{i}") is not None]
    assert stored == [results.index(True)]


def _family(store, name: str, expires_at: int = NOW + 1000, revoked: bool = False) -> None:
    store.put_artifact(Artifact("refresh_family", name, "app-1", {"revoked": revoked}, expires_at))


def test_rotate(store):
    _family(store, "f1", expires_at=NOW + 500)
    data = {"fam": "f1", "sub": "alice", "scope": "a b"}
    store.put_artifact(Artifact("refresh_token", "t1", "app-1", data, NOW + 100))
    args = dict(family_kind="refresh_family", family="f1")
    r = store.rotate("refresh_token", "t1", NOW, **args, successor="t2", successor_expires_at=NOW + 100)
    assert r.status == "rotated" and r.family_expires_at == NOW + 500 and r.successor_expires_at == NOW + 100
    assert r.consumed.client_id == "app-1" and r.consumed.data == data and r.consumed.consumed_at == NOW
    assert store.get_artifact("refresh_token", "t2") == Artifact("refresh_token", "t2", "app-1", data, NOW + 100)
    # used again: lost, nothing stored
    r = store.rotate("refresh_token", "t1", NOW + 1, **args, successor="t3", successor_expires_at=NOW + 100)
    assert r.status == "lost" and r.consumed is None and store.get_artifact("refresh_token", "t3") is None
    # unknown, and expired: lost
    assert (
        store.rotate("refresh_token", "nope", NOW, **args, successor="t4", successor_expires_at=NOW + 9).status
        == "lost"
    )
    assert (
        store.rotate("refresh_token", "t2", NOW + 100, **args, successor="t4", successor_expires_at=NOW + 9).status
        == "lost"
    )
    # the successor never outlives its family
    r = store.rotate("refresh_token", "t2", NOW + 2, **args, successor="t5", successor_expires_at=NOW + 9999)
    assert r.status == "rotated" and r.successor_expires_at == NOW + 500
    assert store.get_artifact("refresh_token", "t5").expires_at == NOW + 500


def test_rotate_refused_when_the_family_is_revoked_or_gone(store):
    _family(store, "f2", revoked=True)
    store.put_artifact(Artifact("refresh_token", "u1", "app-1", {"fam": "f2"}, NOW + 100))
    store.put_artifact(Artifact("refresh_token", "u2", "app-1", {"fam": "gone"}, NOW + 100))
    for key, fam in (("u1", "f2"), ("u2", "gone")):
        r = store.rotate(
            "refresh_token",
            key,
            NOW,
            family_kind="refresh_family",
            family=fam,
            successor=key + "x",
            successor_expires_at=NOW + 50,
        )
        assert r.status == "family_revoked"
        assert store.get_artifact("refresh_token", key).consumed_at is None  # nothing consumed
        assert store.get_artifact("refresh_token", key + "x") is None


@pytest.mark.parametrize("round_", range(2))
def test_rotate_is_atomic_under_threads(store, round_):
    _family(store, f"fr{round_}")
    store.put_artifact(Artifact("refresh_token", f"r{round_}", "app-1", {"fam": f"fr{round_}"}, NOW + 100))
    results = together(
        N,
        lambda i: store.rotate(
            "refresh_token",
            f"r{round_}",
            NOW,
            family_kind="refresh_family",
            family=f"fr{round_}",
            successor=f"r{round_}-{i}",
            successor_expires_at=NOW + 100,
        ),
    )
    assert [r.status for r in results].count("rotated") == 1, results
    assert sorted(r.status for r in results)[-1] == "rotated" and {r.status for r in results} == {"lost", "rotated"}
    winner = [i for i, r in enumerate(results) if r.status == "rotated"][0]
    assert [i for i in range(N) if store.get_artifact("refresh_token", f"r{round_}-{i}")] == [winner]


def test_rotate_async_on_the_event_loop(sql_store):
    """``rotate_async`` (PostgreSQL: awaited on the loop, prepared statement on libpq) does what
    ``rotate`` does: one winner among concurrent callers, the family's bounds, the refusals,
    ``Conflict`` for an existing successor (the connection stays usable); SQLite: None (the
    caller uses ``rotate``)."""
    import asyncio

    store = sql_store
    args = dict(family_kind="refresh_family")

    async def main():
        if store.is_sqlite:
            assert (
                await store.rotate_async(
                    "refresh_token", "x", NOW, family="f", successor="y", **args, successor_expires_at=NOW + 1
                )
                is None
            )
            return
        _family(store, "fa", expires_at=NOW + 500)
        _family(store, "fr", revoked=True)
        data = {"fam": "fa", "sub": "alice", "scope": "a b"}
        store.put_artifact(Artifact("refresh_token", "a1", "app-1", data, NOW + 100))
        store.put_artifact(Artifact("refresh_token", "b1", "app-1", {"fam": "fr"}, NOW + 100))
        results = await asyncio.gather(
            *(
                store.rotate_async(
                    "refresh_token",
                    "a1",
                    NOW,
                    family="fa",
                    successor=f"a2-{i}",
                    successor_expires_at=NOW + 9999,
                    **args,
                )
                for i in range(N)
            )
        )
        won = [i for i, r in enumerate(results) if r.status == "rotated"]
        assert len(won) == 1 and {r.status for r in results} == {"lost", "rotated"}
        r = results[won[0]]
        assert r.consumed == Artifact("refresh_token", "a1", "app-1", data, NOW + 100, NOW)
        assert r.family_expires_at == NOW + 500 and r.successor_expires_at == NOW + 500  # never past the family
        assert store.get_artifact("refresh_token", f"a2-{won[0]}").data == data
        assert [i for i in range(N) if store.get_artifact("refresh_token", f"a2-{i}")] == won
        lost = await store.rotate_async(
            "refresh_token", "a1", NOW, family="fa", successor="a3", successor_expires_at=NOW + 9, **args
        )
        assert lost.status == "lost" and lost.family_expires_at == NOW + 500
        r = await store.rotate_async(
            "refresh_token", "b1", NOW, family="fr", successor="b2", successor_expires_at=NOW + 9, **args
        )
        assert r.status == "family_revoked" and store.get_artifact("refresh_token", "b1").consumed_at is None
        store.put_artifact(Artifact("refresh_token", "c1", "app-1", {"fam": "fa"}, NOW + 100))
        with pytest.raises(Conflict):
            await store.rotate_async(
                "refresh_token", "c1", NOW, family="fa", successor=f"a2-{won[0]}", successor_expires_at=NOW + 9, **args
            )
        assert store.get_artifact("refresh_token", "c1").consumed_at is None  # one statement: all or nothing
        r = await store.rotate_async(
            "refresh_token", "c1", NOW, family="fa", successor="c2", successor_expires_at=NOW + 9, **args
        )
        assert r.status == "rotated"

    asyncio.run(main())
    if not store.is_sqlite:  # another event loop (the first one is closed): new connections, same answers
        store.put_artifact(Artifact("refresh_token", "d1", "app-1", {"fam": "fa"}, NOW + 100))
        r = asyncio.run(
            store.rotate_async(
                "refresh_token", "d1", NOW, family="fa", successor="d2", successor_expires_at=NOW + 9, **args
            )
        )
        assert r.status == "rotated"


@pytest.mark.postgres
def test_rotate_async_outage_is_store_unavailable():
    import asyncio
    import socket

    from tessera.core.ports import StoreUnavailable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = SQLStore(f"postgresql+psycopg://nobody@127.0.0.1:{port}/none")
    try:
        with pytest.raises(StoreUnavailable):
            asyncio.run(
                store.rotate_async(
                    "refresh_token",
                    "k",
                    NOW,
                    family_kind="refresh_family",
                    family="f",
                    successor="s",
                    successor_expires_at=NOW + 1,
                )
            )
    finally:
        store.close()


# --- what the admin layer reads and changes (AdminQueries) -----------------------------------------


def _until_changed(notices, name: str) -> None:
    deadline = time.monotonic() + 5
    while not notices.changed():
        assert time.monotonic() < deadline, name
        time.sleep(0.01)


def test_client_details_and_secret_updates_are_announced(store):
    notices = Capabilities.of(store).notices
    assert notices is not None
    store.create_client(a_client())
    notices.changed()
    assert store.update_client_details("app-1", "Renamed", ("https://b.example/cb", "https://c.example/cb"))
    _until_changed(notices, "details")
    got = store.get_client("app-1")
    assert got.name == "Renamed" and got.redirect_uris == ("https://b.example/cb", "https://c.example/cb")
    assert got.secret_hash == "ab" * 32 and got.previous_secret_hash is None and got.previous_valid_until is None
    assert store.set_client_secret("app-1", "cd" * 32, "ab" * 32, NOW + 60)
    _until_changed(notices, "secret")
    got = store.get_client("app-1")
    assert (got.secret_hash, got.previous_secret_hash, got.previous_valid_until) == ("cd" * 32, "ab" * 32, NOW + 60)
    assert got.previous_secret(NOW + 59) == "ab" * 32 and got.previous_secret(NOW + 60) is None
    assert store.set_client_secret("app-1", "ef" * 32, None, None)
    got = store.get_client("app-1")
    assert (got.secret_hash, got.previous_secret_hash, got.previous_valid_until) == ("ef" * 32, None, None)
    assert not store.update_client_details("nope", "x", ())
    assert not store.set_client_secret("nope", None, None, None)


def test_merchant_listings(store):
    store.create_client(a_client())
    store.create_client(a_client("app-2"))
    store.create_merchant(Merchant(43, "Two", None, NOW))
    store.create_merchant(Merchant(42, "One", "DK1", NOW))
    store.add_terminal(Terminal("T2", 42, "POS-B", "mpos"))
    store.add_terminal(Terminal("T1", 42, "POS-B", "softpos"))
    store.add_terminal(Terminal("T3", 42, "POS-A", "softpos"))
    store.add_terminal(Terminal("T9", 43, "POS-Z", "softpos"))
    store.add_user(MerchantUser("b@shop.example", 42, "h2"))
    store.add_user(MerchantUser("a@shop.example", 42, "h1"))
    assert [m.merchant_id for m in store.list_merchants()] == [42, 43]
    assert [t.tid for t in store.terminals_of(42)] == ["T3", "T1", "T2"]
    assert [u.username for u in store.users_of(42)] == ["a@shop.example", "b@shop.example"]
    assert store.terminals_of(44) == [] and store.users_of(43) == []


@pytest.mark.parametrize("spelling", ["1a2b", "0x1A2B", "001a2b"])
def test_certificate_by_serial(store, spelling):
    store.create_client(a_client())
    store.add_certificate(a_cert())
    got = store.certificate_by_serial(spelling)
    assert got is not None and got.thumbprint == "tp-1"
    assert store.certificate_by_serial("ffff") is None


def test_events_after_pages_by_id_with_filters(store):
    for i in range(5):
        store.add_event("admin_change" if i % 2 == 0 else "jti_replayed", f"c{i % 2}", {"i": i}, NOW + i)
    first = store.events_after(0, 2)
    assert [e.detail["i"] for e in first] == [0, 1]
    rest = store.events_after(first[-1].id, 10)
    assert [e.detail["i"] for e in rest] == [2, 3, 4]
    assert [e.detail["i"] for e in store.events_after(0, 10, kind="admin_change")] == [0, 2, 4]
    assert [e.detail["i"] for e in store.events_after(0, 10, client_id="c1")] == [1, 3]
    assert [e.detail["i"] for e in store.events_after(0, 10, since=NOW + 3)] == [3, 4]
    assert store.events_after(rest[-1].id, 10) == []


def test_client_details_update_only_as_expected(store):
    store.create_client(a_client())
    read = ("App One", ("https://a.example/cb",))
    assert store.update_client_details("app-1", "Two", ("https://b.example/cb",), expected=read)
    with pytest.raises(Conflict):  # what was read is no longer there
        store.update_client_details("app-1", "Three", (), expected=read)
    got = store.get_client("app-1")
    assert (got.name, got.redirect_uris) == ("Two", ("https://b.example/cb",))
    assert not store.update_client_details("nope", "x", (), expected=read)


# --- the portal: developer accounts, and the merchant side (grants, passwords, key use) -------------------


def test_developer_accounts(store):
    from tessera.core.models import Developer
    from tessera.core.ports import DeveloperDirectory

    assert isinstance(store, DeveloperDirectory)
    with pytest.raises(Conflict):  # the organisation must exist
        store.create_developer(Developer("dev@acme.example", "acme", created_at=NOW))
    store.create_organisation(Organisation("acme", "Acme", NOW))
    store.create_developer(Developer("Dev@Acme.example", "acme", created_at=NOW))
    with pytest.raises(Conflict):
        store.create_developer(Developer("dev@acme.example", "acme", created_at=NOW))
    dev = store.get_developer("DEV@acme.example")
    assert dev == Developer("dev@acme.example", "acme", "invited", None, None, 0, NOW)
    store.create_developer(Developer("two@acme.example", "acme", created_at=NOW + 1))
    assert [d.email for d in store.list_developers("acme")] == ["dev@acme.example", "two@acme.example"]
    assert store.list_developers("other") == []
    assert store.activate_developer("dev@acme.example", "argon", "sealed", 100) is True
    assert store.activate_developer("dev@acme.example", "again", "again", 101) is False  # once only
    assert store.activate_developer("nobody@acme.example", "h", "s", 1) is False
    dev = store.get_developer("dev@acme.example")
    assert (dev.status, dev.password_hash, dev.totp_sealed, dev.totp_last_step) == ("active", "argon", "sealed", 100)
    assert store.use_totp_step("dev@acme.example", 100) is False  # that step's code was used
    assert store.use_totp_step("dev@acme.example", 99) is False
    assert store.use_totp_step("dev@acme.example", 101) is True
    assert store.use_totp_step("nobody@acme.example", 500) is False
    assert store.set_developer_status("dev@acme.example", "disabled") is True
    assert store.get_developer("dev@acme.example").status == "disabled"
    assert store.set_developer_status("nobody@acme.example", "disabled") is False


def test_a_totp_step_is_won_once_under_threads(store):
    from tessera.core.models import Developer

    store.create_organisation(Organisation("acme", "Acme", NOW))
    store.create_developer(Developer("dev@acme.example", "acme", created_at=NOW))
    barrier = threading.Barrier(N)
    wins: list[bool] = []

    def race() -> None:
        barrier.wait()
        wins.append(store.use_totp_step("dev@acme.example", 7))

    threads = [threading.Thread(target=race) for _ in range(N)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert wins.count(True) == 1


def test_grants_withdrawn_listed_and_announced(store):
    from tessera.core.ports import MerchantPortal

    assert isinstance(store, MerchantPortal)
    store.create_client(a_client())
    store.create_client(a_client("app-2", created_at=NOW + 1))
    store.create_merchant(Merchant(42, "Shop"))
    store.create_merchant(Merchant(43, "Other"))
    store.grant(42, "app-1", NOW)
    store.grant(42, "app-2", NOW + 1)
    store.grant(43, "app-1", NOW + 2)
    assert [(g.client_id, g.created_at) for g in store.grants_of(42)] == [("app-1", NOW), ("app-2", NOW + 1)]
    assert [g.merchant_id for g in store.grants_to("app-1")] == [42, 43]
    notices = Capabilities.of(store).notices
    assert notices is not None
    notices.changed()
    assert store.withdraw_grant(42, "app-1") is True
    deadline = time.monotonic() + 5
    while not notices.changed():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert store.is_granted(42, "app-1") is False
    assert store.withdraw_grant(42, "app-1") is False
    assert [g.client_id for g in store.grants_of(42)] == ["app-2"]
    store.grant(42, "app-1", NOW + 5)  # granted again
    assert store.is_granted(42, "app-1")


def test_a_user_password_set_later_and_a_key_last_used(store):
    store.create_merchant(Merchant(42, "Shop"))
    store.add_user(MerchantUser("a@shop.example", 42, ""))
    assert store.set_user_password("a@shop.example", "argon") is True
    assert store.get_user("a@shop.example").password_hash == "argon"
    assert store.set_user_password("nobody@shop.example", "argon") is False
    key = store.create_api_key(42, "h" * 64, NOW, max_enabled=3)
    assert key.last_used_at is None
    store.touch_api_key(42, key.key_id, NOW + 10)
    assert store.get_api_key(42, key.key_id).last_used_at == NOW + 10
    store.touch_api_key(42, key.key_id, NOW + 5)  # never backwards
    assert store.list_api_keys(42)[0].last_used_at == NOW + 10
    store.touch_api_key(42, 99, NOW)  # an unknown key: nothing
