"""The copy-paste walkthroughs of the README and the docs pages, run exactly as written.

Each page's ``sh`` blocks between ``<!-- walkthrough -->`` and ``<!-- /walkthrough -->`` run in
order in one bash (``set -euo pipefail``), from a directory where ``.venv`` is the project's
virtualenv and ``.tessera`` the home of a live server. The only edit: the port 8443 becomes the
test server's port.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.live import REPO, LiveServer

pytestmark = pytest.mark.slow

BLOCK = re.compile(r"```sh\n(.*?)```", re.S)


def walkthrough(path: Path) -> str:
    text = path.read_text()
    parts = re.findall(r"<!-- walkthrough -->(.*?)<!-- /walkthrough -->", text, re.S)
    assert parts, f"{path} has no walkthrough"
    return "\n".join(block for part in parts for block in BLOCK.findall(part))


PAGES = [
    p
    for p in [
        "README.md",
        "docs/profiles/nexi-softpos.md",
        "docs/profiles/axept.md",
        "docs/profiles/mobilepay.md",
        "docs/profiles/b2binpay.md",
        "docs/oauth.md",
    ]
]


@pytest.mark.parametrize("page", PAGES)
def test_walkthrough_runs(page, tmp_path):
    path = REPO / page
    if not path.exists():
        pytest.fail(f"{page} is missing")
    script = walkthrough(path)
    server = LiveServer(tmp_path / "server").start()
    try:
        work = tmp_path / "work"
        work.mkdir()
        (work / ".venv").symlink_to(REPO / ".venv")
        (work / ".tessera").symlink_to(server.home)
        script = script.replace("8443", str(server.port))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, (
            f"{page} walkthrough failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}\n{server.log_tail()}"
        )
    finally:
        server.stop()
