"""Tokens issued directly, without the provider's handshake: what a test of a resource server
needs in one call (``POST /_sandbox/tokens``, ``tessera_sandbox.issue_token``). Each token is
the one the profile's own endpoint would give the same caller (same flow function, same
lifetime, same claims): only the authentication step is skipped.

One function per profile, in a registry (``ISSUERS``); each takes the request's JSON object
and answers a JSON object ``{profile, access_token, expires_in, claims}`` (B2BINPAY adds
``refresh``). ``LookupError`` when the named app, key or merchant does not exist;
``ValueError`` for a malformed request."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tessera.config import Settings
from tessera.core import grants, tokens
from tessera.core.clients import ClientCredentials
from tessera.core.context import Core
from tessera.core.flows import axept as axept_flow
from tessera.core.flows import b2binpay as b2binpay_flow
from tessera.core.flows import mobilepay as mobilepay_flow
from tessera.core.models import Client
from tessera.core.profiles import NATIVE


@dataclass(frozen=True)
class Issuing:
    core: Core
    settings: Settings
    #: the B2BINPAY logins and passwords of the fixtures (the login answer's ``meta.sign`` needs it)
    passwords: Mapping[str, str]


def _str(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def _int(body: Mapping[str, Any], name: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer")
    return value


def _client(core: Core, body: Mapping[str, Any], name: str = "client_id") -> Client:
    client_id = _str(body, name)
    client = core.client(client_id)
    if client is None or client.status != "active":
        raise LookupError(f"no active client {client_id}")
    return client


def _answer(profile: str, issued: tokens.IssuedToken, **more: Any) -> dict[str, Any]:
    return {
        "profile": profile,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "claims": issued.claims,
        **more,
    }


def nexi(i: Issuing, body: Mapping[str, Any]) -> dict[str, Any]:
    """The B2B token of ``client_id``, bound to one of its valid certificates as over mTLS:
    ``thumbprint`` (its x5t#S256), else the newest."""
    client = _client(i.core, body)
    now = i.core.now()
    certs = [c for c in i.core.certificates_for(client.client_id) if c.revoked_at is None and c.not_after > now]
    wanted = body.get("thumbprint")
    if wanted is not None:
        certs = [c for c in certs if c.thumbprint == wanted]
    if not certs:
        raise LookupError(f"client {client.client_id} has no valid certificate" + (f" {wanted}" if wanted else ""))
    thumbprint = max(certs, key=lambda c: (c.not_before, c.created_at)).thumbprint
    issued = grants.client_credentials(i.core, client, ttl=i.core.config.nexi_token_ttl, thumbprint=thumbprint)
    return _answer("nexi-softpos", issued)


def mobilepay(i: Issuing, body: Mapping[str, Any]) -> dict[str, Any]:
    """The integrator token of ``client_id``, for ``merchant_vat`` when given (which must have
    granted the client access, as at the token endpoint)."""
    client = _client(i.core, body)
    vat = body.get("merchant_vat")
    if vat is not None and not isinstance(vat, str):
        raise ValueError("merchant_vat must be a string")
    request = mobilepay_flow.TokenRequest(
        ClientCredentials(client.client_id, None, "client_secret_basic"), "client_credentials", vat
    )
    mobilepay_flow.check(request)
    result = mobilepay_flow.issue(i.core, request, client, ttl=i.settings.mobilepay_token_ttl)
    return {
        "profile": "mobilepay",
        "access_token": result.access_token,
        "expires_in": result.expires_in,
        "claims": result.claims,
    }


def axept(i: Issuing, body: Mapping[str, Any]) -> dict[str, Any]:
    """The token of the merchant key ``merchantId``/``keyId`` (enabled)."""
    merchant_id, key_id = _int(body, "merchantId"), _int(body, "keyId")
    record = i.core.store.get_api_key(merchant_id, key_id)
    if record is None or not record.enabled:
        raise LookupError(f"merchant {merchant_id} has no enabled key {key_id}")
    result = axept_flow.issue(i.core, record, ttl=i.settings.axept_token_ttl)
    exp = int(result.claims["exp"])
    return {
        "profile": "axept",
        "access_token": result.token,
        "expires_in": exp - i.core.now(),
        "expiresAt": result.expires_at,
        "claims": result.claims,
    }


def b2binpay(i: Issuing, body: Mapping[str, Any]) -> dict[str, Any]:
    """A login's token pair for ``login`` (a new refresh family, as ``POST /token/``)."""
    client = _client(i.core, body, "login")
    password = i.passwords.get(client.client_id)
    if password is None:
        raise LookupError(f"login {client.client_id} is not a B2BINPAY user of the fixtures")
    pair = b2binpay_flow.login(
        i.core,
        client.client_id,
        b2binpay_flow.LoginRequest(client.client_id, password),
        b2binpay_flow.Lifetimes.from_settings(i.settings),
    )
    claims = json.loads(base64.urlsafe_b64decode(pair.access.split(".")[1] + "=="))  # issued just now, by us
    return {
        "profile": "b2binpay",
        "access_token": pair.access,
        "expires_in": i.settings.b2binpay_access_ttl,
        "refresh": pair.refresh,
        "access_expired_at": pair.access_expired_at,
        "refresh_expired_at": pair.refresh_expired_at,
        "claims": claims,
    }


def native(i: Issuing, body: Mapping[str, Any]) -> dict[str, Any]:
    """A client-credentials token of the native surface (``/oauth2/token``) for ``client_id``."""
    client = _client(i.core, body)
    scope = body.get("scope", "")
    if not isinstance(scope, str):
        raise ValueError("scope must be a string")
    issued = tokens.issue_access_token(
        i.core, profile=NATIVE, client_id=client.client_id, ttl=i.core.config.access_token_ttl, scope=scope
    )
    return _answer(NATIVE, issued)


ISSUERS: dict[str, Callable[[Issuing, Mapping[str, Any]], dict[str, Any]]] = {
    "nexi": nexi,
    "mobilepay": mobilepay,
    "axept": axept,
    "b2binpay": b2binpay,
    "native": native,
}
