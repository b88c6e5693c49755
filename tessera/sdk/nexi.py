"""Client for Nexi's B2B SoftPOS channel (the ``nexi-softpos`` profile), as documented.

Every call goes over mutual TLS with the app's developer certificate:

- ``POST {prefix}/appenrollment/token``: ``grant_type=client_credentials, client_id,
  client_secret`` (form) → ``{access_token, token_type, expires_in: 3600}``, cached;
- ``GET  {prefix}/par/jwks.json``: the platform's encryption keys (cached 5 minutes);
- ``POST {prefix}/as/par``: ``Authorization: Bearer``, form ``client_assertion,
  client_id, scope, redirect_uri`` (+ ``state``, PKCE) → ``201 {request_uri, expires_in}``;
- ``GET  {prefix}/as/authorize?client_id&request_uri``: where the merchant signs in;
- ``POST {prefix}/as/token``: ``grant_type=authorization_code`` → the enrollment tokens.

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
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlencode

import httpx

from ._http import json_object, parse_bearer_token
from .assertion import build_nested_assertion
from .auth import TokenAuth
from .cache import CachedToken, TokenCache
from .errors import TokenError, error_from_response

__all__ = ["NexiSoftPOSClient", "ClientAssertion"]

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JWKS_TTL = 300.0
#: The provider's maximum (support page: at most 15 minutes) and the reference's lifetime.
MAX_ASSERTION_LIFETIME = 900
DEFAULT_ASSERTION_LIFETIME = 500
DEFAULT_TOKEN_LIFETIME = 3600  # "The token duration is one hour (3600 s)"
#: The reference backend asks for a new token after 75 % of ``expires_in``.
RENEW_AT_FRACTION = 0.75


class ClientAssertion(str):
    """A client assertion (the compact JWE) that can build a fresh copy of itself, with a
    new ``jti`` and new times: :meth:`NexiSoftPOSClient.par` uses it to retry."""

    renew: Callable[[], ClientAssertion]

    def __new__(cls, value: str, renew: Callable[[], ClientAssertion]) -> ClientAssertion:
        obj = super().__new__(cls, value)
        obj.renew = renew
        return obj


class NexiSoftPOSClient(TokenAuth):
    """The B2B SoftPOS enrollment calls of one app (``client_id``) in one environment.

    ``cert``/``key``: the developer certificate (PEM, as ``openssl pkcs7 -print_certs``
    writes it) and its unencrypted private key. ``verify``: True (public CAs), a CA file
    or directory, False, or an ``ssl.SSLContext`` (the developer certificate is loaded
    into it). ``audience``: the ``aud`` of client assertions, by default ``base_url``.
    ``transport``/``async_transport``: httpx transports to use instead of the network
    (tests, ``httpx.MockTransport``).
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        cert: str | Path,
        key: str | Path,
        *,
        verify: str | Path | bool | ssl.SSLContext = True,
        cache: TokenCache | None = None,
        prefix: str = "/softpos",
        audience: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(cache=cache)
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.audience = audience if audience is not None else self.base_url
        self._cert_pem = Path(cert).read_bytes()
        self._key_pem = Path(key).read_bytes()
        self._ssl = _ssl_context(verify, cert, key)
        self._timeout = httpx.Timeout(timeout)
        self._async_transport = async_transport
        self._http = httpx.Client(verify=self._ssl, timeout=self._timeout, transport=transport)
        self._jwks: dict[str, Any] | None = None
        self._jwks_at = 0.0
        self._jwks_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"NexiSoftPOSClient({self.base_url!r}, client_id={self.client_id!r})"

    # ------------------------------------------------------------------ plumbing
    def url(self, path: str) -> str:
        """``{base_url}{prefix}{path}``."""
        return f"{self.base_url}{self.prefix}{path}"

    @property
    def http(self) -> httpx.Client:
        """The mTLS ``httpx.Client`` the blocking calls use (e.g. to add event hooks)."""
        return self._http

    def close(self) -> None:
        """Close the connections (the token stays in the cache)."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ token
    @property
    def cache_key(self) -> Hashable:
        return ("nexi-softpos", self.base_url + self.prefix, self.client_id)

    def _token_form(self) -> dict[str, str]:
        return {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self._client_secret}

    def _fetch(self) -> CachedToken:
        started = self.cache.clock()
        response = self._http.post(self.url("/appenrollment/token"), data=self._token_form(), headers=FORM)
        return _parse_token(response, started)

    async def _afetch(self) -> CachedToken:
        # One short-lived AsyncClient per fetch: a token is fetched about once an hour, and
        # an AsyncClient is tied to the event loop that opened it, whereas this client may
        # be used from several loops.
        started = self.cache.clock()
        client = httpx.AsyncClient(verify=self._ssl, timeout=self._timeout, transport=self._async_transport)
        try:
            response = await client.post(self.url("/appenrollment/token"), data=self._token_form(), headers=FORM)
        finally:
            if self._async_transport is None:  # a given transport belongs to the caller
                await client.aclose()
        return _parse_token(response, started)

    # ------------------------------------------------------------------ JWKS
    def jwks(self, *, refresh: bool = False) -> dict[str, Any]:
        """The platform's JWKS (``{"keys": [...]}``), cached 5 minutes; ``refresh=True`` refetches."""
        with self._jwks_lock:
            if refresh or self._jwks is None or time.monotonic() - self._jwks_at >= JWKS_TTL:
                response = self._http.get(self.url("/par/jwks.json"))
                if response.status_code != 200:
                    raise error_from_response(response)
                body = json_object(response)
                if not isinstance(body.get("keys"), list):
                    raise TokenError(response.status_code, "invalid_response", "the JWKS has no keys array")
                self._jwks, self._jwks_at = body, time.monotonic()
            return copy.deepcopy(self._jwks)

    def encryption_key(self, *, refresh: bool = False, choice: str = "random") -> dict[str, Any]:
        """The key client assertions are encrypted to: a ``use=enc`` RSA key of the JWKS, picked
        at random as the reference backend does (``choice="first"``: the first, as Nexi's
        demo backend does)."""
        if choice not in ("random", "first"):
            raise ValueError('choice must be "random" or "first"')
        keys = [
            jwk
            for jwk in self.jwks(refresh=refresh)["keys"]
            if isinstance(jwk, dict) and jwk.get("use", "enc") == "enc" and jwk.get("kty") == "RSA"
        ]
        if not keys:
            raise TokenError(200, "invalid_response", "the JWKS has no use=enc key")
        return secrets.choice(keys) if choice == "random" else keys[0]

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
    ) -> str:
        """A fresh client assertion for the PAR call, signed with the developer certificate's
        key and encrypted to a key of the platform's JWKS. By default exactly what Nexi's
        reference backend sends (see the module docstring); ``device_id`` is the
        ``app_deviceid`` that Nexi's mobile SDK hands to the app (left out when None).
        ``username_claim="username_merchant"``, ``enc="A256GCM"``, ``minimal_headers=False``
        and ``key_choice="first"`` give the older, documented shape.
        The result is a :class:`ClientAssertion` (a ``str``) that :meth:`par` can renew."""
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
        now = int(time.time())
        claims: dict[str, Any] = {
            "appId": self.client_id,
            "pointOfSale": point_of_sale,
            "terminal_ids": tids,
            username_claim: username_merchant,
        }
        if device_id is not None:
            claims["app_deviceid"] = device_id
        claims.update(
            {
                "iss": self.client_id,
                "sub": self.client_id,
                "aud": self.audience,
                "iat": now,
                "exp": now + lifetime,
                "jti": str(uuid.uuid4()),
            }
        )
        value = build_nested_assertion(
            claims,
            signing_key_pem=self._key_pem,
            certificate_pem=self._cert_pem,
            encryption_jwk=self.encryption_key(choice=key_choice),
            alg=alg,
            enc=enc,
            minimal_headers=minimal_headers,
        )

        def renew() -> ClientAssertion:
            return self.client_assertion(
                point_of_sale=point_of_sale,
                terminal_ids=tids,  # type: ignore[return-value]
                username_merchant=username_merchant,
                device_id=device_id,
                lifetime=lifetime,
                username_claim=username_claim,
                alg=alg,
                enc=enc,
                minimal_headers=minimal_headers,
                key_choice=key_choice,
            )

        return ClientAssertion(value, renew)

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
            form = {
                "client_assertion": str(assertion),
                "client_id": self.client_id,
                "scope": scope,
                "redirect_uri": redirect_uri,
            }
            if state is not None:
                form["state"] = state
            if code_challenge is not None:
                form["code_challenge"] = code_challenge
                form["code_challenge_method"] = "S256"
            response = self._http.post(
                self.url("/as/par"), data=form, headers={**FORM, "Authorization": f"Bearer {token}"}
            )
            if response.status_code in (200, 201):
                body = json_object(response)
                if not isinstance(body.get("request_uri"), str) or not _is_int(body.get("expires_in")):
                    raise TokenError(
                        response.status_code, "invalid_response", "the PAR answer lacks request_uri or expires_in"
                    )
                return body
            error = error_from_response(response)
            if attempt == 1 and response.status_code == 401 and error.error == "invalid_token":
                self.invalidate(token)
                if isinstance(assertion, ClientAssertion):
                    assertion = assertion.renew()
                continue
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    def authorize_url(self, request_uri: str) -> str:
        """Where the merchant signs in to finish the enrollment."""
        return self.url("/as/authorize") + "?" + urlencode({"client_id": self.client_id, "request_uri": request_uri})

    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str | None = None) -> dict[str, Any]:
        """Exchange the authorization code from the redirect → ``{access_token, token_type,
        expires_in, scope, id_token?}`` (the merchant's enrollment tokens; not cached)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client_id,
            "client_secret": self._client_secret,
        }
        if code_verifier is not None:
            form["code_verifier"] = code_verifier
        response = self._http.post(self.url("/as/token"), data=form, headers=FORM)
        if response.status_code != 200:
            raise error_from_response(response)
        body = json_object(response)
        if not isinstance(body.get("access_token"), str) or not body["access_token"]:
            raise TokenError(response.status_code, "invalid_response", "the token answer has no access_token")
        return body


# ---------------------------------------------------------------------- helpers
def _ssl_context(verify: str | Path | bool | ssl.SSLContext, cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """One TLS context for every call (so TLS sessions can be resumed), with the certificate."""
    if isinstance(verify, ssl.SSLContext):
        ctx = verify
    elif verify is True:
        try:
            import certifi

            ctx = ssl.create_default_context(cafile=certifi.where())
        except ImportError:  # pragma: no cover - httpx depends on certifi
            ctx = ssl.create_default_context()
    elif verify is False:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        path = Path(verify)
        ctx = (
            ssl.create_default_context(capath=str(path))
            if path.is_dir()
            else ssl.create_default_context(cafile=str(path))
        )
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_token(response: httpx.Response, started: float) -> CachedToken:
    """A client_credentials answer → CachedToken (expiry counted from when the request left),
    renewed after 75 % of its life as the reference backend renews it."""
    token = parse_bearer_token(response, started, default_lifetime=DEFAULT_TOKEN_LIFETIME)
    return dataclasses.replace(token, renew_at=started + RENEW_AT_FRACTION * (token.expires_at - started))
