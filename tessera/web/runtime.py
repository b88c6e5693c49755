"""What every route needs: settings, the core, the caller (certificate, address), the rate
and brute-force limits, and the one rule for leaving the event loop (``run_flow``).

Errors are not handled here: handlers raise typed errors, and the app's registered
exception handlers render them in the profile's own shape (``tessera.web.errors``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from tessera.config import Settings
from tessera.core import authorize
from tessera.core.clients import PeerCert
from tessera.core.context import Core
from tessera.core.ports import Capabilities, StoreUnavailable
from tessera.core.ratelimit import (
    Attempt,
    FailureLimiter,
    FallbackFailureLimiter,
    MemoryFailureLimiter,
    MemoryRateLimiter,
    RateLimiter,
    SplitFailureLimiter,
    describe,
    guard,
)
from tessera.errors import AccessDenied, InvalidClient, OAuthError, SlowDown
from tessera.web.dbcall import FlowRunner
from tessera.web.errors import NO_STORE
from tessera.web.metrics import count_token_issued
from tessera.web.mtls import ClientAddress, MTLSConfig, MTLSExtractor
from tessera.web.pages import login_page
from tessera.web.responses import fixed_json

#: The per-address budget of the endpoints that write for unauthenticated callers (``limit_writes``).
UNAUTHENTICATED_WRITES = "unauthenticated-writes"


@dataclass
class Runtime:
    settings: Settings
    core: Core
    extractor: MTLSExtractor = field(init=False)
    #: The caller's address, from the scope alone (the rate limits and the access log).
    client_address: ClientAddress = field(init=False)
    #: ``await run_flow(fn, *args)``: the one rule for leaving the event loop (tessera.web.dbcall).
    run_flow: FlowRunner = field(init=False)
    #: The store's optional capabilities, found once (tessera.core.ports).
    capabilities: Capabilities = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.extractor = MTLSExtractor(
            MTLSConfig(mode=s.mtls_mode, header=s.mtls_header, trusted_proxies=tuple(s.trusted_proxies))
        )
        self.client_address = ClientAddress(self.extractor)
        caps = self.core.caps  # found once, when the core was composed (tessera.home.build_core)
        self.capabilities = caps
        self.run_flow = FlowRunner(remote=caps.database.remote if caps.database is not None else False)
        redis = caps.redis.redis if caps.redis is not None else None
        per_credential: FailureLimiter
        per_address: FailureLimiter
        per_credential = MemoryFailureLimiter(
            max_failures=s.login_max_failures, window=s.login_failure_window, lockout=s.login_lockout
        )
        per_address = MemoryFailureLimiter(
            max_failures=s.login_max_failures_per_address, window=s.login_failure_window, lockout=s.login_lockout
        )
        if s.redis_url:  # several instances share the failure counters and locks (issue 5)
            from tessera.storage.redis_limits import RedisFailureLimiter  # only with Redis: the driver is optional

            shared_credential = RedisFailureLimiter.from_settings(s, redis)
            shared_address = RedisFailureLimiter.from_settings(s, redis)
            shared_address.max_failures = s.login_max_failures_per_address
            per_credential = FallbackFailureLimiter(shared_credential, per_credential, unavailable=(StoreUnavailable,))
            per_address = FallbackFailureLimiter(shared_address, per_address, unavailable=(StoreUnavailable,))
        self.failures = SplitFailureLimiter(per_credential, per_address)
        # Request rates (issue 5): per credential and per client address; None when disabled.
        self.rate_credential = self._rate_limiter(
            s.rate_limit_per_credential, s.rate_limit_credential_burst, "rate-credential"
        )
        self.rate_address = self._rate_limiter(s.rate_limit_per_address, s.rate_limit_address_burst, "rate-address")
        # Per-endpoint address budgets: a provider's own limit on one endpoint, counted per client
        # address on top of the address rate (``limit_address(request, budget=name)``).
        self.address_budgets: dict[str, RateLimiter | None] = {}
        if s.b2binpay_login_per_minute > 0:  # the provider's 15 a minute: a burst of 15, then one per 4 s
            per_minute = s.b2binpay_login_per_minute
            self.address_budgets["b2binpay-login"] = self._rate_limiter(
                per_minute / 60.0, per_minute, "rate-b2binpay-login"
            )
        if s.unauthenticated_writes_per_minute > 0:  # storage bounded: see limit_writes
            per_minute = s.unauthenticated_writes_per_minute
            self.address_budgets[UNAUTHENTICATED_WRITES] = self._rate_limiter(
                per_minute / 60.0, per_minute, "rate-unauthenticated-writes"
            )

    def _rate_limiter(self, rate: float, burst: int, name: str) -> RateLimiter | None:
        if rate <= 0:
            return None
        if self.settings.redis_url:  # shared by every instance
            from tessera.storage.redis_limits import RedisRateLimiter

            caps = self.capabilities
            return RedisRateLimiter.from_settings(
                self.settings, caps.redis.redis if caps.redis is not None else None, rate=rate, burst=burst, name=name
            )
        return MemoryRateLimiter(rate, burst)

    def limit_address(self, request: Request, *, budget: str | None = None) -> None:
        """Count a request against its client address: 429 (``SlowDown``) over the rate; with
        ``budget``, also against that endpoint's own per-address budget (``address_budgets``)."""
        limiter = self.rate_address
        if limiter is not None:
            wait = limiter.hit(self.client_ip(request))
            if wait:
                raise SlowDown(wait, reason="rate_limit_address")
        if budget is None:
            return
        endpoint_limiter = self.address_budgets.get(budget)
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

    def limit_writes(self, request: Request) -> None:
        """An endpoint that may store something for a caller who proved nothing (a plain
        authorization request, a login form): counted against the address rate and the
        ``unauthenticated_writes_per_minute`` budget first, so that a flood is refused (429)
        before it costs storage."""
        self.limit_address(request, budget=UNAUTHENTICATED_WRITES)

    def client_ip(self, request: Request) -> str:
        """The caller's address: the peer, or (from a trusted proxy in proxy mode) its ``X-Real-IP``."""
        return self.client_address(request.scope)

    def guarded(
        self,
        request: Request,
        credential: str | PersonAccount | None,
        check: Callable[..., Any],
        *args: Any,
        failures: tuple[type[Exception], ...] = (InvalidClient,),
    ) -> Any:
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
                spread: dict[str, Any] = dict(describe(attempt.watch))
                self.core.event("credential_failures_spread", None, **spread)
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
                detail: dict[str, Any] = dict(describe(key))
                self.core.event("brute_force_lockout", None, **detail)

    def peer(self, request: Request) -> PeerCert | None:
        """The verified client certificate (embedded mTLS, or from a trusted proxy), as core takes it."""
        cert = self.extractor(request.scope)
        return PeerCert(cert.thumbprint, cert.der) if cert is not None else None

    def now_dt(self) -> datetime:
        return datetime.fromtimestamp(self.core.now(), tz=UTC)

    def issued(self, profile: str) -> None:
        count_token_issued(profile)  # the tessera_tokens_issued_total metric

    async def sign_in(
        self, request: Request, form: dict[str, str], *, action: str, par_kind: str, code_kind: str
    ) -> Response:
        """A merchant user's sign-in posted to a login page (the Nexi and native ones): the
        password checked off the loop under the person's brute-force counters, then the redirect
        with the code; a wrong password shows the form again (401) for the same pushed request."""

        def check() -> str:
            location: str = self.guarded(
                request,
                user_key(form),
                functools.partial(authorize.login, par_kind=par_kind, code_kind=code_kind),
                self.core,
                form.get("client_id"),
                form.get("request_uri"),
                form.get("username", ""),
                form.get("password", ""),
                failures=(AccessDenied,),
            )
            return location

        try:
            location = await self.run_flow(check, waits=True)  # argon2id: off the loop whatever the database
        except OAuthError as e:
            if e.reason != "login_failed":
                raise
            page = await self.run_flow(
                authorize.login_page, self.core, form.get("client_id"), form.get("request_uri"), par_kind=par_kind
            )
            return login_page(request, page, action=action, error=e.description, status=401)
        return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


@dataclass(frozen=True)
class PersonAccount:
    """A person's password as ``Runtime.guarded`` counts it: per account (and per address)."""

    key: str


def user_key(form: dict[str, str]) -> PersonAccount | None:
    """The brute-force counter of a merchant user's sign-in (None without a username)."""
    username = form.get("username", "").strip().lower()
    return PersonAccount(f"user:{username}") if username else None


def no_store_json(body: dict[str, Any], status_code: int = 200) -> Response:
    return fixed_json(body, NO_STORE, status_code=status_code)
