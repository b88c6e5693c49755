"""Sealed from each other: every kind of token and artefact, from every profile and the
native surface, presented at every endpoint that takes one. Only the diagonal is accepted;
every refusal comes in the endpoint's own shape, and nothing is issued or used up.

One live server (embedded mTLS), one client registered for everything (a secret, a
certificate from the home's CA, the code and refresh grants), so that a refusal can only
come from the seal: the same client and certificate succeed with the right token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.e2e import native_helpers as nh
from tests.e2e import nexi_helpers as xh
from tests.support.live import LiveServer

pytestmark = pytest.mark.slow

B2B_MEDIA = "application/vnd.api+json"
MOBILEPAY_TOKEN = "/integrator-authentication/connect/token"
MOBILEPAY_JWKS = "/integrator-authentication/.well-known/openid-configuration/jwks"
AXEPT = "/axept/v1/authenticate"
B2B_LOGIN, B2B_REFRESH = "/b2binpay/token/", "/b2binpay/token/refresh/"

#: The access tokens, by the profile that issued them (the Nexi code exchange's is Nexi's too).
ACCESS = ("nexi", "nexi_code", "native_unbound", "native_bound", "mobilepay", "axept", "b2binpay")
REFRESH = ("native_refresh", "b2binpay_refresh")
PROFILE_OF = {
    "nexi": "nexi-softpos",
    "nexi_code": "nexi-softpos",
    "native_unbound": "native",
    "native_bound": "native",
    "mobilepay": "mobilepay",
    "axept": "axept",
    "b2binpay": "b2binpay",
    "native_refresh": "native",
    "b2binpay_refresh": "b2binpay",
}


@dataclass
class World:
    server: LiveServer
    nc: nh.NativeClient
    merchant: Any
    tokens: dict[str, str] = field(default_factory=dict)
    request_uris: dict[str, str] = field(default_factory=dict)
    codes: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # code, PKCE verifier

    @property
    def app(self):
        return self.nc.identity()


def _b2b(server: LiveServer, path: str, attributes: dict[str, str]) -> httpx.Response:
    with nh.http(server, mtls=False) as c:
        return c.post(
            path,
            content=json.dumps({"data": {"type": "auth-token", "attributes": attributes}}),
            headers={"Content-Type": B2B_MEDIA},
        )


@pytest.fixture(scope="module")
def world(live_server: LiveServer) -> World:
    server = live_server
    nc = nh.register(
        server, with_cert=True, scope="openid email payments:read", redirect_uri="https://app.example.test/callback"
    )
    merchant = server.new_merchant(nc.identity())
    w = World(server, nc, merchant)
    app = w.app

    # Nexi: the enrollment token (bound), a pushed request, a code and the code exchange's token.
    w.tokens["nexi"] = xh.get_token(server, app)
    verifier, challenge = xh.pkce_pair()
    w.request_uris["nexi"] = xh.push(server, app, merchant, token=w.tokens["nexi"], code_challenge=challenge)
    uri = xh.push(server, app, merchant, token=w.tokens["nexi"], code_challenge=challenge)
    code = xh.login_for_code(server, app, merchant, uri)
    w.codes["nexi"] = (code, verifier)
    verifier2, challenge2 = xh.pkce_pair()
    uri2 = xh.push(server, app, merchant, token=w.tokens["nexi"], code_challenge=challenge2)
    code2 = xh.login_for_code(server, app, merchant, uri2)
    with xh.http(server, app) as c:
        r = xh.exchange(c, app, code2, code_verifier=verifier2)
    assert r.status_code == 200, r.text
    w.tokens["nexi_code"] = r.json()["access_token"]

    # Native: unbound (secret alone, no certificate) and bound (over mTLS) access tokens,
    # a refresh token, a pushed request and a code.
    with nh.http(server, nc, mtls=False) as c:
        r = c.post(nh.TOKEN, data={"grant_type": "client_credentials"}, auth=nh.basic(nc))
    assert r.status_code == 200, r.text
    w.tokens["native_unbound"] = r.json()["access_token"]
    w.tokens["native_bound"] = nh.client_credentials(server, nc)["access_token"]
    body, _ = nh.authorization_code_flow(server, nc, merchant, scope="openid email")
    w.tokens["native_refresh"] = body["refresh_token"]
    pushed = nh.push(server, nc, scope="openid")
    assert pushed.status_code == 201, pushed.text
    w.request_uris["native"] = pushed.json()["request_uri"]
    pushed = nh.push(server, nc, scope="openid")
    back = nh.code_from(nh.login(server, nc, pushed.json()["request_uri"], merchant.username, merchant.password))
    w.codes["native"] = (back["code"], pushed.verifier)  # type: ignore[attr-defined]

    # MobilePay, axept, B2BINPAY.
    with nh.http(server, mtls=False) as c:
        r = c.post(MOBILEPAY_TOKEN, data={"grant_type": "client_credentials"}, auth=nh.basic(nc))
    assert r.status_code == 200, r.text
    w.tokens["mobilepay"] = r.json()["access_token"]
    key = server.cli_json("keys", "create", "--merchant-id", str(merchant.merchant_id), "--json")
    with nh.http(server, mtls=False) as c:
        r = c.post(AXEPT, json=key)
    assert r.status_code == 200, r.text
    w.tokens["axept"] = r.json()["token"]
    r = _b2b(server, B2B_LOGIN, {"login": nc.client_id, "password": nc.client_secret})
    assert r.status_code == 200, r.text
    attrs = r.json()["data"]["attributes"]
    w.tokens["b2binpay"], w.tokens["b2binpay_refresh"] = attrs["access"], attrs["refresh"]
    return w


def _no_token_in(resp: httpx.Response) -> None:
    """The refusal's body holds nothing that was issued (no token, no request_uri)."""
    issued = {"access_token", "access", "refresh_token", "refresh", "request_uri", "id_token", "token"}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            assert not issued & set(node), node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(resp.json())


# --- every token carries its seal -------------------------------------------------------------


@pytest.mark.parametrize("kind", ACCESS + REFRESH)
def test_every_token_names_its_profile_and_environment(world, kind):
    claims = nh.claims_of(world.tokens[kind])
    assert claims["prf"] == PROFILE_OF[kind]
    assert claims["env"] == "staging"


def test_each_profile_has_its_own_audience(world):
    auds = {}
    for kind in ACCESS:
        aud = nh.claims_of(world.tokens[kind])["aud"]
        auds.setdefault(PROFILE_OF[kind], set()).add(aud[0] if isinstance(aud, list) else aud)
    assert all(len(a) == 1 for a in auds.values()), auds
    firsts = [next(iter(a)) for a in auds.values()]
    assert len(set(firsts)) == len(firsts), auds


# --- the Nexi PAR: a Nexi, certificate-bound token only ----------------------------------------


@pytest.mark.parametrize("kind", ACCESS + REFRESH)
def test_nexi_par_takes_only_nexi_tokens(world, kind):
    server, app = world.server, world.app
    a = xh.build_assertion(server, app, world.merchant)
    with xh.http(server, app) as c:
        r = xh.par_request(c, world.tokens[kind], xh.par_form(app, a.token))
    if PROFILE_OF[kind] == "nexi-softpos":
        xh.assert_par_created(r)
        return
    body = xh.assert_error(r, 401, "invalid_token")
    assert body["error"] == "invalid_token"
    _no_token_in(r)


# --- the native userinfo, introspection and revocation ------------------------------------------


@pytest.mark.parametrize("kind", ACCESS + REFRESH)
def test_userinfo_takes_only_native_access_tokens(world, kind):
    with nh.http(world.server, world.nc) as c:
        r = c.get(nh.USERINFO, headers={"Authorization": f"Bearer {world.tokens[kind]}"})
    if kind in ("native_unbound", "native_bound"):
        assert r.status_code == 200, r.text
        assert r.json()["sub"] == world.nc.client_id
        return
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_token"
    assert r.headers["www-authenticate"].lower().startswith("bearer")


@pytest.mark.parametrize("kind", ACCESS + REFRESH)
def test_introspection_sees_only_native_tokens(world, kind):
    r = nh.introspect(world.server, world.nc, world.tokens[kind])
    assert r.status_code == 200, r.text
    assert r.json()["active"] is (kind in ("native_unbound", "native_bound", "native_refresh")), r.json()


@pytest.mark.parametrize("kind", [k for k in ACCESS + REFRESH if PROFILE_OF[k] != "native"])
def test_revocation_ignores_other_profiles_tokens(world, kind):
    """RFC 7009 §2.2: a token the endpoint does not know is no error, and nothing is revoked:
    the token still works at its own endpoint afterwards."""
    server, nc = world.server, world.nc
    with nh.http(server, nc) as c:
        r = c.post(nh.REVOKE, data={"token": world.tokens[kind]}, auth=nh.basic(nc))
    assert r.status_code == 200, r.text
    if kind == "nexi":
        a = xh.build_assertion(server, world.app, world.merchant)
        with xh.http(server, world.app) as c:
            xh.assert_par_created(xh.par_request(c, world.tokens["nexi"], xh.par_form(world.app, a.token)))


# --- refresh tokens: each redeemed only at its own endpoint, never used up elsewhere ---------------


@pytest.mark.parametrize("kind", [k for k in ACCESS + REFRESH if k != "native_refresh"])
def test_native_refresh_grant_takes_only_native_refresh_tokens(world, kind):
    with nh.http(world.server, world.nc) as c:
        r = c.post(
            nh.TOKEN, data={"grant_type": "refresh_token", "refresh_token": world.tokens[kind]}, auth=nh.basic(world.nc)
        )
    nh.assert_error(r, 400, "invalid_grant")
    _no_token_in(r)


@pytest.mark.parametrize("kind", [k for k in ACCESS + REFRESH if k != "b2binpay_refresh"])
def test_b2binpay_refresh_takes_only_b2binpay_refresh_tokens(world, kind):
    r = _b2b(world.server, B2B_REFRESH, {"refresh": world.tokens[kind]})
    assert r.status_code == 401, r.text
    errors = r.json()["errors"]
    assert errors[0]["code"] == "2007", errors
    assert r.headers["content-type"].startswith(B2B_MEDIA)
    _no_token_in(r)


def test_refresh_tokens_still_work_at_their_own_endpoints(world):
    """After every refusal above (ordering: pytest runs this module top to bottom), the
    diagonal still works: nothing was used up or revoked by the wrong endpoints."""
    r = _b2b(world.server, B2B_REFRESH, {"refresh": world.tokens["b2binpay_refresh"]})
    assert r.status_code == 200, r.text
    with nh.http(world.server, world.nc) as c:
        r = c.post(
            nh.TOKEN,
            data={"grant_type": "refresh_token", "refresh_token": world.tokens["native_refresh"]},
            auth=nh.basic(world.nc),
        )
    assert r.status_code == 200, r.text
    assert nh.claims_of(r.json()["access_token"])["prf"] == "native"


def test_a_native_refresh_token_needs_its_own_clients_authentication(world):
    server = world.server
    other = nh.register(server)
    body, _ = nh.authorization_code_flow(server, world.nc, world.merchant, scope="openid")
    with nh.http(server, other) as c:
        r = c.post(
            nh.TOKEN, data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}, auth=nh.basic(other)
        )
    nh.assert_error(r, 400, "invalid_grant")
    with nh.http(server, mtls=False) as c:  # and no authentication at all
        r = c.post(
            nh.TOKEN,
            data={
                "grant_type": "refresh_token",
                "refresh_token": body["refresh_token"],
                "client_id": world.nc.client_id,
            },
        )
    assert r.status_code == 401, r.text
    _no_token_in(r)


# --- request_uris and codes: each profile's own ----------------------------------------------------


def test_request_uris_are_sealed(world):
    server, nc = world.server, world.nc
    with nh.http(server, mtls=False) as c:
        r = c.get(xh.AUTHORIZE_PATH, params={"client_id": nc.client_id, "request_uri": world.request_uris["native"]})
        assert r.status_code == 400, r.text[:300]
        r = c.get(nh.AUTHORIZE, params={"client_id": nc.client_id, "request_uri": world.request_uris["nexi"]})
        assert r.status_code == 400, r.text[:300]
        # The diagonal: each page opens with its own request_uri.
        assert (
            c.get(
                xh.AUTHORIZE_PATH, params={"client_id": nc.client_id, "request_uri": world.request_uris["nexi"]}
            ).status_code
            == 200
        )
        assert (
            c.get(
                nh.AUTHORIZE, params={"client_id": nc.client_id, "request_uri": world.request_uris["native"]}
            ).status_code
            == 200
        )


def test_codes_are_sealed(world):
    server, nc, app = world.server, world.nc, world.app
    native_code, native_verifier = world.codes["native"]
    nexi_code, nexi_verifier = world.codes["nexi"]
    with xh.http(server, app) as c:
        r = xh.exchange(c, app, native_code, redirect_uri=nc.redirect_uri, code_verifier=native_verifier)
    xh.assert_error(r, 400, "invalid_grant")
    with nh.http(server, nc) as c:
        r = c.post(
            nh.TOKEN,
            data={
                "grant_type": "authorization_code",
                "code": nexi_code,
                "redirect_uri": nc.redirect_uri,
                "code_verifier": nexi_verifier,
            },
            auth=nh.basic(nc),
        )
    nh.assert_error(r, 400, "invalid_grant")
    _no_token_in(r)
    # Neither refusal used the code up (nor revoked anything): each is still good at its own endpoint.
    with xh.http(server, app) as c:
        r = xh.exchange(c, app, nexi_code, code_verifier=nexi_verifier)
    assert r.status_code == 200, r.text
    with nh.http(server, nc) as c:
        r = c.post(
            nh.TOKEN,
            data={
                "grant_type": "authorization_code",
                "code": native_code,
                "redirect_uri": nc.redirect_uri,
                "code_verifier": native_verifier,
            },
            auth=nh.basic(nc),
        )
    assert r.status_code == 200, r.text


# --- the resource side: each profile's audience refuses the others' tokens ------------------------


def test_resource_verifiers_take_only_their_profiles_tokens(world):
    from tessera.sdk.resource import InvalidTokenError, TokenVerifier

    server = world.server
    iss = nh.issuer(server)
    with nh.http(server, mtls=False) as c:
        keys = c.get(nh.JWKS).json()["keys"] + c.get(MOBILEPAY_JWKS).json()["keys"]
    jwks = {"keys": list({k["kid"]: k for k in keys}.values())}
    audiences = {
        "native": (iss, iss),
        "nexi-softpos": (iss, iss + "/softpos"),
        "mobilepay": (iss + "/integrator-authentication", iss + "/integrator-authentication/resources"),
        "axept": (iss, "axeptConnectCloud-merchant-client"),
        "b2binpay": (iss, iss + "/b2binpay"),
    }
    der = x509.load_pem_x509_certificate(world.nc.cert.read_bytes()).public_bytes(Encoding.DER)
    for profile, (issuer, audience) in audiences.items():
        verifier = TokenVerifier(jwks, issuer=issuer, audience=audience)
        for kind in ACCESS:
            if PROFILE_OF[kind] == profile:
                assert verifier.verify(world.tokens[kind], client_cert_der=der)["prf"] == profile
            else:
                with pytest.raises(InvalidTokenError):
                    verifier.verify(world.tokens[kind], client_cert_der=der)


def test_an_unbound_token_never_opens_a_certificate_bound_endpoint(world):
    """The issue's own case: a native token got with the secret alone, presented at the Nexi
    PAR over the client's own mTLS connection, with a valid assertion: 401 invalid_token."""
    server, app = world.server, world.app
    a = xh.build_assertion(server, app, world.merchant)
    with xh.http(server, app) as c:
        r = xh.par_request(c, world.tokens["native_unbound"], xh.par_form(app, a.token))
    body = xh.assert_error(r, 401, "invalid_token")
    assert (
        "certificate-bound" in body["error_description"] or "not issued for this endpoint" in body["error_description"]
    )


# --- MobilePay's own introspection and revocation (its discovery document lists them) -------------


def test_mobilepay_introspection_and_revocation_know_only_mobilepay_tokens(world):
    server, nc = world.server, world.nc
    with nh.http(server, mtls=False) as c:
        doc = c.get("/integrator-authentication/.well-known/openid-configuration").json()
        introspection = doc["introspection_endpoint"].removeprefix(nh.issuer(server))
        revocation = doc["revocation_endpoint"].removeprefix(nh.issuer(server))
        fresh = c.post(MOBILEPAY_TOKEN, data={"grant_type": "client_credentials"}, auth=nh.basic(nc)).json()[
            "access_token"
        ]
        for kind in ACCESS + REFRESH:  # only MobilePay's tokens are active here; post auth is accepted too
            r = c.post(
                introspection,
                data={"token": world.tokens[kind], "client_id": nc.client_id, "client_secret": nc.client_secret},
            )
            assert r.status_code == 200, r.text
            assert r.json()["active"] is (kind == "mobilepay"), (kind, r.json())
        body = c.post(introspection, data={"token": fresh}, auth=nh.basic(nc)).json()
        # RFC 7662 §2.2: scope is one space-separated string (the token itself carries MobilePay's list)
        assert body["active"] is True and body["client_id"] == nc.client_id and body["scope"] == "integrator_scope"
        # Another profile's token is ignored at MobilePay's revocation: the native token stays active.
        assert c.post(revocation, data={"token": world.tokens["native_unbound"]}, auth=nh.basic(nc)).status_code == 200
        assert nh.introspect(server, nc, world.tokens["native_unbound"]).json()["active"] is True
        # MobilePay's own token is revoked, and refused from then on.
        assert c.post(revocation, data={"token": fresh}, auth=nh.basic(nc)).status_code == 200
        assert c.post(introspection, data={"token": fresh}, auth=nh.basic(nc)).json() == {"active": False}
        r = c.post(introspection, data={"token": fresh}, auth=("nobody", "wrong"))
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
