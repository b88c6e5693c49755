"""Compare commits on one load, side by side: what a change bought.

    .venv/bin/python bench/ab.py 11169fa=before HEAD=after                 # s1 native token, 1 worker
    .venv/bin/python bench/ab.py --rounds 5 --duration 8 A=x B=y C=z --json out.json
    .venv/bin/python bench/ab.py --endpoints axept,mobilepay_vat,b2b_refresh 7fb378b=before HEAD=after

Each COMMIT (anything ``git rev-parse`` takes; ``=LABEL`` names it) gets its own
worktree in a temporary directory, and its own tessera started by *that commit's*
``bench/run.py`` harness (proxy mode, SQLite, ``--workers``). All servers run at once,
idle while another is measured; the rounds alternate between them (warm-up, then
``wrk -t2 -c32`` on ``POST /oauth2/token`` with client_secret_basic, or on each endpoint of
``--endpoints``: ``ENDPOINTS``), so slow drift of a shared, noisy machine hits every commit
alike. Reported per commit (and endpoint): the median over the rounds of requests per second
and of server CPU microseconds per request (its process tree, from /proc). Everything runs
on 127.0.0.1 and is stopped and removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import procacct  # noqa: E402  (bench/procacct.py)

#: Started in each worktree: that commit's harness brings up its own tessera and waits.
SERVE = """
import argparse, json, pathlib, signal, sys, time
sys.path.insert(0, {wt!r}); sys.path.insert(0, {wt!r} + "/bench")
import run as harness
h = harness.Harness(argparse.Namespace(scenarios="all", no_peers=True, tessera_log_level=""))
h.work = pathlib.Path({work!r})
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
with h.tessera("ab", workers={workers}) as (srv, fx):
    pathlib.Path({ready!r}).write_text(json.dumps({{"url": srv.url, "pid": srv.proc.pid,
                                                   "client_id": fx.client_id, "secret": fx.secret,
                                                   "axept": list(fx.axept), "vat": fx.vat,
                                                   "cert_header": fx.cert_header}}))
    while True:
        time.sleep(1)
"""


#: What ``--endpoints`` can load: name -> (path, Lua script, its arguments from the fixture).
ENDPOINTS = {
    "native": ("/oauth2/token", "token_basic.lua", lambda fx: [fx["client_id"], fx["secret"]]),
    "nexi": (
        "/softpos/appenrollment/token",
        "token_basic.lua",
        lambda fx: [fx["client_id"], fx["secret"], fx["cert_header"]],
    ),
    "axept": ("/axept/v1/authenticate", "axept.lua", lambda fx: [str(v) for v in fx["axept"]]),
    "mobilepay": (
        "/integrator-authentication/connect/token",
        "mobilepay_vat.lua",
        lambda fx: [fx["client_id"], fx["secret"], ""],
    ),
    "mobilepay_vat": (
        "/integrator-authentication/connect/token",
        "mobilepay_vat.lua",
        lambda fx: [fx["client_id"], fx["secret"], fx["vat"]],
    ),
    "b2b_login": ("/b2binpay/token/", "b2b_login.lua", lambda fx: [fx["client_id"], fx["secret"]]),
    "b2b_refresh": ("/b2binpay/token/", "b2b_refresh.lua", lambda fx: [fx["client_id"], fx["secret"]]),
}


def parse_wrk(text: str) -> tuple[int, float]:
    requests = int(text.split(" requests in", 1)[0].split()[-1])
    rps = float(text.split("Requests/sec:", 1)[1].split()[0])
    return requests, rps


def _resolve(commits: list[str]) -> list[tuple[str, str]]:
    """(sha, label) of each ``COMMIT[=LABEL]``; labels must differ."""
    specs = []
    for spec in commits:
        commit, _, label = spec.partition("=")
        sha = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--verify", commit + "^{commit}"], capture_output=True, text=True
        )
        if sha.returncode:
            raise SystemExit(f"not a commit: {commit!r}")
        specs.append((sha.stdout.strip(), label or commit))
    labels = [label for _, label in specs]
    if len(set(labels)) != len(labels):
        raise SystemExit("two commits with the same label: name them COMMIT=LABEL")
    return specs


def _start(
    tmp: Path,
    specs: list[tuple[str, str]],
    workers: int,
    servers: list[tuple[str, subprocess.Popen, Path]],
    trees: list[Path],
) -> None:
    """A worktree per commit, and in each that commit's harness serving tessera."""
    for i, (sha, label) in enumerate(specs):
        wt = tmp / f"tree{i}"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(wt), sha], check=True, capture_output=True
        )
        trees.append(wt)
        ready = tmp / f"ready{i}.json"
        code = SERVE.format(wt=str(wt), work=str(tmp / f"work{i}"), workers=workers, ready=str(ready))
        log = open(tmp / f"server{i}.log", "w")
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            env=dict(os.environ, PYTHONPATH=str(wt)),
            cwd=wt,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        servers.append((label, proc, ready))
    for label, proc, ready in servers:
        deadline = time.monotonic() + 180
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{label}: the server did not start (log in {tmp})")
            time.sleep(0.3)


def _measure(ready: Path, warmup: int, duration: int, endpoint: str = "native") -> dict[str, float]:
    """A warm-up (none if ``warmup`` is 0), then a measured wrk run against one commit's server."""
    fx = json.loads(ready.read_text())
    path, lua, args = ENDPOINTS[endpoint]
    url = fx["url"] + path
    base = ["wrk", "-t2", "-c32", "-s", str(BENCH / "lua" / lua)]
    if warmup > 0:
        subprocess.run(base + [f"-d{warmup}s", url, "--", *args(fx)], capture_output=True)
    before = procacct.snapshot()
    out = subprocess.run(base + [f"-d{duration}s", url, "--", *args(fx)], capture_output=True, text=True).stdout
    cpu = procacct.diff(before, procacct.snapshot(), {"server": [fx["pid"]]}).groups["server"]
    requests, rps = parse_wrk(out)
    return {"rps": rps, "cpu_us_per_req": cpu / requests * 1e6}


def _stop(servers: list[tuple[str, subprocess.Popen, Path]], trees: list[Path], tmp: Path) -> None:
    for _, proc, _ in servers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(Exception):
            proc.wait(20)
    for wt in trees:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(wt)], capture_output=True)
    shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("commits", nargs="+", metavar="COMMIT[=LABEL]")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=8, help="seconds per measured wrk run (default 8)")
    p.add_argument("--warmup", type=int, default=2, help="seconds of unrecorded wrk before each run (2; 0: none)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument(
        "--endpoints", default="native", help=f"comma-separated, of: {', '.join(ENDPOINTS)} (default native)"
    )
    p.add_argument("--json", help="write the rounds and medians here")
    args = p.parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: run bench/run.sh (or apt-get install wrk)")
    specs = _resolve(args.commits)
    endpoints = [e for e in args.endpoints.split(",") if e]
    unknown = [e for e in endpoints if e not in ENDPOINTS]
    if unknown or not endpoints:
        raise SystemExit(f"unknown endpoint(s) {unknown}: choose among {', '.join(ENDPOINTS)}")

    def key(label: str, endpoint: str) -> str:  # one endpoint: the label alone, as before
        return label if len(endpoints) == 1 else f"{label} {endpoint}"

    tmp = Path(tempfile.mkdtemp(prefix="tessera-ab-"))
    servers: list[tuple[str, subprocess.Popen, Path]] = []
    trees: list[Path] = []
    results: dict[str, list[dict[str, float]]] = {key(label, e): [] for e in endpoints for _, label in specs}
    try:
        _start(tmp, specs, args.workers, servers, trees)
        for r in range(args.rounds):
            for endpoint in endpoints:
                for label, _proc, ready in servers:
                    row = _measure(ready, args.warmup, args.duration, endpoint)
                    results[key(label, endpoint)].append(row)
                    print(
                        f"round {r + 1}  {key(label, endpoint):>30}: {row['rps']:8.0f} req/s  "
                        f"{row['cpu_us_per_req']:7.1f} µs/req",
                        flush=True,
                    )
    finally:
        _stop(servers, trees, tmp)
    medians = {
        label: {k: statistics.median(row[k] for row in rows) for k in ("rps", "cpu_us_per_req")}
        for label, rows in results.items()
    }
    print(f"medians of {args.rounds} round(s), {args.duration} s each, {args.workers} worker(s):")
    for label, m in medians.items():
        print(f"  {label:>30}: {m['rps']:8.0f} req/s  {m['cpu_us_per_req']:7.1f} µs/req")
    if args.json:
        Path(args.json).write_text(json.dumps({"rounds": results, "medians": medians}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
