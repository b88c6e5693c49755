"""Pushed authorization requests (RFC 9126): validation of the pushed parameters, and the
single-use ``request_uri`` bound to the client that pushed it."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from tessera.core.context import Core
from tessera.core.kinds import Kind
from tessera.core.models import Artifact, Client
from tessera.core.secrets import sha256_key
from tessera.errors import InvalidRequest, InvalidRequestURI, InvalidScope

PAR_KIND: str = Kind.REQUEST_URI.value
#: The scopes the SoftPOS enrollment knows; ``oidc`` or ``openid`` must be among them.
NEXI_SCOPES = frozenset({"openid", "oidc", "email", "profile", "phone", "address"})
PKCE_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True)
class PushedRequest:
    request_uri: str
    expires_in: int


@dataclass(frozen=True)
class AuthorizationParams:
    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    code_challenge: str | None
    code_challenge_method: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def check_nexi_scope(scope: str | None) -> str:
    if not scope:
        raise InvalidRequest("scope is required", reason="scope_missing")
    parts = scope.split(" ")
    if any(not p for p in parts) or len(set(parts)) != len(parts):
        raise InvalidScope("scope must be space-separated scope values, each once", reason="scope_syntax")
    unknown = [p for p in parts if p not in NEXI_SCOPES]
    if unknown:
        raise InvalidScope(f"unknown scope {unknown[0][:40]!r}", reason="scope_unknown")
    if "oidc" not in parts and "openid" not in parts:
        raise InvalidScope("scope must contain oidc or openid", reason="scope_no_oidc")
    return scope


#: Schemes never registered as a redirect target: they run or reveal something in the user agent.
REFUSED_REDIRECT_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "blob", "about", "filesystem"})
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def validate_redirect_uri(uri: str) -> str:
    """A redirect URI fit to register (RFC 6749 §3.1.2, RFC 8252 §7, RFC 9700 §4.1).

    Absolute, no fragment, no whitespace or control characters; ``https`` with a host;
    ``http`` only to a loopback host (RFC 8252 §7.3); a private-use scheme such as Nexi's
    reference app's ``pizzapay://confirm-pay`` (RFC 8252 §7.1) is accepted; ``javascript``,
    ``data``, ``file`` and the like never. Matching stays exact (:func:`check_redirect_uri`).
    Raises ``ValueError`` with the reason."""
    from urllib.parse import urlsplit

    if not isinstance(uri, str) or not uri or len(uri) > 2048:
        raise ValueError("a redirect URI is a non-empty string of at most 2048 characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in uri):
        raise ValueError("a redirect URI has no whitespace or control characters")
    scheme, sep, rest = uri.partition(":")
    if not sep or not _SCHEME.match(scheme) or not rest:
        raise ValueError("a redirect URI is absolute: scheme:rest")
    scheme = scheme.lower()
    if scheme in REFUSED_REDIRECT_SCHEMES:
        raise ValueError(f"the {scheme}: scheme is not allowed for a redirect URI")
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError:
        raise ValueError("a redirect URI must be a valid URI") from None
    if "#" in uri:
        raise ValueError("a redirect URI has no fragment (RFC 6749 §3.1.2)")
    if scheme in ("http", "https") and not host:
        raise ValueError(f"an {scheme} redirect URI needs a host")
    if scheme == "http" and host not in _LOOPBACK:
        raise ValueError("http redirect URIs are allowed only to a loopback host (RFC 8252 §7.3); use https")
    return uri


def check_redirect_uri(client: Client, redirect_uri: str | None) -> str:
    """Exact string comparison with a registered value (RFC 9700 §4.1.3), for every scheme
    (``https``, loopback ``http``, and private-use schemes such as ``pizzapay://confirm-pay``)."""
    if not redirect_uri:
        raise InvalidRequest("redirect_uri is required", reason="redirect_uri_missing")
    if redirect_uri not in client.redirect_uris:
        raise InvalidRequest("redirect_uri is not the registered one", reason="redirect_uri_mismatch")
    return redirect_uri


def check_pkce(code_challenge: str | None, method: str | None) -> tuple[str | None, str | None]:
    """RFC 7636 with S256 only: ``plain`` is refused."""
    if code_challenge is None:
        if method is not None:
            raise InvalidRequest("code_challenge_method without code_challenge", reason="pkce_method_alone")
        return None, None
    if method is None:
        raise InvalidRequest("code_challenge_method=S256 is required", reason="pkce_method_missing")
    if method != "S256":
        raise InvalidRequest("only code_challenge_method=S256 is supported", reason="pkce_plain")
    if not PKCE_CHALLENGE.match(code_challenge):
        raise InvalidRequest("code_challenge must be base64url(SHA-256(verifier))", reason="pkce_challenge_syntax")
    return code_challenge, method


def push(
    core: Core,
    client: Client,
    params: AuthorizationParams,
    extra: dict[str, Any],
    *,
    prefix: str,
    kind: str = PAR_KIND,
    claims: dict[str, Any] | None = None,
) -> PushedRequest:
    """Store the request for ``par_ttl`` seconds under a fresh ``request_uri``.

    ``kind`` keeps the requests of one surface (Nexi, native) apart from another's. With the
    ``claims`` of the client assertion, its ``jti`` is claimed in the same unit of work
    (``assertions.claim_jti``): a replayed assertion stores nothing, one write per PAR."""
    request_uri = f"{prefix}{uuid.uuid4()}"
    ttl = core.config.par_ttl
    artifact = Artifact(
        kind=kind,
        key=sha256_key(request_uri),
        client_id=client.client_id,
        data={"params": params.as_dict(), **extra},
        expires_at=core.now() + ttl,
    )
    if claims is None:
        core.store.put_artifact(artifact)
    else:
        from tessera.core.assertions import claim_jti

        claim_jti(core, client, claims, then_put=artifact)
    return PushedRequest(request_uri, ttl)


def required_uri(request_uri: str | None) -> str:
    """``request_uri`` itself, or ``InvalidRequest`` when it is missing."""
    if not request_uri:
        raise InvalidRequest("request_uri is required", reason="request_uri_missing")
    return request_uri


def load(core: Core, client_id: str | None, request_uri: str | None, *, kind: str = PAR_KIND) -> Artifact:
    """The pushed request, if it is unexpired, unused, and was pushed by ``client_id``."""
    art = core.store.get_artifact(kind, sha256_key(required_uri(request_uri)))
    if art is None or art.consumed_at is not None or art.expires_at <= core.now():
        raise InvalidRequestURI("request_uri is unknown, used or expired", reason="request_uri_invalid")
    if art.client_id != client_id:
        raise InvalidRequestURI("request_uri was not pushed by this client", reason="request_uri_foreign")
    return art


def consume(core: Core, client_id: str, request_uri: str, *, kind: str = PAR_KIND) -> Artifact:
    """Use the request_uri up: exactly one caller wins."""
    art = core.store.consume(kind, sha256_key(request_uri), core.now())
    if art is None or art.client_id != client_id:
        raise InvalidRequestURI("request_uri is unknown, used or expired", reason="request_uri_invalid")
    return art
