"""A replay of Nexi's reference merchant backend (``NexiPayments/softpos-backend``,
``ClientAssertionService`` and ``NexiUpstreamService``; provider-docs/reference-facts.md),
parameter for parameter, against a live ``tessera`` server over real mutual TLS.

Every JOSE object here is built with jwcrypto, never with tessera's code:

- token: form ``grant_type, client_id, client_secret``, ``Accept: application/json`` → 200;
- JWKS fetched before every PAR, and **a random key** of it used (``keys[random]``);
- inner JWS header ``{"alg": "RS256"}`` and nothing else; outer JWE header
  ``{"alg": "RSA-OAEP-256", "enc": "A128CBC-HS256"}`` and nothing else (no kid, no cty);
- claims ``appId, pointOfSale, terminal_ids, app_username_merchant, app_deviceid, iss, sub,
  aud, iat = now, exp = iat + 500, jti = UUID``;
- PAR: Bearer token, form ``client_assertion, client_id, scope=oidc, redirect_uri`` → 201,
  with the custom-scheme redirect URI of the reference Android app (``pizzapay://confirm-pay``).
"""

from __future__ import annotations

import json
import random
import time
import uuid

import pytest
from jwcrypto import jwe, jwk, jws

from tests.e2e.nexi_helpers import (
    FORM,
    JWKS_PATH,
    PAR_PATH,
    TOKEN_PATH,
    assert_error,
    assert_par_created,
    b64u_decode,
    base_url,
    code_from,
    count_artifacts,
    enrollments_of,
    exchange,
    http,
    login,
)
from tests.support.jwkcache import jwk_from_pem

pytestmark = pytest.mark.slow

REDIRECT = "pizzapay://confirm-pay"
RELOAD_DEADLINE = 30.0  # the server re-reads its keys every ~10 s


def reference_assertion(
    server,
    app,
    merchant,
    enc_jwk: dict,
    *,
    device_id: str,
    now: int | None = None,
    lifetime: int = 500,
    alg: str = "RSA-OAEP-256",
    enc: str = "A128CBC-HS256",
    **overrides,
) -> str:
    now = int(time.time()) if now is None else now
    claims = {
        "appId": app.client_id,
        "pointOfSale": merchant.pos,
        "terminal_ids": [merchant.softpos_tid, merchant.mpos_tid],
        "app_username_merchant": merchant.username,
        "app_deviceid": device_id,
        "iss": app.client_id,
        "sub": app.client_id,
        "aud": base_url(server),
        "iat": now,
        "exp": now + lifetime,
        "jti": str(uuid.uuid4()),
        **overrides,
    }
    signer = jwk_from_pem(app.key.read_bytes())
    inner = jws.JWS(json.dumps(claims).encode())
    inner.add_signature(signer, alg="RS256", protected=json.dumps({"alg": "RS256"}))
    compact_jws = inner.serialize(compact=True)
    recipient = jwk.JWK(**{k: v for k, v in enc_jwk.items() if k in ("kty", "n", "e")})
    outer = jwe.JWE(compact_jws.encode(), protected=json.dumps({"alg": alg, "enc": enc}))
    outer.allowed_algs = [alg, enc]
    outer.add_recipient(recipient)
    token = outer.serialize(compact=True)
    # exactly the reference's headers, as they go over the wire
    assert json.loads(b64u_decode(token.split(".")[0])) == {"alg": alg, "enc": enc}
    assert json.loads(b64u_decode(compact_jws.split(".")[0])) == {"alg": "RS256"}
    return token


class Reference:
    """What ``NexiUpstreamService`` does, call by call, over one mTLS client."""

    def __init__(self, server, app, merchant):
        self.server, self.app, self.merchant = server, app, merchant
        self.c = http(server, app)

    def token(self) -> str:
        r = self.c.post(
            TOKEN_PATH,
            data={
                "grant_type": "client_credentials",
                "client_id": self.app.client_id,
                "client_secret": self.app.client_secret,
            },
            headers={**FORM, "Accept": "application/json"},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["expires_in"] == 3600
        return body["access_token"]

    def jwks(self) -> dict:
        r = self.c.get(JWKS_PATH)
        assert r.status_code == 200, r.text
        return r.json()

    def par(self, token: str, assertion: str):
        return self.c.post(
            PAR_PATH,
            data={
                "client_assertion": assertion,
                "client_id": self.app.client_id,
                "scope": "oidc",
                "redirect_uri": REDIRECT,
            },
            headers={**FORM, "Authorization": f"Bearer {token}"},
        )


@pytest.fixture(scope="module")
def ref(live_server):
    app = live_server.new_app(redirect_uri=REDIRECT)
    merchant = live_server.new_merchant(app)
    r = Reference(live_server, app, merchant)
    yield r
    r.c.close()


def test_pars_to_random_jwks_keys_after_a_rotation(ref):
    """Several PARs, each to a key picked at random from the JWKS, after ``jwks rotate --use enc``
    (current, next and the retired key published): every one is 201."""
    server = ref.server
    rotated = server.cli_json("jwks", "rotate", "--use", "enc")
    deadline = time.monotonic() + RELOAD_DEADLINE
    while True:
        kids = [k["kid"] for k in ref.jwks()["keys"]]
        if kids and kids[0] == rotated["current"] and rotated["retired"] in kids:
            break
        assert time.monotonic() < deadline, "the server did not publish the rotated keys in time"
        time.sleep(0.5)
    assert len(kids) >= 3, kids  # current, next, retired

    token = ref.token()
    used = []
    # each published key once (in a random order, so that no key is missed), then random picks
    order = random.sample(kids, len(kids)) + [None] * 3
    for wanted in order:
        keys = ref.jwks()["keys"]  # fetched before every PAR, as the reference does
        chosen = random.choice(keys) if wanted is None else next(k for k in keys if k["kid"] == wanted)
        used.append(chosen["kid"])
        a = reference_assertion(server, ref.app, ref.merchant, chosen, device_id="dev-" + uuid.uuid4().hex[:8])
        assert_par_created(ref.par(token, a))
    assert set(used) == set(kids)


def test_the_enrollment_keeps_app_deviceid(ref):
    """The request_uri carries app_deviceid to the code and then to the enrollment, which
    ``tessera enrollments list`` shows."""
    server, app, merchant = ref.server, ref.app, ref.merchant
    device = "A1B2C3D4-" + uuid.uuid4().hex[:12]
    keys = ref.jwks()["keys"]
    r = ref.par(ref.token(), reference_assertion(server, app, merchant, random.choice(keys), device_id=device))
    uri = assert_par_created(r)
    with http(server, cert=None) as browser:
        code = code_from(login(browser, app, uri, merchant.username, merchant.password), app)["code"]
    assert code
    r = exchange(ref.c, app, code)
    assert r.status_code == 200, r.text
    (enrollment,) = enrollments_of(server, app.client_id)
    assert enrollment.device_id == device and enrollment.username == merchant.username
    listed = server.cli_json("enrollments", "list")["enrollments"]
    mine = [e for e in listed if e["client_id"] == app.client_id]
    assert [e["app_deviceid"] for e in mine] == [device]
    assert "device" in server.cli("enrollments", "list").stdout  # the table has the column (values may be cut)


def test_iat_5s_ahead_is_400_and_says_the_clock_is_ahead(ref):
    before = count_artifacts(ref.server, "request_uri", ref.app.client_id)
    a = reference_assertion(
        ref.server, ref.app, ref.merchant, ref.jwks()["keys"][0], device_id="d", now=int(time.time()) + 5
    )
    body = assert_error(ref.par(ref.token(), a), 400, "invalid_client")
    assert "client's clock is ahead" in body["error_description"], body
    assert count_artifacts(ref.server, "request_uri", ref.app.client_id) == before


def test_lifetime_900_accepted_901_refused(ref):
    token = ref.token()
    keys = ref.jwks()["keys"]
    now = int(time.time()) - 1
    assert_par_created(
        ref.par(
            token,
            reference_assertion(
                ref.server, ref.app, ref.merchant, random.choice(keys), device_id="d", now=now, lifetime=900
            ),
        )
    )
    before = count_artifacts(ref.server, "request_uri", ref.app.client_id)
    body = assert_error(
        ref.par(
            token,
            reference_assertion(
                ref.server, ref.app, ref.merchant, random.choice(keys), device_id="d", now=now, lifetime=901
            ),
        ),
        400,
        "invalid_client",
    )
    assert "900" in body["error_description"], body
    assert count_artifacts(ref.server, "request_uri", ref.app.client_id) == before


@pytest.mark.parametrize(
    "alg,enc",
    [
        ("RSA-OAEP-256", "A128CBC-HS256"),
        ("RSA-OAEP-256", "A256CBC-HS512"),
        ("RSA-OAEP", "A128GCM"),
        ("RSA-OAEP", "A256GCM"),
    ],
)
def test_the_allowed_alg_enc_pairs(ref, alg, enc):
    a = reference_assertion(
        ref.server, ref.app, ref.merchant, random.choice(ref.jwks()["keys"]), device_id="d", alg=alg, enc=enc
    )
    assert_par_created(ref.par(ref.token(), a))


def _other_jwe(ref, alg: str, enc: str, *, zip_def: bool = False) -> str:
    """A kid-less JWE with a refused alg/enc (or zip), made by jwcrypto with a fitting key."""
    inner = jws.JWS(json.dumps({"iss": ref.app.client_id}).encode())
    inner.add_signature(jwk_from_pem(ref.app.key.read_bytes()), alg="RS256", protected=json.dumps({"alg": "RS256"}))
    if alg in ("RSA1_5", "RSA-OAEP-256", "RSA-OAEP"):
        key = jwk.JWK(**{k: v for k, v in ref.jwks()["keys"][0].items() if k in ("kty", "n", "e")})
    elif alg == "dir":
        key = jwk.JWK.generate(kty="oct", size={"A256GCM": 256, "A128CBC-HS256": 256}[enc])
    elif alg.startswith("ECDH-ES"):
        key = jwk.JWK.generate(kty="EC", crv="P-256")
    elif alg.startswith("PBES2"):
        key = jwk.JWK.from_password("correct horse battery staple")
    else:  # AES key wrap
        key = jwk.JWK.generate(kty="oct", size=int(alg[1:4]))
    header = {"alg": alg, "enc": enc, **({"zip": "DEF"} if zip_def else {})}
    obj = jwe.JWE(inner.serialize(compact=True).encode(), protected=json.dumps(header))
    obj.allowed_algs = [alg, enc]
    obj.add_recipient(key)
    return obj.serialize(compact=True)


@pytest.mark.parametrize(
    "alg,enc,zip_def",
    [
        ("RSA1_5", "A128CBC-HS256", False),
        ("dir", "A256GCM", False),
        ("A128KW", "A128CBC-HS256", False),
        ("A256GCMKW", "A256GCM", False),
        ("ECDH-ES", "A128CBC-HS256", False),
        ("ECDH-ES+A128KW", "A256GCM", False),
        ("PBES2-HS256+A128KW", "A128CBC-HS256", False),
        ("RSA-OAEP-256", "A192GCM", False),
        ("RSA-OAEP-256", "A192CBC-HS384", False),
        ("RSA-OAEP-256", "A128CBC-HS256", True),
    ],
)
def test_refused_alg_enc_and_zip(ref, alg, enc, zip_def):
    before = count_artifacts(ref.server, "request_uri", ref.app.client_id)
    assert_error(ref.par(ref.token(), _other_jwe(ref, alg, enc, zip_def=zip_def)), 400, "invalid_client")
    assert count_artifacts(ref.server, "request_uri", ref.app.client_id) == before


def test_custom_scheme_redirect_uri_registers_and_matches_exactly(ref):
    server = ref.server
    created = server.cli_json("clients", "create", "--name", "PizzaPay", "--redirect-uri", REDIRECT)
    listed = server.cli_json("clients", "list")
    entry = next(c for c in (listed.get("clients") or listed) if c["client_id"] == created["client_id"])
    assert entry["redirect_uris"] == [REDIRECT]
    # The CLI refuses a bad one (a process); each of them is refused by the rule it calls
    # (in process), in the words the CLI prints.
    from tessera.admin.clients import RegisterClient, check_registration
    from tessera.admin.errors import Invalid
    from tessera.cli.common import describe

    bad_uris = (
        "javascript:alert(1)",
        "data:text/html,x",
        "file:///etc/passwd",
        "http://evil.example/cb",
        "pizzapay://confirm-pay#frag",
    )
    proc = server.cli("clients", "create", "--name", "Bad", "--redirect-uri", bad_uris[0], check=False)
    assert proc.returncode != 0 and "redirect-uri" in (proc.stderr + proc.stdout), (proc.stdout, proc.stderr)
    for bad in bad_uris:
        with pytest.raises(Invalid) as refused:
            check_registration(RegisterClient(name="Bad", redirect_uris=(bad,)))
        assert refused.value.field == "redirect_uris" and "--redirect-uri" in describe(refused.value), bad
    # exact match at the PAR: a near miss is refused
    token = ref.token()
    for near in ("pizzapay://confirm-pay/", "PIZZAPAY://confirm-pay", "pizzapay://confirm-pay?x=1"):
        a = reference_assertion(server, ref.app, ref.merchant, ref.jwks()["keys"][0], device_id="d")
        r = ref.c.post(
            PAR_PATH,
            data={"client_assertion": a, "client_id": ref.app.client_id, "scope": "oidc", "redirect_uri": near},
            headers={**FORM, "Authorization": f"Bearer {token}"},
        )
        assert_error(r, 400, "invalid_request")
