"""The token endpoints driven in process: tessera's ASGI app called directly, no socket, no
load generator. What a request costs the worker's Python, measured as process CPU time per
request, steady even when other work shares the machine (wrk's figures are not); and a
target for ``py-spy record`` that shows where that time goes.

    .venv/bin/python bench/inproc.py                       # every endpoint, 3000 requests each
    .venv/bin/python bench/inproc.py --only axept,mobilepay_vat -n 20000
    .venv/bin/py-spy record -r 500 -f raw -o /tmp/axept.txt -- .venv/bin/python bench/inproc.py --only axept -n 20000

The home is made as the harness makes it (``bench.harness.fixtures.populate``: 10 clients, a
merchant, a MobilePay merchant that granted the app, an axept key), its request-rate limits
lifted as in ``bench/harness/servers.py``, SQLite, proxy mode (the Nexi certificate in
``X-SSL-Client-Cert`` from the trusted 127.0.0.1), the access log on (to a file). Every
answer must be 2xx, else the run stops. Everything stays in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: name -> (path, content type, body of the fixture, extra headers of the fixture)
Request = tuple[str, bytes, list[tuple[bytes, bytes]]]


def _basic(client_id: str, secret: str) -> bytes:
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return b"Basic " + base64.b64encode(raw)


def requests(fx: Any) -> dict[str, Callable[[dict[str, Any]], Request]]:
    """Each endpoint's request, made from the fixture and what earlier answers left (``state``)."""
    form = (b"content-type", b"application/x-www-form-urlencoded")
    auth = (b"authorization", _basic(fx.client_id, fx.secret))
    jsonapi = (b"content-type", b"application/vnd.api+json")
    login = json.dumps(
        {"data": {"type": "auth-token", "attributes": {"login": fx.client_id, "password": fx.secret}}}
    ).encode()
    mid, kid, key = fx.axept

    def refresh(state: dict[str, Any]) -> Request:
        token = state.get("refresh")
        if token is None:
            return ("/b2binpay/token/", login, [jsonapi])
        body = json.dumps({"data": {"type": "auth-token", "attributes": {"refresh": token}}}).encode()
        return ("/b2binpay/token/refresh/", body, [jsonapi])

    return {
        "native": lambda s: ("/oauth2/token", b"grant_type=client_credentials", [form, auth]),
        "nexi": lambda s: (
            "/softpos/appenrollment/token",
            b"grant_type=client_credentials",
            [form, auth, (b"x-ssl-client-cert", fx.cert_header.encode())],
        ),
        "axept": lambda s: (
            "/axept/v1/authenticate",
            json.dumps({"merchantId": mid, "keyId": kid, "key": key}).encode(),
            [(b"content-type", b"application/json")],
        ),
        "mobilepay": lambda s: (
            "/integrator-authentication/connect/token",
            b"grant_type=client_credentials",
            [form, auth],
        ),
        "mobilepay_vat": lambda s: (
            "/integrator-authentication/connect/token",
            f"grant_type=client_credentials&merchant_vat={fx.vat}".encode(),
            [form, auth],
        ),
        "b2b_login": lambda s: ("/b2binpay/token/", login, [jsonapi]),
        "b2b_refresh": refresh,
    }


async def call(
    app: Any, path: str, body: bytes, headers: list[tuple[bytes, bytes]], method: str = "POST"
) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-length", str(len(body)).encode()), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8443),
        "state": {},
    }
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def par_requests(
    app: Any, fx: Any, settings: Any, n: int, *, kidless: bool
) -> Callable[[dict[str, Any]], Request]:
    """The Nexi PAR: a Bearer token (the Nexi token endpoint), then ``n`` bodies each with a fresh
    nested-JWE assertion (``bench/par_pool.py``; kid-less ones to a random key of the JWKS)."""
    from bench import par_pool

    made = requests(fx)["nexi"]({})
    status, answer = await call(app, *made)
    token = json.loads(answer)["access_token"]
    status, jwks = await call(app, "/softpos/par/jwks.json", b"", [], method="GET")
    keys = json.loads(jwks)["keys"]
    m = fx.merchant
    spec = par_pool.assertion_spec(
        client_id=fx.client_id,
        redirect_uri=fx.redirect_uri,
        audience=settings.issuer,
        app_key_pem=fx.key_path.read_bytes(),
        enc_jwk=keys[0],
        pos=m.pos,
        tids=[m.softpos_tid, m.mpos_tid],
        username=m.username,
        lifetime=900,
        enc_jwks=keys,
        kidless=kidless,
    )
    bodies = iter([par_pool.one_body(spec).encode() for _ in range(n + max(n // 10, 50))])
    headers = [
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"authorization", f"Bearer {token}".encode()),
        (b"x-ssl-client-cert", fx.cert_header.encode()),
    ]
    return lambda s: ("/softpos/as/par", next(bodies), headers)


async def drive(app: Any, make: Callable[[dict[str, Any]], Request], n: int) -> float:
    """CPU µs per request over ``n`` requests (after a warm-up of n/10)."""
    state: dict[str, Any] = {}

    async def one() -> None:
        path, body, headers = make(state)
        status, answer = await call(app, path, body, headers)
        if not 200 <= status < 300:
            raise SystemExit(f"{path} answered {status}: {answer[:300]!r}")
        if path.startswith("/b2binpay/"):
            state["refresh"] = json.loads(answer)["data"]["attributes"]["refresh"]

    for _ in range(max(n // 10, 50)):
        await one()
    start = time.process_time()
    for _ in range(n):
        await one()
    return (time.process_time() - start) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--only", default="", help="comma-separated endpoints (default: all but par and par_nokid, the Nexi PAR)"
    )
    p.add_argument("-n", type=int, default=3000, help="requests per endpoint (default 3000)")
    p.add_argument("--json", help="write {endpoint: µs per request} here")
    a = p.parse_args(argv)

    from bench.harness.fixtures import populate
    from bench.harness.servers import UNLIMITED
    from tessera.web.app import create_app
    from tests.support.live import LiveServer

    with tempfile.TemporaryDirectory(prefix="tessera-inproc-") as tmp:
        srv = LiveServer(workdir=Path(tmp), env={**UNLIMITED, "TESSERA_MTLS_MODE": "proxy"})
        srv.init()
        fx = populate(srv, 10)
        settings = srv.settings
        srv.store.close()
        log = open(Path(tmp) / "access.log", "w")  # the access log's lines, as the server writes them
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            app = create_app(settings)
            made = requests(fx)
            chosen = [x for x in a.only.split(",") if x] or list(made)
            results: dict[str, float] = {}

            async def run() -> None:
                for name in chosen:
                    if name in ("par", "par_nokid"):
                        make = await par_requests(app, fx, settings, a.n, kidless=name == "par_nokid")
                    else:
                        make = made[name]
                    results[name] = await drive(app, make, a.n)

            try:
                import uvloop

                uvloop.run(run())
            except ImportError:
                asyncio.run(run())
        finally:
            os.dup2(saved, 2)
            log.close()
    for name, us in results.items():
        print(f"{name:>14}: {us:7.1f} µs CPU per request (in process, {a.n} requests)")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
