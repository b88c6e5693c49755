"""The admin API's conventions, apart from its resources: strict bodies, cursor pagination,
``ETag``/``If-Match``, and the JSON answers.

- Bodies: the declared media type only (415 otherwise), the server's body limit
  (``max_body_bytes``: 413), JSON parsed strictly (``tessera.inputs.loads_json``: 400 when
  it is not JSON), then the operation's model (``bodies``): an unknown member or a wrong type
  is a 422 naming the field.
- Pagination: every list answers ``{"items": [...], "next": cursor | null}`` and, when there
  is a next page, a ``Link: <...>; rel="next"`` header. ``limit`` (1 to ``MAX_LIMIT``,
  default ``DEFAULT_LIMIT``) and ``cursor`` (opaque: the base64url of the last item's key)
  are query parameters. A page starts after the cursor's item, so a page is stable while
  items are added (ids only grow or are ordered by creation).
- ``ETag``: the SHA-256 of a resource's JSON (sorted keys), quoted; an update needs
  ``If-Match`` with the current one: none is 428 (RFC 6585 §3), another 412 (RFC 9110
  §13.1.1); ``*`` matches any current state."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

import orjson
from pydantic import BaseModel, ValidationError
from starlette.datastructures import QueryParams
from starlette.responses import Response

from tessera.inputs import StrictInputError, loads_json
from tessera.web.admin_api.problems import Problem, validation

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

M = TypeVar("M", bound=BaseModel)


def json_response(
    body: Any, status: int = 200, *, headers: dict[str, str] | None = None, media_type: str = "application/json"
) -> Response:
    merged = {**NO_STORE, **(headers or {})}
    return Response(orjson.dumps(body), status_code=status, media_type=media_type, headers=merged)


def parse_body(model: type[M], raw: bytes) -> M:
    """``raw`` as ``model``: 400 if it is not strict JSON, 422 naming the field(s) if it does not fit."""
    try:
        data = loads_json(raw) if raw.strip() else {}
    except StrictInputError as e:
        raise Problem(400, "malformed", str(e)) from None
    if not isinstance(data, dict):
        raise validation([{"field": "(body)", "message": "must be a JSON object"}])
    try:
        return model.model_validate(data)
    except ValidationError as e:
        errors = [
            {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": _message(err)}
            for err in e.errors(include_url=False, include_input=False)
        ]
        raise validation(errors) from None


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "is not a member of this resource"
    return str(err["msg"])


# --- query parameters -------------------------------------------------------------------------------


def query_int(query: QueryParams, name: str, *, default: int | None, low: int, high: int) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.lstrip("-").isdigit() or len(raw) > 20:
        raise validation([{"field": name, "message": "must be an integer"}])
    value = int(raw)
    if not low <= value <= high:
        raise validation([{"field": name, "message": f"must be between {low} and {high}"}])
    return value


def query_str(query: QueryParams, name: str, *, max_length: int = 200) -> str | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > max_length or not raw.isprintable():
        raise validation([{"field": name, "message": f"must be 1 to {max_length} printable characters"}])
    return raw


# --- cursors --------------------------------------------------------------------------------------------


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(("v1:" + key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith("v1:"):
        raise validation([{"field": "cursor", "message": "is not a cursor this API gave"}])
    return text[3:]


@dataclass(frozen=True)
class Page:
    limit: int
    after: str | None

    @classmethod
    def of(cls, query: QueryParams) -> Page:
        limit = query_int(query, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        assert limit is not None
        return cls(limit, decode_cursor(query_str(query, "cursor", max_length=400)))


def paginate(items: Sequence[dict[str, Any]], key: Callable[[dict[str, Any]], str], page: Page) -> dict[str, Any]:
    """One page of ``items`` (in their order) after the cursor's item."""
    start = 0
    if page.after is not None:
        keys = [key(i) for i in items]
        start = keys.index(page.after) + 1 if page.after in keys else len(items)
    chunk = list(items[start : start + page.limit])
    more = start + page.limit < len(items)
    return {"items": chunk, "next": encode_cursor(key(chunk[-1])) if more and chunk else None}


def link_header(path: str, query: QueryParams, next_cursor: str | None) -> dict[str, str]:
    if next_cursor is None:
        return {}
    params = {k: v for k, v in query.items() if k != "cursor"}
    params["cursor"] = next_cursor
    return {"Link": f'<{path}?{urlencode(params)}>; rel="next"'}


# --- ETag / If-Match ---------------------------------------------------------------------------------------


def etag_of(representation: dict[str, Any]) -> str:
    return '"' + hashlib.sha256(orjson.dumps(representation, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32] + '"'


def check_if_match(header: str | None, current: str) -> None:
    if header is None:
        raise Problem(428, "precondition_required", "send If-Match with the resource's current ETag")
    tags = [t.strip() for t in header.split(",")]
    if "*" not in tags and current not in tags:
        raise Problem(412, "precondition_failed", "the resource changed since that ETag: read it again")
