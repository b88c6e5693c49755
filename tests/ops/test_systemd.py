"""deploy/systemd/tessera.service, checked by systemd itself.

``systemd-analyze verify`` parses the unit as systemd would load it and checks that the
ExecStart binary exists; it reports a misspelt directive or a bad value as a warning (exit 0),
so the check is: exit 0 and nothing printed. The repository's unit is verified with only its
ExecStart path rewritten to this checkout's ``tessera`` (``render_unit``: a rewrite that finds
nothing fails), and broken copies of it must fail the same check."""

from __future__ import annotations

import configparser
import re
import subprocess
from pathlib import Path

import pytest

from tessera.config import Settings
from tests.ops.helpers import require_tool
from tests.support.live import REPO

pytestmark = pytest.mark.slow  # runs systemd-analyze

UNIT = REPO / "deploy" / "systemd" / "tessera.service"
SHIPPED_BIN = "/opt/tessera/.venv/bin/tessera"
LOCAL_BIN = REPO / ".venv" / "bin" / "tessera"


def render_unit(text: str) -> str:
    assert f"ExecStart={SHIPPED_BIN} serve" in text, "the unit's ExecStart moved: update the test"
    return text.replace(SHIPPED_BIN, str(LOCAL_BIN))


def verify(tmp_path: Path, text: str, name: str = "tessera.service") -> str:
    """What ``systemd-analyze verify`` has to say about the unit ``text`` ('' when all is well)."""
    tool = require_tool("systemd-analyze", "systemd")
    path = tmp_path / name
    path.write_text(text)
    proc = subprocess.run([tool, "verify", str(path)], capture_output=True, text=True, timeout=60)
    problems = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 and not problems:
        problems = f"exit {proc.returncode}"
    return problems


def directives(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def test_the_shipped_unit_verifies_cleanly(tmp_path):
    assert LOCAL_BIN.exists()
    assert verify(tmp_path, render_unit(UNIT.read_text())) == ""


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("ProtectSystem=strict", "ProtectSystem=stirct"), "protect system"),
        (lambda t: t.replace("Restart=on-failure", "Restrat=on-failure"), "Unknown key"),
        (lambda t: t.replace("LimitNOFILE=65536", "LimitNOFILE=lots"), "resource value"),
        (lambda t: t.replace(str(LOCAL_BIN), "/nonexistent/bin/tessera"), "not executable"),
        (lambda t: t.replace("[Service]", "[Servcie]"), "Servcie"),
    ],
    ids=["bad-value", "misspelt-key", "bad-limit", "missing-binary", "bad-section"],
)
def test_a_broken_unit_fails_the_check(tmp_path, edit, expected):
    broken = edit(render_unit(UNIT.read_text()))
    assert broken != render_unit(UNIT.read_text())
    problems = verify(tmp_path, broken)
    assert expected.lower() in problems.lower(), problems


def test_the_unit_keeps_the_promised_settings():
    service = directives(UNIT.read_text())["Service"]
    for key, value in {
        "User": "tessera",
        "Group": "tessera",
        "StateDirectory": "tessera",
        "Environment": "PYTHONDONTWRITEBYTECODE=1",  # configparser keeps the last of repeated keys
        "EnvironmentFile": "/etc/tessera/tessera.env",
        "Restart": "on-failure",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "ReadWritePaths": "/var/lib/tessera",
        "CapabilityBoundingSet": "",  # port 8443: no capability
        "AmbientCapabilities": "",
    }.items():
        assert service.get(key) == value, (key, service.get(key))
    assert "Environment=TESSERA_HOME=%S/tessera" in UNIT.read_text()
    assert int(service["LimitNOFILE"]) >= 65536
    # systemd's SIGKILL comes only after uvicorn's own graceful drain has had its time.
    from tessera.server import uvicorn_kwargs

    drain = uvicorn_kwargs(Settings.load(REPO / "nonexistent-home", mtls_mode="proxy"))["timeout_graceful_shutdown"]
    assert int(re.fullmatch(r"(\d+)s?", service["TimeoutStopSec"]).group(1)) > drain


def test_the_unit_exposure_score(tmp_path, capsys):
    """``systemd-analyze security --offline``: the unit's exposure (0 best, 10 worst) stays low."""
    tool = require_tool("systemd-analyze", "systemd")
    path = tmp_path / "tessera.service"
    path.write_text(render_unit(UNIT.read_text()))
    proc = subprocess.run(
        [tool, "security", "--offline=true", "--no-pager", str(path)], capture_output=True, text=True, timeout=60
    )
    found = re.search(r"Overall exposure level for tessera\.service: (\d+\.\d+)", proc.stdout)
    assert found, proc.stdout[-2000:] + proc.stderr
    with capsys.disabled():
        print(f"\n  systemd-analyze security: exposure {found.group(1)} (0 = best, 10 = worst)")
    assert float(found.group(1)) <= 2.0
