"""``pip install tessera-auth`` is the SDK alone; ``pip install 'tessera-auth[server]'`` adds
the server and the CLI. The wheel is built once from this checkout and installed into fresh
virtual environments (pip's cache makes the second time fast):

- SDK only: at most 14 packages (``pip list`` without pip and setuptools); ``tessera.sdk``,
  every client and ``tessera.sdk.resource.TokenVerifier`` import and work (a token verified
  against a JWKS); the ``tessera`` command says, in one line, what to install, and exits 2;
- with ``[server]``: ``tessera --help`` works.

The package count and the installed size (``du`` of site-packages, without bytecode: pip installs
with ``--no-compile`` here) are printed (``-s``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live import REPO

pytestmark = pytest.mark.slow

MAX_SDK_PACKAGES = 14
PIP = [sys.executable, "-m", "pip"]

SDK_SCRIPT = r"""
import json, time
import tessera.sdk
from tessera.sdk import (AxeptClient, B2BinPayClient, MobilePayClient, NexiSoftPOSClient, TokenCache,
                         RetryPolicy, SDKError, make_csr, make_pkce)
from tessera.sdk.resource import TokenVerifier
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from joserfc import jwt
from joserfc.jwk import ECKey
import datetime as dt

csr_pem, key_pem = make_csr()
key = serialization.load_pem_private_key(key_pem, None)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "NOMEAPP")])
now = dt.datetime.now(dt.UTC)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
clients = [
    NexiSoftPOSClient("staging", "app", "secret", cert, key_pem),
    AxeptClient("https://axept.example", 1, 1, "key"),
    MobilePayClient("sandbox", "id", "secret"),
    B2BinPayClient("production", "login", "password", retry=RetryPolicy(attempts=2)),
]
make_pkce()

signing = ECKey.generate_key("P-256", parameters={"kid": "k1", "use": "sig"})
claims = {"iss": "https://as.example", "aud": "api", "sub": "app", "client_id": "app", "iat": int(time.time()),
          "exp": int(time.time()) + 60, "jti": "j1", "scope": "pay"}
token = jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": "k1"}, claims, signing)
verifier = TokenVerifier({"keys": [signing.as_dict(private=False)]}, issuer="https://as.example", audience="api")
assert verifier.verify(token, scopes=["pay"])["sub"] == "app"
print(json.dumps({"ok": True, "clients": [type(c).__name__ for c in clients]}))
"""


def _run(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of this checkout, built once from a copy (the build leaves nothing in the repo)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "tessera", src / "tessera", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    _run(*PIP, "wheel", "--no-deps", "-q", "-w", out, src)
    (built,) = out.glob("tessera_auth-*.whl")
    return built


def _venv(path: Path) -> Path:
    """A fresh virtual environment without pip of its own: this interpreter's pip installs into it."""
    _run(sys.executable, "-m", "venv", "--without-pip", path)
    return path / "bin" / "python"


def _pip_install(python: Path, *requirements: str) -> None:
    # --no-compile: pip's pass over every installed module to write its bytecode is not what these
    # tests check (~4.5 of the server extra's 8 CPU seconds); an import compiles what it loads.
    _run(*PIP, "--python", python, "install", "-q", "--no-compile", *requirements)


def _site_packages(python: Path) -> Path:
    out = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout
    return Path(out.strip())


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TESSERA_", "PYTHON", "COVERAGE"))}


@pytest.fixture(scope="module")
def sdk_env(wheel, tmp_path_factory) -> Iterator[Path]:
    python = _venv(tmp_path_factory.mktemp("venv") / "sdk")
    _pip_install(python, str(wheel))
    yield python


def test_the_sdk_alone_is_small(sdk_env) -> None:
    listed = json.loads(_run(*PIP, "--python", sdk_env, "list", "--format=json").stdout)
    names = sorted(p["name"].lower() for p in listed if p["name"].lower() not in ("pip", "setuptools"))
    site = _site_packages(sdk_env)
    size = _run("du", "-sk", site).stdout.split()[0]
    mib = int(size) / 1024
    print(f"\nSDK-only install: {len(names)} packages, {mib:.1f} MiB (no bytecode) in {site}: {', '.join(names)}")
    assert len(names) <= MAX_SDK_PACKAGES, names
    assert {"tessera-auth", "httpx", "joserfc", "cryptography"} <= set(names)
    for server_package in ("starlette", "uvicorn", "sqlalchemy", "typer", "orjson", "pydantic"):
        assert server_package not in names


def test_the_sdk_alone_imports_and_works(sdk_env, tmp_path) -> None:
    out = _run(sdk_env, "-c", SDK_SCRIPT, env=_clean_env()).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {
        "ok": True,
        "clients": ["NexiSoftPOSClient", "AxeptClient", "MobilePayClient", "B2BinPayClient"],
    }


def test_the_command_without_the_server_says_what_to_install(sdk_env) -> None:
    proc = subprocess.run(
        [str(sdk_env.parent / "tessera"), "--help"], capture_output=True, text=True, timeout=60, env=_clean_env()
    )
    assert proc.returncode == 2
    assert "pip install 'tessera-auth[server]'" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_the_server_extra_gives_the_cli(wheel, tmp_path_factory) -> None:
    python = _venv(tmp_path_factory.mktemp("venv") / "server")
    _pip_install(python, f"{wheel}[server]")
    proc = _run(python.parent / "tessera", "--help", env=_clean_env())
    assert "serve" in proc.stdout and "clients" in proc.stdout
