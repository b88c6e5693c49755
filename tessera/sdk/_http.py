"""Plumbing shared by every HTTP client of the SDK: one TLS context and one blocking
``httpx.Client`` per client, a short-lived ``httpx.AsyncClient`` per asynchronous call,
retries (:mod:`tessera.sdk.retry`), the mapping of network failures to the SDK's errors
(:mod:`tessera.sdk.errors`), request logging, and the JSON helpers."""

from __future__ import annotations

import logging
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .auth import TokenAuth
from .cache import CachedToken, TokenCache
from .errors import (
    TLSError,
    TokenError,
    TransportError,
    error_from_response,
    retry_after_of,
    transport_error,
)
from .keys import PrivateKey, load_client_certificate
from .retry import RETRY_STATUSES, RetryPolicy, retry_policy

log = logging.getLogger("tessera.sdk.http")

#: ``verify=``: True (the public CAs), False (no check), a CA file or directory (path), the
#: CA as PEM bytes/text or ``x509.Certificate`` (list), or an ``ssl.SSLContext`` used as is.
Verify = str | Path | bool | bytes | x509.Certificate | list[x509.Certificate] | ssl.SSLContext
Retry = RetryPolicy | int | None


def ssl_context(verify: Verify) -> ssl.SSLContext:
    """One TLS context for every call of a client (so that TLS sessions can be resumed)."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is True:
        try:
            import certifi

            return ssl.create_default_context(cafile=certifi.where())
        except ImportError:  # pragma: no cover - httpx depends on certifi
            return ssl.create_default_context()
    if verify is False:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    cadata = _cadata(verify)
    try:
        if cadata is not None:
            return ssl.create_default_context(cadata=cadata)
        path = Path(verify)  # type: ignore[arg-type]
        if path.is_dir():
            return ssl.create_default_context(capath=str(path))
        return ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError) as e:
        raise ValueError(f"verify: cannot load the CA certificates ({e})") from None


def _cadata(verify: Verify) -> str | None:
    if isinstance(verify, x509.Certificate):
        verify = [verify]
    if isinstance(verify, list):
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in verify)
    if isinstance(verify, bytes):
        return verify.decode("ascii", "replace")
    if isinstance(verify, str) and "-----BEGIN" in verify:
        return verify
    return None


class HTTP:
    """The calls of one client: retries, error mapping and logging around httpx."""

    def __init__(
        self,
        ctx: ssl.SSLContext,
        *,
        timeout: float,
        retry: Retry,
        transport: httpx.BaseTransport | None,
        async_transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.ssl = ctx
        self.timeout = httpx.Timeout(timeout)
        self.retry = retry_policy(retry)
        self._async_transport = async_transport
        self.client = httpx.Client(verify=ctx, timeout=self.timeout, transport=transport)

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, url: str, *, idempotent: bool, **kwargs: Any) -> httpx.Response:
        """Send, retrying as :mod:`tessera.sdk.retry` says; an SDK error on a network failure."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.client.request(method, url, **kwargs)
            except (httpx.HTTPError, OSError) as e:
                error = transport_error(e, f"{method} {url}")
                wait = self._after_failure(error, attempt, idempotent, method, url)
                if wait is None:
                    raise error from e
                self.retry.sleep(wait)
                continue
            wait = self._after_response(response, attempt, idempotent, method, url)
            if wait is None:
                return response
            self.retry.sleep(wait)

    async def arequest(self, method: str, url: str, *, idempotent: bool, **kwargs: Any) -> httpx.Response:
        """:meth:`request` for asyncio (a short-lived ``AsyncClient``: an AsyncClient is tied
        to the event loop that opened it, whereas the client may be used from several loops)."""
        client = httpx.AsyncClient(verify=self.ssl, timeout=self.timeout, transport=self._async_transport)
        try:
            attempt = 0
            while True:
                attempt += 1
                try:
                    response = await client.request(method, url, **kwargs)
                except (httpx.HTTPError, OSError) as e:
                    error = transport_error(e, f"{method} {url}")
                    wait = self._after_failure(error, attempt, idempotent, method, url)
                    if wait is None:
                        raise error from e
                    await self.retry.async_sleep(wait)
                    continue
                wait = self._after_response(response, attempt, idempotent, method, url)
                if wait is None:
                    return response
                await self.retry.async_sleep(wait)
        finally:
            if self._async_transport is None:  # a given transport belongs to the caller
                await client.aclose()

    def _after_failure(
        self, error: TransportError, attempt: int, idempotent: bool, method: str, url: str
    ) -> float | None:
        log.debug("%s %s failed: %s", method, url, error)
        retryable = not isinstance(error, TLSError) and (idempotent or not error.request_sent)
        wait = self.retry.delay(attempt) if retryable else None
        if wait is not None:
            log.info("retrying %s %s in %.2f s (attempt %d of %d): %s", method, url, wait, attempt + 1,
                     self.retry.attempts, type(error).__name__)  # fmt: skip
        return wait

    def _after_response(
        self, response: httpx.Response, attempt: int, idempotent: bool, method: str, url: str
    ) -> float | None:
        status = response.status_code
        log.debug("%s %s -> %d", method, url, status)
        if status not in RETRY_STATUSES or not idempotent:
            return None
        retry_after = retry_after_of(response)
        wait = self.retry.delay(attempt, retry_after)
        if wait is not None:
            log.info("retrying %s %s in %.2f s (attempt %d of %d): HTTP %d", method, url, wait, attempt + 1,
                     self.retry.attempts, status)  # fmt: skip
        return wait


class HTTPTokenClient(TokenAuth):
    """A :class:`TokenAuth` that fetches its tokens over HTTP(S) from ``base_url``.

    ``transport``/``async_transport``: httpx transports to use instead of the network
    (tests, ``httpx.MockTransport``). ``retry``: a :class:`~tessera.sdk.retry.RetryPolicy`,
    a number of attempts, or None (no retry)."""

    def __init__(
        self,
        base_url: str,
        *,
        cache: TokenCache | None,
        verify: Verify,
        timeout: float,
        retry: Retry,
        transport: httpx.BaseTransport | None,
        async_transport: httpx.AsyncBaseTransport | None,
        client_certificate: tuple[list[x509.Certificate], PrivateKey] | None = None,
    ) -> None:
        super().__init__(cache=cache)
        self.base_url = base_url.rstrip("/")
        ctx = ssl_context(verify)
        if client_certificate is not None:
            load_client_certificate(ctx, *client_certificate)
        self._calls = HTTP(ctx, timeout=timeout, retry=retry, transport=transport, async_transport=async_transport)

    @property
    def http(self) -> httpx.Client:
        """The ``httpx.Client`` the blocking token calls use (e.g. to add event hooks)."""
        return self._calls.client

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context of every call (with the client certificate, for Nexi)."""
        return self._calls.ssl

    @property
    def retry(self) -> RetryPolicy:
        return self._calls.retry

    def close(self) -> None:
        """Close the connections (the token stays in the cache)."""
        self._calls.close()

    async def aclose(self) -> None:
        """:meth:`close` (asynchronous calls open their connections per call)."""
        self._calls.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _post(self, url: str, *, idempotent: bool = True, **kwargs: Any) -> httpx.Response:
        return self._calls.request("POST", url, idempotent=idempotent, **kwargs)

    async def _apost(self, url: str, *, idempotent: bool = True, **kwargs: Any) -> httpx.Response:
        return await self._calls.arequest("POST", url, idempotent=idempotent, **kwargs)

    def _get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._calls.request("GET", url, idempotent=True, **kwargs)

    async def _aget(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self._calls.arequest("GET", url, idempotent=True, **kwargs)


def json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise TokenError(response.status_code, "invalid_response", "the answer is not a JSON object")
    return body


def parse_bearer_token(response: httpx.Response, started: float, *, default_lifetime: int) -> CachedToken:
    """An RFC 6749 §5.1 token answer → CachedToken, its expiry counted from when the request left
    (``expires_in`` missing: the provider's documented lifetime, ``default_lifetime``)."""
    if response.status_code != 200:
        raise error_from_response(response)
    body = json_object(response)
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise TokenError(response.status_code, "invalid_response", "the token answer has no access_token")
    token_type = body.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenError(response.status_code, "invalid_response", "the token is not a Bearer token")
    expires_in = body.get("expires_in", default_lifetime)
    if not isinstance(expires_in, (int, float)) or isinstance(expires_in, bool) or expires_in < 0:
        raise TokenError(response.status_code, "invalid_response", "expires_in is not a number of seconds")
    data = {k: v for k, v in body.items() if k != "access_token"}
    return CachedToken(token, started + float(expires_in), data)


def parse_utc(value: Any) -> float | None:
    """An ISO-8601 UTC timestamp (``2020-12-29T05:42:11.925654Z``, ``...+00:00``) → epoch
    seconds; None when it is not one (a time without a zone is taken as UTC)."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        moment = datetime.fromisoformat(value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
