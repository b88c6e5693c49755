"""Checklist rows 29-34: refresh tokens, brute force, secrets at rest, JWKS, revocation and
malformed input, on every profile that has the rule, in that profile's own error shape.
(Row 35, secrets in the logs, is ``test_secrets_scan.py``.)

Requests that may count as failures come from a loopback address of their own
(``helpers.client``), so that the per-address brute-force counters see only what a test
means them to see.

The ``tessera`` commands (registrations, revocations, rotations) run in this process, through
the console script's entry point on the server's home and environment
(``tests.support.incli.server_cli``): what they write is what a ``tessera`` process writes.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import inspect
import json
import re
import secrets
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tessera.core import apikeys
from tessera.core.models import Merchant
from tessera.storage import schema
from tests.e2e import native_helpers as nh
from tests.e2e import nexi_helpers as nx
from tests.security.helpers import (
    AXEPT,
    B2B_LOGIN,
    B2B_REFRESH,
    FORM,
    JSONAPI,
    MOBILEPAY,
    PRIVATE_MEMBERS,
    assert_429,
    assert_axept_error,
    assert_error,
    assert_html_error,
    assert_jsonapi_error,
    client,
    fresh_address,
    nothing_new,
)
from tests.support.incli import server_cli, server_cli_json
from tests.support.live import LiveServer, module_server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
#: The developer certificates of the clients that only ask for tokens: EC P-256 keys (openssl
#: makes one in milliseconds, an RSA-2048 one in about 0.2 CPU s); none of these rows looks at
#: the key. Nexi PAR signs with the certificate's RSA key: the rows that push keep RSA.
TLS_KEY = "ec"


def b2b_body(**attributes: str) -> bytes:
    return json.dumps({"data": {"type": "auth-token", "attributes": attributes}}).encode()


def b2b(server: LiveServer, path: str, *, address: str | None = None, **attributes: str) -> httpx.Response:
    with client(server, address=address) as c:
        return c.post(path, content=b2b_body(**attributes), headers={"Content-Type": JSONAPI})


def axept(server: LiveServer, body: dict, *, address: str | None = None) -> httpx.Response:
    with client(server, address=address) as c:
        return c.post(AXEPT, json=body)


def mobilepay(server: LiveServer, client_id: str, secret: str, *, address: str | None = None) -> httpx.Response:
    with client(server, address=address) as c:
        return c.post(MOBILEPAY, data={"grant_type": "client_credentials"}, auth=(client_id, secret), headers=FORM)


def new_api_key(server: LiveServer, merchant_id: int | None = None) -> dict:
    mid = merchant_id or secrets.randbelow(10**9) + 1
    if merchant_id is None:
        server.store.create_merchant(Merchant(mid, f"Shop {mid}", None, int(time.time())))
    record, value = apikeys.create_key(
        server.store, server.settings.pepper_bytes(), mid, int(time.time()), max_enabled=3
    )
    return {"merchantId": mid, "keyId": record.key_id, "key": value}


# === 29 ==========================================================================================


def test_row_29_b2binpay_refresh_reused_after_rotation_revokes_the_family(live_server):
    app = live_server.new_app(with_cert=False)
    r1 = b2b(live_server, B2B_LOGIN, login=app.client_id, password=app.client_secret).json()["data"]["attributes"][
        "refresh"
    ]
    rotated = b2b(live_server, B2B_REFRESH, refresh=r1)
    assert rotated.status_code == 200, rotated.text
    r2 = rotated.json()["data"]["attributes"]["refresh"]
    with nothing_new(live_server):
        assert_jsonapi_error(b2b(live_server, B2B_REFRESH, refresh=r1), 401, "2007")  # strict: the used one is dead
        assert_jsonapi_error(b2b(live_server, B2B_REFRESH, refresh=r2), 401, "2007")  # ... and the whole family
    events = [
        e
        for e in live_server.store.list_events()
        if e.kind == "refresh_family_revoked" and e.client_id == app.client_id
    ]
    assert len(events) == 1 and events[0].detail.get("cause") == "refresh_reused", events


def test_row_29_native_refresh_reused_after_rotation_revokes_the_family(live_server):
    nc = nh.register(live_server)
    tokens, _ = nh.authorization_code_flow(live_server, nc, live_server.new_merchant())
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    with nh.http(live_server) as c:
        rotated = c.post(nh.TOKEN, data=data, auth=nh.basic(nc))
        assert rotated.status_code == 200, rotated.text
        with nothing_new(live_server):
            assert_error(c.post(nh.TOKEN, data=data, auth=nh.basic(nc)), 400, "invalid_grant")
            newest = {"grant_type": "refresh_token", "refresh_token": rotated.json()["refresh_token"]}
            assert_error(c.post(nh.TOKEN, data=newest, auth=nh.basic(nc)), 400, "invalid_grant")
    for t in (rotated.json()["access_token"], rotated.json()["refresh_token"]):
        assert nh.introspect(live_server, nc, t).json() == {"active": False}


@pytest.fixture(scope="module")
def grace_and_cache_server(tmp_path_factory):
    """One server for three settings that touch different things: a refresh grace window of 2 s
    (the native refresh tokens' rotation: row 29), a per-address brute-force lock reachable in a
    test (5 failures, as ``address_lock_server``: row 30) and a revocation cache of 1.5 s (the
    view of clients, certificates and keys: row 33). Each test works on a client of its own; the
    row-30 tests send their failures from addresses of their own, the others send at most four
    from one address (below the lock)."""
    yield from module_server(
        tmp_path_factory,
        "sec-grace-cache",
        {
            "TESSERA_REFRESH_GRACE_SECONDS": "2",
            "TESSERA_LOGIN_MAX_FAILURES_PER_ADDRESS": "5",
            "TESSERA_REVOCATION_CACHE_SECONDS": "1.5",
        },
    )


@pytest.fixture(scope="module")
def address_lock_server(grace_and_cache_server):
    return grace_and_cache_server


@pytest.fixture(scope="module")
def grace_server(grace_and_cache_server):
    return grace_and_cache_server


def test_row_29_native_grace_window(grace_server):
    """The native surface's optional grace window: a retry inside it gets the same answer;
    a reuse after it revokes the family."""
    nc = nh.register(grace_server)
    tokens, _ = nh.authorization_code_flow(grace_server, nc, grace_server.new_merchant())
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    with nh.http(grace_server) as c:
        first = c.post(nh.TOKEN, data=data, auth=nh.basic(nc))
        again = c.post(nh.TOKEN, data=data, auth=nh.basic(nc))
        assert first.status_code == again.status_code == 200 and again.json() == first.json()
        time.sleep(3.5)  # the window is counted in whole seconds
        with nothing_new(grace_server):
            assert_error(c.post(nh.TOKEN, data=data, auth=nh.basic(nc)), 400, "invalid_grant")
    assert nh.introspect(grace_server, nc, first.json()["refresh_token"]).json() == {"active": False}


# === 30 ==========================================================================================


def test_row_30_axept_per_credential_and_address(live_server):
    k = new_api_key(live_server)
    address = fresh_address()
    for _ in range(5):  # from one address: the (key, address) counter locks
        assert_axept_error(axept(live_server, {**k, "key": "wrong-" + secrets.token_hex(8)}, address=address), 401)
    with nothing_new(live_server):
        assert_429(axept(live_server, k, address=address), "axept")  # even the right key, from there
    assert axept(live_server, k).status_code == 200  # row 43: from elsewhere the key works


def test_row_30_axept_per_address(address_lock_server):
    live_server = address_lock_server
    address = fresh_address()
    for _ in range(
        live_server.settings.login_max_failures_per_address
    ):  # five different keys: only the address's counter can lock
        assert_axept_error(axept(live_server, {**new_api_key(live_server), "key": "wrong"}, address=address), 401)
    k = new_api_key(live_server)
    with nothing_new(live_server):
        assert_429(axept(live_server, k, address=address), "axept")
    assert axept(live_server, k).status_code == 200  # from elsewhere the key works


def test_row_30_b2binpay_per_login_and_per_address(address_lock_server):
    live_server = address_lock_server
    app = live_server.new_app(with_cert=False)
    stranger = fresh_address()
    for _ in range(5):  # five guesses at one login from one address lock that login there
        assert_jsonapi_error(
            b2b(live_server, B2B_LOGIN, address=stranger, login=app.client_id, password="wrong"), 400, "2006"
        )
    with nothing_new(live_server):
        assert_429(
            b2b(live_server, B2B_LOGIN, address=stranger, login=app.client_id, password=app.client_secret), "b2binpay"
        )
    assert b2b(live_server, B2B_LOGIN, login=app.client_id, password=app.client_secret).status_code == 200  # row 43
    address = fresh_address()
    for _ in range(live_server.settings.login_max_failures_per_address):
        assert_jsonapi_error(
            b2b(live_server, B2B_LOGIN, address=address, login=f"nobody-{secrets.token_hex(4)}", password="x"),
            400,
            "2006",
        )
    other = live_server.new_app(with_cert=False)
    with nothing_new(live_server):
        assert_429(
            b2b(live_server, B2B_LOGIN, address=address, login=other.client_id, password=other.client_secret),
            "b2binpay",
        )


def test_row_30_b2binpay_bad_refresh_tokens_per_address(address_lock_server):
    live_server = address_lock_server
    address = fresh_address()
    for _ in range(live_server.settings.login_max_failures_per_address):
        assert_jsonapi_error(
            b2b(live_server, B2B_REFRESH, address=address, refresh="garbage-" + secrets.token_hex(8)), 401, "2007"
        )
    with nothing_new(live_server):
        assert_429(b2b(live_server, B2B_REFRESH, address=address, refresh="garbage"), "b2binpay")


def test_row_30_mobilepay_per_client_and_per_address(address_lock_server):
    live_server = address_lock_server
    app = live_server.new_app(with_cert=False)
    for _ in range(5):  # from five addresses: no pair and no address reaches its limit (row 43)
        assert_error(mobilepay(live_server, app.client_id, "wrong"), 401, "invalid_client")
    assert mobilepay(live_server, app.client_id, app.client_secret).status_code == 200
    stranger = fresh_address()
    for _ in range(5):  # from one: that address is locked (for this client, and here for every one)
        assert_error(mobilepay(live_server, app.client_id, "wrong", address=stranger), 401, "invalid_client")
    with nothing_new(live_server):
        assert_429(mobilepay(live_server, app.client_id, app.client_secret, address=stranger), "oauth")
    assert mobilepay(live_server, app.client_id, app.client_secret).status_code == 200
    address = fresh_address()
    for _ in range(live_server.settings.login_max_failures_per_address):
        assert_error(
            mobilepay(live_server, f"nobody-{secrets.token_hex(4)}", "x", address=address), 401, "invalid_client"
        )
    other = live_server.new_app(with_cert=False)
    with nothing_new(live_server):
        assert_429(mobilepay(live_server, other.client_id, other.client_secret, address=address), "oauth")


@pytest.fixture(scope="module")
def rate_limited(tmp_path_factory):
    """A server whose request-rate limits are low enough to reach in a test (burst 3)."""
    yield from module_server(
        tmp_path_factory,
        "sec-rate",
        {
            "TESSERA_RATE_LIMIT_PER_ADDRESS": "0.2",
            "TESSERA_RATE_LIMIT_ADDRESS_BURST": "3",
            "TESSERA_RATE_LIMIT_PER_CREDENTIAL": "0.2",
            "TESSERA_RATE_LIMIT_CREDENTIAL_BURST": "3",
        },
    )


@pytest.mark.parametrize("endpoint", ["native-token", "nexi-token"])
def test_row_30_request_rate_limits_per_address_and_per_credential(rate_limited, endpoint):
    """What the token endpoints do have: request-rate limits, per address and per proved
    credential, answered 429 slow_down with Retry-After (RFC 6749 shape)."""
    server = rate_limited
    app = server.new_app(key_type=TLS_KEY)

    def call(address: str, secret: str) -> httpx.Response:
        with client(server, cert=app.cert, key=app.key, address=address) as c:
            if endpoint == "nexi-token":
                return nx.token_request(c, app, client_secret=secret)
            return c.post(nh.TOKEN, data={"grant_type": "client_credentials"}, auth=(app.client_id, secret))

    address = fresh_address()
    for _ in range(3):  # wrong secrets from one address: the address's burst
        assert_error(call(address, "wrong"), 401, "invalid_client")
    with nothing_new(server):
        assert_429(call(address, app.client_secret), "oauth")
    for _ in range(3):  # the right secret from three addresses: the credential's burst
        assert call(fresh_address(), app.client_secret).status_code == 200
    with nothing_new(server):
        assert_429(call(fresh_address(), app.client_secret), "oauth")


def test_row_30_native_token_endpoint(live_server):
    nc = nh.register(live_server)
    with client(live_server) as c:
        for _ in range(5):
            assert_error(
                c.post(nh.TOKEN, data={"grant_type": "client_credentials"}, auth=(nc.client_id, "wrong")),
                401,
                "invalid_client",
            )
        assert_429(c.post(nh.TOKEN, data={"grant_type": "client_credentials"}, auth=nh.basic(nc)), "oauth")


def test_row_30_nexi_token_endpoint(live_server):
    app = live_server.new_app(key_type=TLS_KEY)
    with client(live_server, cert=app.cert, key=app.key) as c:
        for _ in range(5):
            assert_error(nx.token_request(c, app, client_secret="wrong"), 401, "invalid_client")
        assert_429(nx.token_request(c, app), "oauth")


def test_row_30_merchant_login_page(live_server):
    """People's passwords are counted per account: five wrong ones, each from another address,
    lock the account wherever the next attempt comes from."""
    app = live_server.new_app()
    m = live_server.new_merchant(app)
    uri = nx.push(live_server, app, m)
    for _ in range(5):
        with client(live_server) as browser:
            assert nx.login(browser, app, uri, m.username, "wrong password").status_code == 401
    with client(live_server) as browser:
        r = nx.login(browser, app, uri, m.username, m.password)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1, r.status_code


# === 31 ==========================================================================================


def _forms(value: str) -> list[bytes]:
    """A secret as text, and (when it is base64url) its raw bytes, hex and standard base64."""
    out = [value.encode()]
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        if len(raw) >= 16:
            out += [raw, raw.hex().encode(), base64.b64encode(raw).rstrip(b"=")]
    except ValueError:
        pass
    return out


def test_row_31_stored_only_as_hmac_or_argon2id(live_server):
    """Secrets made through the CLI: the database holds HMAC-SHA256 (hex, under the pepper)
    of client secrets and API keys, argon2id of people's passwords, and none of them in clear."""
    from argon2 import PasswordHasher

    created = server_cli_json(live_server, "clients", "create", "--name", "row31")
    mid = secrets.randbelow(10**9) + 1
    server_cli_json(live_server, "merchants", "create", "--merchant-id", str(mid))
    key = server_cli_json(live_server, "keys", "create", "--merchant-id", str(mid))
    password = "people choose " + secrets.token_hex(6)
    user = f"row31-{mid}@shop.example"
    server_cli(
        live_server,
        "merchants",
        "add-user",
        "--merchant-id",
        str(mid),
        "--username",
        user,
        "--password-stdin",
        input=password + "\n",
    )
    pepper = live_server.settings.pepper_bytes()
    with live_server.store.engine.connect() as c:
        client_row = c.execute(
            sa.select(schema.clients).where(schema.clients.c.client_id == created["client_id"])
        ).one()
        key_row = c.execute(sa.select(schema.api_keys).where(schema.api_keys.c.merchant_id == mid)).one()
        user_row = c.execute(sa.select(schema.merchant_users).where(schema.merchant_users.c.username == user)).one()
    expect = lambda v: hmac.new(pepper, v.encode(), hashlib.sha256).hexdigest()  # noqa: E731
    assert client_row.secret_hash == expect(created["client_secret"])
    assert key_row.key_hash == expect(key["key"])
    assert user_row.password_hash.startswith("$argon2id$")
    assert PasswordHasher().verify(user_row.password_hash, password)
    # none of them in clear anywhere in the database file (SQLite: the file and its WAL)
    db = Path(live_server.settings.database_url.removeprefix("sqlite:///"))
    blob = b"".join(p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists())
    assert client_row.secret_hash.encode() in blob  # the scan does see the rows
    for value in (created["client_secret"], key["key"], password):
        for form in _forms(value):
            assert form not in blob, form[:12]
    # the secrets work over TLS (so the hashes are what the server checks)
    assert mobilepay(live_server, created["client_id"], created["client_secret"]).status_code == 200
    assert axept(live_server, {"merchantId": mid, "keyId": key["keyId"], "key": key["key"]}).status_code == 200


SECRETISH = re.compile(
    r"secret|password|key_hash|secret_hash|verifier|challenge|\bsign\b|signature|digest|api_key", re.I
)


def _equality_on_secrets(path: Path) -> list[str]:
    """``==``/``!=`` between two values of which one names a secret, a hash or a signature
    (a comparison with a literal -- a method name, None -- compares nothing secret)."""
    source = path.read_text()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) for o in operands):
                continue
            texts = [ast.get_source_segment(source, o) or "" for o in operands]
            if any(SECRETISH.search(t) for t in texts):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {' == '.join(texts)}")
    return found


def test_row_31_compared_in_constant_time(monkeypatch):
    """Secrets, API keys and PKCE verifiers go through hmac.compare_digest (seen at run time
    with a spy), and no module of the server compares a secret-like value with ``==``."""
    import tessera.core.secrets as core_secrets
    from tessera.core import clients, codes

    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    pepper = secrets.token_bytes(32)
    secret = core_secrets.generate_secret()
    stored = core_secrets.hash_secret(secret, pepper)
    assert core_secrets.verify_secret(secret, stored, pepper) is True
    assert core_secrets.verify_secret(secret + "x", stored, pepper) is False
    assert core_secrets.verify_secret(None, stored, pepper) is False  # a missing secret costs the same HMAC
    assert core_secrets.verify_secret(secret, None, pepper) is False  # and so does an unknown client
    assert len(calls) == 4
    assert len(core_secrets.generate_secret()) >= 43  # 256 bits, base64url

    # every credential check goes through verify_secret; PKCE through compare_digest
    assert "verify_secret(" in inspect.getsource(clients.authenticate_secret)
    assert "verify_secret(" in inspect.getsource(apikeys.authenticate)
    assert "compare_digest(" in inspect.getsource(codes.pkce_matches)

    offenders = []
    for path in sorted((REPO / "tessera").rglob("*.py")):
        if {"sdk", "storage"} & set(path.parts) or path.name in ("cli.py", "demo.py"):
            continue  # the client side, SQL expressions and the operator's tools compare nothing from the wire
        offenders += _equality_on_secrets(path)
    assert not offenders, "\n".join(offenders)


# === 32 ==========================================================================================

JWKS_PATHS = [
    "/softpos/par/jwks.json",
    "/oauth2/jwks",
    "/integrator-authentication/.well-known/openid-configuration/jwks",
]


@pytest.mark.parametrize("path", JWKS_PATHS)
def test_row_32_jwks_never_shows_private_parts_duplicates_or_weak_keys(live_server, path):
    from tests.e2e.nexi_helpers import b64u_decode

    with nx.http(live_server, cert=None) as c:
        r = c.get(path)
    assert r.status_code == 200, r.text
    keys = r.json()["keys"]
    assert keys
    kids = [k["kid"] for k in keys]
    assert len(kids) == len(set(kids)), f"duplicate kid: {kids}"
    for k in keys:
        leaked = [m for m in PRIVATE_MEMBERS if m in k]
        assert not leaked, f"private member(s) {leaked} published at {path}"
        assert k["kty"] in ("RSA", "EC", "OKP"), k
        if k["kty"] == "RSA":
            assert int.from_bytes(b64u_decode(k["n"]), "big").bit_length() >= 2048, k["kid"]
            assert int.from_bytes(b64u_decode(k["e"]), "big") == 65537
        if k["kty"] == "EC":
            assert k["crv"] == "P-256"
    stored = {k.kid for k in live_server.store.list_server_keys()}
    assert set(kids) <= stored


def test_row_32_jwks_after_rotations(live_server):
    """After rotating both uses (retired + current + next published), still no duplicate kid and no private part."""
    for use in ("sig", "enc"):
        server_cli_json(live_server, "jwks", "rotate", "--use", use)
    rows = live_server.store.list_server_keys()
    assert len({k.kid for k in rows}) == len(rows)
    for k in rows:
        assert not set(PRIVATE_MEMBERS) & set(k.public_jwk), k.kid


# === 33 ==========================================================================================


def test_row_33_disabled_api_key_401_at_once(live_server):
    k = new_api_key(live_server)
    new_api_key(live_server, k["merchantId"])  # a second key, so the first is not the last one
    assert axept(live_server, k).status_code == 200
    server_cli(live_server, "keys", "disable", "--merchant-id", str(k["merchantId"]), "--key-id", str(k["keyId"]))
    with nothing_new(live_server):
        assert_axept_error(axept(live_server, k), 401)


def test_row_33_revoked_client_401_at_once(live_server):
    app = live_server.new_app(key_type=TLS_KEY)
    nc = nh.register(live_server)
    with client(live_server, cert=app.cert, key=app.key) as c:
        assert nx.token_request(c, app).status_code == 200
    assert mobilepay(live_server, app.client_id, app.client_secret).status_code == 200
    assert b2b(live_server, B2B_LOGIN, login=app.client_id, password=app.client_secret).status_code == 200
    nh.client_credentials(live_server, nc)
    server_cli(live_server, "clients", "revoke", "--client", app.client_id)
    server_cli(live_server, "clients", "revoke", "--client", nc.client_id)
    with nothing_new(live_server):
        with client(live_server, cert=app.cert, key=app.key) as c:
            assert_error(nx.token_request(c, app), 401, "invalid_client")
        assert_error(mobilepay(live_server, app.client_id, app.client_secret), 401, "invalid_client")
        # B2BINPAY's document answers a bad login with 400 code 2006: its shape of invalid_client
        assert_jsonapi_error(b2b(live_server, B2B_LOGIN, login=app.client_id, password=app.client_secret), 400, "2006")
        with nh.http(live_server) as c:
            assert_error(
                c.post(nh.TOKEN, data={"grant_type": "client_credentials"}, auth=nh.basic(nc)), 401, "invalid_client"
            )


def test_row_33_revoked_certificate_401_at_once(nexi):
    app = nexi.server.new_app()
    m = nexi.server.new_merchant(app)
    token = nx.get_token(nexi.server, app)
    server_cli(nexi.server, "certs", "revoke", "--serial", app.serial)
    with nx.http(nexi.server, app) as c, nothing_new(nexi.server):
        assert_error(nx.token_request(c, app), 401, "invalid_client")
        # The Bearer token is bound to the revoked certificate: refused where tokens are read.
        assert_error(
            nx.par_request(c, token, nx.par_form(app, nx.build_assertion(nexi.server, app, m).token)),
            401,
            "invalid_token",
        )


@pytest.fixture(scope="module")
def cached_server(grace_and_cache_server):
    return grace_and_cache_server


def test_row_33_no_cache_delay_longer_than_configured(cached_server):
    """With revocation_cache_seconds = 1.5, a revoked client is refused 1.5 s later at the latest."""
    app = cached_server.new_app(key_type=TLS_KEY)
    with client(cached_server, cert=app.cert, key=app.key) as c:
        assert nx.token_request(c, app).status_code == 200  # now cached
        cached_server.store.set_client_status(app.client_id, "revoked")
        revoked_at = time.monotonic()
        while True:
            r = nx.token_request(c, app)
            elapsed = time.monotonic() - revoked_at
            if r.status_code != 200:
                break
            assert elapsed <= 1.5 + 0.3, f"still accepted {elapsed:.2f}s after the revocation"
            time.sleep(0.05)
        assert_error(r, 401, "invalid_client")
        with nothing_new(cached_server):
            for _ in range(3):
                assert_error(nx.token_request(c, app), 401, "invalid_client")


# === 34 ==========================================================================================

FORM_CASES = {
    "json-body": (b'{"grant_type": "client_credentials"}', "application/json"),
    "malformed-json": (b'{"grant_type": ', "application/json"),
    "wrong-content-type": (b"grant_type=client_credentials", "text/plain"),
    "no-content-type": (b"grant_type=client_credentials", None),
    "not-utf8": (b"grant_type=client_credentials&scope=\xff\xfe", "application/x-www-form-urlencoded"),
    "repeated-field": (
        b"grant_type=client_credentials&grant_type=client_credentials",
        "application/x-www-form-urlencoded",
    ),
}
FORM_ENDPOINTS = {
    "nexi-token": nx.TOKEN_PATH,
    "nexi-par": nx.PAR_PATH,
    "nexi-code": nx.CODE_TOKEN_PATH,
    "mobilepay": MOBILEPAY,
    "native-token": nh.TOKEN,
    "native-par": nh.PAR,
    "native-introspect": nh.INTROSPECT,
}


@pytest.mark.parametrize("case", list(FORM_CASES))
@pytest.mark.parametrize("endpoint", list(FORM_ENDPOINTS))
def test_row_34_malformed_form_input_is_400(nexi, endpoint, case):
    body, media = FORM_CASES[case]
    headers = {"Content-Type": media} if media else {}
    auth = None
    if endpoint == "nexi-par":
        headers["Authorization"] = f"Bearer {nexi.token}"
    elif endpoint in ("mobilepay", "native-token", "native-par", "native-introspect"):
        auth = (nexi.app.client_id, nexi.app.client_secret)
    with client(nexi.server, cert=nexi.app.cert, key=nexi.app.key) as c, nothing_new(nexi.server):
        r = c.post(FORM_ENDPOINTS[endpoint], content=body, headers=headers, auth=auth)
        assert_error(r, 400, "invalid_request")


JSON_CASES = {
    "malformed-json": b'{"merchantId": 1,',
    "not-utf8": b'{"merchantId": 1, "keyId": 1, "key": "\xff\xfe"}',
    "latin1": '{"merchantId": 1, "keyId": 1, "key": "cl\u00e9"}'.encode("latin-1"),
    "string-for-int": b'{"merchantId": "1", "keyId": 1, "key": "k"}',
    "array-body": b"[1, 2, 3]",
    "null-field": b'{"merchantId": null, "keyId": 1, "key": "k"}',
}


@pytest.mark.parametrize("case", [*JSON_CASES, "form-content-type", "no-content-type"])
def test_row_34_malformed_axept_input_is_400(live_server, case):
    k = new_api_key(live_server)
    if case == "form-content-type":
        body, media = f"merchantId={k['merchantId']}&keyId={k['keyId']}&key={k['key']}".encode(), FORM["Content-Type"]
    elif case == "no-content-type":
        body, media = json.dumps(k).encode(), None
    else:
        body, media = JSON_CASES[case], "application/json"
    with client(live_server) as c, nothing_new(live_server):
        r = c.post(AXEPT, content=body, headers={"Content-Type": media} if media else {})
        assert_axept_error(r, 400)


B2B_CASES = {
    "malformed-json": (b'{"data": {', JSONAPI),
    # application/json is accepted (the public TypeScript client sends it); other media types are not
    "text-plain-media-type": (None, "text/plain"),
    "not-utf8": (b'{"data": {"type": "auth-token", "attributes": {"login": "\xff", "password": "x"}}}', JSONAPI),
    "login-not-a-string": (b'{"data": {"type": "auth-token", "attributes": {"login": 1, "password": "x"}}}', JSONAPI),
    "wrong-type": (b'{"data": {"type": "user", "attributes": {"login": "a", "password": "x"}}}', JSONAPI),
    "attributes-a-list": (b'{"data": {"type": "auth-token", "attributes": ["a", "x"]}}', JSONAPI),
}


@pytest.mark.parametrize("case", list(B2B_CASES))
@pytest.mark.parametrize("path", [B2B_LOGIN, B2B_REFRESH])
def test_row_34_malformed_b2binpay_input_is_400(live_server, path, case):
    app = live_server.new_app(with_cert=False)
    body, media = B2B_CASES[case]
    if body is None:
        body = b2b_body(login=app.client_id, password=app.client_secret)
    with client(live_server) as c, nothing_new(live_server):
        r = c.post(path, content=body, headers={"Content-Type": media})
        err = assert_jsonapi_error(r, 400, "invalid")
    assert err["detail"]


def test_row_34_malformed_authorize_query_is_400(live_server):
    with client(live_server) as c, nothing_new(live_server):
        assert_html_error(c.get(nh.AUTHORIZE + "?client_id=a&client_id=b"), 400, "invalid_request")
        assert_html_error(c.get(nh.AUTHORIZE + "?client_id=%ff"), 400, "invalid_request")
        assert_html_error(c.post(nx.AUTHORIZE_PATH, content=b"client_id=\xff", headers=FORM), 400, "invalid_request")
