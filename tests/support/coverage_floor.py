"""Coverage per package from ``coverage json``, and the floors ``make test-fast`` and ``make coverage`` hold.

coverage's own ``fail_under`` takes one combined figure (statements and branches together) for
everything reported; the floor of ``make test-fast`` is on *branches* of one package
(``tessera/core``), so it is read here from the JSON report.

    python -m tests.support.coverage_floor .coverage.json --package tessera/core --branches 95
    python -m tests.support.coverage_floor .coverage.json --total 93
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path


def package_of(path: str) -> str:
    """``tessera/web/profiles/nexi.py`` -> ``tessera/web/profiles``; top-level modules -> ``tessera``."""
    return str(Path(path).parent)


def totals(files: dict[str, dict], prefix: str | None = None) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for path, data in files.items():
        if prefix is not None and not (path == prefix or path.startswith(prefix.rstrip("/") + "/")):
            continue
        s = data["summary"]
        for key in ("num_statements", "covered_lines", "num_branches", "covered_branches"):
            out[key] += s[key]
    return out


def pct(covered: int, total: int) -> float:
    return 100.0 * covered / total if total else 100.0


def combined(t: dict[str, int]) -> float:
    """coverage's own figure: statements and branches counted together."""
    return pct(t["covered_lines"] + t["covered_branches"], t["num_statements"] + t["num_branches"])


def table(files: dict[str, dict]) -> str:
    rows = [f"{'package':<28} {'lines':>8} {'branches':>9} {'combined':>9}"]
    for pkg in sorted({package_of(p) for p in files}):
        t = totals({p: d for p, d in files.items() if package_of(p) == pkg})
        rows.append(
            f"{pkg:<28} {pct(t['covered_lines'], t['num_statements']):7.1f}% "
            f"{pct(t['covered_branches'], t['num_branches']):8.1f}% {combined(t):8.1f}%"
        )
    t = totals(files)
    rows.append(
        f"{'total':<28} {pct(t['covered_lines'], t['num_statements']):7.1f}% "
        f"{pct(t['covered_branches'], t['num_branches']):8.1f}% {combined(t):8.1f}%"
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path, help="the file `coverage json` wrote")
    ap.add_argument("--package", help="the package the --branches floor is on, e.g. tessera/core")
    ap.add_argument("--branches", type=float, help="floor on the package's branch coverage, in %%")
    ap.add_argument("--total", type=float, help="floor on the combined figure of everything measured, in %%")
    args = ap.parse_args(argv)
    files = json.loads(args.report.read_text())["files"]
    print(table(files))
    failed = []
    if args.branches is not None:
        if not args.package:
            ap.error("--branches needs --package")
        t = totals(files, args.package)
        if not t["num_branches"]:
            failed.append(f"{args.package}: no file measured")
        else:
            got = pct(t["covered_branches"], t["num_branches"])
            print(f"{args.package}: {got:.1f}% of {t['num_branches']} branches (floor {args.branches:g}%)")
            if got < args.branches:
                failed.append(
                    f"{args.package} covers {got:.1f}% of its branches, under the floor of {args.branches:g}%"
                )
    if args.total is not None:
        got = combined(totals(files))
        print(f"total: {got:.1f}% (floor {args.total:g}%)")
        if got < args.total:
            failed.append(f"the suite covers {got:.1f}%, under the floor of {args.total:g}%")
    for line in failed:
        print(f"FAIL: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
