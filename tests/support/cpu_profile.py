"""Where the suite's CPU goes: ``pytest -p tests.support.cpu_profile`` writes, per worker, the CPU
seconds (the worker's own and its reaped children's: ``tessera serve``, the CLI, openssl, PostgreSQL…)
spent in each test's setup, call and teardown, summed per module, to ``$TESSERA_CPU_PROFILE_DIR``
(default ``.cpu-profile/``). ``python -m tests.support.cpu_profile`` prints the modules by CPU.

A child's CPU is counted when it is reaped: the servers that live for the whole session (the shared
live servers, PostgreSQL, Redis) are reaped in the last test's teardown, so that teardown is charged
to a row of its own, ``(session teardown)``, not to whichever module happened to run last; and what
no test ran (each worker's start and collection) to ``(worker start, collection)``.

The figures are user + system time from ``getrusage``: unlike wall time, they do not move with the
load other processes put on the machine (the CI machine has two cores, and so on)."""

from __future__ import annotations

import json
import os
import resource
import sys
from collections import defaultdict
from pathlib import Path

import pytest

_DIR = Path(os.environ.get("TESSERA_CPU_PROFILE_DIR", ".cpu-profile"))
_modules: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
_start: dict[str, tuple[float, float]] = {}
SESSION_TEARDOWN = "(session teardown)"
UNACCOUNTED = "(worker start, collection)"
CONTROLLER = "(xdist controller)"


def _cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    before = _cpu()
    yield
    after = _cpu()
    row = _modules[item.nodeid.split("::", 1)[0]]
    row["self"] += after[0] - before[0]
    row["children"] += after[1] - before[1]
    row["tests"] += 1


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """The last test's teardown also ends the session's fixtures: moved to its own row."""
    before = _cpu()
    yield
    if nextitem is None:
        after = _cpu()
        row, session = _modules[item.nodeid.split("::", 1)[0]], _modules[SESSION_TEARDOWN]
        for key, spent in (("self", after[0] - before[0]), ("children", after[1] - before[1])):
            row[key] -= spent
            session[key] += spent


def pytest_sessionfinish(session) -> None:
    _DIR.mkdir(exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    total = _cpu()
    if worker == "main" and not _modules:
        # pytest-xdist's controller ran no test: its children are the workers, which write
        # their own figures; only its own CPU is new.
        _modules[CONTROLLER]["self"] += total[0]
        total = (total[0], 0.0)
    else:
        accounted = [sum(r[k] for r in _modules.values()) for k in ("self", "children")]
        _modules[UNACCOUNTED]["self"] += max(0.0, total[0] - accounted[0])
        _modules[UNACCOUNTED]["children"] += max(0.0, total[1] - accounted[1])
    data = {"modules": _modules, "total": {"self": total[0], "children": total[1]}}
    (_DIR / f"{worker}-{os.getpid()}.json").write_text(json.dumps(data, indent=1))


def main() -> None:
    rows: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for f in (Path(sys.argv[1]) if len(sys.argv) > 1 else _DIR).glob("*.json"):
        for module, row in json.loads(f.read_text())["modules"].items():
            for k, v in row.items():
                rows[module][k] += v
    total = sum(r["self"] + r["children"] for r in rows.values())
    print(f"{'module':70} {'tests':>6} {'self s':>8} {'child s':>8} {'cpu s':>8}")
    for module, r in sorted(rows.items(), key=lambda kv: -(kv[1]["self"] + kv[1]["children"])):
        cpu = r["self"] + r["children"]
        print(f"{module:70} {int(r['tests']):6} {r['self']:8.1f} {r['children']:8.1f} {cpu:8.1f}")
    print(f"{'total':70} {int(sum(r['tests'] for r in rows.values())):6} {'':8} {'':8} {total:8.1f}")


if __name__ == "__main__":
    main()
