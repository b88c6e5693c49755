"""B2BINPAY API v2 authentication, wire-exact, against a real ``tessera serve`` over TLS.

``POST /b2binpay/token/`` and ``/b2binpay/token/refresh/`` (JSON:API,
``application/vnd.api+json``). ``meta.sign`` is checked with an implementation written here,
from the document's words, not with tessera's. Rotation is strict: a used refresh token is
dead, and presenting it again revokes the whole family (a security event is stored).

Failing requests come from their own loopback source addresses (127.x.y.z), so that the
per-address brute-force limiter only sees what a test means it to see.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import secrets
import subprocess
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from jwcrypto import jwk, jwt

from tessera.storage import schema
from tests.support.live import AppIdentity, LiveServer

pytestmark = pytest.mark.slow

MEDIA = "application/vnd.api+json"
LOGIN, REFRESH = "/b2binpay/token/", "/b2binpay/token/refresh/"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
BAD_CREDENTIALS = "No active account found with the given credentials"
_addresses = itertools.count(1)


def fresh_address() -> str:
    n = next(_addresses)
    return f"127.24.{n // 250}.{n % 250 + 1}"


def client(server: LiveServer, address: str | None = None) -> httpx.Client:
    transport = httpx.HTTPTransport(verify=server.ssl_context(), local_address=address or fresh_address())
    return httpx.Client(base_url=f"https://localhost:{server.port}", transport=transport, timeout=15)


def send(
    server: LiveServer, path: str, body, *, address: str | None = None, media: str | None = MEDIA
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": media} if media else {}
    with client(server, address) as c:
        return c.post(path, content=content, headers=headers)


def login_body(login: str, password: str) -> dict:
    return {"data": {"type": "auth-token", "attributes": {"login": login, "password": password}}}


def refresh_body(token: str) -> dict:
    return {"data": {"type": "auth-token", "attributes": {"refresh": token}}}


def login(server: LiveServer, app: AppIdentity, *, path: str = LOGIN, address: str | None = None) -> httpx.Response:
    return send(server, path, login_body(app.client_id, app.client_secret), address=address)


def refresh(server: LiveServer, token: str, *, path: str = REFRESH, address: str | None = None) -> httpx.Response:
    return send(server, path, refresh_body(token), address=address)


def expected_sign(login_: str, password: str, time_: str, refresh_: str) -> str:
    """The document: HMAC, sha256, key = sha256 of login + password, message = meta.time + refresh."""
    key = hashlib.sha256(f"{login_}{password}".encode()).digest()
    return hmac.new(key, f"{time_}{refresh_}".encode(), hashlib.sha256).hexdigest()


def parse_time(s: str) -> datetime:
    assert TIME.match(s), s
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def verify_access(server: LiveServer, token: str) -> dict:
    keys = [k.public_jwk for k in server.store.list_server_keys() if k.use == "sig"]
    t = jwt.JWT(jwt=token, key=jwk.JWKSet.from_json(json.dumps({"keys": keys})), algs=["ES256"])
    return json.loads(t.claims)


def refresh_rows(server: LiveServer) -> int:
    a = schema.artifacts
    with server.store.engine.connect() as c:
        return c.execute(sa.select(sa.func.count()).select_from(a).where(a.c.kind == "refresh_token")).scalar()


def assert_headers(r: httpx.Response) -> None:
    assert r.headers["content-type"].split(";")[0].strip() == MEDIA, r.headers
    assert r.headers["cache-control"] == "no-store"


def assert_data(server: LiveServer, data: dict, app: AppIdentity) -> dict:
    assert set(data) == {"type", "id", "attributes"}, data
    assert data["type"] == "auth-token" and data["id"] == "0"
    attrs = data["attributes"]
    assert set(attrs) == {"access", "refresh", "access_expired_at", "refresh_expired_at", "is_2fa_confirmed"}, attrs
    assert attrs["is_2fa_confirmed"] is False
    assert (
        isinstance(attrs["access"], str) and isinstance(attrs["refresh"], str) and attrs["access"] != attrs["refresh"]
    )
    access_at, refresh_at = parse_time(attrs["access_expired_at"]), parse_time(attrs["refresh_expired_at"])
    assert refresh_at - access_at == timedelta(seconds=21600 - 900)
    claims = verify_access(server, attrs["access"])
    assert claims["client_id"] == app.client_id
    assert abs(claims["exp"] - access_at.timestamp()) < 1.01
    return attrs


def assert_login(server: LiveServer, r: httpx.Response, app: AppIdentity) -> dict:
    assert r.status_code == 200, r.text
    assert_headers(r)
    body = r.json()
    assert set(body) == {"data", "meta"}, body
    attrs = assert_data(server, body["data"], app)
    meta = body["meta"]
    assert set(meta) == {"time", "sign"}, meta
    t = parse_time(meta["time"])
    assert abs(t.timestamp() - time.time()) < 10
    assert parse_time(attrs["access_expired_at"]) - t == timedelta(seconds=900)
    assert parse_time(attrs["refresh_expired_at"]) - t == timedelta(seconds=21600)
    assert re.fullmatch(r"[0-9a-f]{64}", meta["sign"]), meta["sign"]
    assert meta["sign"] == expected_sign(app.client_id, app.client_secret, meta["time"], attrs["refresh"])
    return attrs


def assert_refreshed(server: LiveServer, r: httpx.Response, app: AppIdentity) -> dict:
    assert r.status_code == 200, r.text
    assert_headers(r)
    body = r.json()
    assert set(body) == {"data"}, body  # the same body as the login, without meta
    attrs = assert_data(server, body["data"], app)
    assert abs(parse_time(attrs["access_expired_at"]).timestamp() - (time.time() + 900)) < 10
    return attrs


def assert_errors(r: httpx.Response, status: int, code: str | None) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert_headers(r)
    body = r.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1, body
    (err,) = body["errors"]
    assert set(err) == {"status", "code", "detail"}, err
    assert err["status"] == str(status)
    assert isinstance(err["code"], str) and err["code"] and isinstance(err["detail"], str) and err["detail"]
    if code is not None:
        assert err["code"] == code, err
    assert "access" not in json.dumps(body).replace("access_", "")
    return err


@pytest.fixture(scope="module")
def app(live_server) -> AppIdentity:
    return live_server.new_app(with_cert=False)


# --- login ------------------------------------------------------------------------------------------------------------
def test_login_with_curl_as_documented(live_server, app):
    data = (
        '{\n"data": {\n"type": "auth-token",\n"attributes": {\n'
        f'"login": "{app.client_id}",\n"password": "{app.client_secret}"\n}}\n}}\n}}'
    )
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--cacert",
            str(live_server.ca),
            "--dump-header",
            "-",
            "--request",
            "POST",
            "--url",
            f"https://localhost:{live_server.port}/b2binpay/token/",
            "--header",
            "Content-Type: application/vnd.api+json",
            "--data",
            data,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    head, _, payload = out.stdout.replace("\r\n", "\n").partition("\n\n")
    assert head.split()[1] == "200", head
    assert "cache-control: no-store" in head.lower() and f"content-type: {MEDIA}" in head.lower()
    body = json.loads(payload)
    assert set(body) == {"data", "meta"}
    attrs = body["data"]["attributes"]
    assert body["meta"]["sign"] == expected_sign(
        app.client_id, app.client_secret, body["meta"]["time"], attrs["refresh"]
    )
    assert parse_time(attrs["access_expired_at"]) - parse_time(body["meta"]["time"]) == timedelta(seconds=900)


def test_login_answers_exactly_the_documented_body(live_server, app):
    assert_login(live_server, login(live_server, app), app)


def test_login_without_trailing_slash(live_server, app):
    r = login(live_server, app, path="/b2binpay/token")
    assert_login(live_server, r, app)


def test_sign_checker_is_real(live_server, app):
    """The independent check fails for another password, time or refresh token."""
    attrs = login(live_server, app).json()
    t, s, rt = attrs["meta"]["time"], attrs["meta"]["sign"], attrs["data"]["attributes"]["refresh"]
    assert s == expected_sign(app.client_id, app.client_secret, t, rt)
    assert s != expected_sign(app.client_id, app.client_secret + "x", t, rt)
    assert s != expected_sign(app.client_id, app.client_secret, t.replace("Z", "1Z"), rt)
    assert s != expected_sign(app.client_id, app.client_secret, t, rt + "x")


# --- refresh ----------------------------------------------------------------------------------------------------------
def test_refresh_with_curl_as_documented(live_server, app):
    first = assert_login(live_server, login(live_server, app), app)
    data = f'{{\n"data": {{\n"type": "auth-token",\n"attributes": {{\n"refresh": "{first["refresh"]}"\n}}\n}}\n}}'
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--cacert",
            str(live_server.ca),
            "--dump-header",
            "-",
            "--request",
            "POST",
            "--url",
            f"https://localhost:{live_server.port}/b2binpay/token/refresh/",
            "--header",
            "Content-Type: application/vnd.api+json",
            "--data",
            data,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    head, _, payload = out.stdout.replace("\r\n", "\n").partition("\n\n")
    assert head.split()[1] == "200", head
    assert "cache-control: no-store" in head.lower()
    body = json.loads(payload)
    assert set(body) == {"data"}
    attrs = body["data"]["attributes"]
    assert attrs["refresh"] != first["refresh"] and attrs["access"] != first["access"]
    assert set(attrs) == {"access", "refresh", "access_expired_at", "refresh_expired_at", "is_2fa_confirmed"}


def test_refresh_answers_data_without_meta(live_server, app):
    first = assert_login(live_server, login(live_server, app), app)
    second = assert_refreshed(live_server, refresh(live_server, first["refresh"]), app)
    assert second["refresh"] != first["refresh"]


def test_refresh_without_trailing_slash(live_server, app):
    first = login(live_server, app).json()["data"]["attributes"]
    assert_refreshed(live_server, refresh(live_server, first["refresh"], path="/b2binpay/token/refresh"), app)


def test_rotation_chain(live_server, app):
    token = login(live_server, app).json()["data"]["attributes"]["refresh"]
    seen = {token}
    for _ in range(4):
        token = assert_refreshed(live_server, refresh(live_server, token), app)["refresh"]
        assert token not in seen
        seen.add(token)
    assert len({claims_of(t)["fam"] for t in seen}) == 1


def family_events(server: LiveServer, app: AppIdentity, fam: str) -> list:
    return [
        e
        for e in server.store.list_events()
        if e.kind == "refresh_family_revoked" and e.client_id == app.client_id and e.detail.get("family") == fam[:12]
    ]


def test_used_refresh_is_dead_and_reuse_revokes_the_whole_family(live_server):
    app = live_server.new_app(with_cert=False)
    other_session = login(live_server, app).json()["data"]["attributes"]["refresh"]
    r1 = login(live_server, app).json()["data"]["attributes"]["refresh"]
    fam = claims_of(r1)["fam"]
    r2 = assert_refreshed(live_server, refresh(live_server, r1), app)["refresh"]
    assert not family_events(live_server, app, fam)

    err = assert_errors(refresh(live_server, r1), 401, "2007")  # the used one: dead
    assert err["detail"] == BAD_CREDENTIALS
    # ... and the one the rotation just issued is revoked with the whole family
    assert_errors(refresh(live_server, r2), 401, "2007")
    events = family_events(live_server, app, fam)
    assert len(events) == 1 and events[0].detail.get("cause") == "refresh_reused", events

    # Another login's family is untouched; a new login works.
    assert_refreshed(live_server, refresh(live_server, other_session), app)
    assert_login(live_server, login(live_server, app), app)


def test_revoked_family_stays_revoked(live_server):
    app = live_server.new_app(with_cert=False)
    r1 = login(live_server, app).json()["data"]["attributes"]["refresh"]
    r2 = refresh(live_server, r1).json()["data"]["attributes"]["refresh"]
    assert refresh(live_server, r1).status_code == 401
    for token in (r2, r1, r2):
        assert_errors(refresh(live_server, token), 401, "2007")
    assert len(family_events(live_server, app, claims_of(r1)["fam"])) == 1


def forged_refresh(real: str) -> str:
    """The same header and claims, signed by a key that is not the server's."""
    key = jwk.JWK.generate(kty="EC", crv="P-256")
    header = json.loads(base64.urlsafe_b64decode(real.split(".")[0] + "=="))
    t = jwt.JWT(header={"alg": "ES256", "typ": header.get("typ"), "kid": header.get("kid")}, claims=claims_of(real))
    t.make_signed_token(key)
    return t.serialize()


@pytest.mark.parametrize("kind", ["garbage", "truncated", "access_token", "forged", "unsigned"])
def test_bad_refresh_is_2007_and_revokes_nothing(live_server, kind):
    app = live_server.new_app(with_cert=False)
    attrs = login(live_server, app).json()["data"]["attributes"]
    real = attrs["refresh"]
    before = refresh_rows(live_server)
    bad = {
        "garbage": "garbage-" + secrets.token_urlsafe(16),
        "truncated": real[:-6],
        "access_token": attrs["access"],
        "forged": forged_refresh(real),
        "unsigned": base64.urlsafe_b64encode(b'{"alg":"none","typ":"rt+jwt"}').rstrip(b"=").decode()
        + "."
        + real.split(".")[1]
        + ".",
    }[kind]
    err = assert_errors(refresh(live_server, bad), 401, "2007")
    assert err["detail"] == BAD_CREDENTIALS
    assert refresh_rows(live_server) == before  # nothing issued
    # Somebody who cannot sign cannot revoke a victim's family either.
    assert not family_events(live_server, app, claims_of(real)["fam"])
    assert_refreshed(live_server, refresh(live_server, real), app)


def test_refresh_after_the_client_was_revoked(live_server):
    app = live_server.new_app(with_cert=False)
    r1 = login(live_server, app).json()["data"]["attributes"]["refresh"]
    live_server.store.set_client_status(app.client_id, "revoked")
    assert_errors(refresh(live_server, r1), 401, "2007")
    assert_errors(login(live_server, app), 400, "2006")


# --- bad login --------------------------------------------------------------------------------------------------------
def test_wrong_password_and_unknown_login_are_2006_and_look_the_same(live_server, app):
    before = refresh_rows(live_server)
    wrong = send(live_server, LOGIN, login_body(app.client_id, app.client_secret[:-1] + "x"))
    unknown = send(live_server, LOGIN, login_body("no-such-login", app.client_secret))
    err = assert_errors(wrong, 400, "2006")
    assert err["detail"] == BAD_CREDENTIALS
    assert wrong.content == unknown.content
    assert refresh_rows(live_server) == before


# --- 400: syntax ------------------------------------------------------------------------------------------------------
def _syntax_cases(app_id: str, secret: str) -> dict:
    good = login_body(app_id, secret)
    return {
        "text/plain": (good, "text/plain"),
        "form": (b"login=" + app_id.encode() + b"&password=" + secret.encode(), "application/x-www-form-urlencoded"),
        "no content type": (good, None),
        "malformed json": (json.dumps(good).encode()[:-1], MEDIA),
        "non-utf8": (json.dumps(login_body(app_id, "X")).encode().replace(b'"X"', b'"\xff\xfe"'), MEDIA),
        "empty body": (b"", MEDIA),
        "array": ([good], MEDIA),
        "no data": ({"type": "auth-token", "attributes": good["data"]["attributes"]}, MEDIA),
        "data not an object": ({"data": [good["data"]]}, MEDIA),
        "wrong type": ({"data": {**good["data"], "type": "auth-tokens"}}, MEDIA),
        "no type": ({"data": {"attributes": good["data"]["attributes"]}}, MEDIA),
        "no attributes": ({"data": {"type": "auth-token"}}, MEDIA),
        "attributes not an object": ({"data": {"type": "auth-token", "attributes": [app_id, secret]}}, MEDIA),
        "no password": ({"data": {"type": "auth-token", "attributes": {"login": app_id}}}, MEDIA),
        "no login": ({"data": {"type": "auth-token", "attributes": {"password": secret}}}, MEDIA),
        "password not a string": (
            {"data": {"type": "auth-token", "attributes": {"login": app_id, "password": 1234}}},
            MEDIA,
        ),
        "login null": ({"data": {"type": "auth-token", "attributes": {"login": None, "password": secret}}}, MEDIA),
    }


SYNTAX = list(_syntax_cases("x", "y"))


@pytest.mark.parametrize("case", SYNTAX)
def test_login_syntax_error_is_400(live_server, app, case):
    body, media = _syntax_cases(app.client_id, app.client_secret)[case]
    before = refresh_rows(live_server)
    err = assert_errors(send(live_server, LOGIN, body, media=media), 400, "invalid")
    assert err["code"] not in ("2006", "2007")
    assert refresh_rows(live_server) == before


REFRESH_SYNTAX = [
    "text/plain",
    "malformed json",
    "wrong type",
    "no attributes",
    "no refresh",
    "refresh not a string",
    "empty refresh",
]


@pytest.mark.parametrize("case", REFRESH_SYNTAX)
def test_refresh_syntax_error_is_400(live_server, app, case):
    token = login(live_server, app).json()["data"]["attributes"]["refresh"]
    good = refresh_body(token)
    body, media = {
        "text/plain": (good, "text/plain"),
        "malformed json": (json.dumps(good).encode()[:-2], MEDIA),
        "wrong type": ({"data": {**good["data"], "type": "refresh-token"}}, MEDIA),
        "no attributes": ({"data": {"type": "auth-token"}}, MEDIA),
        "no refresh": ({"data": {"type": "auth-token", "attributes": {"token": token}}}, MEDIA),
        "refresh not a string": ({"data": {"type": "auth-token", "attributes": {"refresh": [token]}}}, MEDIA),
        "empty refresh": ({"data": {"type": "auth-token", "attributes": {"refresh": ""}}}, MEDIA),
    }[case]
    assert_errors(send(live_server, REFRESH, body, media=media), 400, "invalid")
    # The token was not consumed by the malformed request.
    assert_refreshed(live_server, refresh(live_server, token), app)


def test_oversized_body_is_413(live_server, app):
    r = send(live_server, LOGIN, login_body(app.client_id, "p" * (70 * 1024)))
    assert_errors(r, 413, None)


def test_get_is_not_allowed(live_server):
    with client(live_server) as c:
        r = c.get(LOGIN)
    assert_errors(r, 405, None)
    assert "POST" in r.headers["allow"]


# --- 429: throttled ---------------------------------------------------------------------------------------------------
def assert_throttled(r: httpx.Response) -> None:
    err = assert_errors(r, 429, "throttled")
    retry = int(r.headers["retry-after"])
    assert 1 <= retry <= 60
    assert err["detail"].startswith("Request was throttled")
    assert str(retry) in err["detail"]


def test_failed_logins_for_one_login_from_one_address_are_throttled_there_only(live_server):
    app = live_server.new_app(with_cert=False)
    stranger = fresh_address()
    for _ in range(5):  # a stranger who knows the login (a client id)
        assert_errors(
            send(live_server, LOGIN, login_body(app.client_id, secrets.token_urlsafe(32)), address=stranger),
            400,
            "2006",
        )
    before = refresh_rows(live_server)
    assert_throttled(login(live_server, app, address=stranger))  # even with the right password
    assert refresh_rows(live_server) == before
    other = live_server.new_app(with_cert=False)
    assert_login(live_server, login(live_server, other, address=stranger), other)  # 5 < the address's budget
    # The login keeps working from the client's own addresses (checklist row 43); the stranger stays throttled.
    assert_login(live_server, login(live_server, app), app)
    assert_throttled(send(live_server, LOGIN, login_body(app.client_id, "x"), address=stranger))


def test_failed_logins_from_many_addresses_do_not_lock_the_login(live_server):
    app = live_server.new_app(with_cert=False)
    for _ in range(10):  # each from another address: no (login, address) pair reaches the limit
        assert_errors(send(live_server, LOGIN, login_body(app.client_id, secrets.token_urlsafe(32))), 400, "2006")
    assert_login(live_server, login(live_server, app), app)


def test_failed_logins_from_one_address_are_throttled(address_lock_server):
    live_server = address_lock_server
    app = live_server.new_app(with_cert=False)
    address, elsewhere = fresh_address(), fresh_address()
    for i in range(
        live_server.settings.login_max_failures_per_address
    ):  # five different logins: only the address counter can lock
        assert_errors(
            send(live_server, LOGIN, login_body(f"guess-{i}-{secrets.token_hex(4)}", "pw"), address=address),
            400,
            "2006",
        )
    assert_throttled(login(live_server, app, address=address))
    assert_login(live_server, login(live_server, app, address=elsewhere), app)


def test_bad_refreshes_from_one_address_are_throttled(address_lock_server):
    live_server = address_lock_server
    app = live_server.new_app(with_cert=False)
    address = fresh_address()
    token = login(live_server, app).json()["data"]["attributes"]["refresh"]
    for _ in range(live_server.settings.login_max_failures_per_address):
        assert_errors(refresh(live_server, "garbage-" + secrets.token_hex(8), address=address), 401, "2007")
    assert_throttled(refresh(live_server, token, address=address))
    assert_refreshed(live_server, refresh(live_server, token), app)  # not consumed while throttled


def test_failures_through_another_profile_count_for_the_same_secret(live_server):
    """A B2BINPAY login/password is a client's id and secret: guesses at that secret from one
    address through the MobilePay token endpoint and through this one share one counter
    (checklist #30: per credential and address); the client's own addresses are not affected (#43)."""
    app = live_server.new_app(with_cert=False)
    stranger = fresh_address()
    for _ in range(3):
        with client(live_server, stranger) as c:
            r = c.post(
                "/integrator-authentication/connect/token",
                data={"grant_type": "client_credentials"},
                auth=(app.client_id, secrets.token_urlsafe(32)),
            )
        assert r.status_code == 401
    for _ in range(2):
        assert_errors(
            send(live_server, LOGIN, login_body(app.client_id, secrets.token_urlsafe(32)), address=stranger),
            400,
            "2006",
        )
    assert_throttled(login(live_server, app, address=stranger))
    with client(live_server, stranger) as c:
        r = c.post(
            "/integrator-authentication/connect/token",
            data={"grant_type": "client_credentials"},
            auth=(app.client_id, app.client_secret),
        )
    assert r.status_code == 429, r.text
    assert_login(live_server, login(live_server, app), app)


def test_reuse_also_revokes_the_access_tokens_of_the_family(live_server):
    """design.md: "revoke the whole family (every token from that login)". Whoever used the stolen
    refresh token first holds an access token from the rotation; introspection must call it inactive."""
    app = live_server.new_app(with_cert=False)
    first = login(live_server, app).json()["data"]["attributes"]
    second = refresh(live_server, first["refresh"]).json()["data"]["attributes"]
    assert_errors(refresh(live_server, first["refresh"]), 401, "2007")
    with client(live_server) as c:
        for access in (first["access"], second["access"]):
            r = c.post("/oauth2/introspect", data={"token": access}, auth=(app.client_id, app.client_secret))
            assert r.status_code == 200, r.text
            assert r.json() == {"active": False}
