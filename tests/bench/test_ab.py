"""bench/ab.py: two commits' servers side by side, measured in alternating rounds (slow: real
servers, wrk), and its worktrees and processes gone afterwards."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (scripts/install-test-deps.sh installs it)"
)
def test_ab_measures_two_commits_and_cleans_up(tmp_path):
    if subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.skip("not a git checkout")
    before = subprocess.run(["git", "-C", str(REPO), "worktree", "list"], capture_output=True, text=True).stdout
    out = tmp_path / "ab.json"
    p = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "ab.py"),
            "--rounds",
            "2",
            "--duration",
            "1",
            "--warmup",
            "0",  # none: this checks the harness, not a figure
            "HEAD=one",
            "HEAD=two",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    data = json.loads(out.read_text())
    assert set(data["medians"]) == {"one", "two"}
    for label, rows in data["rounds"].items():
        assert len(rows) == 2
        assert all(r["rps"] > 100 and 1 < r["cpu_us_per_req"] < 100_000 for r in rows), (label, rows)
    assert "round 2" in p.stdout and "medians of 2 round(s)" in p.stdout
    after = subprocess.run(["git", "-C", str(REPO), "worktree", "list"], capture_output=True, text=True).stdout
    assert after == before  # the worktrees are removed


def test_ab_refuses_what_is_not_a_commit():
    p = subprocess.run(
        [sys.executable, str(REPO / "bench" / "ab.py"), "no-such-commit-xyz"], capture_output=True, text=True
    )
    assert p.returncode != 0 and "not a commit" in (p.stdout + p.stderr)


def test_ab_refuses_two_commits_with_one_label():
    p = subprocess.run([sys.executable, str(REPO / "bench" / "ab.py"), "HEAD", "HEAD"], capture_output=True, text=True)
    assert p.returncode != 0 and "same label" in (p.stdout + p.stderr)
