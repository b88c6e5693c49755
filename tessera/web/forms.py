"""Strict request-body parsing: size cap before parsing, exact media types, UTF-8 only,
and no repeated parameters (RFC 6749 §3.1: "Request and response parameters MUST NOT be
included more than once").

Over that, the strict input layer of ``tessera.inputs`` (checklist rows 38-40): JSON
without ``NaN``/``Infinity``, lone surrogates, NUL or deep nesting; no NUL in any form
parameter; and the identifiers read from the wire (``client_id``, ``username``, the HTTP
Basic user id; the profiles call ``identifier`` for theirs: a B2BINPAY login, an axept
key) free of control characters before they reach any database. Every refusal is a 400
``invalid_request``, which each profile renders in its own shape."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from starlette.requests import ClientDisconnect, Request

from tessera.core.clients import ClientCredentials
from tessera.errors import InvalidClient, InvalidRequest, PayloadTooLarge
from tessera.inputs import StrictInputError, loads_json
from tessera.inputs import identifier as _identifier

FORM = "application/x-www-form-urlencoded"
#: Form parameters that name something looked up in the database: checked as identifiers.
IDENTIFIER_FIELDS = ("client_id", "username")


def identifier(value: object, name: str) -> str:
    """``value`` if it is a safe identifier (``tessera.inputs.identifier``), else a 400
    ``invalid_request`` that names the field and never echoes the value."""
    try:
        return _identifier(value, name)
    except StrictInputError as e:
        raise InvalidRequest(str(e), reason="bad_identifier") from None


def json_body(data: bytes | str) -> object:
    """``tessera.inputs.loads_json`` with its refusals as 400 ``invalid_request``."""
    try:
        return loads_json(data)
    except StrictInputError as e:
        raise InvalidRequest(str(e), reason="json_malformed") from None


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise PayloadTooLarge(f"request body over {limit} bytes", reason="body_too_large")
        except ValueError:
            raise InvalidRequest("bad Content-Length", reason="bad_content_length") from None
    # The ASGI messages read here rather than through ``request.stream()`` (an async generator:
    # a few µs per request), with the same rules; the body is then kept where Starlette keeps
    # it, so that ``request.body()`` or ``request.stream()`` would give it again.
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"request body over {limit} bytes", reason="body_too_large")
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        elif kind == "http.disconnect":
            raise ClientDisconnect()
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    request._body = body
    return body


def parse_form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("the body is not UTF-8", reason="form_not_utf8") from None
    out: dict[str, str] = {}
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict", max_num_fields=100)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("the form body is malformed", reason="form_malformed") from None
    for k, v in pairs:
        if k in out:
            raise InvalidRequest(f"parameter {k[:40]!r} is repeated", reason="form_repeated")
        if "\x00" in k or "\x00" in v:
            raise InvalidRequest("a form parameter holds a NUL character", reason="form_nul")
        out[k] = v
    for name in IDENTIFIER_FIELDS:
        if out.get(name):  # absent or empty: the caller's own rules apply
            identifier(out[name], name)
    return out


async def read_form(request: Request, limit: int) -> dict[str, str]:
    if media_type(request) != FORM:
        raise InvalidRequest(f"Content-Type must be {FORM}", reason="wrong_content_type")
    return parse_form(await read_body(request, limit))


async def read_json(request: Request, limit: int, *, media: tuple[str, ...] = ("application/json",)) -> Any:
    if media_type(request) not in media:
        raise InvalidRequest(f"Content-Type must be {media[0]}", reason="wrong_content_type")
    return json_body(await read_body(request, limit))


def client_credentials(request: Request, form: dict[str, str]) -> ClientCredentials:
    """client_secret_basic or client_secret_post, never both (RFC 6749 §2.3)."""
    header = request.headers.get("authorization")
    basic = None
    if header and header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
            user, sep, pwd = decoded.partition(":")
            if not sep:
                raise ValueError
            # RFC 6749 §2.3.1: the id and secret are form-urlencoded before Basic encoding.
            user, pwd = unquote_plus(user, errors="strict"), unquote_plus(pwd, errors="strict")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise InvalidClient("malformed Basic credentials", reason="basic_malformed") from None
        if user:  # an empty id is simply an unknown client (401)
            identifier(user, "client_id")
        basic = (user, pwd)
    if basic is not None:
        if "client_secret" in form:
            raise InvalidRequest("use one client authentication method, not two", reason="two_auth_methods")
        if "client_id" in form and form["client_id"] != basic[0]:
            raise InvalidClient("client_id does not match the Basic credentials", reason="client_id_mismatch")
        return ClientCredentials(basic[0], basic[1], "client_secret_basic")
    if "client_secret" in form:
        return ClientCredentials(form.get("client_id"), form["client_secret"], "client_secret_post")
    return ClientCredentials(form.get("client_id"), None, "none")


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None
