"""``GET /admin/v1/openapi.json``: the OpenAPI 3.1 document of the admin API, made from the
table of operations (``operations.OPERATIONS``) and the bodies' models, so that every route
is described and every description routed (a test checks both ways)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from tessera.config import Settings
from tessera.web.admin_api.operations import OPERATIONS, PATH_PARAMS, Operation

REF = "#/components/schemas/{model}"

PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "field": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

STATUS_TEXT = {
    200: "OK",
    201: "Created (a secret in it is shown this once)",
}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}},
    }


def _operation(op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    params: list[dict[str, Any]] = []
    for name in re.findall(r"{(\w+)}", op.path):
        params.append({"name": name, "in": "path", "required": True, "schema": PATH_PARAMS[name][1]})
    for q in op.query:
        schema: dict[str, Any] = {"type": "integer"} if q.integer else {"type": "string"}
        params.append(
            {"name": q.name, "in": "query", "required": False, "description": q.description, "schema": schema}
        )
    if op.create:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "the same key and body within 24 h replays the first answer",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"},
            }
        )
    if op.update:
        params.append(
            {
                "name": "If-Match",
                "in": "header",
                "required": True,
                "description": "the resource's current ETag",
                "schema": {"type": "string"},
            }
        )
    content = {
        media: {"schema": {"type": "string"} if media != "application/json" else {"type": "object"}}
        for media in op.produces
    }
    responses: dict[str, Any] = {
        str(op.status): {"description": STATUS_TEXT.get(op.status, "OK"), "content": content},
        "401": _problem("no or an invalid access token"),
        "403": _problem("the token lacks tessera:admin, or an organisation's operator on a platform resource"),
        "404": _problem("no such resource (or another organisation's)"),
        "default": _problem("a refusal (RFC 9457)"),
    }
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "security": [{"bearer": []}],
        "parameters": params,
        "responses": responses,
    }
    if isinstance(op.body, str):
        doc["requestBody"] = {
            "required": True,
            "content": {op.body: {"schema": {"type": "string", "description": "a certificate signing request, PEM"}}},
        }
    elif op.body is not None:
        schema = _model(op.body, schemas)
        doc["requestBody"] = {"required": op.body_required, "content": {"application/json": {"schema": schema}}}
    return doc


def _model(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    full = model.model_json_schema(ref_template=REF)
    for name, sub in full.pop("$defs", {}).items():
        schemas[name] = sub
    schemas[model.__name__] = full
    return {"$ref": REF.format(model=model.__name__)}


def document(settings: Settings) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Problem": PROBLEM}
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        paths.setdefault(op.full_path, {})[op.method.lower()] = _operation(op, schemas)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "tessera admin API",
            "version": "1",
            "description": "Onboarding: apps, certificates, organisations, merchants, axept keys, events, server keys. "
            "Authenticate with a Bearer access token of a client with the scope tessera:admin.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    if settings.issuer:
        doc["servers"] = [{"url": settings.issuer}]
    return doc


def endpoint(settings: Settings) -> Callable[[Request], Awaitable[Response]]:
    body = orjson.dumps(document(settings))

    async def openapi(request: Request) -> Response:
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})

    return openapi
