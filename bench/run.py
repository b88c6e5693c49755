"""``make bench``: load tessera and two peers with wrk on loopback, and report.

    .venv/bin/python bench/run.py                          # every scenario, 15 s each
    .venv/bin/python bench/run.py --scenarios s1,s3 --duration 3s --max-quiet-wait 0

Scenarios (``--scenarios`` takes group names or ids, comma-separated; default: all):

    peers  peer.node_jwt peer.authlib_w1 peer.authlib_w2   (when ../shared/peers exists)
    s1     s1.native s1.nexi_proxy                        client_credentials, ES256, plain HTTP
    s2     s2.nexi_mtls s2.tls_new s2.tls_resume          real mutual TLS (embedded mode)
    s3     s3.par s3.par_nokid                            PAR, nested-JWE assertion pool (with kid; without, random key)
    s4     s4.axept s4.mobilepay_vat
    s5     s5.b2b_sqlite s5.b2b_pg                         login + refresh rotation
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
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

import procacct  # noqa: E402  (bench/procacct.py)

LUA = BENCH / "lua"
RESULTS = BENCH / "results"
PEERS_SRC = REPO.parent / "shared" / "peers"
PEERS_WORK = BENCH / "peers-work"
PEER_CLIENT, PEER_SECRET = "bench", "a-long-random-secret-value-0123456789"
#: s3 (PAR): one worker per core, as the cryptographic bound counts every core.
PAR_WORKERS = int(os.environ.get("TESSERA_BENCH_PAR_WORKERS", "2"))
#: s5 on PostgreSQL: one worker per core; each keeps several round trips in flight through
#: its database thread pool (tessera.web.dbcall). Measured on 2 cores: 2 workers beat 3 or 4.
B2B_PG_WORKERS = int(os.environ.get("TESSERA_BENCH_B2B_PG_WORKERS", "2"))

GROUPS = {
    "peers": ["peer.node_jwt", "peer.authlib_w1", "peer.authlib_w2"],
    "s1": ["s1.native", "s1.nexi_proxy"],
    "s2": ["s2.nexi_mtls", "s2.tls_new", "s2.tls_resume"],
    "s3": ["s3.par", "s3.par_nokid"],
    "s4": ["s4.axept", "s4.mobilepay_vat"],
    "s5": ["s5.b2b_sqlite", "s5.b2b_pg"],
    "s6": ["s6.native_10k", "s6.nexi_10k", "s6.native_w2", "s6.nexi_w2"],
    "s7": ["s7.sdk"],
}
ALL_IDS = [i for ids in GROUPS.values() for i in ids]


def log(msg: str) -> None:
    print(msg, flush=True)


def seconds(text: str) -> int:
    m = re.fullmatch(r"(\d+)\s*(s|m)?", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"bad duration {text!r} (e.g. 15s, 3s, 1m)")
    return int(m.group(1)) * (60 if m.group(2) == "m" else 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
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


def parse_summary(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in text.splitlines():
        if line.startswith("SUMMARY "):
            for part in line.split()[1:]:
                k, _, v = part.partition("=")
                out[k] = float(v) if "." in v else int(v)
        elif line.startswith("SAMPLE ") and "sample" not in out:
            out["sample"] = line[7:][:300]
    return out


class Processes:
    """Every process the harness starts: each in its own session (process group),
    stopped with SIGTERM then SIGKILL, in reverse order, whatever happens."""

    def __init__(self) -> None:
        self._procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str], *, log_path: Path, **kw: Any) -> subprocess.Popen:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as logf:
            proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, **kw)
        self._procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 15) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self._procs = [(n, p) for n, p in self._procs if p is not proc]

    def stop_all(self) -> None:
        for _, proc in reversed(list(self._procs)):
            with contextlib.suppress(Exception):
                self.stop(proc)


@dataclasses.dataclass
class Fixture:
    """What the load scripts need from one tessera home."""

    client_id: str
    secret: str
    cert_pem: bytes
    cert_path: Path
    key_path: Path
    redirect_uri: str
    cert_header: str  # nginx's $ssl_client_escaped_cert
    merchant: Any
    vat: str
    axept: tuple[int, int, str]
    clients: int


class Harness:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = BENCH / "work"
        self.procs = Processes()
        self.results: list[dict[str, Any]] = []
        self.extras: dict[str, Any] = {}
        self.started = time.time()
        self.selected = self._select(args.scenarios)
        self.peers = PEERS_SRC.is_dir() and not args.no_peers
        self.native_available: bool | None = None

    # ------------------------------------------------------------------ selection
    @staticmethod
    def _select(spec: str) -> list[str]:
        if spec in ("", "all"):
            return list(ALL_IDS)
        chosen: list[str] = []
        for token in (t.strip() for t in spec.split(",") if t.strip()):
            ids = GROUPS.get(token) or [i for i in ALL_IDS if i == token or i.startswith(token + ".")]
            if not ids:
                raise SystemExit(f"unknown scenario {token!r}; known: {', '.join(GROUPS)} or one of {', '.join(ALL_IDS)}")
            chosen += [i for i in ids if i not in chosen]
        return chosen

    def want(self, *ids: str) -> bool:
        return any(i in self.selected for i in ids)

    # ------------------------------------------------------------------ the run
    def run(self) -> int:
        if self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)
        RESULTS.mkdir(parents=True, exist_ok=True)
        log(f"== tessera bench: {', '.join(self.selected)}; wrk -t{self.args.threads} -c{self.args.connections} "
            f"-d{self.args.duration}s after a {self.args.warmup} s warm-up")
        steps: list[tuple[str, Callable[[], None]]] = []
        if self.peers:
            steps.append(("peers", self.group_peers))
        elif not PEERS_SRC.is_dir():
            log(f"   (no {PEERS_SRC}: the peers are not measured, and there are no ratios)")
        steps += [
            ("s1/s4/s5", self.group_base), ("s6", self.group_growth), ("s3", self.group_par),
            ("s2", self.group_mtls), ("s5-pg", self.group_b2b_pg), ("s7", self.group_sdk),
        ]
        finished = False
        try:
            for name, fn in steps:
                try:
                    fn()
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as e:  # one broken group must not lose the others' figures
                    log(f"!! {name} failed: {e!r}")
                    traceback.print_exc()
                    self.results.append({"id": f"error.{name}", "group": name, "available": False,
                                         "note": f"failed: {type(e).__name__}: {str(e)[:300]}"})
            finished = True
        finally:
            self.procs.stop_all()
            self.write(finished)
            if not self.args.keep_work:
                shutil.rmtree(self.work, ignore_errors=True)
        bad = [r["id"] for r in self.results if r.get("available", True) and r.get("non2xx")]
        if bad:
            log(f"!! non-2xx responses in {', '.join(bad)}")
        return 1 if bad or any(r["id"].startswith("error.") for r in self.results) else 0

    def write(self, finished: bool) -> None:
        """The results JSON, then (unless --no-report) the report. An interrupted run writes
        its partial figures to interrupted.json and leaves latest.json and the docs alone."""
        data = {"meta": self.meta(), "scenarios": self.results, **self.extras}
        out = Path(self.args.out)
        if not finished:
            out = out.with_name("interrupted.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=2) + "\n")
        log(f"== results: {out}")
        if finished and not self.args.no_report:
            import report

            report.write_all(data, results_json=out)

    # ------------------------------------------------------------------ environment
    def meta(self) -> dict[str, Any]:
        def cmd(args: list[str]) -> str:
            try:
                p = subprocess.run(args, capture_output=True, text=True, timeout=20)
                return (p.stdout or p.stderr).strip().splitlines()[0] if (p.stdout or p.stderr).strip() else ""
            except (OSError, subprocess.SubprocessError):
                return ""

        from importlib.metadata import PackageNotFoundError, version

        def ver(name: str) -> str:
            try:
                return version(name)
            except PackageNotFoundError:
                return ""

        model = ""
        with contextlib.suppress(OSError):
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        versions = {
            "python": platform.python_version(),
            **{p: ver(p) for p in ("tessera-auth", "uvicorn", "starlette", "httptools", "uvloop", "joserfc",
                                   "cryptography", "sqlalchemy", "psycopg")},
            "wrk": " ".join(cmd(["wrk", "-v"]).split()[1:2]),
            "nginx": cmd(["nginx", "-v"]).rpartition("/")[2],
            "openssl": " ".join(cmd(["openssl", "version"]).split()[1:2]),
            "node": cmd(["node", "--version"]),
        }
        if self.peers:
            pkg = PEERS_WORK / "node-oidc" / "node_modules" / "oidc-provider" / "package.json"
            with contextlib.suppress(OSError, ValueError):
                versions["oidc-provider"] = json.loads(pkg.read_text())["version"]
            py = PEERS_WORK / ".venv" / "bin" / "python"
            if py.exists():
                versions["authlib"] = cmd([str(py), "-c", "import importlib.metadata as m; print(m.version('authlib'))"])
                versions["gunicorn"] = cmd([str(py), "-c", "import importlib.metadata as m; print(m.version('gunicorn'))"])
        commit = cmd(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
        dirty = bool(cmd(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"]))
        a = self.args
        return {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "elapsed_s": round(time.time() - self.started, 1),
            "commit": commit + ("-dirty" if dirty else ""),
            "machine": {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release(),
                        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)},
            "load": {"threads": a.threads, "connections": a.connections, "duration_s": a.duration,
                     "warmup_s": a.warmup, "max_quiet_wait_s": a.max_quiet_wait, "retries": a.retries,
                     "timeout": a.timeout},
            "smoke": a.duration < 15 or a.max_quiet_wait <= 0,
            "tessera_log_level": a.tessera_log_level or "info",
            "selected": self.selected,
            "peers": self.peers,
            "versions": versions,
        }

    # ------------------------------------------------------------------ wrk
    def wrk(self, url: str, lua: str, args: list[str], duration: int, *, latency: bool = True,
            out: Path | None = None, mid: Callable[[], None] | None = None) -> tuple[str, float]:
        """Run wrk to the end; returns its output and its own CPU seconds."""
        assert url.startswith(("http://127.0.0.1:", "https://127.0.0.1:")), f"refusing non-loopback URL {url}"
        a = self.args
        cmd = ["wrk", f"-t{a.threads}", f"-c{a.connections}", f"-d{duration}s", f"--timeout", a.timeout]
        if latency:
            cmd.append("--latency")
        cmd += ["-s", str(LUA / lua), url, "--", *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        self.procs._procs.append(("wrk", proc))
        chunks: list[bytes] = []
        reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        deadline = time.monotonic() + duration + 60
        if mid is not None:
            time.sleep(duration / 2)
            mid()
        status = rusage = None
        while time.monotonic() < deadline:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.05)
        else:
            self.procs.stop(proc)
            raise RuntimeError(f"wrk did not finish in {duration + 60} s")
        proc.returncode = os.waitstatus_to_exitcode(status)
        self.procs._procs = [(n, p) for n, p in self.procs._procs if p is not proc]
        reader.join(10)
        text = b"".join(chunks).decode(errors="replace")
        if out is not None:
            out.write_text(" ".join(cmd[:-len(args)] if args else cmd) + "\n" + text)
        if proc.returncode != 0 or "SUMMARY" not in text:
            raise RuntimeError(f"wrk failed ({proc.returncode}): {text[-800:]}")
        if re.search(r"\.lua: ", text):
            raise RuntimeError(f"wrk script error: {text[-800:]}")
        return text, rusage.ru_utime + rusage.ru_stime

    def measure(self, sid: str, title: str, url: str, lua: str, args: list[str] | Callable[[str], list[str]], *,
                target: str, server: list[int], port: int, config: dict[str, Any], extra_groups: dict[str, list[int]] | None = None,
                endpoint: str = "", note: str = "") -> dict[str, Any]:
        """Warm up, wait for quiet, load, account; repeat a DIRTY run up to --retries times."""
        a = self.args
        argf = args if callable(args) else (lambda phase, _a=args: _a)
        roots = {"server": server, **(extra_groups or {}), "self": [os.getpid()]}
        log(f"-- {sid}: {title}  [{url}]")
        self.wrk(url, lua, argf("warmup"), a.warmup, latency=False)
        best: dict[str, Any] | None = None
        tries = 0
        while tries < 1 + a.retries:
            tries += 1
            quiet = procacct.quiet_wait(roots, max_wait=a.max_quiet_wait, log=log)
            conns: dict[str, int] = {}
            s0 = procacct.snapshot()
            with procacct.RssSampler(server) as rss:
                text, wrk_cpu = self.wrk(url, lua, argf(f"run{tries}"), a.duration, out=RESULTS / f"{sid}.txt",
                                         mid=lambda: conns.update(midrun=established(port)))
            s1 = procacct.snapshot()
            cpu = procacct.diff(s0, s1, roots)
            s = parse_summary(text)
            requests = max(int(s.get("requests", 0)), 1)
            dirty = cpu.residual_cores > 0.1
            r = {
                "id": sid, "group": sid.split(".")[0], "title": title, "target": target, "endpoint": endpoint,
                "available": True, "config": config, "url": url,
                "rps": round(float(s.get("rps", 0)), 1), "requests": int(s.get("requests", 0)),
                "p50_ms": round(s.get("p50_us", 0) / 1000, 2), "p90_ms": round(s.get("p90_us", 0) / 1000, 2),
                "p99_ms": round(s.get("p99_us", 0) / 1000, 2), "max_ms": round(s.get("max_us", 0) / 1000, 2),
                "non2xx": int(s.get("non2xx", 0)),
                "socket_errors": {k: int(s.get(f"err_{k}", 0)) for k in ("connect", "read", "write", "timeout")},
                "server_cpu_s": round(cpu.groups["server"], 3),
                "cpu_us_per_req": round(cpu.groups["server"] * 1e6 / requests, 1),
                "wrk_cpu_s": round(wrk_cpu, 3),
                **rss.summary(),
                "conns_midrun": conns.get("midrun"),
                "cpu": cpu.as_dict(), "quiet_wait": quiet,
                "state": "DIRTY" if dirty else "CLEAN", "tries": tries,
            }
            for g in (extra_groups or {}):
                r[f"{g}_cpu_us_per_req"] = round(cpu.groups[g] * 1e6 / requests, 1)
            for k in ("logins", "refreshes", "pool", "used", "exhausted", "bad"):
                if k in s:
                    r.setdefault("counters", {})[k] = s[k]
            if "sample" in s:
                r["failure_sample"] = s["sample"]
            if note:
                r["note"] = note
            log(f"   rps={r['rps']:.0f} p50={r['p50_ms']:.1f}ms p99={r['p99_ms']:.1f}ms non2xx={r['non2xx']} "
                f"cpu/req={r['cpu_us_per_req']:.0f}us rss/worker={r['rss_peak_mb_per_worker']}MB "
                f"residual={cpu.residual_cores:.2f} cores {r['state']}"
                + (f"  [{s['sample'][:120]}]" if "sample" in s else ""))
            if best is None or (best["state"] == "DIRTY" and not dirty):
                best = r
            if not dirty:
                break
        assert best is not None
        best["tries"] = tries
        self.results.append(best)
        return best

    def unavailable(self, sid: str, title: str, note: str, **kw: Any) -> None:
        log(f"-- {sid}: {title}: not available ({note})")
        self.results.append({"id": sid, "group": sid.split(".")[0], "title": title, "available": False, "note": note, **kw})

    # ------------------------------------------------------------------ tessera
    @contextlib.contextmanager
    def tessera(self, name: str, *, mode: str = "proxy", workers: int = 1, clients: int = 10,
                database_url: str | None = None, env: dict[str, str] | None = None) -> Iterator[tuple[Any, Fixture]]:
        from tests.support.live import LiveServer

        # One client hammers one endpoint from one address: lift the request-rate limits far
        # above the load (so the limiter still runs, and its cost is measured) instead of
        # measuring 429s. The brute-force failure limits stay as they are.
        e = {"TESSERA_WORKERS": str(workers), "TESSERA_RATE_LIMIT_PER_CREDENTIAL": "1000000",
             "TESSERA_RATE_LIMIT_CREDENTIAL_BURST": "1000000", "TESSERA_RATE_LIMIT_PER_ADDRESS": "1000000",
             "TESSERA_RATE_LIMIT_ADDRESS_BURST": "1000000", "TESSERA_B2BINPAY_LOGIN_PER_MINUTE": "0", **(env or {})}
        if self.args.tessera_log_level:
            e["TESSERA_LOG_LEVEL"] = self.args.tessera_log_level
        if mode == "proxy":
            e["TESSERA_MTLS_MODE"] = "proxy"
        workdir = self.work / name
        workdir.mkdir(parents=True)
        srv = LiveServer(workdir=workdir, database_url=database_url, env=e)
        try:
            srv.init()
            fixture = self.populate(srv, clients)
            srv.start(timeout=90)
            log(f"   tessera {name}: pid {srv.proc.pid}, {srv.url}, {workers} worker(s), {clients} clients, "
                f"{'PostgreSQL' if database_url else 'SQLite'}, mTLS {mode}")
            yield srv, fixture
        finally:
            srv.stop()

    def populate(self, srv: Any, clients: int) -> Fixture:
        from sqlalchemy import insert

        from tessera.core.apikeys import create_key
        from tessera.core.models import Merchant
        from tessera.core.secrets import generate_client_id, generate_secret, hash_secret
        from tessera.storage import schema

        app = srv.new_app(with_cert=True)  # RSA 2048 key and CSR by openssl, signed by the home's CA
        pepper = srv.settings.pepper_bytes()
        now = int(time.time())
        filler = []
        for i in range(clients - 1):  # the other registered clients, in one transaction
            filler.append(dict(client_id=generate_client_id(), name=f"bench filler {i}",
                               secret_hash=hash_secret(generate_secret(), pepper), redirect_uris=[],
                               scope="", auth_methods=["client_secret_basic", "client_secret_post"],
                               grant_types=["client_credentials"], require_par=False, jwks=None,
                               status="active", created_at=now))
        for i in range(0, len(filler), 2000):
            with srv.store.engine.begin() as conn:
                conn.execute(insert(schema.clients), filler[i:i + 2000])
        merchant = srv.new_merchant(app)  # POS, SoftPOS + mPOS TIDs, a user; granted to the app
        vat = f"DK{secrets.randbelow(10**8):08d}"
        mp_id = merchant.merchant_id + 1
        srv.store.create_merchant(Merchant(mp_id, "MobilePay shop", vat, now))
        srv.store.grant(mp_id, app.client_id, now)
        record, key = create_key(srv.store, pepper, merchant.merchant_id, now, max_enabled=srv.settings.axept_max_enabled_keys)
        pem = app.cert.read_bytes()
        return Fixture(app.client_id, app.client_secret, pem, app.cert, app.key, app.redirect_uri,
                       quote(pem.decode(), safe=""), merchant, vat, (record.merchant_id, record.key_id, key), clients)

    def probe(self, method: str, url: str, **kw: Any):
        import httpx

        with httpx.Client(timeout=30, verify=kw.pop("verify", True)) as c:
            return c.request(method, url, **kw)

    def check_token(self, url: str, fx: Fixture, *, cert: bool, basic: bool = True) -> tuple[int, str]:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if basic:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{quote(fx.client_id, safe='')}:{quote(fx.secret, safe='')}".encode()).decode()
        if cert:
            headers["X-SSL-Client-Cert"] = fx.cert_header
        r = self.probe("POST", url, content=b"grant_type=client_credentials", headers=headers)
        return r.status_code, r.text[:300]

    def token_scenarios(self, srv: Any, fx: Fixture, *, native: str | None, nexi: str | None, config: dict[str, Any],
                        title_suffix: str = "") -> None:
        server = [srv.proc.pid]
        if native:
            status, body = self.check_token(f"{srv.url}/oauth2/token", fx, cert=False)
            if self.native_available is None:
                self.native_available = status == 200
            if status == 200:
                self.measure(native, f"native /oauth2/token, client_secret_basic{title_suffix}", f"{srv.url}/oauth2/token",
                             "token_basic.lua", [fx.client_id, fx.secret], target="tessera", server=server, port=srv.port,
                             config=config, endpoint="POST /oauth2/token")
            else:
                self.unavailable(native, f"native /oauth2/token{title_suffix}",
                                 f"probe answered {status} {body[:120]!r}: the native token endpoint is not there yet")
        if nexi:
            url = f"{srv.url}/softpos/appenrollment/token"
            status, body = self.check_token(url, fx, cert=True)
            if status != 200:
                raise RuntimeError(f"Nexi token probe answered {status}: {body}")
            self.measure(nexi, f"Nexi token, proxy mode (X-SSL-Client-Cert){title_suffix}", url, "token_basic.lua",
                         [fx.client_id, fx.secret, fx.cert_header], target="tessera", server=server, port=srv.port,
                         config=config, endpoint="POST /softpos/appenrollment/token")

    # ------------------------------------------------------------------ groups
    def group_base(self) -> None:
        """s1 (native, Nexi proxy), s4 (axept, MobilePay), s5 B2BINPAY on SQLite: one server."""
        ids = ["s1.native", "s1.nexi_proxy", "s4.axept", "s4.mobilepay_vat", "s5.b2b_sqlite"]
        if not self.want(*ids):
            return
        log("== s1/s4/s5: tessera, proxy mode, 1 worker, SQLite, 10 clients")
        config = {"workers": 1, "db": "sqlite", "clients": 10, "mtls": "proxy", "tls": False}
        with self.tessera("base") as (srv, fx):
            self.token_scenarios(srv, fx, native="s1.native" if self.want("s1.native") else None,
                                 nexi="s1.nexi_proxy" if self.want("s1.nexi_proxy") else None, config=config)
            server = [srv.proc.pid]
            if self.want("s4.axept"):
                mid, kid, key = fx.axept
                url = f"{srv.url}/axept/v1/authenticate"
                r = self.probe("POST", url, json={"merchantId": mid, "keyId": kid, "key": key})
                if r.status_code != 200:
                    raise RuntimeError(f"axept probe answered {r.status_code}: {r.text[:200]}")
                self.measure("s4.axept", "axept authenticate (API key, JSON)", url, "axept.lua", [str(mid), str(kid), key],
                             target="tessera", server=server, port=srv.port, config=config, endpoint="POST /axept/v1/authenticate")
            if self.want("s4.mobilepay_vat"):
                url = f"{srv.url}/integrator-authentication/connect/token"
                r = self.probe("POST", url, content=f"grant_type=client_credentials&merchant_vat={fx.vat}".encode(),
                               headers={"Content-Type": "application/x-www-form-urlencoded"}, auth=(fx.client_id, fx.secret))
                if r.status_code != 200:
                    raise RuntimeError(f"MobilePay probe answered {r.status_code}: {r.text[:200]}")
                self.measure("s4.mobilepay_vat", "MobilePay token with merchant_vat", url, "mobilepay_vat.lua",
                             [fx.client_id, fx.secret, fx.vat], target="tessera", server=server, port=srv.port, config=config,
                             endpoint="POST /integrator-authentication/connect/token")
            if self.want("s5.b2b_sqlite"):
                self.b2b("s5.b2b_sqlite", srv, fx, config, extra_groups=None)

    def b2b(self, sid: str, srv: Any, fx: Fixture, config: dict[str, Any], extra_groups: dict[str, list[int]] | None) -> None:
        url = f"{srv.url}/b2binpay/token/"
        body = {"data": {"type": "auth-token", "attributes": {"login": fx.client_id, "password": fx.secret}}}
        r = self.probe("POST", url, content=json.dumps(body).encode(), headers={"Content-Type": "application/vnd.api+json"})
        if r.status_code != 200:
            raise RuntimeError(f"B2BINPAY probe answered {r.status_code}: {r.text[:200]}")
        db = "PostgreSQL" if config["db"] == "postgresql" else "SQLite"
        self.measure(sid, f"B2BINPAY login + refresh rotation, {db}", url, "b2b_refresh.lua", [fx.client_id, fx.secret],
                     target="tessera", server=[srv.proc.pid], port=srv.port, config=config, extra_groups=extra_groups,
                     endpoint="POST /b2binpay/token/ + /token/refresh/")

    def group_growth(self) -> None:
        n = self.args.growth_clients
        if self.want("s6.native_10k", "s6.nexi_10k"):
            log(f"== s6: tessera, proxy mode, 1 worker, SQLite, {n} clients")
            config = {"workers": 1, "db": "sqlite", "clients": n, "mtls": "proxy", "tls": False}
            with self.tessera("growth-clients", clients=n) as (srv, fx):
                self.token_scenarios(srv, fx, native="s6.native_10k" if self.want("s6.native_10k") else None,
                                     nexi="s6.nexi_10k" if self.want("s6.nexi_10k") else None, config=config,
                                     title_suffix=f", {n} clients")
        if self.want("s6.native_w2", "s6.nexi_w2"):
            log("== s6: tessera, proxy mode, 2 workers, SQLite, 10 clients")
            config = {"workers": 2, "db": "sqlite", "clients": 10, "mtls": "proxy", "tls": False}
            with self.tessera("growth-workers", workers=2) as (srv, fx):
                self.token_scenarios(srv, fx, native="s6.native_w2" if self.want("s6.native_w2") else None,
                                     nexi="s6.nexi_w2" if self.want("s6.nexi_w2") else None, config=config,
                                     title_suffix=", 2 workers")

    def group_par(self) -> None:
        if not self.want("s3.par", "s3.par_nokid"):
            return
        import par_pool

        # The cryptographic bound counts both cores, so the server gets both: two workers, each
        # writing to the one SQLite database (WAL; the writers queue on its lock, busy timeout
        # 30 s as in production), one write transaction per PAR.
        workers = PAR_WORKERS
        log(f"== s3: tessera, proxy mode, {workers} workers, SQLite (WAL): PAR with a nested-JWE assertion per request")
        config = {"workers": workers, "db": "sqlite", "clients": 10, "mtls": "proxy", "tls": False}
        lifetime = 900  # the Nexi PAR takes assertions up to the provider's 15 minutes
        env = {"TESSERA_NEXI_TOKEN_TTL": str(86400), "TESSERA_NEXI_ASSERTION_MAX_LIFETIME": str(lifetime)}
        with self.tessera("par", workers=workers, env=env) as (srv, fx):
            headers = {"Content-Type": "application/x-www-form-urlencoded", "X-SSL-Client-Cert": fx.cert_header}
            r = self.probe("POST", f"{srv.url}/softpos/appenrollment/token", headers=headers,
                           content=f"grant_type=client_credentials&client_id={quote(fx.client_id)}&client_secret={quote(fx.secret)}".encode())
            if r.status_code != 200:
                raise RuntimeError(f"Nexi token probe answered {r.status_code}: {r.text[:200]}")
            token = r.json()["access_token"]
            jwks = self.probe("GET", f"{srv.url}/softpos/par/jwks.json").json()
            enc = jwks["keys"][0]
            key_pem = fx.key_path.read_bytes()
            bound = par_pool.crypto_bound(key_pem, enc_bits=srv.settings.encryption_key_bits)
            log(f"   cryptographic bound: decrypt {bound['rsa_oaep256_decrypt_us']} us + verify {bound['rs256_verify_us']} us "
                f"-> {bound['bound_rps']} req/s on {bound['cores']} cores ({bound['bound_rps_per_worker']} per worker)")
            self.extras["par_crypto_bound"] = bound
            m = fx.merchant
            url = f"{srv.url}/softpos/as/par"
            # s3.par: every JWE names its key (kid); s3.par_nokid: no kid, each to a key of the
            # JWKS picked at random, as Nexi's reference backend sends them (the server tries
            # its published keys in turn: current, next, ...).
            for sid, kidless in (("s3.par", False), ("s3.par_nokid", True)):
                if self.want(sid):
                    self.par_variant(sid, kidless, srv, fx, m, key_pem, jwks, enc, bound, token, headers, url,
                                     config, lifetime)

    def par_variant(self, sid: str, kidless: bool, srv: Any, fx: Any, m: Any, key_pem: bytes, jwks: dict[str, Any],
                    enc: dict[str, Any], bound: dict[str, Any], token: str, headers: dict[str, str], url: str,
                    config: dict[str, Any], lifetime: int) -> None:
        import par_pool

        spec = par_pool.assertion_spec(client_id=fx.client_id, redirect_uri=fx.redirect_uri, audience=srv.settings.issuer,
                                       app_key_pem=key_pem, enc_jwk=enc, pos=m.pos, tids=[m.softpos_tid, m.mpos_tid],
                                       username=m.username, lifetime=lifetime,
                                       enc_jwks=jwks["keys"], kidless=kidless)
        r = self.probe("POST", url, content=par_pool.one_body(spec).encode(),
                       headers={**headers, "Authorization": f"Bearer {token}"})
        if r.status_code != 201:
            raise RuntimeError(f"PAR probe answered {r.status_code}: {r.text[:300]}")
        # Enough distinct assertions for the fastest the server could possibly go: the
        # cryptographic bound of its one worker (a worker handles PAR on its event loop,
        # one core at most), with a 30 % margin; --par-pool overrides.
        def size(secs: int) -> int:
            fastest = min(bound["bound_rps"], bound["bound_rps_per_worker"] * config["workers"])
            return self.args.par_pool or int(fastest * secs * 1.3) + 200

        made: dict[str, Any] = {}

        def pool_for(phase: str) -> list[str]:
            path = self.work / f"par-pool-{sid}-{phase}.txt"
            n = size(self.args.warmup if phase == "warmup" else self.args.duration)
            took = par_pool.write_pool(path, spec, n)
            made[phase] = {"assertions": n, "seconds": round(took, 1)}
            log(f"   pool {phase}: {n} assertions made in {took:.1f} s")
            return [str(path), str(self.args.threads), token, fx.cert_header]

        title = ("Nexi PAR, nested JWE without kid to a random JWKS key (RSA-OAEP-256 + RS256), one assertion per request"
                 if kidless else "Nexi PAR, nested JWE (RSA-OAEP-256 + RS256), one assertion per request")
        res = self.measure(sid, title, url,
                           "par_pool.lua", pool_for, target="tessera", server=[srv.proc.pid], port=srv.port,
                           config=config, endpoint="POST /softpos/as/par")
        res["pool"] = made
        res["crypto_bound_rps"] = bound["bound_rps"]
        res["crypto_bound_rps_per_worker"] = bound["bound_rps_per_worker"]
        res["enc_keys_published"] = len(jwks["keys"])
        if res.get("counters", {}).get("exhausted"):
            res["state"] = "INVALID"
            res["note"] = "the assertion pool ran out: rerun with a bigger --par-pool"

    def group_mtls(self) -> None:
        if not self.want(*GROUPS["s2"]):
            return
        log("== s2: tessera, embedded mTLS (uvicorn terminates TLS), 1 worker, SQLite")
        config = {"workers": 1, "db": "sqlite", "clients": 10, "mtls": "embedded", "tls": True}
        with self.tessera("mtls", mode="embedded") as (srv, fx):
            server = [srv.proc.pid]
            if self.want("s2.nexi_mtls"):
                self.nginx_mtls(srv, fx, config)
            for sid, flag in (("s2.tls_new", "-new"), ("s2.tls_resume", "-reuse")):
                if self.want(sid):
                    self.s_time(sid, flag, srv, fx, server)

    def nginx_mtls(self, srv: Any, fx: Fixture, config: dict[str, Any]) -> None:
        if not shutil.which("nginx"):
            self.unavailable("s2.nexi_mtls", "Nexi token over mTLS", "nginx is not installed (bench/run.sh installs nginx-light)")
            return
        d = self.work / "nginx"
        for sub in ("tmp", "logs"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        port = free_port()
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
    server 127.0.0.1:{srv.port};
    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass https://tessera;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host localhost:{srv.port};
      proxy_ssl_certificate {fx.cert_path};
      proxy_ssl_certificate_key {fx.key_path};
      proxy_ssl_trusted_certificate {srv.ca};
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;
      proxy_ssl_protocols TLSv1.2 TLSv1.3;
    }}
  }}
}}
""")
        proc = self.procs.start("nginx", ["nginx", "-p", str(d), "-c", str(conf)], log_path=d / "logs" / "stdout.log")
        try:
            wait_port(port, proc, timeout=20)
            url = f"http://127.0.0.1:{port}/softpos/appenrollment/token"
            status, body = self.check_token(url, fx, cert=False)
            if status != 200:
                raise RuntimeError(f"Nexi token through nginx answered {status}: {body}")
            note = ("wrk cannot present a client certificate, so nginx on the client side originates the mutual TLS: "
                    "wrk -> nginx over plain HTTP, nginx -> tessera over mTLS with keep-alive upstream connections. "
                    "nginx shares the machine's cores; its CPU is reported apart (proxy_cpu_us_per_req) and is not "
                    "counted as the server's.")
            self.measure("s2.nexi_mtls", "Nexi token over embedded mTLS (via a client-side nginx)", url, "token_basic.lua",
                         [fx.client_id, fx.secret], target="tessera", server=[srv.proc.pid], port=srv.port, config=config,
                         extra_groups={"proxy": [proc.pid]}, endpoint="POST /softpos/appenrollment/token", note=note)
        finally:
            self.procs.stop(proc)

    def s_time(self, sid: str, flag: str, srv: Any, fx: Fixture, server: list[int]) -> None:
        secs = self.args.tls_time or self.args.duration
        cmd = ["openssl", "s_time", "-connect", f"127.0.0.1:{srv.port}", "-CAfile", str(srv.ca), "-cert", str(fx.cert_path),
               "-key", str(fx.key_path), flag, "-time", str(secs), "-www", "/healthz"]
        title = "new TLS connections/s, full mTLS handshake" if flag == "-new" else "TLS connections/s, session resumed"
        log(f"-- {sid}: {title}")
        roots = {"server": server, "self": [os.getpid()]}
        quiet = procacct.quiet_wait(roots, max_wait=self.args.max_quiet_wait, log=log)
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
        r = {"id": sid, "group": "s2", "title": title, "target": "tessera", "available": True, "endpoint": "TLS + GET /healthz",
             "config": {"workers": 1, "mtls": "embedded", "tls": True},
             "tool": "openssl s_time " + flag, "connections": n, "seconds": round(real, 2),
             "conns_per_s": round(n / real, 1) if real > 0 else 0, "server_cpu_s": round(cpu.groups["server"], 3),
             "cpu_us_per_conn": round(cpu.groups["server"] * 1e6 / max(n, 1), 1), "non2xx": 0,
             "cpu": cpu.as_dict(), "quiet_wait": quiet, "state": "DIRTY" if cpu.residual_cores > 0.1 else "CLEAN",
             "note": "one connection at a time (s_time is sequential), each making a GET /healthz"}
        if flag == "-reuse":
            r["resumed"] = resumed
        log(f"   {r['conns_per_s']} conn/s, server cpu {r['cpu_us_per_conn']} us/conn {r['state']}")
        self.results.append(r)

    def group_b2b_pg(self) -> None:
        if not self.want("s5.b2b_pg"):
            return
        from tests.support.postgres import PostgresServer, find_pg_bin

        if find_pg_bin() is None:
            self.unavailable("s5.b2b_pg", "B2BINPAY refresh rotation, PostgreSQL",
                             "no PostgreSQL server binaries (bench/run.sh installs them)")
            return
        # A durable cluster (fsync=on, synchronous_commit=on, full_page_writes=on: each commit is
        # on disk before it is acknowledged), throwaway all the same. PostgreSQL, the workers and
        # wrk share the two cores; each worker runs the rotation's round trip in its small
        # database thread pool (tessera.web.dbcall), so the event loop serves others meanwhile.
        workers = B2B_PG_WORKERS
        log(f"== s5: tessera, proxy mode, {workers} workers, PostgreSQL (throwaway cluster, durable: fsync and synchronous_commit on)")
        config = {"workers": workers, "db": "postgresql", "clients": 10, "mtls": "proxy", "tls": False,
                  "pg": "fsync=on, synchronous_commit=on"}
        with PostgresServer(base_dir=self.work, durable=True) as pg:
            url = pg.create_database("tessera_bench")
            with self.tessera("pg", workers=workers, database_url=url) as (srv, fx):
                self.b2b("s5.b2b_pg", srv, fx, config, extra_groups={"db": [pg._postmaster_pid() or 0]})

    def group_sdk(self) -> None:
        if not self.want("s7.sdk"):
            return
        if not (REPO / "tessera" / "sdk" / "cache.py").exists():
            self.unavailable("s7.sdk", "SDK token cache", "tessera/sdk/cache.py does not exist")
            return
        import sdk_bench

        log("== s7: SDK token cache (in process)")
        res = sdk_bench.run(threads=100, rounds=self.args.sdk_rounds)
        log(f"   hit {res['hit_sync_ns']} ns (sync), {res['hit_async_ns']} ns (asyncio); single flight x100 threads: "
            f"{res['single_flight']['fetches_max']} fetch, overhead p50 {res['single_flight']['overhead_ms_p50']} ms")
        self.extras["sdk"] = res
        self.results.append({"id": "s7.sdk", "group": "s7", "title": "SDK token cache", "target": "tessera-sdk",
                             "available": True, "non2xx": 0, "state": "CLEAN", "sdk": res})

    def group_peers(self) -> None:
        self.prepare_peers()
        want_all = self.want(*GROUPS["peers"])
        # node-oidc-provider is the reference of every ratio: always measured with the peers
        todo = ["peer.node_jwt"] + [i for i in ("peer.authlib_w1", "peer.authlib_w2") if want_all and self.want(i)]
        for sid in todo:
            port = free_port()
            logs = self.work / "peers"
            if sid == "peer.node_jwt":
                env = {**os.environ, "NODE_ENV": "production", "TOKEN_FORMAT": "jwt", "PORT": str(port)}
                proc = self.procs.start(sid, ["node", "server.mjs"], log_path=logs / f"{sid}.log",
                                        cwd=PEERS_WORK / "node-oidc", env=env)
                title, target, cfg = "node-oidc-provider, ES256 JWT access token", "node-oidc-provider", {"workers": 1}
            else:
                w = sid[-1]
                proc = self.procs.start(sid, [str(PEERS_WORK / ".venv" / "bin" / "gunicorn"), "--chdir", "authlib_ref",
                                              "-k", "gthread", "--workers", w, "--threads", "1", "--preload",
                                              "--no-control-socket", "-b", f"127.0.0.1:{port}", "app:app"],
                                        log_path=logs / f"{sid}.log", cwd=PEERS_WORK)
                title, target, cfg = f"Authlib reference (Flask, gunicorn gthread, {w} worker(s))", "authlib", {"workers": int(w)}
            try:
                wait_port(port, proc)
                url = f"http://127.0.0.1:{port}/token"
                chk = subprocess.run([str(PEERS_WORK / ".venv" / "bin" / "python"), str(PEERS_WORK / "check_token.py"),
                                      url, f"http://127.0.0.1:{port}/jwks"], capture_output=True, text=True, timeout=60)
                if chk.returncode != 0:
                    raise RuntimeError(f"{sid}: check_token.py failed: {(chk.stdout + chk.stderr)[-500:]}")
                self.measure(sid, title, url, "token_basic.lua", [PEER_CLIENT, PEER_SECRET], target=target,
                             server=[proc.pid], port=port, config=cfg, endpoint="POST /token")
            finally:
                self.procs.stop(proc)

    def prepare_peers(self) -> None:
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
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"] if lock else ["npm", "install", "--no-audit", "--no-fund"],
                           cwd=node, check=True, timeout=600)
            stamp.write_bytes(lock)
        venv = PEERS_WORK / ".venv"
        req = (PEERS_WORK / "requirements.txt").read_bytes()
        vstamp = venv / ".bench-requirements"
        if not vstamp.exists() or vstamp.read_bytes() != req:
            log("   python venv (Authlib reference)")
            subprocess.run([shutil.which("python3") or sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r", str(PEERS_WORK / "requirements.txt")],
                           check=True, timeout=900)
            vstamp.write_bytes(req)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--scenarios", default="all", help="comma-separated groups or ids (default: all)")
    p.add_argument("--duration", type=seconds, default=15, help="recorded wrk run, e.g. 15s (default) or 3s")
    p.add_argument("--warmup", type=seconds, default=3, help="unrecorded warm-up run (default 3s)")
    p.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    p.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    p.add_argument("--timeout", default="5s", help="wrk --timeout (default 5s)")
    p.add_argument("--max-quiet-wait", type=float, default=180,
                   help="seconds to wait for a quiet machine before each run (0: do not wait)")
    p.add_argument("--retries", type=int, default=2, help="extra runs when a run is DIRTY (default 2)")
    p.add_argument("--tls-time", type=seconds, default=0, help="openssl s_time duration (default: --duration)")
    p.add_argument("--growth-clients", type=int, default=10_000, help="registered clients in s6 (default 10000)")
    p.add_argument("--par-pool", type=int, default=0, help="assertions per PAR run (default: from the crypto bound)")
    p.add_argument("--sdk-rounds", type=int, default=20, help="single-flight rounds in s7 (default 20)")
    p.add_argument("--tessera-log-level", default="",
                   help="TESSERA_LOG_LEVEL of the servers (default: tessera's own, info, with its access log; "
                        "'warning' turns the access log off, as the peers have none)")
    p.add_argument("--no-peers", action="store_true", help="do not run the peers even if ../shared/peers exists")
    p.add_argument("--keep-work", action="store_true", help="keep bench/work (homes, logs, pools) afterwards")
    p.add_argument("--out", default=str(RESULTS / "latest.json"), help="results JSON (default bench/results/latest.json)")
    p.add_argument("--no-report", action="store_true", help="do not write docs/benchmarks.md and the chart")
    args = p.parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: run bench/run.sh (or apt-get install wrk)")

    def on_term(signum, frame):  # SIGTERM/SIGHUP: clean up as for Ctrl-C
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
