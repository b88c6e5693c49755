"""Running the ``tessera`` command on a home, as an operator would (a subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.live import REPO


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any TESSERA_* variable of the test runner, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env.update(extra)
    return env


def tessera(
    home: Path, *args: str, env: dict[str, str] | None = None, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "tessera.cli", "--home", str(home), *args],
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        input=input,
        cwd=REPO,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"tessera {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def tessera_json(home: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(tessera(home, *args, "--json", env=env).stdout)
    return out


def require_tool(name: str, package: str) -> str:
    """The path of a CLI the test drives; missing: skip, or fail under CI (scripts/install-test-deps.sh installs it)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: run scripts/install-test-deps.sh (Debian package {package})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
