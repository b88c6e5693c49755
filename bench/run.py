"""``make bench``: load tessera and two peers with wrk on loopback, and report.

    .venv/bin/python bench/run.py                          # every scenario, 15 s each
    .venv/bin/python bench/run.py --scenarios s1,s3 --duration 3s --max-quiet-wait 0

Scenarios (``--scenarios`` takes group names or ids, comma-separated; default: all):

    peers  peer.node_jwt peer.authlib_w1 peer.authlib_w2   (when ../shared/peers exists)
    s1     s1.native s1.nexi_proxy                        client_credentials, ES256, plain HTTP
    s2     s2.nexi_mtls s2.tls_new s2.tls_resume          real mutual TLS (embedded mode)
    s3     s3.par s3.par_nokid                            PAR, nested-JWE assertion pool (with kid; without, random key)
    s4     s4.axept s4.mobilepay s4.mobilepay_vat
    s5     s5.b2b_login s5.b2b_sqlite s5.b2b_pg           login alone; refresh rotation
    s6     s6.native_10k s6.nexi_10k s6.native_w2 s6.nexi_w2   growth: clients, workers
    s7     s7.sdk                                         SDK token cache (in process)

The node-oidc-provider peer is always measured when the peers are present (every
figure is also given as a ratio against it), unless ``--no-peers``.

Method (the peers' bench.sh, in Python): for each load, a warm-up wrk run (unrecorded),
a wait until the machine is quiet, then ``wrk -tT -cC -dD --latency -s bench/lua/X.lua``;
the server's CPU (its whole process tree) from /proc before and after, the peak RSS of
each worker sampled during the run, and the CPU that nothing here accounts for
(``residual``): a run where it averaged over 0.1 core is DIRTY and is repeated.

Everything listens on 127.0.0.1 only. Every process started here is in its own process
group and is stopped at the end, also on an error or Ctrl-C.

This file is the command line; the harness is in ``bench/harness/`` (processes, wrk,
machine, servers, fixtures, session) and the scenarios in ``bench/scenarios/`` (one module per
group, each scenario declared as data).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.harness.paths import BENCH, LUA, RESULTS  # noqa: E402
from bench.harness.procs import log  # noqa: E402
from bench.harness.session import Harness  # noqa: E402
from bench.harness.wrk import parse_summary, seconds  # noqa: E402
from bench.scenarios import ALL_IDS, GROUPS  # noqa: E402

__all__ = ["ALL_IDS", "BENCH", "GROUPS", "LUA", "RESULTS", "Harness", "main", "parse_summary", "seconds"]


def results_path(out: str | None, *, no_report: bool) -> Path:
    """Where the results JSON goes: ``--out``, else ``latest.json`` (which the docs are rendered
    from), else, for a ``--no-report`` run, ``no-report.json``: a partial run never replaces the
    figures of the last full one."""
    if out is not None:
        return Path(out)
    return RESULTS / ("no-report.json" if no_report else "latest.json")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--scenarios", default="all", help="comma-separated groups or ids (default: all)")
    p.add_argument("--duration", type=seconds, default=15, help="recorded wrk run, e.g. 15s (default) or 3s")
    p.add_argument("--warmup", type=seconds, default=3, help="unrecorded warm-up run (default 3s)")
    p.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    p.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    p.add_argument("--timeout", default="5s", help="wrk --timeout (default 5s)")
    p.add_argument(
        "--max-quiet-wait",
        type=float,
        default=180,
        help="seconds to wait for a quiet machine before each run (0: do not wait)",
    )
    p.add_argument("--retries", type=int, default=2, help="extra runs when a run is DIRTY (default 2)")
    p.add_argument("--tls-time", type=seconds, default=0, help="openssl s_time duration (default: --duration)")
    p.add_argument("--growth-clients", type=int, default=10_000, help="registered clients in s6 (default 10000)")
    p.add_argument("--par-pool", type=int, default=0, help="assertions per PAR run (default: from the crypto bound)")
    p.add_argument("--sdk-rounds", type=int, default=20, help="single-flight rounds in s7 (default 20)")
    p.add_argument(
        "--tessera-log-level",
        default="",
        help="TESSERA_LOG_LEVEL of the servers (default: tessera's own, info, with its access log; "
        "'warning' turns the access log off, as the peers have none)",
    )
    p.add_argument("--no-peers", action="store_true", help="do not run the peers even if ../shared/peers exists")
    p.add_argument("--keep-work", action="store_true", help="keep bench/work (homes, logs, pools) afterwards")
    p.add_argument(
        "--out",
        default=None,
        help="results JSON (default bench/results/latest.json; with --no-report bench/results/no-report.json, "
        "so that a partial run never replaces the figures the docs were rendered from)",
    )
    p.add_argument("--no-report", action="store_true", help="do not write docs/benchmarks.md and the chart")
    args = p.parse_args(argv)
    args.out = str(results_path(args.out, no_report=args.no_report))
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: run bench/run.sh (or apt-get install wrk)")

    def on_term(signum: int, frame: object) -> None:  # SIGTERM/SIGHUP: clean up as for Ctrl-C
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    try:
        return Harness(args).run()
    except KeyboardInterrupt:
        log("== interrupted: every process started here has been stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
