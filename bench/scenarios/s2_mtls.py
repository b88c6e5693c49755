"""s2: real mutual TLS (embedded mode, uvicorn terminates TLS): the Nexi token through a
client-side nginx that originates the mTLS (wrk cannot present a certificate), and new vs
resumed TLS connections per second with ``openssl s_time``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

from bench import procacct
from bench.harness.fixtures import Fixture, check_token
from bench.harness.paths import RESULTS
from bench.harness.procs import free_port, log, wait_port
from bench.harness.servers import nginx_mtls_conf
from bench.scenarios.spec import Scenario

if TYPE_CHECKING:
    from bench.harness.session import Harness

GROUP = "s2"
NEXI_MTLS = Scenario(
    "s2.nexi_mtls",
    "Nexi token over embedded mTLS (via a client-side nginx)",
    "token_basic.lua",
    "POST /softpos/appenrollment/token",
)
TLS_NEW = Scenario("s2.tls_new", "new TLS connections/s, full mTLS handshake", None, "TLS + GET /healthz")
TLS_RESUME = Scenario("s2.tls_resume", "TLS connections/s, session resumed", None, "TLS + GET /healthz")
SCENARIOS = (NEXI_MTLS, TLS_NEW, TLS_RESUME)
NGINX_NOTE = (
    "wrk cannot present a client certificate, so nginx on the client side originates the mutual TLS: "
    "wrk -> nginx over plain HTTP, nginx -> tessera over mTLS with keep-alive upstream connections. "
    "nginx shares the machine's cores; its CPU is reported apart (proxy_cpu_us_per_req) and is not "
    "counted as the server's."
)


def run(h: Harness) -> None:
    if not h.want(*(s.id for s in SCENARIOS)):
        return
    log("== s2: tessera, embedded mTLS (uvicorn terminates TLS), 1 worker, SQLite")
    config = {"workers": 1, "db": "sqlite", "clients": 10, "mtls": "embedded", "tls": True}
    with h.tessera("mtls", mode="embedded") as (srv, fx):
        server = [srv.proc.pid]
        if h.want(NEXI_MTLS.id):
            nginx_mtls(h, srv, fx, config)
        for scenario, flag in ((TLS_NEW, "-new"), (TLS_RESUME, "-reuse")):
            if h.want(scenario.id):
                s_time(h, scenario, flag, srv, fx, server)


def nginx_mtls(h: Harness, srv: Any, fx: Fixture, config: dict[str, Any]) -> None:
    if not shutil.which("nginx"):
        h.unavailable(
            NEXI_MTLS.id, "Nexi token over mTLS", "nginx is not installed (bench/run.sh installs nginx-light)"
        )
        return
    d = h.work / "nginx"
    port = free_port()
    conf = nginx_mtls_conf(d, listen=port, upstream=srv.port, fx=fx, ca=srv.ca)
    proc = h.procs.start("nginx", ["nginx", "-p", str(d), "-c", str(conf)], log_path=d / "logs" / "stdout.log")
    try:
        wait_port(port, proc, timeout=20)
        url = f"http://127.0.0.1:{port}/softpos/appenrollment/token"
        status, body = check_token(url, fx, cert=False)
        if status != 200:
            raise RuntimeError(f"Nexi token through nginx answered {status}: {body}")
        h.measure(
            NEXI_MTLS.id,
            NEXI_MTLS.title,
            url,
            NEXI_MTLS.lua or "",
            [fx.client_id, fx.secret],
            target="tessera",
            server=[srv.proc.pid],
            port=srv.port,
            config=config,
            extra_groups={"proxy": [proc.pid]},
            endpoint=NEXI_MTLS.endpoint,
            note=NGINX_NOTE,
        )
    finally:
        h.procs.stop(proc)


def s_time(h: Harness, scenario: Scenario, flag: str, srv: Any, fx: Fixture, server: list[int]) -> None:
    sid, title = scenario.id, scenario.title
    secs = h.args.tls_time or h.args.duration
    cmd = [
        "openssl",
        "s_time",
        "-connect",
        f"127.0.0.1:{srv.port}",
        "-CAfile",
        str(srv.ca),
        "-cert",
        str(fx.cert_path),
        "-key",
        str(fx.key_path),
        flag,
        "-time",
        str(secs),
        "-www",
        "/healthz",
    ]
    log(f"-- {sid}: {title}")
    roots = {"server": server, "self": [os.getpid()]}
    quiet = procacct.quiet_wait(roots, max_wait=h.args.max_quiet_wait, log=log)
    s0 = procacct.snapshot()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 60, start_new_session=True)
    s1 = procacct.snapshot()
    cpu = procacct.diff(s0, s1, roots)
    (RESULTS / f"{sid}.txt").write_text(" ".join(cmd) + "\n" + p.stdout + p.stderr)
    m = re.search(r"(\d+) connections in (\d+) real seconds", p.stdout)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"openssl s_time failed ({p.returncode}): {(p.stdout + p.stderr)[-500:]}")
    n = int(m.group(1))
    real = cpu.wall  # s_time's own "real seconds" is rounded to whole seconds
    # s_time prints one character per connection: 'r' when the session was resumed, '*' when not
    marks = "".join(line for line in p.stdout.splitlines() if line and set(line) <= {"r", "*"})
    resumed = marks.count("r")
    r: dict[str, Any] = {
        "id": sid,
        "group": "s2",
        "title": title,
        "target": "tessera",
        "available": True,
        "endpoint": scenario.endpoint,
        "config": {"workers": 1, "mtls": "embedded", "tls": True},
        "tool": "openssl s_time " + flag,
        "connections": n,
        "seconds": round(real, 2),
        "conns_per_s": round(n / real, 1) if real > 0 else 0,
        "server_cpu_s": round(cpu.groups["server"], 3),
        "cpu_us_per_conn": round(cpu.groups["server"] * 1e6 / max(n, 1), 1),
        "non2xx": 0,
        "cpu": cpu.as_dict(),
        "quiet_wait": quiet,
        "state": "DIRTY" if cpu.residual_cores > 0.1 else "CLEAN",
        "note": "one connection at a time (s_time is sequential), each making a GET /healthz",
    }
    if flag == "-reuse":
        r["resumed"] = resumed
    log(f"   {r['conns_per_s']} conn/s, server cpu {r['cpu_us_per_conn']} us/conn {r['state']}")
    h.results.append(r)
