"""Client for Nexi's B2B SoftPOS channel (the ``nexi-softpos`` profile), as documented.

Every call goes over mutual TLS with the app's developer certificate:

- ``POST {prefix}/appenrollment/token``: ``grant_type=client_credentials, client_id,
  client_secret`` (form) → ``{access_token, token_type, expires_in: 3600}``, cached;
- ``GET  {prefix}/par/jwks.json``: the platform's encryption keys (cached 5 minutes);
- ``POST {prefix}/as/par``: ``Authorization: Bearer``, form ``client_assertion,
  client_id, scope, redirect_uri`` (+ ``state``, PKCE) → ``201 {request_uri, expires_in}``;
- ``GET  {prefix}/as/authorize?client_id&request_uri``: where the merchant signs in;
- ``POST {prefix}/as/token``: ``grant_type=authorization_code`` → the enrollment tokens.

``base_url`` is a URL or an environment name: ``"staging"``
(``https://stgb2bsoftpos.nexigroup.com``) or ``"production"``
(``https://b2bsoftpos.nexigroup.com``); the paths are Nexi's own (``prefix="/softpos"``),
which a tessera sandbox and tessera's default server serve too.

Every operation has an asyncio form: :meth:`atoken`, :meth:`ajwks`, :meth:`aencryption_key`,
:meth:`aclient_assertion`, :meth:`apar`, :meth:`aexchange_code`. The token and JWKS calls are
retried (429, 503, network failures; :mod:`tessera.sdk.retry`); PAR and the code exchange
only when the connection was never made (the assertion's ``jti`` and the code are
single-use).

The developer certificate and its key come from a path, PEM bytes or text, or
``cryptography`` objects; an encrypted key takes ``password=`` (never a prompt).

The client is also an ``httpx.Auth``: ``httpx.Client(auth=nexi)`` sends the B2B token to
the payment APIs, refreshing it when it expires or is refused.

By default the client sends exactly what Nexi's reference backend sends
(``NexiPayments/softpos-backend``, see the profile's docs page): the token is renewed at
75 % of its life; the client assertion is a JWS with header ``{"alg": "RS256"}`` only,
encrypted with ``{"alg": "RSA-OAEP-256", "enc": "A128CBC-HS256"}`` (no ``kid``, no ``cty``)
to a key picked at random from the JWKS, with the claims ``appId, pointOfSale,
terminal_ids, app_username_merchant, app_deviceid, iss, sub, aud, iat, exp = iat + 500,
jti`` (a UUID4). The older shape (``kid``, ``typ``, ``cty``, ``x5t#S256``, A256GCM, the
first key, ``username_merchant``) stays available through parameters.
"""

from __future__ import annotations

import copy
import dataclasses
import secrets
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Hashable
from typing import Any
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives import serialization

from ._http import HTTPTokenClient, Retry, Verify, json_object, parse_bearer_token
from .assertion import build_nested_assertion
from .cache import CachedToken, TokenCache
from .errors import TokenError, error_from_response
from .keys import CertificateInput, Password, PrivateKeyInput, load_certificates, load_private_key
from .providers import NEXI
from .retry import DEFAULT_RETRY

__all__ = ["NexiSoftPOSClient", "ClientAssertion"]

FORM = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
JWKS_TTL = 300.0
#: The provider's maximum (support page: at most 15 minutes) and the reference's lifetime.
MAX_ASSERTION_LIFETIME = 900
DEFAULT_ASSERTION_LIFETIME = 500
DEFAULT_TOKEN_LIFETIME = 3600  # "The token duration is one hour (3600 s)"
#: The reference backend asks for a new token after 75 % of ``expires_in``.
RENEW_AT_FRACTION = 0.75
PATHS = NEXI.paths


class ClientAssertion(str):
    """A client assertion (the compact JWE) that can build a fresh copy of itself, with a
    new ``jti`` and new times: :meth:`NexiSoftPOSClient.par` (``renew``) and
    :meth:`NexiSoftPOSClient.apar` (``arenew``) use it to retry."""

    renew: Callable[[], ClientAssertion]
    arenew: Callable[[], Awaitable[ClientAssertion]]

    def __new__(
        cls,
        value: str,
        renew: Callable[[], ClientAssertion],
        arenew: Callable[[], Awaitable[ClientAssertion]] | None = None,
    ) -> ClientAssertion:
        obj = super().__new__(cls, value)
        obj.renew = renew

        async def _arenew() -> ClientAssertion:
            return renew()

        obj.arenew = arenew if arenew is not None else _arenew
        return obj


@dataclasses.dataclass(frozen=True)
class _AssertionSpec:
    point_of_sale: str
    terminal_ids: list[str]
    username_merchant: str
    device_id: str | None
    lifetime: int
    username_claim: str
    alg: str
    enc: str
    minimal_headers: bool
    key_choice: str


class NexiSoftPOSClient(HTTPTokenClient):
    """The B2B SoftPOS enrollment calls of one app (``client_id``) in one environment.

    ``base_url``: a URL, ``"staging"`` or ``"production"``. ``cert``/``key``: the developer
    certificate (with its chain, as ``openssl pkcs7 -print_certs`` writes it) and its private
    key, each a path, PEM bytes or text, or a ``cryptography`` object; ``password``: the
    key's pass phrase when it is encrypted. ``verify``: True (public CAs), a CA file or
    directory, the CA as PEM or ``x509.Certificate``, False, or an ``ssl.SSLContext`` (the
    developer certificate is loaded into it). ``audience``: the ``aud`` of client
    assertions, by default the base URL. ``retry``: :class:`~tessera.sdk.retry.RetryPolicy`,
    a number of attempts, or None. ``transport``/``async_transport``: httpx transports to
    use instead of the network (tests, ``httpx.MockTransport``).
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        cert: CertificateInput,
        key: PrivateKeyInput,
        *,
        password: Password = None,
        verify: Verify = True,
        cache: TokenCache | None = None,
        prefix: str = PATHS["prefix"],
        audience: str | None = None,
        timeout: float = 10.0,
        retry: Retry = DEFAULT_RETRY,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        certificates = load_certificates(cert)
        private_key = load_private_key(key, password)
        super().__init__(
            NEXI.base_url(base_url),
            cache=cache,
            verify=verify,
            timeout=timeout,
            retry=retry,
            transport=transport,
            async_transport=async_transport,
            client_certificate=(certificates, private_key),
        )
        self.client_id = client_id
        self._client_secret = client_secret
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.audience = audience if audience is not None else self.base_url
        self._cert_pem = certificates[0].public_bytes(serialization.Encoding.PEM)
        self._private_key = private_key  # loaded (and checked) once: build_nested_assertion takes it as it is
        self._jwks: dict[str, Any] | None = None
        self._jwks_at = 0.0
        self._jwks_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"NexiSoftPOSClient({self.base_url!r}, client_id={self.client_id!r})"

    # ------------------------------------------------------------------ plumbing
    def url(self, path: str) -> str:
        """``{base_url}{prefix}{path}``."""
        return f"{self.base_url}{self.prefix}{path}"

    # ------------------------------------------------------------------ token
    @property
    def cache_key(self) -> Hashable:
        return ("nexi-softpos", self.base_url + self.prefix, self.client_id)

    def _token_form(self) -> dict[str, str]:
        return {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self._client_secret}

    def _fetch(self) -> CachedToken:
        started = self.cache.clock()
        response = self._post(self.url(PATHS["token"]), data=self._token_form(), headers=FORM)
        return _parse_token(response, started)

    async def _afetch(self) -> CachedToken:
        started = self.cache.clock()
        response = await self._apost(self.url(PATHS["token"]), data=self._token_form(), headers=FORM)
        return _parse_token(response, started)

    # ------------------------------------------------------------------ JWKS
    def _cached_jwks(self, refresh: bool) -> dict[str, Any] | None:
        with self._jwks_lock:
            if refresh or self._jwks is None or time.monotonic() - self._jwks_at >= JWKS_TTL:
                return None
            return copy.deepcopy(self._jwks)

    def _keep_jwks(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code != 200:
            raise error_from_response(response)
        body = json_object(response)
        if not isinstance(body.get("keys"), list):
            raise TokenError(response.status_code, "invalid_response", "the JWKS has no keys array")
        with self._jwks_lock:
            self._jwks, self._jwks_at = body, time.monotonic()
        return copy.deepcopy(body)

    def jwks(self, *, refresh: bool = False) -> dict[str, Any]:
        """The platform's JWKS (``{"keys": [...]}``), cached 5 minutes; ``refresh=True`` refetches."""
        cached = self._cached_jwks(refresh)
        if cached is not None:
            return cached
        return self._keep_jwks(self._get(self.url(PATHS["jwks"])))

    async def ajwks(self, *, refresh: bool = False) -> dict[str, Any]:
        """:meth:`jwks` for asyncio."""
        cached = self._cached_jwks(refresh)
        if cached is not None:
            return cached
        return self._keep_jwks(await self._aget(self.url(PATHS["jwks"])))

    def encryption_key(self, *, refresh: bool = False, choice: str = "random") -> dict[str, Any]:
        """The key client assertions are encrypted to: a ``use=enc`` RSA key of the JWKS, picked
        at random as the reference backend does (``choice="first"``: the first, as Nexi's
        demo backend does)."""
        _check_choice(choice)
        return _pick_key(self.jwks(refresh=refresh), choice)

    async def aencryption_key(self, *, refresh: bool = False, choice: str = "random") -> dict[str, Any]:
        """:meth:`encryption_key` for asyncio."""
        _check_choice(choice)
        return _pick_key(await self.ajwks(refresh=refresh), choice)

    # ------------------------------------------------------------------ PAR
    def client_assertion(
        self,
        *,
        point_of_sale: str,
        terminal_ids: list[str],
        username_merchant: str,
        device_id: str | None = None,
        lifetime: int = DEFAULT_ASSERTION_LIFETIME,
        username_claim: str = "app_username_merchant",
        alg: str = "RSA-OAEP-256",
        enc: str = "A128CBC-HS256",
        minimal_headers: bool = True,
        key_choice: str = "random",
    ) -> ClientAssertion:
        """A fresh client assertion for the PAR call, signed with the developer certificate's
        key and encrypted to a key of the platform's JWKS. By default exactly what Nexi's
        reference backend sends (see the module docstring); ``device_id`` is the
        ``app_deviceid`` that Nexi's mobile SDK hands to the app (left out when None).
        ``username_claim="username_merchant"``, ``enc="A256GCM"``, ``minimal_headers=False``
        and ``key_choice="first"`` give the older, documented shape.
        The result is a :class:`ClientAssertion` (a ``str``) that :meth:`par` can renew."""
        spec = _spec(
            point_of_sale, terminal_ids, username_merchant, device_id, lifetime, username_claim, alg, enc,
            minimal_headers, key_choice,
        )  # fmt: skip
        return self._assertion(spec, self.encryption_key(choice=spec.key_choice))

    async def aclient_assertion(
        self,
        *,
        point_of_sale: str,
        terminal_ids: list[str],
        username_merchant: str,
        device_id: str | None = None,
        lifetime: int = DEFAULT_ASSERTION_LIFETIME,
        username_claim: str = "app_username_merchant",
        alg: str = "RSA-OAEP-256",
        enc: str = "A128CBC-HS256",
        minimal_headers: bool = True,
        key_choice: str = "random",
    ) -> ClientAssertion:
        """:meth:`client_assertion` for asyncio (the JWKS is fetched without blocking)."""
        spec = _spec(
            point_of_sale, terminal_ids, username_merchant, device_id, lifetime, username_claim, alg, enc,
            minimal_headers, key_choice,
        )  # fmt: skip
        return self._assertion(spec, await self.aencryption_key(choice=spec.key_choice))

    def _assertion(self, spec: _AssertionSpec, encryption_jwk: dict[str, Any]) -> ClientAssertion:
        now = int(time.time())
        claims: dict[str, Any] = {
            "appId": self.client_id,
            "pointOfSale": spec.point_of_sale,
            "terminal_ids": list(spec.terminal_ids),
            spec.username_claim: spec.username_merchant,
        }
        if spec.device_id is not None:
            claims["app_deviceid"] = spec.device_id
        claims.update(
            {
                "iss": self.client_id,
                "sub": self.client_id,
                "aud": self.audience,
                "iat": now,
                "exp": now + spec.lifetime,
                "jti": str(uuid.uuid4()),
            }
        )
        value = build_nested_assertion(
            claims,
            signing_key=self._private_key,
            certificate_pem=self._cert_pem,
            encryption_jwk=encryption_jwk,
            alg=spec.alg,
            enc=spec.enc,
            minimal_headers=spec.minimal_headers,
        )

        def renew() -> ClientAssertion:
            return self._assertion(spec, self.encryption_key(choice=spec.key_choice))

        async def arenew() -> ClientAssertion:
            return self._assertion(spec, await self.aencryption_key(choice=spec.key_choice))

        return ClientAssertion(value, renew, arenew)

    def _par_form(
        self, assertion: str, scope: str, redirect_uri: str, state: str | None, code_challenge: str | None
    ) -> dict[str, str]:
        form = {"client_assertion": str(assertion), "client_id": self.client_id, "scope": scope}
        form["redirect_uri"] = redirect_uri
        if state is not None:
            form["state"] = state
        if code_challenge is not None:
            form["code_challenge"] = code_challenge
            form["code_challenge_method"] = "S256"
        return form

    def par(
        self,
        *,
        scope: str,
        redirect_uri: str,
        client_assertion: str,
        state: str | None = None,
        code_challenge: str | None = None,
    ) -> dict[str, Any]:
        """The pushed authorization request → ``{"request_uri", "expires_in"}``.

        If the platform refuses the B2B token (401 ``invalid_token``), the token is
        refreshed and the call retried once, with a new assertion when ``client_assertion``
        came from :meth:`client_assertion` (its ``jti`` is single-use)."""
        assertion = client_assertion
        for attempt in (1, 2):
            token = self.token()
            form = self._par_form(assertion, scope, redirect_uri, state, code_challenge)
            response = self._post(
                self.url(PATHS["par"]),
                idempotent=False,
                data=form,
                headers={**FORM, "Authorization": f"Bearer {token}"},
            )
            if _par_retry(response, attempt):
                self.invalidate(token)
                if isinstance(assertion, ClientAssertion):
                    assertion = assertion.renew()
                continue
            return _par_answer(response)
        raise AssertionError("unreachable")  # pragma: no cover

    async def apar(
        self,
        *,
        scope: str,
        redirect_uri: str,
        client_assertion: str,
        state: str | None = None,
        code_challenge: str | None = None,
    ) -> dict[str, Any]:
        """:meth:`par` for asyncio."""
        assertion = client_assertion
        for attempt in (1, 2):
            token = await self.atoken()
            form = self._par_form(assertion, scope, redirect_uri, state, code_challenge)
            response = await self._apost(
                self.url(PATHS["par"]),
                idempotent=False,
                data=form,
                headers={**FORM, "Authorization": f"Bearer {token}"},
            )
            if _par_retry(response, attempt):
                self.invalidate(token)
                if isinstance(assertion, ClientAssertion):
                    assertion = await assertion.arenew()
                continue
            return _par_answer(response)
        raise AssertionError("unreachable")  # pragma: no cover

    def authorize_url(self, request_uri: str) -> str:
        """Where the merchant signs in to finish the enrollment."""
        query = urlencode({"client_id": self.client_id, "request_uri": request_uri})
        return self.url(PATHS["authorize"]) + "?" + query

    def _code_form(self, code: str, redirect_uri: str, code_verifier: str | None) -> dict[str, str]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client_id,
            "client_secret": self._client_secret,
        }
        if code_verifier is not None:
            form["code_verifier"] = code_verifier
        return form

    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str | None = None) -> dict[str, Any]:
        """Exchange the authorization code from the redirect → ``{access_token, token_type,
        expires_in, scope, id_token?}`` (the merchant's enrollment tokens; not cached)."""
        form = self._code_form(code, redirect_uri, code_verifier)
        return _code_answer(self._post(self.url(PATHS["code"]), idempotent=False, data=form, headers=FORM))

    async def aexchange_code(self, *, code: str, redirect_uri: str, code_verifier: str | None = None) -> dict[str, Any]:
        """:meth:`exchange_code` for asyncio."""
        form = self._code_form(code, redirect_uri, code_verifier)
        return _code_answer(await self._apost(self.url(PATHS["code"]), idempotent=False, data=form, headers=FORM))


# ---------------------------------------------------------------------- helpers
def _spec(
    point_of_sale: str,
    terminal_ids: list[str],
    username_merchant: str,
    device_id: str | None,
    lifetime: int,
    username_claim: str,
    alg: str,
    enc: str,
    minimal_headers: bool,
    key_choice: str,
) -> _AssertionSpec:
    tids = list(terminal_ids)
    if not 1 <= len(tids) <= 2 or not all(isinstance(t, str) and t for t in tids):
        raise ValueError("terminal_ids must hold one or two TIDs")
    if not 1 <= lifetime <= MAX_ASSERTION_LIFETIME:
        raise ValueError(f"lifetime must be between 1 and {MAX_ASSERTION_LIFETIME} seconds")
    if "@" not in username_merchant:
        raise ValueError("username_merchant must be an e-mail address")
    if username_claim not in ("app_username_merchant", "username_merchant"):
        raise ValueError("username_claim must be app_username_merchant or username_merchant")
    if device_id is not None and (not isinstance(device_id, str) or not device_id):
        raise ValueError("device_id must be a non-empty string")
    _check_choice(key_choice)
    return _AssertionSpec(
        point_of_sale, tids, username_merchant, device_id, lifetime, username_claim, alg, enc, minimal_headers,
        key_choice,
    )  # fmt: skip


def _check_choice(choice: str) -> None:
    if choice not in ("random", "first"):
        raise ValueError('choice must be "random" or "first"')


def _pick_key(jwks: dict[str, Any], choice: str) -> dict[str, Any]:
    keys = [
        jwk
        for jwk in jwks["keys"]
        if isinstance(jwk, dict) and jwk.get("use", "enc") == "enc" and jwk.get("kty") == "RSA"
    ]
    if not keys:
        raise TokenError(200, "invalid_response", "the JWKS has no use=enc key")
    return secrets.choice(keys) if choice == "random" else keys[0]


def _par_retry(response: httpx.Response, attempt: int) -> bool:
    """Whether the PAR answer is the B2B token's refusal, to be retried once with a new token."""
    if attempt != 1 or response.status_code != 401:
        return False
    return error_from_response(response).code == "invalid_token"


def _par_answer(response: httpx.Response) -> dict[str, Any]:
    if response.status_code not in (200, 201):
        raise error_from_response(response)
    body = json_object(response)
    if not isinstance(body.get("request_uri"), str) or not _is_int(body.get("expires_in")):
        raise TokenError(response.status_code, "invalid_response", "the PAR answer lacks request_uri or expires_in")
    return body


def _code_answer(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise error_from_response(response)
    body = json_object(response)
    if not isinstance(body.get("access_token"), str) or not body["access_token"]:
        raise TokenError(response.status_code, "invalid_response", "the token answer has no access_token")
    return body


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_token(response: httpx.Response, started: float) -> CachedToken:
    """A client_credentials answer → CachedToken (expiry counted from when the request left),
    renewed after 75 % of its life as the reference backend renews it."""
    token = parse_bearer_token(response, started, default_lifetime=DEFAULT_TOKEN_LIFETIME)
    return dataclasses.replace(token, renew_at=started + RENEW_AT_FRACTION * (token.expires_at - started))
