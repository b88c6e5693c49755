"""A small kit for the browser tests: headless Debian Chromium driven by Selenium through
the system chromedriver, made to trust the test CA through its own NSS database; a
throwaway HTTP redirect target; and the Nexi PAR client side (client assertion, PKCE).

Nothing here downloads anything: the chromedriver path is given to Selenium explicitly,
so Selenium Manager never runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CERTUTIL = "certutil"
INSTALL_HINT = "run scripts/install-test-deps.sh (Debian packages chromium, chromium-driver, libnss3-tools)"

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1024,768",
    "--lang=en-US",
)


# --- availability ------------------------------------------------------------------------------


def missing_tools() -> list[str]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if shutil.which(CERTUTIL) is None:
        missing.append("certutil")
    return missing


def require_browser() -> None:
    """Fail under CI (the tools must be there), skip on a developer machine without them."""
    missing = missing_tools()
    if not missing:
        return
    msg = f"browser test needs {', '.join(missing)}: {INSTALL_HINT}"
    if os.environ.get("CI") == "true":
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


# --- Chromium ------------------------------------------------------------------------------------


def make_profile(root: Path, ca_pem: Path) -> tuple[Path, Path]:
    """A fresh HOME whose NSS database (``$HOME/.pki/nssdb``, where Chromium on Linux looks)
    trusts ``ca_pem`` for TLS servers, and a fresh ``--user-data-dir``."""
    home = root / "home"
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    db = f"sql:{nssdb}"
    subprocess.run([CERTUTIL, "-N", "-d", db, "--empty-password"], check=True, capture_output=True)
    subprocess.run(
        [CERTUTIL, "-A", "-d", db, "-n", "tessera test CA", "-t", "C,,", "-i", str(ca_pem)],
        check=True,
        capture_output=True,
    )
    listed = subprocess.run([CERTUTIL, "-L", "-d", db], check=True, capture_output=True, text=True).stdout
    assert "tessera test CA" in listed, listed
    data = root / "user-data"
    data.mkdir()
    return home, data


@dataclass
class Browser:
    """One Chromium session; ``quit()`` is safe to call more than once and always ends
    every process of the session (see ``_session_processes``)."""

    driver: Any
    session_dir: Path
    driver_pid: int | None
    _quit: bool = field(default=False, init=False)

    def statuses(self) -> list[tuple[str, int]]:
        """(url, status) of each document the browser received since the last call, from
        Chromium's DevTools performance log (Selenium itself cannot see status codes)."""
        out = []
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") == "Network.responseReceived" and msg["params"].get("type") == "Document":
                r = msg["params"]["response"]
                out.append((r["url"], int(r["status"])))
        return out

    def quit(self) -> None:
        if self._quit:
            return
        self._quit = True
        # Take the process tree before quitting: once chromedriver is gone, the Chromium
        # helpers are re-parented and can no longer be traced back to this session.
        tree = _session_processes(self.session_dir, self.driver_pid)
        try:
            self.driver.quit()
        finally:
            _reap(tree)


def _processes() -> dict[int, tuple[int, str, bytes]]:
    """pid -> (ppid, start time, cmdline) of every process we can read."""
    procs = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        procs[int(d.name)] = (int(fields[1]), fields[19], cmd)
    return procs


def _session_processes(session_dir: Path, driver_pid: int | None) -> dict[int, str]:
    """pid -> start time of the processes of one session: the chromedriver we started, the
    processes with an argument under the session's own directory, and all their descendants.

    The browser and its helpers have ``--user-data-dir=<session>/user-data``; its crashpad
    handlers, which detach to init, have ``--database=<session>/home/.config/...``.
    """
    procs = _processes()
    marker = f"{session_dir}/".encode()
    roots = {
        pid
        for pid, (_, _, cmd) in procs.items()
        if any(arg.split(b"=", 1)[-1].startswith(marker) for arg in cmd.split(b"\0")[1:])
    }
    if driver_pid in procs:
        roots.add(driver_pid)
    tree, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid in tree:
            continue
        tree.add(pid)
        todo.extend(child for child, (ppid, _, _) in procs.items() if ppid == pid)
    return {pid: procs[pid][1] for pid in tree}


def _reap(tree: dict[int, str], grace: float = 5.0) -> None:
    """Wait for ``tree`` to exit; SIGKILL, by pid, whatever of it is still alive (the same
    pid with the same start time, so a reused pid is never hit)."""

    def alive() -> list[int]:
        now = _processes()
        return [pid for pid, started in tree.items() if pid in now and now[pid][1] == started and now[pid][2]]

    deadline = time.monotonic() + grace
    while (left := alive()) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def start_browser(root: Path, ca_pem: Path) -> Browser:
    """Headless Chromium trusting ``ca_pem`` (no --ignore-certificate-errors), via the
    system chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    home, data = make_profile(root, ca_pem)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={data}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    env = {**os.environ, "HOME": str(home)}
    service = Service(executable_path=CHROMEDRIVER, env=env, log_output=str(root / "chromedriver.log"))
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except BaseException:
        tree = _session_processes(root, service.process.pid if service.process else None)
        service.stop()
        _reap(tree)
        raise
    pid = service.process.pid if service.process else None
    driver.set_page_load_timeout(30)
    return Browser(driver, root, pid)


# --- the app's redirect target ------------------------------------------------------------------


class RedirectTarget:
    """``http://127.0.0.1:<port>/callback`` on a thread: records each query string and
    answers with a small HTML page."""

    def __init__(self) -> None:
        self.received: list[dict[str, list[str]]] = []
        self.arrived = threading.Event()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                parts = urlsplit(self.path)
                if parts.path != "/callback":
                    self.send_error(404)
                    return
                target.received.append(parse_qs(parts.query, keep_blank_values=True))
                target.arrived.set()
                body = b"<!doctype html><title>App callback</title><h1 id='callback'>Enrollment complete</h1>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/callback"
        self._thread = threading.Thread(target=self.server.serve_forever, name="redirect-target", daemon=True)

    def __enter__(self) -> RedirectTarget:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


# --- the Nexi client side -----------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def client_assertion(
    *,
    jwks: dict[str, Any],
    key_pem: bytes,
    client_id: str,
    audience: str,
    point_of_sale: str,
    terminal_ids: list[str],
    username: str,
    now: int | None = None,
) -> str:
    """The Nexi nested assertion, built with jwcrypto (independent of tessera's own JOSE):
    a JWT signed RS256 with the app's certificate key, encrypted RSA-OAEP-256/A256GCM to
    the server's first ``enc`` key."""
    from jwcrypto import jwe, jwk, jwt

    iat = int(now if now is not None else time.time())
    claims = {
        "appId": client_id,
        "pointOfSale": point_of_sale,
        "terminal_ids": terminal_ids,
        "username_merchant": username,
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": iat,
        "exp": iat + 120,
        "jti": str(uuid.uuid4()),
    }
    signer = jwk.JWK.from_pem(key_pem)
    inner = jwt.JWT(header={"alg": "RS256", "typ": "JWT"}, claims=claims)
    inner.make_signed_token(signer)
    enc_keys = [k for k in jwks["keys"] if k.get("use", "enc") == "enc" and k.get("kty") == "RSA"]
    assert enc_keys, f"no RSA enc key in {jwks}"
    recipient = jwk.JWK(**enc_keys[0])
    outer = jwe.JWE(
        inner.serialize().encode("ascii"),
        recipient=recipient,
        protected=json.dumps({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": enc_keys[0]["kid"], "cty": "JWT"}),
    )
    return outer.serialize(compact=True)


def query_one(q: dict[str, list[str]], name: str) -> str:
    values = q.get(name)
    assert values is not None and len(values) == 1, f"{name} should appear once in {q}"
    return values[0]


def iter_documents(statuses: list[tuple[str, int]], path: str) -> Iterator[int]:
    for url, status in statuses:
        if urlsplit(url).path == path:
            yield status
