"""docs/integrators.md, every block run:

- ``real``: each "call the real provider" block, as written, in a subprocess, with its
  ``BASE_URL`` and ``VERIFY`` lines swapped for the sandbox's base URL and CA file, and the
  credentials it reads from the environment set to the sandbox's fixtures (the Nexi developer
  certificate copied to NOMEAPP.pem/.key, as the provider's document names them);
- ``pytest-header`` + ``pytest``: written into a test module of a fresh project, run by the
  ``ci`` block's own ``pytest`` command (its fixtures file being the example's), the plugin
  loaded through its entry point;
- ``sh``: run by bash in a directory holding examples/sandbox.toml;
- ``fixtures``: parsed, and the values it shows are the example file's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tessera.sandbox.fixtures import load_fixtures, parse_fixtures

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "integrators.md"
BLOCK = re.compile(r"<!-- test: ([\w-]+) -->\n```(\w+)\n(.*?)```", re.S)


def blocks(kind: str) -> list[str]:
    return [code for k, _, code in BLOCK.findall(DOC.read_text()) if k == kind]


def test_every_code_block_is_run() -> None:
    text = DOC.read_text()
    fences = re.findall(r"^```(\w*)$", text, re.M)
    openers = fences[0::2]
    assert all(openers), "every block of docs/integrators.md names its language"
    marked = BLOCK.findall(text)
    assert len(marked) == len(openers), "every block of docs/integrators.md needs a <!-- test: kind --> marker"
    assert {k for k, _, _ in marked} == {"real", "pytest", "pytest-header", "sh", "fixtures", "ci", "synopsis"}


def test_synopsis_is_the_command() -> None:
    (synopsis,) = blocks("synopsis")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env["COLUMNS"] = "200"
    helptext = subprocess.run(
        [sys.executable, "-m", "tessera.cli", "sandbox", "--help"], capture_output=True, text=True, env=env, check=True
    ).stdout
    flags = re.findall(r"--[a-z-]+", synopsis)
    assert flags == ["--profile", "--fixtures", "--port", "--home", "--json"]
    for flag in flags:
        assert flag in helptext, flag
    for choice in ("nexi", "axept", "mobilepay", "b2binpay", "all"):
        assert choice in helptext


def env_for(sandbox, workdir: Path) -> dict[str, str]:
    app = sandbox.nexi_apps[0]
    shutil.copy(app.certificate, workdir / "NOMEAPP.pem")
    shutil.copy(app.key, workdir / "NOMEAPP.key")
    key = sandbox.merchant(1001).axept_keys[0]
    mobilepay, b2b = sandbox.mobilepay_clients[0], sandbox.b2binpay_users[0]
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")},
        "NEXI_CLIENT_ID": app.client_id,
        "NEXI_CLIENT_SECRET": app.client_secret,
        "AXEPT_BASE_URL": sandbox.base_url,
        "AXEPT_MERCHANT_ID": str(key.merchant_id),
        "AXEPT_KEY_ID": str(key.key_id),
        "AXEPT_KEY": key.key,
        "MOBILEPAY_CLIENT_ID": mobilepay.client_id,
        "MOBILEPAY_CLIENT_SECRET": mobilepay.client_secret,
        "B2BINPAY_LOGIN": b2b.login,
        "B2BINPAY_PASSWORD": b2b.password,
    }


REAL = blocks("real")


@pytest.mark.parametrize("code", REAL, ids=["nexi", "axept", "mobilepay", "b2binpay"][: len(REAL)])
def test_real_provider_block(code: str, tessera_sandbox, tmp_path: Path) -> None:
    swapped, n = re.subn(r"^BASE_URL = .*$", f"BASE_URL = {tessera_sandbox.base_url!r}", code, flags=re.M)
    swapped, m = re.subn(r"^VERIFY = .*$", f"VERIFY = {str(tessera_sandbox.ca_file)!r}", swapped, flags=re.M)
    assert (n, m) == (1, 1), "a real-provider block sets BASE_URL and VERIFY once, on lines of their own"
    (tmp_path / "block.py").write_text(swapped)
    proc = subprocess.run(
        [sys.executable, "block.py"],
        cwd=tmp_path,
        env=env_for(tessera_sandbox, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_pytest_blocks_with_the_ci_command(tmp_path: Path) -> None:
    """The pytest blocks, in a fresh project, run by the CI example's own commands."""
    (ci,) = blocks("ci")
    steps = [s["run"] for s in yaml.safe_load(ci)["jobs"]["test"]["steps"] if "run" in s]
    install, run = steps
    assert install.startswith("pip install 'tessera-auth[server]'")  # this very environment is that install
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    shutil.copy(REPO / "examples" / "sandbox.toml", project / "tests" / "sandbox.toml")
    (header,) = blocks("pytest-header")
    (project / "tests" / "test_providers.py").write_text(header + "\n\n" + "\n\n".join(blocks("pytest")))
    args = run.split()
    assert args[0] == "pytest"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TESSERA_", "PYTEST_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args[1:], "-p", "no:cacheprovider"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", proc.stdout).group(1))  # type: ignore[union-attr]
    assert passed == len(blocks("pytest"))


def test_shell_block(tmp_path: Path) -> None:
    (script,) = blocks("sh")
    (tmp_path / "examples").mkdir()
    shutil.copy(REPO / "examples" / "sandbox.toml", tmp_path / "examples" / "sandbox.toml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    expires, clock = proc.stdout.strip().splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", expires)
    assert '"offset":3600.0' in clock


def test_fixtures_block_is_the_example() -> None:
    (text,) = blocks("fixtures")
    shown = parse_fixtures(text, source="docs/integrators.md")
    example = load_fixtures(REPO / "examples" / "sandbox.toml")
    assert shown.nexi.apps[0].model_dump(exclude={"name"}) == example.nexi.apps[0].model_dump(exclude={"name"})
    assert shown.mobilepay.clients[0].client_secret == example.mobilepay.clients[0].client_secret
    assert shown.b2binpay.users == example.b2binpay.users
    assert shown.merchants[0] == example.merchants[0]
