"""The pytest plugin: registered through the ``pytest11`` entry point, light to import (an
SDK-only install loads it too), its ini options honoured, and a clear error when the sandbox
cannot start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tessera.testing import SandboxError, start_sandbox

SERVER_MODULES = ("tessera.web", "tessera.core", "tessera.admin", "tessera.storage", "tessera.sandbox", "tessera.cli")


def test_registered_as_pytest11_entry_point() -> None:
    (ep,) = [e for e in entry_points(group="pytest11") if e.name == "tessera"]
    assert ep.value == "tessera.testing.pytest_plugin"


def test_imports_nothing_of_the_server() -> None:
    code = (
        "import json, sys\n"
        "import tessera.testing.pytest_plugin, tessera.testing\n"
        "loaded_plugin = sorted(sys.modules)\n"
        "from tessera.testing import TesseraSandbox\n"
        "print(json.dumps([loaded_plugin, sorted(sys.modules)]))\n"
    )
    plugin, helpers = json.loads(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    for name in plugin:  # the plugin alone: pytest's, nothing of tessera's server, not even httpx
        assert not name.startswith((*SERVER_MODULES, "httpx", "starlette", "uvicorn", "sqlalchemy")), name
    for name in helpers:  # the helpers: httpx (an SDK dependency), nothing of the server
        assert not name.startswith((*SERVER_MODULES, "starlette", "uvicorn", "sqlalchemy", "pydantic")), name
    assert "httpx" in helpers


@pytest.mark.slow
def test_ini_options(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text('[[b2binpay.users]]\nlogin = "my-login"\npassword = "my-password-0123456789"\n')
    (tmp_path / "pytest.ini").write_text("[pytest]\ntessera_fixtures = mine.toml\ntessera_profiles = b2binpay\n")
    (tmp_path / "test_ini.py").write_text(
        "def test_ini(tessera_sandbox):\n"
        "    assert tessera_sandbox.profiles == ('b2binpay',)\n"
        "    assert [u.login for u in tessera_sandbox.b2binpay_users] == ['my-login']\n"
        "    assert tessera_sandbox.nexi_apps == ()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TESSERA_", "PYTEST_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_ini.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


@pytest.mark.slow
def test_a_sandbox_that_cannot_start_says_why(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[merchants]]\nid = 0\n")
    with pytest.raises(SandboxError, match=r"exit 2\):\n.*merchants\[0\]\.id"):
        start_sandbox(fixtures=bad)
    with pytest.raises(SandboxError, match="pip install 'tessera-auth\\[server\\]'"):
        start_sandbox(command=[sys.executable, "-c", "import tessera_server_missing"])


@pytest.mark.slow
def test_sandbox_stops_when_its_test_run_is_killed(tmp_path: Path) -> None:
    """A test run killed outright (SIGKILL: no teardown) leaves no sandbox behind: the sandbox's
    standard input closes, and it stops and removes its temporary home."""
    code = (
        "import sys\n"
        "from tessera.testing import start_sandbox\n"
        "box = start_sandbox(profiles=['axept'])\n"
        "print(box.process.pid, box.home, flush=True)\n"
        "sys.stdin.read()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    parent = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert parent.stdout is not None
        pid, home = parent.stdout.readline().split()
        assert Path(home).is_dir()
    finally:
        parent.kill()
        parent.wait(10)
    for _ in range(300):  # up to 30 s on a loaded machine
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(int(pid), 9)
        pytest.fail("the sandbox outlived its test run")
    assert not Path(home).exists()
