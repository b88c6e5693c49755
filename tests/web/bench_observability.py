"""Per-request cost of ``RequestMiddleware`` (tessera.web.middleware), in-process, without a network.

    .venv/bin/python -m tests.web.bench_observability 2>/dev/null

Drives a one-route Starlette app with raw ASGI calls, bare and wrapped, and prints the
best per-request CPU time of each variant (thread CPU time, so that other processes on
a busy machine do not distort it). The access-log lines go to stderr: send them to
/dev/null, or to a file to include the cost of a real write.
"""

from __future__ import annotations

import asyncio
import time

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tessera.web.logging import configure_logging
from tessera.web.middleware import RequestMiddleware

HEADERS = [(b"host", b"example"), (b"user-agent", b"bench"), (b"accept", b"*/*")]


async def hello(request):
    return PlainTextResponse("ok")


def base():
    return Starlette(routes=[Route("/items/{id}", hello)]).build_middleware_stack()


def scope() -> dict:
    return {
        "type": "http",
        "method": "GET",
        "path": "/items/1",
        "raw_path": b"/items/1",
        "query_string": b"",
        "headers": HEADERS,
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
        "scheme": "http",
        "root_path": "",
        "http_version": "1.1",
        "state": {},
    }


async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message):
    pass


async def per_request(app, n: int) -> float:
    t = time.thread_time()
    for _ in range(n):
        await app(scope(), receive, send)
    return (time.thread_time() - t) / n * 1e6


async def main(rounds: int = 40, n: int = 5000) -> dict[str, float]:
    configure_logging("info")
    apps = {
        "bare": base(),
        "metrics + request id": RequestMiddleware(base(), access_log=False),
        "metrics + request id + access log": RequestMiddleware(base()),
    }
    best = {k: float("inf") for k in apps}
    for _ in range(rounds):
        for name, app in apps.items():
            best[name] = min(best[name], await per_request(app, n))
    return best


if __name__ == "__main__":
    results = asyncio.run(main())
    bare = results["bare"]
    for name, us in results.items():
        print(f"{name:36} {us:6.2f} µs/request" + (f"   (+{us - bare:.2f} µs)" if name != "bare" else ""))
