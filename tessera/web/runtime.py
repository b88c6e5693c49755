"""What every route needs: settings, the core, the peer certificate, and the one error path.

``endpoint`` wraps a handler so that any error raised below it is rendered in one place
(``tessera.web.errors``), in the profile's own shape.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from tessera.config import Settings
from tessera.core.context import Core
from tessera.core.ratelimit import (Attempt, FallbackFailureLimiter, MemoryFailureLimiter, MemoryRateLimiter,
                                   SplitFailureLimiter, describe, guard)
from tessera.errors import InvalidClient, MethodNotAllowed, OAuthError, SlowDown
from tessera.web.errors import NO_STORE, Renderer, as_oauth_error, oauth_error_response
from tessera.web.mtls import MTLSConfig, MTLSExtractor, PeerCertificate
from tessera.web.observability import count_token_issued
from tessera.web.responses import JSONResponse

#: The per-address budget of the endpoints that write for unauthenticated callers (``endpoint(writes=True)``).
UNAUTHENTICATED_WRITES = "unauthenticated-writes"
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@dataclass
class Runtime:
    settings: Settings
    core: Core
    extractor: MTLSExtractor = field(init=False)
    counters: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.settings
        self.extractor = MTLSExtractor(MTLSConfig(mode=s.mtls_mode, header=s.mtls_header, trusted_proxies=tuple(s.trusted_proxies)))
        per_credential = MemoryFailureLimiter(max_failures=s.login_max_failures, window=s.login_failure_window,
                                              lockout=s.login_lockout)
        per_address = MemoryFailureLimiter(max_failures=s.login_max_failures_per_address, window=s.login_failure_window,
                                           lockout=s.login_lockout)
        if s.redis_url:  # several instances share the failure counters and locks (issue 5)
            from tessera.storage.base import StoreUnavailable
            from tessera.storage.redis_limits import RedisFailureLimiter

            redis = getattr(self.core.store, "redis", None)
            shared_credential = RedisFailureLimiter.from_settings(s, redis)
            shared_address = RedisFailureLimiter.from_settings(s, redis)
            shared_address.max_failures = s.login_max_failures_per_address
            per_credential = FallbackFailureLimiter(shared_credential, per_credential, unavailable=(StoreUnavailable,))
            per_address = FallbackFailureLimiter(shared_address, per_address, unavailable=(StoreUnavailable,))
        self.failures = SplitFailureLimiter(per_credential, per_address)
        # Request rates (issue 5): per credential and per client address; None when disabled.
        self.rate_credential = self._rate_limiter(s.rate_limit_per_credential, s.rate_limit_credential_burst, "rate-credential")
        self.rate_address = self._rate_limiter(s.rate_limit_per_address, s.rate_limit_address_burst, "rate-address")
        # Per-endpoint address budgets: a provider's own limit on one endpoint, counted per client
        # address on top of the address rate (``limit_address(request, budget=name)``).
        self.address_budgets: dict[str, Any] = {}
        if s.b2binpay_login_per_minute > 0:  # the provider's 15 a minute: a burst of 15, then one per 4 s
            per_minute = s.b2binpay_login_per_minute
            self.address_budgets["b2binpay-login"] = self._rate_limiter(per_minute / 60.0, per_minute, "rate-b2binpay-login")
        if s.unauthenticated_writes_per_minute > 0:  # storage bounded: see endpoint(..., writes=True)
            per_minute = s.unauthenticated_writes_per_minute
            self.address_budgets[UNAUTHENTICATED_WRITES] = self._rate_limiter(per_minute / 60.0, per_minute,
                                                                              "rate-unauthenticated-writes")

    def _rate_limiter(self, rate: float, burst: int, name: str):
        if rate <= 0:
            return None
        if self.settings.redis_url:  # shared by every instance
            from tessera.storage.redis_limits import RedisRateLimiter

            return RedisRateLimiter.from_settings(self.settings, getattr(self.core.store, "redis", None),
                                                  rate=rate, burst=burst, name=name)
        return MemoryRateLimiter(rate, burst)

    def limit_address(self, request: Request, *, budget: str | None = None) -> None:
        """Count a request against its client address: 429 (``SlowDown``) over the rate; with
        ``budget``, also against that endpoint's own per-address budget (``address_budgets``)."""
        limiter = self.rate_address
        if limiter is not None:
            wait = limiter.hit(self.client_ip(request))
            if wait:
                raise SlowDown(wait, reason="rate_limit_address")
        endpoint_limiter = self.address_budgets.get(budget) if budget is not None else None
        if endpoint_limiter is not None:
            wait = endpoint_limiter.hit(self.client_ip(request))
            if wait:
                raise SlowDown(wait, reason=f"rate_limit_{budget.replace('-', '_')}")

    def limit_credential(self, key: str) -> None:
        """Count a request against a credential that it proved: 429 over the rate."""
        limiter = self.rate_credential
        if limiter is not None:
            wait = limiter.hit(key)
            if wait:
                raise SlowDown(wait, reason="rate_limit_credential")

    def client_ip(self, request: Request) -> str:
        """The caller's address: the peer, or (from a trusted proxy in proxy mode) its ``X-Real-IP``."""
        peer = request.scope.get("client")
        host = peer[0] if peer else "unknown"
        if self.settings.mtls_mode == "proxy" and self.extractor.is_trusted_proxy(host):
            forwarded = request.headers.get("x-real-ip")
            if forwarded:
                return forwarded.strip()[:64]
        return host

    def guarded(self, request: Request, credential: str | PersonAccount | None, check: Callable[..., Any], *args: Any,
                failures: tuple[type[Exception], ...] = (InvalidClient,)) -> Any:
        """Run a credential ``check`` under brute-force protection (checklist rows 30 and 43).

        ``credential`` is what could be guessed: a machine credential's key (``client:<id>``,
        ``axept:<merchant>:<key>``: 256-bit secrets made by the server), a ``PersonAccount``
        (a merchant user's password, see ``user_key``), or None (a signed assertion: nothing
        to guess). Failures count against the keys of ``tessera.core.ratelimit.Attempt``:
        a machine credential per (credential, address) and per address, so that a stranger
        who knows a client id throttles only himself; an account per account and per
        address; None per address only. While any of them is locked the check is not even
        attempted (429 with ``Retry-After``). A success clears the credential's counter."""
        ip = self.client_ip(request)
        if isinstance(credential, PersonAccount):
            attempt = Attempt(ip, credential.key, account=True)
        else:
            attempt = Attempt(ip, credential or None)
        keys = attempt.keys
        wait = guard(self.failures, *keys)
        if wait:
            raise SlowDown(wait, reason="login_locked")
        try:
            result = check(*args)
        except failures:
            self.fail_login(*keys)
            if attempt.watch and self.failures.failed(attempt.watch):  # locks nothing: an event only
                self.core.event("credential_failures_spread", None, **describe(attempt.watch))
            raise
        if attempt.cleared:
            self.failures.succeeded(attempt.cleared)
        return result

    def address_key(self, request: Request) -> str:
        """The failure counter of the caller's address alone (for checks with nothing to guess)."""
        return Attempt(self.client_ip(request)).keys[0]

    def fail_login(self, *keys: str) -> None:
        """Count a failed credential check against each limiter key (``Attempt.keys``)."""
        for key in keys:
            if self.failures.failed(key):
                self.core.event("brute_force_lockout", None, **describe(key))

    def peer(self, request: Request) -> PeerCertificate | None:
        return self.extractor(request.scope)

    def now_dt(self) -> datetime:
        return datetime.fromtimestamp(self.core.now(), tz=timezone.utc)

    def issued(self, profile: str) -> None:
        self.counters[profile] = self.counters.get(profile, 0) + 1
        count_token_issued(profile)  # the tessera_tokens_issued_total metric

    async def in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run CPU-heavy work (argon2id) off the event loop."""
        return await run_in_threadpool(fn, *args)

    def render_login(self, request: Request, page, *, action: str, error: str | None = None, status: int = 200) -> Response:
        return TEMPLATES.TemplateResponse(
            request, "login.html", {"page": page, "action": action, "error": error}, status_code=status, headers=PAGE_HEADERS,
        )


@dataclass(frozen=True)
class PersonAccount:
    """A person's password as ``Runtime.guarded`` counts it: per account (and per address)."""

    key: str


def user_key(form: dict[str, str]) -> PersonAccount | None:
    """The brute-force counter of a merchant user's sign-in (None without a username)."""
    username = form.get("username", "").strip().lower()
    return PersonAccount(f"user:{username}") if username else None


def render_error_page(request: Request, err: OAuthError) -> Response:
    return TEMPLATES.TemplateResponse(
        request, "error.html", {"error": err.error, "description": err.description}, status_code=err.status,
        headers={**PAGE_HEADERS, **err.headers},  # Retry-After on a 503 or 429
    )


def endpoint(rt: Runtime, profile: str, *, render: Renderer = oauth_error_response, html: bool = False,
             writes: bool = False):
    """Wrap a handler: typed errors are rendered by ``render`` (or as an HTML page).

    ``writes``: the endpoint may store something for a caller who proved nothing (a plain
    authorization request, a login form): every request is counted against its address, the
    address rate and the ``unauthenticated_writes_per_minute`` budget, before the handler
    runs, so a flood is refused (429) before it costs storage."""

    def wrap(handler: Callable[[Request], Awaitable[Response]]):
        @functools.wraps(handler)
        async def run(request: Request) -> Response:
            try:
                if writes:
                    rt.limit_address(request, budget=UNAUTHENTICATED_WRITES)
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - the one place errors become responses
                err = as_oauth_error(exc)
                request.state.error_reason = err.reason
                if html and not isinstance(err, MethodNotAllowed):
                    return render_error_page(request, err)
                return render(err)

        run.profile = profile  # type: ignore[attr-defined]
        run.html = html  # type: ignore[attr-defined]  # a page: an unexpected error is an HTML 500 (tessera.web.routing)
        return run

    return wrap


def only(request: Request, *methods: str) -> None:
    if request.method not in methods:
        raise MethodNotAllowed(f"use {' or '.join(methods)}", reason="method_not_allowed", headers={"Allow": ", ".join(methods)})


def no_store_json(body: dict[str, Any], status_code: int = 200) -> Response:
    return JSONResponse(body, status_code=status_code, headers=NO_STORE)
