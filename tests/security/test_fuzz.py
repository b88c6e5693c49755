"""API fuzzing: schemathesis, run against the server's own OpenAPI document
(``GET /openapi.json``, written by hand in ``tessera/web/openapi.json``), finds no 5xx and
no response that breaks the document, on every public endpoint, over TLS.

The run is bounded to fit in CI (about 35 s on two cores for the 28 operations; the
subprocess is killed after ``BUDGET`` seconds): a fixed seed (the same cases every run), at
most ``MAX_EXAMPLES`` cases per operation and phase, the examples, coverage and fuzzing
phases, two workers. Checks: ``not_a_server_error``,
``response_schema_conformance`` and ``status_code_conformance`` (the document lists every
status code each operation may answer), plus ``content_type_conformance`` and
``response_headers_conformance`` (e.g. ``Cache-Control: no-store`` on tokens and errors).

To reach past the credential checks, the document is given ``example`` request bodies
with live credentials made for the run (the examples phase sends them first), and
schemathesis authenticates with them: the app's certificate on every TLS connection
(``--request-cert``), its client_id/secret for the ``clientSecretBasic`` scheme and its
Nexi token for the ``bearer`` scheme (an OpenAPI-aware ``[auth.openapi.*]`` config).
schemathesis applies no scheme of a requirement that needs two at once (mTLS *and* a
Bearer token), so the run's copy of the document drops ``mutualTLS`` from those (the
certificate is on every connection anyway), and names the userinfo endpoint's Bearer
scheme ``nativeBearer``, given a native user's token. After the run, the server's own
``/metrics`` must show a success (2xx/3xx) on every operation in ``MUST_SUCCEED``: the
JSON and JSON:API bodies of axept and B2BINPAY, the Nexi PAR and token endpoints, the
MobilePay and native endpoints.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid

import pytest

from tessera.core import apikeys
from tessera.core.models import Merchant
from tests.e2e import native_helpers as nh
from tests.e2e import nexi_helpers as nx
from tests.security.helpers import B2B_LOGIN, JSONAPI, client, issued

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 100
SEED = 20261121
BUDGET = 240  # seconds: the whole schemathesis run, a hard bound (about 35 s alone; a loaded machine takes 3x)
CHECKS = (
    "not_a_server_error,response_schema_conformance,status_code_conformance,"
    "content_type_conformance,response_headers_conformance"
)
#: Routes that are not part of the public API description: the metrics scrape, and the
#: B2BINPAY paths without the trailing slash (aliases of the documented ones).
UNDOCUMENTED = {"/metrics", "/b2binpay/token", "/b2binpay/token/refresh"}
#: Operations that must answer a success at least once during the run (the others need a
#: merchant's sign-in or a code, which only a browser flow makes).
MUST_SUCCEED = {
    ("/healthz", "GET"),
    ("/readyz", "GET"),
    ("/openapi.json", "GET"),
    ("/oauth2/jwks", "GET"),
    ("/.well-known/oauth-authorization-server", "GET"),
    ("/.well-known/openid-configuration", "GET"),
    ("/oauth2/token", "POST"),
    ("/oauth2/par", "POST"),
    ("/oauth2/introspect", "POST"),
    ("/oauth2/revoke", "POST"),
    ("/oauth2/userinfo", "GET"),
    ("/oauth2/userinfo", "POST"),
    ("/oauth2/authorize", "GET"),
    ("/softpos/appenrollment/token", "POST"),
    ("/softpos/par/jwks.json", "GET"),
    ("/softpos/as/par", "POST"),
    ("/softpos/as/authorize", "GET"),
    ("/axept/v1/authenticate", "POST"),
    ("/integrator-authentication/connect/token", "POST"),
    ("/integrator-authentication/connect/introspect", "POST"),
    ("/integrator-authentication/connect/revocation", "POST"),
    ("/integrator-authentication/.well-known/openid-configuration", "GET"),
    ("/integrator-authentication/.well-known/openid-configuration/jwks", "GET"),
    ("/b2binpay/token/", "POST"),
    ("/b2binpay/token/refresh/", "POST"),
}


def served_document(server) -> dict:
    with nx.http(server, cert=None) as c:
        r = c.get("/openapi.json")
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def test_openapi_document_describes_every_public_route(live_server, monkeypatch):
    from starlette.routing import Route

    from tessera.web import app as web_app

    doc = served_document(live_server)
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"] == [{"url": nx.base_url(live_server)}]
    monkeypatch.setattr(web_app, "configure_logging", lambda *a, **kw: None)  # leave this process's logging alone
    app = web_app.create_app(live_server.settings, store=live_server.store)  # the routes only: nothing is called
    # The portal's HTML pages (docs/portal.md) are no API: the document leaves them out; the admin
    # API has its own document (/admin/v1/openapi.json; tests/admin_api checks it).
    routes = {r.path for r in app.routes if isinstance(r, Route) and not r.path.startswith(("/portal", "/admin/v1/"))}
    assert set(doc["paths"]) == routes - UNDOCUMENTED, set(doc["paths"]) ^ (routes - UNDOCUMENTED)
    # every operation lists its error answers, and every $ref resolves
    text = json.dumps(doc)
    for ref in set(re.findall(r'"\$ref": "#/components/(\w+)/(\w+)"', text)):
        assert ref[1] in doc["components"][ref[0]], ref
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert any(code.startswith(("2", "3")) for code in op["responses"]), (path, method)
            if "requestBody" in op or op.get("security") != []:
                assert any(code.startswith("4") for code in op["responses"]), (path, method)


def test_openapi_document_follows_the_configured_prefixes(tmp_path):
    from tessera.config import Settings
    from tessera.web.openapi import document

    settings = Settings(home=tmp_path, nexi_prefix="", axept_prefix="/ax", issuer="https://auth.example")
    paths = document(settings)["paths"]
    assert "/appenrollment/token" in paths and "/as/par" in paths and "/softpos/as/par" not in paths
    assert "/ax/v1/authenticate" in paths and "/b2binpay/token/" in paths and "/oauth2/token" in paths
    assert document(settings)["servers"] == [{"url": "https://auth.example"}]


def _live_examples(server) -> tuple[dict, dict]:
    """Live credentials, and an example request for each operation that can succeed."""
    app = server.new_app()
    merchant = server.new_merchant(app)
    token = nx.get_token(server, app)
    vat = f"DK{uuid.uuid4().int % 10**8:08d}"
    vat_mid = uuid.uuid4().int % 10**9 + 1
    server.store.create_merchant(Merchant(vat_mid, "Fuzz Shop", vat, int(time.time())))
    server.store.grant(vat_mid, app.client_id, int(time.time()))
    record, key = apikeys.create_key(
        server.store, server.settings.pepper_bytes(), merchant.merchant_id, int(time.time()), max_enabled=3
    )
    with client(server) as c:
        login = c.post(
            B2B_LOGIN,
            content=json.dumps(
                {"data": {"type": "auth-token", "attributes": {"login": app.client_id, "password": app.client_secret}}}
            ),
            headers={"Content-Type": JSONAPI},
        )
    assert login.status_code == 200, login.text
    native_token = nh.client_credentials(server, nh.register(server))["access_token"]
    with client(server) as c:
        mobilepay = c.post(
            "/integrator-authentication/connect/token",
            data={"grant_type": "client_credentials"},
            auth=(app.client_id, app.client_secret),
        )
    assert mobilepay.status_code == 200, mobilepay.text
    request_uri = nx.push(server, app, merchant, token=token)
    _, challenge = nx.pkce_pair()
    nc = nh.register(server)
    server.store.grant(merchant.merchant_id, nc.client_id, int(time.time()))
    user_token = nh.authorization_code_flow(server, nc, merchant)[0]["access_token"]  # openid: good at userinfo
    auth = {"app": app, "token": token, "user_token": user_token}
    examples = {
        # (an operation asking for two schemes at once, mTLS and Basic, gets no Basic from schemathesis:
        # client_secret_post instead)
        ("/softpos/appenrollment/token", "post"): {
            "grant_type": "client_credentials",
            "client_id": app.client_id,
            "client_secret": app.client_secret,
        },
        ("/softpos/as/par", "post"): {
            "client_assertion": nx.build_assertion(server, app, merchant).token,
            "client_id": app.client_id,
            "scope": "oidc",
            "redirect_uri": app.redirect_uri,
        },
        ("/softpos/as/authorize", "get"): {"client_id": app.client_id, "request_uri": request_uri},
        ("/axept/v1/authenticate", "post"): {"merchantId": merchant.merchant_id, "keyId": record.key_id, "key": key},
        ("/integrator-authentication/connect/token", "post"): {"grant_type": "client_credentials", "merchant_vat": vat},
        ("/b2binpay/token/", "post"): {
            "data": {"type": "auth-token", "attributes": {"login": app.client_id, "password": app.client_secret}}
        },
        ("/b2binpay/token/refresh/", "post"): {
            "data": {"type": "auth-token", "attributes": {"refresh": login.json()["data"]["attributes"]["refresh"]}}
        },
        ("/oauth2/token", "post"): {"grant_type": "client_credentials"},
        ("/oauth2/par", "post"): {
            "response_type": "code",
            "redirect_uri": app.redirect_uri,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
        ("/oauth2/introspect", "post"): {"token": native_token},
        ("/oauth2/revoke", "post"): {"token": token},
        ("/integrator-authentication/connect/introspect", "post"): {"token": mobilepay.json()["access_token"]},
        ("/integrator-authentication/connect/revocation", "post"): {
            "token": mobilepay.json()["access_token"],
            "token_type_hint": "access_token",
        },
    }
    return auth, examples


def _with_examples(doc: dict, examples: dict) -> dict:
    for (path, method), value in examples.items():
        op = doc["paths"][path][method]
        if "requestBody" in op:
            for media in op["requestBody"]["content"].values():
                media["example"] = value
        else:
            for param in op.get("parameters", []):
                if param["name"] in value:
                    param["example"] = value[param["name"]]
    return doc


def _for_schemathesis(doc: dict) -> dict:
    """The run's copy: requirements that schemathesis can apply (see the module docstring)."""
    doc["components"]["securitySchemes"]["nativeBearer"] = dict(doc["components"]["securitySchemes"]["bearer"])
    for path, item in doc["paths"].items():
        for op in item.values():
            if "security" not in op:
                continue
            op["security"] = [
                {k: v for k, v in req.items() if k != "mutualTLS"} if len(req) > 1 else req for req in op["security"]
            ]
            if path == "/oauth2/userinfo":
                op["security"] = [{"nativeBearer": []}]
    return doc


def _answers(server) -> dict[tuple[str, str], dict[str, float]]:
    """``tessera_http_requests_total`` from the server's ``/metrics``: (route, method) -> {status: count}."""
    with nx.http(server, cert=None) as c:
        text = c.get("/metrics").text
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, str], dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tessera_http_requests_total":
                labels = sample.labels
                out.setdefault((labels["route"], labels["method"]), {})[labels["status"]] = sample.value
    assert out, "no tessera_http_requests_total in /metrics"
    return out


def _stats(out: str) -> str:
    m = re.search(r"Test cases:\s*\n\s*(.+)", out)
    ops = re.search(r"Tested: (\d+)", out)
    return f"{ops.group(1) if ops else '?'} operations, {m.group(1).strip() if m else '?'}"


def test_schemathesis_finds_no_server_error_and_no_schema_break(live_server, tmp_path, record_property):
    pytest.importorskip("schemathesis")
    auth, examples = _live_examples(live_server)
    app = auth["app"]
    doc = _for_schemathesis(_with_examples(served_document(live_server), examples))
    (tmp_path / "openapi.json").write_text(json.dumps(doc))
    (tmp_path / "schemathesis.toml").write_text(
        "[auth.openapi.clientSecretBasic]\n"
        f'username = "{app.client_id}"\npassword = "{app.client_secret}"\n'
        "[auth.openapi.bearer]\n"
        f'bearer = "{auth["token"]}"\n'
        "[auth.openapi.nativeBearer]\n"
        f'bearer = "{auth["user_token"]}"\n'
    )
    cmd = [
        sys.executable,
        "-c",
        "from schemathesis.cli import schemathesis; schemathesis()",
        "--config-file",
        str(tmp_path / "schemathesis.toml"),
        "run",
        str(tmp_path / "openapi.json"),
        "--url",
        nx.base_url(live_server),
        "--tls-verify",
        str(live_server.ca),
        "--request-cert",
        str(app.cert),
        "--request-cert-key",
        str(app.key),
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "2",
        "--max-redirects",
        "0",
        "--request-timeout",
        "10",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path / "report"),
    ]
    before = issued(live_server)
    answers_before = _answers(live_server)
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=BUDGET)
    elapsed = time.monotonic() - started
    out = proc.stdout + proc.stderr
    stats = _stats(out)
    record_property("schemathesis", f"{stats} in {elapsed:.1f}s")
    print(f"\nschemathesis: {stats} in {elapsed:.1f}s (seed {SEED}, max-examples {MAX_EXAMPLES})")
    (tmp_path / "schemathesis.out").write_text(out)
    assert proc.returncode == 0, f"schemathesis found problems ({stats}):\n{out[-30000:]}"
    assert re.search(r"Tested: (\d+)", out) and int(re.search(r"Tested: (\d+)", out).group(1)) == sum(
        len(item) for item in doc["paths"].values()
    ), out[-3000:]
    # the examples reached past the credential checks: the run issued tokens on every profile
    after = issued(live_server)
    for profile in ("nexi-softpos", "axept", "mobilepay", "b2binpay", "native"):
        key = f"issued[{profile}]"
        assert after.get(key, 0) > before.get(key, 0), (profile, before, after)
    # every operation that can succeed did, at least once, during the run (the examples reached it)
    answers = _answers(live_server)

    def successes(route: str, method: str) -> float:
        now, then = answers.get((route, method), {}), answers_before.get((route, method), {})
        return sum(n - then.get(code, 0) for code, n in now.items() if code[0] in "23")

    missing = sorted(op for op in MUST_SUCCEED if successes(*op) <= 0)
    assert not missing, f"no success during the run: {missing}"
    assert all(not code.startswith("5") for counts in answers.values() for code in counts), answers
    assert live_server.proc.poll() is None, "the server died"
