"""Prometheus metric definitions, the counting helpers, and ``GET /metrics``.

A leaf: it imports nothing of tessera. Everything that counts (the request middleware,
``Runtime.issued``, the purge, the TLS hook) imports from here.

With several uvicorn workers (separate processes), set ``PROMETHEUS_MULTIPROC_DIR`` to an
empty directory before the server starts: prometheus-client then keeps the values in
memory-mapped files there and ``/metrics`` aggregates all workers. See docs/observability.md.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Latency buckets (seconds): the token endpoints answer in well under a millisecond to a few ms;
#: an argon2id login takes tens of ms.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "tessera_http_requests", "HTTP requests, by route template, method and status.", ("route", "method", "status")
)
LATENCY = Histogram(
    "tessera_http_request_duration_seconds",
    "HTTP request latency, by route template, method and status.",
    ("route", "method", "status"),
    buckets=LATENCY_BUCKETS,
)
TOKENS_ISSUED = Counter("tessera_tokens_issued", "Access tokens issued, by profile.", ("profile",))
REFUSALS = Counter("tessera_refusals", "Requests refused with an error, by profile and reason.", ("profile", "reason"))
RATE_LIMITED = Counter(
    "tessera_rate_limited",
    "Requests refused with 429 (brute-force lockout), by profile and reason.",
    ("profile", "reason"),
)
PURGED = Counter(
    "tessera_purged", "Rows deleted by the purge (scheduled or tessera purge), by artefact kind.", ("kind",)
)
LOG_LINES_LOST = Counter(
    "tessera_log_lines_lost", "Log lines dropped because stderr could not be written (closed, broken pipe, full)."
)
TLS_HANDSHAKE_FAILURES = Counter(
    "tessera_tls_handshake_failures", "TLS handshakes refused (embedded mTLS), by reason (OpenSSL's).", ("reason",)
)

#: Route label of requests that matched no route (their raw path is never used as a label).
UNMATCHED = "unmatched"
#: Methods kept as label values; anything else is counted as "OTHER".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_issued_children: dict[str, Counter] = {}


def count_token_issued(profile: str) -> None:
    """Called by ``Runtime.issued`` for every token a profile hands out."""
    child = _issued_children.get(profile)
    if child is None:
        child = _issued_children[profile] = TOKENS_ISSUED.labels(profile)
    child.inc()


def count_purged(counts: dict[str, int]) -> None:
    """Called after each purge with the rows deleted per kind."""
    for kind, n in counts.items():
        PURGED.labels(kind).inc(n)


def count_tls_failure(reason: str) -> None:
    """Called by tessera.web.tls for every refused handshake."""
    TLS_HANDSHAKE_FAILURES.labels(reason).inc()


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def metrics_endpoint() -> Callable[[Request], Awaitable[Response]]:
    """``GET /metrics``: the Prometheus text format (all workers' values in multiprocess mode)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess  # only in multiprocess mode: it reads the environment

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    headers = {"Cache-Control": "no-store"}

    async def metrics(request: Request) -> Response:
        # Multiprocess collection reads one file per worker and metric: keep it off the event loop.
        if registry is REGISTRY:
            body = generate_latest(registry)
        else:
            body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4, headers=headers)

    return metrics
