"""Client authentication: one registry ``{method: authenticator}`` for every surface.

Each profile declares the methods it accepts (a tuple: ``METHODS`` here for the native
endpoints, ``AUTH_METHODS`` in ``tessera.core.flows.b2binpay``, ``NEXI_PAR_METHODS`` and
``AXEPT_METHODS`` below) and authenticates through :func:`authenticate_with`, which picks the
one method the request presented among those and runs its authenticator.

- ``client_secret_basic`` / ``client_secret_post`` (RFC 6749 §2.3.1): the secret's HMAC
  (``tessera.core.clients.authenticate_secret``).
- ``tls_client_auth`` (RFC 8705 §2.1): the verified TLS client certificate must be one that
  our CA issued and that is bound to the client (``bound_certificate``), unrevoked and valid.
  This is stricter than matching a registered subject DN: the binding is to the exact
  certificate, by its ``x5t#S256``.
- ``private_key_jwt`` (RFC 7523 §2.2, §3): a JWT signed with a key from the client's
  registered JWKS or of one of its bound certificates, optionally wrapped in a JWE
  encrypted to one of the server's ``enc`` keys. The claims follow the same rules as the
  Nexi assertions (``check_assertion_claims``): ``aud`` is the issuer (never the endpoint
  URL, never an array), single-use ``jti``, short lifetime.
- ``nexi_nested_jwe``: the Nexi PAR's ``client_assertion``, a JWE around a JWS signed with
  the key of a certificate bound to the client, over mutual TLS
  (``tessera.core.assertions.open_nested_assertion``). Its ``jti`` is claimed by the caller,
  in one write with the pushed request.
- ``axept_api_key``: a merchant's ``merchantId``/``keyId``/``key`` (``tessera.core.apikeys``).

The authenticators keep their homes (``clients.py``: secrets and certificate binding;
``assertions.py``: the nested JWE and the RFC 7523 claim rules; ``apikeys.py``: axept keys),
each a rule in a file named after it; this module is the one door to all of them.

On the native endpoints, whatever the method, a client certificate presented over mutual TLS
must be bound to the client that authenticated; when it is, the tokens issued are bound to it
(RFC 8705 §3). One request uses one method (RFC 6749 §2.3): secret plus assertion is refused.
Every failure is ``invalid_client`` (401) except a malformed request (``invalid_request``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tessera.core import apikeys, assertions
from tessera.core.clients import ClientCredentials, PeerCert, authenticate_secret, bound_certificate
from tessera.core.context import Core
from tessera.core.models import ApiKey, CertificateRecord, Client
from tessera.errors import InvalidClient, InvalidRequest, PayloadTooLarge
from tessera.inputs import is_identifier, loads_json
from tessera.jose.errors import JoseError
from tessera.jose.nested import JWS_ALGS, verify_signed_assertion
from tessera.limits import MAX_TOKEN_BYTES

__all__ = [
    "AUTHENTICATORS",
    "AXEPT_METHODS",
    "ApiKeyCredentials",
    "AuthenticatedClient",
    "AuthenticatedKey",
    "ClientAuthRequest",
    "ClientCredentials",
    "METHODS",
    "NEXI_PAR_METHODS",
    "PeerCert",
    "authenticate",
    "authenticate_with",
    "client_keys",
    "register",
    "validate_jwks",
]

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SECRET_METHODS = ("client_secret_basic", "client_secret_post")
#: What the native endpoints accept, in the order the metadata lists them.
METHODS = ("client_secret_basic", "client_secret_post", "tls_client_auth", "private_key_jwt")
#: The Nexi PAR: the nested JWE assertion, over mutual TLS.
NEXI_PAR_METHODS = ("nexi_nested_jwe",)
#: axept ``/v1/authenticate``: a merchant API key.
AXEPT_METHODS = ("axept_api_key",)
#: Signature algorithms accepted for ``private_key_jwt`` (``none`` and HS* never).
SIGNING_ALGS = JWS_ALGS


@dataclass(frozen=True)
class AuthenticatedClient:
    client: Client
    method: str
    #: The bound developer certificate presented over mTLS, if any.
    certificate: CertificateRecord | None = None
    #: The verified claims of the client assertion (``private_key_jwt``, ``nexi_nested_jwe``).
    claims: dict[str, Any] | None = None

    @property
    def thumbprint(self) -> str | None:
        """``x5t#S256`` to bind tokens to (RFC 8705 §3), when mTLS was used."""
        return self.certificate.thumbprint if self.certificate is not None else None


@dataclass(frozen=True)
class AuthenticatedKey:
    """An axept merchant API key that authenticated (axept callers are merchants, not clients)."""

    key: ApiKey
    method: str = "axept_api_key"


@dataclass(frozen=True)
class ApiKeyCredentials:
    """axept's ``{"merchantId", "keyId", "key"}``."""

    merchant_id: int
    key_id: int
    key: str


@dataclass(frozen=True)
class ClientAuthRequest:
    """Everything the caller may have presented, as parsed by the web layer."""

    credentials: ClientCredentials = ClientCredentials(None, None, "none")  # Basic / post / just a client_id
    assertion_type: str | None = None
    assertion: str | None = None
    peer: PeerCert | None = None
    api_key: ApiKeyCredentials | None = None
    #: The client and the certificate bound to it that the caller has already checked for this
    #: request (the Nexi PAR: the Bearer token's client, over its certificate): the assertion's
    #: authenticator takes them as they are instead of looking them up a second time.
    holder: AuthenticatedClient | None = None

    @property
    def has_assertion(self) -> bool:
        return self.assertion is not None or self.assertion_type is not None


Authenticated = AuthenticatedClient | AuthenticatedKey


@dataclass(frozen=True)
class Authenticator:
    """One method: ``presented`` says whether a request uses it, ``run`` checks it."""

    presented: Callable[[ClientAuthRequest], bool]
    run: Callable[[Core, ClientAuthRequest], Authenticated]


#: The registry: every client-authentication method tessera knows.
AUTHENTICATORS: dict[str, Authenticator] = {}


Run = Callable[[Core, ClientAuthRequest], Authenticated]


def register(method: str, presented: Callable[[ClientAuthRequest], bool]) -> Callable[[Run], Run]:
    """Register ``method``'s authenticator (a decorator)."""

    def wrap(run: Run) -> Run:
        AUTHENTICATORS[method] = Authenticator(presented, run)
        return run

    return wrap


def authenticate_with(core: Core, accepted: tuple[str, ...], req: ClientAuthRequest) -> Any:
    """Authenticate ``req`` by the one method it presented among ``accepted`` (in that order):
    an ``AuthenticatedClient`` (``AuthenticatedKey`` for ``axept_api_key``), or
    ``InvalidClient`` / ``InvalidRequest``. Two methods at once are refused (RFC 6749 §2.3)."""
    if req.has_assertion and req.credentials.method in SECRET_METHODS:
        raise InvalidRequest("use one client authentication method, not two", reason="two_auth_methods")
    for method in accepted:
        entry = AUTHENTICATORS[method]
        if entry.presented(req):
            return entry.run(core, req)
    raise InvalidClient("client authentication is required", reason="no_client_auth")


def authenticate(core: Core, req: ClientAuthRequest) -> AuthenticatedClient:
    """The native endpoints: one of ``METHODS``; a certificate presented over mutual TLS must
    be bound to the client, and is then returned for the tokens to be bound to it."""
    auth: AuthenticatedClient = authenticate_with(core, METHODS, req)
    cert = bound_certificate(core, auth.client, req.peer) if req.peer is not None else None
    return AuthenticatedClient(auth.client, auth.method, cert, auth.claims)


# --- the authenticators ---------------------------------------------------------------------------


def _secret(method: str) -> Callable[[Core, ClientAuthRequest], Authenticated]:
    def run(core: Core, req: ClientAuthRequest) -> Authenticated:
        return AuthenticatedClient(authenticate_secret(core, req.credentials), method)

    return run


def _secret_presented(method: str) -> Callable[[ClientAuthRequest], bool]:
    return lambda req: not req.has_assertion and req.credentials.method == method


for _method in SECRET_METHODS:
    register(_method, _secret_presented(_method))(_secret(_method))


@register(
    "tls_client_auth",
    lambda req: (
        req.peer is not None
        and not req.has_assertion
        and req.credentials.method not in SECRET_METHODS
        and req.api_key is None
    ),
)
def _tls_client_auth(core: Core, req: ClientAuthRequest) -> Authenticated:
    return AuthenticatedClient(_tls_client(core, req.credentials.client_id), "tls_client_auth")


@register("private_key_jwt", lambda req: req.has_assertion)
def _private_key_jwt_auth(core: Core, req: ClientAuthRequest) -> Authenticated:
    client, claims = _private_key_jwt(core, req.credentials.client_id, req.assertion_type, req.assertion, req.peer)
    return AuthenticatedClient(client, "private_key_jwt", claims=claims)


@register("nexi_nested_jwe", lambda req: req.assertion is not None)
def _nexi_nested_jwe(core: Core, req: ClientAuthRequest) -> Authenticated:
    """The Nexi PAR assertion of ``credentials.client_id``, over mTLS with a certificate bound to
    it. The claims are checked (RFC 7523 §3 with the Nexi rules) but the ``jti`` is left for
    the caller to claim, together with what it stores (``assertions.claim_jti(then_put=…)``)."""
    holder = req.holder
    if (
        holder is not None
        and holder.certificate is not None
        and req.peer is not None
        and holder.client.client_id == req.credentials.client_id
        and holder.certificate.thumbprint == req.peer.thumbprint
    ):  # checked by the caller a moment ago (active, certificate bound and usable)
        client, cert = holder.client, holder.certificate
    else:
        client = _active(core, req.credentials.client_id)
        cert = bound_certificate(core, client, req.peer)
    verified = assertions.open_nested_assertion(core, client, req.assertion, preferred_thumbprint=cert.thumbprint)
    assertions.check_assertion_claims(
        core, client, verified.claims, audience=core.config.issuer, rules=assertions.AssertionRules.nexi(core.config)
    )
    return AuthenticatedClient(client, "nexi_nested_jwe", cert, verified.claims)


@register("axept_api_key", lambda req: req.api_key is not None)
def _axept_api_key(core: Core, req: ClientAuthRequest) -> Authenticated:
    key = req.api_key
    assert key is not None
    return AuthenticatedKey(apikeys.authenticate(core, key.merchant_id, key.key_id, key.key))


def _active(core: Core, client_id: str | None) -> Client:
    client = core.client(client_id) if client_id else None
    if client is None:
        raise InvalidClient("client authentication failed", reason="client_unknown")
    if not client.active:
        raise InvalidClient("client authentication failed", reason="client_revoked")
    return client


def _allowed(client: Client, method: str) -> None:
    if method not in client.auth_methods:
        raise InvalidClient(f"{method} is not allowed for this client", reason="auth_method_not_allowed")


def _tls_client(core: Core, client_id: str | None) -> Client:
    """RFC 8705 §2: ``client_id`` names the client; the certificate (checked by the caller) proves it."""
    if not client_id:
        raise InvalidClient("client_id is required with tls_client_auth", reason="client_id_missing")
    client = _active(core, client_id)
    _allowed(client, "tls_client_auth")
    return client


# --- private_key_jwt -----------------------------------------------------------------------------


def _private_key_jwt(
    core: Core, client_id: str | None, assertion_type: str | None, assertion: str | None, peer: PeerCert | None
) -> tuple[Client, dict[str, Any]]:
    if assertion_type != JWT_BEARER:
        raise InvalidClient(f"client_assertion_type must be {JWT_BEARER}", reason="assertion_type")
    if not assertion:
        raise InvalidClient("client_assertion is required", reason="assertion_missing")
    if len(assertion) > MAX_TOKEN_BYTES:
        # Security checklist #13: refused with 413 before any parsing, like the Nexi assertion.
        raise PayloadTooLarge(f"client_assertion over {MAX_TOKEN_BYTES} bytes", reason="assertion_too_large")
    signed = assertion
    if assertion.count(".") == 4:  # a JWE (RFC 7516 §7.1) wrapping the signed JWT (RFC 7519 §5.2)
        signed = assertions.decrypt(core, assertion)  # the one decryption path (the Nexi PAR's too)
    # RFC 7523 §3: iss and sub are the client_id; client_id in the form, when sent, must agree.
    named = _unverified_issuer(signed)
    if client_id is not None and named is not None and client_id != named:
        raise InvalidClient("client_id does not match the client_assertion", reason="assertion_client_id")
    client = _active(core, client_id or named)
    _allowed(client, "private_key_jwt")
    candidates = client_keys(core, client, preferred=peer.thumbprint if peer else None)
    if not candidates:
        raise InvalidClient("no key is registered or bound for this client", reason="assertion_no_key")
    try:
        _header, claims = verify_signed_assertion(signed, candidates)
    except JoseError as e:
        raise InvalidClient(f"client_assertion: {e.reason}", reason="assertion_jws") from None
    assertions.check_assertion_claims(core, client, claims, audience=core.config.issuer)
    assertions.claim_jti(core, client, claims)
    return client, claims


def _unverified_issuer(token: str) -> str | None:
    """``iss`` of a compact JWS, read before verification only to pick the client's keys."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidClient("client_assertion must be a compact JWS or JWE", reason="assertion_jws")
    try:
        payload = loads_json(
            base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        )  # strict: no NaN, surrogate, depth
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError):
        raise InvalidClient("client_assertion is malformed", reason="assertion_jws") from None
    if not isinstance(payload, dict):
        raise InvalidClient("client_assertion is malformed", reason="assertion_jws")
    iss = payload.get("iss")
    return iss if is_identifier(iss) else None  # never a control character or lone surrogate to the database


def client_keys(core: Core, client: Client, *, preferred: str | None = None) -> list[Any]:
    """Public keys the client may sign assertions with: its registered JWKS (``use`` sig or
    unset), then the keys of its usable bound certificates (the one presented first)."""
    keys: list[Any] = list(_jwks_keys(json.dumps(client.jwks, sort_keys=True))) if client.jwks else []
    return keys + assertions.certificate_verification_keys(core, client, preferred=preferred)


@lru_cache(maxsize=1024)
def _jwks_keys(jwks_json: str) -> tuple[Any, ...]:
    from joserfc.jwk import ECKey, RSAKey

    out: list[RSAKey | ECKey] = []
    data = json.loads(jwks_json)
    for item in (data.get("keys") if isinstance(data, dict) else None) or ():
        if not isinstance(item, dict) or item.get("use", "sig") != "sig":
            continue
        public = {k: v for k, v in item.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "oth", "k")}
        try:
            if public.get("kty") == "RSA":
                out.append(RSAKey.import_key(public))
            elif public.get("kty") == "EC":
                out.append(ECKey.import_key(public))
        except Exception:  # noqa: BLE001 - a bad registered key is skipped, never a 500
            continue
    return tuple(out)


def validate_jwks(jwks: Any) -> dict[str, Any]:
    """Check a JWKS given at registration: public RSA (>= 2048 bits) or EC P-256 keys only."""
    from joserfc.jwk import ECKey, RSAKey

    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ValueError('the JWKS must be {"keys": [...]} with at least one key')
    for item in jwks["keys"]:
        if not isinstance(item, dict):
            raise ValueError("each key must be a JSON object")
        if {"d", "p", "q", "dp", "dq", "qi", "oth", "k"} & set(item):
            raise ValueError("the JWKS must hold public keys only")
        kty = item.get("kty")
        if kty == "RSA":
            if RSAKey.import_key(item).public_key.key_size < 2048:
                raise ValueError("RSA keys must be at least 2048 bits")
        elif kty == "EC":
            key = ECKey.import_key(item)
            if key.curve_name != "P-256":
                raise ValueError("EC keys must be on P-256")
        else:
            raise ValueError("keys must be RSA or EC")
    return jwks
