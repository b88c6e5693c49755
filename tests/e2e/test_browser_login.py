"""The Nexi SoftPOS merchant login page in a real browser (headless Debian Chromium).

The app's back end (token, PAR with the nested client assertion, code exchange) is played
with httpx over mutual TLS; the merchant's part (the login page, a wrong then the right
password, the redirect to the app) happens in Chromium, which trusts the test CA through
its NSS database rather than by ignoring certificate errors.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e import browser as kit

pytestmark = [pytest.mark.slow, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
#: Refreshed by ``TESSERA_UPDATE_SCREENSHOTS=1 pytest tests/e2e/test_browser_login.py``.
DOC_SCREENSHOT = REPO / "docs" / "img" / "login.png"


@pytest.fixture
def chromium(tmp_path):
    """Start Chromium sessions; every one is quit at teardown, whatever the test did."""
    kit.require_browser()
    started: list[kit.Browser] = []

    def start(ca: Path) -> kit.Browser:
        b = kit.start_browser(tmp_path / f"chromium{len(started)}", ca)
        started.append(b)
        return b

    try:
        yield start
    finally:
        for b in started:
            b.quit()


@pytest.fixture
def redirect_target():
    with kit.RedirectTarget() as target:
        yield target


@dataclass
class Pushed:
    app: object
    merchant: object
    request_uri: str
    state: str
    verifier: str
    authorize_url: str


def _mtls(live_server, app) -> httpx.Client:
    return httpx.Client(
        base_url=f"https://localhost:{live_server.port}", verify=live_server.ssl_context(app.cert, app.key), timeout=30
    )


def push_authorization(live_server, redirect_uri: str) -> Pushed:
    """The app's back end: client_credentials token, then PAR with the nested assertion."""
    app = live_server.new_app(redirect_uri=redirect_uri)
    merchant = live_server.new_merchant(app)
    issuer = f"https://localhost:{live_server.port}"
    with _mtls(live_server, app) as http:
        r = http.post(
            "/softpos/appenrollment/token",
            data={"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.client_secret},
        )
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        jwks = http.get("/softpos/par/jwks.json")
        assert jwks.status_code == 200, jwks.text
        assertion = kit.client_assertion(
            jwks=jwks.json(),
            key_pem=app.key.read_bytes(),
            client_id=app.client_id,
            audience=issuer,
            point_of_sale=merchant.pos,
            terminal_ids=[merchant.softpos_tid],
            username=merchant.username,
        )
        state = secrets.token_urlsafe(16)
        verifier, challenge = kit.pkce_pair()
        r = http.post(
            "/softpos/as/par",
            headers={"Authorization": f"Bearer {token}"},
            data={
                "client_assertion": assertion,
                "client_id": app.client_id,
                "scope": "openid oidc email",
                "redirect_uri": redirect_uri,
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        assert r.status_code == 201, r.text
        request_uri = r.json()["request_uri"]
    url = str(
        httpx.URL(f"{issuer}/softpos/as/authorize", params={"client_id": app.client_id, "request_uri": request_uri})
    )
    return Pushed(app, merchant, request_uri, state, verifier, url)


def _sign_in(driver, password: str) -> None:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.ID, "password")
    field.clear()
    field.send_keys(password)
    driver.find_element(By.ID, "submit").click()


def _assert_strict_page_headers(response: httpx.Response) -> None:
    csp = response.headers.get("content-security-policy", "")
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";") if d.strip()}
    assert directives.get("default-src") == "default-src 'none'", csp
    assert directives.get("frame-ancestors") == "frame-ancestors 'none'", csp
    assert "script-src" not in directives, csp  # default-src 'none' covers scripts: no script at all
    assert response.headers.get("x-frame-options") == "DENY"
    assert response.headers.get("cache-control") == "no-store"
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert response.headers["content-type"].startswith("text/html")


def test_merchant_signs_in_and_the_app_gets_a_code(live_server, chromium, redirect_target, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    pushed = push_authorization(live_server, redirect_target.url)
    b = chromium(live_server.ca)
    d = b.driver

    # 1. The login page, over TLS that Chromium trusts through its NSS db.
    d.get(pushed.authorize_url)
    assert d.current_url == pushed.authorize_url
    assert d.title == "Sign in — Test App"
    assert "Test App" in d.find_element(By.CSS_SELECTOR, "p.meta").text
    username = d.find_element(By.ID, "username")
    assert username.get_attribute("value") == pushed.merchant.username
    assert d.find_element(By.ID, "password").get_attribute("value") == ""
    assert d.find_elements(By.ID, "error") == []
    assert list(kit.iter_documents(b.statuses(), "/softpos/as/authorize")) == [200]
    shot = tmp_path / "login.png"
    assert d.save_screenshot(str(shot))
    if os.environ.get("TESSERA_UPDATE_SCREENSHOTS") == "1" or not DOC_SCREENSHOT.exists():
        # The copy in docs/ changes only on request, so a test run leaves the tree clean.
        DOC_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOC_SCREENSHOT)

    # 2. A wrong password: the page again, with an error, status 401; nothing reaches the app.
    _sign_in(d, "not the password")
    error = WebDriverWait(d, 20).until(ec.presence_of_element_located((By.ID, "error")))
    assert error.text == "invalid username or password"
    assert error.get_attribute("role") == "alert"
    assert d.find_element(By.ID, "username").get_attribute("value") == pushed.merchant.username
    assert list(kit.iter_documents(b.statuses(), "/softpos/as/authorize")) == [401]
    assert redirect_target.received == []
    d.save_screenshot(str(tmp_path / "login-error.png"))

    # 3. The right password: a 303 to the app's redirect_uri with code, state and iss.
    _sign_in(d, pushed.merchant.password)
    WebDriverWait(d, 20).until(lambda drv: drv.current_url.startswith(redirect_target.url))
    assert d.find_element(By.ID, "callback").text == "Enrollment complete"
    assert redirect_target.arrived.wait(5)
    assert len(redirect_target.received) == 1
    q = redirect_target.received[0]
    assert set(q) == {"code", "state", "iss"}, q
    assert kit.query_one(q, "state") == pushed.state
    assert kit.query_one(q, "iss") == f"https://localhost:{live_server.port}"
    code = kit.query_one(q, "code")
    assert len(code) >= 32

    # 4. The app's back end exchanges the code.
    with _mtls(live_server, pushed.app) as http:
        r = http.post(
            "/softpos/as/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_target.url,
                "client_id": pushed.app.client_id,
                "client_secret": pushed.app.client_secret,
                "code_verifier": pushed.verifier,
            },
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["access_token"] and body["id_token"] and body["token_type"] == "Bearer"
    assert body["id_token"].count(".") == 2

    # 5. The used request_uri: the browser shows the error page.
    d.get(pushed.authorize_url)
    assert d.title == "Authorization error"
    assert d.find_element(By.ID, "error").text.startswith("invalid_request_uri:")
    assert d.find_elements(By.ID, "password") == []
    assert list(kit.iter_documents(b.statuses(), "/softpos/as/authorize")) == [400]


def test_login_and_error_pages_send_strict_headers(live_server, redirect_target):
    """The headers the browser gets with the login page, the 401 page and the error page."""
    pushed = push_authorization(live_server, redirect_target.url)
    with httpx.Client(verify=live_server.ssl_context(), timeout=30) as http:
        page = http.get(pushed.authorize_url)
        assert page.status_code == 200
        _assert_strict_page_headers(page)
        form = {
            "client_id": pushed.app.client_id,
            "request_uri": pushed.request_uri,
            "username": pushed.merchant.username,
        }
        wrong = http.post(pushed.authorize_url.split("?")[0], data={**form, "password": "nope"})
        assert wrong.status_code == 401
        assert 'id="error"' in wrong.text
        _assert_strict_page_headers(wrong)
        ok = http.post(pushed.authorize_url.split("?")[0], data={**form, "password": pushed.merchant.password})
        assert ok.status_code == 303 and ok.headers["location"].startswith(redirect_target.url + "?")
        used = http.get(pushed.authorize_url)
        assert used.status_code == 400
        assert "invalid_request_uri" in used.text
        _assert_strict_page_headers(used)
