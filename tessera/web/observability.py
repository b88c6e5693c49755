"""Observability: Prometheus metrics, JSON access logs with request ids, readiness.

- ``ObservabilityMiddleware`` is a pure ASGI middleware around the whole app. Per HTTP
  request it takes (or makes) a request id, returns it as ``X-Request-ID``, counts the
  request and its latency by *route template* (never the raw path), method and status,
  counts refusals by reason and 429s, and writes one JSON access-log line.
  Everything per route is resolved once and cached (label children included), so the
  hot path is a few dict look-ups, two clock reads and the log line.
- ``configure_logging`` sets up structlog once (JSON lines on stderr, level from the
  settings) and routes uvicorn's own log records through the same JSON renderer.
- ``readiness`` builds ``/readyz``; ``metrics_endpoint`` builds ``/metrics``.

What is logged is a fixed list of fields (method, route template, status, duration,
request id, client address, profile, refusal reason): never paths, query strings,
headers, bodies, tokens or credentials.

With several uvicorn workers (separate processes), set ``PROMETHEUS_MULTIPROC_DIR`` to an
empty directory before the server starts: prometheus-client then keeps the values in
memory-mapped files there and ``/metrics`` aggregates all workers. See docs/observability.md.
"""

from __future__ import annotations

import json as _json
import logging
import os
import sys
import threading
import time
from contextvars import ContextVar
from random import getrandbits as _getrandbits
from typing import TYPE_CHECKING, Any, Callable

import anyio
import structlog
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from tessera.web.responses import JSONResponse

if TYPE_CHECKING:  # pragma: no cover
    from tessera.web.runtime import Runtime

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# --- metrics ------------------------------------------------------------------------------------
#: Latency buckets (seconds): the token endpoints answer in well under a millisecond to a few ms;
#: an argon2id login takes tens of ms.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter("tessera_http_requests", "HTTP requests, by route template, method and status.",
                   ("route", "method", "status"))
LATENCY = Histogram("tessera_http_request_duration_seconds", "HTTP request latency, by route template, method and status.",
                    ("route", "method", "status"), buckets=LATENCY_BUCKETS)
TOKENS_ISSUED = Counter("tessera_tokens_issued", "Access tokens issued, by profile.", ("profile",))
REFUSALS = Counter("tessera_refusals", "Requests refused with an error, by profile and reason.", ("profile", "reason"))
RATE_LIMITED = Counter("tessera_rate_limited", "Requests refused with 429 (brute-force lockout), by profile and reason.",
                       ("profile", "reason"))

PURGED = Counter("tessera_purged", "Rows deleted by the purge (scheduled or tessera purge), by artefact kind.", ("kind",))
TLS_HANDSHAKE_FAILURES = Counter("tessera_tls_handshake_failures",
                                 "TLS handshakes refused (embedded mTLS), by reason (OpenSSL's).", ("reason",))

#: Route label of requests that matched no route (their raw path is never used as a label).
UNMATCHED = "unmatched"
#: Methods kept as label values; anything else is counted as "OTHER".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_issued_children: dict[str, Any] = {}


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


def metrics_endpoint() -> Callable[[Request], Any]:
    """``GET /metrics``: the Prometheus text format (all workers' values in multiprocess mode)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    headers = {"Cache-Control": "no-store"}

    async def metrics(request: Request) -> Response:
        # Multiprocess collection reads one file per worker and metric: keep it off the event loop.
        body = await run_in_threadpool(generate_latest, registry) if registry is not REGISTRY else generate_latest(registry)
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4, headers=headers)

    return metrics


# --- logging ----------------------------------------------------------------------------------------
REQUEST_ID: ContextVar[str | None] = ContextVar("tessera_request_id", default=None)
_LEVELS = {"critical": logging.CRITICAL, "error": logging.ERROR, "warning": logging.WARNING, "warn": logging.WARNING,
           "info": logging.INFO, "debug": logging.DEBUG, "trace": logging.DEBUG}
_configured: dict[str, Any] = {}


def _add_request_id(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Every log line written while a request is handled carries its id."""
    if "request_id" not in event_dict:
        rid = REQUEST_ID.get()
        if rid is not None:
            event_dict["request_id"] = rid
    return event_dict


class _StderrLogger:
    """structlog's output: each rendered event as one line on the *current* ``sys.stderr``
    (looked up per line, so a replaced stream -- test capture -- is followed)."""

    _lock = threading.Lock()

    def msg(self, message: str) -> None:
        with self._lock:
            stream = sys.stderr
            stream.write(message + "\n")
            stream.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = err = msg


class _StderrHandler(logging.StreamHandler):
    """A stdlib handler on the current ``sys.stderr`` (as ``logging.lastResort`` does)."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        logging.Handler.__init__(self, level)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr


_STDERR_LOGGER = _StderrLogger()


def configure_logging(level: str = "info") -> None:
    """structlog → one JSON object per line on stderr, at ``level``; uvicorn's records too.

    Idempotent: called by every ``create_app``; reconfigures only when the level changes.
    """
    numeric = _LEVELS.get(str(level).lower(), logging.INFO)
    if _configured.get("level") == numeric:
        return
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared = [structlog.processors.add_log_level, timestamper, _add_request_id]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *shared, structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=lambda *args: _STDERR_LOGGER,
        cache_logger_on_first_use=False,
    )
    # uvicorn (and anything else on the stdlib logging module) → the same JSON lines.
    handler = _StderrHandler()
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer()],
    ))
    handler._tessera = True  # type: ignore[attr-defined]
    for name in ("uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers = [handler] if name == "uvicorn" else []
        lg.propagate = name != "uvicorn"
    # Never uvicorn's access line (it carries the full URL, query string included): tessera
    # writes its own. uvicorn's protocols log one whenever this logger "hasHandlers()", and a
    # worker process (--workers N) calls this after uvicorn set it up: so no handler, no
    # propagation, and disabled, in every process.
    access = logging.getLogger("uvicorn.access")
    access.handlers, access.propagate, access.disabled = [], False, True
    logging.getLogger("uvicorn").setLevel(numeric)
    # Other libraries: warnings and errors only, as before (their INFO lines may carry URLs).
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, "_tessera", False)]
    if not root.handlers:
        quiet = _StderrHandler(max(numeric, logging.WARNING))
        quiet.setFormatter(handler.formatter)
        quiet._tessera = True  # type: ignore[attr-defined]
        root.addHandler(quiet)
    logging.captureWarnings(True)  # Python warnings too, as JSON (py.warnings), not bare stderr text
    _configured["level"] = numeric


# --- request ids ---------------------------------------------------------------------------------------
_RID_ALLOWED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
RID_MAX = 64


def valid_request_id(value: bytes) -> bool:
    """1 to 64 characters of ``[A-Za-z0-9._-]`` (no regex: ``bytes.translate`` in C)."""
    return 0 < len(value) <= RID_MAX and not value.translate(None, _RID_ALLOWED)


# --- the middleware -----------------------------------------------------------------------------------------
class ObservabilityMiddleware:
    """Pure ASGI: request id, metrics and one access-log line per HTTP request.

    ``client_address(scope)`` gives the caller's address for the log (proxy-aware).

    The access line is rendered here from fragments cached per (route, method, status) and
    per refusal reason, then written through structlog's configured output: the same JSON
    shape (``event``, ``level``, ``timestamp`` ...) as every other line, for about a
    microsecond instead of the ~6 µs of a bound-logger call with nine fields.
    """

    __slots__ = ("app", "client_address", "_log_enabled", "_write", "_routes", "_entries", "_reasons", "_clients")

    def __init__(self, app: Any, *, client_address: Callable[[dict], str] | None = None, access_log: bool = True) -> None:
        self.app = app
        self.client_address = client_address or _peer_address
        self._log_enabled = access_log and _configured.get("level", logging.INFO) <= logging.INFO
        self._write = _access_writer()
        #: id(route) -> (template, profile); routes live as long as the app
        self._routes: dict[int, tuple[str, str | None]] = {}
        #: (id(route) or 0, method, status) -> (requests child, latency child, profile, log fragment)
        self._entries: dict[tuple, tuple] = {}
        #: (profile, reason, status) -> (children to increment, log fragment)
        self._reasons: dict[tuple, tuple] = {}
        #: client address -> its JSON string
        self._clients: dict[str, str] = {}

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid_bytes = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if valid_request_id(value):
                    rid_bytes = value
                break
        if rid_bytes is None:
            rid = f"{_getrandbits(128):032x}"  # unique, not secret: no need for a syscall per request
            rid_bytes = rid.encode()
        else:
            rid = rid_bytes.decode("ascii")
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["request_id"] = rid
        token = REQUEST_ID.set(rid)
        status = 0

        async def send_with_id(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", rid_bytes))
                message["headers"] = headers
            await send(message)

        failed = False
        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            failed = True
            raise
        finally:
            elapsed = time.perf_counter() - start
            if not status:
                status = 500 if failed else 499  # 499: the client went away before any answer
            try:
                route = scope.get("route")
                method = scope["method"]
                if method not in METHODS:
                    method = "OTHER"
                key = (id(route) if route is not None else 0, method, status)
                entry = self._entries.get(key)
                if entry is None:
                    entry = self._entries[key] = self._new_entry(route, method, status)
                entry[0].inc()
                entry[1].observe(elapsed)
                reason = state.get("error_reason")
                if reason is None:
                    reason_fragment = ',"reason":null'
                else:
                    rkey = (entry[2], reason, status)
                    refusal = self._reasons.get(rkey)
                    if refusal is None:
                        refusal = self._reasons[rkey] = self._new_refusal(entry[2], reason, status)
                    for child in refusal[0]:
                        child.inc()
                    reason_fragment = refusal[1]
                if self._log_enabled:
                    address = self.client_address(scope)
                    client = self._clients.get(address)
                    if client is None:
                        client = _json.dumps(address)
                        if len(self._clients) < 10_000:
                            self._clients[address] = client
                    self._write(f'{{"event":"request","level":"info","timestamp":"{_iso_now()}","request_id":"{rid}"'
                                f'{entry[3]},"duration_ms":{elapsed * 1000:.3f},"client":{client}{reason_fragment}}}')
            finally:
                REQUEST_ID.reset(token)

    def _new_entry(self, route: Any, method: str, status: int) -> tuple:
        if route is None:
            template, profile = UNMATCHED, None
        else:
            info = self._routes.get(id(route))
            if info is None:
                endpoint = getattr(route, "endpoint", None)
                info = self._routes[id(route)] = (getattr(route, "path", None) or UNMATCHED, getattr(endpoint, "profile", None))
            template, profile = info
        status_label = str(status)
        fragment = "," + _json.dumps({"method": method, "route": template, "status": status, "profile": profile}, separators=(",", ":"))[1:-1]
        return (REQUESTS.labels(template, method, status_label), LATENCY.labels(template, method, status_label), profile, fragment)

    @staticmethod
    def _new_refusal(profile: str | None, reason: Any, status: int) -> tuple:
        p, r = profile or "none", str(reason)[:64]
        children = [REFUSALS.labels(p, r)]
        if status == 429:
            children.append(RATE_LIMITED.labels(p, r))
        return tuple(children), ',"reason":' + _json.dumps(r)


_ts_cache: tuple[int, str] = (-1, "")


def _iso_now() -> str:
    """``2026-01-31T12:00:00.123456Z``, as structlog's ``TimeStamper(fmt="iso", utc=True)``,
    with the date part formatted once per second."""
    global _ts_cache
    now = time.time()
    sec = int(now)
    cached = _ts_cache
    if cached[0] != sec:
        cached = _ts_cache = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    return f"{cached[1]}.{int((now - sec) * 1_000_000):06d}Z"


def _access_writer() -> Callable[[str], None]:
    """structlog's configured output (its ``msg``), else a line on stderr."""
    try:
        return structlog.get_config()["logger_factory"]().msg
    except Exception:  # noqa: BLE001 - someone else's factory, one that needs arguments
        return _STDERR_LOGGER.msg


class ObservedStarlette(Starlette):
    """Starlette with ``ObservabilityMiddleware`` outermost: around Starlette's own
    ServerErrorMiddleware, so that even an unhandled-exception 500 carries ``X-Request-ID``
    and is counted and logged; then ``ProfileDispatch`` (tessera.web.routing), which calls
    the profile handlers directly. Set ``client_address`` on the instance (``client_address_for``)."""

    client_address: Callable[[dict], str] | None = None

    def build_middleware_stack(self) -> Any:
        from tessera.web.routing import ProfileDispatch

        inner = ProfileDispatch(super().build_middleware_stack(), self.router)
        return ObservabilityMiddleware(inner, client_address=self.client_address)


def _peer_address(scope: dict) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def client_address_for(rt: "Runtime") -> Callable[[dict], str]:
    """The caller's address as ``Runtime.client_ip`` sees it, computed from the scope alone."""
    if rt.settings.mtls_mode != "proxy":
        return _peer_address
    trusted = rt.extractor.is_trusted_proxy  # remembered per peer by the extractor

    def address(scope: dict) -> str:
        host = _peer_address(scope)
        if trusted(host):
            for name, value in scope["headers"]:
                if name == b"x-real-ip":
                    return value.decode("latin-1").strip()[:64]
        return host

    return address


# --- readiness ------------------------------------------------------------------------------------------------
READY_TIMEOUT = 2.0
_log = structlog.get_logger("tessera.web")


class Readiness:
    """``GET /readyz`` (``handle``): 200 when the database answers, the keys load and (if configured) Redis
    answers; else 503 naming the failing check. The answer never carries error texts (they
    can hold connection strings); the failure's type is logged.

    The checks run in a worker thread with a deadline. If a previous run still hangs (a
    database that does not answer), no new thread is started: that run's progress is reported.
    """

    def __init__(self, rt: "Runtime", timeout: float = READY_TIMEOUT) -> None:
        self.rt = rt
        self.timeout = timeout
        self._busy = threading.Lock()
        self._current: dict[str, str] = {}
        self._redis = None

    def checks(self) -> list[tuple[str, Callable[[], Any]]]:
        store = self.rt.core.store
        sql = getattr(store, "sql", store)  # with Redis: the CompositeStore's SQL part (its ping also pings Redis)
        out: list[tuple[str, Callable[[], Any]]] = [("database", sql.ping), ("keys", self._keys)]
        if self.rt.settings.redis_url:
            out.append(("redis", self._redis_ping))
        return out

    def _keys(self) -> None:
        keys = self.rt.core.keys.get()
        keys.signing_key  # noqa: B018 - raises when there is no current signing key
        if not any(mk.use == "enc" and mk.status == "current" for mk in keys.keys):
            raise LookupError("no current encryption key")

    def _redis_ping(self) -> Any:
        hook = getattr(self.rt, "redis_ping", None)
        if callable(hook):
            return hook()
        artifacts = getattr(self.rt.core.store, "artifacts", None)  # the CompositeStore's Redis part
        if artifacts is not None and callable(getattr(artifacts, "ping", None)):
            return artifacts.ping()
        try:
            import redis  # optional
        except ImportError:
            return "skipped"
        if self._redis is None:
            self._redis = redis.Redis.from_url(self.rt.settings.redis_url, socket_timeout=self.timeout,
                                               socket_connect_timeout=self.timeout)
        if not self._redis.ping():
            raise ConnectionError("redis did not answer PING")
        return None

    def _run(self, checks: list, results: dict[str, str]) -> list:
        awaitables = []
        try:
            for name, fn in checks:
                try:
                    out = fn()
                    if hasattr(out, "__await__"):
                        awaitables.append((name, out))  # an async hook: awaited on the event loop
                        continue
                    results[name] = out if out == "skipped" else "ok"
                except Exception as exc:  # noqa: BLE001 - a failing check is the answer
                    results[name] = "fail"
                    _log.warning("readiness_check_failed", check=name, error=type(exc).__name__)
        finally:
            self._busy.release()
        return awaitables

    async def handle(self, request: Request) -> Response:
        checks = self.checks()
        if self._busy.acquire(blocking=False):
            results = self._current = {name: "timeout" for name, _ in checks}
            awaitables: list = []
            with anyio.move_on_after(self.timeout):
                awaitables = await anyio.to_thread.run_sync(self._run, checks, results, abandon_on_cancel=True)
            for name, pending in awaitables:
                try:
                    with anyio.fail_after(self.timeout):
                        out = await pending
                    results[name] = out if out == "skipped" else "ok"
                except Exception as exc:  # noqa: BLE001
                    results[name] = "fail"
                    _log.warning("readiness_check_failed", check=name, error=type(exc).__name__)
        else:  # the previous run is still stuck: report where it is
            results = {name: self._current.get(name, "timeout") for name, _ in checks}
        results = dict(results)
        failing = [name for name, value in results.items() if value not in ("ok", "skipped")]
        body: dict[str, Any] = {"status": "unavailable" if failing else "ready", "checks": results}
        if failing:
            body["failing"] = failing
        return JSONResponse(body, status_code=503 if failing else 200, headers={"Cache-Control": "no-store"})
