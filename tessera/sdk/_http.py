"""Plumbing shared by the HTTP token clients (axept, MobilePay, B2BINPAY): one TLS context
and one blocking ``httpx.Client`` per client, a short-lived ``httpx.AsyncClient`` per
asynchronous fetch, and the JSON helpers."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import httpx

from .auth import TokenAuth
from .cache import CachedToken, TokenCache
from .errors import TokenError, error_from_response

Verify = str | Path | bool | ssl.SSLContext


def ssl_context(verify: Verify) -> ssl.SSLContext:
    """One TLS context for every call of a client (so that TLS sessions can be resumed).

    ``True``: the public CAs (certifi); ``False``: no verification; a path: a CA file or
    directory; an ``ssl.SSLContext``: used as it is."""
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
    path = Path(verify)
    return (
        ssl.create_default_context(capath=str(path)) if path.is_dir() else ssl.create_default_context(cafile=str(path))
    )


class HTTPTokenClient(TokenAuth):
    """A :class:`TokenAuth` that fetches its tokens over HTTP(S) from ``base_url``.

    ``transport``/``async_transport``: httpx transports to use instead of the network
    (tests, ``httpx.MockTransport``)."""

    def __init__(
        self,
        base_url: str,
        *,
        cache: TokenCache | None,
        verify: Verify,
        timeout: float,
        transport: httpx.BaseTransport | None,
        async_transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        super().__init__(cache=cache)
        self.base_url = base_url.rstrip("/")
        self._ssl = ssl_context(verify)
        self._timeout = httpx.Timeout(timeout)
        self._async_transport = async_transport
        self._http = httpx.Client(verify=self._ssl, timeout=self._timeout, transport=transport)

    @property
    def http(self) -> httpx.Client:
        """The ``httpx.Client`` the blocking token calls use (e.g. to add event hooks)."""
        return self._http

    def close(self) -> None:
        """Close the connections (the token stays in the cache)."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._http.post(url, **kwargs)

    async def _apost(self, url: str, **kwargs: Any) -> httpx.Response:
        # One short-lived AsyncClient per fetch: a token is fetched rarely, and an
        # AsyncClient is tied to the event loop that opened it, whereas this client may be
        # used from several loops.
        client = httpx.AsyncClient(verify=self._ssl, timeout=self._timeout, transport=self._async_transport)
        try:
            return await client.post(url, **kwargs)
        finally:
            if self._async_transport is None:  # a given transport belongs to the caller
                await client.aclose()


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
