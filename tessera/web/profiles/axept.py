"""The ``axept`` profile: axept Cloud Connect authentication, as documented.

``POST {prefix}/v1/authenticate`` with JSON ``{"merchantId": int, "keyId": int, "key": str}``
→ ``200 {"token": <JWT>, "expiresAt": "<UTC ISO-8601>Z"}``. A syntax error is 400; a wrong
or disabled merchantId/keyId/key is 401, and neither answer says which field was wrong.
The use case (and the token's claims) live in ``tessera.core.flows.axept``; this module
parses and renders. See docs/profiles/axept.md.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tessera.core import apikeys
from tessera.core.flows import axept as flow
from tessera.core.models import ApiKey
from tessera.errors import InvalidRequest, OAuthError
from tessera.web.errors import NO_STORE
from tessera.web.forms import identifier, read_json
from tessera.web.responses import JSONResponse, fixed_json
from tessera.web.routing import ProfileRoute
from tessera.web.runtime import Runtime

PROFILE = "axept"
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
UNAUTHORIZED = "The supplied merchantId, keyId and key were not valid."


def render(err: OAuthError) -> Response:
    status = err.status if err.status != 415 else 400
    message = UNAUTHORIZED if status == 401 else (err.description or TITLES.get(status, "Error"))
    headers = {**NO_STORE, **err.headers}
    return JSONResponse(
        {"status": status, "error": TITLES.get(status, "Error"), "message": message},
        status_code=status,
        headers=headers,
    )


def _int_field(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if name not in body:
        raise InvalidRequest(f"{name} is required", reason="field_missing")
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequest(f"{name} must be an integer", reason="field_type")
    if not 0 < value < 2**53:  # past 2^53 a JSON number is not read exactly everywhere
        raise InvalidRequest(f"{name} is out of range", reason="field_range")
    return value


def routes(rt: Runtime) -> list[ProfileRoute]:
    p = rt.settings.axept_prefix

    async def authenticate(request: Request) -> Response:
        rt.limit_address(request)
        body = await read_json(request, rt.settings.max_body_bytes)
        if not isinstance(body, dict):
            raise InvalidRequest("the body must be a JSON object", reason="json_not_object")
        merchant_id = _int_field(body, "merchantId")
        key_id = _int_field(body, "keyId")
        key = body.get("key")
        if "key" not in body:
            raise InvalidRequest("key is required", reason="field_missing")
        if not isinstance(key, str) or not key or len(key) > 512:
            raise InvalidRequest("key must be a non-empty string", reason="field_type")
        identifier(key, "key")  # no NUL or control character

        def check_key(parsed: flow.AuthenticateRequest) -> ApiKey:
            cred_key = f"axept:{parsed.merchant_id}:{parsed.key_id}"
            record: ApiKey = rt.guarded(
                request, cred_key, apikeys.authenticate, rt.core, parsed.merchant_id, parsed.key_id, parsed.key
            )
            rt.limit_credential(cred_key)
            return record

        result = await rt.run_flow(
            flow.authenticate,
            rt.core,
            flow.AuthenticateRequest(merchant_id, key_id, key),
            ttl=rt.settings.axept_token_ttl,
            check_key=check_key,
        )
        rt.issued(PROFILE)
        return fixed_json({"token": result.token, "expiresAt": result.expires_at}, NO_STORE)

    return [ProfileRoute(f"{p}/v1/authenticate", authenticate, profile=PROFILE, methods=["POST"])]
