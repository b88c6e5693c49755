"""MobilePay's delivery of client credentials: an AES-256 encrypted zip, its password apart.

The zip that ``tessera clients create --zip`` writes is opened with 7-Zip (a standard tool;
plain ``unzip`` cannot read WinZip AES), with the printed password: it holds the client id and
a secret that the server accepts. A wrong password opens nothing."""

from __future__ import annotations

import json
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tessera.admin.delivery import PASSWORD_LENGTH, credentials_zip
from tessera.config import Settings
from tessera.core.secrets import verify_secret
from tessera.home import init_home, open_store
from tests.ops.helpers import clean_env, require_tool, tessera, tessera_json

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("delivery") / "home"
    init_home(home, now=int(time.time()))
    return home


def seven_zip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("7z", "p7zip-full"), *args], capture_output=True, text=True, timeout=60)


def test_clients_create_zip_opens_with_7z_and_holds_working_credentials(home, tmp_path):
    target = tmp_path / "credentials.zip"
    out = tessera_json(home, "clients", "create", "--name", "Integrator ApS", "--zip", str(target))
    assert set(out) == {"client_id", "zip", "zip_password"}  # the secret is in the zip only
    password = out["zip_password"]
    assert len(password) == PASSWORD_LENGTH and password not in target.read_bytes().decode("latin-1")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600

    listing = seven_zip("l", "-slt", str(target)).stdout
    assert "Method = AES-256 Deflate" in listing and "Encrypted = +" in listing

    extracted = tmp_path / "x"
    r = seven_zip("x", f"-p{password}", f"-o{extracted}", str(target))
    assert r.returncode == 0, r.stdout + r.stderr
    creds = json.loads((extracted / "credentials.json").read_text())
    assert creds["client_id"] == out["client_id"]
    text = (extracted / "credentials.txt").read_text()
    assert f"client_id: {creds['client_id']}" in text and f"client_secret: {creds['client_secret']}" in text
    # The secret in the zip is the client's secret.
    settings = Settings.load(home)
    store = open_store(settings)
    try:
        client = store.get_client(creds["client_id"])
        assert client is not None
        assert verify_secret(creds["client_secret"], client.secret_hash, settings.pepper_bytes())
    finally:
        store.close()

    wrong = seven_zip("x", "-pnot-the-password", f"-o{tmp_path / 'y'}", str(target))
    assert wrong.returncode != 0
    assert not (tmp_path / "y" / "credentials.json").exists() or not (tmp_path / "y" / "credentials.json").read_text()


def test_clients_create_zip_human_output_and_refusals(home, tmp_path):
    target = tmp_path / "c.zip"
    proc = tessera(home, "clients", "create", "--name", "Another", "--zip", str(target))
    lines = dict(line.split(": ", 1) for line in proc.stdout.strip().splitlines())
    assert set(lines) == {"client_id", "zip", "zip_password"}
    # an existing file is not overwritten; a client without a secret has nothing to zip
    again = tessera(home, "clients", "create", "--name", "Again", "--zip", str(target), check=False)
    assert again.returncode != 0 and "exists" in again.stderr
    mtls = tessera(
        home,
        "clients",
        "create",
        "--name",
        "Cert only",
        "--auth-method",
        "tls_client_auth",
        "--zip",
        str(tmp_path / "d.zip"),
        check=False,
        env=clean_env(),
    )
    assert mtls.returncode != 0 and "no secret" in mtls.stderr
    assert not (tmp_path / "d.zip").exists()


def test_credentials_zip_passwords_are_fresh_and_long():
    seen = {credentials_zip("id", "secret")[1] for _ in range(20)}
    assert len(seen) == 20 and all(len(p) == PASSWORD_LENGTH for p in seen)
