"""Retries: exponential backoff with jitter, honouring ``Retry-After``, bounded.

Which calls are retried (see docs/sdk.md):

- on a connection failure (the connection was never made, so the request never left:
  refused port, DNS, connect timeout): **every** call, since sending it again cannot do
  anything twice. A TLS failure is never retried (it would fail the same way).
- on 429 and 503, and on a network failure after the request may have left: only the
  idempotent calls, which can be repeated without harm: Nexi's token and JWKS, MobilePay's
  token, axept's authentication, B2BINPAY's login.
- never blindly: B2BINPAY's refresh (its refresh token is single-use, and a second use burns
  the whole family), Nexi's PAR (the assertion's ``jti`` is single-use) and code exchange
  (the code is single-use). Their 429 is raised as :class:`~tessera.sdk.errors.RateLimited`
  with ``retry_after`` for the caller to decide.

A ``Retry-After`` (seconds or an HTTP date) longer than ``cap`` is not waited for: the call
raises :class:`~tessera.sdk.errors.RateLimited` at once, with ``retry_after`` set.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["DEFAULT_RETRY", "RETRY_STATUSES", "RetryPolicy", "no_retry", "retry_policy"]

#: The statuses retried on idempotent calls.
RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """How a client retries.

    ``attempts``: the most attempts of one call, the first included (1: no retry).
    ``base``: the first backoff, in seconds, doubled at each attempt and bounded by ``cap``.
    ``cap``: the longest wait; a longer ``Retry-After`` is not waited for.
    ``jitter``: the fraction of each backoff drawn at random (0: none; 1: "full jitter",
    anywhere between 0 and the backoff), so that many clients do not retry in step.
    ``sleep``/``async_sleep``/``random``: what waits and what draws (tests inject their own).
    """

    attempts: int = 3
    base: float = 0.5
    cap: float = 10.0
    jitter: float = 0.5
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    async_sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False, compare=False)
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or isinstance(self.attempts, bool) or self.attempts < 1:
            raise ValueError("attempts must be an integer >= 1")
        if self.base < 0 or self.cap < 0:
            raise ValueError("base and cap must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """The wait before attempt ``attempt + 1`` (``attempt`` counts from 1), or None when
        there is none left or the server's ``Retry-After`` exceeds ``cap``."""
        if attempt >= self.attempts:
            return None
        backoff = min(self.cap, self.base * (2 ** (attempt - 1)))
        wait: float = backoff * (1 - self.jitter * float(self.random()))
        if retry_after is not None:
            if retry_after > self.cap:
                return None
            wait = max(wait, retry_after)
        return wait


#: What every client does unless told otherwise: 3 attempts, 0.5 s then 1 s (half jittered),
#: waits of at most 10 s.
DEFAULT_RETRY = RetryPolicy()


def no_retry() -> RetryPolicy:
    return RetryPolicy(attempts=1)


def retry_policy(value: RetryPolicy | int | None) -> RetryPolicy:
    """A client's ``retry=`` argument as a policy: a :class:`RetryPolicy`; an int (the
    number of attempts; 0 or 1: none); None: none."""
    if value is None:
        return no_retry()
    if isinstance(value, RetryPolicy):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return RetryPolicy(attempts=max(1, value))
    raise TypeError("retry must be a RetryPolicy, a number of attempts, or None")
