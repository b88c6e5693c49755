"""The strict input layer in-process (tessera/inputs.py, tessera/web/forms.py): the JSON,
form and HTTP Basic parsers refuse what checklist rows 38-40 name, and whatever bytes they
are given they answer with a value or a 400 ``invalid_request`` (``InvalidClient`` for a
malformed Basic header), never another exception. The property tests are bounded
(``max_examples``, no deadline flakiness) so they run in ``make test``.
"""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from tessera.errors import InvalidClient, InvalidRequest, OAuthError
from tessera.inputs import MAX_DEPTH, StrictInputError, identifier, is_identifier, json_int, loads_json
from tessera.web.forms import client_credentials, json_body, parse_form

BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- JSON -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "NaN",
        "[NaN]",
        '{"exp": NaN}',
        "Infinity",
        '{"iat": -Infinity}',
        "[1e309]",
        "[-1e400]",
        '"\\ud800"',
        '{"iss": "a\\udc00"}',
        '{"\\ud800": 1}',
        '"a\\u0000b"',
        '{"a\\u0000": 1}',
        "[" * 5000 + "]" * 5000,
        '{"a":' * 3000 + "1" + "}" * 3000,
        "[" * 100000,
        "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
        b"\xff\xfe",
        b'"\xed\xa0\x80"',
        "",
    ],
)
def test_json_refusals(text):
    with pytest.raises(StrictInputError):
        loads_json(text)
    with pytest.raises(InvalidRequest):
        json_body(text)


def test_json_accepts_what_it_should():
    depth = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert loads_json(depth) is not None
    assert loads_json('{"a": "caf\\u00e9 \\ud83d\\ude00", "n": 9007199254740991}') == {"a": "café 😀", "n": 2**53 - 1}
    assert loads_json(b'{"x": [1, 2.5, true, null]}') == {"x": [1, 2.5, True, None]}


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), 1.0, 1e3, True, False, 2**53, -(2**53), 2**63, None, "1"]
)
def test_json_int_refusals(value):
    with pytest.raises(StrictInputError):
        json_int(value, "n")


def test_json_int_accepts_safe_integers():
    assert (
        json_int(0, "n") == 0 and json_int(2**53 - 1, "n") == 2**53 - 1 and json_int(-(2**53 - 1), "n") == -(2**53 - 1)
    )


@BOUNDED
@given(st.binary(max_size=300))
def test_json_any_bytes_is_a_value_or_a_refusal(data):
    try:
        json_body(data)
    except InvalidRequest:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)


@BOUNDED
@given(json_values)
def test_json_round_trip_of_python_json(value):
    """Whatever Python's own (lenient) encoder writes, including NaN and lone surrogates: a
    value without NaN, infinities, surrogates or NUL, or a refusal."""
    text = json.dumps(value)  # allow_nan=True, ensure_ascii=True: surrogates become \\udXXX escapes
    try:
        parsed = loads_json(text)
    except StrictInputError:
        return
    json.dumps(parsed, allow_nan=False)  # raises ValueError on any NaN or infinity (a key named "NaN" is fine)
    json.dumps(parsed, ensure_ascii=False).encode("utf-8")  # no lone surrogate got through


# --- identifiers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["", "a\x00b", "\x00", "a\x01", "a\nb", "a\tb", "a\x7f", "a\x85", "\ud800", "a" * 257, None, 7]
)
def test_identifier_refusals(value):
    assert not is_identifier(value)
    with pytest.raises(StrictInputError) as e:
        identifier(value, "client_id")
    assert "client_id" in str(e.value)
    if isinstance(value, str) and value:
        assert value not in str(e.value)  # the refusal never echoes the input


@pytest.mark.parametrize("value", ["tsr_abcDEF123-_", "merchant@shop.example", "Zoë Müller", "a" * 256])
def test_identifier_accepts(value):
    assert identifier(value, "x") == value


@BOUNDED
@given(st.text(max_size=40))
def test_identifier_never_lets_a_control_character_through(text):
    if is_identifier(text):
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in text)
        text.encode("utf-8")


# --- forms ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"client_id=a%00b",
        b"state=%00",
        b"%00=1",
        b"client_id=a%01",
        b"username=u%0Ax",
        b"client_id=%7F",
        b"a=1&a=2",
        b"x=%ff",
    ],
)
def test_form_refusals(body):
    with pytest.raises(InvalidRequest):
        parse_form(body)


def test_form_accepts_ordinary_bodies():
    assert parse_form(b"grant_type=client_credentials&client_id=abc&scope=a+b&state=%20x") == {
        "grant_type": "client_credentials",
        "client_id": "abc",
        "scope": "a b",
        "state": " x",
    }
    assert parse_form(b"client_id=&redirect_uri=https%3A%2F%2Fa.example%2Fcb") == {
        "client_id": "",
        "redirect_uri": "https://a.example/cb",
    }


@BOUNDED
@given(st.binary(max_size=200))
def test_form_any_bytes_is_a_form_or_a_refusal(data):
    try:
        form = parse_form(data)
    except InvalidRequest:
        return
    for k, v in form.items():
        assert "\x00" not in k and "\x00" not in v
    for name in ("client_id", "username"):
        if form.get(name):
            assert is_identifier(form[name])


# --- HTTP Basic -----------------------------------------------------------------------------------


def _request(authorization: bytes) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/", "headers": [(b"authorization", authorization)]})


def _basic(user: str, password: str) -> bytes:
    from urllib.parse import quote_plus

    return b"Basic " + base64.b64encode(f"{quote_plus(user)}:{quote_plus(password)}".encode())


@pytest.mark.parametrize("user", ["a\x00b", "\x00", "a\x01", "x\ny"])
def test_basic_user_with_control_characters_is_invalid_request(user):
    with pytest.raises(InvalidRequest) as e:
        client_credentials(_request(_basic(user, "secret")), {})
    assert not isinstance(e.value, InvalidClient)


def test_basic_malformed_is_invalid_client():
    for header in (
        b"Basic !!!",
        b"Basic " + base64.b64encode(b"no-colon"),
        b"Basic " + base64.b64encode(b"\xff:x"),
        b"Basic " + base64.b64encode(b"a%ff:x"),
    ):
        with pytest.raises(InvalidClient):
            client_credentials(_request(header), {})


def test_basic_ordinary():
    creds = client_credentials(_request(_basic("tsr_abc", "s3cret:with colon")), {})
    assert (creds.client_id, creds.client_secret, creds.method) == (
        "tsr_abc",
        "s3cret:with colon",
        "client_secret_basic",
    )


@BOUNDED
@given(st.binary(max_size=120))
def test_basic_any_header_is_credentials_or_a_refusal(raw):
    for header in (b"Basic " + raw, b"Basic " + base64.b64encode(raw)):
        try:
            creds = client_credentials(_request(header.replace(b"\r", b"").replace(b"\n", b"")), {})
        except OAuthError as e:
            assert isinstance(e, (InvalidRequest, InvalidClient))
            continue
        if creds.client_id:
            assert is_identifier(creds.client_id)
