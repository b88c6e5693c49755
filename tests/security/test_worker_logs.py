"""Checklist rows 35 and 44: with any number of workers, the server's log holds exactly one
access line per request, written by tessera (no query string, no path: the route template),
and none of the secrets the flows carried in a URL, a form, a JSON body or a header.

``tessera serve --workers 1`` and ``--workers 2`` (uvicorn's supervisor and its worker
processes, which configure logging again after uvicorn did). Every
HTTP exchange goes through a recording transport, so the test knows how many requests it made
and every secret that was on the wire:

- Nexi: the client-credentials token (client secret, over mTLS), the PAR (Bearer token,
  nested JWE assertion, ``state``), ``GET /softpos/as/authorize?client_id=…&request_uri=…``,
  the merchant's login (password), the redirect with ``code`` and ``state``, the code
  exchange (PKCE verifier);
- native: a plain ``GET /oauth2/authorize?…&state=…&code_challenge=…``, the login, the
  redirect with ``code`` and ``state``, the code exchange, a refresh, client credentials;
- B2BINPAY login (password) and refresh; the axept key; MobilePay's client secret (Basic);
- refusals that carry secrets in the URL: an unknown ``request_uri`` at both authorize
  pages, an unmatched path with ``?code=…&state=…``, a wrong client secret.

After the server stopped, ``server.log`` (stdout and stderr of every process) is scanned.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

import httpx
import pytest

from tessera.core import apikeys
from tests.e2e import native_helpers as nh
from tests.e2e import nexi_helpers as nx
from tests.security.test_secrets_scan import Recorder, secrets_on_the_wire
from tests.support.live import LiveServer

pytestmark = pytest.mark.slow

#: uvicorn's own access line: ``127.0.0.1:5555 - "GET /path?query HTTP/1.1" 200``.
UVICORN_ACCESS = re.compile(rb'"(GET|POST|HEAD|PUT|PATCH|DELETE|OPTIONS) /[^"]* HTTP/\d')
HIDDEN = re.compile(r'name="(client_id|request_uri)" value="([^"]*)"')


@pytest.fixture(params=[1, 2], ids=lambda n: f"{n}-workers")
def server(request, tmp_path):
    srv = LiveServer(tmp_path, env={"TESSERA_LOG_LEVEL": "info"}, serve_args=("--workers", str(request.param))).start()
    srv.workers = request.param
    yield srv
    srv.stop()


def run_flows(server: LiveServer, exchanges: list, extra: dict[str, str]) -> None:
    base = nx.base_url(server)
    app = server.new_app(with_cert=True, redirect_uri="https://scan.example.test/cb")
    merchant = server.new_merchant(app)
    extra[merchant.password] = "merchant password"

    def recorded(cert=None, key=None) -> httpx.Client:
        return httpx.Client(
            base_url=base, transport=Recorder(exchanges, verify=nx.ssl_ctx(server, cert, key)), timeout=30
        )

    # --- Nexi: token, PAR, authorize with request_uri, login, code in the redirect, exchange -----------
    with recorded(app.cert, app.key) as c:
        r = nx.token_request(c, app)
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        jwks = c.get(nx.JWKS_PATH).json()
        verifier, challenge = nx.pkce_pair()
        state = "nexi-state-" + secrets.token_urlsafe(16)
        extra.update({verifier: "Nexi PKCE verifier", state: "Nexi state"})
        assertion = nx.build_assertion(server, app, merchant, jwks=jwks).token
        r = nx.par_request(
            c, token, nx.par_form(app, assertion, state=state, code_challenge=challenge, code_challenge_method="S256")
        )
        uri = nx.assert_par_created(r)
    with recorded() as browser:
        page = browser.get(nx.AUTHORIZE_PATH, params={"client_id": app.client_id, "request_uri": uri})
        assert page.status_code == 200, page.text[:300]
        r = nx.login(browser, app, uri, merchant.username, merchant.password)
        back = nx.code_from(r, app)
        assert back["state"] == state
        # refusals with secrets in the URL
        assert (
            browser.get(
                nx.AUTHORIZE_PATH,
                params={"client_id": app.client_id, "request_uri": "urn:softpos_" + secrets.token_hex(16)},
            ).status_code
            == 400
        )
        fake_code, fake_state = secrets.token_urlsafe(24), "lost-state-" + secrets.token_urlsafe(16)
        extra.update({fake_code: "code in an unmatched URL", fake_state: "state in an unmatched URL"})
        assert browser.get(f"/no/such/path?code={fake_code}&state={fake_state}").status_code == 404
    with recorded(app.cert, app.key) as c:
        r = nx.exchange(c, app, back["code"], code_verifier=verifier)
        assert r.status_code == 200, r.text
        wrong = "wrong-" + secrets.token_urlsafe(24)
        extra[wrong] = "a wrong client secret"
        assert nx.token_request(c, app, client_secret=wrong).status_code == 401

    # --- native: plain authorization request with state, login, code, exchange, refresh -----------------
    nc = nh.register(server)
    server.store.grant(merchant.merchant_id, nc.client_id, int(time.time()))
    verifier, challenge = nh.pkce()
    state = "native-state-" + secrets.token_urlsafe(16)
    extra.update({verifier: "native PKCE verifier", state: "native state"})
    with recorded() as browser:
        page = browser.get(
            nh.AUTHORIZE,
            params={
                "response_type": "code",
                "client_id": nc.client_id,
                "redirect_uri": nc.redirect_uri,
                "scope": "openid",
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        assert page.status_code == 200, page.text[:300]
        hidden = dict(HIDDEN.findall(page.text))
        extra[hidden["request_uri"]] = "native request_uri (from the page)"
        r = browser.post(nh.AUTHORIZE, data={**hidden, "username": merchant.username, "password": merchant.password})
        back = nh.code_from(r)
        assert back["state"] == state
        assert (
            browser.get(
                nh.AUTHORIZE,
                params={
                    "client_id": nc.client_id,
                    "request_uri": "urn:ietf:params:oauth:request_uri:" + secrets.token_urlsafe(24),
                },
            ).status_code
            == 400
        )
    with recorded() as c:
        r = c.post(
            nh.TOKEN,
            data={
                "grant_type": "authorization_code",
                "code": back["code"],
                "redirect_uri": nc.redirect_uri,
                "code_verifier": verifier,
            },
            auth=nh.basic(nc),
        )
        assert r.status_code == 200, r.text
        r = c.post(
            nh.TOKEN,
            data={"grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"]},
            auth=nh.basic(nc),
        )
        assert r.status_code == 200, r.text
        assert c.post(nh.TOKEN, data={"grant_type": "client_credentials"}, auth=nh.basic(nc)).status_code == 200

    # --- B2BINPAY login and refresh; axept key; MobilePay secret ---------------------------------------
    key_record, key = apikeys.create_key(
        server.store, server.settings.pepper_bytes(), merchant.merchant_id, int(time.time()), max_enabled=3
    )
    with recorded() as c:
        jsonapi = {"Content-Type": "application/vnd.api+json"}
        body = {"data": {"type": "auth-token", "attributes": {"login": app.client_id, "password": app.client_secret}}}
        r = c.post("/b2binpay/token/", content=json.dumps(body), headers=jsonapi)
        assert r.status_code == 200, r.text
        refresh = {"data": {"type": "auth-token", "attributes": {"refresh": r.json()["data"]["attributes"]["refresh"]}}}
        r = c.post("/b2binpay/token/refresh/", content=json.dumps(refresh), headers=jsonapi)
        assert r.status_code == 200, r.text
        r = c.post(
            "/axept/v1/authenticate", json={"merchantId": merchant.merchant_id, "keyId": key_record.key_id, "key": key}
        )
        assert r.status_code == 200, r.text
        r = c.post(
            "/integrator-authentication/connect/token",
            data={"grant_type": "client_credentials"},
            auth=(app.client_id, app.client_secret),
        )
        assert r.status_code == 200, r.text


def test_one_access_line_per_request_and_no_secret_with_any_number_of_workers(server):
    exchanges: list = []
    extra: dict[str, str] = {}
    run_flows(server, exchanges, extra)
    time.sleep(0.3)  # the last access lines are written after the response
    server.stop()
    log = (server.workdir / "server.log").read_bytes()

    # exactly one access line per request, every one of them tessera's
    lines = [json.loads(line) for line in log.splitlines() if line.startswith(b"{")]
    access = [d for d in lines if d.get("event") == "request"]
    assert len(access) == len(exchanges), (len(access), len(exchanges), server.log_tail(40))
    assert not UVICORN_ACCESS.search(log), UVICORN_ACCESS.search(log).group(0)
    assert not [d for d in lines if d.get("logger") == "uvicorn.access"]
    for d in access:
        assert "?" not in json.dumps(d), d
        assert set(d) <= {
            "event",
            "level",
            "timestamp",
            "request_id",
            "method",
            "route",
            "status",
            "profile",
            "duration_ms",
            "client",
            "reason",
        }, d
    paths = {request.url.path for request, _ in exchanges}
    assert "/no/such/path" in paths and "/no/such/path" not in log.decode()  # not even the raw unmatched path
    if server.workers > 1:  # both processes were started by uvicorn's supervisor
        assert log.count(b"Started server process") >= 2, server.log_tail(40)

    # no secret that was on the wire, in any form it could be logged in
    found = {**secrets_on_the_wire(exchanges), **extra}
    kinds = " ".join(found.values())
    for what in (
        "request_uri",
        "code",
        "client_secret",
        "password",
        "access_token",
        "refresh",
        "key",
        "client_assertion",
        "state",
        "PKCE verifier",
    ):
        assert what in kinds, (what, kinds)
    for value, what in found.items():
        for form in {value, quote(value, safe=""), quote_plus(value), value.rsplit(":", 1)[-1].rsplit("_", 1)[-1]}:
            if len(form) >= 16:
                assert form.encode() not in log, f"{what} in the server log"
    # nor any query string of a request that carried one
    for request, _ in exchanges:
        query = request.url.query.decode()
        if query:
            for values in parse_qs(query).values():
                for v in values:
                    if len(v) >= 16:
                        assert v.encode() not in log, (request.url.path, "query value in the log")
            assert urlsplit(str(request.url)).query.encode() not in log
