"""What the results record of the run: the machine, the load settings, the versions of
everything measured, and the commit."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from bench.harness.paths import PEERS_WORK, REPO


def _cmd(args: list[str]) -> str:
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=20)
        return (p.stdout or p.stderr).strip().splitlines()[0] if (p.stdout or p.stderr).strip() else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def _ver(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return ""


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return ""


def versions(peers: bool) -> dict[str, str]:
    found = {
        "python": platform.python_version(),
        **{
            p: _ver(p)
            for p in (
                "tessera-auth",
                "uvicorn",
                "starlette",
                "httptools",
                "uvloop",
                "joserfc",
                "cryptography",
                "sqlalchemy",
                "psycopg",
            )
        },
        "wrk": " ".join(_cmd(["wrk", "-v"]).split()[1:2]),
        "nginx": _cmd(["nginx", "-v"]).rpartition("/")[2],
        "openssl": " ".join(_cmd(["openssl", "version"]).split()[1:2]),
        "node": _cmd(["node", "--version"]),
    }
    if peers:
        pkg = PEERS_WORK / "node-oidc" / "node_modules" / "oidc-provider" / "package.json"
        with contextlib.suppress(OSError, ValueError):
            found["oidc-provider"] = json.loads(pkg.read_text())["version"]
        py = PEERS_WORK / ".venv" / "bin" / "python"
        if py.exists():
            found["authlib"] = _cmd([str(py), "-c", "import importlib.metadata as m; print(m.version('authlib'))"])
            found["gunicorn"] = _cmd([str(py), "-c", "import importlib.metadata as m; print(m.version('gunicorn'))"])
    return found


def meta(args: argparse.Namespace, *, started: float, selected: list[str], peers: bool) -> dict[str, Any]:
    commit = _cmd(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = bool(_cmd(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"]))
    a = args
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "elapsed_s": round(time.time() - started, 1),
        "commit": commit + ("-dirty" if dirty else ""),
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "kernel": platform.release(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        },
        "load": {
            "threads": a.threads,
            "connections": a.connections,
            "duration_s": a.duration,
            "warmup_s": a.warmup,
            "max_quiet_wait_s": a.max_quiet_wait,
            "retries": a.retries,
            "timeout": a.timeout,
        },
        "smoke": a.duration < 15 or a.max_quiet_wait <= 0,
        "tessera_log_level": a.tessera_log_level or "info",
        "selected": selected,
        "peers": peers,
        "versions": versions(peers),
    }
