"""Client for axept® Cloud Connect authentication (the ``axept`` profile), as documented.

``POST {base_url}{path}`` with JSON ``{"merchantId": int, "keyId": int, "key": str}``
→ ``200 {"token": <JWT>, "expiresAt": "<UTC ISO-8601>Z"}``; 400 is a syntax error, 401
wrong credentials. The token is cached (shared :class:`TokenCache`) until shortly before
``expiresAt``, as the document recommends ("a thread-safe caching mechanism, which will
auto-evict the cached bearer token").

The default ``path`` is the provider's own, ``/v1/authenticate``, under the base URL that
axept's onboarding gives (the document names no host, so there is no environment name). A
tessera sandbox serves it at the root too; tessera's default server serves it under
``/axept``: pass ``path="/axept/v1/authenticate"`` there.

The call is idempotent (a new token each time), so it is retried on 429, 503 and network
failures as ``retry`` says (:mod:`tessera.sdk.retry`). 401 (and 400 ``invalid_client``)
raise :class:`~tessera.sdk.errors.AuthenticationError`, 400 :class:`~tessera.sdk.errors.ProviderError`.

The client is an ``httpx.Auth``: ``httpx.Client(auth=axept)`` sends the token to the
payment API as ``Authorization: Bearer``, and fetches a new one when it is refused.
"""

from __future__ import annotations

from collections.abc import Hashable
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from ._http import HTTPTokenClient, Retry, Verify, json_object, parse_utc
from .cache import CachedToken, TokenCache
from .errors import TokenError, clean, error_from_response, provider_error
from .providers import AXEPT
from .retry import DEFAULT_RETRY

__all__ = ["AxeptClient"]

JSON = {"Content-Type": "application/json", "Accept": "application/json"}


class AxeptClient(HTTPTokenClient):
    """The bearer token of one merchant key (``merchantId``, ``keyId``, ``key``)."""

    def __init__(
        self,
        base_url: str,
        merchant_id: int,
        key_id: int,
        key: str,
        *,
        path: str = AXEPT.paths["authenticate"],
        cache: TokenCache | None = None,
        verify: Verify = True,
        timeout: float = 10.0,
        retry: Retry = DEFAULT_RETRY,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        for name, value in (("merchant_id", merchant_id), ("key_id", key_id)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer")
        if not isinstance(key, str) or not key:
            raise ValueError("key must be a non-empty string")
        super().__init__(
            AXEPT.base_url(base_url),
            cache=cache,
            verify=verify,
            timeout=timeout,
            retry=retry,
            transport=transport,
            async_transport=async_transport,
        )
        self.merchant_id = merchant_id
        self.key_id = key_id
        self._key = key
        self.path = "/" + path.lstrip("/")

    def __repr__(self) -> str:
        return f"AxeptClient({self.base_url!r}, merchant_id={self.merchant_id}, key_id={self.key_id})"

    @property
    def url(self) -> str:
        """The authentication endpoint, ``{base_url}{path}``."""
        return self.base_url + self.path

    @property
    def cache_key(self) -> Hashable:
        return ("axept", self.url, self.merchant_id, self.key_id)

    def _body(self) -> dict[str, Any]:
        return {"merchantId": self.merchant_id, "keyId": self.key_id, "key": self._key}

    def _fetch(self) -> CachedToken:
        started = self.cache.clock()
        return _parse(self._post(self.url, json=self._body(), headers=JSON), started)

    async def _afetch(self) -> CachedToken:
        started = self.cache.clock()
        return _parse(await self._apost(self.url, json=self._body(), headers=JSON), started)


def _error(response: httpx.Response) -> TokenError:
    """axept's ``{"status", "error", "message"}`` (or whatever else came) → ProviderError; a
    bare 400/401 (the document gives no body) is named by its reason phrase."""
    err = error_from_response(response)
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    code, message = err.code, err.message
    if isinstance(body, dict) and not message:
        found = body.get("message") or body.get("Message")
        if isinstance(found, str) and found:
            message = clean(found)
    if code == "invalid_response" and response.status_code in (400, 401) and not isinstance(body, dict):
        code, message = response.reason_phrase or str(response.status_code), ""
    if (code, message) == (err.code, err.message):
        return err
    return provider_error(err.status, code, message, retry_after=err.retry_after)


def _field(body: dict[str, Any], name: str) -> Any:
    # The example answer is camelCase; the document's table capitalises the names.
    return body.get(name, body.get(name[:1].upper() + name[1:]))


def _parse(response: httpx.Response, started: float) -> CachedToken:
    if response.status_code != 200:
        raise _error(response)
    body = json_object(response)
    token = _field(body, "token")
    if not isinstance(token, str) or not token:
        raise TokenError(response.status_code, "invalid_response", "the answer has no token")
    expires_at = parse_utc(_field(body, "expiresAt"))
    if expires_at is None:
        raise TokenError(response.status_code, "invalid_response", "expiresAt is not a UTC date and time")
    # expiresAt is on the provider's clock; count the lifetime from its Date header when
    # there is one, so that a POS whose clock is off still refreshes in time.
    server_now = _date(response)
    if server_now is not None:
        expires_at = started + (expires_at - server_now)
    return CachedToken(token, expires_at, {"expiresAt": _field(body, "expiresAt")})


def _date(response: httpx.Response) -> float | None:
    value = response.headers.get("date")
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
