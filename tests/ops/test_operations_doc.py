"""docs/operations.md's procedures, run exactly as the page writes them.

Each procedure is the ``sh`` blocks between ``<!-- procedure: NAME -->`` and
``<!-- /procedure -->``, run in one bash (``set -euo pipefail``) after the page's
``environment`` procedure, as root would run them on the host of deploy/systemd/tessera.service.
The machine is a temporary directory: ``/var/lib/tessera`` (the home, made as in production:
the KEK and pepper only in the environment file), ``/etc/tessera/tessera.env`` (the
``EnvironmentFile``), ``/var/backups/tessera``; port 8443 is a free port; ``systemctl`` is
tests/ops/service.py, which runs ``tessera serve`` as systemd runs the unit. Nothing else of
the page's text is changed. Then each test checks the outcome from outside: the server's
answers, the files, what the database holds.

The page's blocks run the real ``tessera`` commands; the tests' own set-up and read-backs
around them (a client registered, a certificate signed or revoked, the pepper counts) go
through the admin layer in process, on the same home, database and environment file: the
functions those commands call, without a fresh interpreter for each (docs/testing.md)."""

from __future__ import annotations

import base64
import re
import secrets
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tessera.home import init_home
from tests.ops.helpers import clean_env
from tests.ops.service import install_systemctl, read_environment_file
from tests.support.live import REPO, environment, free_port

if TYPE_CHECKING:
    from tessera.admin.context import Admin

pytestmark = pytest.mark.slow

DOC = REPO / "docs" / "operations.md"
BLOCK = re.compile(r"```sh\n(.*?)```", re.S)
TESSERA = str(REPO / ".venv" / "bin" / "tessera")


def procedure(name: str) -> str:
    text = DOC.read_text()
    parts = re.findall(rf"<!-- procedure: {re.escape(name)} -->(.*?)<!-- /procedure -->", text, re.S)
    assert parts, f"docs/operations.md has no procedure {name!r}"
    script = "\n".join(block for part in parts for block in BLOCK.findall(part))
    assert script.strip(), name
    return script


def new_secret() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


class Machine:
    """The host of the procedures: a home made with the secrets in the environment file only."""

    def __init__(self, root: Path, *, database_url: str | None = None):
        self.root = root
        self.home = root / "var" / "lib" / "tessera"
        self.etc = root / "etc" / "tessera"
        self.backups = root / "var" / "backups" / "tessera"
        self.bin = root / "bin"
        self.port = free_port()
        self.etc.mkdir(parents=True)
        self.env_file = self.etc / "tessera.env"
        values = {
            "TESSERA_KEK": new_secret(),
            "TESSERA_PEPPER": new_secret(),
            "TESSERA_HOST": "127.0.0.1",
            "TESSERA_PORT": str(self.port),
        }
        if database_url:
            values["TESSERA_DATABASE_URL"] = database_url
        self.env_file.write_text(
            "# the service's environment (deploy/systemd/tessera.service EnvironmentFile)\n"
            + "".join(f"{k}={v}\n" for k, v in values.items())
        )
        self.env_file.chmod(0o600)
        with environment(**{k: v for k, v in values.items() if k != "TESSERA_PORT"}):
            init_home(
                self.home, hostname="localhost", port=self.port, issuer=f"https://localhost:{self.port}", now=now()
            )
        assert not (self.home / "secrets" / "kek").exists() and not (self.home / "secrets" / "pepper").exists()
        install_systemctl(self.bin, root / "run", home=self.home, environment_file=self.env_file, tessera=TESSERA)

    # --- what the page's blocks run in ---------------------------------------------------------
    def render(self, script: str) -> str:
        for old, new in {
            "/var/lib/tessera": str(self.home),
            "/etc/tessera": str(self.etc),
            "/var/backups/tessera": str(self.backups),
            "8443": str(self.port),
        }.items():
            script = script.replace(old, new)
        return script

    def env(self) -> dict[str, str]:
        env = clean_env()
        env["PATH"] = f"{self.bin}:{REPO / '.venv' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        return env

    def run(self, name: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        script = self.render(procedure("environment") + "\n" + procedure(name))
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check:
            assert proc.returncode == 0, f"procedure {name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc

    def systemctl(self, verb: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "systemctl"), verb, "tessera"], env=self.env(), capture_output=True, text=True, timeout=120
        )

    @contextmanager
    def admin(self) -> Iterator[Admin]:
        """The admin layer over the machine's home, under its environment file (as ``cli`` runs)."""
        from tessera.admin.compose import open_admin
        from tessera.config import Settings

        with environment(**read_environment_file(self.env_file)):
            a = open_admin(Settings.load(self.home))
        try:
            yield a
        finally:
            a.store.close()

    def client(self) -> httpx.Client:
        ctx = ssl.create_default_context(cafile=str(self.home / "ca.pem"))
        return httpx.Client(base_url=f"https://localhost:{self.port}", verify=ctx, timeout=30)

    def token(self, client_id: str, secret: str) -> httpx.Response:
        with self.client() as c:
            return c.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))

    def stop(self) -> None:
        self.systemctl("stop")


def now() -> int:
    return int(time.time())


@pytest.fixture
def machine(tmp_path):
    m = Machine(tmp_path / "host")
    assert m.systemctl("start").returncode == 0, (m.root / "run" / "tessera.log").read_text()[-3000:]
    try:
        yield m
    finally:
        m.stop()


def new_client(m: Machine, name: str) -> tuple[str, str]:
    from tessera.admin.clients import RegisterClient, register_client

    with m.admin() as a:
        made = register_client(a, RegisterClient(name=name))
    assert made.client_secret is not None
    return made.client_id, made.client_secret


def verify_with_jwks(m: Machine, token: str) -> dict:
    import json

    from jwcrypto import jwk, jwt

    with m.client() as c:
        keys = jwk.JWKSet.from_json(c.get("/oauth2/jwks").text)
    return json.loads(jwt.JWT(jwt=token, key=keys, expected_type="JWS").claims)


# --- backup and restore ------------------------------------------------------------------------


def test_backup_and_restore_as_documented(machine):
    kept = new_client(machine, "before the backup")
    machine.run("backup")
    (backup,) = machine.backups.glob("tessera-*.db")
    assert backup.stat().st_mode & 0o077 == 0
    lost = new_client(machine, "after the backup")
    assert machine.token(*lost).status_code == 200

    out = machine.run("restore")
    assert "restored" in out.stdout and machine.systemctl("is-active").returncode == 0
    assert machine.token(*kept).status_code == 200
    assert machine.token(*lost).status_code == 401  # registered after the backup: gone
    assert list(machine.home.glob("tessera.db.replaced-*"))


@pytest.mark.postgres
def test_postgres_backup_and_restore_as_documented(request, tmp_path):
    pg = request.getfixturevalue("postgres_server")
    url = pg.create_database(f"ops_{secrets.token_hex(6)}")
    m = Machine(tmp_path / "host", database_url=url)
    assert m.systemctl("start").returncode == 0, (m.root / "run" / "tessera.log").read_text()[-3000:]
    try:
        kept = new_client(m, "in the dump")
        m.run("postgres-backup")
        assert (m.backups / "tessera.dump").stat().st_size > 0
        later = new_client(m, "after the dump")
        from sqlalchemy import create_engine, text

        engine = create_engine(url)
        try:  # an accident
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM certificates"))
                conn.execute(text("DELETE FROM clients"))
        finally:
            engine.dispose()
        assert m.token(*kept).status_code == 401
        m.run("postgres-restore")
        assert m.token(*kept).status_code == 200
        assert m.token(*later).status_code == 401  # registered after the dump
    finally:
        m.stop()


# --- rotations -----------------------------------------------------------------------------------


def test_kek_rotation_as_documented(machine):
    old_kek = read_environment_file(machine.env_file)["TESSERA_KEK"]
    client = new_client(machine, "kek")
    before = machine.token(*client)
    assert before.status_code == 200
    kids_before = {k["kid"] for k in machine.client().get("/oauth2/jwks").json()["keys"]}

    machine.run("kek")

    new_kek = read_environment_file(machine.env_file)["TESSERA_KEK"]
    assert new_kek != old_kek and not (machine.etc / "kek.new").exists()
    assert machine.systemctl("is-active").returncode == 0  # started with the new KEK
    # the keys are the same keys: a token issued before verifies against the JWKS served now
    assert {k["kid"] for k in machine.client().get("/oauth2/jwks").json()["keys"]} == kids_before
    assert verify_with_jwks(machine, before.json()["access_token"])["client_id"] == client[0]
    after = machine.token(*client)
    assert after.status_code == 200 and verify_with_jwks(machine, after.json()["access_token"])
    # the CA key opens under the new KEK only: certificates can still be signed
    from tessera.ca.authority import CertificateAuthority
    from tessera.config import _b64

    ca_cert, ca_key = (machine.home / "ca.pem").read_bytes(), (machine.home / "secrets" / "ca-key.pem").read_bytes()
    CertificateAuthority.load(ca_cert, ca_key, _b64(new_kek))
    with pytest.raises(ValueError):
        CertificateAuthority.load(ca_cert, ca_key, _b64(old_kek))
    # the server refuses the old KEK
    machine.stop()
    text = machine.env_file.read_text().replace(new_kek, old_kek)
    machine.env_file.write_text(text)
    refused = machine.systemctl("start")
    assert refused.returncode == 1 and "does not open this home's keys" in refused.stderr, refused.stderr
    machine.env_file.write_text(text.replace(old_kek, new_kek))
    assert machine.systemctl("start").returncode == 0


def test_client_secret_rotation_as_documented(machine):
    """Needs ``tessera clients rotate-secret`` (another branch of issue 15)."""
    import json

    client_id, old_secret = new_client(machine, "rotating")
    machine.run("client-secret")
    rotated = json.loads((machine.etc / "rotated.json").read_text())
    assert rotated["client_id"] == client_id and rotated["client_secret"] != old_secret
    assert rotated["previous_valid_until"] > now() + 86000
    assert machine.token(client_id, rotated["client_secret"]).status_code == 200
    assert machine.token(client_id, old_secret).status_code == 200  # inside the overlap


def sign_certificate(m: Machine, client_id: str, name: str) -> tuple[Path, Path, str]:
    from tessera.admin.certificates import SignCertificate, sign_certificate
    from tests.support.live import make_csr

    csr, key = make_csr(m.root / "apps" / name, name=name)
    out = csr.with_suffix(".pem")
    with m.admin() as a:
        signed = sign_certificate(a, SignCertificate(client_id, csr.read_bytes()))
    out.write_bytes(signed.pem)
    return out, key, signed.serial


def nexi_token(m: Machine, client: tuple[str, str], cert: Path, key: Path) -> int:
    ctx = ssl.create_default_context(cafile=str(m.home / "ca.pem"))
    ctx.load_cert_chain(str(cert), str(key))
    with httpx.Client(base_url=f"https://localhost:{m.port}", verify=ctx, timeout=30) as c:
        r = c.post(
            "/softpos/appenrollment/token",
            data={"grant_type": "client_credentials", "client_id": client[0], "client_secret": client[1]},
        )
    return r.status_code


def test_ca_rotation_as_documented(machine):
    from cryptography import x509

    client = new_client(machine, "nexi app")
    old_cert, old_key, old_serial = sign_certificate(machine, client[0], "OLDAPP")
    assert nexi_token(machine, client, old_cert, old_key) == 200

    machine.run("ca-rotate")
    bundle = x509.load_pem_x509_certificates((machine.home / "ca.pem").read_bytes())
    assert len(bundle) == 2
    new_cert, new_key, _ = sign_certificate(machine, client[0], "NEWAPP")
    issued = x509.load_pem_x509_certificate(new_cert.read_bytes())
    assert issued.issuer == bundle[0].subject != bundle[1].subject  # signed by the new CA
    # the overlap: both work
    assert nexi_token(machine, client, new_cert, new_key) == 200
    assert nexi_token(machine, client, old_cert, old_key) == 200

    # retiring is refused while the old CA's certificate is usable ...
    refused = machine.run("ca-retire", check=False)
    assert refused.returncode != 0 and "usable certificate(s)" in refused.stderr, refused.stderr
    assert nexi_token(machine, client, old_cert, old_key) == 200
    # ... and done once the app moved to its new certificate and the old one is revoked
    from tessera.admin.certificates import revoke_certificate

    with machine.admin() as a:
        revoke_certificate(a, old_serial)
    machine.run("ca-retire")
    assert [c.subject for c in x509.load_pem_x509_certificates((machine.home / "ca.pem").read_bytes())] == [
        bundle[0].subject
    ]
    server_cert = x509.load_pem_x509_certificate((machine.home / "server.pem").read_bytes())
    assert server_cert.issuer == bundle[0].subject  # re-issued by the new CA
    assert nexi_token(machine, client, new_cert, new_key) == 200
    with pytest.raises(httpx.HTTPError):  # the old CA is no longer trusted: refused in the handshake
        nexi_token(machine, client, old_cert, old_key)


def axept(m: Machine, merchant_id: int, key_id: int, key: str) -> int:
    with m.client() as c:
        return c.post(
            "/axept/v1/authenticate", json={"merchantId": merchant_id, "keyId": key_id, "key": key}
        ).status_code


def pepper_status(m: Machine) -> dict:
    """What ``tessera pepper status --json`` prints (the procedures run that command themselves)."""
    import json

    from tessera.admin.peppers import pepper_usage

    with m.admin() as a:
        return json.loads(json.dumps(pepper_usage(a).as_dict()))


def test_pepper_rotation_as_documented(machine):
    from tessera.admin.apikeys import create_key
    from tessera.admin.merchants import CreateMerchant, create_merchant

    used, idle = new_client(machine, "used"), new_client(machine, "idle")
    with machine.admin() as a:
        create_merchant(a, CreateMerchant(41, "Shop"))
        made = create_key(a, 41)
    key = {"keyId": made.key_id, "key": made.key}
    old_pepper = read_environment_file(machine.env_file)["TESSERA_PEPPER"]

    machine.run("pepper-rotate")

    env = read_environment_file(machine.env_file)
    assert env["TESSERA_PEPPER_ID"] == "2" and env["TESSERA_OLD_PEPPERS"] == f"1:{old_pepper}"
    status = pepper_status(machine)
    assert status["current"] == 2 and status["hashes"] == {"1": {"client_secrets": 2, "api_keys": 1}}
    # nothing was invalidated; each credential used moves to pepper 2
    assert machine.token(*used).status_code == 200
    assert axept(machine, 41, key["keyId"], key["key"]) == 200
    fresh = new_client(machine, "made under pepper 2")
    status = pepper_status(machine)
    assert status["hashes"] == {
        "1": {"client_secrets": 1, "api_keys": 0},
        "2": {"client_secrets": 2, "api_keys": 1},
    }, status
    assert status["remaining_on_old_peppers"] == 1
    for c in (used, fresh):
        assert machine.token(*c).status_code == 200
    assert machine.token(used[0], "wrong-" + used[1]).status_code == 401

    # retiring pepper 1 is refused while the idle client's hash is on it ...
    refused = machine.run("pepper-retire", check=False)
    assert refused.returncode != 0 and "still under pepper 1" in refused.stderr, refused.stderr
    assert "TESSERA_OLD_PEPPERS" in machine.env_file.read_text()  # the procedure stopped there
    # ... until that client has logged in once
    assert machine.token(*idle).status_code == 200
    machine.run("pepper-retire")
    assert "TESSERA_OLD_PEPPERS" not in machine.env_file.read_text()
    assert machine.systemctl("is-active").returncode == 0
    for c in (used, idle, fresh):
        assert machine.token(*c).status_code == 200
    assert axept(machine, 41, key["keyId"], key["key"]) == 200
    assert pepper_status(machine)["hashes"] == {"2": {"client_secrets": 3, "api_keys": 1}}

    # the start-up checks: the retired pepper, or a wrong one, is refused
    machine.stop()
    text = machine.env_file.read_text()
    machine.env_file.write_text(text + f"TESSERA_OLD_PEPPERS=1:{old_pepper}\n")
    refused = machine.systemctl("start")
    assert refused.returncode == 1 and "retired" in refused.stderr, refused.stderr
    machine.env_file.write_text(text.replace(env["TESSERA_PEPPER"], new_secret()))
    refused = machine.systemctl("start")
    assert refused.returncode == 1 and "is not pepper 2" in refused.stderr, refused.stderr
    machine.env_file.write_text(text)
    assert machine.systemctl("start").returncode == 0
