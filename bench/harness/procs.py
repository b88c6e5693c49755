"""Processes, ports and the log line: every process the harness starts is in its own
process group and is stopped at the end, also on an error or Ctrl-C. Loopback only."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any


def log(msg: str) -> None:
    print(msg, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[Any] | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f} s")


def established(port: int) -> int:
    """Established TCP connections whose local port is ``port`` (server side)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "01" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        n += 1
        except OSError:
            pass
    return n


class Processes:
    """Every process the harness starts: each in its own session (process group),
    stopped with SIGTERM then SIGKILL, in reverse order, whatever happens."""

    def __init__(self) -> None:
        self._procs: list[tuple[str, subprocess.Popen[Any]]] = []

    def start(self, name: str, args: list[str], *, log_path: Path, **kw: Any) -> subprocess.Popen[Any]:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as logf:
            proc = subprocess.Popen(
                args, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, **kw
            )
        self._procs.append((name, proc))
        return proc

    def adopt(self, name: str, proc: subprocess.Popen[Any]) -> None:
        """Track a process started elsewhere (wrk, with its output piped)."""
        self._procs.append((name, proc))

    def forget(self, proc: subprocess.Popen[Any]) -> None:
        """Stop tracking a process that has been reaped."""
        self._procs = [(n, p) for n, p in self._procs if p is not proc]

    def stop(self, proc: subprocess.Popen[Any], timeout: float = 15) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.forget(proc)

    def stop_all(self) -> None:
        for _, proc in reversed(list(self._procs)):
            with contextlib.suppress(Exception):
                self.stop(proc)
