"""Readiness: ``GET /readyz`` asks the store, the key ring and (if configured) Redis.

200 when the database answers (``SQLDatabase.ping`` of the store's database, else the
store's own ``ping``: ``tessera.core.ports``), the keys load and, with ``redis_url`` set,
Redis answers (the store's Redis part, ``RedisHandle.ping_redis``, else a client of its
own); else 503 naming the failing check.
The answer never carries error texts (they can hold connection strings); the failure's
type is logged.

The checks run in a worker thread with a deadline. If a previous run still hangs (a
database that does not answer), no new thread is started: that run's progress is reported.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

import anyio
import structlog
from starlette.requests import Request
from starlette.responses import Response

from tessera.core.keys import KeyRing
from tessera.core.ports import RedisHandle
from tessera.web.responses import JSONResponse

READY_TIMEOUT = 2.0
log = structlog.get_logger("tessera.web")

Check = tuple[str, Callable[[], object]]


class Pingable(Protocol):
    def ping(self) -> None: ...


class Readiness:
    """``handle`` is the ``/readyz`` endpoint; the checks are fixed at construction."""

    def __init__(
        self,
        database: Pingable,
        keys: KeyRing,
        *,
        redis: RedisHandle | None = None,
        redis_url: str | None = None,
        timeout: float = READY_TIMEOUT,
    ) -> None:
        self.timeout = timeout
        self.checks: list[Check] = [("database", database.ping), ("keys", lambda: self._keys(keys))]
        if redis is not None:
            self.checks.append(("redis", redis.ping_redis))
        elif redis_url:
            self.checks.append(("redis", self._own_redis(redis_url)))
        self._busy = threading.Lock()
        self._current: dict[str, str] = {}

    @staticmethod
    def _keys(keys: KeyRing) -> None:
        ring = keys.get()
        ring.signing_key  # noqa: B018 - raises when there is no current signing key
        if not any(mk.use == "enc" and mk.status == "current" for mk in ring.keys):
            raise LookupError("no current encryption key")

    def _own_redis(self, url: str) -> Callable[[], object]:
        """A PING of Redis by a client of this check's own (a store without a Redis part)."""
        client: list[Any] = []

        def ping() -> object:
            try:
                import redis  # optional
            except ImportError:
                return "skipped"
            if not client:
                client.append(
                    redis.Redis.from_url(url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout)
                )
            if not client[0].ping():
                raise ConnectionError("redis did not answer PING")
            return None

        return ping

    def _run(self, results: dict[str, str]) -> None:
        try:
            for name, fn in self.checks:
                try:
                    out = fn()
                    results[name] = "skipped" if out == "skipped" else "ok"
                except Exception as exc:  # noqa: BLE001 - a failing check is the answer
                    results[name] = "fail"
                    log.warning("readiness_check_failed", check=name, error=type(exc).__name__)
        finally:
            self._busy.release()

    async def handle(self, request: Request) -> Response:
        if self._busy.acquire(blocking=False):
            results = self._current = {name: "timeout" for name, _ in self.checks}
            with anyio.move_on_after(self.timeout):
                await anyio.to_thread.run_sync(self._run, results, abandon_on_cancel=True)
        else:  # the previous run is still stuck: report where it is
            results = {name: self._current.get(name, "timeout") for name, _ in self.checks}
        results = dict(results)
        failing = [name for name, value in results.items() if value not in ("ok", "skipped")]
        body: dict[str, Any] = {"status": "unavailable" if failing else "ready", "checks": results}
        if failing:
            body["failing"] = failing
        return JSONResponse(body, status_code=503 if failing else 200, headers={"Cache-Control": "no-store"})
