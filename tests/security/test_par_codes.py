"""Checklist rows 14-22: PAR, authorization codes, PKCE.

The rows about the pushed request run on the Nexi PAR endpoint (``/softpos/as/par``, mTLS +
Bearer + nested JWE assertion), the merchant's login page (``/softpos/as/authorize``) and
the code exchange (``/softpos/as/token``); where the native surface (``/oauth2/par``,
``/oauth2/authorize``, ``/oauth2/token``) has the same rule, it is checked there too. The
login pages answer with their HTML error page; the JSON endpoints with RFC 6749 errors.
Every refusal also checks that nothing was issued or stored (``nothing_new``).
"""

from __future__ import annotations

import time
import uuid

import pytest

from tessera.core.models import Terminal
from tests.e2e import native_helpers as nh
from tests.e2e import nexi_helpers as nx
from tests.security.helpers import assert_error, assert_html_error, nothing_new
from tests.support.live import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    """A server whose request_uri and codes live 2 s: everything is set up, then one wait."""
    server = LiveServer(
        tmp_path_factory.mktemp("sec-short"), env={"TESSERA_PAR_TTL": "2", "TESSERA_CODE_TTL": "2"}
    ).start()
    try:
        app = server.new_app()
        m1, m2 = server.new_merchant(app), server.new_merchant(app)
        token = nx.get_token(server, app)
        t0 = time.time()
        uri = nx.push(server, app, m1, token=token, expires_in=2)
        verifier, challenge = nx.pkce_pair()
        code = nx.login_for_code(
            server, app, m2, nx.push(server, app, m2, token=token, code_challenge=challenge, expires_in=2)
        )
        nc = nh.register(server)
        native_uri = nh.push(server, nc).json()["request_uri"]
        t_last = time.time()  # the server made native_uri before this
        # Everything expires 2 s after it was made, the last one (native_uri) included: a busy
        # machine may have taken more than a second to make them all.
        time.sleep(max(0.0, t0 + 3.2 - time.time(), 2.2 - (time.time() - t_last)))
        yield dict(server=server, app=app, m1=m1, uri=uri, code=code, verifier=verifier, nc=nc, native_uri=native_uri)
    finally:
        server.stop()


def fresh_code(nexi, merchant=None, *, pkce: bool = True) -> tuple[str, str | None]:
    merchant = merchant or nexi.server.new_merchant(nexi.app)
    verifier, challenge = nx.pkce_pair()
    uri = nx.push(
        nexi.server, nexi.app, merchant, token=nexi.token, jwks=nexi.jwks, code_challenge=challenge if pkce else None
    )
    return nx.login_for_code(nexi.server, nexi.app, merchant, uri), (verifier if pkce else None)


# === 14 ==========================================================================================


def test_row_14_par_without_client_certificate_401(nexi):
    with nx.http(nexi.server, cert=None) as c, nothing_new(nexi.server):
        assert_error(nexi.par(c=c), 401, "invalid_client")


@pytest.mark.parametrize("token", [None, "not-a-jwt"], ids=["no-bearer", "garbage-bearer"])
def test_row_14_par_without_the_bearer_token_401(nexi, token):
    with nothing_new(nexi.server):
        assert_error(nexi.par(token=token), 401, "invalid_token")


@pytest.mark.parametrize("how", ["none", "wrong-secret"])
def test_row_14_native_par_without_client_authentication_401(live_server, how):
    nc = nh.register(live_server)
    if how == "wrong-secret":
        nc.client_secret = "wrong-" + uuid.uuid4().hex
    with nothing_new(live_server):
        if how == "none":
            _, challenge = nh.pkce()
            with nh.http(live_server) as c:
                r = c.post(
                    nh.PAR,
                    data={
                        "response_type": "code",
                        "client_id": nc.client_id,
                        "redirect_uri": nc.redirect_uri,
                        "code_challenge": challenge,
                        "code_challenge_method": "S256",
                    },
                )
        else:
            r = nh.push(live_server, nc)
        assert_error(r, 401, "invalid_client")


# === 15 ==========================================================================================


def test_row_15_request_uri_inside_the_par_body(nexi):
    with nothing_new(nexi.server):
        assert_error(nexi.par(request_uri=f"urn:softpos_{uuid.uuid4()}"), 400, "invalid_request")


def test_row_15_request_uri_inside_the_native_par_body(live_server):
    nc = nh.register(live_server)
    with nothing_new(live_server):
        assert_error(
            nh.push(live_server, nc, request_uri="urn:ietf:params:oauth:request_uri:abc"), 400, "invalid_request"
        )


# === 16 ==========================================================================================


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_row_16_get_or_put_on_the_par_endpoint_405(nexi, method):
    with nothing_new(nexi.server):
        r = nexi.backend.request(method, nx.PAR_PATH, headers={"Authorization": f"Bearer {nexi.token}"})
        assert_error(r, 405, "invalid_request")
    assert r.headers["allow"] == "POST"


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_row_16_get_or_put_on_the_native_par_endpoint_405(live_server, method):
    nc = nh.register(live_server)
    with nh.http(live_server) as c, nothing_new(live_server):
        r = c.request(method, nh.PAR, auth=nh.basic(nc))
        assert_error(r, 405, "invalid_request")
    assert r.headers["allow"] == "POST"


# === 17 ==========================================================================================


def test_row_17_request_uri_reused_after_the_authorization_finished(nexi):
    m = nexi.server.new_merchant(nexi.app)
    uri = nx.push(nexi.server, nexi.app, m, token=nexi.token, jwks=nexi.jwks)
    nx.code_from(nx.login(nexi.browser, nexi.app, uri, m.username, m.password), nexi.app)
    with nothing_new(nexi.server):
        assert_html_error(
            nexi.browser.get(nx.AUTHORIZE_PATH, params={"client_id": nexi.app.client_id, "request_uri": uri}),
            400,
            "invalid_request_uri",
        )
        assert_html_error(nx.login(nexi.browser, nexi.app, uri, m.username, m.password), 400, "invalid_request_uri")


def test_row_17_request_uri_after_it_expired(short):
    server, app, m1 = short["server"], short["app"], short["m1"]
    with nx.http(server, cert=None) as b, nothing_new(server):
        assert_html_error(
            b.get(nx.AUTHORIZE_PATH, params={"client_id": app.client_id, "request_uri": short["uri"]}),
            400,
            "invalid_request_uri",
        )
        assert_html_error(nx.login(b, app, short["uri"], m1.username, m1.password), 400, "invalid_request_uri")


def test_row_17_native_request_uri_after_it_expired(short):
    server, nc = short["server"], short["nc"]
    with nh.http(server, mtls=False) as b, nothing_new(server):
        assert_html_error(
            b.get(nh.AUTHORIZE, params={"client_id": nc.client_id, "request_uri": short["native_uri"]}),
            400,
            "invalid_request_uri",
        )


# === 18 ==========================================================================================


def test_row_18_another_clients_request_uri(nexi):
    m = nexi.server.new_merchant(nexi.app)
    uri = nx.push(nexi.server, nexi.app, m, token=nexi.token, jwks=nexi.jwks)
    with nothing_new(nexi.server):  # nothing issued, and the request_uri not used up
        assert_html_error(
            nexi.browser.get(nx.AUTHORIZE_PATH, params={"client_id": nexi.other.client_id, "request_uri": uri}),
            400,
            "invalid_request_uri",
        )
        assert_html_error(nx.login(nexi.browser, nexi.other, uri, m.username, m.password), 400, "invalid_request_uri")
    nx.code_from(nx.login(nexi.browser, nexi.app, uri, m.username, m.password), nexi.app)  # still the owner's


def test_row_18_another_clients_request_uri_native(live_server):
    a, b = nh.register(live_server), nh.register(live_server)
    m = live_server.new_merchant()
    uri = nh.push(live_server, a).json()["request_uri"]
    with nh.http(live_server, mtls=False) as c, nothing_new(live_server):
        assert_html_error(
            c.get(nh.AUTHORIZE, params={"client_id": b.client_id, "request_uri": uri}), 400, "invalid_request_uri"
        )
        assert_html_error(
            c.post(
                nh.AUTHORIZE,
                data={"client_id": b.client_id, "request_uri": uri, "username": m.username, "password": m.password},
            ),
            400,
            "invalid_request_uri",
        )
    assert nh.login(live_server, a, uri, m.username, m.password).status_code == 303


# === 19 ==========================================================================================


def test_row_19_pkce_plain_refused(nexi):
    verifier, _ = nx.pkce_pair()
    with nothing_new(nexi.server):
        assert_error(nexi.par(code_challenge=verifier, code_challenge_method="plain"), 400, "invalid_request")


def test_row_19_pkce_plain_refused_native(live_server):
    nc = nh.register(live_server)
    with nothing_new(live_server):
        assert_error(
            nh.push(live_server, nc, code_challenge="a" * 43, code_challenge_method="plain"), 400, "invalid_request"
        )


def test_row_19_missing_verifier_when_a_challenge_was_pushed(nexi):
    code, verifier = fresh_code(nexi)
    with nothing_new(nexi.server):  # nothing issued, and the code not used up
        assert_error(nx.exchange(nexi.backend, nexi.app, code), 400, "invalid_request")
    assert nx.exchange(nexi.backend, nexi.app, code, code_verifier=verifier).status_code == 200


def test_row_19_wrong_verifier(nexi):
    code, verifier = fresh_code(nexi)
    wrong, _ = nx.pkce_pair()
    # a wrong verifier burns the code, and presenting it again leaves a replay marker: nothing else
    with nothing_new(nexi.server, allow=("consumed[authorization_code]", "artifacts[authorization_code_replay]")):
        assert_error(nx.exchange(nexi.backend, nexi.app, code, code_verifier=wrong), 400, "invalid_grant")
        assert_error(nx.exchange(nexi.backend, nexi.app, code, code_verifier=verifier), 400, "invalid_grant")


def test_row_19_wrong_verifier_native(live_server):
    nc = nh.register(live_server)
    m = live_server.new_merchant()
    pushed = nh.push(live_server, nc)
    code = nh.code_from(nh.login(live_server, nc, pushed.json()["request_uri"], m.username, m.password))["code"]
    wrong, _ = nh.pkce()
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": nc.redirect_uri}
    with nh.http(live_server) as c, nothing_new(live_server, allow=("consumed[native_code]",)):
        assert_error(c.post(nh.TOKEN, data=data, auth=nh.basic(nc)), 400, "invalid_request")  # missing
        assert_error(c.post(nh.TOKEN, data={**data, "code_verifier": wrong}, auth=nh.basic(nc)), 400, "invalid_grant")


# === 20 ==========================================================================================


def test_row_20_code_replayed_revokes_what_it_issued(nexi):
    m = nexi.server.new_merchant(nexi.app)
    code, verifier = fresh_code(nexi, m)
    first = nx.exchange(nexi.backend, nexi.app, code, code_verifier=verifier)
    assert first.status_code == 200, first.text
    token = first.json()["access_token"]
    assert nexi.par(nexi.assertion(m), token=token).status_code == 201  # the token works before the replay
    with nothing_new(nexi.server, allow=("artifacts[revoked_jti]", "artifacts[authorization_code_replay]")):
        assert_error(nx.exchange(nexi.backend, nexi.app, code, code_verifier=verifier), 400, "invalid_grant")
    # ... and the token it issued is dead
    body = assert_error(nexi.par(nexi.assertion(m), token=token), 401, "invalid_token")
    assert "revoked" in body.get("error_description", "")


def test_row_20_code_replayed_native(live_server):
    nc = nh.register(live_server)
    m = live_server.new_merchant()
    pushed = nh.push(live_server, nc)
    code = nh.code_from(nh.login(live_server, nc, pushed.json()["request_uri"], m.username, m.password))["code"]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": nc.redirect_uri,
        "code_verifier": pushed.verifier,
    }
    with nh.http(live_server) as c:
        first = c.post(nh.TOKEN, data=data, auth=nh.basic(nc))
        assert first.status_code == 200, first.text
        with nothing_new(live_server, allow=("artifacts[revoked_jti]", "artifacts[native_code_replay]")):
            assert_error(c.post(nh.TOKEN, data=data, auth=nh.basic(nc)), 400, "invalid_grant")
    tokens = first.json()
    assert nh.introspect(live_server, nc, tokens["access_token"]).json() == {"active": False}
    assert nh.introspect(live_server, nc, tokens["refresh_token"]).json() == {"active": False}


def test_row_20_code_expired(short):
    server, app = short["server"], short["app"]
    with nx.http(server, app) as c, nothing_new(server, allow=("consumed[authorization_code]",)):
        assert_error(nx.exchange(c, app, short["code"], code_verifier=short["verifier"]), 400, "invalid_grant")
    assert not nx.enrollments_of(server, app.client_id)


def test_row_20_code_used_by_another_client(nexi):
    code, verifier = fresh_code(nexi)
    with nx.http(nexi.server, nexi.other) as c, nothing_new(nexi.server, allow=("consumed[authorization_code]",)):
        assert_error(
            nx.exchange(c, nexi.other, code, code_verifier=verifier, redirect_uri=nexi.app.redirect_uri),
            400,
            "invalid_grant",
        )


# === 21 ==========================================================================================

VARIANTS = {
    "trailing-slash": lambda u: u + "/",
    "upper-case": lambda u: u.upper(),
    "extra-query": lambda u: u + "?x=1",
    "fragment": lambda u: u + "#f",
    "http": lambda u: u.replace("https://", "http://"),
    "other-host": lambda u: "https://evil.example/callback",
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_row_21_redirect_uri_not_exactly_the_registered_one(nexi, variant):
    with nothing_new(nexi.server):
        assert_error(nexi.par(redirect_uri=VARIANTS[variant](nexi.app.redirect_uri)), 400, "invalid_request")


@pytest.mark.parametrize("variant", ["trailing-slash", "other-host"])
def test_row_21_redirect_uri_not_exactly_the_registered_one_native(live_server, variant):
    nc = nh.register(live_server)
    with nothing_new(live_server):
        assert_error(nh.push(live_server, nc, redirect_uri=VARIANTS[variant](nc.redirect_uri)), 400, "invalid_request")


def test_row_21_redirect_uri_differs_at_the_code_exchange(nexi):
    code, verifier = fresh_code(nexi)
    with nothing_new(nexi.server, allow=("consumed[authorization_code]",)):
        assert_error(
            nx.exchange(nexi.backend, nexi.app, code, code_verifier=verifier, redirect_uri=nexi.app.redirect_uri + "/"),
            400,
            "invalid_grant",
        )


# === 22 ==========================================================================================


@pytest.fixture(scope="module")
def pos_with_two_softpos(nexi):
    m = nexi.server.new_merchant(nexi.app)
    extra = f"S2{m.merchant_id}"
    nexi.server.store.add_terminal(Terminal(extra, m.merchant_id, m.pos, "softpos"))
    return m, extra


@pytest.mark.parametrize("case", ["empty", "three", "two-softpos", "tid-of-another-pos"])
def test_row_22_terminal_ids(nexi, pos_with_two_softpos, case):
    m, extra = pos_with_two_softpos
    other = nexi.server.new_merchant(nexi.app)
    tids = {
        "empty": [],
        "three": [m.softpos_tid, m.mpos_tid, extra],
        "two-softpos": [m.softpos_tid, extra],
        "tid-of-another-pos": [m.softpos_tid, other.mpos_tid],
    }[case]
    with nothing_new(nexi.server):
        assert_error(nexi.par(nexi.assertion(m, claims={"terminal_ids": tids})), 400, "invalid_request")
