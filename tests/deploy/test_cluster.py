"""Several instances: two ``tessera serve`` processes sharing one PostgreSQL and one Redis,
behind a real nginx running the repository's ``deploy/nginx/tessera.conf``.

nginx terminates mutual TLS and forwards the client certificate; the instances run in
proxy mode (plain HTTP, the certificate from ``X-SSL-Client-Cert``, honoured only from
127.0.0.1). Every request below that goes "through nginx" is real mTLS with a client
certificate made by openssl and signed by the home's CA.

Checked across the instances:
- the Nexi token works through nginx and is bound to the TLS client certificate;
- a client's own ``X-SSL-Client-Cert`` header is not honoured (nginx overwrites it);
- a request_uri, an authorization code and an assertion jti are each consumed exactly
  once by 20 concurrent racers spread over both instances (through nginx, whose access
  log shows both instances served the race, and directly, alternating the instances);
- a certificate revoked with the CLI is refused by both instances within the bound
  (``revocation_poll_ms``), although they cache certificates for 30 s;
- a lockout reached on instance A is enforced on instance B (for the address that failed; the key
  keeps working from its own addresses);
- with Redis down, what needs it answers 503, and what does not keeps working.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
import sqlalchemy

from tessera.config import Settings
from tessera.core import apikeys
from tessera.core.models import Merchant
from tessera.home import init_home, open_store
from tessera.storage.redis_store import CompositeStore
from tests.support.jwkcache import jwk_from_pem
from tests.support.live import PLAIN_HTTP, AppIdentity, MerchantSetup, SharedHomeServer, environment, free_port
from tests.support.nginx import Nginx, find_nginx
from tests.support.redis_server import RedisServer, require_binary

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

N = 20
CACHE_SECONDS = 30  # the instances trust cached clients/certificates this long ...
POLL_MS = 100  # ... unless the revocation epoch changed (checked at most every 100 ms)
BOUND = 1.0  # seconds: what the test allows for "honoured by both instances"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TOKEN, JWKS, PAR = "/softpos/appenrollment/token", "/softpos/par/jwks.json", "/softpos/as/par"
AUTHORIZE, CODE_TOKEN, AXEPT = "/softpos/as/authorize", "/softpos/as/token", "/axept/v1/authenticate"


@dataclass
class Cluster:
    a: SharedHomeServer
    b: SharedHomeServer
    nginx: Nginx
    redis: RedisServer
    store: CompositeStore
    ca: Path
    port: int

    @property
    def issuer(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def instances(self) -> tuple[SharedHomeServer, SharedHomeServer]:
        return self.a, self.b

    @property
    def upstream_addresses(self) -> set[str]:
        return {f"127.0.0.1:{self.a.port}", f"127.0.0.1:{self.b.port}"}

    def via_nginx(
        self, app: AppIdentity | None = None, *, cert: Path | None = None, key: Path | None = None
    ) -> httpx.Client:
        """Real mutual TLS to nginx, with ``app``'s certificate (or ``cert``) if given."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        cert = cert or (app.cert if app else None)
        if cert is not None:
            ctx.load_cert_chain(str(cert), str(key or app.key))
        return httpx.Client(base_url=self.issuer, verify=ctx, timeout=30)

    def direct(
        self, instance: SharedHomeServer, app: AppIdentity | None = None, *, real_ip: str | None = None
    ) -> httpx.Client:
        """Plain HTTP straight to one instance from 127.0.0.1 (a trusted proxy address),
        with the certificate header nginx would send."""
        headers = {}
        if app is not None:
            headers["X-SSL-Client-Cert"] = quote(app.cert.read_text(), safe="")
        if real_ip:
            headers["X-Real-IP"] = real_ip
        url = f"http://127.0.0.1:{instance.port}"
        return httpx.Client(base_url=url, headers=headers, timeout=30, verify=PLAIN_HTTP)


@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory) -> Cluster:
    find_nginx()  # skip (or fail under CI) before starting anything
    require_binary("redis-server", "/usr/bin/redis-server")
    pg = request.getfixturevalue("postgres_server")
    database_url = pg.create_database(f"cluster_{secrets.token_hex(6)}")
    redis_server = RedisServer().start()
    work = tmp_path_factory.mktemp("cluster")
    home = work / "home"
    port = free_port()
    with environment(TESSERA_DATABASE_URL=database_url):
        init_home(home, hostname="localhost", port=port, issuer=f"https://localhost:{port}", now=int(time.time()))
    env = {
        "TESSERA_DATABASE_URL": database_url,
        "TESSERA_REDIS_URL": redis_server.url,
        "TESSERA_MTLS_MODE": "proxy",
        "TESSERA_TRUSTED_PROXIES": '["127.0.0.1/32"]',
        "TESSERA_LOGIN_MAX_FAILURES_PER_ADDRESS": "5",  # low enough to reach the address lock in a test
        "TESSERA_REVOCATION_CACHE_SECONDS": str(CACHE_SECONDS),
        "TESSERA_REVOCATION_POLL_MS": str(POLL_MS),
    }
    a = SharedHomeServer(work / "a", database_url=database_url, env=env, shared_home=home)
    b = SharedHomeServer(work / "b", database_url=database_url, env=env, shared_home=home)
    started: list[Any] = []
    try:
        for inst in (a, b):
            inst.workdir.mkdir()
            started.append(inst.start())
        nginx = Nginx(port=port, upstreams=[a.port, b.port], home=home).start()
        started.append(nginx)
        with environment(TESSERA_DATABASE_URL=database_url, TESSERA_REDIS_URL=redis_server.url):
            store = open_store(Settings.load(home))
        assert isinstance(store, CompositeStore)
        a.store = store  # LiveServer's admin helpers (new_app, add_cert, new_merchant) write through it
        yield Cluster(a, b, nginx, redis_server, store, home / "ca.pem", port)
    finally:
        for thing in reversed(started):
            thing.stop()
        redis_server.stop()


# --- client-side helpers (independent of tessera's own JOSE code) --------------------------------


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_of(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def token_form(app: AppIdentity) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret}


def get_token(c: httpx.Client, app: AppIdentity) -> str:
    r = c.post(TOKEN, data=token_form(app), headers=FORM)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def build_assertion(cl: Cluster, app: AppIdentity, merchant: MerchantSetup) -> str:
    """The Nexi client assertion: a JWT signed RS256 with the app's openssl key, encrypted
    (RSA-OAEP-256 / A256GCM) to the first key of the PAR JWKS — built with jwcrypto."""
    from jwcrypto import jwe, jwk, jws

    with cl.via_nginx() as c:
        keys = c.get(JWKS).json()["keys"]
    now = int(time.time())
    claims = {
        "iss": app.client_id,
        "sub": app.client_id,
        "aud": cl.issuer,
        "iat": now,
        "exp": now + 120,
        "jti": str(uuid.uuid4()),
        "appId": app.client_id,
        "pointOfSale": merchant.pos,
        "terminal_ids": [merchant.softpos_tid, merchant.mpos_tid],
        "username_merchant": merchant.username,
    }
    signed = jws.JWS(json.dumps(claims).encode())
    signed.add_signature(
        jwk_from_pem(app.key.read_bytes()), alg="RS256", protected=json.dumps({"alg": "RS256", "typ": "JWT"})
    )
    enc = jwe.JWE(
        signed.serialize(compact=True).encode(),
        protected=json.dumps({"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT", "kid": keys[0]["kid"]}),
    )
    enc.add_recipient(jwk.JWK(**keys[0]))
    return enc.serialize(compact=True)


def pkce() -> tuple[str, str]:
    verifier = b64u(secrets.token_bytes(32))
    return verifier, b64u(hashlib.sha256(verifier.encode()).digest())


def par(c: httpx.Client, token: str, app: AppIdentity, assertion: str, challenge: str | None = None) -> httpx.Response:
    form = {
        "client_assertion": assertion,
        "client_id": app.client_id,
        "scope": "oidc",
        "redirect_uri": app.redirect_uri,
    }
    if challenge:
        form.update(code_challenge=challenge, code_challenge_method="S256")
    return c.post(PAR, data=form, headers={**FORM, "Authorization": f"Bearer {token}"})


def login(c: httpx.Client, app: AppIdentity, request_uri: str, merchant: MerchantSetup) -> httpx.Response:
    return c.post(
        AUTHORIZE,
        data={
            "client_id": app.client_id,
            "request_uri": request_uri,
            "username": merchant.username,
            "password": merchant.password,
        },
        headers=FORM,
    )


def exchange(c: httpx.Client, app: AppIdentity, code: str, verifier: str) -> httpx.Response:
    return c.post(
        CODE_TOKEN,
        headers=FORM,
        data={
            "grant_type": "authorization_code",
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "code": code,
            "redirect_uri": app.redirect_uri,
            "code_verifier": verifier,
        },
    )


def code_of(resp: httpx.Response) -> str:
    assert resp.status_code == 303, (resp.status_code, resp.text[:300])
    return parse_qs(urlsplit(resp.headers["location"]).query)["code"][0]


def race(
    make_client: Callable[[int], httpx.Client], fire: Callable[[httpx.Client], httpx.Response]
) -> list[httpx.Response]:
    """``N`` threads, each with its own connection (opened and warmed first), released together."""
    barrier = threading.Barrier(N)
    results: list[Any] = [None] * N

    def run(i: int) -> None:
        with make_client(i) as c:
            c.get("/healthz")  # the TLS handshake happens here, not in the race
            try:
                barrier.wait(timeout=60)
                results[i] = fire(c)
            except Exception as e:  # noqa: BLE001 - reported below
                results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    errors = [r for r in results if not isinstance(r, httpx.Response)]
    assert not errors, errors
    return results


class Racers:
    """Where the racers go: through nginx (round-robin), or straight at A and B in turn."""

    def __init__(self, cl: Cluster, via: str):
        self.cl, self.via = cl, via
        self.mark = len(cl.nginx.access_log())

    def client(self, app: AppIdentity | None = None) -> Callable[[int], httpx.Client]:
        if self.via == "nginx":
            return lambda i: self.cl.via_nginx(app)
        return lambda i: self.cl.direct(self.cl.instances[i % 2], app)

    def check_spread(self, path: str) -> None:
        if self.via == "nginx":
            deadline = time.monotonic() + 5  # nginx logs a request just after answering it
            while len(served := self.cl.nginx.upstreams(self.mark, path)) < N and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(served) == N, served
            assert set(served) == self.cl.upstream_addresses, f"both instances must serve the race: {served}"


@pytest.fixture(scope="module")
def nexi(cluster):
    """An app with a certificate, a merchant that granted it, and a certificate-bound token."""
    app = cluster.a.new_app()
    with cluster.via_nginx(app) as c:
        token = get_token(c, app)
    return app, token


# --- the tests ---------------------------------------------------------------------------------------


def test_nexi_token_through_nginx_is_bound_to_the_tls_certificate(cluster, nexi):
    app, _ = nexi
    mark = len(cluster.nginx.access_log())
    with cluster.via_nginx(app) as c:
        tokens = [get_token(c, app) for _ in range(4)]
    for t in tokens:
        claims = claims_of(t)
        assert claims["cnf"]["x5t#S256"] == app.thumbprint
        assert claims["iss"] == cluster.issuer and claims["client_id"] == app.client_id
    # round-robin over one kept-alive client connection: both instances issued tokens
    deadline = time.monotonic() + 5  # nginx logs a request just after answering it
    while len(served := cluster.nginx.upstreams(mark, TOKEN)) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert set(served) == cluster.upstream_addresses, served
    with cluster.via_nginx() as c:  # no client certificate: refused by the token endpoint
        r = c.post(TOKEN, data=token_form(app), headers=FORM)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_client_supplied_certificate_header_is_not_honoured(cluster, nexi):
    app, _ = nexi
    forged = {"X-SSL-Client-Cert": quote(app.cert.read_text(), safe="")}
    # Without a TLS client certificate, a header naming a registered certificate is dropped by nginx.
    with cluster.via_nginx() as c:
        r = c.post(TOKEN, data=token_form(app), headers={**FORM, **forged})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
    # With certificate A over TLS and certificate B (also the app's) in the header: bound to A.
    other = AppIdentity(app.client_id, app.client_secret, app.redirect_uri)
    cluster.a.add_cert(other)
    with cluster.via_nginx(app) as c:
        r = c.post(
            TOKEN, data=token_form(app), headers={**FORM, "X-SSL-Client-Cert": quote(other.cert.read_text(), safe="")}
        )
    assert r.status_code == 200, r.text
    assert claims_of(r.json()["access_token"])["cnf"]["x5t#S256"] == app.thumbprint != other.thumbprint
    # Control: the very same header sent straight to an instance from a trusted address is
    # honoured, so it is nginx that stopped it above.
    with cluster.direct(cluster.b) as c:
        r = c.post(TOKEN, data=token_form(app), headers={**FORM, **forged})
    assert r.status_code == 200 and claims_of(r.json()["access_token"])["cnf"]["x5t#S256"] == app.thumbprint


@pytest.mark.parametrize("via", ["nginx", "direct"])
def test_request_uri_is_consumed_once_across_instances(cluster, nexi, via):
    app, token = nexi
    merchant = cluster.a.new_merchant(app)
    with cluster.via_nginx(app) as c:
        r = par(c, token, app, build_assertion(cluster, app, merchant))
    assert r.status_code == 201, r.text
    uri = r.json()["request_uri"]

    racers = Racers(cluster, via)
    results = race(racers.client(), lambda c: login(c, app, uri, merchant))

    assert sorted(r.status_code for r in results) == [303] + [400] * (N - 1)
    racers.check_spread(AUTHORIZE)


@pytest.mark.parametrize("via", ["nginx", "direct"])
def test_authorization_code_is_consumed_once_across_instances(cluster, nexi, via):
    app, token = nexi
    merchant = cluster.a.new_merchant(app)
    verifier, challenge = pkce()
    with cluster.via_nginx(app) as c:
        r = par(c, token, app, build_assertion(cluster, app, merchant), challenge)
        assert r.status_code == 201, r.text
        code = code_of(login(c, app, r.json()["request_uri"], merchant))

    racers = Racers(cluster, via)
    results = race(racers.client(app), lambda c: exchange(c, app, code, verifier))

    won = [r for r in results if r.status_code == 200]
    assert len(won) == 1, sorted(r.status_code for r in results)
    assert all(r.status_code == 400 and r.json()["error"] == "invalid_grant" for r in results if r is not won[0])
    assert claims_of(won[0].json()["access_token"])["cnf"]["x5t#S256"] == app.thumbprint
    assert len([e for e in cluster.store.list_enrollments() if e.username == merchant.username]) == 1
    racers.check_spread(CODE_TOKEN)
    # The losers were replays: the winner's token is revoked (on both instances: Redis).
    with cluster.via_nginx(app) as c:
        again = par(c, won[0].json()["access_token"], app, build_assertion(cluster, app, merchant))
    assert again.status_code == 401 and again.json()["error"] == "invalid_token", again.text


@pytest.mark.parametrize("via", ["nginx", "direct"])
def test_assertion_jti_is_claimed_once_across_instances(cluster, nexi, via):
    app, token = nexi
    merchant = cluster.a.new_merchant(app)
    assertion = build_assertion(cluster, app, merchant)

    racers = Racers(cluster, via)
    results = race(racers.client(app), lambda c: par(c, token, app, assertion))

    won = [r for r in results if r.status_code == 201]
    assert len(won) == 1, sorted(r.status_code for r in results)
    for r in results:
        if r is not won[0]:
            # a replayed assertion at the PAR: 400 invalid_client, as Nexi answers assertion problems
            assert r.status_code == 400 and "jti" in r.json().get("error_description", ""), r.text
    racers.check_spread(PAR)


def test_certificate_revoked_with_the_cli_is_refused_by_both_instances_within_the_bound(cluster, capsys):
    kept, revoked = cluster.a.new_app(), cluster.a.new_app()

    clients = {
        (inst.port, app.client_id): cluster.direct(inst, app) for inst in cluster.instances for app in (kept, revoked)
    }

    def status(inst: SharedHomeServer, app: AppIdentity) -> int:
        return clients[inst.port, app.client_id].post(TOKEN, data=token_form(app), headers=FORM).status_code

    for inst in cluster.instances:  # both instances now hold both certificates in their caches
        assert status(inst, kept) == 200 and status(inst, revoked) == 200

    # Control: a revocation written to the database without a notice is not seen while
    # the caches last (revocation_cache_seconds = 30): the notices are what makes it quick.
    # (Every write through tessera's store announces itself, so the silent one is plain SQL
    # on a connection of its own.)
    silent = sqlalchemy.create_engine(cluster.a.database_url)
    try:
        with silent.begin() as c:
            done = c.execute(
                sqlalchemy.text("UPDATE certificates SET revoked_at = :t WHERE serial = :s"),
                {"t": int(time.time()), "s": (kept.serial or "").lower().removeprefix("0x").lstrip("0")},
            )
            assert done.rowcount == 1
    finally:
        silent.dispose()
    time.sleep(3 * POLL_MS / 1000)
    assert [status(inst, kept) for inst in cluster.instances] == [200, 200]

    proc = cluster.a.cli("certs", "revoke", "--serial", revoked.serial, "--json")
    assert json.loads(proc.stdout)["serial"] == revoked.serial
    done = time.monotonic()
    refused_after: dict[str, float] = {}
    while len(refused_after) < 2 and time.monotonic() - done < CACHE_SECONDS:
        for name, inst in zip("ab", cluster.instances, strict=True):
            if name not in refused_after and status(inst, revoked) == 401:
                refused_after[name] = time.monotonic() - done
        time.sleep(0.01)
    assert set(refused_after) == {"a", "b"}, f"not refused within {CACHE_SECONDS} s: {refused_after}"
    slowest = max(refused_after.values())
    with capsys.disabled():
        print(
            f"\n  revocation honoured by both instances {slowest * 1000:.0f} ms after `tessera certs revoke` "
            f"returned (a: {refused_after['a'] * 1000:.0f} ms, b: {refused_after['b'] * 1000:.0f} ms; "
            f"poll {POLL_MS} ms, cache {CACHE_SECONDS} s)"
        )
    assert slowest <= BOUND, refused_after
    # The notice dropped every cached certificate, so the silently revoked one is refused too.
    assert [status(inst, kept) for inst in cluster.instances] == [401, 401]
    for c in clients.values():
        c.close()
    with cluster.via_nginx(revoked) as c:
        r = c.post(TOKEN, data=token_form(revoked), headers=FORM)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_lockout_reached_on_one_instance_is_enforced_on_the_other(cluster):
    store, now = cluster.store, int(time.time())
    pepper = Settings.load(cluster.a.home).pepper_bytes()
    mids = [secrets.randbelow(10**9) + 1 for _ in range(2)]
    keys = []
    for mid in mids:
        store.create_merchant(Merchant(mid, f"Shop {mid}", None, now))
        keys.append(apikeys.create_key(store, pepper, mid, now, max_enabled=3))
    (rec, value), (rec2, value2) = keys

    def auth(c: httpx.Client, record, key: str) -> httpx.Response:
        return c.post(AXEPT, json={"merchantId": record.merchant_id, "keyId": record.key_id, "key": key})

    with cluster.direct(cluster.b, real_ip="203.0.113.9") as c:
        assert auth(c, rec, value).status_code == 200  # the key works
    with cluster.direct(cluster.a, real_ip="198.51.100.7") as c:
        assert [auth(c, rec, "wrong-" + value).status_code for _ in range(5)] == [401] * 5
    # On instance B, from the address that failed, even the right key is locked out now ...
    with cluster.direct(cluster.b, real_ip="198.51.100.7") as c:
        r = auth(c, rec, value)
        assert r.status_code == 429, r.text
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        # ... and so is that address with any credential (its budget is 5 here).
        assert auth(c, rec2, value2).status_code == 429
    # From the key's own address the key keeps working, on either instance (checklist row 43) ...
    for instance in (cluster.a, cluster.b):
        with cluster.direct(instance, real_ip="203.0.113.9") as c:
            assert auth(c, rec, value).status_code == 200
    # ... and through nginx (X-Real-IP is then 127.0.0.1), while the stranger stays locked on both.
    with cluster.via_nginx() as c:
        assert [auth(c, rec, value).status_code for _ in range(2)] == [200, 200]
        assert auth(c, rec2, value2).status_code == 200
    for instance in (cluster.a, cluster.b):
        with cluster.direct(instance, real_ip="198.51.100.7") as c:
            assert auth(c, rec, value).status_code == 429


def test_redis_down_answers_503_not_a_wrong_grant(cluster, nexi):
    """Last (it stops Redis): single-use artefacts need Redis and fail closed with 503; the
    token endpoints do not (the limits fall back to each process) and keep answering."""
    app, token = nexi
    merchant = cluster.a.new_merchant(app)
    with cluster.via_nginx(app) as c:
        r = par(c, token, app, build_assertion(cluster, app, merchant))
        assert r.status_code == 201, r.text
        uri = r.json()["request_uri"]
    cluster.redis.stop()
    with cluster.via_nginx(app) as c:
        for _ in range(2):  # both instances
            r = login(c, app, uri, merchant)
            assert r.status_code == 503, (r.status_code, r.text[:200])
            assert r.headers.get("Retry-After")
            r = c.post(AXEPT, json={"merchantId": 1, "keyId": 1, "key": "x"})
            assert r.status_code == 401  # answered from the database, counted in the process
        assert claims_of(get_token(c, app))["cnf"]["x5t#S256"] == app.thumbprint
