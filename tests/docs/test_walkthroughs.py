"""The copy-paste walkthroughs of the README and the docs pages, run exactly as written.

Each page's ``sh`` blocks between ``<!-- walkthrough -->`` and ``<!-- /walkthrough -->`` run in
order in one bash (``set -euo pipefail``), from a directory where ``.venv`` is the project's
virtualenv and ``.tessera`` the home of a live server. The only edit: the port 8443 becomes the
test server's port.

Pages share a server when they can: a server costs two CPU seconds to start, a page's blocks
need a fresh working directory but not a fresh server. Each page must make every merchant,
organisation and user it names (checked below, so that no page works only after another one);
pages that name the same ones (a merchant id, a VAT number, a username) get servers of their
own.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
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


def run_walkthrough(script: str, server: LiveServer, work: Path, *, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a page's walkthrough as a newcomer would, in ``work`` (made here): the repository's
    ``.venv`` and the server's home as ``.tessera`` beside it, the server's port for the page's
    8443, no ``TESSERA_*`` of the test's environment; bash stops at the first failing command."""
    work.mkdir()
    (work / ".venv").symlink_to(REPO / ".venv")
    (work / ".tessera").symlink_to(server.home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script.replace("8443", str(server.port))],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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


#: What a page's commands name and the server keeps, made (``made``) or only used (``named``).
NAMED = {
    "merchant": re.compile(r"--merchant-id (\d+)"),
    "vat": re.compile(r"--vat (\S+)"),
    "org": re.compile(r"--org(?: |=)(\S+)"),
    "user": re.compile(r"--(?:username|email) (\S+)"),
}
MADE = {
    "merchant": re.compile(r"merchants create --merchant-id (\d+)"),
    "org": re.compile(r"orgs create [^\n]*--id (\S+)"),
}


def names(script: str) -> set[tuple[str, str]]:
    """Everything the page names that another page on the same server could name too."""
    return {(kind, value.strip("\"'")) for kind, rx in NAMED.items() for value in rx.findall(script)}


def check_self_contained(page: str, script: str) -> None:
    """The page makes every merchant and organisation it uses: it runs on a fresh server too."""
    named = names(script)
    for kind, rx in MADE.items():
        used = {value for k, value in named if k == kind}
        made = {value.strip("\"'") for value in rx.findall(script)}
        assert used <= made, f"{page} uses {kind} {sorted(used - made)} without making it"


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[list[tuple[LiveServer, set[tuple[str, str]]]]]:
    """The module's servers, each with what the pages run on it named; started as pages need them."""
    started: list[tuple[LiveServer, set[tuple[str, str]]]] = []
    try:
        yield started
    finally:
        for server, _ in started:
            server.stop()


def server_for(servers: list, script: str, tmp_path_factory) -> LiveServer:
    """A started server on which no page named what this one names, or a new one."""
    named = names(script)
    for server, taken in servers:
        if not named & taken:
            taken |= named
            return server
    server = LiveServer(tmp_path_factory.mktemp("walkthrough-server")).start()
    servers.append((server, set(named)))
    return server


@pytest.mark.parametrize("page", PAGES)
def test_walkthrough_runs(page, tmp_path, servers, tmp_path_factory):
    path = REPO / page
    if not path.exists():
        pytest.fail(f"{page} is missing")
    script = walkthrough(path)
    check_self_contained(page, script)
    server = server_for(servers, script, tmp_path_factory)
    proc = run_walkthrough(script, server, tmp_path / "work")
    assert proc.returncode == 0, (
        f"{page} walkthrough failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}\n{server.log_tail()}"
    )
