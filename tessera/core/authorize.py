"""The merchant's login at the end of a pushed authorization request, and the code it yields."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from tessera.core import par
from tessera.core.context import Core
from tessera.core.kinds import Kind
from tessera.core.models import Artifact
from tessera.core.secrets import sha256_key, verify_password
from tessera.errors import AccessDenied

CODE_KIND: str = Kind.CODE.value


@dataclass(frozen=True)
class LoginPage:
    """What the login page needs to show."""

    client_id: str
    client_name: str
    request_uri: str
    username: str
    scope: str


def login_page(
    core: Core, client_id: str | None, request_uri: str | None, *, par_kind: str = par.PAR_KIND
) -> LoginPage:
    art = par.load(core, client_id, request_uri, kind=par_kind)
    client = core.client(art.client_id)
    return LoginPage(
        art.client_id,
        client.name if client else art.client_id,
        par.required_uri(request_uri),
        art.data.get("enrollment", {}).get("username", ""),
        art.data["params"]["scope"],
    )


def login(
    core: Core,
    client_id: str | None,
    request_uri: str | None,
    username: str,
    password: str,
    *,
    par_kind: str = par.PAR_KIND,
    code_kind: str = CODE_KIND,
) -> str:
    """Check the merchant user's password, use the request_uri up, and return the redirect
    to ``redirect_uri`` carrying ``code``, ``state`` and ``iss`` (RFC 9207).

    ``par_kind``/``code_kind`` keep one surface's requests and codes apart from another's;
    a pushed request's ``native`` extras (nonce, ...) are carried over to its code."""
    art = par.load(core, client_id, request_uri, kind=par_kind)
    expected = art.data.get("enrollment", {}).get("username")
    username = (username or "").strip().lower()
    user = core.store.get_user(username) if username else None
    ok = verify_password(password or "", user.password_hash if user else None)
    if not ok or user is None or (expected is not None and username != expected):
        raise AccessDenied("invalid username or password", reason="login_failed")
    won = par.consume(core, art.client_id, par.required_uri(request_uri), kind=par_kind)
    params = won.data["params"]
    code = secrets.token_urlsafe(32)
    data = {"params": params, "enrollment": won.data.get("enrollment"), "username": username}
    if "native" in won.data:
        data["native"] = won.data["native"]
    core.store.put_artifact(
        Artifact(
            kind=code_kind,
            key=sha256_key(code),
            client_id=won.client_id,
            data=data,
            expires_at=core.now() + core.config.code_ttl,
        )
    )
    query = {"code": code}
    if params.get("state") is not None:
        query["state"] = params["state"]
    query["iss"] = core.config.issuer
    return _add_query(params["redirect_uri"], query)


def _add_query(uri: str, extra: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = parts.query + ("&" if parts.query else "") + urlencode(extra)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
