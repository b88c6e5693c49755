"""``GET /softpos/par/jwks.json`` and ``POST /softpos/as/par`` over real mTLS sockets.

Every client assertion is built with jwcrypto (tests/e2e/nexi_helpers.py). Each refusal
checks the status, the RFC 6749 error code, and that nothing was stored: no request_uri,
no claimed jti, no enrollment.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid

import httpx
import pytest

from tessera.core.models import Terminal
from tests.e2e.nexi_helpers import (
    DEFAULT,
    FORM,
    JWKS_PATH,
    MISSING,
    PAR_PATH,
    assert_error,
    assert_par_created,
    b64u_decode,
    base_url,
    build_assertion,
    count_artifacts,
    enroll,
    enrollments_of,
    fetch_jwks,
    get_token,
    http,
    par_form,
    par_request,
    pkce_pair,
)
from tests.support.trap import Trap

pytestmark = pytest.mark.slow


@dataclasses.dataclass
class Nexi:
    server: object
    app: object
    merchant: object
    token: str
    jwks: dict
    client: httpx.Client
    other_app: object

    def assertion(self, merchant=DEFAULT, **kw):
        return build_assertion(
            self.server, self.app, self.merchant if merchant is DEFAULT else merchant, jwks=self.jwks, **kw
        )

    def par(self, assertion=None, *, token=DEFAULT, client=None, **form_overrides):
        if assertion is None:
            assertion = self.assertion().token
        elif not isinstance(assertion, str):
            assertion = assertion.token
        return par_request(
            client or self.client,
            self.token if token is DEFAULT else token,
            par_form(self.app, assertion, **form_overrides),
        )

    def counts(self) -> tuple[int, int, int]:
        cid = self.app.client_id
        return (
            count_artifacts(self.server, "request_uri", cid),
            count_artifacts(self.server, "assertion_jti", cid),
            len(enrollments_of(self.server, cid)),
        )


@pytest.fixture(scope="module")
def nexi_env(live_server):
    server = live_server
    app = server.new_app()
    merchant = server.new_merchant(app)
    other_app = server.new_app()
    token = get_token(server, app)
    with http(server, app) as c:
        yield Nexi(server, app, merchant, token, fetch_jwks(server), c, other_app)


class Checked:
    """Per-test view: ``refused`` asserts the error and that nothing was stored since the start."""

    def __init__(self, env: Nexi):
        self.env = env
        self.before = env.counts()

    def __getattr__(self, name):
        return getattr(self.env, name)

    def refused(self, resp: httpx.Response, status: int, error: str) -> dict:
        body = assert_error(resp, status, error)
        assert self.env.counts() == self.before, "a refused PAR stored something"
        return body

    def created(self, resp: httpx.Response) -> str:
        uri = assert_par_created(resp)
        rq, jti, enr = self.env.counts()
        assert (rq, jti, enr) == (self.before[0] + 1, self.before[1] + 1, self.before[2])
        return uri


@pytest.fixture
def nx(nexi_env) -> Checked:
    return Checked(nexi_env)


# =============================================================================================
# JWKS
# =============================================================================================


def test_jwks_publishes_only_public_rsa_encryption_keys(live_server):
    with http(live_server) as c:  # no client certificate needed
        r = c.get(JWKS_PATH)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    keys = r.json()["keys"]
    assert len(keys) >= 1
    kids = [k["kid"] for k in keys]
    assert len(kids) == len(set(kids)), "duplicate kid"
    sig_kids = {k.kid for k in live_server.store.list_server_keys() if k.use == "sig"}
    for k in keys:
        assert k["kty"] == "RSA" and k["use"] == "enc" and k["alg"] == "RSA-OAEP-256"
        assert isinstance(k["kid"], str) and k["kid"]
        assert k["kid"] not in sig_kids
        for private in ("d", "p", "q", "dp", "dq", "qi", "k", "oth"):
            assert private not in k, f"private member {private} published"
        n = int.from_bytes(b64u_decode(k["n"]), "big")
        assert n.bit_length() >= 2048
        assert int.from_bytes(b64u_decode(k["e"]), "big") == 65537


# =============================================================================================
# success
# =============================================================================================


def test_par_success(nx):
    r = nx.par()
    assert r.headers.get("cache-control") == "no-store"
    nx.created(r)


@pytest.mark.parametrize("scope", ["openid", "oidc email profile phone address", "email oidc"])
def test_par_accepts_documented_scopes(nx, scope):
    nx.created(nx.par(scope=scope))


@pytest.mark.parametrize("alg,enc", [("RSA-OAEP", "A256GCM"), ("RSA-OAEP-256", "A128GCM"), ("RSA-OAEP", "A128GCM")])
def test_par_accepts_allowed_jwe_algorithms(nx, alg, enc):
    nx.created(nx.par(nx.assertion(jwe_alg=alg, jwe_enc=enc)))


@pytest.mark.parametrize("sign_alg", ["PS256"])
def test_par_accepts_other_allowed_signature_algs(nx, sign_alg):
    nx.created(nx.par(nx.assertion(sign_alg=sign_alg)))


def test_par_accepts_ec_developer_certificate(live_server):
    app = live_server.new_app(key_type="ec")
    merchant = live_server.new_merchant(app)
    a = build_assertion(live_server, app, merchant, sign_alg="ES256")
    with http(live_server, app) as c:
        assert_par_created(par_request(c, get_token(live_server, app), par_form(app, a.token)))


@pytest.mark.parametrize("tids", ["softpos", "mpos"])
def test_par_accepts_a_single_tid(nx, tids):
    tid = nx.merchant.softpos_tid if tids == "softpos" else nx.merchant.mpos_tid
    nx.created(nx.par(nx.assertion(claims={"terminal_ids": [tid]})))


def test_par_with_pkce_and_state(nx):
    _, challenge = pkce_pair()
    nx.created(nx.par(code_challenge=challenge, code_challenge_method="S256", state="xyz"))


# =============================================================================================
# transport, token and form refusals
# =============================================================================================


def test_par_without_bearer_token(nx):
    nx.refused(nx.par(token=None), 401, "invalid_token")


def test_par_with_garbage_bearer_token(nx):
    nx.refused(nx.par(token="not-a-jwt"), 401, "invalid_token")


def test_par_with_token_forged_by_another_key(nx):
    """A well-formed at+jwt with the real kid and claims, signed by a key the server does not own."""
    from jwcrypto import jwk, jws

    header = json.loads(b64u_decode(nx.token.split(".")[0]))
    claims = json.loads(b64u_decode(nx.token.split(".")[1]))
    claims["exp"] = int(time.time()) + 3600
    fake = jwk.JWK.generate(kty="EC", crv="P-256")
    obj = jws.JWS(json.dumps(claims).encode())
    obj.add_signature(fake, alg="ES256", protected=json.dumps({"alg": "ES256", "typ": "at+jwt", "kid": header["kid"]}))
    nx.refused(nx.par(token=obj.serialize(compact=True)), 401, "invalid_token")


def test_par_without_client_certificate(nx):
    with http(nx.server, cert=None) as c:
        nx.refused(nx.par(client=c), 401, "invalid_client")


def test_par_token_with_another_certificate_of_the_same_client(nx):
    second = nx.server.add_cert(dataclasses.replace(nx.app))
    assert second.thumbprint != nx.app.thumbprint
    with http(nx.server, second) as c:
        nx.refused(nx.par(client=c), 401, "invalid_token")


def test_par_token_with_another_apps_certificate(nx):
    with http(nx.server, nx.other_app) as c:
        nx.refused(nx.par(client=c), 401, "invalid_token")


def test_par_another_apps_token_for_this_client_id(nx):
    """Another app's own token, over its own certificate, naming this app's client_id."""
    other_token = get_token(nx.server, nx.other_app)
    with http(nx.server, nx.other_app) as c:
        nx.refused(nx.par(client=c, token=other_token), 401, "invalid_token")


def test_par_with_request_uri_in_body(nx):
    nx.refused(nx.par(request_uri="urn:softpos_" + str(uuid.uuid4())), 400, "invalid_request")


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_par_wrong_method(nx, method):
    r = nx.client.request(method, PAR_PATH, headers={"Authorization": f"Bearer {nx.token}"})
    body = nx.refused(r, 405, "invalid_request")
    assert "POST" in r.headers.get("allow", ""), body


@pytest.mark.parametrize("missing", ["client_assertion", "client_id", "scope", "redirect_uri"])
def test_par_missing_parameter(nx, missing):
    form = par_form(nx.app, nx.assertion().token)
    del form[missing]
    nx.refused(par_request(nx.client, nx.token, form), 400, "invalid_request")


def test_par_json_body(nx):
    r = nx.client.post(
        PAR_PATH, json=par_form(nx.app, nx.assertion().token), headers={"Authorization": f"Bearer {nx.token}"}
    )
    nx.refused(r, 400, "invalid_request")


def test_par_repeated_parameter(nx):
    a = nx.assertion().token
    body = httpx.QueryParams(
        [
            ("client_assertion", a),
            ("client_id", nx.app.client_id),
            ("scope", "oidc"),
            ("scope", "openid"),
            ("redirect_uri", nx.app.redirect_uri),
        ]
    )
    r = nx.client.post(PAR_PATH, content=str(body), headers={**FORM, "Authorization": f"Bearer {nx.token}"})
    nx.refused(r, 400, "invalid_request")


@pytest.mark.parametrize(
    "scope", ["email", "profile phone", "oidc payments", "openid admin", "oidc oidc", "oidc  email", "OIDC"]
)
def test_par_bad_scope(nx, scope):
    nx.refused(nx.par(scope=scope), 400, "invalid_scope")


@pytest.mark.parametrize(
    "variant",
    [
        lambda u: u + "/",
        lambda u: u.upper(),
        lambda u: u.replace("app.example.test", "APP.example.test"),
        lambda u: u + "?x=1",
        lambda u: u + "#frag",
        lambda u: u.replace("https://", "http://"),
        lambda u: "https://evil.example/callback",
    ],
    ids=["trailing-slash", "upper-case", "host-case", "extra-query", "fragment", "http", "other-host"],
)
def test_par_redirect_uri_not_exactly_registered(nx, variant):
    nx.refused(nx.par(redirect_uri=variant(nx.app.redirect_uri)), 400, "invalid_request")


def test_par_pkce_plain_refused(nx):
    verifier, _ = pkce_pair()
    nx.refused(nx.par(code_challenge=verifier, code_challenge_method="plain"), 400, "invalid_request")


@pytest.mark.parametrize("case", ["method-missing", "method-alone", "challenge-too-short", "challenge-bad-chars"])
def test_par_pkce_malformed(nx, case):
    _, challenge = pkce_pair()
    form = {
        "method-missing": {"code_challenge": challenge},
        "method-alone": {"code_challenge_method": "S256"},
        "challenge-too-short": {"code_challenge": challenge[:-1], "code_challenge_method": "S256"},
        "challenge-bad-chars": {"code_challenge": challenge[:-1] + "=", "code_challenge_method": "S256"},
    }[case]
    nx.refused(nx.par(**form), 400, "invalid_request")


def test_par_after_certificate_revoked(nx):
    """A token bound to a certificate that is revoked afterwards: refused on the next request."""
    app = nx.server.new_app()
    merchant = nx.server.new_merchant(app)
    token = get_token(nx.server, app)
    with http(nx.server, app) as c:
        assert_par_created(par_request(c, token, par_form(app, build_assertion(nx.server, app, merchant).token)))
        nx.server.cli("certs", "revoke", "--serial", app.serial)
        a = build_assertion(nx.server, app, merchant)
        # the token bound to the revoked certificate is refused where tokens are read
        assert_error(par_request(c, token, par_form(app, a.token)), 401, "invalid_token")
    assert count_artifacts(nx.server, "request_uri", app.client_id) == 1


def test_par_after_client_revoked(nx):
    app = nx.server.new_app()
    merchant = nx.server.new_merchant(app)
    token = get_token(nx.server, app)
    nx.server.cli("clients", "revoke", "--client", app.client_id)
    with http(nx.server, app) as c:
        a = build_assertion(nx.server, app, merchant)
        # the revoked client's token is refused where tokens are read
        assert_error(par_request(c, token, par_form(app, a.token)), 401, "invalid_token")
    assert count_artifacts(nx.server, "request_uri", app.client_id) == 0


def test_par_oversized_body(nx):
    """> 64 KiB: 413 before the body is parsed."""
    a = nx.assertion(pad_bytes=70 * 1024)
    nx.refused(nx.par(a), 413, "invalid_request")


def test_par_oversized_assertion(nx):
    """An assertion over the JOSE size cap (16 KiB) in a body under 64 KiB: 413 (checklist #13)."""
    a = nx.assertion(pad_bytes=20 * 1024)
    assert 16 * 1024 < len(a.token) < 60 * 1024
    nx.refused(nx.par(a), 413, "invalid_request")


# =============================================================================================
# assertion refusals: the JWE
# =============================================================================================


def test_assertion_jwe_rsa1_5(nx):
    nx.refused(nx.par(nx.assertion(jwe_alg="RSA1_5")), 400, "invalid_client")


@pytest.mark.parametrize(
    "alg,enc",
    [
        ("dir", "A256GCM"),
        ("A256KW", "A256GCM"),
        ("A128KW", "A128GCM"),
        ("dir", "A128CBC-HS256"),
        ("A128KW", "A128CBC-HS256"),
        ("RSA-OAEP", "A192GCM"),
        ("RSA-OAEP-256", "A192CBC-HS384"),
    ],
)
def test_assertion_jwe_alg_enc_outside_allow_list(nx, alg, enc):
    nx.refused(nx.par(nx.assertion(jwe_alg=alg, jwe_enc=enc)), 400, "invalid_client")


def test_assertion_jwe_zip_def(nx):
    # A real DEFLATE-compressed JWE of highly compressible content: refused without inflating.
    nx.refused(nx.par(nx.assertion(zip_def=True, pad_bytes=8000)), 400, "invalid_client")


@pytest.mark.parametrize("which", ["unknown", "empty", "signing-key", "not-a-string"])
def test_assertion_jwe_kid(nx, which):
    """A kid, when sent, must name a published encryption key (no kid at all: see below)."""
    if which == "unknown":
        kid = "no-such-kid-" + uuid.uuid4().hex
    elif which == "empty":
        kid = ""
    elif which == "signing-key":
        kid = next(k.kid for k in nx.server.store.list_server_keys() if k.use == "sig")
    else:
        kid = 12345
    nx.refused(nx.par(nx.assertion(kid=kid)), 400, "invalid_client")


@pytest.mark.parametrize("where", ["jwe", "jws"])
@pytest.mark.parametrize("name", ["jku", "x5u", "jwk"])
def test_assertion_key_carrying_headers(nx, where, name):
    trap = Trap()
    try:
        from jwcrypto import jwk

        if name == "jwk":
            # the attacker's own key, which also signs the inner JWT
            value = json.loads(jwk.JWK.from_pem(nx.other_app.key.read_bytes()).export_public())
        else:
            value = f"http://127.0.0.1:{trap.port}/keys"
        kw = {"extra_header": {name: value}} if where == "jwe" else {"jws_header": {name: value}}
        if name == "jwk" and where == "jws":
            kw["sign_key"] = nx.other_app.key
        nx.refused(nx.par(nx.assertion(**kw)), 400, "invalid_client")
        time.sleep(0.2)
        assert trap.hits == 0, f"the server fetched the {name} URL"
    finally:
        trap.close()


def test_assertion_jwe_tampering_fails_uniformly(nx):
    descriptions = set()
    for how in ("truncate-tag", "truncate-iv", "tamper-ciphertext", "tamper-tag"):
        body = nx.refused(nx.par(nx.assertion(mangle=how)), 400, "invalid_client")
        descriptions.add(body.get("error_description"))
    assert len(descriptions) == 1, descriptions


@pytest.mark.parametrize("how", ["truncate-tag", "truncate-iv", "tamper-ciphertext"])
def test_assertion_jwe_tampered(nx, how):
    nx.refused(nx.par(nx.assertion(mangle=how)), 400, "invalid_client")


@pytest.mark.parametrize("enc", ["A128CBC-HS256", "A256CBC-HS512", "A128GCM", "A256GCM"])
def test_assertion_jwe_without_kid_accepted(nx, enc):
    """Nexi's reference sends no kid: every published encryption key is tried."""
    nx.created(nx.par(nx.assertion(kid=MISSING, jwe_enc=enc)))


@pytest.mark.parametrize("how", ["truncate-tag", "truncate-iv", "tamper-ciphertext", "tamper-tag"])
def test_assertion_jwe_without_kid_tampered_fails_like_any_decryption(nx, how):
    body = nx.refused(nx.par(nx.assertion(kid=MISSING, jwe_enc="A128CBC-HS256", mangle=how)), 400, "invalid_client")
    ref = nx.refused(nx.par(nx.assertion(mangle="tamper-tag")), 400, "invalid_client")
    assert body["error_description"] == ref["error_description"]


def test_assertion_jwe_without_kid_to_a_foreign_key(nx):
    from jwcrypto import jwk

    foreign = json.loads(jwk.JWK.generate(kty="RSA", size=2048).export_public())
    a = build_assertion(nx.server, nx.app, nx.merchant, jwks={"keys": [foreign]}, kid=MISSING)
    body = nx.refused(nx.par(a), 400, "invalid_client")
    ref = nx.refused(nx.par(nx.assertion(mangle="tamper-tag")), 400, "invalid_client")
    assert body["error_description"] == ref["error_description"]


def test_assertion_jwe_encrypted_to_a_foreign_key_looks_like_tampering(nx):
    """Encrypted to an RSA key the server does not hold, but naming the real kid: the OAEP
    failure must read exactly like a tag failure."""
    from jwcrypto import jwk

    foreign = json.loads(jwk.JWK.generate(kty="RSA", size=2048).export_public())
    foreign["kid"] = nx.jwks["keys"][0]["kid"]
    a = build_assertion(nx.server, nx.app, nx.merchant, jwks={"keys": [foreign]})
    b1 = nx.refused(nx.par(a), 400, "invalid_client")
    b2 = nx.refused(nx.par(nx.assertion(mangle="tamper-ciphertext")), 400, "invalid_client")
    assert b1["error_description"] == b2["error_description"]


def test_assertion_json_serialization(nx):
    a = nx.assertion(serialization="json")
    assert a.token.lstrip().startswith("{")
    nx.refused(nx.par(a), 400, "invalid_client")


def test_assertion_not_a_jwe(nx):
    """The inner signed JWT sent as is, unencrypted."""
    from tests.e2e.nexi_helpers import _sign_inner

    payload = json.dumps(build_assertion(nx.server, nx.app, nx.merchant, jwks=nx.jwks).claims).encode()
    jws_token = _sign_inner(payload, nx.app, inner="jws", sign_alg="RS256", sign_key=None, jws_header={}).decode()
    nx.refused(nx.par(jws_token), 400, "invalid_client")


# =============================================================================================
# assertion refusals: the inner JWT
# =============================================================================================


def test_assertion_plain_json_inside_jwe(nx):
    nx.refused(nx.par(nx.assertion(inner="plain-json")), 400, "invalid_client")


def test_assertion_inner_alg_none(nx):
    nx.refused(nx.par(nx.assertion(inner="none")), 400, "invalid_client")


def test_assertion_hs256_key_confusion(nx):
    nx.refused(nx.par(nx.assertion(inner="hs256-pubkey")), 400, "invalid_client")


def test_assertion_signed_by_another_apps_key(nx):
    nx.refused(nx.par(nx.assertion(sign_key=nx.other_app.key)), 400, "invalid_client")


def test_assertion_signed_by_an_unregistered_key(nx, tmp_path):
    from tests.support.live import make_csr

    _, key = make_csr(tmp_path / "rogue")
    nx.refused(nx.par(nx.assertion(sign_key=key)), 400, "invalid_client")


def test_assertion_signed_by_a_revoked_certificates_key(nx):
    """A second certificate of this app, revoked: its key no longer signs for the app."""
    second = nx.server.add_cert(dataclasses.replace(nx.app))
    nx.server.cli("certs", "revoke", "--serial", second.serial)
    nx.refused(nx.par(nx.assertion(sign_key=second.key)), 400, "invalid_client")


# =============================================================================================
# assertion refusals: the claims
# =============================================================================================

NOW = lambda: int(time.time())  # noqa: E731


@pytest.mark.parametrize("case", ["exp-missing", "exp-past", "lifetime-901", "iat-missing", "exp-string"])
def test_assertion_exp(nx, case):
    now = NOW()
    kw = {
        "exp-missing": {"drop": ["exp"]},
        "exp-past": {"claims": {"iat": now - 100, "exp": now - 5}},
        "lifetime-901": {"claims": {"iat": now - 1, "exp": now - 1 + 901}},
        "iat-missing": {"drop": ["iat"]},
        "exp-string": {"claims": {"exp": str(now + 100)}},
    }[case]
    nx.refused(nx.par(nx.assertion(**kw)), 400, "invalid_client")


@pytest.mark.parametrize("lifetime", [300, 500, 800, 900])
def test_assertion_lifetime_up_to_900_accepted(nx, lifetime):
    """The reference backend uses 500 s, the demo backend 800 s; the provider allows 15 minutes."""
    now = NOW()
    nx.created(nx.par(nx.assertion(claims={"iat": now, "exp": now + lifetime})))


def test_assertion_iat_in_the_past_accepted(nx):
    now = NOW()
    nx.created(nx.par(nx.assertion(claims={"iat": now - 400, "exp": now - 400 + 500})))


def test_assertion_iat_1s_in_future_accepted(nx):
    now = NOW()
    nx.created(nx.par(nx.assertion(claims={"iat": now + 1, "exp": now + 1 + 500})))


@pytest.mark.parametrize("seconds", [5, 8, 61, 120])
def test_assertion_iat_in_future_refused_the_clock_is_ahead(nx, seconds):
    """The provider refuses an iat even a few seconds ahead, with 400 (reference-facts.md)."""
    now = NOW()
    body = nx.refused(
        nx.par(nx.assertion(claims={"iat": now + seconds, "exp": now + seconds + 120})), 400, "invalid_client"
    )
    assert "client's clock is ahead" in body["error_description"], body


@pytest.mark.parametrize("seconds", [8, 120])
def test_assertion_nbf_in_future_refused(nx, seconds):
    now = NOW()
    body = nx.refused(nx.par(nx.assertion(claims={"nbf": now + seconds})), 400, "invalid_client")
    assert "client's clock is ahead" in body["error_description"], body


def test_assertion_nbf_120s_in_future_refused(nx):
    now = NOW()
    nx.refused(nx.par(nx.assertion(claims={"nbf": now + 120, "exp": now + 200})), 400, "invalid_client")


def test_assertion_jti_reused(nx):
    a = nx.assertion()
    nx.created(nx.par(a))
    after_first = nx.counts()
    again = nx.assertion(claims={"jti": a.jti})  # a fresh JWE around the same jti
    assert_error(nx.par(again), 400, "invalid_client")
    assert_error(nx.par(a), 400, "invalid_client")  # the very same assertion
    assert nx.counts() == after_first
    replays = [
        e
        for e in nx.server.store.list_events()
        if e.kind == "jti_replayed" and e.client_id == nx.app.client_id and e.detail.get("jti") == a.jti
    ]
    # Recorded, once: the same replay again within a minute is refused but not written again
    # (a captured assertion replayed at will must not become a stream of writes).
    assert len(replays) == 1


@pytest.mark.parametrize("aud", ["other-server", "array", "par-endpoint", "prod-fqdn", "http-scheme"])
def test_assertion_wrong_audience(nx, aud):
    base = base_url(nx.server)
    value = {
        "other-server": "https://auth.other.example",
        "array": [base],
        "par-endpoint": base + PAR_PATH,
        "prod-fqdn": "https://b2bsoftpos.nexigroup.com",
        "http-scheme": base.replace("https://", "http://"),
    }[aud]
    nx.refused(nx.par(nx.assertion(claims={"aud": value})), 400, "invalid_client")


@pytest.mark.parametrize(
    "case", ["iss", "appId", "sub-missing", "sub-other", "jti-missing", "iss-missing", "appId-missing"]
)
def test_assertion_identity_claims(nx, case):
    other = nx.other_app.client_id
    kw = {
        "iss": {"claims": {"iss": other}},
        "appId": {"claims": {"appId": other}},
        "sub-missing": {"drop": ["sub"]},
        "sub-other": {"claims": {"sub": other}},
        "jti-missing": {"drop": ["jti"]},
        "iss-missing": {"drop": ["iss"]},
        "appId-missing": {"drop": ["appId"]},
    }[case]
    nx.refused(nx.par(nx.assertion(**kw)), 400, "invalid_client")


def test_assertion_of_another_app_sent_by_this_app(nx):
    """Another app's perfectly valid assertion (its key, its claims) with this app's token."""
    other_merchant = nx.server.new_merchant(nx.other_app)
    a = build_assertion(nx.server, nx.other_app, other_merchant, jwks=nx.jwks)
    nx.refused(nx.par(a), 400, "invalid_client")


# =============================================================================================
# enrollment claim refusals
# =============================================================================================


def test_enrollment_point_of_sale_unknown(nx):
    nx.refused(nx.par(nx.assertion(claims={"pointOfSale": "POS-does-not-exist"})), 400, "invalid_request")


def test_enrollment_point_of_sale_missing(nx):
    nx.refused(nx.par(nx.assertion(drop=["pointOfSale"])), 400, "invalid_request")


def test_enrollment_merchant_did_not_grant_the_app(nx):
    stranger = nx.server.new_merchant(nx.app, grant=False)
    nx.refused(nx.par(nx.assertion(merchant=stranger)), 400, "invalid_request")


def test_enrollment_merchant_granted_another_app_only(nx):
    theirs = nx.server.new_merchant(nx.other_app)
    nx.refused(nx.par(nx.assertion(merchant=theirs)), 400, "invalid_request")


@pytest.fixture(scope="module")
def two_softpos(nexi_env):
    """A merchant whose point of sale has a second SoftPOS terminal."""
    m = nexi_env.server.new_merchant(nexi_env.app)
    extra = f"S2{m.merchant_id}"
    nexi_env.server.store.add_terminal(Terminal(extra, m.merchant_id, m.pos, "softpos"))
    return m, extra


@pytest.mark.parametrize(
    "case",
    ["empty", "three", "two-softpos", "two-mpos", "foreign-tid", "not-a-list", "duplicate", "missing", "non-string"],
)
def test_enrollment_terminal_ids(nx, two_softpos, case):
    m, extra = two_softpos
    other = nx.server.new_merchant(nx.app)
    if case == "two-mpos":
        extra_m = f"M2{m.merchant_id}"
        if not any(t.tid == extra_m for t in nx.server.store.terminals_at(m.pos)):
            nx.server.store.add_terminal(Terminal(extra_m, m.merchant_id, m.pos, "mpos"))
    tids = {
        "empty": [],
        "three": [m.softpos_tid, m.mpos_tid, extra],
        "two-softpos": [m.softpos_tid, extra],
        "two-mpos": [m.mpos_tid, f"M2{m.merchant_id}"],
        "foreign-tid": [m.softpos_tid, other.mpos_tid],
        "not-a-list": m.softpos_tid,
        "duplicate": [m.softpos_tid, m.softpos_tid],
        "missing": None,
        "non-string": [123],
    }[case]
    kw = {"drop": ["terminal_ids"]} if tids is None else {"claims": {"terminal_ids": tids}}
    nx.refused(nx.par(nx.assertion(merchant=m, **kw)), 400, "invalid_request")


def test_enrollment_tid_of_another_point_of_sale_only(nx):
    other = nx.server.new_merchant(nx.app)
    nx.refused(nx.par(nx.assertion(claims={"terminal_ids": [other.softpos_tid]})), 400, "invalid_request")


@pytest.mark.parametrize(
    "username", ["merchant", "merchant@", "@shop.example", "merchant@shop", "a b@shop.example", "", 42]
)
def test_enrollment_username_not_an_email(nx, username):
    nx.refused(nx.par(nx.assertion(claims={"username_merchant": username})), 400, "invalid_request")


def test_enrollment_username_of_another_merchant(nx):
    other = nx.server.new_merchant(nx.app)
    nx.refused(nx.par(nx.assertion(claims={"username_merchant": other.username})), 400, "invalid_request")


@pytest.fixture(scope="module")
def enrolled(nexi_env):
    """A merchant with two points of sale and two users; the first user finished an enrollment
    on the first point of sale's SoftPOS TID."""
    from tessera.core.models import MerchantUser
    from tessera.core.secrets import hash_password

    server, app = nexi_env.server, nexi_env.app
    m = server.new_merchant(app)
    pos2, s2, m2 = f"{m.pos}-B", f"{m.softpos_tid}-B", f"{m.mpos_tid}-B"
    server.store.add_terminal(Terminal(s2, m.merchant_id, pos2, "softpos"))
    server.store.add_terminal(Terminal(m2, m.merchant_id, pos2, "mpos"))
    user2 = f"second{m.merchant_id}@shop.example"
    server.store.add_user(MerchantUser(user2, m.merchant_id, hash_password(m.password)))
    enroll(server, app, m)
    return m, pos2, s2, m2, user2


def test_enrollment_username_bound_to_another_tid(nx, enrolled):
    m, pos2, s2, m2, _ = enrolled
    nx.refused(
        nx.par(nx.assertion(merchant=m, claims={"pointOfSale": pos2, "terminal_ids": [s2, m2]})), 400, "invalid_request"
    )


def test_enrollment_username_bound_to_another_tid_same_pos(nx, enrolled):
    """Only the mPOS TID of the same point of sale: the username would bind to it, not to its SoftPOS TID."""
    m, *_ = enrolled
    nx.refused(nx.par(nx.assertion(merchant=m, claims={"terminal_ids": [m.mpos_tid]})), 400, "invalid_request")


def test_enrollment_tid_of_another_pos_of_the_same_merchant(nx, enrolled):
    m, pos2, s2, m2, _ = enrolled
    nx.refused(nx.par(nx.assertion(merchant=m, claims={"terminal_ids": [m.softpos_tid, m2]})), 400, "invalid_request")


def test_enrollment_tid_bound_to_another_username(nx, enrolled):
    m, _, _, _, user2 = enrolled
    nx.refused(nx.par(nx.assertion(merchant=m, claims={"username_merchant": user2})), 400, "invalid_request")


def test_enrollment_same_username_same_tid_again_accepted(nx, enrolled):
    m, *_ = enrolled
    nx.created(nx.par(nx.assertion(merchant=m)))


def test_enrollment_username_is_case_insensitive_for_binding(nx, enrolled):
    m, pos2, s2, m2, _ = enrolled
    nx.refused(
        nx.par(
            nx.assertion(
                merchant=m, claims={"username_merchant": m.username.upper(), "pointOfSale": pos2, "terminal_ids": [s2]}
            )
        ),
        400,
        "invalid_request",
    )


def test_enrollment_pos_id_shared_by_two_merchants(nx):
    """Point-of-sale ids are not unique across merchants in the data model. A granting merchant
    with the same POS id as a stranger must not let the app reach the stranger's terminals."""
    mine = nx.server.new_merchant(nx.app)
    stranger = nx.server.new_merchant(nx.app, grant=False)
    shared = f"SHARED-{mine.merchant_id}"
    nx.server.store.add_terminal(Terminal(f"SA{mine.merchant_id}", mine.merchant_id, shared, "softpos"))
    nx.server.store.add_terminal(Terminal(f"SB{stranger.merchant_id}", stranger.merchant_id, shared, "mpos"))
    for tids in ([f"SB{stranger.merchant_id}"], [f"SA{mine.merchant_id}", f"SB{stranger.merchant_id}"]):
        nx.refused(
            nx.par(nx.assertion(merchant=mine, claims={"pointOfSale": shared, "terminal_ids": tids})),
            400,
            "invalid_request",
        )
    # and the stranger's user cannot be enrolled through the granting merchant's terminals
    nx.refused(
        nx.par(
            nx.assertion(
                merchant=mine,
                claims={
                    "pointOfSale": shared,
                    "terminal_ids": [f"SA{mine.merchant_id}"],
                    "username_merchant": stranger.username,
                },
            )
        ),
        400,
        "invalid_request",
    )
    # its own terminal at that point of sale still works
    nx.created(
        nx.par(nx.assertion(merchant=mine, claims={"pointOfSale": shared, "terminal_ids": [f"SA{mine.merchant_id}"]}))
    )


def test_enrollment_pos_id_shared_by_two_granting_merchants(nx):
    a = nx.server.new_merchant(nx.app)
    b = nx.server.new_merchant(nx.app)
    shared = f"SHARED2-{a.merchant_id}"
    nx.server.store.add_terminal(Terminal(f"SA{a.merchant_id}", a.merchant_id, shared, "softpos"))
    nx.server.store.add_terminal(Terminal(f"SB{b.merchant_id}", b.merchant_id, shared, "softpos"))
    nx.refused(
        nx.par(nx.assertion(merchant=a, claims={"pointOfSale": shared, "terminal_ids": [f"SA{a.merchant_id}"]})),
        400,
        "invalid_request",
    )
