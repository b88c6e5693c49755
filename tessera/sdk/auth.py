"""``TokenAuth``: the base of every SDK client, an ``httpx.Auth`` backed by a :class:`TokenCache`.

A subclass says how to get a token (``_fetch`` and ``async _afetch``) and under which
cache key; this base class then makes ``httpx.Client(auth=client)`` and
``httpx.AsyncClient(auth=client)`` send ``Authorization: Bearer <token>`` on every
request. When the API answers 401, the cached token is dropped (only if it is still the
one that was refused) and the request is retried once with a fresh token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Generator, Hashable

import httpx

from .cache import CachedToken, TokenCache, default_cache
from .errors import SDKError

log = logging.getLogger("tessera.sdk.token")

__all__ = ["TokenAuth"]


class TokenAuth(httpx.Auth):
    """Bearer authentication with cached, single-flight, auto-refreshed tokens.

    Subclasses implement :meth:`_fetch`, :meth:`_afetch` and :attr:`cache_key`.
    """

    def __init__(self, *, cache: TokenCache | None = None) -> None:
        self.cache = cache if cache is not None else default_cache()

    # ------------------------------------------------------------------ to implement
    @property
    def cache_key(self) -> Hashable:
        """The key of this client's token in the cache."""
        raise NotImplementedError

    def _fetch(self) -> CachedToken:
        """Ask the authorization server for a new token (blocking)."""
        raise NotImplementedError

    async def _afetch(self) -> CachedToken:
        """Ask the authorization server for a new token (asyncio)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ tokens
    def cached_token(self) -> CachedToken:
        """The cached token, fetched (once, whoever else asks at the same time) if needed."""
        return self.cache.get(self.cache_key, self._logged_fetch)

    async def acached_token(self) -> CachedToken:
        """:meth:`cached_token` for asyncio."""
        return await self.cache.aget(self.cache_key, self._alogged_fetch)

    def _logged_fetch(self) -> CachedToken:
        started = time.monotonic()
        try:
            token = self._fetch()
        except SDKError as e:
            log.warning("%s: no token: %s", type(self).__name__, e)
            raise
        log.info("%s: new token (%.0f ms)", type(self).__name__, (time.monotonic() - started) * 1000)
        return token

    async def _alogged_fetch(self) -> CachedToken:
        started = time.monotonic()
        try:
            token = await self._afetch()
        except SDKError as e:
            log.warning("%s: no token: %s", type(self).__name__, e)
            raise
        log.info("%s: new token (%.0f ms)", type(self).__name__, (time.monotonic() - started) * 1000)
        return token

    def token(self) -> str:
        """A fresh access token."""
        return self.cached_token().access_token

    async def atoken(self) -> str:
        """A fresh access token (asyncio)."""
        return (await self.acached_token()).access_token

    def invalidate(self, token: str | None = None) -> None:
        """Drop the cached token (only if it is still ``token``, when given)."""
        self.cache.invalidate(self.cache_key, token=token)

    # ------------------------------------------------------------------ httpx.Auth
    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()  # buffer a streamed body so that it can be sent again
        token = self.token()
        _set_bearer(request, token)
        response = yield request
        if response.status_code == 401:
            log.info("%s: the API refused the token (401): fetching a new one", type(self).__name__)
            self.invalidate(token)
            _set_bearer(request, self.token())
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        token = await self.atoken()
        _set_bearer(request, token)
        response = yield request
        if response.status_code == 401:
            log.info("%s: the API refused the token (401): fetching a new one", type(self).__name__)
            self.invalidate(token)
            _set_bearer(request, await self.atoken())
            yield request


def _set_bearer(request: httpx.Request, token: str) -> None:
    request.headers["Authorization"] = f"Bearer {token}"
