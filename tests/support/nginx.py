"""A real nginx (Debian's package) in front of tessera instances, run from the repository's
own ``deploy/nginx/tessera.conf``.

The repository's file is used as it is, with only its ports and paths substituted
(``render_site``; a substitution that finds nothing fails, so the test cannot drift from
the file). It is included into a minimal main configuration like Debian's
``/etc/nginx/nginx.conf`` (``http { include conf.d/*.conf; }``), with the pid file, logs
and temporary directories in a throwaway prefix. The access log records which upstream
served each request (``upstreams()``), so a test can tell that both instances did.

nginx runs in the foreground (``-g 'daemon off;'``) with ``PR_SET_PDEATHSIG``, and is
stopped (SIGQUIT, then SIGTERM/SIGKILL) at the end.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.live import REPO, free_port
from tests.support.redis_server import die_with_parent, require_binary

SITE_CONF = REPO / "deploy" / "nginx" / "tessera.conf"

MAIN_CONF = """\
# the test harness's stand-in for /etc/nginx/nginx.conf
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    log_format upstreams '$remote_addr "$request" $status upstream=$upstream_addr verify=$ssl_client_verify';
    access_log {prefix}/access.log upstreams;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/conf.d/*.conf;
}}
"""


def render_site(text: str, replacements: dict[str, str]) -> str:
    """``text`` with each literal key replaced; every key must occur."""
    for old, new in replacements.items():
        if old not in text:
            raise AssertionError(f"deploy/nginx/tessera.conf no longer contains {old!r}: update the test")
        text = text.replace(old, new)
    return text


def find_nginx() -> str:
    return require_binary("nginx", "/usr/sbin/nginx")


class Nginx:
    def __init__(
        self, *, port: int, upstreams: list[int], home: Path, site_conf: Path = SITE_CONF, internal_port: int = 0
    ):
        self.binary = find_nginx()
        self.port = port
        self.internal_port = internal_port or free_port()  # the listener of /metrics and /admin/v1
        self.upstream_ports = upstreams
        # Not under pytest's 0700 tmp dirs: nginx's workers (www-data/nobody when run as root)
        # must reach the temporary directories.
        self.prefix = Path(tempfile.mkdtemp(prefix="tessera-nginx-"))
        os.chmod(self.prefix, 0o755)
        (self.prefix / "conf.d").mkdir()
        (self.prefix / "tmp").mkdir()
        assert len(upstreams) == 2, "deploy/nginx/tessera.conf names two instances"
        site = render_site(
            site_conf.read_text(),
            {
                "127.0.0.1:8001": f"127.0.0.1:{upstreams[0]}",
                "127.0.0.1:8002": f"127.0.0.1:{upstreams[1]}",
                "listen 443 ssl;": f"listen 127.0.0.1:{port} ssl;",
                "listen 127.0.0.1:8444 ssl;": f"listen 127.0.0.1:{self.internal_port} ssl;",
                "/var/lib/tessera/": f"{home.resolve()}/",
            },
        )
        (self.prefix / "conf.d" / "tessera.conf").write_text(site)
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(MAIN_CONF.format(prefix=self.prefix))
        self.proc: subprocess.Popen | None = None

    def _cmd(self, *extra: str) -> list[str]:
        return [self.binary, "-p", str(self.prefix), "-c", str(self.conf), "-e", str(self.prefix / "error.log"), *extra]

    def check(self) -> None:
        """``nginx -t``: the rendered configuration is valid."""
        proc = subprocess.run(self._cmd("-t"), capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise AssertionError(f"nginx -t failed:\n{proc.stderr}")

    def start(self, timeout: float = 20) -> Nginx:
        self.check()
        with open(self.prefix / "stderr.log", "wb") as stderr:
            self.proc = subprocess.Popen(
                self._cmd("-g", "daemon off;"),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited early:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not start:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        shutil.rmtree(self.prefix, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        out = []
        for name in ("error.log", "stderr.log"):
            try:
                out += (self.prefix / name).read_text(errors="replace").splitlines()[-lines:]
            except FileNotFoundError:
                pass
        return "\n".join(out)

    def access_log(self) -> list[str]:
        try:
            return (self.prefix / "access.log").read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def upstreams(self, since: int = 0, path: str | None = None) -> list[str]:
        """The upstream address of each access-log line from line ``since`` on (for ``path``)."""
        found = []
        for line in self.access_log()[since:]:
            if path is not None and f" {path} " not in line and f" {path}?" not in line:
                continue
            if "upstream=" in line:
                found.append(line.split("upstream=", 1)[1].split()[0])
        return found
