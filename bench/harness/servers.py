"""The servers under load: tessera (``tests.support.live.LiveServer``, its request-rate
limits lifted far above the load), the client-side nginx that originates mutual TLS (wrk
cannot present a certificate), and the peers copied from ../shared/peers."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.harness.fixtures import Fixture, populate
from bench.harness.paths import PEERS_SRC, PEERS_WORK
from bench.harness.procs import log

#: The load's one client hammers one endpoint from one address: the request-rate limits are
#: lifted far above the load (so the limiter still runs, and its cost is measured) instead of
#: measuring 429s. The brute-force failure limits stay as they are.
UNLIMITED = {
    "TESSERA_RATE_LIMIT_PER_CREDENTIAL": "1000000",
    "TESSERA_RATE_LIMIT_CREDENTIAL_BURST": "1000000",
    "TESSERA_RATE_LIMIT_PER_ADDRESS": "1000000",
    "TESSERA_RATE_LIMIT_ADDRESS_BURST": "1000000",
    "TESSERA_B2BINPAY_LOGIN_PER_MINUTE": "0",
}


@contextlib.contextmanager
def tessera(
    work: Path,
    name: str,
    *,
    log_level: str = "",
    mode: str = "proxy",
    workers: int = 1,
    clients: int = 10,
    database_url: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[Any, Fixture]]:
    """A tessera home under ``work/name`` with its fixture, served until the block ends."""
    from tests.support.live import LiveServer

    e = {"TESSERA_WORKERS": str(workers), **UNLIMITED, **(env or {})}
    if log_level:
        e["TESSERA_LOG_LEVEL"] = log_level
    if mode == "proxy":
        e["TESSERA_MTLS_MODE"] = "proxy"
    workdir = work / name
    workdir.mkdir(parents=True)
    srv = LiveServer(workdir=workdir, database_url=database_url, env=e)
    try:
        srv.init()
        fixture = populate(srv, clients)
        srv.start(timeout=90)
        log(
            f"   tessera {name}: pid {srv.proc.pid}, {srv.url}, {workers} worker(s), {clients} clients, "
            f"{'PostgreSQL' if database_url else 'SQLite'}, mTLS {mode}"
        )
        yield srv, fixture
    finally:
        srv.stop()


def nginx_mtls_conf(d: Path, *, listen: int, upstream: int, fx: Fixture, ca: Path) -> Path:
    """nginx.conf for wrk -> nginx (plain HTTP, keep-alive) -> tessera (mutual TLS, keep-alive,
    sessions reused), under ``d``."""
    for sub in ("tmp", "logs"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    user = "user root root;" if os.geteuid() == 0 else ""
    conf = d / "nginx.conf"
    conf.write_text(f"""# wrk -> nginx (plain HTTP, keep-alive) -> tessera (mutual TLS, keep-alive, sessions reused)
{user}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  keepalive_requests 1000000;
  upstream tessera {{
    server 127.0.0.1:{upstream};
    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
  }}
  server {{
    listen 127.0.0.1:{listen};
    location / {{
      proxy_pass https://tessera;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host localhost:{upstream};
      proxy_ssl_certificate {fx.cert_path};
      proxy_ssl_certificate_key {fx.key_path};
      proxy_ssl_trusted_certificate {ca};
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;
      proxy_ssl_protocols TLSv1.2 TLSv1.3;
    }}
  }}
}}
""")
    return conf


def prepare_peers() -> None:
    """Copy ../shared/peers (read-only) to bench/peers-work and install its dependencies there."""
    log(f"== peers: {PEERS_SRC} -> {PEERS_WORK}")
    PEERS_WORK.mkdir(parents=True, exist_ok=True)
    for item in PEERS_SRC.iterdir():
        if item.name in ("node_modules", ".venv", "results"):
            continue
        dst = PEERS_WORK / item.name
        if item.is_dir():
            shutil.copytree(item, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("node_modules", ".venv"))
        else:
            shutil.copyfile(item, dst)
    for p in PEERS_WORK.rglob("*"):
        with contextlib.suppress(OSError):
            p.chmod(p.stat().st_mode | 0o200)
    node = PEERS_WORK / "node-oidc"
    stamp = node / "node_modules" / ".bench-lock"
    lock = (node / "package-lock.json").read_bytes() if (node / "package-lock.json").exists() else b""
    if not stamp.exists() or stamp.read_bytes() != lock:
        log("   npm ci (node-oidc-provider)")
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"] if lock else ["npm", "install", "--no-audit", "--no-fund"],
            cwd=node,
            check=True,
            timeout=600,
        )
        stamp.write_bytes(lock)
    venv = PEERS_WORK / ".venv"
    req = (PEERS_WORK / "requirements.txt").read_bytes()
    vstamp = venv / ".bench-requirements"
    if not vstamp.exists() or vstamp.read_bytes() != req:
        log("   python venv (Authlib reference)")
        subprocess.run([shutil.which("python3") or sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "-r", str(PEERS_WORK / "requirements.txt")],
            check=True,
            timeout=900,
        )
        vstamp.write_bytes(req)
