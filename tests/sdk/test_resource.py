"""The resource-server verifier: every accept and refuse case, the JWKS cache's refetch
rules, the MobilePay merchant rule, and the Starlette dependency's RFC 6750 answers."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from joserfc import jws
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tessera.sdk.mtls import MTLSConfig, thumbprint
from tessera.sdk.resource import (
    AuthContext,
    InsufficientScope,
    InvalidTokenError,
    JWKSCache,
    JWKSUnavailable,
    MobilePayMerchantRule,
    PosApiError,
    ResourceError,
    TokenVerifier,
    require_token,
    resource_error_handler,
)

ISS = "https://auth.example"
AUD = "https://payments.example"
JWKS_URI = ISS + "/oauth2/jwks"
VAT = "DK12345678"


@pytest.fixture(scope="module")
def keys():
    return {
        "ES256": ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig", "alg": "ES256"}),
        "RS256": RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig", "alg": "RS256"}),
        "EdDSA": OKPKey.generate_key("Ed25519", parameters={"kid": "ed-1", "use": "sig", "alg": "EdDSA"}),
    }


@pytest.fixture(scope="module")
def jwks(keys):
    return {"keys": [k.as_dict(private=False) for k in keys.values()]}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(autouse=True)
def _eddsa_is_still_accepted():
    # joserfc warns that "EdDSA" is deprecated (RFC 9864) when the test signs with it
    import warnings

    from joserfc.errors import SecurityWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=SecurityWarning, message="EdDSA")
        yield


def mint(key, *, alg: str = "ES256", header: dict | None = None, **claims) -> str:
    now = int(time.time())
    body = {
        "iss": ISS,
        "aud": AUD,
        "sub": "client-1",
        "client_id": "client-1",
        "iat": now,
        "exp": now + 300,
        "jti": "j1",
        "scope": "payments:write payments:read",
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    hdr = {"alg": alg, "typ": "at+jwt", "kid": key.kid}
    hdr.update(header or {})
    hdr = {k: v for k, v in hdr.items() if v is not None}
    return jws.serialize_compact(hdr, json.dumps(body).encode(), key, algorithms=[alg])


def unsigned(header: dict, claims: dict, signature: bytes = b"") -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)])


def der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


@pytest.fixture
def verifier(jwks):
    return TokenVerifier(jwks, issuer=ISS, audience=AUD)


def refused(verifier, token, reason, **kw):
    with pytest.raises(InvalidTokenError) as info:
        verifier.verify(token, **kw)
    assert info.value.reason == reason, info.value.reason
    assert info.value.status == 401 and info.value.error == "invalid_token"
    return info.value


# ---------------------------------------------------------------------- accept
@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_good_token(verifier, keys, alg):
    claims = verifier.verify(mint(keys[alg], alg=alg))
    assert claims["iss"] == ISS and claims["client_id"] == "client-1"


def test_typ_application_at_jwt_is_accepted(verifier, keys):
    verifier.verify(mint(keys["ES256"], header={"typ": "application/AT+JWT"}))


def test_several_issuers_and_audience_lists(jwks, keys):
    v = TokenVerifier(jwks, issuer=[ISS, ISS + "/integrator-authentication"], audience=AUD)
    v.verify(mint(keys["ES256"], iss=ISS + "/integrator-authentication", aud=["other", AUD]))


def test_expired_within_leeway_is_accepted(verifier, keys):
    verifier.verify(mint(keys["ES256"], exp=int(time.time()) - 20))


# ---------------------------------------------------------------------- refuse
def test_expired(verifier, keys):
    err = refused(verifier, mint(keys["ES256"], exp=int(time.time()) - 31), "token_expired")
    assert err.description == "the access token has expired"


def test_without_exp(verifier, keys):
    refused(verifier, mint(keys["ES256"], exp=None), "exp_missing")


def test_not_yet_valid(verifier, keys):
    refused(verifier, mint(keys["ES256"], nbf=int(time.time()) + 120), "token_not_yet_valid")


def test_issued_in_the_future(verifier, keys):
    refused(verifier, mint(keys["ES256"], iat=int(time.time()) + 120), "issued_in_future")


def test_wrong_issuer(verifier, keys):
    refused(verifier, mint(keys["ES256"], iss="https://evil.example"), "wrong_issuer")


def test_wrong_audience(verifier, keys):
    refused(verifier, mint(keys["ES256"], aud="https://other-api.example"), "wrong_audience")
    refused(verifier, mint(keys["ES256"], aud=None), "wrong_audience")


def test_bad_signature(verifier, keys):
    token = mint(keys["ES256"])
    h, p, s = token.split(".")
    forged_claims = json.loads(base64.urlsafe_b64decode(p + "=="))
    forged_claims["scope"] = "admin"
    refused(verifier, ".".join([h, b64(json.dumps(forged_claims).encode()), s]), "bad_signature")


def test_signed_by_another_key_under_a_known_kid(verifier):
    impostor = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
    refused(verifier, mint(impostor), "bad_signature")


def test_alg_none_is_refused(verifier):
    now = int(time.time())
    token = unsigned({"alg": "none", "typ": "at+jwt", "kid": "ec-1"}, {"iss": ISS, "aud": AUD, "exp": now + 60})
    refused(verifier, token, "alg_not_allowed")


def test_hs256_is_refused(verifier, keys, jwks):
    # The classic confusion: HMAC keyed with the published public key.
    secret = json.dumps(jwks["keys"][0]).encode()
    token = mint(OctKey.import_key(secret, parameters={"kid": "ec-1"}), alg="HS256")
    refused(verifier, token, "alg_not_allowed")
    with pytest.raises(ValueError):
        TokenVerifier(jwks, issuer=ISS, audience=AUD, algorithms=["HS256"])


def test_symmetric_keys_in_a_jwks_are_never_used(keys):
    oct_key = OctKey.generate_key(256, parameters={"kid": "hmac-1"})
    v = TokenVerifier({"keys": [oct_key.as_dict(private=True)]}, issuer=ISS, audience=AUD, algorithms=["ES256"])
    refused(v, mint(keys["ES256"], header={"kid": "hmac-1"}), "unknown_kid")


def test_alg_must_match_the_key(verifier, keys):
    # An RS256 header naming the EC key: refused before any signature check
    refused(verifier, mint(keys["RS256"], alg="RS256", header={"kid": "ec-1"}), "alg_key_mismatch")


def test_alg_not_in_the_allow_list(jwks, keys):
    v = TokenVerifier(jwks, issuer=ISS, audience=AUD, algorithms=["ES256"])
    refused(v, mint(keys["RS256"], alg="RS256"), "alg_not_allowed")


@pytest.mark.parametrize("typ", ["JWT", "jwt", None, "at+jwt+extra"])
def test_typ_not_at_jwt(verifier, keys, typ):
    refused(verifier, mint(keys["ES256"], header={"typ": typ}), "typ_not_at_jwt")


@pytest.mark.parametrize("extra", [{"crit": ["exp"]}, {"jku": "https://evil.example/jwks"}])
def test_dangerous_headers(verifier, keys, extra):
    now = int(time.time())
    header = {"alg": "ES256", "typ": "at+jwt", "kid": "ec-1", **extra}
    refused(verifier, unsigned(header, {"iss": ISS, "aud": AUD, "exp": now + 60}, b"x" * 64), "header_not_allowed")


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d", "!!!.???.###", "x" * 20000])
def test_malformed(verifier, token):
    with pytest.raises(InvalidTokenError):
        verifier.verify(token)


def test_unknown_kid_with_static_keys(verifier, keys):
    stranger = ECKey.generate_key("P-256", parameters={"kid": "who"})
    refused(verifier, mint(stranger), "unknown_kid")


# ---------------------------------------------------------------------- certificate binding
def test_bound_token_with_the_right_certificate(verifier, keys, rsa_dev):
    cert = der(rsa_dev.cert_pem)
    token = mint(keys["ES256"], cnf={"x5t#S256": thumbprint(cert)})
    assert verifier.verify(token, client_cert_der=cert)["cnf"]["x5t#S256"] == thumbprint(cert)


def test_bound_token_with_another_certificate(verifier, keys, rsa_dev, ec_dev):
    token = mint(keys["ES256"], cnf={"x5t#S256": thumbprint(der(rsa_dev.cert_pem))})
    refused(verifier, token, "certificate_mismatch", client_cert_der=der(ec_dev.cert_pem))


def test_bound_token_without_a_certificate(verifier, keys, rsa_dev):
    token = mint(keys["ES256"], cnf={"x5t#S256": thumbprint(der(rsa_dev.cert_pem))})
    refused(verifier, token, "certificate_required")


def test_unbound_token_with_a_certificate_is_fine(verifier, keys, rsa_dev):
    verifier.verify(mint(keys["ES256"]), client_cert_der=der(rsa_dev.cert_pem))


# ---------------------------------------------------------------------- scope
def test_missing_scope(jwks, keys):
    v = TokenVerifier(jwks, issuer=ISS, audience=AUD, required_scopes=["payments:read"])
    v.verify(mint(keys["ES256"]))
    with pytest.raises(InsufficientScope) as info:
        v.verify(mint(keys["ES256"]), scopes=["payments:refund"])
    assert info.value.status == 403 and info.value.scopes == ("payments:read", "payments:refund")
    with pytest.raises(InsufficientScope):
        v.verify(mint(keys["ES256"], scope=None))


# ---------------------------------------------------------------------- JWKS cache
class FakeJWKS:
    def __init__(self, body: dict, status: int = 200) -> None:
        self.body, self.status = body, status
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.calls += 1
        time.sleep(0.02)
        return httpx.Response(self.status, json=self.body)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cached_verifier(fake, clock=None, **kw):
    cache = JWKSCache(JWKS_URI, transport=httpx.MockTransport(fake), clock=clock or Clock(), **kw)
    return TokenVerifier(cache, issuer=ISS, audience=AUD), cache


def test_jwks_is_fetched_once_and_kept(jwks, keys):
    fake = FakeJWKS(jwks)
    v, cache = cached_verifier(fake)
    for _ in range(5):
        v.verify(mint(keys["ES256"]))
    assert fake.calls == 1 and cache.fetches == 1


def test_unknown_kid_refetches_once_per_interval(jwks, keys):
    fake = FakeJWKS(jwks)
    clock = Clock()
    v, cache = cached_verifier(fake, clock, min_refetch_interval=60)
    v.verify(mint(keys["ES256"]))
    clock.now += 61
    stranger = ECKey.generate_key("P-256", parameters={"kid": "not-published"})
    refused(v, mint(stranger), "unknown_kid")
    assert fake.calls == 2  # one refetch, then refused
    clock.now += 30
    for _ in range(10):  # a flood of unknown kids within the interval: no fetch
        refused(v, mint(ECKey.generate_key("P-256", parameters={"kid": f"x{_}"})), "unknown_kid")
    assert fake.calls == 2
    v.verify(mint(keys["ES256"]))  # known kids are unaffected
    clock.now += 31
    refused(v, mint(stranger), "unknown_kid")
    assert fake.calls == 3


def test_a_rotated_in_key_is_found_by_the_refetch(jwks, keys):
    fake = FakeJWKS({"keys": jwks["keys"][:1]})
    clock = Clock()
    v, _ = cached_verifier(fake, clock)
    v.verify(mint(keys["ES256"]))
    fake.body = jwks  # the authorization server published rsa-1
    clock.now += 60
    assert v.verify(mint(keys["RS256"], alg="RS256"))["iss"] == ISS
    assert fake.calls == 2


def test_refetch_after_max_age_and_stale_keys_survive_a_failed_fetch(jwks, keys):
    fake = FakeJWKS(jwks)
    clock = Clock()
    v, _ = cached_verifier(fake, clock, max_age=300)
    v.verify(mint(keys["ES256"]))
    clock.now += 301
    fake.status = 500
    v.verify(mint(keys["ES256"]))  # the refetch failed; the known key still verifies
    assert fake.calls == 2
    fake.status = 200
    clock.now += 61
    v.verify(mint(keys["ES256"]))
    assert fake.calls == 3


def test_unavailable_jwks(keys):
    fake = FakeJWKS({}, status=503)
    clock = Clock()
    v, _ = cached_verifier(fake, clock)
    with pytest.raises(JWKSUnavailable):
        v.verify(mint(keys["ES256"]))
    with pytest.raises(JWKSUnavailable):  # not refetched at once
        v.verify(mint(keys["ES256"]))
    assert fake.calls == 1
    clock.now += 6
    with pytest.raises(JWKSUnavailable):
        v.verify(mint(keys["ES256"]))
    assert fake.calls == 2


def test_jwks_skips_enc_and_private_keys(keys):
    enc = RSAKey.generate_key(2048, parameters={"kid": "enc-1", "use": "enc"})
    private = ECKey.generate_key("P-256", parameters={"kid": "priv-1"})
    body = {"keys": [enc.as_dict(private=False), private.as_dict(private=True), {"kty": "EC", "kid": "bad"}]}
    cache = JWKSCache(JWKS_URI, transport=httpx.MockTransport(FakeJWKS(body)))
    assert cache.get_key("enc-1") is None
    assert cache.keys() == {}


def test_concurrent_unknown_kid_fetches_once(jwks):
    fake = FakeJWKS(jwks)
    clock = Clock()
    v, cache = cached_verifier(fake, clock)
    cache.get_key("ec-1")
    clock.now += 120
    barrier = threading.Barrier(50)

    def worker():
        barrier.wait()
        cache.get_key("nobody")

    threads = [threading.Thread(target=worker) for _ in range(50)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert fake.calls == 2


def test_averify_fetches_without_blocking_the_loop(jwks, keys):
    fake = FakeJWKS(jwks)
    v, _ = cached_verifier(fake)

    async def main():
        tokens = [mint(keys["ES256"]) for _ in range(20)]
        return await asyncio.gather(*(v.averify(t) for t in tokens))

    assert len(asyncio.run(main())) == 20
    assert fake.calls == 1


# ---------------------------------------------------------------------- profile and scope list
def test_profile_check(jwks, keys):
    v = TokenVerifier(jwks, issuer=ISS, audience=AUD, profile="mobilepay")
    assert v.verify(mint(keys["RS256"], alg="RS256", prf="mobilepay"))["prf"] == "mobilepay"
    refused(v, mint(keys["RS256"], alg="RS256", prf="native"), "wrong_profile")
    refused(v, mint(keys["RS256"], alg="RS256"), "wrong_profile")  # a token naming no profile
    with pytest.raises(ValueError):
        TokenVerifier(jwks, issuer=ISS, audience=AUD, profile="")


def test_scope_as_a_list_as_mobilepay_sends_it(jwks, keys):
    v = TokenVerifier(jwks, issuer=ISS, audience=AUD, required_scopes=["integrator_scope"])
    token = mint(keys["RS256"], alg="RS256", scope=["integrator_scope"], aud=[AUD, "integrator_scope"])
    assert v.verify(token)["scope"] == ["integrator_scope"]
    with pytest.raises(InsufficientScope):
        v.verify(mint(keys["RS256"], alg="RS256", scope=["other"]))


# ---------------------------------------------------------------------- MobilePay merchant rule
RULE = MobilePayMerchantRule()


def pos_refusal(call, status: int, code: str) -> PosApiError:
    with pytest.raises(PosApiError) as info:
        call()
    err = info.value
    assert (err.status, err.code) == (status, code)
    body = json.loads(err.response().body)
    assert set(body) == {"code", "message", "CorrelationId"} and body["code"] == code and body["message"]
    assert str(uuid.UUID(body["CorrelationId"])) == body["CorrelationId"]
    return err


def test_rule_token_with_vat_and_matching_header():
    assert RULE.merchant({"merchant_vat": VAT}, [VAT]) == VAT


def test_rule_token_with_vat_and_no_header():
    assert RULE.merchant({"merchant_vat": VAT}, []) == VAT


def test_rule_token_with_vat_and_another_merchants_header():
    pos_refusal(lambda: RULE.merchant({"merchant_vat": VAT}, ["FI87654321"]), 403, "1411")


def test_rule_token_without_vat_and_header():
    assert RULE.merchant({}, ["FI87654321"]) == "FI87654321"


def test_rule_token_without_vat_and_no_header_is_1151():
    pos_refusal(lambda: RULE.merchant({}, []), 400, "1151")


@pytest.mark.parametrize("value", ["DK1234567", "SE12345678", "dk12345678", "DK12345678,FI87654321", ""])
def test_rule_malformed_header_is_1159(value):
    pos_refusal(lambda: RULE.merchant({}, [value]), 400, "1159")
    pos_refusal(lambda: RULE.merchant({"merchant_vat": VAT}, [value]), 400, "1159")


def test_rule_header_twice_is_1155():
    pos_refusal(lambda: RULE.merchant({}, [VAT, VAT]), 400, "1155")


@pytest.mark.parametrize("claim", ["DK1", "dk12345678", 12345678, ["DK12345678"], ""])
def test_rule_malformed_claim_is_1182(claim):
    pos_refusal(lambda: RULE.merchant({"merchant_vat": claim}, []), 400, "1182")
    pos_refusal(lambda: RULE.merchant({"merchant_vat": claim}, [VAT]), 400, "1182")


def test_rule_allow_hook():
    rule = MobilePayMerchantRule(allow=lambda vat, claims: vat == VAT)
    assert rule.merchant({}, [VAT]) == VAT
    pos_refusal(lambda: rule.merchant({}, ["FI87654321"]), 403, "1411")


def test_rule_another_merchants_payment_is_1411():
    RULE.owner_check(VAT, VAT)
    pos_refusal(lambda: RULE.owner_check(VAT, "FI87654321"), 403, "1411")


def test_rule_client_id_header():
    RULE.check_client({"client_id": "client-1"}, ["client-1"])
    RULE.check_client({"client_id": "client-1"}, [])  # not required unless asked
    for values in (["client-2"], ["client-1", "client-1"], [""]):
        with pytest.raises(InvalidTokenError) as info:
            RULE.check_client({"client_id": "client-1"}, values)
        assert info.value.status == 401 and info.value.reason == "client_id_mismatch"
    with pytest.raises(InvalidTokenError):
        MobilePayMerchantRule(require_client_id=True).check_client({"client_id": "client-1"}, [])


def test_rule_header_is_configurable():
    rule = MobilePayMerchantRule(header="x-merchant")
    assert rule.header == "x-merchant" and RULE.header == "x-mobilepay-merchant-vat-number"


def test_resource_module_imports_nothing_of_the_server():
    code = (
        "import sys, tessera.sdk.resource; "
        "bad = [m for m in sys.modules "
        "if m.split('.')[0] == 'uvicorn' or m.startswith(('tessera.web', 'tessera.core'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# ---------------------------------------------------------------------- Starlette dependency
class WithTLS:
    """ASGI wrapper: the peer address and the TLS extension as uvicorn + tessera.web.tls give them."""

    def __init__(self, app, client=("203.0.113.9", 50000)) -> None:
        self.app, self.client, self.cert_pem = app, client, None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            scope = dict(scope, client=self.client)
            if self.cert_pem is not None:
                scope["extensions"] = {**(scope.get("extensions") or {}), "tls": {"client_cert_chain": [self.cert_pem]}}
        await self.app(scope, receive, send)


class ASGIClient:
    """Requests to an ASGI app in-process (httpx.ASGITransport), one event loop per call."""

    def __init__(self, app) -> None:
        self.app = app

    def get(self, path: str, headers: dict | None = None) -> httpx.Response:
        async def go():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://api.test") as c:
                return await c.get(path, headers=headers)

        return asyncio.run(go())


def build_app(verifier, **kw):
    plain = require_token(verifier, scopes=["payments:read"], **kw)
    mobilepay = require_token(verifier, merchant_rule=MobilePayMerchantRule(), **kw)

    @plain.protect
    async def payments(request: Request):
        auth: AuthContext = request.state.auth
        return JSONResponse(
            {
                "client_id": auth.client_id,
                "scopes": sorted(auth.scopes),
                "bound": auth.certificate.thumbprint if auth.certificate else None,
            }
        )

    @mobilepay.protect
    async def pos(request: Request):
        return JSONResponse({"merchant": request.state.auth.merchant_vat})

    async def handler_route(request: Request):  # the dependency called directly; errors via the handler
        auth = await require_token(verifier, scopes=["payments:refund"])(request)
        return JSONResponse({"client_id": auth.client_id})

    app = Starlette(
        routes=[Route("/payments", payments), Route("/pos/payments", pos), Route("/refunds", handler_route)],
        exception_handlers={ResourceError: resource_error_handler},
    )
    return WithTLS(app)


@pytest.fixture
def http(verifier):
    client = ASGIClient(build_app(verifier))
    client.asgi = client.app
    return client


def bearer(token: str, **headers) -> dict:
    return {"Authorization": f"Bearer {token}", **headers}


def test_dependency_accepts_a_good_token(http, keys):
    r = http.get("/payments", headers=bearer(mint(keys["ES256"])))
    assert r.status_code == 200
    assert r.json() == {"client_id": "client-1", "scopes": ["payments:read", "payments:write"], "bound": None}


def test_dependency_no_token_is_401_without_an_error_code(http):
    r = http.get("/payments")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="tessera"'
    assert r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("header", ["Basic Zm9vOmJhcg==", "Bearer", "Bearer a b c"])
def test_dependency_other_schemes_and_garbage(http, header):
    r = http.get("/payments", headers={"Authorization": header})
    assert r.status_code == 401


def test_dependency_invalid_token_is_401_invalid_token(http, keys):
    r = http.get("/payments", headers=bearer(mint(keys["ES256"], exp=int(time.time()) - 120)))
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith('Bearer realm="tessera", error="invalid_token"')
    assert r.json() == {"error": "invalid_token", "error_description": "the access token has expired"}


def test_dependency_missing_scope_is_403(http, keys):
    r = http.get("/payments", headers=bearer(mint(keys["ES256"], scope="payments:write")))
    assert r.status_code == 403
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
    assert 'scope="payments:read"' in r.headers["www-authenticate"]
    assert r.json()["error"] == "insufficient_scope"


def test_dependency_errors_through_the_exception_handler(http, keys):
    r = http.get("/refunds", headers=bearer(mint(keys["ES256"])))
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"
    r = http.get("/refunds")
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="tessera"'


def test_dependency_certificate_from_the_tls_extension(http, keys, rsa_dev, ec_dev):
    cert = der(rsa_dev.cert_pem)
    token = mint(keys["ES256"], cnf={"x5t#S256": thumbprint(cert)})
    assert http.get("/payments", headers=bearer(token)).status_code == 401  # no certificate
    http.asgi.cert_pem = ec_dev.cert_pem.decode()
    r = http.get("/payments", headers=bearer(token))
    assert r.status_code == 401 and "another certificate" in r.json()["error_description"]
    http.asgi.cert_pem = rsa_dev.cert_pem.decode()
    r = http.get("/payments", headers=bearer(token))
    assert r.status_code == 200 and r.json()["bound"] == thumbprint(cert)


def test_dependency_certificate_from_a_trusted_proxy_only(verifier, keys, rsa_dev):
    cert = der(rsa_dev.cert_pem)
    token = mint(keys["ES256"], cnf={"x5t#S256": thumbprint(cert)})
    forwarded = urllib.parse.quote(rsa_dev.cert_pem.decode())
    asgi = build_app(
        verifier, mtls=MTLSConfig(mode="proxy", header="x-ssl-client-cert", trusted_proxies=("10.0.0.0/8",))
    )
    client = ASGIClient(asgi)
    asgi.client = ("10.1.2.3", 40000)
    assert client.get("/payments", headers=bearer(token, **{"x-ssl-client-cert": forwarded})).status_code == 200
    asgi.client = ("203.0.113.9", 40000)  # not a trusted proxy: the header is ignored
    assert client.get("/payments", headers=bearer(token, **{"x-ssl-client-cert": forwarded})).status_code == 401


def test_dependency_mobilepay_rule(http, keys):
    bound = mint(keys["ES256"], merchant_vat=VAT)
    unbound = mint(keys["ES256"])
    h = "x-mobilepay-merchant-vat-number"
    r = http.get("/pos/payments", headers=bearer(bound, **{h: VAT}))
    assert r.status_code == 200 and r.json() == {"merchant": VAT}
    r = http.get("/pos/payments", headers=bearer(bound, **{h: "FI87654321"}))
    assert r.status_code == 403 and r.json()["code"] == "1411" and set(r.json()) == {"code", "message", "CorrelationId"}
    r = http.get("/pos/payments", headers=bearer(unbound, **{h: "FI87654321"}))
    assert r.status_code == 200 and r.json() == {"merchant": "FI87654321"}
    r = http.get("/pos/payments", headers=bearer(unbound))
    assert r.status_code == 400 and r.json()["code"] == "1151"
    r = http.get("/pos/payments", headers=bearer(unbound, **{h: "DK123"}))
    assert r.status_code == 400 and r.json()["code"] == "1159"
    r = http.get("/pos/payments", headers=[*bearer(unbound).items(), (h, VAT), (h, VAT)])
    assert r.status_code == 400 and r.json()["code"] == "1155"
    r = http.get("/pos/payments", headers=bearer(mint(keys["ES256"], merchant_vat="XX1")))
    assert r.status_code == 400 and r.json()["code"] == "1182"
    r = http.get("/pos/payments", headers=bearer(bound, **{"x-ibm-client-id": "someone-else"}))
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    r = http.get("/pos/payments", headers=bearer(bound, **{"x-ibm-client-id": "client-1"}))
    assert r.status_code == 200


def test_dependency_jwks_unavailable_is_503(keys):
    fake = FakeJWKS({}, status=500)
    v, _ = cached_verifier(fake)
    r = ASGIClient(build_app(v)).get("/payments", headers=bearer(mint(keys["ES256"])))
    assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable"


def test_errors_are_starlette_http_exceptions_with_their_challenge(verifier):
    # Without our handler, Starlette (and FastAPI) still answer the status and the challenge.
    dep = require_token(verifier)

    async def endpoint(request: Request):
        await dep(request)
        return JSONResponse({})

    r = ASGIClient(Starlette(routes=[Route("/", endpoint)])).get("/", headers={"Authorization": "Bearer abc.def.ghi"})
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
