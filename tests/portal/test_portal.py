"""The portal's rules in process, with a fixed clock: invitations (single use, TOTP enrolled),
sign-in (password + TOTP within one step either way, a code never twice, lockout), the
sessions (cookie flags, expiry, sign-out), CSRF on every form, the Content-Security-Policy,
an integrator confined to its organisation (another's app or certificate is 404), the
merchant's keys (the last one only with a confirmation) and grants, and the security events
naming the portal user."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import pytest

from tessera.admin import developers as dev_ops
from tessera.admin import merchants as merchant_ops
from tessera.admin import organisations as org_ops
from tessera.web.portal import CSP, SESSION_COOKIE
from tests.portal.conftest import Portal, csrf_of

PASSWORD = "correct horse battery"


def secret_of(html: str) -> bytes:
    m = re.search(r'id="totp-secret" class="secret">([A-Z2-7]+)<', html)
    assert m, html
    b32 = m.group(1)
    return base64.b32decode(b32 + "=" * (-len(b32) % 8))


def code(secret: bytes, portal: Portal, steps: int = 0) -> str:
    return dev_ops.totp_code(secret, portal.clock.now + 30 * steps)


def org(portal: Portal, org_id: str) -> None:
    if portal.admin.store.get_organisation(org_id) is None:
        org_ops.create_organisation(portal.admin, org_ops.CreateOrganisation(org_id.title(), org_id))


def onboard(portal: Portal, email: str, org_id: str) -> bytes:
    """Invite and accept: the developer's TOTP secret."""
    org(portal, org_id)
    inv = dev_ops.invite_developer(portal.admin, email, org_id)
    c = portal.client()
    page = c.get(f"/portal/invitation/{inv.token}")
    assert page.status_code == 200
    secret = secret_of(page.text)
    r = c.post(
        f"/portal/invitation/{inv.token}",
        data={"csrf": csrf_of(page.text), "password": PASSWORD, "password2": PASSWORD, "code": code(secret, portal)},
    )
    assert r.status_code == 303, r.text
    portal.clock.now += 60  # past the enrolment code's step and the next
    return secret


def sign_in(portal: Portal, email: str, secret: bytes, *, password: str = PASSWORD, steps: int = 0):
    c = portal.client()
    page = c.get("/portal/signin")
    r = c.post(
        "/portal/signin",
        data={"csrf": csrf_of(page.text), "email": email, "password": password, "code": code(secret, portal, steps)},
    )
    return c, r


def test_invitation_is_single_use_and_enrols_totp(portal: Portal):
    org(portal, "acme")
    inv = dev_ops.invite_developer(portal.admin, "Ada@Acme.example", "acme")
    assert inv.link == f"https://localhost:8443/portal/invitation/{inv.token}"
    c = portal.client()
    page = c.get(f"/portal/invitation/{inv.token}")
    assert page.headers["content-security-policy"] == CSP
    secret = secret_of(page.text)
    assert "otpauth://totp/" in page.text and "ada@acme.example" in page.text
    assert secret_of(c.get(f"/portal/invitation/{inv.token}").text) == secret  # the same secret on a reload
    form = {"csrf": csrf_of(page.text), "password": PASSWORD, "password2": PASSWORD}
    wrong = c.post(f"/portal/invitation/{inv.token}", data={**form, "code": code(secret, portal, 5)})
    assert wrong.status_code == 400 and "current code" in wrong.text
    short = c.post(f"/portal/invitation/{inv.token}", data={**form, "password": "short", "password2": "short"})
    assert short.status_code == 400
    ok = c.post(f"/portal/invitation/{inv.token}", data={**form, "code": code(secret, portal)})
    assert ok.status_code == 303 and ok.headers["location"] == "/portal/signin?welcome=1"
    assert portal.admin.store.get_developer("ada@acme.example").status == "active"
    again = c.post(f"/portal/invitation/{inv.token}", data={**form, "code": code(secret, portal, 1)})
    assert again.status_code == 404  # used
    assert c.get(f"/portal/invitation/{inv.token}").status_code == 404
    with pytest.raises(dev_ops.Conflict):  # an active account is not invited again
        dev_ops.invite_developer(portal.admin, "ada@acme.example", "acme")


def test_an_invitation_expires(portal: Portal):
    org(portal, "acme")
    inv = dev_ops.invite_developer(portal.admin, "late@acme.example", "acme")
    portal.clock.now += portal.settings.portal_invitation_seconds
    try:
        assert portal.client().get(f"/portal/invitation/{inv.token}").status_code == 404
    finally:
        portal.clock.now -= portal.settings.portal_invitation_seconds


def test_sign_in_needs_password_and_a_fresh_code_within_one_step(portal: Portal):
    secret = onboard(portal, "bob@acme.example", "acme")
    _, wrong_pw = sign_in(portal, "bob@acme.example", secret, password="not the password")
    assert wrong_pw.status_code == 401 and SESSION_COOKIE not in wrong_pw.cookies
    _, too_far = sign_in(portal, "bob@acme.example", secret, steps=2)
    assert too_far.status_code == 401
    c, ok = sign_in(portal, "bob@acme.example", secret, steps=-1)  # one step behind: accepted
    assert ok.status_code == 303 and ok.headers["location"] == "/portal/apps"
    cookie = ok.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    for flag in ("Secure", "HttpOnly", "SameSite=strict", "Path=/"):
        assert flag.lower() in cookie.lower(), cookie
    _, reused = sign_in(portal, "bob@acme.example", secret, steps=-1)  # the same code again
    assert reused.status_code == 401
    _, older = sign_in(portal, "bob@acme.example", secret, steps=-1)
    assert older.status_code == 401
    page = c.get("/portal/apps")
    assert page.status_code == 200 and page.headers["content-security-policy"] == CSP
    assert "<script" not in page.text and "style=" not in page.text


def test_sign_in_locks_the_account_after_repeated_failures(portal: Portal):
    secret = onboard(portal, "carol@acme.example", "acme")
    for _ in range(portal.settings.login_max_failures):
        _, r = sign_in(portal, "carol@acme.example", secret, password="wrong password!")
        assert r.status_code == 401
    _, locked = sign_in(portal, "carol@acme.example", secret)  # right credentials, locked account
    assert locked.status_code == 429 and "retry-after" in locked.headers
    assert any(
        e.detail.get("key") == "portal:developer:carol@acme.example"
        for e in portal.admin.store.list_events(50, kind="brute_force_lockout")
    )


def test_sessions_expire_and_end_at_sign_out(portal: Portal):
    secret = onboard(portal, "dan@acme.example", "acme")
    c, _ = sign_in(portal, "dan@acme.example", secret)
    page = c.get("/portal/apps")
    assert page.status_code == 200
    stolen = dict(c.cookies)
    assert c.post("/portal/signout", data={"csrf": csrf_of(page.text)}).status_code == 303
    replay = portal.client()
    replay.cookies.update(stolen)
    assert replay.get("/portal/apps").headers["location"] == "/portal/signin"  # revoked server-side
    c2, _ = sign_in(portal, "dan@acme.example", secret, steps=1)
    assert c2.get("/portal/apps").status_code == 200
    portal.clock.now += portal.settings.portal_session_seconds
    try:
        assert c2.get("/portal/apps").status_code == 303
    finally:
        portal.clock.now -= portal.settings.portal_session_seconds


def test_a_disabled_developer_is_signed_out_at_once(portal: Portal):
    secret = onboard(portal, "fay@acme.example", "acme")
    c, _ = sign_in(portal, "fay@acme.example", secret)
    assert c.get("/portal/apps").status_code == 200
    dev_ops.disable_developer(portal.admin, "fay@acme.example")
    assert c.get("/portal/apps").headers["location"] == "/portal/signin"
    _, again = sign_in(portal, "fay@acme.example", secret, steps=1)
    assert again.status_code == 401


def test_every_form_needs_the_session_csrf_token(portal: Portal):
    secret = onboard(portal, "erin@acme.example", "acme")
    c, _ = sign_in(portal, "erin@acme.example", secret)
    token = csrf_of(c.get("/portal/apps").text)
    assert c.post("/portal/apps", data={"name": "no token"}).status_code == 403
    assert c.post("/portal/apps", data={"name": "wrong", "csrf": token[:-2] + "xx"}).status_code == 403
    created = c.post("/portal/apps", data={"name": "Till", "csrf": token})
    assert created.status_code == 201 and 'id="client-secret"' in created.text
    pre = portal.client()
    assert pre.post("/portal/signin", data={"email": "erin@acme.example", "password": PASSWORD}).status_code == 403


def test_an_integrator_sees_only_its_organisation(portal: Portal, tmp_path: Path):
    a_secret = onboard(portal, "ann@alpha.example", "alpha")
    b_secret = onboard(portal, "ben@beta.example", "beta")
    a, _ = sign_in(portal, "ann@alpha.example", a_secret)
    token = csrf_of(a.get("/portal/apps").text)
    created = a.post(
        "/portal/apps", data={"name": "Alpha POS", "csrf": token, "redirect_uris": "https://alpha.example/cb"}
    )
    client_id = re.search(r'id="client-id">([^<]+)<', created.text).group(1)
    secret = re.search(r'id="client-secret" class="secret">([^<]+)<', created.text).group(1)
    download = a.post(f"/portal/apps/{client_id}/credentials", data={"csrf": token, "client_secret": secret})
    assert download.status_code == 200 and download.json()["client_secret"] == secret
    assert "attachment" in download.headers["content-disposition"]
    assert (
        a.post(f"/portal/apps/{client_id}/credentials", data={"csrf": token, "client_secret": "guess"}).status_code
        == 400
    )
    # the same credentials as a password-locked zip, its password shown on the page (MobilePay's delivery)
    zip_password = re.search(r'id="zip-password">([^<]+)<', created.text).group(1)
    as_zip = {"csrf": token, "client_secret": secret, "format": "zip", "zip_password": zip_password}
    archive = a.post(f"/portal/apps/{client_id}/credentials", data=as_zip)
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    (tmp_path / "c.zip").write_bytes(archive.content)
    subprocess.run(["7z", "x", "-y", f"-p{zip_password}", f"-o{tmp_path / 'z'}", str(tmp_path / "c.zip")], check=True,
                   capture_output=True)  # fmt: skip
    assert json.loads((tmp_path / "z" / "credentials.json").read_text())["client_secret"] == secret
    bad = {**as_zip, "zip_password": "short"}
    assert a.post(f"/portal/apps/{client_id}/credentials", data=bad).status_code == 400
    key = tmp_path / "app.key"
    csr = tmp_path / "app.csr"
    subprocess.run(
        ["openssl", "req", "-nodes", "-newkey", "rsa:2048", "-keyout", str(key), "-out", str(csr),
         "-subj", "/CN=ALPHAPOS/O=Alpha/C=IT", "-addext", "extendedKeyUsage=clientAuth"],
        check=True, capture_output=True,
    )  # fmt: skip
    signed = a.post(f"/portal/apps/{client_id}/csr", data={"csrf": token, "csr": csr.read_text()})
    assert signed.status_code == 201, signed.text
    serial = re.search(r'id="serial">([0-9a-f]+)<', signed.text).group(1)
    assert a.get(f"/portal/certificates/{serial}.pem").text.startswith("-----BEGIN CERTIFICATE-----")
    assert a.get(f"/portal/certificates/{serial}.p7b").text.startswith("-----BEGIN PKCS7-----")

    b, _ = sign_in(portal, "ben@beta.example", b_secret)
    b_token = csrf_of(b.get("/portal/apps").text)
    assert client_id not in b.get("/portal/apps").text
    assert b.get(f"/portal/apps/{client_id}").status_code == 404
    assert b.get("/portal/apps/no-such-app").status_code == 404
    assert b.get(f"/portal/certificates/{serial}.pem").status_code == 404
    assert b.get(f"/portal/certificates/{serial}.p7b").status_code == 404
    assert b.post(f"/portal/apps/{client_id}/csr", data={"csrf": b_token, "csr": csr.read_text()}).status_code == 404
    assert (
        b.post(f"/portal/apps/{client_id}/credentials", data={"csrf": b_token, "client_secret": secret}).status_code
        == 404
    )
    assert a.get(f"/portal/apps/{client_id}").status_code == 200

    events = portal.admin.store.list_events(200, kind="admin_change")
    ops = {(e.client_id, e.detail["op"]) for e in events}
    assert ("portal:developer:ann@alpha.example", "client.register") in ops
    assert ("portal:developer:ann@alpha.example", "certificate.sign") in ops
    assert ("portal:developer:ann@alpha.example", "portal.sign_in") in ops


def _merchant(portal: Portal, merchant_id: int, username: str) -> None:
    if portal.admin.store.get_merchant(merchant_id) is None:
        merchant_ops.create_merchant(portal.admin, merchant_ops.CreateMerchant(merchant_id, f"Shop {merchant_id}"))
    inv = dev_ops.invite_merchant_user(portal.admin, username, merchant_id)
    c = portal.client()
    page = c.get(f"/portal/invitation/{inv.token}")
    assert 'id="totp-secret"' not in page.text
    r = c.post(
        f"/portal/invitation/{inv.token}",
        data={"csrf": csrf_of(page.text), "password": PASSWORD, "password2": PASSWORD},
    )
    assert r.status_code == 303 and r.headers["location"] == "/portal/merchant/signin?welcome=1"


def merchant_sign_in(portal: Portal, username: str):
    c = portal.client()
    page = c.get("/portal/merchant/signin")
    r = c.post("/portal/merchant/signin", data={"csrf": csrf_of(page.text), "email": username, "password": PASSWORD})
    assert r.status_code == 303 and r.headers["location"] == "/portal/merchant", r.text
    return c


def test_a_merchant_manages_keys_with_a_confirmation_before_the_last(portal: Portal):
    _merchant(portal, 7001, "owner@shop7001.example")
    c = merchant_sign_in(portal, "owner@shop7001.example")
    token = csrf_of(c.get("/portal/merchant").text)
    created = c.post("/portal/merchant/keys", data={"csrf": token})
    assert created.status_code == 201
    key = re.search(r'id="new-key" class="secret">([^<]+)<', created.text).group(1)
    assert key not in c.get("/portal/merchant").text  # shown once
    assert c.post("/portal/merchant/keys", data={}).status_code == 403
    confirm = c.post("/portal/merchant/keys/1/disable", data={"csrf": token})
    assert confirm.status_code == 409 and 'id="confirm-disable"' in confirm.text
    assert portal.admin.store.get_api_key(7001, 1).enabled
    done = c.post("/portal/merchant/keys/1/disable", data={"csrf": token, "confirm": "yes"})
    assert done.status_code == 303 and not portal.admin.store.get_api_key(7001, 1).enabled
    assert c.post("/portal/merchant/keys/1/enable", data={"csrf": token}).status_code == 303
    for _ in range(2):
        assert c.post("/portal/merchant/keys", data={"csrf": token}).status_code == 201
    full = c.post("/portal/merchant/keys", data={"csrf": token})
    assert full.status_code == 409 and "enabled keys" in full.text
    assert c.post("/portal/merchant/keys/2/disable", data={"csrf": token}).status_code == 303  # not the last
    assert c.post("/portal/merchant/keys/99/disable", data={"csrf": token}).status_code == 404
    other = portal.client()  # another merchant's user cannot touch these keys
    _merchant(portal, 7002, "owner@shop7002.example")
    c2 = merchant_sign_in(portal, "owner@shop7002.example")
    t2 = csrf_of(c2.get("/portal/merchant").text)
    assert c2.post("/portal/merchant/keys/1/disable", data={"csrf": t2, "confirm": "yes"}).status_code == 404
    assert portal.admin.store.get_api_key(7001, 1).enabled
    assert other.get("/portal/merchant").status_code == 303


def test_a_merchant_grants_and_withdraws_an_integrator(portal: Portal):
    org(portal, "gamma")
    from tessera.admin import portal_apps

    app = portal_apps.create_org_app(portal.admin, "gamma", "Gamma app")
    _merchant(portal, 7003, "owner@shop7003.example")
    c = merchant_sign_in(portal, "owner@shop7003.example")
    token = csrf_of(c.get("/portal/merchant").text)
    assert c.post("/portal/merchant/grants", data={"csrf": token, "client_id": "nope"}).status_code == 404
    assert c.post("/portal/merchant/grants", data={"csrf": token, "client_id": app.client_id}).status_code == 303
    assert portal.admin.store.is_granted(7003, app.client_id)
    assert app.client_id in c.get("/portal/merchant").text
    assert c.post(f"/portal/merchant/grants/{app.client_id}/withdraw", data={"csrf": token}).status_code == 303
    assert not portal.admin.store.is_granted(7003, app.client_id)
    assert c.post(f"/portal/merchant/grants/{app.client_id}/withdraw", data={"csrf": token}).status_code == 404
    ops = [(e.client_id, e.detail["op"]) for e in portal.admin.store.list_events(300, kind="admin_change")]
    assert ("portal:merchant:owner@shop7003.example", "merchant.grant") in ops
    assert ("portal:merchant:owner@shop7003.example", "merchant.withdraw_grant") in ops


def test_a_merchant_user_without_a_password_cannot_sign_in(portal: Portal):
    merchant_ops.create_merchant(portal.admin, merchant_ops.CreateMerchant(7004, "Shop"))
    dev_ops.invite_merchant_user(portal.admin, "new@shop7004.example", 7004)
    c = portal.client()
    page = c.get("/portal/merchant/signin")
    for password in ("", "anything at all"):
        r = c.post(
            "/portal/merchant/signin",
            data={"csrf": csrf_of(page.text), "email": "new@shop7004.example", "password": password},
        )
        assert r.status_code == 401


def test_totp_window_in_the_admin_rules():
    secret = b"12345678901234567890"  # RFC 6238 appendix B's SHA-1 secret
    assert dev_ops.totp_code(secret, 59) == "287082"  # RFC 6238's 94287082, 6 digits
    assert dev_ops.match_totp(secret, "287082", 59) == 1
    assert dev_ops.match_totp(secret, "287082", 89) == 1  # the next step: one behind
    assert dev_ops.match_totp(secret, "287082", 119) is None  # two behind
    assert dev_ops.match_totp(secret, "28708", 59) is None
    assert dev_ops.match_totp(secret, "abcdef", 59) is None
