"""A throwaway ``redis-server`` for the tests: loopback, a free port, a temporary directory,
no persistence (``--save ''``), stopped at the end.

``scripts/install-test-deps.sh`` installs Debian's ``redis-server`` (and stops the
service the package starts). Without the binary the tests that need it are skipped,
except under ``CI=true``, where they fail with the install hint.

The server gets ``PR_SET_PDEATHSIG``: if the test process dies without cleaning up
(SIGKILL), the kernel sends the server SIGTERM, so no Redis is left behind.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

INSTALL_HINT = "run scripts/install-test-deps.sh (Debian: apt-get install redis-server nginx)"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def require_binary(name: str, *candidates: str) -> str:
    """The path of ``name``; else skip the test, or fail it under CI=true."""
    found = shutil.which(name) or next((c for c in candidates if os.access(c, os.X_OK)), None)
    if found:
        return found
    msg = f"{name} is not installed"
    if in_ci():
        pytest.fail(f"{msg}; CI must {INSTALL_HINT}", pytrace=False)
    pytest.skip(f"{msg}; {INSTALL_HINT} to run these tests")


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """preexec_fn: the child gets SIGTERM when the process that started it dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, binary: str | None = None, *, port: int | None = None):
        self.binary = binary or require_binary("redis-server", "/usr/bin/redis-server", "/usr/sbin/redis-server")
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="tessera-redis-"))
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20) -> RedisServer:
        log = self.dir / "redis.log"
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--daemonize",
                "no",
                "--logfile",
                str(log),
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited early:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.dir / "redis.log").read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, decode_responses=True)


@pytest.fixture(scope="module")
def redis_server():
    """One throwaway Redis per test module."""
    server = RedisServer()
    try:
        server.start()
    except RuntimeError as e:
        pytest.fail(f"could not start the test Redis: {e}", pytrace=False)
    yield server
    server.stop()
