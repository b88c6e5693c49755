"""``tessera --version``: the installed distribution's version, exit 0."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest

from tests.ops.helpers import clean_env

pytestmark = pytest.mark.slow  # runs the tessera command


def test_version_prints_the_package_metadata_version():
    proc = subprocess.run(
        [sys.executable, "-m", "tessera.cli", "--version"], capture_output=True, text=True, env=clean_env(), timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"tessera {version('tessera-auth')}\n"
