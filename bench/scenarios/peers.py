"""The peers (../shared/peers, when present): node-oidc-provider, the reference of every
ratio and always measured with the peers, and the Authlib reference with 1 and 2 workers."""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING

from bench.harness.paths import PEERS_WORK
from bench.harness.procs import free_port, wait_port
from bench.harness.servers import prepare_peers
from bench.scenarios.spec import Scenario

if TYPE_CHECKING:
    from bench.harness.session import Harness

GROUP = "peers"
NODE = Scenario("peer.node_jwt", "node-oidc-provider, ES256 JWT access token", "token_basic.lua", "POST /token")
AUTHLIB_W1 = Scenario(
    "peer.authlib_w1", "Authlib reference (Flask, gunicorn gthread, 1 worker(s))", "token_basic.lua", "POST /token"
)
AUTHLIB_W2 = Scenario(
    "peer.authlib_w2", "Authlib reference (Flask, gunicorn gthread, 2 worker(s))", "token_basic.lua", "POST /token"
)
SCENARIOS = (NODE, AUTHLIB_W1, AUTHLIB_W2)
PEER_CLIENT, PEER_SECRET = "bench", "a-long-random-secret-value-0123456789"


def run(h: Harness) -> None:
    prepare_peers()
    want_all = h.want(*(s.id for s in SCENARIOS))
    # node-oidc-provider is the reference of every ratio: always measured with the peers
    todo = [NODE] + [s for s in (AUTHLIB_W1, AUTHLIB_W2) if want_all and h.want(s.id)]
    for scenario in todo:
        sid = scenario.id
        port = free_port()
        logs = h.work / "peers"
        if scenario is NODE:
            env = {**os.environ, "NODE_ENV": "production", "TOKEN_FORMAT": "jwt", "PORT": str(port)}
            proc = h.procs.start(
                sid, ["node", "server.mjs"], log_path=logs / f"{sid}.log", cwd=PEERS_WORK / "node-oidc", env=env
            )
            target, cfg = "node-oidc-provider", {"workers": 1}
        else:
            w = sid[-1]
            proc = h.procs.start(
                sid,
                [
                    str(PEERS_WORK / ".venv" / "bin" / "gunicorn"),
                    "--chdir",
                    "authlib_ref",
                    "-k",
                    "gthread",
                    "--workers",
                    w,
                    "--threads",
                    "1",
                    "--preload",
                    "--no-control-socket",
                    "-b",
                    f"127.0.0.1:{port}",
                    "app:app",
                ],
                log_path=logs / f"{sid}.log",
                cwd=PEERS_WORK,
            )
            target, cfg = "authlib", {"workers": int(w)}
        try:
            wait_port(port, proc)
            url = f"http://127.0.0.1:{port}/token"
            chk = subprocess.run(
                [
                    str(PEERS_WORK / ".venv" / "bin" / "python"),
                    str(PEERS_WORK / "check_token.py"),
                    url,
                    f"http://127.0.0.1:{port}/jwks",
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if chk.returncode != 0:
                raise RuntimeError(f"{sid}: check_token.py failed: {(chk.stdout + chk.stderr)[-500:]}")
            h.measure(
                sid,
                scenario.title,
                url,
                scenario.lua or "",
                [PEER_CLIENT, PEER_SECRET],
                target=target,
                server=[proc.pid],
                port=port,
                config=cfg,
                endpoint=scenario.endpoint,
            )
        finally:
            h.procs.stop(proc)
