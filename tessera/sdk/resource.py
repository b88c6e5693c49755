"""The resource-server side: verify tessera's access tokens in the payment APIs behind it.

- :class:`JWKSCache` fetches the authorization server's signing keys (its ``jwks_uri``)
  and keeps them; a token signed with a ``kid`` it does not know makes it refetch, at most
  once per ``min_refetch_interval`` (a key rotation publishes the next key before using
  it, so an unknown ``kid`` is rare, and a flood of forged ``kid`` values cannot turn
  into a flood of fetches).
- :class:`TokenVerifier` checks an RFC 9068 access token: the JWS signature against the
  JWKS (algorithm allow-list; ``none`` and HMAC never), ``typ: at+jwt``, ``exp``/``nbf``/
  ``iat`` (with ``leeway``), ``iss``, ``aud``, the profile (``prf``, with ``profile=``), the
  RFC 8705 certificate binding (``cnf.x5t#S256`` = base64url SHA-256 of the presented
  certificate's DER) and scopes (a space-separated string, or a list as MobilePay's tokens
  carry it). Each tessera profile has its own audience (MobilePay:
  ``{issuer}/integrator-authentication/resources``; axept: ``axeptConnectCloud-merchant-client``;
  native: the issuer; see docs/configuration.md), so a verifier for one profile's audience
  refuses another's tokens; ``profile=`` checks the seal as well.
- :class:`MobilePayMerchantRule`: MobilePay PoS V10's merchant rule, refusing as the PoS
  API does (body ``{"code", "message", "CorrelationId"}``: 1151, 1155, 1159, 1182, 403/1411;
  :class:`PosApiError`): a token with ``merchant_vat`` is good only for that merchant; a token
  without it must name the merchant in ``x-mobilepay-merchant-vat-number`` on every call; an
  ``x-ibm-client-id`` that is not the token's client is 401.
- :func:`require_token`: a Starlette/FastAPI dependency that reads the Bearer token and the
  client certificate (ASGI TLS extension, or a header from trusted proxies through
  :class:`tessera.sdk.mtls.MTLSExtractor`) and answers errors as RFC 6750 §3 says:
  401 ``invalid_token``, 403 ``insufficient_scope``, 400 ``invalid_request``, each with a
  ``WWW-Authenticate: Bearer`` challenge.

FastAPI is not needed: the dependency takes a ``starlette.requests.Request``, which is
what FastAPI hands to ``Depends(...)`` too.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the dependency's
# signature, and needs ``Request`` as a class, not as a string.

import binascii
import functools
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import httpx
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.errors import UnsupportedAlgorithmError
from joserfc.jwk import import_key
from joserfc.jws import JWSAlgModel, JWSRegistry
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .mtls import MTLSConfig, MTLSExtractor, PeerCertificate, thumbprint

from ._http import Verify, ssl_context
from .errors import SDKError
from .mobilepay import VAT_HEADER, VAT_PATTERN

__all__ = [
    "AuthContext",
    "BearerError",
    "InsufficientScope",
    "InvalidRequestError",
    "InvalidTokenError",
    "JWKSCache",
    "JWKSUnavailable",
    "MerchantMismatch",
    "MobilePayMerchantRule",
    "PosApiError",
    "ResourceError",
    "TokenDependency",
    "TokenVerifier",
    "require_token",
    "resource_error_handler",
]

MAX_TOKEN_BYTES = 16 * 1024
MAX_JWKS_BYTES = 256 * 1024
DEFAULT_ALGORITHMS = ("ES256", "RS256", "EdDSA")
_ALG_KTY = {"ES256": "EC", "ES384": "EC", "ES512": "EC", "RS256": "RSA", "RS384": "RSA", "RS512": "RSA",
            "PS256": "RSA", "PS384": "RSA", "PS512": "RSA", "EdDSA": "OKP", "Ed25519": "OKP"}
_B64TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")  # RFC 6750 §2.1


# ====================================================================== errors
class ResourceError(SDKError, HTTPException):
    """An error the resource server answers with; it is a Starlette ``HTTPException`` so
    that Starlette and FastAPI answer it (with its headers) even without our handler.
    :meth:`response` renders it as RFC 6750 JSON."""

    status = 500
    error = "server_error"

    def __init__(self, description: str, *, reason: str | None = None) -> None:
        self.description = description
        self.reason = reason or self.error
        SDKError.__init__(self, description)
        HTTPException.__init__(self, self.status, description, self.challenge_headers())

    def __str__(self) -> str:
        return f"{self.error} ({self.reason}): {self.description}"

    def challenge_headers(self, realm: str = "tessera") -> dict[str, str]:
        return {"Cache-Control": "no-store"}

    def response(self, realm: str = "tessera") -> Response:
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, status_code=self.status, headers=self.challenge_headers(realm))


class BearerError(ResourceError):
    """An RFC 6750 §3.1 error, with its ``WWW-Authenticate: Bearer`` challenge."""

    scope: str | None = None

    def challenge_headers(self, realm: str = "tessera") -> dict[str, str]:
        params = [f'realm="{_quote(realm)}"']
        if self.reason != "token_missing":  # §3.1: no error code when no credentials were sent
            params.append(f'error="{self.error}"')
            params.append(f'error_description="{_quote(self.description)}"')
        if self.scope:
            params.append(f'scope="{_quote(self.scope)}"')
        return {"WWW-Authenticate": "Bearer " + ", ".join(params), "Cache-Control": "no-store"}


class InvalidTokenError(BearerError):
    """401 ``invalid_token``: missing, malformed, expired, revoked, wrongly signed or issued,
    or bound to another certificate. ``reason`` says which (for logs)."""

    status = 401
    error = "invalid_token"


class InsufficientScope(BearerError):
    """403 ``insufficient_scope``: the token is good but does not grant ``scopes``."""

    status = 403
    error = "insufficient_scope"

    def __init__(self, description: str, *, scopes: Iterable[str] = (), reason: str | None = None) -> None:
        self.scopes = tuple(scopes)
        self.scope = " ".join(self.scopes) or None
        super().__init__(description, reason=reason or "scope_missing")


class MerchantMismatch(InsufficientScope):
    """403: a token bound to one merchant (``merchant_vat``) used for another."""

    def __init__(self, description: str = "the access token is for another merchant") -> None:
        super().__init__(description, reason="merchant_mismatch")


class InvalidRequestError(BearerError):
    """400 ``invalid_request``: e.g. the merchant's VAT header is missing or malformed."""

    status = 400
    error = "invalid_request"


class PosApiError(ResourceError):
    """A refusal of MobilePay's PoS V10 API: ``{"code": "1151", "message": "...",
    "CorrelationId": "<uuid>"}`` with the API's status (400, or 403 for ``1411``)."""

    error = "pos_api_error"

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.correlation_id = str(uuid.uuid4())
        super().__init__(message, reason=f"pos_{code}")

    def response(self, realm: str = "tessera") -> Response:
        body = {"code": self.code, "message": self.description, "CorrelationId": self.correlation_id}
        return JSONResponse(body, status_code=self.status, headers=self.challenge_headers(realm))


class JWKSUnavailable(ResourceError):
    """503: the authorization server's keys could not be fetched (and none are known)."""

    status = 503
    error = "temporarily_unavailable"

    def challenge_headers(self, realm: str = "tessera") -> dict[str, str]:
        return {"Cache-Control": "no-store", "Retry-After": "5"}


def _quote(value: str) -> str:
    return "".join(c if c.isprintable() and c not in '"\\' else "'" for c in value)


async def resource_error_handler(request: Request, exc: Exception) -> Response:
    """A Starlette/FastAPI exception handler: ``exception_handlers={ResourceError: resource_error_handler}``
    answers RFC 6750 JSON bodies instead of the framework's default."""
    if not isinstance(exc, ResourceError):  # pragma: no cover - registered for ResourceError only
        raise exc
    return exc.response()


# ====================================================================== keys
class _Registry(JWSRegistry):
    """Exactly one allowed algorithm, without joserfc's per-call deprecation warning for
    ``EdDSA`` (RFC 9864 prefers ``Ed25519``; verifiers must still accept ``EdDSA``)."""

    def get_alg(self, name: str) -> JWSAlgModel:
        if not self.allowed or name not in self.allowed or name not in self.algorithms:
            raise UnsupportedAlgorithmError("Algorithm is not allowed")
        return self.algorithms[name]


@functools.lru_cache(maxsize=None)
def _registry(alg: str) -> JWSRegistry:
    return _Registry(algorithms=(alg,))


@dataclass(frozen=True)
class _Key:
    kid: str | None
    kty: str
    alg: str | None  # the JWK's own "alg", when it names one
    key: Any


def _import_keys(jwks: Any) -> dict[str | None, _Key]:
    """The usable signing keys of a JWK Set: public RSA/EC/OKP keys not marked for another
    use. Symmetric keys are never used (a public JWKS holding one is a mistake or an
    attack: HS256 with a published secret). Keys that do not parse are skipped."""
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        raise ValueError("a JWK Set is an object with a keys array")
    keys: dict[str | None, _Key] = {}
    for jwk in jwks["keys"]:
        if not isinstance(jwk, Mapping):
            continue
        kty = jwk.get("kty")
        if kty not in ("RSA", "EC", "OKP") or jwk.get("use", "sig") != "sig":
            continue
        if any(m in jwk for m in ("d", "p", "q", "k")):
            continue  # private material has no business in a JWKS
        ops = jwk.get("key_ops")
        if isinstance(ops, list) and "verify" not in ops:
            continue
        kid = jwk.get("kid")
        if kid is not None and not isinstance(kid, str):
            continue
        try:
            key = import_key(dict(jwk))
        except Exception:  # joserfc raises a variety of errors for a malformed key
            continue
        alg = jwk.get("alg") if isinstance(jwk.get("alg"), str) else None
        keys.setdefault(kid, _Key(kid, kty, alg, key))
    return keys


class JWKSCache:
    """The signing keys at ``jwks_uri``, fetched on first use and kept.

    - A key set older than ``max_age`` seconds is refetched when next used (if that
      fails, the old keys stay in use).
    - A token naming an unknown ``kid`` triggers a refetch, at most once per
      ``min_refetch_interval`` seconds (counted from the last fetch attempt); within the
      interval the ``kid`` is simply unknown.
    - Thread-safe: one fetch at a time; callers that waited for it use its result.

    ``verify``: as for the SDK clients (True, False, a CA file/directory, an SSLContext).
    ``fetches`` counts the fetch attempts."""

    def __init__(self, jwks_uri: str, *, min_refetch_interval: float = 60.0, max_age: float = 300.0,
                 verify: Verify = True, timeout: float = 5.0, transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if min_refetch_interval < 0 or max_age <= 0:
            raise ValueError("min_refetch_interval must be >= 0 and max_age > 0")
        self.jwks_uri = jwks_uri
        self.min_refetch_interval = float(min_refetch_interval)
        self.max_age = float(max_age)
        self.clock = clock
        self.fetches = 0
        self._http = httpx.Client(verify=ssl_context(verify), timeout=timeout, transport=transport)
        self._lock = threading.Lock()  # the state below
        self._fetch_lock = threading.Lock()  # one fetch at a time
        self._keys: dict[str | None, _Key] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempt_at: float | None = None  # last attempt, successful or not
        self._fetching = False  # a fetch is under way

    def __repr__(self) -> str:
        return f"JWKSCache({self.jwks_uri!r}, keys={len(self._keys)})"

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ lookups
    def get_key(self, kid: str | None) -> "_Key | None":
        """The key named ``kid`` (fetching or refetching as the rules allow), or None."""
        key, fetch = self._lookup(kid)
        if not fetch:
            return key
        with self._fetch_lock:
            key, fetch = self._lookup(kid)  # another thread may have fetched meanwhile
            if fetch:
                self._refetch()
                key, _ = self._lookup(kid, fetch_allowed=False)
        return key

    def needs_fetch(self, kid: str | None) -> bool:
        """Whether :meth:`get_key` would go to the network (asyncio callers then run it in
        a worker thread)."""
        return self._lookup(kid)[1]

    def keys(self) -> "dict[str | None, _Key]":
        with self._lock:
            return dict(self._keys)

    def _lookup(self, kid: str | None, *, fetch_allowed: bool = True) -> "tuple[_Key | None, bool]":
        """(the key, whether to fetch first). While a fetch runs, a caller that could use its
        result is told to fetch: it then waits for that fetch and uses its result."""
        now = self.clock()
        with self._lock:
            key = _find(self._keys, kid)
            if not fetch_allowed:
                return key, False
            if self._fetched_at is None:  # never fetched successfully
                if self._fetching:
                    return None, True
                if self._attempt_at is not None and now - self._attempt_at < min(self.min_refetch_interval, 5.0):
                    raise JWKSUnavailable("the authorization server's keys are unavailable", reason="jwks_unavailable")
                return None, True
            spaced = self._attempt_at is None or now - self._attempt_at >= self.min_refetch_interval
            if key is not None:
                return key, now - self._fetched_at >= self.max_age and spaced
            return None, spaced or self._fetching

    def _refetch(self) -> None:
        with self._lock:
            self._attempt_at = self.clock()
            self._fetching = True
            self.fetches += 1
        try:
            response = self._http.get(self.jwks_uri, headers={"Accept": "application/json"})
            if response.status_code != 200 or len(response.content) > MAX_JWKS_BYTES:
                raise ValueError(f"HTTP {response.status_code}")
            keys = _import_keys(response.json())
        except (httpx.HTTPError, ValueError) as e:
            with self._lock:
                self._fetching = False
                have_keys = self._fetched_at is not None
            if not have_keys:
                raise JWKSUnavailable("the authorization server's keys are unavailable",
                                      reason="jwks_unavailable") from e
            return  # keep the keys we have
        except BaseException:
            with self._lock:
                self._fetching = False
            raise
        with self._lock:
            self._keys = keys
            self._fetched_at = self.clock()
            self._fetching = False


class _StaticKeys:
    """A JWK Set given as a dict: no fetching."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._keys = _import_keys(jwks)

    def get_key(self, kid: str | None) -> "_Key | None":
        return _find(self._keys, kid)

    def needs_fetch(self, kid: str | None) -> bool:
        return False


def _find(keys: "dict[str | None, _Key]", kid: str | None) -> "_Key | None":
    if kid is not None:
        return keys.get(kid)
    # A token without a kid: only unambiguous with a single key.
    return next(iter(keys.values())) if len(keys) == 1 else None


# ====================================================================== verifier
class TokenVerifier:
    """Verifies tessera's (RFC 9068) access tokens for one resource server.

    ``jwks``: a :class:`JWKSCache`, or a JWK Set as a dict. ``issuer``: the accepted
    ``iss`` value(s). ``audience``: the ``aud`` this API must find in the token.
    ``required_scopes``: scopes every token must carry (more per call with ``scopes=``).
    ``leeway``: seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
    ``algorithms``: the JWS algorithms accepted; ``none`` and HMAC are never accepted.
    """

    def __init__(self, jwks: "JWKSCache | Mapping[str, Any]", *, issuer: str | Iterable[str], audience: str,
                 required_scopes: Iterable[str] = (), leeway: float = 30,
                 algorithms: Iterable[str] = DEFAULT_ALGORITHMS, clock: Callable[[], float] = time.time,
                 profile: str | None = None) -> None:
        self.jwks = jwks if isinstance(jwks, JWKSCache) else _StaticKeys(jwks)
        self.issuers = frozenset([issuer] if isinstance(issuer, str) else issuer)
        if not self.issuers or not all(isinstance(i, str) and i for i in self.issuers):
            raise ValueError("issuer must be a non-empty string or a list of them")
        if not isinstance(audience, str) or not audience:
            raise ValueError("audience must be a non-empty string")
        self.audience = audience
        if profile is not None and (not isinstance(profile, str) or not profile):
            raise ValueError("profile must be a non-empty string")
        self.profile = profile
        self.required_scopes = tuple(required_scopes)
        self.leeway = float(leeway)
        algs = tuple(algorithms)
        bad = [a for a in algs if a not in _ALG_KTY]
        if bad or not algs:
            raise ValueError(f"unsupported algorithms: {', '.join(bad) or '(none given)'}")
        self.algorithms = frozenset(algs)
        self.clock = clock

    # ------------------------------------------------------------------ public
    def verify(self, token: str, *, client_cert_der: bytes | None = None, scopes: Iterable[str] = ()) -> dict[str, Any]:
        """The token's claims, once everything checks out; else :class:`InvalidTokenError`
        (401) or :class:`InsufficientScope` (403). May fetch the JWKS (blocking)."""
        header, signed = self._parse(token)
        key = self.jwks.get_key(header.get("kid"))
        return self._check(signed, header, key, client_cert_der, scopes)

    async def averify(self, token: str, *, client_cert_der: bytes | None = None,
                      scopes: Iterable[str] = ()) -> dict[str, Any]:
        """:meth:`verify` for asyncio: a JWKS fetch runs in a worker thread."""
        header, signed = self._parse(token)
        kid = header.get("kid")
        if self.jwks.needs_fetch(kid):
            key = await anyio.to_thread.run_sync(self.jwks.get_key, kid)
        else:
            key = self.jwks.get_key(kid)
        return self._check(signed, header, key, client_cert_der, scopes)

    # ------------------------------------------------------------------ steps
    def _parse(self, token: Any) -> "tuple[dict[str, Any], Any]":
        if not isinstance(token, str) or not token:
            raise InvalidTokenError("a Bearer access token is required", reason="token_missing")
        if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
            raise InvalidTokenError("the access token is invalid", reason="token_malformed")
        try:
            signed = jws.extract_compact(token.encode("ascii"))
            header = signed.headers()
        except (JoseError, ValueError, TypeError, UnicodeError, binascii.Error):
            raise InvalidTokenError("the access token is invalid", reason="token_malformed") from None
        if not isinstance(header, dict):
            raise InvalidTokenError("the access token is invalid", reason="token_malformed")
        alg = header.get("alg")
        if alg not in self.algorithms:  # "none", HS256, anything not allowed
            raise InvalidTokenError("the access token is invalid", reason="alg_not_allowed")
        if "crit" in header or "b64" in header or "jku" in header or "x5u" in header or "jwk" in header:
            raise InvalidTokenError("the access token is invalid", reason="header_not_allowed")
        if _norm_typ(header.get("typ")) != "at+jwt":
            raise InvalidTokenError("the access token is invalid", reason="typ_not_at_jwt")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidTokenError("the access token is invalid", reason="token_malformed")
        return header, signed

    def _check(self, signed: Any, header: dict[str, Any], key: "_Key | None", client_cert_der: bytes | None,
               scopes: Iterable[str]) -> dict[str, Any]:
        alg = header["alg"]
        if key is None:
            raise InvalidTokenError("the access token is invalid", reason="unknown_kid")
        if _ALG_KTY.get(alg) != key.kty or (key.alg is not None and key.alg != alg):
            raise InvalidTokenError("the access token is invalid", reason="alg_key_mismatch")
        try:
            valid = jws.validate_compact(signed, key.key, registry=_registry(alg))
        except (JoseError, ValueError, TypeError):
            valid = False
        if not valid:
            raise InvalidTokenError("the access token is invalid", reason="bad_signature")
        try:
            claims = json.loads(signed.payload)
        except (ValueError, UnicodeDecodeError):
            claims = None
        if not isinstance(claims, dict):
            raise InvalidTokenError("the access token is invalid", reason="token_malformed")
        self._check_times(claims)
        if claims.get("iss") not in self.issuers:
            raise InvalidTokenError("the access token is invalid", reason="wrong_issuer")
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if self.audience not in auds:
            raise InvalidTokenError("the access token is invalid", reason="wrong_audience")
        if self.profile is not None and claims.get("prf") != self.profile:
            raise InvalidTokenError("the access token is invalid", reason="wrong_profile")
        _check_binding(claims, client_cert_der)
        granted_set = _scopes(claims.get("scope"))
        wanted = list(dict.fromkeys([*self.required_scopes, *scopes]))
        missing = [s for s in wanted if s not in granted_set]
        if missing:
            raise InsufficientScope("the access token does not grant the scope this call needs", scopes=wanted)
        return claims

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self.clock()
        exp = claims.get("exp")
        if not _is_number(exp):
            raise InvalidTokenError("the access token is invalid", reason="exp_missing")
        if now >= exp + self.leeway:
            raise InvalidTokenError("the access token has expired", reason="token_expired")
        nbf = claims.get("nbf")
        if nbf is not None and (not _is_number(nbf) or now + self.leeway < nbf):
            raise InvalidTokenError("the access token is not valid yet", reason="token_not_yet_valid")
        iat = claims.get("iat")
        if iat is not None and (not _is_number(iat) or now + self.leeway < iat):
            raise InvalidTokenError("the access token is invalid", reason="issued_in_future")


def _check_binding(claims: dict[str, Any], client_cert_der: bytes | None) -> None:
    """RFC 8705 §3: a token with ``cnf.x5t#S256`` is good only with that certificate."""
    cnf = claims.get("cnf")
    if cnf is None:
        return
    if not isinstance(cnf, dict):
        raise InvalidTokenError("the access token is invalid", reason="token_malformed")
    bound = cnf.get("x5t#S256")
    if bound is None:
        return
    if not isinstance(bound, str):
        raise InvalidTokenError("the access token is invalid", reason="token_malformed")
    if client_cert_der is None:
        raise InvalidTokenError("the access token is bound to a client certificate, and none was presented",
                                reason="certificate_required")
    if not hmac.compare_digest(bound.encode("ascii", "replace"), thumbprint(client_cert_der).encode("ascii")):
        raise InvalidTokenError("the access token is bound to another certificate", reason="certificate_mismatch")


def _norm_typ(value: Any) -> str | None:
    """RFC 7515 §4.1.9: compared case-insensitively, ``application/`` may be omitted."""
    if not isinstance(value, str):
        return None
    value = value.lower()
    return value[len("application/"):] if value.startswith("application/") else value


def _scopes(scope: Any) -> frozenset[str]:
    """RFC 9068 §2.2.3: a space-separated string; MobilePay's tokens carry a list."""
    if isinstance(scope, str):
        return frozenset(scope.split())
    if isinstance(scope, list):
        return frozenset(s for s in scope if isinstance(s, str))
    return frozenset()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ====================================================================== MobilePay
#: MobilePay PoS V10's refusals (provider-docs/reference-facts.md): code → (status, message).
POS_1151 = "1151"  # merchant VAT header missing
POS_1155 = "1155"  # merchant VAT header duplicated
POS_1159 = "1159"  # merchant VAT header invalid
POS_1182 = "1182"  # invalid merchant_vat claim in the access token
POS_1411 = "1411"  # a call about another merchant's payment
CLIENT_ID_HEADER = "x-ibm-client-id"


@dataclass(frozen=True)
class MobilePayMerchantRule:
    """MobilePay's merchant rule, for the PoS API behind tessera's ``mobilepay`` profile,
    refusing with the PoS V10 codes (:class:`PosApiError`, body ``{"code", "message",
    "CorrelationId"}``):

    - ``1182`` (400): the token's ``merchant_vat`` claim is not ``^(DK|FI)\\d{8}$``;
    - ``1155`` (400): ``header`` sent more than once;
    - ``1159`` (400): ``header`` is not ``^(DK|FI)\\d{8}$``;
    - ``1151`` (400): the token has no ``merchant_vat`` and ``header`` is missing;
    - ``1411`` (403): the call is about another merchant: ``header`` names another merchant
      than the token's ``merchant_vat``, or ``allow(vat, claims)`` says no (e.g. the merchant
      has not granted this integrator access). :meth:`owner_check` gives the same answer for a
      payment of another merchant.

    With ``client_id_header`` (``x-ibm-client-id``, which every PoS V10 call carries), a value
    that is not the token's ``client_id`` is 401 ``invalid_token`` (as MobilePay's older docs
    and the public mock answer it); a missing one is accepted unless ``require_client_id``.

    ``header`` defaults to ``x-mobilepay-merchant-vat-number``, the header of MobilePay's
    PoS V10 API. :meth:`merchant` returns the merchant's VAT number the request acts for."""

    header: str = VAT_HEADER
    allow: Callable[[str, dict[str, Any]], bool] | None = field(default=None, compare=False)
    client_id_header: str | None = CLIENT_ID_HEADER
    require_client_id: bool = False

    def merchant(self, claims: Mapping[str, Any], header_values: Iterable[str]) -> str:
        bound = claims.get("merchant_vat")
        if bound is not None and (not isinstance(bound, str) or not VAT_PATTERN.fullmatch(bound)):
            raise PosApiError(400, POS_1182, "The merchant_vat claim of the access token is invalid.")
        values = list(header_values)
        if len(values) > 1:
            raise PosApiError(400, POS_1155, f"The {self.header} header is duplicated.")
        named = values[0].strip() if values else None
        if named is not None and not VAT_PATTERN.fullmatch(named):
            raise PosApiError(400, POS_1159, f"The {self.header} header is invalid: DK or FI followed by 8 digits.")
        if bound is not None:
            if named is not None and named != bound:
                raise self.another_merchant()
            vat = bound
        elif named is None:
            raise PosApiError(400, POS_1151, f"The {self.header} header is missing: the access token is not "
                                             "bound to a merchant.")
        else:
            vat = named
        if self.allow is not None and not self.allow(vat, dict(claims)):
            raise self.another_merchant()
        return vat

    @staticmethod
    def another_merchant() -> PosApiError:
        """403 ``1411``: the call is about another merchant (or another merchant's payment)."""
        return PosApiError(403, POS_1411, "The call is about another merchant's resource.")

    def owner_check(self, merchant_vat: str, owner: str) -> None:
        """Refuse (403 ``1411``) a call about a payment that belongs to another merchant."""
        if not hmac.compare_digest(merchant_vat.encode(), owner.encode()):
            raise self.another_merchant()

    def check_client(self, claims: Mapping[str, Any], header_values: Iterable[str]) -> None:
        if self.client_id_header is None:
            return
        values = list(header_values)
        if not values and not self.require_client_id:
            return
        client_id = claims.get("client_id")
        if len(values) != 1 or not isinstance(client_id, str) or values[0].strip() != client_id:
            raise InvalidTokenError(f"{self.client_id_header} is not the access token's client",
                                    reason="client_id_mismatch")

    def check_request(self, claims: Mapping[str, Any], request: Request) -> str:
        if self.client_id_header is not None:
            self.check_client(claims, request.headers.getlist(self.client_id_header))
        return self.merchant(claims, request.headers.getlist(self.header))


# ====================================================================== dependency
@dataclass(frozen=True)
class AuthContext:
    """What :func:`require_token` hands to the endpoint (also in ``request.state.auth``)."""

    token: str
    claims: dict[str, Any]
    certificate: PeerCertificate | None = None
    merchant_vat: str | None = None  # with a merchant rule: the merchant the request acts for

    @property
    def client_id(self) -> str | None:
        value = self.claims.get("client_id")
        return value if isinstance(value, str) else None

    @property
    def scopes(self) -> frozenset[str]:
        return _scopes(self.claims.get("scope"))


class TokenDependency:
    """``await dependency(request) -> AuthContext``, raising :class:`ResourceError`.

    - FastAPI: ``auth: AuthContext = Depends(dependency)`` (register
      :func:`resource_error_handler` for RFC 6750 JSON bodies; without it FastAPI still
      answers the status and ``WWW-Authenticate`` header).
    - Starlette: decorate an endpoint with ``@dependency.protect``; it finds the context in
      ``request.state.auth``, and errors are answered for it.
    """

    def __init__(self, verifier: TokenVerifier, scopes: Iterable[str] = (),
                 merchant_rule: MobilePayMerchantRule | None = None,
                 mtls: MTLSExtractor | MTLSConfig | None = None, realm: str = "tessera") -> None:
        self.verifier = verifier
        self.scopes = tuple(scopes)
        self.merchant_rule = merchant_rule
        self.mtls = mtls if isinstance(mtls, MTLSExtractor) else MTLSExtractor(mtls)
        self.realm = realm

    async def __call__(self, request: Request) -> AuthContext:
        token = _bearer(request)
        peer = self.mtls(request.scope)
        claims = await self.verifier.averify(token, client_cert_der=peer.der if peer else None, scopes=self.scopes)
        vat = self.merchant_rule.check_request(claims, request) if self.merchant_rule is not None else None
        context = AuthContext(token=token, claims=claims, certificate=peer, merchant_vat=vat)
        request.state.auth = context
        return context

    def protect(self, endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a Starlette endpoint: it runs only with a good token (``request.state.auth``)."""

        @functools.wraps(endpoint)
        async def protected(request: Request) -> Response:
            try:
                await self(request)
            except ResourceError as e:
                return e.response(self.realm)
            return await endpoint(request)

        return protected


def require_token(verifier: TokenVerifier, scopes: Iterable[str] = (), merchant_rule: MobilePayMerchantRule | None = None,
                  *, mtls: MTLSExtractor | MTLSConfig | None = None, realm: str = "tessera") -> TokenDependency:
    """A Starlette/FastAPI dependency checking the request's Bearer token with ``verifier``,
    requiring ``scopes``, and applying ``merchant_rule`` when given.

    The client certificate (for certificate-bound tokens) comes from the ASGI TLS extension
    (``scope["extensions"]["tls"]["client_cert_chain"][0]``) or, with
    ``mtls=MTLSConfig(mode="proxy", header=..., trusted_proxies=...)``, from a header sent
    by a trusted proxy (see :mod:`tessera.sdk.mtls`)."""
    return TokenDependency(verifier, scopes, merchant_rule, mtls, realm)


def _bearer(request: Request) -> str:
    """RFC 6750 §2.1: ``Authorization: Bearer <b64token>``; other schemes or none → 401."""
    values = request.headers.getlist("authorization")
    if not values:
        raise InvalidTokenError("a Bearer access token is required", reason="token_missing")
    if len(values) > 1:
        raise InvalidRequestError("send one Authorization header", reason="authorization_repeated")
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        raise InvalidTokenError("a Bearer access token is required", reason="token_missing")
    token = token.strip()
    if not token or not _B64TOKEN.fullmatch(token):
        raise InvalidTokenError("the access token is invalid", reason="token_malformed")
    return token
