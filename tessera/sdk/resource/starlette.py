"""The Starlette/FastAPI side: :func:`require_token`, a dependency that reads the Bearer
token and the client certificate and answers errors as RFC 6750 §3 says, and
:func:`resource_error_handler`. Importing this module loads Starlette; the rest of
:mod:`tessera.sdk.resource` does not.

FastAPI is not needed: the dependency takes a ``starlette.requests.Request``, which is what
FastAPI hands to ``Depends(...)`` too."""

# No ``from __future__ import annotations`` here: FastAPI reads the dependency's
# signature, and needs ``Request`` as a class, not as a string.

import functools
import re
from collections.abc import Awaitable, Callable, Iterable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from tessera.sdk.mtls import MTLSConfig, MTLSExtractor
from tessera.sdk.resource.errors import InvalidRequestError, InvalidTokenError, ResourceError
from tessera.sdk.resource.mobilepay import MobilePayMerchantRule
from tessera.sdk.resource.verifier import AuthContext, TokenVerifier

__all__ = ["TokenDependency", "as_http_exception", "require_token", "resource_error_handler"]

_B64TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")  # RFC 6750 §2.1


_HTTP_CLASSES: dict[type[ResourceError], type[ResourceError]] = {}


def _http_exception_class(cls: type[ResourceError]) -> type[ResourceError]:
    """``cls`` that is also a Starlette ``HTTPException`` (one class per error class)."""
    found = _HTTP_CLASSES.get(cls)
    if found is None:
        found = _HTTP_CLASSES.setdefault(
            cls,
            type(cls.__name__, (cls, HTTPException), {"__module__": cls.__module__, "__qualname__": cls.__qualname__}),
        )
    return found


def as_http_exception(error: ResourceError) -> ResourceError:
    """Make ``error`` a Starlette ``HTTPException`` as well, in place (still an instance of its
    own class): Starlette and FastAPI then answer its status and challenge headers even
    without :func:`resource_error_handler`."""
    if not isinstance(error, HTTPException):
        error.__class__ = _http_exception_class(type(error))
        HTTPException.__init__(error, error.status, error.description, error.challenge_headers())  # type: ignore[arg-type]
    return error


async def resource_error_handler(request: Request, exc: Exception) -> Response:
    """A Starlette/FastAPI exception handler: ``exception_handlers={ResourceError: resource_error_handler}``
    answers RFC 6750 JSON bodies instead of the framework's default."""
    if not isinstance(exc, ResourceError):  # pragma: no cover - registered for ResourceError only
        raise exc
    return exc.response()


class TokenDependency:
    """``await dependency(request) -> AuthContext``, raising :class:`ResourceError`.

    - FastAPI: ``auth: AuthContext = Depends(dependency)`` (register
      :func:`resource_error_handler` for RFC 6750 JSON bodies; without it FastAPI still
      answers the status and ``WWW-Authenticate`` header).
    - Starlette: decorate an endpoint with ``@dependency.protect``; it finds the context in
      ``request.state.auth``, and errors are answered for it.
    """

    def __init__(
        self,
        verifier: TokenVerifier,
        scopes: Iterable[str] = (),
        merchant_rule: MobilePayMerchantRule | None = None,
        mtls: MTLSExtractor | MTLSConfig | None = None,
        realm: str = "tessera",
    ) -> None:
        self.verifier = verifier
        self.scopes = tuple(scopes)
        self.merchant_rule = merchant_rule
        self.mtls = mtls if isinstance(mtls, MTLSExtractor) else MTLSExtractor(mtls)
        self.realm = realm

    async def __call__(self, request: Request) -> AuthContext:
        try:
            token = _bearer(request)
            peer = self.mtls(request.scope)
            claims = await self.verifier.averify(token, client_cert_der=peer.der if peer else None, scopes=self.scopes)
            vat = self.merchant_rule.check_request(claims, request) if self.merchant_rule is not None else None
        except ResourceError as e:
            as_http_exception(e)
            raise
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


def require_token(
    verifier: TokenVerifier,
    scopes: Iterable[str] = (),
    merchant_rule: MobilePayMerchantRule | None = None,
    *,
    mtls: MTLSExtractor | MTLSConfig | None = None,
    realm: str = "tessera",
) -> TokenDependency:
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
