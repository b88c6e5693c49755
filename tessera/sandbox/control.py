"""The sandbox's control routes, under ``/_sandbox``: mounted by ``tessera sandbox`` only (never
by ``tessera serve``, whose app is built without them), and answered to loopback callers only
(403 otherwise; the sandbox binds 127.0.0.1 anyway).

- ``GET  /_sandbox``               what the sandbox serves and the fixture credentials;
- ``GET  /_sandbox/clock``          ``{"now", "offset"}``;
- ``POST /_sandbox/clock``          ``{"advance": seconds}`` moves the clock forward,
  ``{"reset": true}`` puts it back to the system time;
- ``POST /_sandbox/certificates``   ``{"client_id", "csr"}`` (PEM) → ``{"certificate"}`` (PEM),
  signed by the sandbox's CA as ``tessera certs sign`` does;
- ``POST /_sandbox/tokens``         ``{"profile", ...}`` → a token issued directly
  (``tessera.sandbox.tokens``).

Anyone on the machine can reach loopback: the sandbox is a development tool with a throw-away
CA and fixed credentials, never a server to deploy.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tessera import admin as ops
from tessera.admin import Admin, AdminError
from tessera.errors import OAuthError
from tessera.sandbox.clock import SandboxClock
from tessera.sandbox.tokens import ISSUERS, Issuing

PREFIX = "/_sandbox"
NO_STORE = {"Cache-Control": "no-store"}


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=NO_STORE)


Handler = Callable[[Request], Awaitable[Response]]


def _guarded(handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        if not _loopback(request):
            return _error(403, "the sandbox control routes answer loopback callers only")
        try:
            return await handler(request)
        except (ValueError, TypeError) as e:
            return _error(400, str(e))
        except LookupError as e:
            return _error(404, str(e.args[0]) if e.args else "not found")
        except AdminError as e:
            return _error(404 if e.code == "not_found" else 400, str(e))
        except OAuthError as e:  # what the profile's endpoint would refuse (a merchant that granted nothing)
            return JSONResponse(
                {"error": e.error, "error_description": e.description}, status_code=e.status, headers=NO_STORE
            )

    return endpoint


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise ValueError("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def control_routes(
    *, clock: SandboxClock, admin: Admin, issuing: Issuing, description: Mapping[str, Any]
) -> list[BaseRoute]:
    """The ``/_sandbox`` routes over the sandbox's clock, admin layer and core."""

    def clock_state() -> JSONResponse:
        return JSONResponse({"now": int(clock()), "offset": clock.offset}, headers=NO_STORE)

    async def describe(request: Request) -> Response:
        return JSONResponse(dict(description), headers=NO_STORE)

    async def get_clock(request: Request) -> Response:
        return clock_state()

    async def move_clock(request: Request) -> Response:
        body = await _json_object(request)
        if body.get("reset") is True and set(body) == {"reset"}:
            clock.reset()
        elif set(body) == {"advance"}:
            seconds = body["advance"]
            if not isinstance(seconds, int | float) or isinstance(seconds, bool):
                raise ValueError("advance must be a number of seconds")
            clock.advance(float(seconds))
        else:
            raise ValueError('send {"advance": seconds} or {"reset": true}')
        return clock_state()

    async def sign(request: Request) -> Response:
        body = await _json_object(request)
        client_id, csr = body.get("client_id"), body.get("csr")
        if not isinstance(client_id, str) or not isinstance(csr, str):
            raise ValueError("client_id and csr (PEM) must be strings")
        issued = await run_in_threadpool(ops.sign_certificate, admin, ops.SignCertificate(client_id, csr.encode()))
        return JSONResponse(
            {
                "certificate": issued.pem.decode(),
                "serial": issued.serial,
                "thumbprint": issued.thumbprint,
                "not_after": issued.not_after.isoformat(),
            },
            headers=NO_STORE,
        )

    async def token(request: Request) -> Response:
        body = await _json_object(request)
        profile = body.get("profile")
        issue = ISSUERS.get(profile) if isinstance(profile, str) else None
        if issue is None:
            raise ValueError(f"profile must be one of {', '.join(ISSUERS)}")
        return JSONResponse(await run_in_threadpool(issue, issuing, body), headers=NO_STORE)

    return [
        Route(PREFIX, _guarded(describe), methods=["GET"]),
        Route(f"{PREFIX}/clock", _guarded(get_clock), methods=["GET"]),
        Route(f"{PREFIX}/clock", _guarded(move_clock), methods=["POST"]),
        Route(f"{PREFIX}/certificates", _guarded(sign), methods=["POST"]),
        Route(f"{PREFIX}/tokens", _guarded(token), methods=["POST"]),
    ]
