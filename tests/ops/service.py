"""The service manager the operations walkthroughs talk to: ``systemctl start|stop|restart|
is-active tessera`` in the docs' shell blocks, on a test machine without systemd as PID 1.

It does what systemd does with deploy/systemd/tessera.service, for real: reads the
``EnvironmentFile`` (``KEY=VALUE`` lines, ``#`` comments), starts ``tessera serve`` with that
environment and ``TESSERA_HOME``, waits until it listens (or reports its failure, exit 1, as
``systemctl start`` does when the service dies at start-up), and stops it with SIGTERM (then
SIGKILL after ``TimeoutStopSec``). The harness installs it as ``systemctl`` first on the PATH
of the walkthrough's bash (``install_systemctl``).

Usage: ``python -m tests.ops.service STATE_DIR {start,stop,restart,is-active} tessera``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

TIMEOUT_STOP = 20.0


def read_environment_file(path: Path) -> dict[str, str]:
    env = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[key.strip()] = value
    return env


class Service:
    def __init__(self, state: Path):
        self.state = state
        config = read_environment_file(state / "service.conf")
        self.home = Path(config["home"])
        self.environment_file = Path(config["environment_file"])
        self.tessera = config["tessera"]
        self.pid_file = state / "tessera.pid"
        self.log = state / "tessera.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def port(self) -> int:
        env = read_environment_file(self.environment_file)
        return int(env.get("TESSERA_PORT", "8443"))

    def start(self) -> int:
        if self.pid() is not None:
            return 0
        env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
        env.update(read_environment_file(self.environment_file))
        env["TESSERA_HOME"] = str(self.home)
        mark = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            proc = subprocess.Popen(
                [self.tessera, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                with open(self.log, "rb") as f:
                    f.seek(mark)
                    sys.stderr.write("tessera.service failed at start-up:\n" + f.read().decode(errors="replace"))
                return 1
            try:
                with socket.create_connection(("127.0.0.1", self.port()), timeout=0.5):
                    return 0
            except OSError:
                time.sleep(0.1)
        sys.stderr.write("tessera.service did not start listening\n")
        return 1

    def stop(self) -> int:
        pid = self.pid()
        if pid is None:
            return 0
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + TIMEOUT_STOP
        while time.monotonic() < deadline:
            try:
                finished, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not our child (started by another systemctl call)
                finished = 0 if _alive(pid) else pid
            if finished:
                break
            time.sleep(0.05)
        else:
            os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): look at its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def install_systemctl(bin_dir: Path, state: Path, *, home: Path, environment_file: Path, tessera: str) -> None:
    """Put ``systemctl`` (this module) first on a PATH that includes ``bin_dir``."""
    state.mkdir(parents=True, exist_ok=True)
    (state / "service.conf").write_text(f"home={home}\nenvironment_file={environment_file}\ntessera={tessera}\n")
    repo = Path(__file__).resolve().parents[2]
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "systemctl"
    script.write_text(f'#!/bin/sh\ncd "{repo}" && exec "{sys.executable}" -m tests.ops.service "{state}" "$@"\n')
    script.chmod(0o755)


def main(argv: list[str]) -> int:
    state, verb, *units = argv
    if units not in (["tessera"], ["tessera.service"]):
        sys.stderr.write(f"only the tessera service is managed here, not {units}\n")
        return 5
    service = Service(Path(state))
    if verb == "start":
        return service.start()
    if verb == "stop":
        return service.stop()
    if verb == "restart":
        service.stop()
        return service.start()
    if verb == "is-active":
        active = service.pid() is not None
        print("active" if active else "inactive")
        return 0 if active else 3
    sys.stderr.write(f"unsupported: systemctl {verb}\n")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
