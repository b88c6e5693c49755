"""The wrk driver: one run (``run_wrk``), its SUMMARY line (``parse_summary``), and a
measured load (``measure``): a warm-up run (unrecorded), a wait until the machine is quiet,
the recorded run with the server's CPU from /proc and its workers' peak RSS, repeated while
DIRTY (over 0.1 core that nothing here accounts for) up to ``--retries`` times."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from bench import procacct
from bench.harness.paths import LUA, RESULTS
from bench.harness.procs import Processes, established, log


class Runs(Protocol):
    """What a measured run needs from the harness."""

    args: argparse.Namespace
    procs: Processes
    results: list[dict[str, Any]]


def seconds(text: str) -> int:
    m = re.fullmatch(r"(\d+)\s*(s|m)?", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"bad duration {text!r} (e.g. 15s, 3s, 1m)")
    return int(m.group(1)) * (60 if m.group(2) == "m" else 1)


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


def run_wrk(
    h: Runs,
    url: str,
    lua: str,
    args: list[str],
    duration: int,
    *,
    latency: bool = True,
    out: Path | None = None,
    mid: Callable[[], None] | None = None,
) -> tuple[str, float]:
    """Run wrk to the end; returns its output and its own CPU seconds."""
    assert url.startswith(("http://127.0.0.1:", "https://127.0.0.1:")), f"refusing non-loopback URL {url}"
    a = h.args
    cmd = ["wrk", f"-t{a.threads}", f"-c{a.connections}", f"-d{duration}s", "--timeout", a.timeout]
    if latency:
        cmd.append("--latency")
    cmd += ["-s", str(LUA / lua), url, "--", *args]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    h.procs.adopt("wrk", proc)
    chunks: list[bytes] = []
    stdout = proc.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: chunks.append(stdout.read()), daemon=True)
    reader.start()
    deadline = time.monotonic() + duration + 60
    if mid is not None:
        time.sleep(duration / 2)
        mid()
    status = 0
    rusage = None
    while time.monotonic() < deadline:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.05)
    else:
        h.procs.stop(proc)
        raise RuntimeError(f"wrk did not finish in {duration + 60} s")
    assert rusage is not None
    proc.returncode = os.waitstatus_to_exitcode(status)
    h.procs.forget(proc)
    reader.join(10)
    text = b"".join(chunks).decode(errors="replace")
    if out is not None:
        out.write_text(" ".join(cmd[: -len(args)] if args else cmd) + "\n" + text)
    if proc.returncode != 0 or "SUMMARY" not in text:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {text[-800:]}")
    if re.search(r"\.lua: ", text):
        raise RuntimeError(f"wrk script error: {text[-800:]}")
    return text, rusage.ru_utime + rusage.ru_stime


def measure(
    h: Runs,
    sid: str,
    title: str,
    url: str,
    lua: str,
    args: list[str] | Callable[[str], list[str]],
    *,
    target: str,
    server: list[int],
    port: int,
    config: dict[str, Any],
    extra_groups: dict[str, list[int]] | None = None,
    endpoint: str = "",
    note: str = "",
) -> dict[str, Any]:
    """Warm up, wait for quiet, load, account; repeat a DIRTY run up to --retries times."""
    a = h.args
    argf: Callable[[str], list[str]] = args if callable(args) else (lambda phase, _a=args: _a)  # type: ignore[misc]
    roots = {"server": server, **(extra_groups or {}), "self": [os.getpid()]}
    log(f"-- {sid}: {title}  [{url}]")
    run_wrk(h, url, lua, argf("warmup"), a.warmup, latency=False)
    best: dict[str, Any] | None = None
    tries = 0
    while tries < 1 + a.retries:
        tries += 1
        quiet = procacct.quiet_wait(roots, max_wait=a.max_quiet_wait, log=log)
        conns: dict[str, int] = {}
        s0 = procacct.snapshot()
        with procacct.RssSampler(server) as rss:
            text, wrk_cpu = run_wrk(
                h,
                url,
                lua,
                argf(f"run{tries}"),
                a.duration,
                out=RESULTS / f"{sid}.txt",
                mid=lambda conns=conns: conns.update(midrun=established(port)),
            )
        s1 = procacct.snapshot()
        cpu = procacct.diff(s0, s1, roots)
        s = parse_summary(text)
        requests = max(int(s.get("requests", 0)), 1)
        dirty = cpu.residual_cores > 0.1
        r = {
            "id": sid,
            "group": sid.split(".")[0],
            "title": title,
            "target": target,
            "endpoint": endpoint,
            "available": True,
            "config": config,
            "url": url,
            "rps": round(float(s.get("rps", 0)), 1),
            "requests": int(s.get("requests", 0)),
            "p50_ms": round(s.get("p50_us", 0) / 1000, 2),
            "p90_ms": round(s.get("p90_us", 0) / 1000, 2),
            "p99_ms": round(s.get("p99_us", 0) / 1000, 2),
            "max_ms": round(s.get("max_us", 0) / 1000, 2),
            "non2xx": int(s.get("non2xx", 0)),
            "socket_errors": {k: int(s.get(f"err_{k}", 0)) for k in ("connect", "read", "write", "timeout")},
            "server_cpu_s": round(cpu.groups["server"], 3),
            "cpu_us_per_req": round(cpu.groups["server"] * 1e6 / requests, 1),
            "wrk_cpu_s": round(wrk_cpu, 3),
            **rss.summary(),
            "conns_midrun": conns.get("midrun"),
            "cpu": cpu.as_dict(),
            "quiet_wait": quiet,
            "state": "DIRTY" if dirty else "CLEAN",
            "tries": tries,
        }
        for g in extra_groups or {}:
            r[f"{g}_cpu_us_per_req"] = round(cpu.groups[g] * 1e6 / requests, 1)
        for k in ("logins", "refreshes", "pool", "used", "exhausted", "bad"):
            if k in s:
                r.setdefault("counters", {})[k] = s[k]
        if "sample" in s:
            r["failure_sample"] = s["sample"]
        if note:
            r["note"] = note
        log(
            f"   rps={r['rps']:.0f} p50={r['p50_ms']:.1f}ms p99={r['p99_ms']:.1f}ms non2xx={r['non2xx']} "
            f"cpu/req={r['cpu_us_per_req']:.0f}us rss/worker={r['rss_peak_mb_per_worker']}MB "
            f"residual={cpu.residual_cores:.2f} cores {r['state']}"
            + (f"  [{s['sample'][:120]}]" if "sample" in s else "")
        )
        if best is None or (best["state"] == "DIRTY" and not dirty):
            best = r
        if not dirty:
            break
    assert best is not None
    best["tries"] = tries
    h.results.append(best)
    return best


def unavailable(h: Runs, sid: str, title: str, note: str, **kw: Any) -> None:
    log(f"-- {sid}: {title}: not available ({note})")
    h.results.append({"id": sid, "group": sid.split(".")[0], "title": title, "available": False, "note": note, **kw})
