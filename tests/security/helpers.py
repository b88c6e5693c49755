"""Helpers of the security suite (../shared/security-checklist.md, one test per row).

The assertions, tokens and certificates are built by the helpers of the end-to-end tests
(``tests/e2e/nexi_helpers.py``, ``tests/e2e/native_helpers.py``): JOSE with ``jwcrypto``,
keys and CSRs with the ``openssl`` CLI, never with tessera's own code. What this module
adds:

- ``ledger``/``nothing_new``: what the server has issued or stored, to prove that a
  refused request left nothing behind: the single-use artefacts by kind (request_uri,
  codes, refresh tokens, claimed ``jti`` …) and how many of them are used up, the
  enrollments, certificates, clients and API keys, and the ``tessera_tokens_issued_total``
  counters of ``/metrics`` (every access token any profile issued).
- ``AssertionSurface``: the two endpoints that take a client assertion (rows 1–13): the
  Nexi PAR (a nested JWE, with the app's Bearer token over mTLS) and the native
  ``/oauth2/token`` with ``private_key_jwt`` (the same nested JWE, signed with the key of a
  certificate bound to the client).
- the error shapes of the profiles that have their own (axept, B2BINPAY, the HTML pages).
- ``client``: an httpx client from its own loopback address (127.45.x.y), so that the
  per-address brute-force counters see only what a test means them to see.
"""

from __future__ import annotations

import itertools
import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from tests.e2e import native_helpers as nh
from tests.e2e import nexi_helpers as nx
from tests.support.live import PLAIN_HTTP, AppIdentity, LiveServer, MerchantSetup

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSONAPI = "application/vnd.api+json"
AXEPT = "/axept/v1/authenticate"
MOBILEPAY = "/integrator-authentication/connect/token"
B2B_LOGIN = "/b2binpay/token/"
B2B_REFRESH = "/b2binpay/token/refresh/"
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")

_addresses = itertools.count(1)


def fresh_address() -> str:
    """A loopback source address of its own (Linux routes all of 127/8 to lo)."""
    n = next(_addresses)
    return f"127.45.{n // 250}.{n % 250 + 1}"


def client(
    server: LiveServer,
    *,
    cert: Path | None = None,
    key: Path | None = None,
    address: str | None = None,
    timeout: float = 30.0,
) -> httpx.Client:
    """httpx over TLS to ``https://localhost:{port}`` (the issuer), trusting the home's CA."""
    ctx = ssl.create_default_context(cafile=str(server.ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    transport = httpx.HTTPTransport(verify=ctx, local_address=address or fresh_address())
    return httpx.Client(base_url=nx.base_url(server), transport=transport, timeout=timeout)


# --------------------------------------------------------------------------------------------
# nothing issued, nothing stored
# --------------------------------------------------------------------------------------------

_ISSUED = re.compile(r'^tessera_tokens_issued_total\{profile="([^"]+)"\} ([0-9.e+]+)$', re.M)


#: One keep-alive client per server process for the metrics scrapes (two for each refused request
#: of the refusal suites): a new client made a TLS context and a handshake each time.
_SCRAPERS: dict[tuple[int, int | None], httpx.Client] = {}
_SCRAPERS_LOCK = threading.Lock()


def _scraper(server: LiveServer) -> httpx.Client:
    key = (server.port, server.proc.pid if server.proc is not None else None)  # a restarted server: a new client
    with _SCRAPERS_LOCK:
        if key not in _SCRAPERS:
            if server.url.startswith("http://"):
                _SCRAPERS[key] = httpx.Client(base_url=server.url, timeout=30, verify=PLAIN_HTTP)
            else:
                _SCRAPERS[key] = nx.http(server, cert=None)
        return _SCRAPERS[key]


def issued(server: LiveServer) -> dict[str, float]:
    """The server's ``tessera_tokens_issued_total`` counters, by profile (over TLS; plain
    HTTP only for a proxy-mode server, which has no TLS listener of its own)."""
    try:
        r = _scraper(server).get("/metrics")
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
        # the server closed the idle keep-alive connection (uvicorn's 5 s) as it was reused: once more
        r = _scraper(server).get("/metrics")
    assert r.status_code == 200, r.text[:200]
    return {f"issued[{p}]": float(v) for p, v in _ISSUED.findall(r.text)}


def ledger(server: LiveServer) -> dict[str, float]:
    from tessera.storage import schema as t

    out: dict[str, float] = {}
    with server.store.engine.connect() as c:
        for kind, n in c.execute(select(t.artifacts.c.kind, func.count()).group_by(t.artifacts.c.kind)):
            out[f"artifacts[{kind}]"] = n
        used = select(t.artifacts.c.kind, func.count()).where(t.artifacts.c.consumed_at.is_not(None))
        for kind, n in c.execute(used.group_by(t.artifacts.c.kind)):
            out[f"consumed[{kind}]"] = n
        for name, table in (
            ("enrollments", t.enrollments),
            ("certificates", t.certificates),
            ("clients", t.clients),
            ("api_keys", t.api_keys),
            ("username_bindings", t.username_bindings),
        ):
            out[name] = c.execute(select(func.count()).select_from(table)).scalar_one()
    out.update(issued(server))
    return out


def assert_nothing_new(server: LiveServer, before: dict[str, float], *, allow: tuple[str, ...] = ()) -> None:
    after = ledger(server)
    grown = {k: (before.get(k, 0), v) for k, v in after.items() if v > before.get(k, 0) and k not in allow}
    assert not grown, f"a refused request issued or stored something (before, after): {grown}"


@contextmanager
def nothing_new(server: LiveServer, *, allow: tuple[str, ...] = ()) -> Iterator[None]:
    before = ledger(server)
    yield
    assert_nothing_new(server, before, allow=allow)


# --------------------------------------------------------------------------------------------
# error shapes
# --------------------------------------------------------------------------------------------

assert_error = nx.assert_error  # RFC 6749 §5.2 JSON, no-store, WWW-Authenticate on 401


def assert_axept_error(r: httpx.Response, status: int) -> dict[str, Any]:
    """axept: ``{"status", "error", "message"}`` with no-store."""
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].split(";")[0] == "application/json", r.headers
    assert "no-store" in r.headers.get("cache-control", "")
    body = r.json()
    assert set(body) == {"status", "error", "message"} and body["status"] == status, body
    assert "token" not in body
    return body


def assert_jsonapi_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """B2BINPAY: JSON:API ``errors[]`` with ``code``, with no-store."""
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].split(";")[0] == JSONAPI, r.headers
    assert "no-store" in r.headers.get("cache-control", "")
    body = r.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1, body
    err = body["errors"][0]
    assert err["status"] == str(status) and err["code"] == code, err
    return err


def assert_html_error(r: httpx.Response, status: int, error: str) -> str:
    """The HTML error page of the authorize endpoints: no redirect, the code shown."""
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("text/html")
    assert "no-store" in r.headers.get("cache-control", "")
    assert "location" not in r.headers
    assert f"<code>{error}</code>" in r.text, r.text[:500]
    return r.text


def assert_429(r: httpx.Response, shape: str) -> None:
    if shape == "axept":
        assert_axept_error(r, 429)
    elif shape == "b2binpay":
        assert_jsonapi_error(r, 429, "throttled")
    else:
        assert_error(r, 429, "slow_down")
    assert int(r.headers["retry-after"]) >= 1, r.headers


# --------------------------------------------------------------------------------------------
# rows 1-13: the endpoints that take a client assertion
# --------------------------------------------------------------------------------------------


@dataclass
class AssertionSurface:
    """One endpoint taking a nested client assertion, with everything needed to call it."""

    name: str
    server: LiveServer
    ident: AppIdentity  # the client: id, certificate and the openssl key that signs
    other: AppIdentity  # another client of the same kind (its key is not bound to ``ident``)
    merchant: MerchantSetup | None
    jwks: dict[str, Any]  # the server's published encryption keys
    http: httpx.Client  # over TLS, with the client certificate where the endpoint needs it
    token: str | None = None  # Nexi: the app's Bearer token
    path: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def assertion(self, **kw: Any) -> nx.Assertion:
        kw.setdefault("jwks", self.jwks)
        return nx.build_assertion(self.server, self.ident, self.merchant, **kw)

    def send(self, assertion: str | nx.Assertion, **form: str) -> httpx.Response:
        token = assertion if isinstance(assertion, str) else assertion.token
        if self.name == "nexi_par":
            return nx.par_request(self.http, self.token, nx.par_form(self.ident, token, **form))
        data = {
            "grant_type": "client_credentials",
            "client_assertion_type": nh.JWT_BEARER,
            "client_assertion": token,
            **form,
        }
        return self.http.post(nh.TOKEN, data=data, headers=FORM)

    def accepted(self, resp: httpx.Response) -> None:
        if self.name == "nexi_par":
            nx.assert_par_created(resp)
            return
        assert resp.status_code == 200, resp.text[:300]
        body = resp.json()
        _, claims = nx.verify_server_jwt(self.server, body["access_token"])
        assert claims["client_id"] == self.ident.client_id

    @property
    def refusal_status(self) -> int:
        """The status of an assertion refusal: the Nexi PAR answers 400, as the provider does
        (RFC 6749 §5.2 allows it: no Authorization header was used); the native endpoint 401."""
        return 400 if self.name == "nexi_par" else 401

    @property
    def max_lifetime(self) -> int:
        """The longest ``exp - iat``: the provider's 900 s at the Nexi PAR, 300 s natively."""
        return 900 if self.name == "nexi_par" else 300

    @property
    def iat_tolerance(self) -> int:
        """How far ahead ``iat``/``nbf`` may be: 2 s at the Nexi PAR (the provider refuses a
        future iat), the configured clock_skew (30 s) natively."""
        return 2 if self.name == "nexi_par" else 30

    def refuse(
        self, assertion: str | nx.Assertion, status: int | None = None, error: str = "invalid_client", **form: str
    ) -> dict[str, Any]:
        """Send; assert the refusal and that nothing was issued or stored."""
        if status is None:
            status = self.refusal_status if error == "invalid_client" else 400
        before = ledger(self.server)
        body = assert_error(self.send(assertion, **form), status, error)
        assert_nothing_new(self.server, before)
        return body


def nexi_surface(server: LiveServer) -> AssertionSurface:
    app = server.new_app()
    merchant = server.new_merchant(app)
    other = server.new_app()
    return AssertionSurface(
        "nexi_par",
        server,
        app,
        other,
        merchant,
        nx.fetch_jwks(server),
        nx.http(server, app),
        token=nx.get_token(server, app),
        path=nx.PAR_PATH,
    )


def native_surface(server: LiveServer) -> AssertionSurface:
    """A ``private_key_jwt`` client whose key is the one of its bound developer certificate."""
    me = nh.register(server, methods=("private_key_jwt",), with_cert=True)
    other = nh.register(server, methods=("private_key_jwt",), with_cert=True)
    return AssertionSurface(
        "native_token",
        server,
        me.identity(),
        other.identity(),
        None,
        nx.fetch_jwks(server),
        nh.http(server, mtls=False),
        path=nh.TOKEN,
    )


# --------------------------------------------------------------------------------------------
# rows 14-28: one Nexi app, its merchant, and another app
# --------------------------------------------------------------------------------------------


@dataclass
class NexiEnv:
    server: LiveServer
    app: AppIdentity
    merchant: MerchantSetup
    other: AppIdentity
    token: str
    jwks: dict[str, Any]
    backend: httpx.Client  # the app's backend: its certificate
    browser: httpx.Client  # the merchant's browser: no certificate

    def assertion(self, merchant: MerchantSetup | None = None, **kw: Any) -> str:
        return nx.build_assertion(self.server, self.app, merchant or self.merchant, jwks=self.jwks, **kw).token

    def par(
        self, assertion: str | None = None, *, token: Any = nx.DEFAULT, c: httpx.Client | None = None, **form: str
    ) -> httpx.Response:
        assertion = assertion if assertion is not None else self.assertion()
        return nx.par_request(
            c or self.backend, self.token if token is nx.DEFAULT else token, nx.par_form(self.app, assertion, **form)
        )

    def close(self) -> None:
        self.backend.close()
        self.browser.close()


def nexi_env(server: LiveServer) -> NexiEnv:
    app = server.new_app()
    return NexiEnv(
        server,
        app,
        server.new_merchant(app),
        server.new_app(),
        nx.get_token(server, app),
        nx.fetch_jwks(server),
        nx.http(server, app),
        nx.http(server, cert=None),
    )
