"""CPU and memory accounting from /proc, for the benchmark harness (stdlib only).

The idea is the one of the peers' ``procacct.py`` (../shared/peers/): snapshot every
process's CPU ticks before and after a load run, attribute each process to a *group*
by walking up its parent chain to a known root (the server under test, the harness and
its wrk, a client-side nginx, the database), and compare the sum with the machine's own
busy time, so that a run disturbed by other work on a shared machine can be told apart.

    snap = snapshot(); ...load...; after = snapshot()
    cpu = diff(snap, after, {"server": [server_pid], "self": [os.getpid()]})
    cpu.groups["server"]   # CPU seconds of the server's process tree in the window
    cpu.residual           # machine busy time that no group (nor a kernel thread) explains

Processes are keyed by (pid, starttime), so a reused pid is not confused with an old one.
CPU of a process is utime + stime + cutime + cstime (children it reaped are included).

:class:`RssSampler` samples ``VmRSS`` of every process of some trees while a run goes on
and reads ``VmHWM`` at the end: the peak resident memory of each worker.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

HZ = os.sysconf("SC_CLK_TCK")
PF_KTHREAD = 0x00200000


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    ticks: int
    comm: str
    kthread: bool


@dataclass
class Snapshot:
    procs: dict[tuple[int, int], Proc]
    busy_ticks: int
    total_ticks: int
    at: float


@dataclass
class CpuDiff:
    #: CPU seconds per group (each group: the process trees under its roots)
    groups: dict[str, float]
    foreign: float
    kthreads: float
    machine_busy: float
    machine_total: float
    #: machine_busy minus every group and kernel threads: work nobody here accounts for
    residual: float
    wall: float
    top_foreign: list[tuple[int, str, float]] = field(default_factory=list)

    @property
    def residual_cores(self) -> float:
        return self.residual / self.wall if self.wall > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "groups": {k: round(v, 3) for k, v in self.groups.items()},
            "foreign": round(self.foreign, 3),
            "kthreads": round(self.kthreads, 3),
            "machine_busy": round(self.machine_busy, 3),
            "machine_total": round(self.machine_total, 3),
            "residual": round(self.residual, 3),
            "residual_cores": round(self.residual_cores, 3),
            "wall": round(self.wall, 3),
            "top_foreign": [f"{pid}:{comm}:{s:.2f}" for pid, comm, s in self.top_foreign],
        }


def _read_stat(pid: str) -> tuple[Proc, int] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    rest = raw[raw.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): ppid=4, flags=9, utime..cstime=14..17, starttime=22
    ppid = int(rest[1])
    flags = int(rest[6])
    ticks = int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
    start = int(rest[19])
    return Proc(int(pid), ppid, ticks, comm, bool(flags & PF_KTHREAD)), start


def _machine() -> tuple[int, int]:
    # /proc/stat "cpu": user nice system idle iowait irq softirq steal ...
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    total = sum(v[:8])
    return total - v[3] - v[4], total


def snapshot() -> Snapshot:
    procs: dict[tuple[int, int], Proc] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        got = _read_stat(name)
        if got is None:
            continue
        proc, start = got
        procs[(proc.pid, start)] = proc
    busy, total = _machine()
    return Snapshot(procs, busy, total, time.monotonic())


def diff(before: Snapshot, after: Snapshot, roots: dict[str, list[int]]) -> CpuDiff:
    """CPU seconds of each group of process trees between two snapshots.

    A process belongs to the group of the first root met walking up from it (itself
    included), so a server started by the harness counts as "server", not "self"."""
    parent: dict[int, int] = {}
    for snap in (before, after):
        for p in snap.procs.values():
            parent[p.pid] = p.ppid
    root_group = {pid: g for g, pids in roots.items() for pid in pids if pid}

    def owner(pid: int) -> str | None:
        for _ in range(64):
            if not pid:
                return None
            g = root_group.get(pid)
            if g is not None:
                return g
            pid = parent.get(pid, 0)
        return None

    groups = {g: 0 for g in roots}
    foreign = kth = 0
    per: list[tuple[int, int, str]] = []
    for key, p in after.procs.items():
        old = before.procs.get(key)
        d = p.ticks - (old.ticks if old else 0)
        if d <= 0:
            continue
        if p.kthread:
            kth += d
            continue
        g = owner(p.pid)
        if g is not None:
            groups[g] += d
        else:
            foreign += d
            per.append((d, p.pid, p.comm))
    per.sort(reverse=True)
    busy = after.busy_ticks - before.busy_ticks
    total = after.total_ticks - before.total_ticks
    residual = busy - sum(groups.values()) - kth
    return CpuDiff(
        groups={g: t / HZ for g, t in groups.items()},
        foreign=foreign / HZ,
        kthreads=kth / HZ,
        machine_busy=busy / HZ,
        machine_total=total / HZ,
        residual=residual / HZ,
        wall=after.at - before.at,
        top_foreign=[(pid, comm, d / HZ) for d, pid, comm in per[:4]],
    )


def tree(roots: list[int]) -> list[int]:
    """The pids of every living process under ``roots`` (roots included)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [r for r in roots if r]
    while todo:
        pid = todo.pop()
        if os.path.exists(f"/proc/{pid}"):
            out.append(pid)
            todo.extend(children.get(pid, []))
    return out


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of one process, in kB (empty if it has gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def workers(roots: list[int]) -> list[int]:
    """The processes that serve requests: the leaves of the trees (a gunicorn or uvicorn
    supervisor is not a worker; multiprocessing's resource tracker neither), or the root
    itself when it has no children (node, a single-process uvicorn)."""
    pids = tree(roots)
    parents = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                raw = f.read()
            parents.add(int(raw[raw.rindex(")") + 2 :].split()[1]))
        except OSError:
            pass
    leaves = [p for p in pids if p not in parents and p not in roots and "resource_tracker" not in cmdline(p)]
    return leaves or [r for r in roots if r in pids]


class RssSampler:
    """Samples VmRSS of every worker of ``roots`` every ``interval`` seconds in a thread."""

    def __init__(self, roots: list[int], interval: float = 0.25) -> None:
        self.roots = roots
        self.interval = interval
        self.peak_kb: dict[int, int] = {}
        self.hwm_kb: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._workers = workers(self.roots)
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()
        for pid in self._workers:
            hwm = memory_kb(pid).get("VmHWM")
            if hwm:
                self.hwm_kb[pid] = hwm

    def _sample(self) -> None:
        for pid in self._workers:
            rss = memory_kb(pid).get("VmRSS")
            if rss and rss > self.peak_kb.get(pid, 0):
                self.peak_kb[pid] = rss

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def summary(self) -> dict:
        return {
            "workers": len(self._workers),
            "rss_peak_mb_per_worker": round(max(self.peak_kb.values(), default=0) / 1024, 1),
            "rss_hwm_mb_per_worker": round(max(self.hwm_kb.values(), default=0) / 1024, 1),
            "rss_peak_mb_by_pid": {str(p): round(v / 1024, 1) for p, v in sorted(self.peak_kb.items())},
        }


def quiet_wait(
    roots: dict[str, list[int]], *, max_wait: float, threshold_cores: float = 0.05, window: float = 2.0, log=print
) -> dict:
    """Wait (at most ``max_wait`` seconds) until the machine's CPU use that no group
    explains stays under ``threshold_cores`` for a ``window``. Returns what was seen."""
    if max_wait <= 0:
        return {"waited": 0.0, "quiet": None}
    t0 = time.monotonic()
    last = None
    while True:
        a = snapshot()
        time.sleep(window)
        d = diff(a, snapshot(), roots)
        last = d.residual_cores
        if last < threshold_cores:
            return {"waited": round(time.monotonic() - t0, 1), "quiet": True, "residual_cores": round(last, 3)}
        waited = time.monotonic() - t0
        if waited >= max_wait:
            log(
                f"   machine never went quiet in {max_wait:.0f} s (residual {last:.2f} cores, "
                f"top {', '.join(f'{c}:{s:.1f}s' for _, c, s in d.top_foreign[:3])}); running anyway"
            )
            return {"waited": round(waited, 1), "quiet": False, "residual_cores": round(last, 3)}
        if int(waited / window) % 10 == 1:
            log(f"   waiting for quiet: residual {last:.2f} cores")
