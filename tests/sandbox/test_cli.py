"""``tessera sandbox`` as a user runs it: one command, a real TLS server at the providers' own
paths, fixtures with a given key and a given CSR, ``--home`` kept and reused, a temporary home
removed on SIGTERM, bad fixtures refused in one line (exit 2), and ``tessera demo`` against it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from tessera.home import init_home
from tessera.sandbox.setup import csr_for_key, new_key_pem
from tessera.testing import start_sandbox
from tests.support.live import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CUSTOM = """
[[nexi.apps]]
client_id = "keyed-app"
client_secret = "keyed-app-secret-0123456789"
redirect_uris = ["https://pos.example.test/cb"]
key = "keys/keyed-app.key"

[[nexi.apps]]
client_id = "csr-app"
client_secret = "csr-app-secret-0123456789"
csr = "csr-app.csr"

[[merchants]]
id = 77
vat = "FI11223344"

[[merchants.axept_keys]]
key_id = 1
key = "axept-77-key-1-0123456789"

[[merchants.axept_keys]]
key_id = 2
key = "axept-77-key-2-0123456789"
"""


def tessera(*args: str, timeout: float = 120, tmpdir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    if tmpdir is not None:  # where a temporary home goes (tempfile reads TMPDIR)
        env["TMPDIR"] = str(tmpdir)
    return subprocess.run(
        [sys.executable, "-m", "tessera.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[merchants]]\nid = 1\nvat = 'DK123'\n", "must be DK or FI followed by 8 digits"),
        ("[[b2binpay.users]]\nlogin = 'a'\npassword = 'pw-0123456789abcdef'\nrole = 'x'\n", "role: unknown field"),
    ],
)
def test_bad_fixtures_exit_2_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    (tmp_path / "tmp").mkdir()
    proc = tessera("sandbox", "--fixtures", str(bad), tmpdir=tmp_path / "tmp")
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert list((tmp_path / "tmp").iterdir()) == []  # nothing left behind


def test_bad_profile_exits_2() -> None:
    proc = tessera("sandbox", "--profile", "visa")
    assert proc.returncode == 2 and "--profile must be one of" in proc.stderr


def test_custom_fixtures_key_csr_home_kept_and_reused(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    key_pem = new_key_pem()
    (tmp_path / "keys" / "keyed-app.key").write_bytes(key_pem)
    (tmp_path / "csr-app.csr").write_bytes(csr_for_key(new_key_pem(), "csr-app"))
    fixtures = tmp_path / "fixtures.toml"
    fixtures.write_text(CUSTOM)
    home = tmp_path / "home"
    with start_sandbox(fixtures=fixtures, profiles=["axept"], home=home) as box:
        assert box.profiles == ("axept",) and box.home == home.resolve()
        assert "Application startup complete" in box.log_tail()  # its standard error, kept for a failing test
        keyed, csr_app = box.nexi_apps
        assert keyed.key == (tmp_path / "keys" / "keyed-app.key").resolve() and csr_app.key is None
        assert keyed.certificate == home.resolve() / "apps" / "keyed-app.crt"
        cert = x509.load_pem_x509_certificate(keyed.certificate.read_bytes())
        assert cert.public_key() == x509.load_pem_x509_csr(csr_for_key(key_pem, "x")).public_key()
        with httpx.Client(verify=box.ssl_context()) as http:
            for key_id, key in ((1, "axept-77-key-1-0123456789"), (2, "axept-77-key-2-0123456789")):
                r = http.post(f"{box.base_url}/v1/authenticate", json={"merchantId": 77, "keyId": key_id, "key": key})
                assert r.status_code == 200, r.text
            assert http.post(f"{box.base_url}/token/", json={}).status_code == 404  # B2BINPAY not chosen
            assert http.get(f"{box.base_url}/softpos/par/jwks.json").status_code == 404
        first = box.description
    assert box.process is not None and box.process.returncode == 0  # SIGTERM: a clean exit
    assert (home / "tessera.toml").exists()  # --home is kept
    port = free_port()
    with start_sandbox(profiles=["axept"], home=home, port=port) as again:  # reused: its own fixtures
        assert again.description["nexi"] == first["nexi"] and again.description["merchants"] == first["merchants"]
        with httpx.Client(verify=again.ssl_context()) as http:
            r = http.post(
                f"{again.base_url}/v1/authenticate",
                json={"merchantId": 77, "keyId": 1, "key": "axept-77-key-1-0123456789"},
            )
            assert r.status_code == 200
    assert first["ca_file"] == again.description["ca_file"]
    assert again.base_url == f"https://127.0.0.1:{port}" and again.description["reused_home"] is True


@pytest.fixture(scope="module")
def b2binpay_sandbox():
    """``tessera sandbox --profile b2binpay`` as a user runs it (a temporary home), until the
    module's last test stops it: (the process, what it printed up to "Ctrl-C", its base URL,
    its home). ``test_demo_failure_is_one_line`` runs the demo against it while it runs;
    ``test_temporary_home_removed_on_sigterm_and_human_output`` (after it) stops it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tessera.cli", "sandbox", "--profile", "b2binpay"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        text = "".join(lines)
        base_url = text.split("serving", 1)[1].split()[0]
        home = Path(text.split("home:", 1)[1].split()[0])
        yield proc, text, base_url, home
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)


def test_demo_failure_is_one_line(b2binpay_sandbox) -> None:
    proc, _, base_url, home = b2binpay_sandbox
    assert proc.poll() is None, "the sandbox stopped before this test"
    demo = tessera("--home", str(home), "demo", "--url", base_url)
    assert demo.returncode == 1 and "Traceback" not in demo.stderr
    assert "the demo failed at nexi-softpos" in demo.stderr and "404" in demo.stderr


def test_temporary_home_removed_on_sigterm_and_human_output(b2binpay_sandbox) -> None:
    proc, text, _, home = b2binpay_sandbox
    try:
        assert "b2binpay: /token/, /token/refresh/" in text
        assert "login b2binpay-api-user  password sandbox-b2binpay-password-0123456789" in text
        assert home.is_dir()
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
    assert not home.exists()


def test_demo_runs_against_a_sandbox(tmp_path: Path) -> None:
    with start_sandbox(home=tmp_path / "home") as box:
        proc = tessera("--home", str(box.home), "demo", "--url", box.base_url, "--json")
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert result["ok"] is True and result["nexi-softpos"]["id_token"] is True
        assert result["b2binpay"] == {"rotated": True}


def test_a_home_no_sandbox_made_is_refused(tmp_path: Path) -> None:
    init_home(tmp_path / "home", now=int(time.time()))  # what ``tessera init`` makes
    proc = tessera("sandbox", "--home", str(tmp_path / "home"))
    assert proc.returncode == 2 and "that no sandbox made" in proc.stderr and "Traceback" not in proc.stderr
