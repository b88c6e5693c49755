"""Checklist rows 30 and 43: a lockout that a stranger cannot use as a weapon.

A client id is public (it is in every authorization URL). Wrong secrets sent for a client
from a stranger's address throttle that address (for that client, and after
``TESSERA_LOGIN_MAX_FAILURES_PER_ADDRESS`` failures for every credential), while the client
keeps getting tokens from its own addresses at every profile that checks its secret:
native ``/oauth2/token``, Nexi over mTLS, MobilePay and the B2BINPAY login; axept merchant
keys likewise. People's passwords (the merchant login pages) are still locked per account,
from whatever address.

Each scenario runs against a live server over TLS whose counters live in the process and
against one whose counters live in Redis (``tessera.storage.redis_limits``); requests come
from loopback addresses of their own (``helpers.client``).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from tessera.core import apikeys
from tessera.core.models import Merchant
from tests.e2e import native_helpers as nh
from tests.e2e import nexi_helpers as nx
from tests.security.helpers import (
    AXEPT,
    B2B_LOGIN,
    FORM,
    JSONAPI,
    MOBILEPAY,
    assert_429,
    assert_axept_error,
    assert_error,
    assert_jsonapi_error,
    client,
    fresh_address,
    nothing_new,
)
from tests.support.live import AppIdentity, LiveServer
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.slow

MAX_FAILURES = 5  # TESSERA_LOGIN_MAX_FAILURES, the default
#: The developer certificates of the clients whose requests are only token requests: EC P-256
#: keys (openssl makes one in milliseconds, an RSA-2048 one in about 0.2 CPU s); the lockout
#: does not look at the key. Nexi PAR (the merchant login) signs with RSA: those keep RSA.
TLS_KEY = "ec"


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(request, tmp_path_factory):
    redis = None
    env: dict[str, str] = {}
    if request.param == "redis":
        redis = RedisServer().start()
        env["TESSERA_REDIS_URL"] = redis.url
    srv = LiveServer(tmp_path_factory.mktemp(f"lockout-{request.param}"), env=env).start()
    srv.redis = redis
    yield srv
    srv.stop()
    if redis is not None:
        redis.stop()


# --- one token request per profile that checks a client secret --------------------------------------------
@dataclass(frozen=True)
class Profile:
    name: str
    send: Callable[[LiveServer, AppIdentity, str, str, AppIdentity], httpx.Response]
    shape: str  # the 429's shape (helpers.assert_429)
    refused: Callable[[httpx.Response], object]  # the answer to a wrong secret

    def __str__(self) -> str:
        return self.name


def native(server, app, secret, address, tls_as):
    with client(server, cert=tls_as.cert, key=tls_as.key, address=address) as c:
        return c.post(nh.TOKEN, data={"grant_type": "client_credentials"}, auth=(app.client_id, secret), headers=FORM)


def nexi(server, app, secret, address, tls_as):
    # mTLS: the stranger presents a certificate of his own client; the client its own.
    with client(server, cert=tls_as.cert, key=tls_as.key, address=address) as c:
        return nx.token_request(c, app, client_secret=secret)


def mobilepay(server, app, secret, address, tls_as):
    with client(server, address=address) as c:
        return c.post(MOBILEPAY, data={"grant_type": "client_credentials"}, auth=(app.client_id, secret), headers=FORM)


def b2binpay(server, app, secret, address, tls_as):
    body = {"data": {"type": "auth-token", "attributes": {"login": app.client_id, "password": secret}}}
    with client(server, address=address) as c:
        return c.post(B2B_LOGIN, content=json.dumps(body).encode(), headers={"Content-Type": JSONAPI})


PROFILES = [
    Profile("native", native, "oauth", lambda r: assert_error(r, 401, "invalid_client")),
    Profile("nexi-mtls", nexi, "oauth", lambda r: assert_error(r, 401, "invalid_client")),
    Profile("mobilepay", mobilepay, "oauth", lambda r: assert_error(r, 401, "invalid_client")),
    Profile("b2binpay", b2binpay, "b2binpay", lambda r: assert_jsonapi_error(r, 400, "2006")),
]


def assert_issued(r: httpx.Response, profile: Profile) -> None:
    assert r.status_code == 200, (profile.name, r.status_code, r.text[:300])
    body = r.json()
    assert body.get("access_token") or body.get("data", {}).get("attributes", {}).get("access"), (profile.name, body)


def lockout_events(server: LiveServer) -> list[dict]:
    return [e.detail for e in server.store.list_events() if e.kind == "brute_force_lockout"]


# --- row 43: machine credentials -------------------------------------------------------------------------
@pytest.mark.parametrize("attacked", PROFILES, ids=str)
def test_a_stranger_throttles_himself_and_the_client_keeps_working_everywhere(server, attacked):
    victim = server.new_app(with_cert=True, key_type=TLS_KEY)  # a client id the stranger learnt
    stranger_app = server.new_app(with_cert=True, key_type=TLS_KEY)  # the stranger's own client (his TLS certificate)
    stranger, home = fresh_address(), fresh_address()
    assert all(p.send(server, victim, victim.client_secret, home, victim).status_code == 200 for p in PROFILES)

    # Wrong secrets for the victim from the stranger's address, until 429: exactly MAX_FAILURES get an answer.
    answers = []
    for _ in range(MAX_FAILURES + 5):
        r = attacked.send(server, victim, secrets.token_urlsafe(32), stranger, stranger_app)
        answers.append(r.status_code)
        if r.status_code == 429:
            assert_429(r, attacked.shape)
            assert 1 <= int(r.headers["retry-after"]) <= 60
            break
        attacked.refused(r)
    assert answers[-1] == 429 and len(answers) == MAX_FAILURES + 1, answers

    # The victim, from its own address, still gets tokens at every profile (Nexi over its mTLS).
    for profile in PROFILES:
        assert_issued(profile.send(server, victim, victim.client_secret, home, victim), profile)
    # ... and from an address it never used before.
    other = fresh_address()
    for profile in PROFILES:
        assert_issued(profile.send(server, victim, victim.client_secret, other, victim), profile)

    # The stranger stays throttled for this client at every profile, whatever secret he sends
    # (the check is not even made: nothing is issued), and the victim's successes lifted nothing.
    with nothing_new(server):
        for profile in PROFILES:
            assert_429(profile.send(server, victim, secrets.token_urlsafe(32), stranger, stranger_app), profile.shape)
            assert_429(profile.send(server, victim, victim.client_secret, stranger, stranger_app), profile.shape)
    # The lock names the client and the stranger's address, not the client alone.
    assert {"key": f"client:{victim.client_id}", "address": stranger} in lockout_events(server)
    assert {"key": f"client:{victim.client_id}"} not in lockout_events(server)
    if server.redis is not None:  # the lock is shared by every instance: it lives in Redis
        locks = server.redis.client().keys("tessera:rl:*:lock")
        assert f"tessera:rl:{{pair:{stranger} client:{victim.client_id}}}:lock" in locks, locks
        assert not [k for k in locks if k.startswith(f"tessera:rl:{{client:{victim.client_id}")], locks


def test_many_strangers_cannot_lock_the_client_out(server):
    """Failures from many addresses add up nowhere: a distributed attacker gets 5 tries per
    address, which is nothing against a 256-bit secret, and the client is never locked."""
    victim = server.new_app(with_cert=True, key_type=TLS_KEY)
    stranger_app = server.new_app(with_cert=True, key_type=TLS_KEY)
    for i in range(4):
        address = fresh_address()
        attacked = PROFILES[i % len(PROFILES)]
        for _ in range(MAX_FAILURES):
            attacked.refused(attacked.send(server, victim, "wrong-" + secrets.token_hex(8), address, stranger_app))
        assert_429(attacked.send(server, victim, victim.client_secret, address, stranger_app), attacked.shape)
    for profile in PROFILES:
        assert_issued(profile.send(server, victim, victim.client_secret, fresh_address(), victim), profile)


@pytest.fixture(scope="module")
def spray_server(tmp_path_factory):
    """A server whose per-address budget (8 failures) is reachable; the two spray tests share it,
    each with clients and addresses of its own, and each reads back only the events that name them."""
    srv = LiveServer(
        tmp_path_factory.mktemp("lockout-spray"), env={"TESSERA_LOGIN_MAX_FAILURES_PER_ADDRESS": "8"}
    ).start()
    yield srv
    srv.stop()


def naming(events: list[dict], client_ids: set[str], addresses: set[str]) -> list[dict]:
    """The events whose key or address names one of these clients or addresses."""
    names = {f"client:{c}" for c in client_ids} | {f"addr:{a}" for a in addresses}
    return [d for d in events if d.get("key") in names or d.get("address") in addresses]


def test_wrong_secrets_from_many_addresses_are_an_event_not_a_lock(spray_server):
    """The operator sees a distributed attack on one client (``credential_failures_spread``
    after ``TESSERA_LOGIN_MAX_FAILURES_PER_ADDRESS`` failures over every address); the client
    is not locked by it."""
    srv = spray_server
    victim, other = srv.new_app(with_cert=False), srv.new_app(with_cert=False)
    used: set[str] = set()

    def address() -> str:
        used.add(a := fresh_address())
        return a

    def spread_events() -> list[dict]:
        return [e.detail for e in srv.store.list_events() if e.kind == "credential_failures_spread"]

    mine = {victim.client_id, other.client_id}
    for _ in range(7):
        PROFILES[2].refused(mobilepay(srv, victim, "wrong-" + secrets.token_hex(8), address(), None))
    assert not naming(spread_events(), mine, used)
    PROFILES[2].refused(mobilepay(srv, victim, "wrong", address(), None))  # the eighth
    spread = naming(spread_events(), mine, used)
    assert spread == [{"key": f"client:{victim.client_id}"}], spread
    for a in (address(), address()):
        assert mobilepay(srv, victim, victim.client_secret, a, None).status_code == 200
    assert mobilepay(srv, other, other.client_secret, address(), None).status_code == 200
    assert not naming(lockout_events(srv), mine, used)  # no pair and no address was locked


def test_the_stranger_address_is_locked_for_every_credential_after_its_own_budget(spray_server):
    """Spraying wrong secrets over many client ids from one address: after
    ``TESSERA_LOGIN_MAX_FAILURES_PER_ADDRESS`` failures the address is locked for every
    credential, the right one included; other addresses are not affected."""
    srv = spray_server
    stranger, apps = fresh_address(), [srv.new_app(with_cert=False) for _ in range(4)]
    for i in range(8):  # two wrong secrets for each of four clients: no pair reaches 5
        mobilepay_profile = PROFILES[2]
        mobilepay_profile.refused(mobilepay(srv, apps[i % 4], "wrong", stranger, None))
    newcomer = srv.new_app(with_cert=False)
    with nothing_new(srv):
        assert_429(mobilepay(srv, newcomer, newcomer.client_secret, stranger, None), "oauth")
    assert mobilepay(srv, newcomer, newcomer.client_secret, fresh_address(), None).status_code == 200
    assert {"key": f"addr:{stranger}"} in lockout_events(srv)


# --- axept merchant keys ----------------------------------------------------------------------------------
def new_key(server: LiveServer) -> dict:
    mid = secrets.randbelow(10**9) + 1
    server.store.create_merchant(Merchant(mid, f"Shop {mid}", None, int(time.time())))
    record, value = apikeys.create_key(
        server.store, server.settings.pepper_bytes(), mid, int(time.time()), max_enabled=3
    )
    return {"merchantId": mid, "keyId": record.key_id, "key": value}


def axept(server: LiveServer, body: dict, address: str) -> httpx.Response:
    with client(server, address=address) as c:
        return c.post(AXEPT, json=body)


def test_a_stranger_cannot_lock_an_axept_key(server):
    k = new_key(server)
    stranger, home = fresh_address(), fresh_address()
    assert axept(server, k, home).status_code == 200
    answers = []
    for _ in range(MAX_FAILURES + 5):
        r = axept(server, {**k, "key": secrets.token_urlsafe(32)}, stranger)
        answers.append(r.status_code)
        if r.status_code == 429:
            assert_429(r, "axept")
            break
        assert_axept_error(r, 401)
    assert answers[-1] == 429 and len(answers) == MAX_FAILURES + 1, answers
    for address in (home, fresh_address()):
        r = axept(server, k, address)
        assert r.status_code == 200 and r.json()["token"], r.text
    with nothing_new(server):
        assert_429(axept(server, k, stranger), "axept")  # the right key too: the pair is locked
    assert {"key": f"axept:{k['merchantId']}:{k['keyId']}", "address": stranger} in lockout_events(server)


# --- people's passwords: per account --------------------------------------------------------------------
def test_a_merchant_users_password_is_locked_per_account_from_any_address(server):
    """People choose guessable passwords: five wrong ones from five addresses lock the account
    (the right password from a sixth address gets 429); another user's sign-in, and every
    machine credential of the same client, are unaffected."""
    app = server.new_app()
    m, other = server.new_merchant(app), server.new_merchant(app)
    uri = nx.push(server, app, m)
    for _ in range(MAX_FAILURES):
        with client(server) as browser:  # each guess from an address of its own
            assert nx.login(browser, app, uri, m.username, "wrong " + secrets.token_hex(4)).status_code == 401
    with client(server) as browser:
        r = nx.login(browser, app, uri, m.username, m.password)
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60, r.status_code
    assert r.headers["content-type"].startswith("text/html")
    with client(server) as browser:
        r = nx.login(browser, app, nx.push(server, app, other), other.username, other.password)
    assert r.status_code == 303, r.status_code
    for profile in PROFILES:
        assert_issued(profile.send(server, app, app.client_secret, fresh_address(), app), profile)
    assert {"key": f"user:{m.username.lower()}"} in lockout_events(server)


# --- IPv6: the address counter is per /64 -----------------------------------------------------------------
def test_ipv6_addresses_of_one_64_share_the_address_budget(tmp_path_factory):
    """Behind a trusted proxy (``X-Real-IP``): wrong secrets from eight addresses of one IPv6 /64
    lock that /64 for every credential; another /64 is not affected."""
    srv = LiveServer(
        tmp_path_factory.mktemp("lockout-v6"),
        env={"TESSERA_MTLS_MODE": "proxy", "TESSERA_LOGIN_MAX_FAILURES_PER_ADDRESS": "8"},
    ).start()

    def token(app: AppIdentity, secret: str, real_ip: str) -> httpx.Response:
        return httpx.post(
            srv.url + MOBILEPAY,
            data={"grant_type": "client_credentials"},
            auth=(app.client_id, secret),
            headers={"X-Real-IP": real_ip},
            timeout=30,
        )

    try:
        a, b = secrets.randbelow(0xFFF) + 1, secrets.randbelow(0xFFF) + 2
        net, other_net = f"2001:db8:{a:x}:{b:x}", f"2001:db8:{a:x}:{b ^ 1:x}"
        apps = [srv.new_app(with_cert=False) for _ in range(8)]
        for i, app in enumerate(apps):  # eight hosts of one /64, one wrong secret each, for eight clients
            assert_error(token(app, "wrong", f"{net}::{i + 1:x}"), 401, "invalid_client")
        newcomer = srv.new_app(with_cert=False)
        with nothing_new(srv):
            assert_429(token(newcomer, newcomer.client_secret, f"{net}::ffff"), "oauth")
        assert token(newcomer, newcomer.client_secret, f"{other_net}::1").status_code == 200
        assert {"key": f"addr:{net}::/64"} in lockout_events(srv)
    finally:
        srv.stop()
