"""Checklist rows 38-40 against a live server, on SQLite and on PostgreSQL: hostile JSON and
identifiers are refused with 400 (or the assertion's 401) in each profile's own shape, nothing
is issued or stored, and nothing reaches the 500 path or the database.

- row 38: JSON numbers that are not finite integers where an integer is due;
- row 39: JSON nested thousands of levels deep, lone surrogates (``"\\ud800"``), in every
  JSON body and in the payload of an unsigned ``client_assertion`` (whose ``iss`` is read
  before any signature check);
- row 40: NUL and other control characters in client ids, logins, usernames and keys, at
  every endpoint that reads one (PostgreSQL refuses NUL in text: before the strict input
  layer this was a logged database error with the SQL and its parameters, and a 500).

After each test the server log holds no unhandled exception, no traceback and no SQL.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.e2e import native_helpers as nh
from tests.e2e import nexi_helpers as nx
from tests.security.helpers import (
    AXEPT,
    B2B_LOGIN,
    B2B_REFRESH,
    FORM,
    JSONAPI,
    MOBILEPAY,
    assert_axept_error,
    assert_error,
    assert_html_error,
    assert_jsonapi_error,
    client,
    nothing_new,
)
from tests.security.test_credentials import new_api_key

DEEP = "[" * 5000 + "]" * 5000
NUL_IDS = {"nul": "abc\x00def", "nul-only": "\x00", "control": "abc\x01def", "newline": "abc\ndef", "del": "abc\x7f"}
LOG_LEAKS = ("unhandled_exception", "Traceback", "[SQL:", "[parameters:", "psycopg", "sqlite3.")


@pytest.fixture(scope="module")
def server(db_live_server):
    return db_live_server


@pytest.fixture(autouse=True)
def clean_log(server):
    """No test in this module may send the server down its 500 path, or log a database error."""
    log = server.workdir / "server.log"
    start = log.stat().st_size if log.exists() else 0
    yield
    text = log.read_bytes()[start:].decode("utf-8", "replace")
    for leak in LOG_LEAKS:
        assert leak not in text, f"{leak!r} in the server log:\n{text[-3000:]}"


def _raw_form(**fields: str) -> bytes:
    from urllib.parse import urlencode

    return urlencode(fields).encode()


def _basic(user: str, password: str) -> str:
    from urllib.parse import quote_plus

    return "Basic " + base64.b64encode(f"{quote_plus(user)}:{quote_plus(password)}".encode()).decode()


# === row 40: identifiers ========================================================================


@pytest.mark.parametrize("bad", list(NUL_IDS))
def test_row_40_native_token_form_client_id(server, bad):
    body = _raw_form(grant_type="client_credentials", client_id=NUL_IDS[bad], client_secret="x" * 43)
    with client(server) as c, nothing_new(server):
        assert_error(c.post(nh.TOKEN, content=body, headers=FORM), 400, "invalid_request")


@pytest.mark.parametrize("bad", list(NUL_IDS))
def test_row_40_native_token_basic_client_id(server, bad):
    body = _raw_form(grant_type="client_credentials")
    with client(server) as c, nothing_new(server):
        r = c.post(nh.TOKEN, content=body, headers={**FORM, "Authorization": _basic(NUL_IDS[bad], "secret")})
        assert_error(r, 400, "invalid_request")


@pytest.mark.parametrize("bad", list(NUL_IDS))
def test_row_40_nexi_token_forms_client_id(server, bad):
    app = server.new_app()
    with client(server, cert=app.cert, key=app.key) as c, nothing_new(server):
        body = _raw_form(grant_type="client_credentials", client_id=NUL_IDS[bad], client_secret=app.client_secret)
        assert_error(c.post(nx.TOKEN_PATH, content=body, headers=FORM), 400, "invalid_request")
        body = _raw_form(
            grant_type="authorization_code",
            client_id=NUL_IDS[bad],
            code="c" * 43,
            redirect_uri=app.redirect_uri,
            code_verifier="v" * 43,
        )
        assert_error(c.post(nx.CODE_TOKEN_PATH, content=body, headers=FORM), 400, "invalid_request")


@pytest.mark.parametrize("bad", list(NUL_IDS))
def test_row_40_mobilepay_basic_client_id(server, bad):
    body = _raw_form(grant_type="client_credentials")
    with client(server) as c, nothing_new(server):
        r = c.post(MOBILEPAY, content=body, headers={**FORM, "Authorization": _basic(NUL_IDS[bad], "secret")})
        assert_error(r, 400, "invalid_request")


@pytest.mark.parametrize("bad", list(NUL_IDS))
def test_row_40_b2binpay_login(server, bad):
    body = json.dumps({"data": {"type": "auth-token", "attributes": {"login": NUL_IDS[bad], "password": "x"}}})
    with client(server) as c, nothing_new(server):
        assert_jsonapi_error(c.post(B2B_LOGIN, content=body, headers={"Content-Type": JSONAPI}), 400, "invalid")


@pytest.mark.parametrize("bad", list(NUL_IDS))
def test_row_40_axept_key(server, bad):
    k = new_api_key(server)
    with client(server) as c, nothing_new(server):
        assert_axept_error(c.post(AXEPT, json={**k, "key": k["key"][:10] + NUL_IDS[bad]}), 400)


@pytest.mark.parametrize("bad", list(NUL_IDS))
def test_row_40_plain_authorization_request(server, bad):
    from urllib.parse import urlencode

    query = urlencode(
        {
            "response_type": "code",
            "client_id": NUL_IDS[bad],
            "redirect_uri": nh.REDIRECT,
            "code_challenge": "x" * 43,
            "code_challenge_method": "S256",
            "state": "s",
        }
    )
    with client(server) as c, nothing_new(server):
        assert_html_error(c.get(f"{nh.AUTHORIZE}?{query}"), 400, "invalid_request")
        # The sign-in forms of both authorize endpoints: the client id and the username.
        for path in (nh.AUTHORIZE, nx.AUTHORIZE_PATH):
            for field in ("client_id", "username"):
                fields = {
                    "client_id": "abc",
                    "request_uri": "urn:x",
                    "username": "u@shop.example",
                    "password": "p",
                    field: NUL_IDS[bad],
                }
                assert_html_error(c.post(path, content=_raw_form(**fields), headers=FORM), 400, "invalid_request")


def test_row_40_nul_in_any_form_parameter(server):
    """A NUL never reaches the database through any parameter (state, code, refresh_token ...)."""
    nc = nh.register(server)
    with client(server) as c, nothing_new(server):
        for field in ("code", "refresh_token", "redirect_uri", "code_verifier"):
            grant = "refresh_token" if field == "refresh_token" else "authorization_code"
            body = _raw_form(grant_type=grant, **{field: "abc\x00"})
            assert_error(c.post(nh.TOKEN, content=body, headers=FORM, auth=nh.basic(nc)), 400, "invalid_request")
        assert_error(
            c.post(nh.INTROSPECT, content=_raw_form(token="a\x00b"), headers=FORM, auth=nh.basic(nc)),
            400,
            "invalid_request",
        )
        assert_error(
            c.post(nh.REVOKE, content=_raw_form(token="a\x00b"), headers=FORM, auth=nh.basic(nc)),
            400,
            "invalid_request",
        )


# === rows 38, 39: JSON bodies ===================================================================

AXEPT_NUMBERS = {
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "1e309": "1e309",
    "float": "1.0",
    "exponent": "1e3",
    "true": "true",
    "2^53": str(2**53),
    "2^63": str(2**63),
    "2^64": str(2**64),
    "negative": "-1",
    "zero": "0",
}


@pytest.mark.parametrize("field", ["merchantId", "keyId"])
@pytest.mark.parametrize("number", list(AXEPT_NUMBERS))
def test_row_38_axept_integer_fields(server, field, number):
    k = new_api_key(server)
    doc = {"merchantId": k["merchantId"], "keyId": k["keyId"], "key": k["key"]}
    body = (
        "{"
        + ", ".join(f'"{n}": {AXEPT_NUMBERS[number] if n == field else json.dumps(v)}' for n, v in doc.items())
        + "}"
    )
    with client(server) as c, nothing_new(server):
        assert_axept_error(c.post(AXEPT, content=body, headers={"Content-Type": "application/json"}), 400)


def test_row_38_axept_still_accepts_a_plain_integer(server):
    k = new_api_key(server)
    with client(server) as c:
        r = c.post(AXEPT, json=k)
    assert r.status_code == 200, r.text


AXEPT_BODIES = {
    "deep": '{"merchantId": 1, "keyId": 1, "key": "k", "x": ' + DEEP + "}",
    "deep-objects": '{"a":' * 3000 + "1" + "}" * 3000,
    "33-levels": '{"merchantId": 1, "keyId": 1, "key": "k", "x": ' + "[" * 33 + "]" * 33 + "}",
    "surrogate-key": '{"merchantId": 1, "keyId": 1, "key": "\\ud800"}',
    "surrogate-name": '{"merchantId": 1, "keyId": 1, "key": "k", "\\udfff": 1}',
    "nul-in-name": '{"merchantId": 1, "keyId": 1, "key": "k", "a\\u0000": 1}',
}


@pytest.mark.parametrize("case", list(AXEPT_BODIES))
def test_row_39_axept_hostile_json(server, case):
    with client(server) as c, nothing_new(server):
        assert_axept_error(c.post(AXEPT, content=AXEPT_BODIES[case], headers={"Content-Type": "application/json"}), 400)


B2B_BODIES = {
    "deep": '{"data": ' + DEEP + "}",
    "deep-attributes": '{"data": {"type": "auth-token", "attributes": {"login": "a", "password": "b", "x": '
    + DEEP
    + "}}}",
    "surrogate-login": '{"data": {"type": "auth-token", "attributes": '
    '{"login": "\\ud800", "password": "b", "refresh": "\\ud800"}}}',
    "surrogate-password": '{"data": {"type": "auth-token", "attributes": '
    '{"login": "a", "password": "\\udc00x", "refresh": "x\\udc00"}}}',
    "NaN": '{"data": {"type": "auth-token", "attributes": {"login": "a", "password": "b", "refresh": "r", "n": NaN}}}',
}


@pytest.mark.parametrize("case", list(B2B_BODIES))
@pytest.mark.parametrize("path", [B2B_LOGIN, B2B_REFRESH])
def test_row_39_b2binpay_hostile_json(server, path, case):
    with client(server) as c, nothing_new(server):
        assert_jsonapi_error(c.post(path, content=B2B_BODIES[case], headers={"Content-Type": JSONAPI}), 400, "invalid")


# === row 39: the unverified iss of an unsigned client_assertion =================================

ISS = {
    "surrogate": '{"iss": "\\ud800", "sub": "\\ud800", "aud": "x", "exp": 1, "jti": "j"}',
    "nul": '{"iss": "a\\u0000b", "sub": "a", "aud": "x", "exp": 1, "jti": "j"}',
    "control": '{"iss": "a\\u0001b", "sub": "a", "aud": "x", "exp": 1, "jti": "j"}',
    "NaN-exp": '{"iss": "a", "sub": "a", "aud": "x", "exp": NaN, "jti": "j"}',
    "deep": '{"iss": "a", "x": ' + DEEP + "}",
}


@pytest.mark.parametrize("case", list(ISS))
def test_row_39_unsigned_assertion_issuer(server, case):
    head = nh.b64u(b'{"alg": "ES256", "typ": "JWT"}')
    assertion = f"{head}.{nh.b64u(ISS[case].encode())}.{nh.b64u(b'sig')}"
    with client(server) as c, nothing_new(server):
        r = c.post(nh.TOKEN, data={"grant_type": "client_credentials", **nh.assertion_form(assertion)})
        assert_error(r, 401, "invalid_client")


# === database errors never carry their parameters ================================================


def test_database_errors_hide_their_parameters(server):
    """The server's engines (``make_engine``) are made with ``hide_parameters``: the message of a
    database error, which is what gets logged, names the statement but none of its values."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from tessera.storage.sql import make_engine

    engine = make_engine(server.settings.database_url, pool_size=1)
    try:
        with pytest.raises(SQLAlchemyError) as e, engine.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table WHERE client_id = :v"), {"v": "tsr_SECRET-PARAMETER"})
    finally:
        engine.dispose()
    assert "tsr_SECRET-PARAMETER" not in str(e.value)
    assert "hidden" in str(e.value)
