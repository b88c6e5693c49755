"""``GET /openapi.json``: the OpenAPI 3.1 description of every public endpoint.

The document is written by hand (``tessera/web/openapi.json``), with the profiles at their
default prefixes. It is read once, when the app is built: the profile paths are moved to
the configured prefixes and ``servers`` names the issuer, so that what is served describes
this very server. tests/security/test_fuzz.py runs schemathesis against it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tessera.config import Settings

DOCUMENT = Path(__file__).with_name("openapi.json")
#: The prefixes the document is written with, and the setting that may move each.
DEFAULT_PREFIXES = (
    ("nexi_prefix", "/softpos"),
    ("axept_prefix", "/axept"),
    ("mobilepay_prefix", "/integrator-authentication"),
    ("b2binpay_prefix", "/b2binpay"),
)


def document(settings: Settings) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    paths: dict[str, Any] = {}
    for path, item in doc["paths"].items():
        for name, default in DEFAULT_PREFIXES:
            if path.startswith(default + "/"):
                path = getattr(settings, name) + path[len(default) :]
                break
        paths[path] = item
    doc["paths"] = paths
    if settings.issuer:
        doc["servers"] = [{"url": settings.issuer}]
    return doc


def endpoint(settings: Settings) -> Callable[[Request], Awaitable[Response]]:
    body = json.dumps(document(settings), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    headers = {"Cache-Control": "public, max-age=300"}

    async def openapi(request: Request) -> Response:
        return Response(body, media_type="application/json", headers=headers)

    return openapi
