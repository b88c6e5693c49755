"""JSON responses encoded with orjson.

Byte-for-byte what Starlette's ``JSONResponse`` writes (compact separators, UTF-8, no
ASCII escaping) for the objects tessera answers with, in a fraction of the time: the
token endpoints encode one small object per request and ``json.dumps`` was a visible
part of their cost.

``fixed_json`` is the token endpoints' answer: a ``JSONResponse`` with a fixed set of
headers (``Cache-Control: no-store`` ...), whose header lines are encoded once per
(headers, media type) instead of by ``Response.init_headers`` on every request (a few µs:
the mapping lowered and encoded, then searched for ``content-length`` and
``content-type``). The response is the same object with the same ``raw_headers``, in the
same order (``tests/web/test_responses.py`` compares them with Starlette's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse

__all__ = ["JSONResponse", "fixed_json"]


class JSONResponse(_StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


#: (the headers' items, media type) -> (the headers' lines, the content-type line)
_FIXED: dict[
    tuple[tuple[tuple[str, str], ...], str | None], tuple[tuple[tuple[bytes, bytes], ...], tuple[bytes, bytes] | None]
] = {}


def _lines(
    headers: Mapping[str, str], media_type: str | None
) -> tuple[tuple[tuple[bytes, bytes], ...], tuple[bytes, bytes] | None]:
    key = (tuple(headers.items()), media_type)
    found = _FIXED.get(key)
    if found is None:
        if {k.lower() for k in headers} & {"content-length", "content-type"}:
            raise ValueError("fixed_json sets Content-Length and Content-Type itself")
        probe = JSONResponse(None, headers=headers, media_type=media_type)  # Starlette's own rules, once
        lines = tuple(h for h in probe.raw_headers if h[0] not in (b"content-length", b"content-type"))
        ctype = next((h for h in probe.raw_headers if h[0] == b"content-type"), None)
        if len(_FIXED) > 256:  # a handful of fixed sets in practice
            _FIXED.clear()
        found = _FIXED[key] = (lines, ctype)
    return found


def fixed_json(
    content: Any, headers: Mapping[str, str], *, status_code: int = 200, media_type: str | None = None
) -> JSONResponse:
    """``JSONResponse(content, status_code, headers, media_type)``, with the header lines of
    ``headers`` encoded once (see the module docstring). ``headers`` must not hold
    ``Content-Length`` or ``Content-Type``."""
    lines, ctype = _lines(headers, media_type)
    response = JSONResponse.__new__(JSONResponse)
    response.status_code = status_code
    if media_type is not None:
        response.media_type = media_type
    response.background = None
    body = response.body = orjson.dumps(content)
    raw = list(lines)
    if not (status_code < 200 or status_code in (204, 304)):
        raw.append((b"content-length", str(len(body)).encode("latin-1")))
    if ctype is not None:
        raw.append(ctype)
    response.raw_headers = raw
    return response
