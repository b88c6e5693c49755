"""axept Cloud Connect authentication, wire-exact, against a real ``tessera serve`` over TLS.

``POST /axept/v1/authenticate`` with ``{"merchantId": int, "keyId": int, "key": str}``
→ ``200 {"token": <JWT>, "expiresAt": "<UTC ISO-8601>Z"}``; 400 for a syntax error; 401 for
wrong credentials (one body whichever was wrong); 429 with Retry-After after brute force.

Every failing request comes from its own loopback source address (127.x.y.z), so that the
server's per-address brute-force limiter only sees what a test means it to see.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from jwcrypto import jwk, jws, jwt
from jwcrypto.common import JWException

from tessera.core import apikeys
from tessera.core.models import Merchant
from tests.support.live import LiveServer

pytestmark = pytest.mark.slow

PATH = "/axept/v1/authenticate"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
_addresses = itertools.count(1)


def fresh_address() -> str:
    n = next(_addresses)
    return f"127.21.{n // 250}.{n % 250 + 1}"


def client(server: LiveServer, address: str | None = None) -> httpx.Client:
    transport = httpx.HTTPTransport(verify=server.ssl_context(), local_address=address or fresh_address())
    return httpx.Client(base_url=f"https://localhost:{server.port}", transport=transport, timeout=15)


def post(server: LiveServer, *, address: str | None = None, **kw) -> httpx.Response:
    with client(server, address) as c:
        return c.post(PATH, **kw)


@dataclass
class Key:
    merchant_id: int
    key_id: int
    key: str

    def body(self, **override) -> dict:
        return {"merchantId": self.merchant_id, "keyId": self.key_id, "key": self.key, **override}


def new_merchant(server: LiveServer) -> int:
    mid = secrets.randbelow(10**9) + 1
    server.store.create_merchant(Merchant(mid, f"Shop {mid}", None, int(time.time())))
    return mid


def new_key(server: LiveServer, merchant_id: int | None = None) -> Key:
    mid = merchant_id or new_merchant(server)
    record, value = apikeys.create_key(
        server.store, server.settings.pepper_bytes(), mid, int(time.time()), max_enabled=3
    )
    return Key(mid, record.key_id, value)


def server_jwks(server: LiveServer) -> jwk.JWKSet:
    """The signing keys as the server publishes them (the shared ring signs axept's tokens)."""
    r = httpx.get(f"https://localhost:{server.port}/oauth2/jwks", verify=server.ssl_context(), timeout=15)
    assert r.status_code == 200 and r.json()["keys"]
    return jwk.JWKSet.from_json(r.text)


def verify_jwt(server: LiveServer, token: str) -> tuple[dict, dict]:
    """Check the ES256 signature with jwcrypto, independently of tessera's JOSE layer."""
    t = jwt.JWT(jwt=token, key=server_jwks(server), algs=["ES256"])
    return json.loads(t.header), json.loads(t.claims)


def assert_no_store(r: httpx.Response) -> None:
    assert r.headers.get("cache-control") == "no-store", r.headers


def assert_error(r: httpx.Response, status: int, title: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].split(";")[0] == "application/json"
    assert_no_store(r)
    body = r.json()
    assert set(body) == {"status", "error", "message"}, body
    assert body["status"] == status and body["error"] == title
    assert isinstance(body["message"], str) and body["message"]
    return body


def assert_400(r: httpx.Response) -> dict:
    return assert_error(r, 400, "Bad Request")


def assert_token(server: LiveServer, r: httpx.Response, merchant_id: int) -> dict:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].split(";")[0] == "application/json"
    assert_no_store(r)
    body = r.json()
    assert set(body) == {"token", "expiresAt"}, body
    assert isinstance(body["token"], str) and ISO_Z.match(body["expiresAt"]), body
    header, claims = verify_jwt(server, body["token"])
    assert header["alg"] == "ES256"
    # the provider's sample token: unique_name (a string), nbf = iat, exp = iat + 1800, iss, aud
    assert claims["unique_name"] == str(merchant_id) and claims["sub"] == str(merchant_id)
    assert claims["iss"] == f"https://localhost:{server.port}"
    assert claims["aud"] == "axeptConnectCloud-merchant-client"
    assert "merchantId" not in claims and "keyId" not in claims
    expires = datetime.strptime(body["expiresAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert int(expires.timestamp()) == claims["exp"]  # expiresAt is the token's exp
    assert claims["nbf"] == claims["iat"]
    assert claims["exp"] - claims["iat"] == 1800
    assert abs(claims["iat"] - time.time()) < 10
    return claims


# --- 200 ------------------------------------------------------------------------------------------
def test_authenticate_returns_exactly_token_and_expires_at(live_server):
    k = new_key(live_server)
    r = post(live_server, json=k.body())
    claims = assert_token(live_server, r, k.merchant_id)
    assert claims["prf"] == "axept"


def test_authenticate_with_curl_as_documented(live_server):
    k = new_key(live_server)
    data = f'{{\n"merchantId": {k.merchant_id},\n"keyId": {k.key_id},\n"key": "{k.key}"\n}}'
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--cacert",
            str(live_server.ca),
            "--request",
            "POST",
            f"https://localhost:{live_server.port}{PATH}",
            "--header",
            "Content-Type: application/json",
            "--data",
            data,
            "--dump-header",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    head, _, payload = out.stdout.replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/1.1 200") or head.startswith("HTTP/2 200"), head
    assert "cache-control: no-store" in head.lower()
    body = json.loads(payload)
    assert set(body) == {"token", "expiresAt"}
    _, claims = verify_jwt(live_server, body["token"])
    assert claims["unique_name"] == str(k.merchant_id)


def test_charset_parameter_is_accepted(live_server):
    k = new_key(live_server)
    r = post(
        live_server, content=json.dumps(k.body()).encode(), headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert_token(live_server, r, k.merchant_id)


def test_each_of_three_keys_works(live_server):
    mid = new_merchant(live_server)
    keys = [new_key(live_server, mid) for _ in range(3)]
    assert [k.key_id for k in keys] == [1, 2, 3]
    for k in keys:
        assert_token(live_server, post(live_server, json=k.body()), mid)


def test_signature_check_is_real(live_server):
    """The independent verifier refuses a token whose payload was altered."""
    k = new_key(live_server)
    token = post(live_server, json=k.body()).json()["token"]
    h, p, s = token.split(".")
    claims = json.loads(jws.base64url_decode(p))
    claims["unique_name"] = str(k.merchant_id + 1)
    forged = ".".join([h, jws.base64url_encode(json.dumps(claims)), s])
    with pytest.raises(JWException):  # jwcrypto: no key of the set verifies it
        verify_jwt(live_server, forged)


# --- 400: syntax errors, each its own test ----------------------------------------------------------
@pytest.fixture(scope="module")
def good_key(live_server) -> Key:
    return new_key(live_server)


def test_400_invalid_json(live_server, good_key):
    body = json.dumps(good_key.body())[:-1]  # the closing brace is missing
    assert_400(post(live_server, content=body.encode(), headers={"Content-Type": "application/json"}))


def test_400_empty_body(live_server):
    assert_400(post(live_server, content=b"", headers={"Content-Type": "application/json"}))


@pytest.mark.parametrize("field", ["merchantId", "keyId", "key"])
def test_400_missing_field(live_server, good_key, field):
    body = good_key.body()
    del body[field]
    assert_400(post(live_server, json=body))


@pytest.mark.parametrize("field", ["merchantId", "keyId"])
def test_400_string_where_integer_is_due(live_server, good_key, field):
    body = good_key.body()
    body[field] = str(body[field])
    assert_400(post(live_server, json=body))


@pytest.mark.parametrize("field", ["merchantId", "keyId"])
def test_400_float_where_integer_is_due(live_server, good_key, field):
    raw = json.dumps(good_key.body()).replace(
        f'"{field}": {good_key.body()[field]}', f'"{field}": {good_key.body()[field]}.0'
    )
    assert f"{good_key.body()[field]}.0" in raw
    assert_400(post(live_server, content=raw.encode(), headers={"Content-Type": "application/json"}))


@pytest.mark.parametrize("field", ["merchantId", "keyId"])
def test_400_boolean_where_integer_is_due(live_server, good_key, field):
    assert_400(post(live_server, json=good_key.body(**{field: True})))


@pytest.mark.parametrize("field", ["merchantId", "keyId"])
def test_400_null_where_integer_is_due(live_server, good_key, field):
    assert_400(post(live_server, json=good_key.body(**{field: None})))


@pytest.mark.parametrize("value", [12345, None, True, ["k"], {"k": 1}], ids=["int", "null", "bool", "array", "object"])
def test_400_key_not_a_string(live_server, good_key, value):
    assert_400(post(live_server, json=good_key.body(key=value)))


def test_400_body_is_an_array(live_server, good_key):
    assert_400(post(live_server, json=[good_key.body()]))


def test_400_body_is_a_json_string(live_server, good_key):
    assert_400(post(live_server, json=json.dumps(good_key.body())))


def test_400_form_content_type(live_server, good_key):
    assert_400(post(live_server, data={k: str(v) for k, v in good_key.body().items()}))


def test_400_text_plain_content_type(live_server, good_key):
    assert_400(post(live_server, content=json.dumps(good_key.body()).encode(), headers={"Content-Type": "text/plain"}))


def test_400_no_content_type(live_server, good_key):
    assert_400(post(live_server, content=json.dumps(good_key.body()).encode()))


def test_400_non_utf8_bytes(live_server, good_key):
    raw = json.dumps(good_key.body(key="PLACEHOLDER")).encode().replace(b"PLACEHOLDER", b"\xff\xfe\xc3(")
    assert_400(post(live_server, content=raw, headers={"Content-Type": "application/json"}))


def test_400_latin1_body(live_server, good_key):
    raw = json.dumps(good_key.body(key="clé"), ensure_ascii=False).encode("latin-1")
    assert_400(post(live_server, content=raw, headers={"Content-Type": "application/json"}))


def test_413_oversized_body(live_server, good_key):
    r = post(live_server, json=good_key.body(key="k" * (70 * 1024)))
    assert_error(r, 413, "Payload Too Large")


def test_400_right_credentials_with_a_type_error_are_not_coerced(live_server, good_key):
    """A string merchantId carrying the right value is still a syntax error, not a login."""
    r = post(live_server, json=good_key.body(merchantId=str(good_key.merchant_id), keyId=str(good_key.key_id)))
    assert_400(r)
    assert "token" not in r.text


# --- 401: one answer whichever was wrong -----------------------------------------------------------------
def _wrong(live_server, which: str) -> httpx.Response:
    k = new_key(live_server)
    if which == "merchantId":
        body = k.body(merchantId=k.merchant_id + 1_000_000_001)
    elif which == "keyId":
        body = k.body(keyId=k.key_id + 7)
    elif which == "key":
        body = k.body(key=k.key[:-2] + ("AA" if not k.key.endswith("AA") else "BB"))
    elif which == "disabled":
        new_key(live_server, k.merchant_id)  # so that this one is not the last
        live_server.store.set_api_key_enabled(k.merchant_id, k.key_id, False, int(time.time()), max_enabled=3)
        body = k.body()
    else:  # another merchant's key id and key
        other = new_key(live_server)
        body = other.body(merchantId=k.merchant_id)
    return post(live_server, json=body)


WRONG = ["merchantId", "keyId", "key", "disabled", "foreign"]


@pytest.mark.parametrize("which", WRONG)
def test_401_wrong_credentials(live_server, which):
    r = _wrong(live_server, which)
    body = assert_error(r, 401, "Unauthorized")
    assert "token" not in body


def test_401_bodies_and_headers_are_identical(live_server):
    responses = {which: _wrong(live_server, which) for which in WRONG}
    raw = {which: r.content for which, r in responses.items()}
    assert len(set(raw.values())) == 1, raw
    per_request = {"date", "x-request-id"}  # the only headers allowed to differ
    heads = {
        which: sorted((k, v) for k, v in r.headers.items() if k not in per_request) for which, r in responses.items()
    }
    assert len({tuple(h) for h in heads.values()}) == 1, heads
    text = next(iter(raw.values())).decode()
    # Neither names the field that was wrong more than the others.
    assert text.count("merchantId") == text.count("keyId") <= 1


# --- 429: brute force ---------------------------------------------------------------------------------------
def assert_429(r: httpx.Response, lockout: int = 60) -> None:
    assert_error(r, 429, "Too Many Requests")
    assert 1 <= int(r.headers["retry-after"]) <= lockout


def test_five_failures_from_one_address_lock_the_key_there_even_for_the_right_key(live_server):
    k = new_key(live_server)
    sibling = new_key(live_server, k.merchant_id)
    stranger = fresh_address()
    for _ in range(5):  # all from one address: the (merchant key, address) counter locks
        assert post(live_server, address=stranger, json=k.body(key="wrong-" + secrets.token_hex(8))).status_code == 401
    r = post(live_server, address=stranger, json=k.body())
    assert_429(r)
    assert "token" not in r.json()
    # The lock is for this merchant/key at this address: the merchant's other key still works
    # from there, and the key itself from the merchant's own addresses (checklist row 43).
    assert_token(live_server, post(live_server, address=stranger, json=sibling.body()), k.merchant_id)
    assert_token(live_server, post(live_server, json=k.body()), k.merchant_id)
    assert_429(post(live_server, address=stranger, json=k.body()))  # and the stranger stays locked


def test_failures_from_five_addresses_do_not_lock_the_key(live_server):
    k = new_key(live_server)
    for _ in range(5):  # each from another address: nobody can lock a key out from afar
        assert post(live_server, json=k.body(key="wrong-" + secrets.token_hex(8))).status_code == 401
    assert_token(live_server, post(live_server, json=k.body()), k.merchant_id)


def test_four_failures_do_not_lock(live_server):
    k = new_key(live_server)
    address = fresh_address()
    for _ in range(4):
        assert post(live_server, address=address, json=k.body(key="wrong")).status_code == 401
    assert_token(live_server, post(live_server, address=address, json=k.body()), k.merchant_id)


def test_success_resets_the_failure_count(live_server):
    k = new_key(live_server)
    address = fresh_address()
    for _ in range(4):
        assert post(live_server, address=address, json=k.body(key="wrong")).status_code == 401
    assert post(live_server, address=address, json=k.body()).status_code == 200
    for _ in range(4):
        assert post(live_server, address=address, json=k.body(key="wrong")).status_code == 401
    assert_token(live_server, post(live_server, address=address, json=k.body()), k.merchant_id)
    for _ in range(5):
        assert post(live_server, address=address, json=k.body(key="wrong")).status_code == 401
    assert_429(post(live_server, address=address, json=k.body()))  # five since the last success


def test_failures_from_one_address_lock_that_address(address_lock_server):
    live_server = address_lock_server
    address, other = fresh_address(), fresh_address()
    for _ in range(
        live_server.settings.login_max_failures_per_address
    ):  # five different merchants: only the address counter can lock
        victim = new_key(live_server)
        assert post(live_server, address=address, json=victim.body(key="wrong")).status_code == 401
    k = new_key(live_server)
    assert_429(post(live_server, address=address, json=k.body()))
    assert_token(live_server, post(live_server, address=other, json=k.body()), k.merchant_id)


def test_syntax_errors_do_not_count_as_failures(live_server, good_key):
    address = fresh_address()
    for _ in range(6):
        assert_400(post(live_server, address=address, json=good_key.body(keyId="1")))
    assert_token(live_server, post(live_server, address=address, json=good_key.body()), good_key.merchant_id)


@pytest.fixture(scope="module")
def short_lock_server(tmp_path_factory):
    server = LiveServer(
        tmp_path_factory.mktemp("axept-lock"), env={"TESSERA_LOGIN_LOCKOUT": "2", "TESSERA_LOGIN_MAX_FAILURES": "3"}
    ).start()
    yield server
    server.stop()


def test_lock_ends_after_retry_after(short_lock_server):
    s = short_lock_server
    k = new_key(s)
    address = fresh_address()
    for _ in range(3):
        assert post(s, address=address, json=k.body(key="wrong")).status_code == 401
    r = post(s, address=address, json=k.body())
    assert_429(r, lockout=2)
    time.sleep(int(r.headers["retry-after"]) + 0.2)
    assert_token(s, post(s, address=address, json=k.body()), k.merchant_id)
