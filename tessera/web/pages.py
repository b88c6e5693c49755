"""The HTML pages of the login endpoints: the sign-in form and the error page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from tessera.errors import OAuthError

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def login_page(request: Request, page: Any, *, action: str, error: str | None = None, status: int = 200) -> Response:
    """The sign-in form for ``page`` (a ``tessera.core.authorize`` login page), posting to ``action``."""
    return TEMPLATES.TemplateResponse(
        request,
        "login.html",
        {"page": page, "action": action, "error": error},
        status_code=status,
        headers=PAGE_HEADERS,
    )


def error_page(request: Request, err: OAuthError) -> Response:
    """A refusal on a login endpoint, as a page (with ``Retry-After`` on a 503 or 429)."""
    return TEMPLATES.TemplateResponse(
        request,
        "error.html",
        {"error": err.error, "description": err.description},
        status_code=err.status,
        headers={**PAGE_HEADERS, **err.headers},
    )
