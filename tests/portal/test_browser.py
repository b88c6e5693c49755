"""The portal in a real headless Chromium, end to end, against a live ``tessera serve``
whose mails go to a local SMTP sink (aiosmtpd on a free loopback port).

- The integrator: the operator invites a developer (``tessera portal invite``: the sink
  gets the mail); the developer opens the link, sets a password, enrols TOTP (the test
  computes the codes from the secret the page shows), signs in, creates an app (the secret
  shown once), uploads a CSR made by ``openssl``, downloads the PEM and the ``.p7b`` (read
  back by ``openssl pkcs7 -print_certs``), and the certificate mail arrives with the
  ``.p7b`` attached.
- The merchant: signs in, creates an axept key (shown once) and gets an axept token with
  it (the key's last use then shows), disables and enables keys (the last one only through
  the confirmation page), grants an integrator's app and withdraws it.
- Refusals: a form posted without the session's CSRF token, or with another, is 403; a
  developer of another organisation gets 404 for the first one's app and certificate.

With ``TESSERA_SCREENSHOTS=DIR`` the main pages are saved as ``DIR/portal-*.png``
(1000×700): that is how ``docs/img/portal-*.png`` are made.
"""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tessera.admin.developers import totp_code
from tests.e2e import browser as kit
from tests.portal.conftest import Sink, free_port
from tests.support.live import NEXI_SUBJECT, LiveServer

pytestmark = pytest.mark.slow

PASSWORD = "a long portal passphrase"


class World:
    def __init__(self, server: LiveServer, sink: Sink, browser: kit.Browser, shots: Path, downloads: Path) -> None:
        self.server, self.sink, self.browser, self.shots, self.downloads = server, sink, browser, shots, downloads
        self.driver = browser.driver
        self.app_id = ""
        self.serial = ""

    def go(self, path: str) -> None:
        self.driver.get(self.server.url + path if path.startswith("/") else path)

    def fill(self, field: str, value: str) -> None:
        el = self.driver.find_element(By.ID, field)
        el.clear()
        el.send_keys(value)

    def click(self, element_id: str) -> None:
        self.driver.find_element(By.ID, element_id).click()

    def text(self, element_id: str) -> str:
        return str(self.driver.find_element(By.ID, element_id).text)

    def has(self, element_id: str) -> bool:
        return bool(self.driver.find_elements(By.ID, element_id))

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(self.shots / f"portal-{name}.png"))

    def last_status(self) -> int:
        statuses = self.browser.statuses()
        assert statuses
        return statuses[-1][1]

    def mail_to(self, to: str, subject_part: str, timeout: float = 20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.sink.messages:
                if m["To"] == to and subject_part in str(m["Subject"]):
                    return m
            time.sleep(0.05)
        raise AssertionError(f"no mail to {to} about {subject_part}: {[m['Subject'] for m in self.sink.messages]}")

    def session_cookies(self) -> dict[str, str]:
        return {c["name"]: c["value"] for c in self.driver.get_cookies()}

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url,
            verify=ssl.create_default_context(cafile=str(self.server.ca)),
            follow_redirects=False,
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    kit.require_browser()
    root = tmp_path_factory.mktemp("portal-e2e")
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    server = LiveServer(
        root / "server",
        env={
            "TESSERA_SMTP_HOST": "127.0.0.1",
            "TESSERA_SMTP_PORT": str(port),
            "TESSERA_SMTP_STARTTLS": "false",
            "TESSERA_SMTP_FROM": "portal@tessera.test",
        },
    )
    browser = None
    try:
        server.start()
        browser = kit.start_browser(root / "chromium", server.ca)
        browser.driver.set_window_size(1000, 700)
        downloads = root / "downloads"
        downloads.mkdir()
        browser.driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
        shots = Path(os.environ.get("TESSERA_SCREENSHOTS") or root / "shots")
        shots.mkdir(parents=True, exist_ok=True)
        yield World(server, sink, browser, shots, downloads)
    finally:
        if browser is not None:
            browser.quit()
        server.stop()
        controller.stop()


def downloaded(world: World, suffix: str, timeout: float = 20) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in world.downloads.iterdir() if p.name.endswith(suffix)]
        if done:
            return done[0]
        time.sleep(0.05)
    raise AssertionError(f"no {suffix} downloaded: {list(world.downloads.iterdir())}")


def accept(world: World, link: str, *, shot: bool = False) -> bytes:
    """Open the invitation, enrol TOTP and set the password in the browser: the TOTP secret."""
    import base64

    world.go(link)
    assert world.last_status() == 200
    b32 = world.text("totp-secret")
    assert world.text("totp-uri").startswith("otpauth://totp/")
    secret = base64.b32decode(b32 + "=" * (-len(b32) % 8))
    world.fill("password", PASSWORD)
    world.fill("password2", PASSWORD)
    world.fill("code", totp_code(secret, time.time()))
    if shot:
        world.shot("invitation")
    world.click("submit")
    WebDriverWait(world.driver, 20).until(ec.presence_of_element_located((By.ID, "welcome")))
    return secret


def developer_sign_in(world: World, email: str, secret: bytes, *, shot: bool = False) -> None:
    world.go("/portal/signin")
    world.fill("email", email)
    world.fill("password", PASSWORD)
    # The enrolment used this step's code: the next step's code is within the window and unused.
    world.fill("code", totp_code(secret, time.time() + 30))
    if shot:
        world.shot("signin")
    world.click("submit")
    WebDriverWait(world.driver, 20).until(ec.presence_of_element_located((By.ID, "create-app")))


def sign_out(world: World) -> None:
    world.click("signout")
    WebDriverWait(world.driver, 20).until(ec.presence_of_element_located((By.ID, "developer-signin")))


def test_an_integrator_onboards_itself(world: World) -> None:
    server = world.server
    server.cli("orgs", "create", "--name", "Acme Payments", "--id", "acme")
    invited = server.cli_json("portal", "invite", "--email", "dev@acme.example", "--org", "acme")
    assert invited["mailed"] is True and "link" not in invited
    mail = world.mail_to("dev@acme.example", "invitation")
    link = re.search(r"https://\S+/portal/invitation/\S+", mail.get_content()).group(0)
    world.go("/portal/")
    world.shot("home")
    secret = accept(world, link, shot=True)
    world.go(link)  # the link works once
    assert world.last_status() == 404

    developer_sign_in(world, "dev@acme.example", secret, shot=True)
    world.fill("name", "NOMEAPP")
    world.fill("redirect_uris", "https://app.example/callback")
    world.click("create-app")
    WebDriverWait(world.driver, 20).until(ec.presence_of_element_located((By.ID, "client-secret")))
    world.app_id = world.text("client-id")
    client_secret = world.text("client-secret")
    world.shot("app-created")
    world.click("download-credentials")
    creds = downloaded(world, "-credentials.json")
    assert client_secret in creds.read_text() and world.app_id in creds.read_text()
    token = httpx.post(
        f"{server.url}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(world.app_id, client_secret),
        verify=ssl.create_default_context(cafile=str(server.ca)),
    )
    assert token.status_code == 200, token.text  # the secret shown once works

    world.click("to-app")
    WebDriverWait(world.driver, 20).until(ec.presence_of_element_located((By.ID, "upload-csr")))
    assert client_secret not in world.driver.page_source  # shown once
    work = world.downloads.parent / "csr"
    work.mkdir()
    subprocess.run(
        ["openssl", "req", "-nodes", "-newkey", "rsa:2048", "-keyout", "NOMEAPP.key", "-out", "NOMEAPP.csr",
         "-subj", NEXI_SUBJECT, "-addext", "extendedKeyUsage=clientAuth"],
        cwd=work, check=True, capture_output=True,
    )  # fmt: skip
    world.driver.find_element(By.ID, "csr_file").send_keys(str(work / "NOMEAPP.csr"))
    world.click("upload-csr")
    WebDriverWait(world.driver, 20).until(ec.presence_of_element_located((By.ID, "serial")))
    world.serial = world.text("serial")
    world.shot("certificate")
    world.click("download-pem")
    pem = downloaded(world, ".pem")
    world.click("download-p7b")
    p7b = downloaded(world, ".p7b")
    printed = subprocess.run(
        ["openssl", "pkcs7", "-print_certs", "-in", str(p7b), "-out", str(work / "from-p7b.pem")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert printed.returncode == 0
    assert pem.read_text().strip() in (work / "from-p7b.pem").read_text()

    cert_mail = world.mail_to("dev@acme.example", world.serial)
    attached = [a for a in cert_mail.iter_attachments() if a.get_filename() == f"{world.app_id}.p7b"]
    assert attached, [a.get_filename() for a in cert_mail.iter_attachments()]
    content = attached[0].get_content()
    (work / "mailed.p7b").write_bytes(content if isinstance(content, bytes) else content.encode())
    out = subprocess.run(
        ["openssl", "pkcs7", "-print_certs", "-in", str(work / "mailed.p7b")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "CN=NOMEAPP" in out.replace(" = ", "=")

    world.go(f"/portal/apps/{world.app_id}")
    assert world.has("certificates") and world.serial in world.driver.page_source
    world.shot("app")
    sign_out(world)


def test_a_merchant_manages_keys_and_grants(world: World) -> None:
    server = world.server
    merchant = server.new_merchant()
    if not world.app_id:
        pytest.skip("needs the integrator's app (test_an_integrator_onboards_itself)")
    world.go("/portal/merchant/signin")
    world.fill("email", merchant.username)
    world.fill("password", merchant.password)
    world.click("submit")
    WebDriverWait(world.driver, 20).until(ec.presence_of_element_located((By.ID, "create-key")))
    world.click("create-key")
    WebDriverWait(world.driver, 20).until(ec.presence_of_element_located((By.ID, "new-key")))
    key, key_id = world.text("new-key"), int(world.text("new-key-id"))
    world.shot("merchant-key")
    r = httpx.post(
        f"{server.url}/axept/v1/authenticate",
        json={"merchantId": merchant.merchant_id, "keyId": key_id, "key": key},
        verify=ssl.create_default_context(cafile=str(server.ca)),
    )
    assert r.status_code == 200 and r.json()["token"]
    world.go("/portal/merchant")
    assert key not in world.driver.page_source  # shown once
    row = world.text(f"key-{key_id}")
    assert "enabled" in row and row.count("UTC") == 2  # created, and last used

    world.click(f"disable-{key_id}")  # the last enabled key: a confirmation first
    WebDriverWait(world.driver, 20).until(ec.presence_of_element_located((By.ID, "confirm-disable")))
    world.shot("confirm-disable")
    world.click("cancel")
    WebDriverWait(world.driver, 20).until(ec.presence_of_element_located((By.ID, f"disable-{key_id}")))
    world.click(f"disable-{key_id}")
    WebDriverWait(world.driver, 20).until(ec.presence_of_element_located((By.ID, "confirm-disable")))
    world.click("confirm-disable")
    WebDriverWait(world.driver, 20).until(ec.presence_of_element_located((By.ID, f"enable-{key_id}")))
    refused = httpx.post(
        f"{server.url}/axept/v1/authenticate",
        json={"merchantId": merchant.merchant_id, "keyId": key_id, "key": key},
        verify=ssl.create_default_context(cafile=str(server.ca)),
    )
    assert refused.status_code == 401
    world.click(f"enable-{key_id}")
    WebDriverWait(world.driver, 20).until(ec.presence_of_element_located((By.ID, f"disable-{key_id}")))

    world.fill("client_id", world.app_id)
    world.click("grant")
    WebDriverWait(world.driver, 20).until(ec.presence_of_element_located((By.ID, f"withdraw-{world.app_id}")))
    world.shot("merchant")
    assert server.store.is_granted(merchant.merchant_id, world.app_id)
    world.click(f"withdraw-{world.app_id}")
    WebDriverWait(world.driver, 20).until(ec.presence_of_element_located((By.ID, "no-grants")))
    assert not server.store.is_granted(merchant.merchant_id, world.app_id)

    # CSRF: the session's own cookie, posted without the form's token or with another one.
    cookies = world.session_cookies()
    with world.http() as http:
        http.cookies.update(cookies)
        assert http.get("/portal/merchant").status_code == 200
        assert http.post("/portal/merchant/keys", data={}).status_code == 403
        assert http.post("/portal/merchant/keys", data={"csrf": "x" * 43}).status_code == 403
    assert len(server.store.list_api_keys(merchant.merchant_id)) == 1
    world.click("signout")


def test_csrf_and_another_organisation_are_refused(world: World) -> None:
    server = world.server
    if not world.app_id:
        pytest.skip("needs the integrator's app (test_an_integrator_onboards_itself)")
    server.cli("orgs", "create", "--name", "Beta Labs", "--id", "beta")
    server.cli_json("portal", "invite", "--email", "dev@beta.example", "--org", "beta")
    link = re.search(
        r"https://\S+/portal/invitation/\S+", world.mail_to("dev@beta.example", "invitation").get_content()
    ).group(0)
    secret = accept(world, link)
    developer_sign_in(world, "dev@beta.example", secret)
    assert world.app_id not in world.driver.page_source
    world.go(f"/portal/apps/{world.app_id}")
    assert world.last_status() == 404
    world.go(f"/portal/certificates/{world.serial}.p7b")
    assert world.last_status() == 404
    world.shot("not-found")
    cookies = world.session_cookies()
    with world.http() as http:
        http.cookies.update(cookies)
        assert http.post("/portal/apps", data={"name": "forged"}).status_code == 403
        assert http.post("/portal/apps", data={"name": "forged", "csrf": "not-the-token"}).status_code == 403
        page = http.get("/portal/apps")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        assert http.post(f"/portal/apps/{world.app_id}/csr", data={"csrf": token, "csr": "x"}).status_code == 404
    assert all(c.name != "forged" for c in server.store.list_clients())
