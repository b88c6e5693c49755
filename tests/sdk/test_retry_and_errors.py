"""Retries and the one exception hierarchy, on the wire (httpx.MockTransport), with a
deterministic sleep and random draw: which calls retry, how long they wait (backoff, jitter,
Retry-After in seconds or as an HTTP date, the cap), that a B2BINPAY refresh, a PAR and a
code exchange are never retried blindly, and that every failure is one of the SDK's errors."""

from __future__ import annotations

import asyncio
import pickle
import ssl
import time
from collections.abc import Callable
from email.utils import formatdate

import httpx
import pytest

from tessera.sdk import AxeptClient, B2BinPayClient, MobilePayClient, NexiSoftPOSClient, TokenCache, TokenError
from tessera.sdk.errors import (
    AuthenticationError,
    ProviderError,
    RateLimited,
    RequestTimeout,
    SDKError,
    TLSError,
    TransportError,
    parse_retry_after,
)
from tessera.sdk.retry import RetryPolicy, retry_policy
from tests.sdk.test_axept import FakeAxept
from tests.sdk.test_b2binpay import LOGIN, PASSWORD, Clock, FakeB2BinPay
from tests.sdk.test_mobilepay import FakeMobilePay
from tests.sdk.test_nexi_wire import FakeNexi

Answer = int | tuple[int, dict[str, str]] | type[Exception] | Exception


class Waits:
    """The sleeps a policy asked for (sync and async), instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    def policy(self, **kw) -> RetryPolicy:
        return RetryPolicy(sleep=self.sleep, async_sleep=self.asleep, random=lambda: 0.5, **kw)


class Flaky:
    """Answers the first requests whose path ends with ``suffix`` with ``answers`` (a status,
    a status and headers, or an exception to raise), then hands them to ``inner``."""

    def __init__(self, inner: Callable[[httpx.Request], httpx.Response], suffix: str, *answers: Answer) -> None:
        self.inner, self.suffix, self.answers = inner, suffix, list(answers)
        self.hits = 0  # requests to the path, failed or not

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith(self.suffix):
            return self.inner(request)
        self.hits += 1
        if not self.answers:
            return self.inner(request)
        answer = self.answers.pop(0)
        if isinstance(answer, type) and issubclass(answer, Exception):
            raise answer("scripted failure", request=request)  # type: ignore[call-arg]
        if isinstance(answer, Exception):
            raise answer
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        return httpx.Response(status, json={"error": "temporarily_unavailable"}, headers=headers)


@pytest.fixture
def nexi_fake(jwks_body, enc_key) -> FakeNexi:
    return FakeNexi(jwks_body, enc_key)


def build(kind: str, handler, waits: Waits, nexi_dev=None, **kw):
    """A client of ``kind`` on ``handler``, with the deterministic policy unless ``retry`` is given."""
    kw.setdefault("retry", waits.policy())
    t = {"transport": httpx.MockTransport(handler), "async_transport": httpx.MockTransport(handler)}
    if kind == "nexi":
        return NexiSoftPOSClient(
            "staging", "app-1", "nexi-secret", nexi_dev.cert, nexi_dev.key, cache=TokenCache(), **t, **kw
        )
    if kind == "axept":
        return AxeptClient("https://axept.example", 12345, 12, "axept-key", cache=TokenCache(), **t, **kw)
    if kind == "mobilepay":
        return MobilePayClient("sandbox", "integrator-1", "mp-secret", cache=TokenCache(), **t, **kw)
    return B2BinPayClient("sandbox", LOGIN, PASSWORD, cache=TokenCache(), **t, **kw)


KINDS = ["nexi", "axept", "mobilepay", "b2binpay"]
#: The token call of each kind, by the end of its path.
TOKEN_PATH = {
    "nexi": "/appenrollment/token",
    "axept": "/v1/authenticate",
    "mobilepay": "/connect/token",
    "b2binpay": "/token/",
}


def inner_fake(kind: str, nexi_fake: FakeNexi):
    return {"nexi": nexi_fake, "axept": FakeAxept(), "mobilepay": FakeMobilePay(), "b2binpay": FakeB2BinPay()}[kind]


def token_of(client, use_async: bool) -> str:
    return asyncio.run(client.atoken()) if use_async else client.token()


# ---------------------------------------------------------------------- the policy
def test_backoff_doubles_is_jittered_and_capped() -> None:
    p = RetryPolicy(attempts=6, base=1, cap=5, jitter=0, random=lambda: 0.9)
    assert [p.delay(n) for n in range(1, 7)] == [1, 2, 4, 5, 5, None]
    half = RetryPolicy(attempts=3, base=1, jitter=0.5, random=lambda: 1.0)
    assert half.delay(1) == 0.5 and half.delay(2) == 1.0  # at most half of the backoff is drawn off
    full = RetryPolicy(attempts=3, base=1, jitter=1, random=lambda: 0.25)
    assert full.delay(1) == 0.75


def test_retry_after_is_a_floor_and_beyond_cap_is_not_waited_for() -> None:
    p = RetryPolicy(attempts=3, base=0.5, cap=10, jitter=0)
    assert p.delay(1, retry_after=3) == 3
    assert p.delay(1, retry_after=0) == 0.5
    assert p.delay(1, retry_after=11) is None


@pytest.mark.parametrize(
    "kw", [{"attempts": 0}, {"attempts": True}, {"base": -1}, {"cap": -1}, {"jitter": 1.5}, {"jitter": -0.1}]
)
def test_policy_is_checked(kw) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kw)


def test_retry_argument_forms() -> None:
    assert retry_policy(None).attempts == 1
    assert retry_policy(0).attempts == 1 and retry_policy(5).attempts == 5
    p = RetryPolicy(attempts=2)
    assert retry_policy(p) is p
    with pytest.raises(TypeError):
        retry_policy("3")  # type: ignore[arg-type]


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120", now=now) == 120
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0
    for bad in (None, "", "soon", "-5", "1.5e3"):
        assert parse_retry_after(bad, now=now) is None


# ---------------------------------------------------------------------- idempotent calls retry
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("kind", KINDS)
def test_503_then_success_is_retried_with_backoff(kind, use_async, nexi_fake, rsa_dev) -> None:
    waits = Waits()
    flaky = Flaky(inner_fake(kind, nexi_fake), TOKEN_PATH[kind], 503, 503)
    client = build(kind, flaky, waits, rsa_dev)
    assert token_of(client, use_async)
    assert flaky.hits == 3
    assert waits.waits == [0.375, 0.75]  # 0.5 s then 1 s, a quarter drawn off by the jitter


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("kind", KINDS)
def test_429_waits_as_long_as_retry_after_says(kind, use_async, nexi_fake, rsa_dev) -> None:
    waits = Waits()
    flaky = Flaky(inner_fake(kind, nexi_fake), TOKEN_PATH[kind], (429, {"Retry-After": "3"}))
    assert token_of(build(kind, flaky, waits, rsa_dev), use_async)
    assert waits.waits == [3.0] and flaky.hits == 2


def test_retry_after_as_an_http_date(nexi_fake, rsa_dev) -> None:
    waits = Waits()
    when = formatdate(time.time() + 5, usegmt=True)
    flaky = Flaky(FakeMobilePay(), "/connect/token", (503, {"Retry-After": when}))
    assert build("mobilepay", flaky, waits).token()
    (wait,) = waits.waits
    assert 3 <= wait <= 5


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("kind", KINDS)
def test_retry_after_beyond_the_cap_raises_rate_limited_at_once(kind, use_async, nexi_fake, rsa_dev) -> None:
    waits = Waits()
    flaky = Flaky(inner_fake(kind, nexi_fake), TOKEN_PATH[kind], (429, {"Retry-After": "60"}))
    with pytest.raises(RateLimited) as info:
        token_of(build(kind, flaky, waits, rsa_dev), use_async)
    assert info.value.retry_after == 60 and info.value.status == 429
    assert isinstance(info.value, TokenError)  # the old name still catches it
    assert waits.waits == [] and flaky.hits == 1


@pytest.mark.parametrize("kind", KINDS)
def test_attempts_are_bounded(kind, nexi_fake, rsa_dev) -> None:
    waits = Waits()
    flaky = Flaky(inner_fake(kind, nexi_fake), TOKEN_PATH[kind], *[503] * 10)
    with pytest.raises(ProviderError) as info:
        build(kind, flaky, waits, rsa_dev, retry=waits.policy(attempts=4)).token()
    assert info.value.status == 503 and not isinstance(info.value, (RateLimited, AuthenticationError))
    assert flaky.hits == 4 and len(waits.waits) == 3


@pytest.mark.parametrize("retry", [None, 0, 1])
def test_retry_can_be_disabled(retry) -> None:
    flaky = Flaky(FakeAxept(), "/v1/authenticate", 503, 503)
    with pytest.raises(ProviderError):
        build("axept", flaky, Waits(), retry=retry).token()
    assert flaky.hits == 1


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("kind", KINDS)
def test_connection_failures_are_retried(kind, use_async, nexi_fake, rsa_dev) -> None:
    waits = Waits()
    flaky = Flaky(inner_fake(kind, nexi_fake), TOKEN_PATH[kind], httpx.ConnectError, httpx.ConnectTimeout)
    assert token_of(build(kind, flaky, waits, rsa_dev), use_async)
    assert flaky.hits == 3 and len(waits.waits) == 2


def test_the_jwks_is_retried(nexi_fake, rsa_dev) -> None:
    waits = Waits()
    flaky = Flaky(nexi_fake, "/par/jwks.json", 503, httpx.ReadError)
    assert build("nexi", flaky, waits, rsa_dev).jwks()["keys"]
    assert flaky.hits == 3


# ---------------------------------------------------------------------- never blindly
def _logged_in_b2binpay(handler, waits: Waits) -> tuple[B2BinPayClient, Clock]:
    clock = Clock()
    c = B2BinPayClient(
        "sandbox",
        LOGIN,
        PASSWORD,
        cache=TokenCache(clock=clock),
        retry=waits.policy(),
        transport=httpx.MockTransport(handler),
        async_transport=httpx.MockTransport(handler),
    )
    c.token()
    clock.now += 60  # the access token is due: the next call refreshes
    return c, clock


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("answer", [503, (429, {"Retry-After": "1"}), httpx.ReadError, httpx.ReadTimeout])
def test_a_b2binpay_refresh_that_may_have_arrived_is_never_sent_again(answer, use_async) -> None:
    waits = Waits()
    fake = FakeB2BinPay()
    flaky = Flaky(fake, "/token/refresh/", answer)
    c, _ = _logged_in_b2binpay(flaky, waits)
    with pytest.raises(SDKError) as info:
        token_of(c, use_async)
    assert flaky.hits == 1 and waits.waits == []
    if answer == httpx.ReadTimeout:
        assert isinstance(info.value, RequestTimeout) and info.value.request_sent
    elif isinstance(answer, tuple):
        assert isinstance(info.value, RateLimited) and info.value.retry_after == 1


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_a_b2binpay_refresh_that_never_left_is_sent_again_with_the_same_token(use_async) -> None:
    waits = Waits()
    fake = FakeB2BinPay()
    flaky = Flaky(fake, "/token/refresh/", httpx.ConnectError)
    c, _ = _logged_in_b2binpay(flaky, waits)
    assert token_of(c, use_async) == "A2"
    assert flaky.hits == 2 and fake.presented == ["R1"] and len(waits.waits) == 1


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_par_and_code_exchange_are_not_retried_on_429_or_503(use_async, nexi_fake, rsa_dev) -> None:
    waits = Waits()
    flaky = Flaky(nexi_fake, "/as/par", (429, {"Retry-After": "2"}))
    c = build("nexi", flaky, waits, rsa_dev)
    kw = {"point_of_sale": "POS1", "terminal_ids": ["S1"], "username_merchant": "m@shop.example"}
    par = {"scope": "oidc", "redirect_uri": "https://app.example/cb"}

    async def run_async() -> None:
        await c.apar(client_assertion=await c.aclient_assertion(**kw), **par)

    with pytest.raises(RateLimited) as info:
        asyncio.run(run_async()) if use_async else c.par(client_assertion=c.client_assertion(**kw), **par)
    assert info.value.retry_after == 2 and flaky.hits == 1
    code = Flaky(nexi_fake, "/as/token", 503)
    c2 = build("nexi", code, waits, rsa_dev)
    with pytest.raises(ProviderError) as info2:
        if use_async:
            asyncio.run(c2.aexchange_code(code="c", redirect_uri="https://app.example/cb"))
        else:
            c2.exchange_code(code="c", redirect_uri="https://app.example/cb")
    assert info2.value.status == 503 and code.hits == 1 and waits.waits == []


def test_par_that_never_left_is_sent_again(nexi_fake, rsa_dev) -> None:
    waits = Waits()
    flaky = Flaky(nexi_fake, "/as/par", httpx.ConnectError)
    c = build("nexi", flaky, waits, rsa_dev)
    a = c.client_assertion(point_of_sale="POS1", terminal_ids=["S1"], username_merchant="m@shop.example")
    assert c.par(client_assertion=a, scope="oidc", redirect_uri="https://app.example/cb")["request_uri"]
    assert flaky.hits == 2


# ---------------------------------------------------------------------- the hierarchy
def test_tls_failures_are_tls_errors_and_not_retried(nexi_fake, rsa_dev) -> None:
    def tls(request: httpx.Request) -> httpx.Response:
        try:
            raise ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
        except ssl.SSLError as e:
            raise httpx.ConnectError("TLS", request=request) from e

    waits = Waits()
    with pytest.raises(TLSError) as info:
        build("axept", tls, waits).token()
    assert isinstance(info.value, TransportError) and not info.value.request_sent
    assert waits.waits == []


@pytest.mark.parametrize(
    "failure, cls",
    [
        (httpx.ConnectError, TransportError),
        (httpx.ConnectTimeout, RequestTimeout),
        (httpx.ReadTimeout, RequestTimeout),
        (httpx.PoolTimeout, RequestTimeout),
        (httpx.RemoteProtocolError, TransportError),
        (httpx.ReadError, TransportError),
    ],
)
def test_httpx_failures_become_sdk_errors(failure, cls) -> None:
    waits = Waits()
    flaky = Flaky(FakeMobilePay(), "/connect/token", *[failure] * 5)
    with pytest.raises(cls) as info:
        build("mobilepay", flaky, waits).token()
    assert not isinstance(info.value, httpx.HTTPError)
    assert "mp-secret" not in str(info.value)


@pytest.mark.parametrize(
    "kind, status, body, cls, code",
    [
        ("mobilepay", 401, {"error": "invalid_client"}, AuthenticationError, "invalid_client"),
        ("mobilepay", 400, {"error": "invalid_client"}, AuthenticationError, "invalid_client"),
        ("mobilepay", 400, {"error": "invalid_request", "error_description": "no"}, ProviderError, "invalid_request"),
        ("mobilepay", 500, None, ProviderError, "invalid_response"),
        ("axept", 401, None, AuthenticationError, "Unauthorized"),
        ("axept", 400, None, ProviderError, "Bad Request"),
        ("b2binpay", 400, {"errors": [{"code": 2006, "detail": "No active account"}]}, AuthenticationError, "2006"),
        ("b2binpay", 429, {"errors": [{"code": "throttled", "detail": "throttled"}]}, RateLimited, "throttled"),
        ("nexi", 401, {"error": "invalid_client", "error_description": "no"}, AuthenticationError, "invalid_client"),
    ],
)  # fmt: skip
def test_refusals_are_typed_with_the_providers_code(kind, status, body, cls, code, nexi_fake, rsa_dev) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/par/jwks.json"):
            return nexi_fake(request)
        return httpx.Response(status, json=body) if body is not None else httpx.Response(status)

    with pytest.raises(cls) as info:
        build(kind, answer, Waits(), rsa_dev, retry=None).token()
    assert type(info.value) is cls
    assert (info.value.status, info.value.code, info.value.error) == (status, code, code)


def test_errors_pickle_with_their_fields() -> None:
    for e in (
        RateLimited(429, "throttled", "slow down", retry_after=12.0),
        AuthenticationError(401, "invalid_client"),
        TLSError("POST x: TLS handshake failed", request_sent=False),
        RequestTimeout("POST x: ReadTimeout"),
    ):
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is type(e) and str(back) == str(e)
        if isinstance(e, ProviderError):
            assert (back.status, back.code, back.message, back.retry_after) == (
                e.status, e.code, e.message, e.retry_after
            )  # fmt: skip
        else:
            assert back.request_sent == e.request_sent  # type: ignore[attr-defined]


def test_retry_after_is_kept_on_the_error_and_in_its_message() -> None:
    flaky = Flaky(FakeAxept(), "/v1/authenticate", (429, {"Retry-After": "7"}))
    with pytest.raises(RateLimited) as info:
        build("axept", flaky, Waits(), retry=None).token()
    assert info.value.retry_after == 7 and "retry after 7 s" in str(info.value)
