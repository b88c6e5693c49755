"""Client for B2BINPAY API v2 authentication (the ``b2binpay`` profile), as documented.

- Login: ``POST {base_url}{prefix}/token/`` with JSON:API (``application/vnd.api+json``)
  ``{"data": {"type": "auth-token", "attributes": {"login", "password"}}}`` →
  ``data.attributes{access, refresh, access_expired_at, refresh_expired_at,
  is_2fa_confirmed}`` and ``meta{time, sign}``. The client checks
  ``sign == hex(HMAC-SHA256(SHA-256(login + password), meta.time + refresh))`` in constant
  time and refuses (:class:`TokenError` ``invalid_signature``) an answer that does not
  verify: nothing from it is cached or kept.
- Refresh: ``POST {base_url}{prefix}/token/refresh/`` with
  ``{"data": {"type": "auth-token", "attributes": {"refresh"}}}`` → the same attributes,
  without ``meta``; accepted wrapped in ``data`` (as the document's prose says) or bare
  (as its example shows).

When the access token is due, the client refreshes it first, and logs in again only when
there is no refresh token, it has expired, or the server refuses it (401 / code 2007).

Refresh tokens are single-use, and presenting a used one makes the server revoke the
whole family. The refresh token is therefore held in one slot per (cache, cache key),
shared by every client of that login on that cache, and *taken* out of it — atomically —
by the fetch that uses it: two fetches can never present the same refresh token, even
outside the cache's single flight (a re-entrant fetch, a cancelled leader). The slot
outlives the cached access token, which the cache evicts before it expires. The refresh
token is also in ``CachedToken.data["refresh"]``.

``base_url``: a URL, or ``"production"`` (``https://api.b2binpay.com``) or ``"sandbox"``
(``https://api-sandbox.b2binpay.com``); the paths are the provider's own, at the root
(``prefix=""``), as a tessera sandbox serves them; tessera's default server serves them under
``/b2binpay``: pass ``prefix="/b2binpay"`` there.

Retries (:mod:`tessera.sdk.retry`): the login is retried on 429, 503 and network failures;
the refresh only when the connection was never made (the request never left): its token is
single-use, so a refresh that may have reached the server is never sent again. A refused
login (400, code 2006) raises :class:`~tessera.sdk.errors.AuthenticationError`.

The client is an ``httpx.Auth`` (``Authorization: Bearer <access>``) for the B2BINPAY API.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import weakref
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import httpx

from ._http import HTTPTokenClient, Retry, Verify, json_object, parse_utc
from .cache import CachedToken, TokenCache
from .errors import TokenError, TransportError, clean, error_from_response, provider_error, retry_after_of
from .providers import B2BINPAY
from .retry import DEFAULT_RETRY

__all__ = ["B2BinPayClient", "response_sign"]

MEDIA = "application/vnd.api+json"
HEADERS = {"Content-Type": MEDIA, "Accept": MEDIA}
REFRESH_MARGIN = 5.0  # do not present a refresh token that expires within this many seconds
REFUSED_REFRESH_CODE = "2007"
LOGIN_PATH = B2BINPAY.paths["login"]
REFRESH_PATH = B2BINPAY.paths["refresh"]


def response_sign(login: str, password: str, time: str, refresh: str) -> str:
    """The document's ``meta.sign``: hex HMAC-SHA256, key SHA-256(login + password) (raw
    digest), message ``meta.time + refresh``."""
    key = hashlib.sha256((login + password).encode("utf-8")).digest()
    return hmac.new(key, (time + refresh).encode("utf-8"), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------- refresh slots
@dataclass
class _Slot:
    refresh: str | None = None
    expires_at: float | None = None  # on the cache's clock; None: not said
    offset: float = 0.0  # server clock - cache clock, measured at the last login
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


_slots: weakref.WeakKeyDictionary[TokenCache, dict[Hashable, _Slot]] = weakref.WeakKeyDictionary()
_slots_lock = threading.Lock()


def _slot(cache: TokenCache, key: Hashable) -> _Slot:
    with _slots_lock:
        return _slots.setdefault(cache, {}).setdefault(key, _Slot())


class _Refused(Exception):
    """The server refused the refresh token: log in again."""


class B2BinPayClient(HTTPTokenClient):
    """The access token of one API user (``login``/``password``)."""

    def __init__(
        self,
        base_url: str,
        login: str,
        password: str,
        *,
        prefix: str = B2BINPAY.paths["prefix"],
        cache: TokenCache | None = None,
        verify: Verify = True,
        timeout: float = 10.0,
        retry: Retry = DEFAULT_RETRY,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not isinstance(login, str) or not login or not isinstance(password, str) or not password:
            raise ValueError("login and password must be non-empty strings")
        super().__init__(
            B2BINPAY.base_url(base_url),
            cache=cache,
            verify=verify,
            timeout=timeout,
            retry=retry,
            transport=transport,
            async_transport=async_transport,
        )
        self.login = login
        self._password = password
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""

    def __repr__(self) -> str:
        return f"B2BinPayClient({self.base_url!r}, login={self.login!r})"

    def url(self, path: str) -> str:
        """``{base_url}{prefix}{path}``."""
        return f"{self.base_url}{self.prefix}{path}"

    @property
    def cache_key(self) -> Hashable:
        return ("b2binpay", self.base_url + self.prefix, self.login)

    @property
    def _slot(self) -> _Slot:
        return _slot(self.cache, self.cache_key)

    def reset(self) -> None:
        """Forget the access token and the refresh token: the next call logs in."""
        slot = self._slot
        with slot.lock:
            slot.refresh = slot.expires_at = None
        self.invalidate()

    # ------------------------------------------------------------------ fetching
    def _fetch(self) -> CachedToken:
        taken = self._take_refresh()
        if taken is not None:
            started = self.cache.clock()
            try:
                response = self._post(
                    self.url(REFRESH_PATH), idempotent=False, content=_refresh_body(taken), headers=HEADERS
                )
            except TransportError as e:
                self._transport_failed(taken, e)
                raise
            try:
                return self._after_refresh(taken, response, started)
            except _Refused:
                pass
        started = self.cache.clock()
        response = self._post(self.url(LOGIN_PATH), content=self._login_body(), headers=HEADERS)
        return self._after_login(response, started, self.cache.clock())

    async def _afetch(self) -> CachedToken:
        taken = self._take_refresh()
        if taken is not None:
            started = self.cache.clock()
            try:
                response = await self._apost(
                    self.url(REFRESH_PATH), idempotent=False, content=_refresh_body(taken), headers=HEADERS
                )
            except TransportError as e:
                self._transport_failed(taken, e)
                raise
            try:
                return self._after_refresh(taken, response, started)
            except _Refused:
                pass
        started = self.cache.clock()
        response = await self._apost(self.url(LOGIN_PATH), content=self._login_body(), headers=HEADERS)
        return self._after_login(response, started, self.cache.clock())

    # ------------------------------------------------------------------ the refresh slot
    def _take_refresh(self) -> str | None:
        """The remembered refresh token, removed from the slot (None if there is none usable)."""
        now = self.cache.clock()
        slot = self._slot
        with slot.lock:
            token, expires_at = slot.refresh, slot.expires_at
            slot.refresh = slot.expires_at = None
        if token is None or (expires_at is not None and now >= expires_at - REFRESH_MARGIN):
            return None
        return token

    def _put_back(self, token: str) -> None:
        """Return an unused refresh token to the slot (unless a newer one arrived meanwhile)."""
        slot = self._slot
        with slot.lock:
            if slot.refresh is None:
                slot.refresh = token

    def _transport_failed(self, token: str, error: TransportError) -> None:
        # Only when the request surely never reached the server is the token still unused.
        if not error.request_sent:
            self._put_back(token)

    def _keep(self, refresh: str, refresh_expires_at: float | None, offset: float | None) -> None:
        slot = self._slot
        with slot.lock:
            slot.refresh, slot.expires_at = refresh, refresh_expires_at
            if offset is not None:
                slot.offset = offset

    # ------------------------------------------------------------------ answers
    def _login_body(self) -> bytes:
        return json.dumps(
            {"data": {"type": "auth-token", "attributes": {"login": self.login, "password": self._password}}}
        ).encode("utf-8")

    def _after_login(self, response: httpx.Response, started: float, finished: float) -> CachedToken:
        if response.status_code != 200:
            raise _error(response)
        body = json_object(response)
        attrs = _attributes(body.get("data"), response.status_code)
        meta = body.get("meta")
        if not isinstance(meta, dict) or not isinstance(meta.get("time"), str) or not isinstance(meta.get("sign"), str):
            raise TokenError(
                response.status_code, "invalid_signature", "the login answer has no meta.time and meta.sign"
            )
        expected = response_sign(self.login, self._password, meta["time"], attrs["refresh"])
        if not hmac.compare_digest(expected.encode("ascii"), meta["sign"].strip().lower().encode("utf-8")):
            raise TokenError(
                response.status_code, "invalid_signature", "meta.sign does not verify: the answer is refused"
            )
        server_time = parse_utc(meta["time"])
        if server_time is None:
            raise TokenError(response.status_code, "invalid_response", "meta.time is not a UTC date and time")
        offset = server_time - (started + finished) / 2
        return self._token(attrs, offset, response.status_code)

    def _after_refresh(self, taken: str, response: httpx.Response, started: float) -> CachedToken:
        if response.status_code == 200:
            body = json_object(response)
            data = body.get("data") if isinstance(body.get("data"), dict) else body  # wrapped or bare
            return self._token(_attributes(data, 200), None, 200)
        error = _error(response)
        if response.status_code == 401 or error.error == REFUSED_REFRESH_CODE:
            raise _Refused()
        if response.status_code == 429:  # throttled before the token was looked at
            self._put_back(taken)
        raise error

    def _token(self, attrs: dict[str, Any], offset: float | None, status: int) -> CachedToken:
        if offset is None:
            slot = self._slot
            with slot.lock:
                offset_used = slot.offset
        else:
            offset_used = offset
        access_at = parse_utc(attrs.get("access_expired_at"))
        if access_at is None:
            raise TokenError(status, "invalid_response", "access_expired_at is not a UTC date and time")
        refresh_at = parse_utc(attrs.get("refresh_expired_at"))
        expires_at = access_at - offset_used
        refresh_expires_at = refresh_at - offset_used if refresh_at is not None else None
        self._keep(attrs["refresh"], refresh_expires_at, offset)
        data = {k: v for k, v in attrs.items() if k != "access"}
        return CachedToken(attrs["access"], expires_at, data)


def _refresh_body(token: str) -> bytes:
    return json.dumps({"data": {"type": "auth-token", "attributes": {"refresh": token}}}).encode("utf-8")


def _attributes(data: Any, status: int) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("attributes"), dict):
        raise TokenError(status, "invalid_response", "the answer has no data.attributes")
    attrs = data["attributes"]
    for name in ("access", "refresh"):
        if not isinstance(attrs.get(name), str) or not attrs[name]:
            raise TokenError(status, "invalid_response", f"the answer has no {name} token")
    checked: dict[str, Any] = attrs
    return checked


def _error(response: httpx.Response) -> TokenError:
    """A JSON:API ``errors[]`` answer → ProviderError(status, code, detail) (400 2006:
    AuthenticationError; 429: RateLimited with the ``Retry-After``)."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code = first.get("code")
        detail = first.get("detail")
        code = str(code) if isinstance(code, (str, int)) and not isinstance(code, bool) else "error"
        return provider_error(response.status_code, code[:60], clean(detail), retry_after=retry_after_of(response))
    return error_from_response(response)
