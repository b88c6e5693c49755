"""The admin API, ``/admin/v1``: onboarding through HTTP, on the admin layer only.

``routes(rt)`` gives its Starlette routes (``ProfileRoute``\\ s of the profile ``admin``, so
that every error is rendered by ``problems.render`` through the web layer's one error
mechanism); ``tessera.web.app`` mounts them. Each request: the operator's Bearer token is
checked (``auth``), the body read within the server's limit and parsed strictly (``http``),
an ``Idempotency-Key`` honoured on creates (``tessera.admin.idempotency``), and the
operation (``resources``, listed in ``operations.OPERATIONS``) run off the event loop with
an ``Admin`` whose actor is the operator client, so every change lands in the security
events as ``admin_change`` naming it. See docs/admin-api.md."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

from tessera.admin import Admin, AdminError
from tessera.admin import idempotency as idem
from tessera.ca.authority import CertificateAuthority
from tessera.web.admin_api import openapi
from tessera.web.admin_api.auth import Operator, authenticate
from tessera.web.admin_api.http import json_response, parse_body
from tessera.web.admin_api.operations import OPERATIONS, PATH_PARAMS, PKCS10, Operation
from tessera.web.admin_api.problems import Problem, of_admin_error, render
from tessera.web.admin_api.resources import PREFIX, Answer, Call
from tessera.web.forms import bearer_token, media_type, read_body
from tessera.web.routing import ProfileRoute
from tessera.web.runtime import Runtime

__all__ = ["PREFIX", "PROFILE", "render", "routes"]

PROFILE = "admin"


class _CA:
    """The home's CA, loaded on first use (it needs the KEK)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.ca: CertificateAuthority | None = None

    def __call__(self) -> CertificateAuthority:
        if self.ca is None:
            from tessera.home import load_ca  # the composition root's loader

            self.ca = load_ca(self.rt.settings)
        return self.ca


def _path_params(request: Request) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in request.path_params.items():
        kind, _schema = PATH_PARAMS[name]
        text = str(value)
        if kind == "int":
            if not text.isascii() or not text.isdigit() or len(text) > 15 or int(text) < 1:
                raise Problem(404, "not_found", f"no such {name.replace('_', ' ')}")
            out[name] = int(text)
        else:
            if not text or len(text) > 66 or not text.isprintable():
                raise Problem(404, "not_found", f"no such {name.replace('_', ' ')}")
            out[name] = text
    return out


class Endpoint:
    """One operation's ASGI endpoint."""

    def __init__(self, rt: Runtime, op: Operation, ca: _CA) -> None:
        self.rt = rt
        self.op = op
        self.ca = ca

    async def __call__(self, request: Request) -> Response:
        op = self.op
        peer = self.rt.peer(request)
        operator = await self.rt.run_flow(
            authenticate, self.rt.core, bearer_token(request), peer.thumbprint if peer else None, waits=True
        )
        params = _path_params(request)
        body: Any = None
        raw = b""
        if op.body is not None:
            raw = await read_body(request, self.rt.settings.max_body_bytes)
            wanted = "application/json" if not isinstance(op.body, str) else op.body
            if raw or op.body_required:
                if media_type(request) != wanted:
                    raise Problem(415, "unsupported_media_type", f"send {wanted}")
            body = raw if isinstance(op.body, str) else parse_body(op.body, raw)
        answer = await self.rt.run_flow(
            functools.partial(
                self.run,
                operator=operator,
                params=params,
                query=request.query_params,
                body=body,
                raw=raw,
                if_match=request.headers.get("if-match"),
                idempotency_key=request.headers.get("idempotency-key"),
                path=request.url.path,
            ),
            waits=True,
        )
        if answer.media_type is not None:
            return Response(
                answer.body, status_code=answer.status, media_type=answer.media_type, headers=answer.headers
            )
        return json_response(answer.body, answer.status, headers=answer.headers)

    def run(
        self,
        *,
        operator: Operator,
        params: dict[str, Any],
        query: Any,
        body: Any,
        raw: bytes,
        if_match: str | None,
        idempotency_key: str | None,
        path: str,
    ) -> Answer:
        """Off the event loop: the operation (replayed for a known Idempotency-Key)."""
        core = self.rt.core
        admin = Admin(store=core.store, settings=self.rt.settings, ca=self.ca, clock=core.now, actor=operator.client_id)
        call = Call(admin, operator, params, query, body, if_match, path)
        try:
            if self.op.create and idempotency_key is not None:
                return self._idempotent(call, idempotency_key, raw)
            return self.op.run(call)
        except AdminError as e:
            raise of_admin_error(e) from None

    def _idempotent(self, call: Call, key: str, raw: bytes) -> Answer:
        operation = f"{self.op.method} {call.path}"
        started = idem.begin(call.admin, operation, key, raw)
        if isinstance(started, idem.Replay):
            return Answer(started.body, started.status, {"Idempotent-Replayed": "true"})
        try:
            answer = self.op.run(call)
        except BaseException:
            idem.forget(call.admin, started)
            raise
        idem.remember(call.admin, started, answer.status, answer.body)
        return answer


def _endpoint(rt: Runtime, op: Operation, ca: _CA) -> Callable[[Request], Awaitable[Response]]:
    endpoint = Endpoint(rt, op, ca)

    async def handle(request: Request) -> Response:
        return await endpoint(request)

    return handle


def routes(rt: Runtime) -> list[ProfileRoute]:
    """The admin API's routes, one per path with its methods."""
    ca = _CA(rt)
    by_path: dict[str, dict[str, Operation]] = {}
    for op in OPERATIONS:
        by_path.setdefault(op.full_path, {})[op.method] = op
    out = [
        ProfileRoute(PREFIX + "/openapi.json", openapi.endpoint(rt.settings), profile=PROFILE, methods=["GET", "HEAD"])
    ]
    for path, methods in by_path.items():
        handlers = {m: _endpoint(rt, op, ca) for m, op in methods.items()}
        out.append(ProfileRoute(path, _dispatch(handlers), profile=PROFILE, methods=list(methods)))
    out.append(Unknown(tuple(out)))
    return out


async def _unknown(request: Request) -> Response:
    raise Problem(404, "not_found", "no such resource in the admin API")


class Unknown(ProfileRoute):
    """Any other path under the prefix: a 404 problem (not the server's plain 404), for every
    method; a path of the API with a method it lacks stays the router's 405."""

    def __init__(self, known: tuple[ProfileRoute, ...]) -> None:
        super().__init__(PREFIX + "/{rest:path}", _unknown, profile=PROFILE, methods=UNKNOWN_METHODS)
        self.known = known

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope.get("path", "")
        if any(route.path_regex.match(path) for route in self.known):
            return Match.NONE, {}
        return super().matches(scope)


UNKNOWN_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _dispatch(
    handlers: dict[str, Callable[[Request], Awaitable[Response]]],
) -> Callable[[Request], Awaitable[Response]]:
    if len(handlers) == 1:
        return next(iter(handlers.values()))

    async def dispatch(request: Request) -> Response:
        return await handlers[request.method](request)

    return dispatch


_ = PKCS10  # re-exported for the tests
