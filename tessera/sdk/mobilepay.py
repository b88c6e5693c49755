"""Client for MobilePay PoS integrator authentication (the ``mobilepay`` profile), as documented.

``POST {base_url}{path}`` (``/integrator-authentication/connect/token``) with
``Authorization: Basic base64(client_id:client_secret)`` and the form
``grant_type=client_credentials`` [``&merchant_vat=DK12345678``], exactly as the
document's curl → ``{access_token, expires_in: 3700, token_type: "Bearer",
scope: "integrator_scope"}``. The token is cached per (token endpoint, client_id,
merchant_vat).

The client is an ``httpx.Auth`` for the PoS API: it sends ``Authorization: Bearer`` and,
when its token is not bound to one merchant (no ``merchant_vat``), the merchant's VAT
number in ``x-mobilepay-merchant-vat-number`` (MobilePay PoS V10's header) taken from
``vat_for_request`` — a fixed VAT number, or a callable that picks it per request.
A request that already carries the header keeps its own. Every API call also carries
``x-ibm-client-id: <client_id>``, as every PoS V10 call does.

``base_url``: a URL, or ``"sandbox"`` (``https://api.sandbox.mobilepay.dk``) or
``"production"`` (``https://api.mobilepay.dk``); the path is the provider's own, which a
tessera sandbox and tessera's default server both serve. The token call is idempotent and is
retried as ``retry`` says (:mod:`tessera.sdk.retry`).

The token itself is opaque to the client (MobilePay's are RS256 JWTs; tessera's ``mobilepay``
profile issues the same): only ``expires_in`` is read, never the token's claims.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable, Generator, Hashable

import httpx

from ._http import HTTPTokenClient, Retry, Verify, parse_bearer_token
from .cache import CachedToken, TokenCache
from .providers import MOBILEPAY
from .retry import DEFAULT_RETRY

__all__ = ["MobilePayClient", "CLIENT_ID_HEADER", "VAT_HEADER", "VAT_PATTERN"]

VAT_HEADER = "x-mobilepay-merchant-vat-number"
CLIENT_ID_HEADER = "x-ibm-client-id"
VAT_PATTERN = re.compile(r"^(DK|FI)\d{8}$")
DEFAULT_TOKEN_LIFETIME = 3700  # the document's expires_in
FORM = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}

VatForRequest = str | Callable[[httpx.Request], "str | None"]


class MobilePayClient(HTTPTokenClient):
    """The integrator token of one client (``client_id``/``client_secret``), optionally for
    one merchant (``merchant_vat``).

    ``vat_for_request``: for a token without ``merchant_vat``, the VAT number to send in
    ``x-mobilepay-merchant-vat-number`` on each API call — a string, or a callable
    ``(httpx.Request) -> str | None``. ``vat_header`` renames the header.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        merchant_vat: str | None = None,
        vat_for_request: VatForRequest | None = None,
        vat_header: str = VAT_HEADER,
        path: str = MOBILEPAY.paths["token"],
        cache: TokenCache | None = None,
        verify: Verify = True,
        timeout: float = 10.0,
        retry: Retry = DEFAULT_RETRY,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not isinstance(client_id, str) or not client_id or not isinstance(client_secret, str) or not client_secret:
            raise ValueError("client_id and client_secret must be non-empty strings")
        if ":" in client_id:
            raise ValueError("client_id cannot contain ':' (HTTP Basic)")
        if merchant_vat is not None and not VAT_PATTERN.fullmatch(merchant_vat):
            raise ValueError("merchant_vat must be DK or FI followed by 8 digits")
        if isinstance(vat_for_request, str) and not VAT_PATTERN.fullmatch(vat_for_request):
            raise ValueError("vat_for_request must be DK or FI followed by 8 digits")
        super().__init__(
            MOBILEPAY.base_url(base_url),
            cache=cache,
            verify=verify,
            timeout=timeout,
            retry=retry,
            transport=transport,
            async_transport=async_transport,
        )
        self.client_id = client_id
        self._client_secret = client_secret
        self.merchant_vat = merchant_vat
        self.vat_for_request = vat_for_request
        self.vat_header = vat_header
        self.path = "/" + path.lstrip("/")

    def __repr__(self) -> str:
        return f"MobilePayClient({self.base_url!r}, client_id={self.client_id!r}, merchant_vat={self.merchant_vat!r})"

    @property
    def url(self) -> str:
        """The token endpoint, ``{base_url}{path}``."""
        return self.base_url + self.path

    @property
    def cache_key(self) -> Hashable:
        return ("mobilepay", self.url, self.client_id, self.merchant_vat)

    # ------------------------------------------------------------------ token
    def _form(self) -> dict[str, str]:
        form = {"grant_type": "client_credentials"}
        if self.merchant_vat is not None:
            form["merchant_vat"] = self.merchant_vat
        return form

    def _basic(self) -> httpx.BasicAuth:
        # The document's curl: base64("client_id:client_secret"), not form-encoded first.
        return httpx.BasicAuth(self.client_id, self._client_secret)

    def _fetch(self) -> CachedToken:
        started = self.cache.clock()
        return _parse(self._post(self.url, data=self._form(), headers=FORM, auth=self._basic()), started)

    async def _afetch(self) -> CachedToken:
        started = self.cache.clock()
        return _parse(await self._apost(self.url, data=self._form(), headers=FORM, auth=self._basic()), started)

    # ------------------------------------------------------------------ httpx.Auth
    def _add_vat(self, request: httpx.Request) -> None:
        if CLIENT_ID_HEADER not in request.headers:
            request.headers[CLIENT_ID_HEADER] = self.client_id
        if self.merchant_vat is not None or self.vat_for_request is None or self.vat_header in request.headers:
            return
        vat = self.vat_for_request if isinstance(self.vat_for_request, str) else self.vat_for_request(request)
        if vat is not None:
            if not isinstance(vat, str) or not VAT_PATTERN.fullmatch(vat):
                raise ValueError("vat_for_request gave a VAT number that is not DK or FI followed by 8 digits")
            request.headers[self.vat_header] = vat

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self._add_vat(request)
        yield from super().sync_auth_flow(request)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        self._add_vat(request)
        flow = super().async_auth_flow(request)
        response = None
        try:
            while True:
                request = await (flow.__anext__() if response is None else flow.asend(response))
                response = yield request
        except StopAsyncIteration:
            return


def _parse(response: httpx.Response, started: float) -> CachedToken:
    return parse_bearer_token(response, started, default_lifetime=DEFAULT_TOKEN_LIFETIME)
