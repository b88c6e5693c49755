"""The admin API in process (fixed clock, one home per module): every operation, and its
refusals: 401, 403, 404 across organisations, 409, 412 on a stale ETag, 428 without one,
413, 415, 422; idempotent creates; every change in the security events with its operator."""

from __future__ import annotations

import base64
import re
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.routing import Route

from tessera import admin as ops
from tessera.admin.idempotency import KIND as IDEMPOTENCY
from tessera.web.admin_api.operations import OPERATIONS

from .conftest import Api, Operator

PROBLEM = "application/problem+json"


def problem(r, status: int, kind: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM, r.headers
    body = r.json()
    assert {"type", "title", "status", "detail"} <= set(body) and body["status"] == status
    if kind is not None:
        assert body["type"].endswith("/" + kind), body
    return body


def csr_pem(cn: str = "NOMEAPP") -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )


def new_app(api: Api, op: Operator, **body) -> dict:
    r = api.call(op, "POST", "/apps", json={"name": "app", "redirect_uris": ["https://a.example/cb"], **body})
    assert r.status_code == 201, r.text
    return r.json()


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def token_status(api: Api, client_id: str, secret: str) -> int:
    r = api.client.post("/oauth2/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, secret))
    return r.status_code


# --- authentication ------------------------------------------------------------------------------------


def test_no_token_is_401_with_a_bearer_challenge(api: Api) -> None:
    r = api.client.get("/admin/v1/apps")
    problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_an_invalid_token_is_401(api: Api) -> None:
    r = api.client.get("/admin/v1/apps", headers={"Authorization": "Bearer not.a.token"})
    problem(r, 401)
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_a_token_without_the_admin_scope_is_403(api: Api) -> None:
    other = api.operator(scope="payments")
    problem(api.call(other, "GET", "/apps"), 403, "forbidden")


def test_a_revoked_operator_is_401(api: Api) -> None:
    op = api.operator()
    assert api.call(op, "GET", "/apps").status_code == 200
    ops.revoke_client(api.admin, op.client_id)
    # PostgreSQL's NOTIFY reaches the core's listener a moment after the commit: wait for it
    deadline = time.monotonic() + 5
    while (r := api.call(op, "GET", "/apps")).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    problem(r, 401)


def test_a_wrong_method_is_405_as_a_problem(api: Api, platform: Operator) -> None:
    r = api.call(platform, "DELETE", "/apps")
    problem(r, 405)
    assert r.headers["allow"] == "POST, GET"


@pytest.mark.parametrize("method, path", [("GET", "/nothing"), ("POST", "/apps/x/y/z"), ("DELETE", "/")])
def test_an_unknown_path_is_a_404_problem(api: Api, platform: Operator, method: str, path: str) -> None:
    problem(api.call(platform, method, path), 404, "not_found")


# --- apps --------------------------------------------------------------------------------------------------


def test_app_lifecycle(api: Api, platform: Operator) -> None:
    r = api.call(platform, "POST", "/apps", json={"name": "pos", "redirect_uris": ["https://pos.example/cb"]})
    assert r.status_code == 201 and r.headers["location"] == f"/admin/v1/apps/{r.json()['client_id']}"
    app = r.json()
    assert app["client_secret"] and app["status"] == "active" and app["org_id"] is None
    assert token_status(api, app["client_id"], app["client_secret"]) == 200
    got = api.call(platform, "GET", f"/apps/{app['client_id']}")
    assert got.status_code == 200 and "client_secret" not in got.json() and got.headers["etag"] == r.headers["etag"]
    etag = got.headers["etag"]
    # update: If-Match required, a stale one refused
    patch = {"redirect_uris": ["https://pos.example/cb2"]}
    problem(api.call(platform, "PATCH", f"/apps/{app['client_id']}", json=patch), 428, "precondition_required")
    stale = {"If-Match": '"0000"'}
    problem(api.call(platform, "PATCH", f"/apps/{app['client_id']}", json=patch, headers=stale), 412)
    r = api.call(platform, "PATCH", f"/apps/{app['client_id']}", json=patch, headers={"If-Match": etag})
    assert r.status_code == 200 and r.json()["redirect_uris"] == ["https://pos.example/cb2"]
    assert r.headers["etag"] != etag
    problem(api.call(platform, "PATCH", f"/apps/{app['client_id']}", json=patch, headers={"If-Match": etag}), 412)
    bad = {"redirect_uris": ["http://plain.example/cb"]}
    body = problem(api.call(platform, "PATCH", f"/apps/{app['client_id']}", json=bad, headers={"If-Match": "*"}), 422)
    assert body["field"] == "redirect_uris"
    # revoke
    r = api.call(platform, "POST", f"/apps/{app['client_id']}/revoke")
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    assert token_status(api, app["client_id"], app["client_secret"]) == 401
    problem(api.call(platform, "GET", "/apps/nope"), 404, "not_found")


def test_secret_rotation_with_an_overlap(api: Api, platform: Operator) -> None:
    app = new_app(api, platform, profile="b2binpay")
    assert app["grant_types"] == ["client_credentials"]
    path = f"/apps/{app['client_id']}/secret"
    r = api.call(platform, "POST", path, json={"overlap": 600})
    assert r.status_code == 201, r.text
    rotated = r.json()
    assert set(rotated) == {"client_id", "client_secret", "previous_valid_until"}
    assert rotated["previous_valid_until"] == api.clock.now + 600
    assert token_status(api, app["client_id"], app["client_secret"]) == 200
    assert token_status(api, app["client_id"], rotated["client_secret"]) == 200
    info = api.call(platform, "GET", f"/apps/{app['client_id']}").json()
    assert info["previous_secret_valid_until"] == api.clock.now + 600
    listed = api.call(platform, "GET", "/apps", params={"limit": 200}).json()["items"]
    assert [a["previous_secret_valid_until"] for a in listed if a["client_id"] == app["client_id"]] == [
        api.clock.now + 600
    ]
    problem(api.call(platform, "POST", path, json={"overlap": 600}), 409, "conflict")
    api.clock.now += 600
    try:
        assert token_status(api, app["client_id"], app["client_secret"]) == 401
        assert token_status(api, app["client_id"], rotated["client_secret"]) == 200
        r = api.call(platform, "POST", path)  # no body: the configured overlap (24 h)
        assert r.status_code == 201 and r.json()["previous_valid_until"] == api.clock.now + 86400
    finally:
        api.clock.now -= 600


def test_lists_are_paged_by_cursor(api: Api, platform: Operator) -> None:
    for i in range(3):
        new_app(api, platform, name=f"paged {i}")
    seen: list[str] = []
    r = api.call(platform, "GET", "/apps", params={"limit": 2})
    while True:
        assert r.status_code == 200
        page = r.json()
        assert len(page["items"]) <= 2
        seen += [a["client_id"] for a in page["items"]]
        if page["next"] is None:
            assert "link" not in r.headers
            break
        link = re.fullmatch(r'<(/admin/v1/apps\?[^>]+)>; rel="next"', r.headers["link"])
        assert link, r.headers["link"]
        r = api.client.get(link.group(1), headers=platform.auth)
    every = [a["client_id"] for a in api.call(platform, "GET", "/apps", params={"limit": 200}).json()["items"]]
    assert seen == every and len(set(seen)) == len(seen) >= 3
    problem(api.call(platform, "GET", "/apps", params={"cursor": "garbage!"}), 422)
    problem(api.call(platform, "GET", "/apps", params={"limit": 0}), 422)
    problem(api.call(platform, "GET", "/apps", params={"limit": "x"}), 422)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "x", "colour": "red"}, "colour"),
        ({"name": 5}, "name"),
        ({"name": "x", "redirect_uris": "https://a.example/cb"}, "redirect_uris"),
        ({"name": "x", "require_par": "yes"}, "require_par"),
        ({"name": "x", "auth_methods": ["none"]}, "auth_methods.0"),
        ({}, "name"),
    ],
)
def test_strict_bodies_are_422_naming_the_field(api: Api, platform: Operator, body, field) -> None:
    assert problem(api.call(platform, "POST", "/apps", json=body), 422, "validation")["field"] == field


def test_malformed_oversize_and_wrong_media_type(api: Api, platform: Operator) -> None:
    json_type = {"Content-Type": "application/json"}
    problem(api.call(platform, "POST", "/apps", content=b"{not json", headers=json_type), 400)
    problem(api.call(platform, "POST", "/apps", content=b"[]", headers=json_type), 422)
    big = b'{"name": "' + b"x" * (api.settings.max_body_bytes + 1) + b'"}'
    problem(api.call(platform, "POST", "/apps", content=big, headers=json_type), 413)
    problem(api.call(platform, "POST", "/apps", content=b'{"name":"x"}', headers={"Content-Type": "text/plain"}), 415)


def test_idempotency_key_replays_without_a_second_create(api: Api, platform: Operator) -> None:
    before = len(ops.list_clients(api.admin))
    body = {"name": "idem", "redirect_uris": ["https://i.example/cb"]}
    first = api.call(platform, "POST", "/apps", json=body, headers={"Idempotency-Key": "k-1"})
    again = api.call(platform, "POST", "/apps", json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert len(ops.list_clients(api.admin)) == before + 1
    # the stored answer holds no secret in clear
    secret = first.json()["client_secret"]
    stored = [a for a in _artifacts(api) if secret in str(a.data)]
    assert stored == []
    body = problem(
        api.call(platform, "POST", "/apps", json={**body, "name": "other"}, headers={"Idempotency-Key": "k-1"}), 422
    )
    assert body["field"] == "Idempotency-Key"
    # another operator's same key is another request
    other = api.operator()
    r = api.call(other, "POST", "/apps", json={"name": "idem", "redirect_uris": ["https://i.example/cb"]},
                 headers={"Idempotency-Key": "k-1"})  # fmt: skip
    assert r.status_code == 201 and r.json()["client_id"] != first.json()["client_id"]
    # a lapsed key (24 h) makes a new one
    api.clock.now += 86400
    try:
        fresh = Operator(platform.client_id, platform.secret, api.token(platform.client_id, platform.secret))
        r = api.call(fresh, "POST", "/apps", json={"name": "idem", "redirect_uris": ["https://i.example/cb"]},
                     headers={"Idempotency-Key": "k-1"})  # fmt: skip
        assert r.status_code == 201 and r.json()["client_id"] != first.json()["client_id"]
    finally:
        api.clock.now -= 86400


def _artifacts(api: Api) -> list:
    from sqlalchemy import select

    from tessera.storage import schema as t

    store = api.admin.store
    with store.engine.connect() as c:  # type: ignore[attr-defined]
        rows = c.execute(select(t.artifacts).where(t.artifacts.c.kind == IDEMPOTENCY)).mappings().all()
    assert rows
    return [type("A", (), {"data": r["data"]}) for r in rows]


# --- organisations: scoping ----------------------------------------------------------------------------------


def test_an_organisation_operator_sees_only_its_own(api: Api, platform: Operator, tmp_path: Path) -> None:
    for org_id in ("acme", "globex"):
        r = api.call(platform, "POST", "/organisations", json={"name": org_id.title(), "org_id": org_id})
        assert r.status_code == 201 and r.json()["org_id"] == org_id
    problem(api.call(platform, "POST", "/organisations", json={"name": "Acme", "org_id": "acme"}), 409)
    assert api.call(platform, "GET", "/organisations/acme").json()["name"] == "Acme"
    acme, globex = api.operator(org="acme"), api.operator(org="globex")
    mine = new_app(api, acme)
    assert mine["org_id"] == "acme"
    theirs = new_app(api, globex)
    problem(api.call(acme, "POST", "/apps", json={"name": "x", "org_id": "globex"}), 403)
    listed = [a["client_id"] for a in api.call(acme, "GET", "/apps").json()["items"]]
    assert mine["client_id"] in listed and theirs["client_id"] not in listed
    problem(api.call(acme, "GET", "/apps", params={"org_id": "globex"}), 403)
    for method, suffix in [("GET", ""), ("POST", "/revoke"), ("POST", "/secret"), ("GET", "/certificates")]:
        problem(api.call(acme, method, f"/apps/{theirs['client_id']}{suffix}"), 404)
    problem(api.call(acme, "PATCH", f"/apps/{theirs['client_id']}", json={"name": "x"}, headers={"If-Match": "*"}), 404)
    csr = {"content": csr_pem(), "headers": {"Content-Type": "application/pkcs10"}}
    problem(api.call(acme, "POST", f"/apps/{theirs['client_id']}/certificates", **csr), 404)
    signed = api.call(globex, "POST", f"/apps/{theirs['client_id']}/certificates", **csr).json()
    problem(api.call(acme, "GET", f"/certificates/{signed['serial']}.pem"), 404)
    problem(api.call(acme, "GET", f"/certificates/{signed['serial']}.p7b"), 404)
    problem(api.call(acme, "POST", f"/apps/{theirs['client_id']}/certificates/{signed['serial']}/revoke"), 404)
    assert api.call(globex, "GET", f"/certificates/{signed['serial']}.pem").status_code == 200
    for method, path in [
        ("GET", "/merchants"),
        ("POST", "/merchants"),
        ("GET", "/organisations"),
        ("GET", "/organisations/acme"),
        ("GET", "/events"),
        ("GET", "/server-keys"),
        ("POST", "/server-keys/sig/rotate"),
        ("GET", "/merchants/1/keys"),
    ]:
        kw = {"json": {"merchant_id": 1}} if method == "POST" and path == "/merchants" else {}
        problem(api.call(acme, method, path, **kw), 403)


# --- certificates ------------------------------------------------------------------------------------------------


def test_certificates_sign_download_revoke(api: Api, platform: Operator, tmp_path: Path) -> None:
    app = new_app(api, platform, profile="nexi-softpos")
    assert "tls_client_auth" in app["auth_methods"]
    path = f"/apps/{app['client_id']}/certificates"
    r = api.call(platform, "POST", path, content=csr_pem(), headers={"Content-Type": "application/pkcs10"})
    assert r.status_code == 201, r.text
    signed = r.json()
    assert signed["certificate"].startswith("-----BEGIN CERTIFICATE-----") and signed["serial"]
    pem = api.call(platform, "GET", f"/certificates/{signed['serial']}.pem")
    assert pem.status_code == 200 and pem.text == signed["certificate"]
    for encoding, inform in [("pem", "PEM"), ("der", "DER")]:
        p7b = api.call(platform, "GET", f"/certificates/{signed['serial']}.p7b", params={"encoding": encoding})
        assert p7b.status_code == 200
        f = tmp_path / f"c.{encoding}.p7b"
        f.write_bytes(p7b.content)
        out = subprocess.run(
            ["openssl", "pkcs7", "-inform", inform, "-print_certs", "-in", str(f)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert signed["certificate"].strip() in out
    problem(api.call(platform, "GET", f"/certificates/{signed['serial']}.p7b", params={"encoding": "xml"}), 422)
    problem(api.call(platform, "GET", "/certificates/ffffffff.pem"), 404)
    # the CA's refusals: 400 with the reason
    refused = api.call(platform, "POST", path, content=b"not a csr", headers={"Content-Type": "application/pkcs10"})
    assert "CSR" in problem(refused, 400, "csr_refused")["detail"]
    problem(api.call(platform, "POST", path, content=csr_pem(), headers={"Content-Type": "text/plain"}), 415)
    listed = api.call(platform, "GET", path).json()["items"]
    assert [c["serial"] for c in listed] == [signed["serial"]] and listed[0]["revoked_at"] is None
    r = api.call(platform, "POST", f"{path}/{signed['serial']}/revoke")
    assert r.status_code == 200 and r.json()["revoked_at"] == api.clock.now


# --- merchants, keys --------------------------------------------------------------------------------------------------


def test_merchants_terminals_users_grants(api: Api, platform: Operator) -> None:
    r = api.call(platform, "POST", "/merchants", json={"merchant_id": 5501, "name": "Shop", "vat": "DK55015501"})
    assert r.status_code == 201 and r.json()["merchant_id"] == 5501
    problem(api.call(platform, "POST", "/merchants", json={"merchant_id": 5501, "name": "Again"}), 409)
    problem(api.call(platform, "POST", "/merchants", json={"merchant_id": "5501"}), 422)
    problem(api.call(platform, "POST", "/merchants", json={"merchant_id": True}), 422)
    problem(api.call(platform, "POST", "/merchants", json={"merchant_id": 5502, "vat": "IT12345678901"}), 422)
    assert api.call(platform, "GET", "/merchants/5501").json()["vat"] == "DK55015501"
    problem(api.call(platform, "GET", "/merchants/9999999"), 404)
    problem(api.call(platform, "GET", "/merchants/abc"), 404)
    base = "/merchants/5501"
    for tid, pos, kind in [("T1", "POS-A", "softpos"), ("T2", "POS-A", "mpos"), ("T3", "POS-B", "softpos")]:
        r = api.call(platform, "POST", f"{base}/terminals", json={"tid": tid, "pos": pos, "kind": kind})
        assert r.status_code == 201, r.text
    problem(api.call(platform, "POST", f"{base}/terminals", json={"tid": "T1", "pos": "POS-A", "kind": "softpos"}), 409)
    problem(api.call(platform, "POST", f"{base}/terminals", json={"tid": "T9", "pos": "P", "kind": "atm"}), 422)
    assert [t["tid"] for t in api.call(platform, "GET", f"{base}/terminals").json()["items"]] == ["T1", "T2", "T3"]
    pos = api.call(platform, "GET", f"{base}/points-of-sale").json()["items"]
    assert [(p["pos"], [t["tid"] for t in p["terminals"]]) for p in pos] == [("POS-A", ["T1", "T2"]), ("POS-B", ["T3"])]
    r = api.call(platform, "POST", f"{base}/users", json={"username": "Clerk@Shop.example"})
    assert r.status_code == 201, r.text
    made = r.json()
    invitation = made.pop("invitation")
    assert made == {"merchant_id": 5501, "username": "clerk@shop.example", "password_set": False}
    assert "/invitation/" in invitation["link"] and invitation["expires_at"] > api.clock.now
    # the user sets the password through the portal's invitation (tessera.admin.developers)
    from tessera.admin.developers import accept_invitation

    accept_invitation(api.admin, invitation["link"].rsplit("/", 1)[1], "a long enough password")
    assert api.call(platform, "GET", f"{base}/users").json()["items"][0]["password_set"] is True
    problem(api.call(platform, "POST", f"{base}/users", json={"username": "c@s.example", "password": "x" * 12}), 422)
    users = api.call(platform, "GET", f"{base}/users").json()["items"]
    assert users == [{"merchant_id": 5501, "username": "clerk@shop.example", "password_set": True}]
    assert "hash" not in str(users)
    app = new_app(api, platform, profile="mobilepay")
    r = api.call(platform, "POST", f"{base}/grants", json={"client_id": app["client_id"]})
    assert r.status_code == 201 and r.json()["client_id"] == app["client_id"]
    problem(api.call(platform, "POST", f"{base}/grants", json={"client_id": "nope"}), 404)
    grants = api.call(platform, "GET", f"{base}/grants").json()["items"]
    assert [g["client_id"] for g in grants] == [app["client_id"]]
    assert 5501 in [m["merchant_id"] for m in api.call(platform, "GET", "/merchants").json()["items"]]


def test_axept_keys(api: Api, platform: Operator) -> None:
    assert api.call(platform, "POST", "/merchants", json={"merchant_id": 6601, "name": "Keys"}).status_code == 201
    base = "/merchants/6601/keys"
    made = []
    for _ in range(3):
        r = api.call(platform, "POST", base)
        assert r.status_code == 201 and set(r.json()) == {"merchantId", "keyId", "key"}
        made.append(r.json())
    problem(api.call(platform, "POST", base), 409)  # at most three enabled
    listed = api.call(platform, "GET", base).json()["items"]
    assert [k["keyId"] for k in listed] == [k["keyId"] for k in made]
    assert all("key" not in k and k["enabled"] for k in listed)
    for k in made[:2]:
        assert api.call(platform, "POST", f"{base}/{k['keyId']}/disable").json()["enabled"] is False
    last = made[2]["keyId"]
    body = problem(api.call(platform, "POST", f"{base}/{last}/disable"), 409, "confirmation_required")
    assert "last enabled key" in body["detail"]
    r = api.call(platform, "POST", f"{base}/{last}/disable", json={"confirm_last": True})
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert api.call(platform, "POST", f"{base}/{made[0]['keyId']}/enable").json()["enabled"] is True
    problem(api.call(platform, "POST", f"{base}/999/enable"), 404)
    problem(api.call(platform, "POST", "/merchants/424242/keys"), 404)


# --- events, server keys, the record of changes ---------------------------------------------------------


def test_every_change_is_an_event_naming_its_operator(api: Api) -> None:
    op = api.operator()
    app = new_app(api, op)
    api.call(op, "POST", f"/apps/{app['client_id']}/secret", json={"overlap": 0})
    r = api.call(op, "GET", "/events", params={"kind": "admin_change", "client_id": op.client_id})
    events = r.json()["items"]
    assert [e["detail"]["op"] for e in events] == ["client.register", "client.rotate_secret"]
    assert all(e["client_id"] == op.client_id for e in events)
    assert app["client_secret"] not in r.text


def test_events_are_paged_by_id(api: Api, platform: Operator) -> None:
    api.clock.now += 10
    try:
        for i in range(5):
            api.admin.store.add_event("jti_replayed", "pager", {"i": i}, api.clock.now)
        got, params = [], {"client_id": "pager", "limit": 2, "since": api.clock.now}
        while True:
            page = api.call(platform, "GET", "/events", params=params).json()
            got += [e["detail"]["i"] for e in page["items"]]
            if page["next"] is None:
                break
            params["cursor"] = page["next"]
        assert got == [0, 1, 2, 3, 4]
    finally:
        api.clock.now -= 10
    problem(api.call(platform, "GET", "/events", params={"since": "yesterday"}), 422)


def test_server_keys(api: Api, platform: Operator) -> None:
    keys = api.call(platform, "GET", "/server-keys").json()["items"]
    assert {k["use"] for k in keys} == {"sig", "enc"} and all("private" not in str(k) for k in keys)
    r = api.call(platform, "POST", "/server-keys/enc/rotate")
    assert r.status_code == 200 and r.json()["use"] == "enc"
    problem(api.call(platform, "POST", "/server-keys/xyz/rotate"), 422)


# --- the OpenAPI document -------------------------------------------------------------------------------------------


def test_openapi_covers_every_route_and_nothing_else(api: Api) -> None:
    doc = api.client.get("/admin/v1/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    documented = {(path, method.upper()) for path, item in doc["paths"].items() for method in item}
    routed = {
        (r.path, m)
        for r in api.client.app.routes  # type: ignore[attr-defined]
        if isinstance(r, Route)
        and r.path.startswith("/admin/v1/")
        and r.path not in ("/admin/v1/openapi.json", "/admin/v1/{rest:path}")
        for m in r.methods
    }
    assert documented == routed, documented ^ routed
    assert len(documented) == len(OPERATIONS)
    text = str(doc)
    for name in set(re.findall(r"#/components/schemas/(\w+)", text)):
        assert name in doc["components"]["schemas"], name


# --- developer invitations and grant withdrawal ----------------------------------------------------------------


def test_invite_a_developer_of_an_organisation(api: Api, platform: Operator) -> None:
    assert (
        api.call(platform, "POST", "/organisations", json={"name": "Initech", "org_id": "initech"}).status_code == 201
    )
    r = api.call(platform, "POST", "/organisations/initech/invitations", json={"email": "Dev@Initech.example"})
    assert r.status_code == 201, r.text
    made = r.json()
    # no SMTP server configured: not mailed, so the link (a secret that works once) comes back
    assert made["mailed"] is False and made["email"] == "dev@initech.example" and made["org_id"] == "initech"
    assert "/invitation/" in made["link"] and made["expires_at"] > api.clock.now
    problem(api.call(platform, "POST", "/organisations/nope/invitations", json={"email": "a@b.example"}), 404)
    problem(api.call(platform, "POST", "/organisations/initech/invitations", json={"email": "not-an-address"}), 422)
    problem(api.call(platform, "POST", "/organisations/initech/invitations", json={"mail": "a@b.example"}), 422)
    acme = api.operator(org="initech")  # an organisation's operator may not invite (platform only)
    problem(api.call(acme, "POST", "/organisations/initech/invitations", json={"email": "x@initech.example"}), 403)
    events = api.call(platform, "GET", "/events", params={"kind": "admin_change"}).json()["items"]
    assert any(e["detail"].get("op") == "developer.invite" and e["client_id"] == platform.client_id for e in events)
    assert made["link"].rsplit("/", 1)[1] not in str(events)  # the link's secret is never an event


def test_withdraw_a_grant(api: Api, platform: Operator) -> None:
    assert api.call(platform, "POST", "/merchants", json={"merchant_id": 7701, "name": "W"}).status_code == 201
    app = new_app(api, platform, profile="mobilepay")
    base = "/merchants/7701/grants"
    assert api.call(platform, "POST", base, json={"client_id": app["client_id"]}).status_code == 201
    r = api.call(platform, "POST", f"{base}/{app['client_id']}/withdraw")
    assert r.status_code == 200 and r.json() == {"merchant_id": 7701, "client_id": app["client_id"], "granted": False}
    assert api.call(platform, "GET", base).json()["items"] == []
    problem(api.call(platform, "POST", f"{base}/{app['client_id']}/withdraw"), 404)  # nothing left to withdraw
    problem(api.call(platform, "POST", f"/merchants/9999/grants/{app['client_id']}/withdraw"), 404)
    problem(api.call(api.operator(org=None, scope="other"), "POST", f"{base}/{app['client_id']}/withdraw"), 403)


def test_credentials_as_a_password_locked_zip(api: Api, platform: Operator, tmp_path: Path) -> None:
    """MobilePay's delivery: the secret only inside an AES zip, its password apart; 7-Zip opens it."""
    import base64
    import json
    import subprocess

    r = api.call(platform, "POST", "/apps", json={"name": "mp", "profile": "mobilepay", "delivery": "zip"})
    assert r.status_code == 201, r.text
    made = r.json()
    assert "client_secret" not in made and len(made["zip_password"]) == 24
    archive = tmp_path / "credentials.zip"
    archive.write_bytes(base64.b64decode(made["credentials_zip"]))
    assert made["zip_password"].encode() not in archive.read_bytes()
    wrong = subprocess.run(
        ["7z", "x", "-y", "-pwrong-password", f"-o{tmp_path / 'w'}", str(archive)], capture_output=True
    )
    assert wrong.returncode != 0
    out = tmp_path / "out"
    subprocess.run(
        ["7z", "x", "-y", f"-p{made['zip_password']}", f"-o{out}", str(archive)], check=True, capture_output=True
    )
    creds = json.loads((out / "credentials.json").read_text())
    assert creds["client_id"] == made["client_id"]
    assert api.token(creds["client_id"], creds["client_secret"])  # the secret in the zip works
    problem(api.call(platform, "POST", "/apps", json={"name": "mp", "delivery": "carrier-pigeon"}), 422)
