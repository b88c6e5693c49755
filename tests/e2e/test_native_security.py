"""The security checklist (shared/security-checklist.md) on the native endpoints: assertion
rows 1–9 and 11–12 for ``private_key_jwt`` (assertions built with jwcrypto), PAR/code/PKCE
rows 14–21, mTLS rows 23–26, refresh reuse (29), revocation (33) and malformed input (34).
Each test asserts the status and the error code, and that nothing was issued or stored."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from jwcrypto import jwe, jwk
from jwcrypto.common import json_encode
from sqlalchemy import func, select

from tessera.core.flows import native as core_native
from tests.e2e.native_helpers import (
    AUTHORIZE,
    DROP,
    INTROSPECT,
    PAR,
    REVOKE,
    TOKEN,
    USERINFO,
    NativeClient,
    assert_error,
    authorization_code_flow,
    b64u,
    basic,
    cc_with_assertion,
    claims_for,
    claims_of,
    code_from,
    encrypt,
    hs256_with_public_key,
    http,
    introspect,
    issuer,
    login,
    pkce,
    push,
    register,
    server_enc_key,
    sign,
    unsigned,
)
from tests.support.jwkcache import jwk_from_pem
from tests.support.live import LiveServer, make_csr
from tests.support.trap import Trap

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def merchant(live_server):
    return live_server.new_merchant()


@pytest.fixture(scope="module")
def jwt_client(live_server) -> NativeClient:
    """A private_key_jwt client with a registered EC JWKS."""
    return register(live_server, methods=("private_key_jwt",), with_jwks=True)


@pytest.fixture(scope="module")
def enc_key(live_server) -> jwk.JWK:
    return server_enc_key(live_server)


@pytest.fixture(scope="module")
def short_server(tmp_path_factory):
    server = LiveServer(
        tmp_path_factory.mktemp("native-sec-short"), env={"TESSERA_PAR_TTL": "2", "TESSERA_CODE_TTL": "2"}
    ).start()
    yield server
    server.stop()


def refused(resp: httpx.Response) -> None:
    """invalid_client, 401, nothing issued."""
    assert_error(resp, 401, "invalid_client")


def pars_stored(server: LiveServer, client_id: str) -> int:
    from tessera.storage import schema as t

    with server.store.engine.connect() as c:
        return c.execute(
            select(func.count())
            .select_from(t.artifacts)
            .where(t.artifacts.c.kind == core_native.PAR_KIND, t.artifacts.c.client_id == client_id)
        ).scalar()


def jwt_cc(server, nc, assertion, **extra):
    return cc_with_assertion(server, nc, assertion, **extra)


# === 1: alg none; a JWE holding plain JSON ===========================================================


def test_row1_unsigned_assertion_is_refused(live_server, jwt_client):
    refused(jwt_cc(live_server, jwt_client, unsigned(claims_for(live_server, jwt_client))))


def test_row1_jwe_holding_plain_json_is_refused(live_server, jwt_client, enc_key):
    plain = json.dumps(claims_for(live_server, jwt_client))
    refused(jwt_cc(live_server, jwt_client, encrypt(plain, enc_key), client_id=jwt_client.client_id))


def test_row1_jwe_holding_an_unsigned_jwt_is_refused(live_server, jwt_client, enc_key):
    refused(jwt_cc(live_server, jwt_client, encrypt(unsigned(claims_for(live_server, jwt_client)), enc_key)))


# === 2: HS256 with the client's public key as the secret ===========================================


def test_row2_key_confusion_hs256_with_the_public_key_is_refused(live_server):
    nc = register(live_server, methods=("private_key_jwt",), with_jwks=True, key_type="RSA")
    for pem in (nc.jwk.export_to_pem(), json.dumps(json.loads(nc.jwk.export_public())).encode()):
        refused(jwt_cc(live_server, nc, hs256_with_public_key(claims_for(live_server, nc), pem)))


# === 3: a key not bound to this client ==============================================================


def test_row3_signature_by_an_unbound_key_is_refused(live_server, jwt_client):
    stranger = jwk.JWK.generate(kty="EC", crv="P-256")
    refused(
        jwt_cc(
            live_server,
            jwt_client,
            sign(claims_for(live_server, jwt_client), stranger, header={"kid": jwt_client.jwk.get("kid")}),
        )
    )


def test_row3_another_clients_key_is_refused(live_server, jwt_client):
    other = register(live_server, methods=("private_key_jwt",), with_jwks=True)
    refused(jwt_cc(live_server, jwt_client, sign(claims_for(live_server, jwt_client), other.jwk)))


def test_row3_another_clients_certificate_key_is_refused(live_server):
    a = register(live_server, methods=("private_key_jwt",), with_cert=True)
    b = register(live_server, methods=("private_key_jwt",), with_cert=True)
    key_b = jwk_from_pem(b.key.read_bytes())
    refused(jwt_cc(live_server, a, sign(claims_for(live_server, a), key_b, alg="RS256")))


# === 4: exp missing, past, or too far from iat ======================================================


@pytest.mark.parametrize("case", ["missing", "past", "too_long"])
def test_row4_bad_exp_is_refused(live_server, jwt_client, case):
    now = int(time.time())
    over = {
        "missing": {"exp": DROP},
        "past": {"exp": now - 5, "iat": now - 60},
        "too_long": {"iat": now, "exp": now + 301},
    }[case]
    refused(jwt_cc(live_server, jwt_client, sign(claims_for(live_server, jwt_client, **over), jwt_client.jwk)))


# === 5: iat/nbf a little in the future is fine, far in the future is not ===========================


def test_row5_iat_8s_in_the_future_is_accepted(live_server, jwt_client):
    now = int(time.time())
    r = jwt_cc(
        live_server,
        jwt_client,
        sign(claims_for(live_server, jwt_client, iat=now + 8, nbf=now + 8, exp=now + 120), jwt_client.jwk),
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("claim", ["iat", "nbf"])
def test_row5_iat_or_nbf_over_60s_in_the_future_is_refused(live_server, jwt_client, claim):
    now = int(time.time())
    over = {"iat": now + 61, "exp": now + 200} if claim == "iat" else {"nbf": now + 61}
    refused(jwt_cc(live_server, jwt_client, sign(claims_for(live_server, jwt_client, **over), jwt_client.jwk)))


# === 6: jti replay ===================================================================================


def test_row6_the_same_jti_twice_is_refused(live_server, jwt_client):
    assertion = sign(claims_for(live_server, jwt_client), jwt_client.jwk)
    assert jwt_cc(live_server, jwt_client, assertion).status_code == 200
    refused(jwt_cc(live_server, jwt_client, assertion))
    again = sign(claims_for(live_server, jwt_client, jti=claims_of(assertion)["jti"]), jwt_client.jwk)
    refused(jwt_cc(live_server, jwt_client, again))


# === 7: aud ==========================================================================================


@pytest.mark.parametrize("case", ["other_server", "array", "token_endpoint", "par_endpoint"])
def test_row7_wrong_aud_is_refused(live_server, jwt_client, case):
    iss = issuer(live_server)
    aud = {
        "other_server": "https://as.example.org",
        "array": [iss],
        "token_endpoint": iss + TOKEN,
        "par_endpoint": iss + PAR,
    }[case]
    refused(jwt_cc(live_server, jwt_client, sign(claims_for(live_server, jwt_client, aud=aud), jwt_client.jwk)))


# === 8: iss/sub/jti ===================================================================================


@pytest.mark.parametrize("case", ["iss_other", "sub_other", "sub_missing", "jti_missing"])
def test_row8_iss_sub_jti_rules(live_server, jwt_client, case):
    other = register(live_server, methods=("private_key_jwt",), with_jwks=True)
    over = {
        "iss_other": {"iss": other.client_id},
        "sub_other": {"sub": other.client_id},
        "sub_missing": {"sub": DROP},
        "jti_missing": {"jti": DROP},
    }[case]
    extra = {"client_id": jwt_client.client_id} if case == "iss_other" else {}
    refused(jwt_cc(live_server, jwt_client, sign(claims_for(live_server, jwt_client, **over), jwt_client.jwk), **extra))


def test_row8_form_client_id_must_match_the_assertion(live_server, jwt_client):
    other = register(live_server, methods=("private_key_jwt",), with_jwks=True)
    refused(
        jwt_cc(
            live_server,
            jwt_client,
            sign(claims_for(live_server, jwt_client), jwt_client.jwk),
            client_id=other.client_id,
        )
    )


# === 9: JWE algorithms ================================================================================


@pytest.mark.parametrize(
    "alg,enc",
    [("RSA1_5", "A256GCM"), ("RSA-OAEP-256", "A192CBC-HS384"), ("RSA-OAEP-256", "A192GCM"), ("A256KW", "A256GCM")],
)
def test_row9_jwe_outside_the_allow_list_is_refused(live_server, jwt_client, enc_key, alg, enc):
    inner = sign(claims_for(live_server, jwt_client), jwt_client.jwk)
    if alg == "A256KW":
        key = jwk.JWK.generate(kty="oct", size=256, kid=enc_key.get("kid"))
    else:
        key = enc_key
    token = jwe.JWE(
        inner.encode(), protected=json_encode({"alg": alg, "enc": enc, "kid": enc_key.get("kid")}), algs=[alg, enc]
    )
    token.add_recipient(key)
    refused(jwt_cc(live_server, jwt_client, token.serialize(compact=True)))


# === 11: JWE kid; header-supplied keys ================================================================


@pytest.mark.parametrize("case", ["unknown", "signing_key"])
def test_row11_jwe_kid_must_name_an_encryption_key(live_server, jwt_client, enc_key, case):
    with http(live_server) as c:
        sig_kid = [k for k in c.get("/oauth2/jwks").json()["keys"] if k["use"] == "sig"][0]["kid"]
    kid = {"unknown": "no-such-kid", "signing_key": sig_kid}[case]
    inner = sign(claims_for(live_server, jwt_client), jwt_client.jwk)
    refused(jwt_cc(live_server, jwt_client, encrypt(inner, enc_key, kid=kid)))


@pytest.mark.parametrize("enc", ["A128CBC-HS256", "A256CBC-HS512", "A128GCM", "A256GCM"])
def test_row9_row11_a_kidless_jwe_in_any_allowed_enc_is_opened_by_the_published_key(
    live_server, jwt_client, enc_key, enc
):
    """The one decryption path of the Nexi PAR serves private_key_jwt too: a JWE with no kid
    (as Nexi's reference sends) is tried against each published encryption key, and the
    CBC-HMAC encs that the reference uses are allowed (security checklist rows 9 and 11)."""
    inner = sign(claims_for(live_server, jwt_client), jwt_client.jwk)
    r = jwt_cc(live_server, jwt_client, encrypt(inner, enc_key, kid=None, enc=enc))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("where", ["jwe", "jws"])
@pytest.mark.parametrize("header", ["jku", "x5u", "jwk"])
def test_row11_key_headers_are_never_fetched_nor_trusted(live_server, jwt_client, enc_key, where, header):
    attacker = jwk.JWK.generate(kty="EC", crv="P-256")
    listener = Trap()
    try:
        value = json.loads(attacker.export_public()) if header == "jwk" else listener.url
        if where == "jws":  # signed by the attacker, pointing at the attacker's key
            assertion = sign(claims_for(live_server, jwt_client), attacker, header={header: value})
        else:
            inner = sign(claims_for(live_server, jwt_client), jwt_client.jwk)
            assertion = encrypt(inner, enc_key, header={header: value})
        refused(jwt_cc(live_server, jwt_client, assertion))
        time.sleep(0.3)
        assert listener.hits == 0
    finally:
        listener.close()


# === 12: tampering; JSON serialization ==================================================================


@pytest.mark.parametrize(
    "part,how", [(4, "flip"), (4, "truncate"), (2, "truncate"), (2, "flip"), (3, "flip"), (3, "truncate"), (1, "flip")]
)
def test_row12_tampered_jwe_is_refused(live_server, jwt_client, enc_key, part, how):
    inner = sign(claims_for(live_server, jwt_client), jwt_client.jwk)
    parts = encrypt(inner, enc_key).split(".")
    raw = __import__("base64").urlsafe_b64decode(parts[part] + "=" * (-len(parts[part]) % 4))
    raw = raw[:-1] if how == "truncate" else raw[:-1] + bytes([raw[-1] ^ 1])
    parts[part] = b64u(raw)
    refused(jwt_cc(live_server, jwt_client, ".".join(parts)))


def test_row12_json_serialization_is_refused(live_server, jwt_client, enc_key):
    inner = sign(claims_for(live_server, jwt_client), jwt_client.jwk)
    token = jwe.JWE(
        inner.encode(), protected=json_encode({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": enc_key.get("kid")})
    )
    token.add_recipient(enc_key)
    refused(jwt_cc(live_server, jwt_client, token.serialize(compact=False)))
    from jwcrypto import jws as jcjws

    signed = jcjws.JWS(json.dumps(claims_for(live_server, jwt_client)).encode())
    signed.add_signature(jwt_client.jwk, alg="ES256", protected=json.dumps({"alg": "ES256"}))
    refused(jwt_cc(live_server, jwt_client, signed.serialize(compact=False)))


# === 14–16: the PAR endpoint ============================================================================


def test_row14_par_without_client_authentication_is_401(live_server):
    nc = register(live_server)
    _, challenge = pkce()
    with http(live_server, mtls=False) as c:
        r = c.post(
            PAR,
            data={
                "response_type": "code",
                "client_id": nc.client_id,
                "redirect_uri": nc.redirect_uri,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
    assert_error(r, 401, "invalid_client")
    assert pars_stored(live_server, nc.client_id) == 0


def test_row14_par_with_a_wrong_secret_is_401(live_server):
    nc = register(live_server)
    nc.client_secret = "wrong"
    assert_error(push(live_server, nc), 401, "invalid_client")
    assert pars_stored(live_server, nc.client_id) == 0


def test_row15_request_uri_inside_the_par_body_is_refused(live_server):
    nc = register(live_server)
    r = push(live_server, nc, request_uri="urn:ietf:params:oauth:request_uri:abc")
    assert_error(r, 400, "invalid_request")
    assert pars_stored(live_server, nc.client_id) == 0


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_row16_other_methods_on_par_are_405(live_server, method):
    nc = register(live_server)
    with http(live_server) as c:
        r = c.request(method, PAR, auth=basic(nc))
    assert_error(r, 405, "invalid_request")
    assert r.headers["allow"] == "POST"


# === 17–18: request_uri reuse, expiry, another client =====================================================


def test_row17_request_uri_after_the_authorization_finished_is_refused(live_server, merchant):
    nc = register(live_server)
    request_uri = push(live_server, nc).json()["request_uri"]
    assert login(live_server, nc, request_uri, merchant.username, merchant.password).status_code == 303
    with http(live_server, mtls=False) as c:
        r = c.get(AUTHORIZE, params={"client_id": nc.client_id, "request_uri": request_uri})
    assert r.status_code == 400 and "<code>invalid_request_uri</code>" in r.text and "location" not in r.headers


def test_row17_expired_request_uri_is_refused(short_server):
    m = short_server.new_merchant()
    nc = register(short_server)
    request_uri = push(short_server, nc).json()["request_uri"]
    time.sleep(3)
    with http(short_server, mtls=False) as c:
        params = {"client_id": nc.client_id, "request_uri": request_uri}
        r = c.get(AUTHORIZE, params=params)
        assert r.status_code == 400 and "<code>invalid_request_uri</code>" in r.text
        r = c.post(AUTHORIZE, data={**params, "username": m.username, "password": m.password})
        assert r.status_code == 400 and "<code>invalid_request_uri</code>" in r.text and "location" not in r.headers


def test_row18_another_clients_request_uri_is_refused(live_server, merchant):
    a, b = register(live_server), register(live_server)
    request_uri = push(live_server, a).json()["request_uri"]
    with http(live_server, mtls=False) as c:
        r = c.get(AUTHORIZE, params={"client_id": b.client_id, "request_uri": request_uri})
        assert r.status_code == 400 and "<code>invalid_request_uri</code>" in r.text
        r = c.post(
            AUTHORIZE,
            data={
                "client_id": b.client_id,
                "request_uri": request_uri,
                "username": merchant.username,
                "password": merchant.password,
            },
        )
        assert r.status_code == 400 and "location" not in r.headers
    # still usable by its own client
    assert login(live_server, a, request_uri, merchant.username, merchant.password).status_code == 303


# === 19: PKCE ================================================================================================


def test_row19_pkce_plain_is_refused(live_server):
    nc = register(live_server)
    r = push(live_server, nc, code_challenge="a" * 43, code_challenge_method="plain")
    assert_error(r, 400, "invalid_request")
    assert pars_stored(live_server, nc.client_id) == 0


def test_row19_a_request_without_pkce_is_refused(live_server):
    nc = register(live_server)
    r = push(live_server, nc, code_challenge=DROP, code_challenge_method=DROP)
    assert_error(r, 400, "invalid_request")


def _code(server, nc, m):
    pushed = push(server, nc)
    back = code_from(login(server, nc, pushed.json()["request_uri"], m.username, m.password))
    return back["code"], pushed.verifier


def test_row19_missing_verifier_is_invalid_request(live_server, merchant):
    nc = register(live_server)
    code, _ = _code(live_server, nc, merchant)
    with http(live_server) as c:
        r = c.post(
            TOKEN,
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": nc.redirect_uri},
            auth=basic(nc),
        )
    assert_error(r, 400, "invalid_request")


def test_row19_wrong_verifier_is_invalid_grant_and_burns_the_code(live_server, merchant):
    nc = register(live_server)
    code, verifier = _code(live_server, nc, merchant)
    wrong, _ = pkce()
    with http(live_server) as c:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": nc.redirect_uri}
        assert_error(c.post(TOKEN, data={**data, "code_verifier": wrong}, auth=basic(nc)), 400, "invalid_grant")
        assert_error(c.post(TOKEN, data={**data, "code_verifier": verifier}, auth=basic(nc)), 400, "invalid_grant")


# === 20: code replay, expiry, another client ==============================================================


def test_row20_replayed_code_is_refused_and_revokes_what_it_issued(live_server, merchant):
    nc = register(live_server)
    pushed = push(live_server, nc)
    back = code_from(login(live_server, nc, pushed.json()["request_uri"], merchant.username, merchant.password))
    data = {
        "grant_type": "authorization_code",
        "code": back["code"],
        "redirect_uri": nc.redirect_uri,
        "code_verifier": pushed.verifier,
    }
    with http(live_server) as c:
        first = c.post(TOKEN, data=data, auth=basic(nc))
        assert first.status_code == 200
        assert_error(c.post(TOKEN, data=data, auth=basic(nc)), 400, "invalid_grant")
        tokens = first.json()
        assert introspect(live_server, nc, tokens["access_token"]).json() == {"active": False}
        r = c.post(
            TOKEN, data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}, auth=basic(nc)
        )
        assert_error(r, 400, "invalid_grant")


def test_row20_expired_code_is_refused(short_server):
    m = short_server.new_merchant()
    nc = register(short_server)
    code, verifier = _code(short_server, nc, m)
    time.sleep(3)
    with http(short_server) as c:
        r = c.post(
            TOKEN,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": nc.redirect_uri,
                "code_verifier": verifier,
            },
            auth=basic(nc),
        )
    assert_error(r, 400, "invalid_grant")


def test_row20_code_used_by_another_client_is_refused(live_server, merchant):
    a, b = register(live_server), register(live_server)
    code, verifier = _code(live_server, a, merchant)
    with http(live_server) as c:
        r = c.post(
            TOKEN,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": a.redirect_uri,
                "code_verifier": verifier,
            },
            auth=basic(b),
        )
        assert_error(r, 400, "invalid_grant")
        ok = c.post(
            TOKEN,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": a.redirect_uri,
                "code_verifier": verifier,
            },
            auth=basic(a),
        )
    assert ok.status_code == 200


# === 21: redirect_uri ====================================================================================


@pytest.mark.parametrize(
    "variant",
    [
        "https://platform.example.test/cb/",
        "https://PLATFORM.example.test/cb",
        "https://platform.example.test/cb?x=1",
        "https://evil.example/cb",
        "http://platform.example.test/cb",
    ],
)
def test_row21_redirect_uri_must_be_exactly_the_registered_one(live_server, variant):
    nc = register(live_server)
    r = push(live_server, nc, redirect_uri=variant)
    assert_error(r, 400, "invalid_request")
    assert pars_stored(live_server, nc.client_id) == 0


def test_row21_plain_request_with_a_foreign_redirect_uri_never_redirects(live_server):
    nc = register(live_server)
    _, challenge = pkce()
    with http(live_server, mtls=False) as c:
        r = c.get(
            AUTHORIZE,
            params={
                "response_type": "code",
                "client_id": nc.client_id,
                "redirect_uri": "https://evil.example/cb",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
    assert r.status_code == 400 and "<code>invalid_request</code>" in r.text and "location" not in r.headers


def test_row21_token_request_with_another_redirect_uri_is_invalid_grant(live_server, merchant):
    nc = register(live_server)
    code, verifier = _code(live_server, nc, merchant)
    with http(live_server) as c:
        r = c.post(
            TOKEN,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": nc.redirect_uri + "/",
                "code_verifier": verifier,
            },
            auth=basic(nc),
        )
    assert_error(r, 400, "invalid_grant")


# === 23–26: mTLS ===========================================================================================


def test_row23_tls_client_auth_without_a_certificate_is_401(live_server):
    nc = register(live_server, methods=("tls_client_auth",), with_cert=True)
    with http(live_server, nc, mtls=False) as c:
        r = c.post(TOKEN, data={"grant_type": "client_credentials", "client_id": nc.client_id})
    assert_error(r, 401, "invalid_client")


def test_row23_no_authentication_at_all_is_401(live_server):
    with http(live_server) as c:
        r = c.post(TOKEN, data={"grant_type": "client_credentials"})
    assert_error(r, 401, "invalid_client")


def test_row24_certificate_of_app_a_with_credentials_of_app_b_is_401(live_server):
    a = register(live_server, methods=("tls_client_auth", "client_secret_basic"), with_cert=True)
    b = register(live_server, methods=("tls_client_auth", "client_secret_basic"), with_cert=True)
    with http(live_server, cert=a.cert, key=a.key) as c:
        assert_error(c.post(TOKEN, data={"grant_type": "client_credentials"}, auth=basic(b)), 401, "invalid_client")
        assert_error(
            c.post(TOKEN, data={"grant_type": "client_credentials", "client_id": b.client_id}), 401, "invalid_client"
        )
        r = c.post(TOKEN, data={"grant_type": "client_credentials", "client_id": a.client_id})
    assert r.status_code == 200


def _refused_at_tls_or_401(server, nc, cert, key):
    try:
        with http(server, cert=cert, key=key) as c:
            r = c.post(TOKEN, data={"grant_type": "client_credentials", "client_id": nc.client_id})
    except httpx.TransportError:
        return "tls"
    assert_error(r, 401, "invalid_client")
    return "401"


def test_row25_revoked_certificate_is_refused(live_server):
    nc = register(live_server, methods=("tls_client_auth",), with_cert=True)
    with http(live_server, nc) as c:
        assert c.post(TOKEN, data={"grant_type": "client_credentials", "client_id": nc.client_id}).status_code == 200
    live_server.store.revoke_certificate(nc.serial, int(time.time()))
    assert _refused_at_tls_or_401(live_server, nc, nc.cert, nc.key) == "401"


def test_row25_expired_certificate_is_refused(live_server, tmp_path):
    from tessera.core.models import CertificateRecord
    from tessera.home import load_ca

    nc = register(live_server, methods=("tls_client_auth",))
    csr, key = make_csr(tmp_path / "expired")
    issued = load_ca(live_server.settings).sign_csr(
        csr.read_bytes(), validity_days=1, now=datetime.now(UTC) - timedelta(days=5)
    )
    live_server.store.add_certificate(
        CertificateRecord(
            serial=issued.serial,
            client_id=nc.client_id,
            thumbprint=issued.thumbprint,
            subject=issued.subject,
            not_before=int(issued.not_before.timestamp()),
            not_after=int(issued.not_after.timestamp()),
            pem=issued.pem.decode(),
            created_at=int(time.time()),
        )
    )
    cert = tmp_path / "expired.pem"
    cert.write_bytes(issued.pem)
    assert _refused_at_tls_or_401(live_server, nc, cert, key) == "tls"  # refused in the handshake


def test_row25_certificate_from_another_ca_is_refused(live_server, tmp_path):
    from tessera.ca.authority import CertificateAuthority

    nc = register(live_server, methods=("tls_client_auth",))
    csr, key = make_csr(tmp_path / "foreign")
    issued = CertificateAuthority.generate("another CA").sign_csr(csr.read_bytes(), validity_days=30)
    cert = tmp_path / "foreign.pem"
    cert.write_bytes(issued.pem)
    assert _refused_at_tls_or_401(live_server, nc, cert, key) == "tls"  # refused in the handshake


def test_row25_certificate_without_the_clientauth_eku_is_refused(live_server, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from tessera.core.models import CertificateRecord
    from tessera.home import load_ca
    from tessera.web.mtls import thumbprint

    nc = register(live_server, methods=("tls_client_auth",))
    csr_path, key = make_csr(tmp_path / "server-eku")
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    ca = load_ca(live_server.settings)
    now = datetime.now(UTC)
    cert = ca._sign(
        ca._leaf_builder(
            subject=csr.subject,
            public_key=csr.public_key(),
            not_before=now - timedelta(minutes=5),
            not_after=now + timedelta(days=5),
            eku=ExtendedKeyUsageOID.SERVER_AUTH,
        )
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    live_server.store.add_certificate(
        CertificateRecord(
            serial=format(cert.serial_number, "x"),
            client_id=nc.client_id,
            thumbprint=thumbprint(der),
            subject=cert.subject.rfc4514_string(),
            not_before=int(now.timestamp()) - 300,
            not_after=int(now.timestamp()) + 86400 * 5,
            pem=pem.decode(),
            created_at=int(now.timestamp()),
        )
    )
    path = tmp_path / "server-eku.pem"
    path.write_bytes(pem)
    assert _refused_at_tls_or_401(live_server, nc, path, key) == "tls"  # OpenSSL checks the ssl_client purpose


def test_row26_bound_token_with_another_certificate_or_none_is_invalid_token(live_server, merchant):
    a = register(live_server, with_cert=True)
    b = register(live_server, with_cert=True)
    tokens, _ = authorization_code_flow(live_server, a, merchant)
    assert claims_of(tokens["access_token"])["cnf"] == {"x5t#S256": a.thumbprint}
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    with http(live_server, cert=b.cert, key=b.key) as c:
        assert_error(c.get(USERINFO, headers=headers), 401, "invalid_token")
    with http(live_server, mtls=False) as c:
        assert_error(c.get(USERINFO, headers=headers), 401, "invalid_token")
    with http(live_server, a) as c:
        assert c.get(USERINFO, headers=headers).status_code == 200


# === 29: refresh reuse ========================================================================================


def test_row29_refresh_reused_after_rotation_revokes_the_family(live_server, merchant):
    nc = register(live_server)
    tokens, _ = authorization_code_flow(live_server, nc, merchant)
    with http(live_server) as c:
        data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        rotated = c.post(TOKEN, data=data, auth=basic(nc))
        assert rotated.status_code == 200
        assert_error(c.post(TOKEN, data=data, auth=basic(nc)), 400, "invalid_grant")
        newest = c.post(
            TOKEN,
            data={"grant_type": "refresh_token", "refresh_token": rotated.json()["refresh_token"]},
            auth=basic(nc),
        )
        assert_error(newest, 400, "invalid_grant")
    assert introspect(live_server, nc, rotated.json()["refresh_token"]).json() == {"active": False}


def test_row29_another_clients_refresh_token_is_refused(live_server, merchant):
    a, b = register(live_server), register(live_server)
    tokens, _ = authorization_code_flow(live_server, a, merchant)
    with http(live_server) as c:
        r = c.post(TOKEN, data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}, auth=basic(b))
    assert_error(r, 400, "invalid_grant")


# === 33: revoked client / certificate ==========================================================================


@pytest.mark.parametrize("method", ["client_secret_basic", "tls_client_auth", "private_key_jwt"])
def test_row33_revoked_client_is_refused_at_once(live_server, method):
    nc = register(
        live_server, methods=(method,), with_cert=(method == "tls_client_auth"), with_jwks=(method == "private_key_jwt")
    )

    def call():
        with http(live_server, nc) as c:
            if method == "client_secret_basic":
                return c.post(TOKEN, data={"grant_type": "client_credentials"}, auth=basic(nc))
            if method == "tls_client_auth":
                return c.post(TOKEN, data={"grant_type": "client_credentials", "client_id": nc.client_id})
        return cc_with_assertion(live_server, nc, sign(claims_for(live_server, nc), nc.jwk))

    assert call().status_code == 200
    live_server.store.set_client_status(nc.client_id, "revoked")
    refused(call())


def test_row33_revoked_certificate_is_refused_at_once_on_every_endpoint(live_server):
    nc = register(live_server, methods=("tls_client_auth",), with_cert=True)
    with http(live_server, nc) as c:
        token = c.post(TOKEN, data={"grant_type": "client_credentials", "client_id": nc.client_id}).json()[
            "access_token"
        ]
    live_server.store.revoke_certificate(nc.serial, int(time.time()))
    with http(live_server, nc) as c:
        for path, data in (
            (TOKEN, {"grant_type": "client_credentials"}),
            (INTROSPECT, {"token": token}),
            (REVOKE, {"token": token}),
        ):
            refused(c.post(path, data={**data, "client_id": nc.client_id}))


# === 34: malformed input =========================================================================================


@pytest.mark.parametrize("case", ["json_body", "no_content_type", "not_utf8", "repeated", "form_as_text"])
@pytest.mark.parametrize("path", [TOKEN, PAR, INTROSPECT, REVOKE])
def test_row34_malformed_input_is_400_never_500(live_server, case, path):
    nc = register(live_server)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    kw = {
        "json_body": {
            "content": json.dumps({"grant_type": "client_credentials"}),
            "headers": {"Content-Type": "application/json"},
        },
        "no_content_type": {"content": b"grant_type=client_credentials"},
        "not_utf8": {"content": b"grant_type=client_credentials&scope=\xff\xfe", "headers": form},
        "repeated": {
            "content": b"grant_type=client_credentials&grant_type=client_credentials&token=a&token=b",
            "headers": form,
        },
        "form_as_text": {"content": b"grant_type=client_credentials", "headers": {"Content-Type": "text/plain"}},
    }[case]
    with http(live_server) as c:
        r = c.post(path, auth=basic(nc), **kw)
    assert_error(r, 400, "invalid_request")


@pytest.mark.parametrize("assertion", ["", "garbage", "a.b", "a.b.c", "a.b.c.d.e", "\u00e9.e30.x", "{}"])
def test_row34_garbage_assertions_are_invalid_client_never_500(live_server, jwt_client, assertion):
    r = jwt_cc(live_server, jwt_client, assertion, client_id=jwt_client.client_id)
    assert_error(r, 401, "invalid_client")


def test_row34_secret_and_assertion_together_are_refused(live_server):
    nc = register(live_server, methods=("client_secret_post", "private_key_jwt"), with_jwks=True)
    r = jwt_cc(
        live_server,
        nc,
        sign(claims_for(live_server, nc), nc.jwk),
        client_id=nc.client_id,
        client_secret=nc.client_secret,
    )
    assert_error(r, 400, "invalid_request")


def test_row34_malformed_authorize_query_is_400(live_server):
    with http(live_server, mtls=False) as c:
        r = c.get(AUTHORIZE + "?client_id=a&client_id=b")
        assert r.status_code == 400 and "invalid_request" in r.text
        r = c.get(AUTHORIZE + "?client_id=%ff")
        assert r.status_code == 400


def test_row20_concurrent_exchanges_of_one_code_leave_no_live_token(live_server, merchant):
    """Racing exchanges of one code: whichever wins, the replay revokes what was issued."""
    from concurrent.futures import ThreadPoolExecutor

    for _ in range(3):
        nc = register(live_server)
        code, verifier = _code(live_server, nc, merchant)
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": nc.redirect_uri,
            "code_verifier": verifier,
        }

        def exchange(_, data=data, nc=nc):
            with http(live_server) as c:
                return c.post(TOKEN, data=data, auth=basic(nc))

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(exchange, range(4)))
        ok = [r for r in answers if r.status_code == 200]
        assert len(ok) <= 1, [r.status_code for r in answers]
        for r in answers:
            if r.status_code != 200:
                assert_error(r, 400, "invalid_grant")
        for r in ok:
            assert introspect(live_server, nc, r.json()["access_token"]).json() == {"active": False}
            assert introspect(live_server, nc, r.json()["refresh_token"]).json() == {"active": False}
