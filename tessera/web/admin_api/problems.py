"""The admin API's errors: RFC 9457 ``application/problem+json``.

Every refusal is a typed error (``tessera.errors.OAuthError`` or ``Problem``, its subclass
with a problem type and the fields at fault) rendered by ``render``, which
``tessera.web.app`` registers as the admin routes' renderer in the web layer's one error
mechanism (``tessera.web.errors.ErrorHandlers``). The admin layer's errors become problems
by ``of_admin_error``: ``not_found`` 404, ``conflict`` and ``confirmation_required`` 409,
``invalid`` 422, ``idempotency_mismatch`` 422, ``stale`` (changed since the ``If-Match``
was read) 412.

A problem's members: ``type`` (a URI under ``PROBLEM_BASE``), ``title``, ``status``,
``detail``; a validation problem adds ``field`` (the first input at fault) and ``errors``
(``[{"field", "message"}]``). A 401 carries ``WWW-Authenticate: Bearer`` (RFC 6750 §3)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from tessera.admin.errors import AdminError
from tessera.errors import InvalidToken, OAuthError
from tessera.web.errors import challenge_headers

PROBLEM_BASE = "https://tessera.dev/problems/"
MEDIA_TYPE = "application/problem+json"

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    428: "Precondition required",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
}

#: The admin layer's error codes, as HTTP statuses.
ADMIN_STATUS = {
    "not_found": 404,
    "conflict": 409,
    "confirmation_required": 409,
    "invalid": 422,
    "idempotency_mismatch": 422,
    "stale": 412,
}


class Problem(OAuthError):
    """A refusal of the admin API: ``kind`` names its problem type (``not_found``,
    ``validation``, ``precondition_failed``, ...)."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail, reason=kind, headers=headers)
        self.status = status
        self.error = kind
        self.kind = kind
        self.errors = errors or []


def validation(errors: list[dict[str, str]], *, status: int = 422) -> Problem:
    first = errors[0]
    return Problem(status, "validation", f"{first['field']}: {first['message']}", errors=errors)


def of_admin_error(e: AdminError) -> Problem:
    status = ADMIN_STATUS.get(e.code, 400)
    if e.field is not None:
        return Problem(status, e.code, str(e), errors=[{"field": e.field, "message": e.message}])
    return Problem(status, e.code, e.message)


def body_of(err: OAuthError) -> dict[str, Any]:
    kind = err.kind if isinstance(err, Problem) else _kind(err)
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + kind,
        "title": TITLES.get(err.status, "Error"),
        "status": err.status,
        "detail": err.description or TITLES.get(err.status, "error"),
    }
    if isinstance(err, Problem) and err.errors:
        body["field"] = err.errors[0]["field"]
        body["errors"] = err.errors
    return body


def _kind(err: OAuthError) -> str:
    if isinstance(err, InvalidToken):
        return "unauthorized"
    return {403: "forbidden", 405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type"}.get(
        err.status, err.error
    )


def render(err: OAuthError) -> Response:
    """``err`` as ``application/problem+json``, with the web layer's headers rules (no-store,
    the Bearer challenge of a 401)."""
    headers = challenge_headers(err)
    if err.status == 401 and "WWW-Authenticate" not in headers:
        headers["WWW-Authenticate"] = 'Bearer realm="tessera-admin"'
    return Response(orjson.dumps(body_of(err)), status_code=err.status, media_type=MEDIA_TYPE, headers=headers)
