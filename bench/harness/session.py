"""``Harness``: one run of the selected scenarios, in the order of ``scenarios.STEPS``; one
broken group does not lose the others' figures; the results JSON (then the report) is
written at the end, and every process started is stopped, whatever happens."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.harness import machine, servers, wrk
from bench.harness.fixtures import Fixture
from bench.harness.paths import PEERS_SRC, RESULTS
from bench.harness.procs import Processes, log


class Harness:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(__file__).resolve().parents[1] / "work"
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
        return scenarios.select(spec)

    def want(self, *ids: str) -> bool:
        return any(i in self.selected for i in ids)

    # ------------------------------------------------------------------ the run
    def run(self) -> int:
        if self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)
        RESULTS.mkdir(parents=True, exist_ok=True)
        log(
            f"== tessera bench: {', '.join(self.selected)}; wrk -t{self.args.threads} -c{self.args.connections} "
            f"-d{self.args.duration}s after a {self.args.warmup} s warm-up"
        )
        steps: list[tuple[str, Callable[[Harness], None]]] = []
        if self.peers:
            steps.append(scenarios.PEERS_STEP)
        elif not PEERS_SRC.is_dir():
            log(f"   (no {PEERS_SRC}: the peers are not measured, and there are no ratios)")
        steps += scenarios.STEPS
        finished = False
        try:
            for name, fn in steps:
                try:
                    fn(self)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as e:  # one broken group must not lose the others' figures
                    log(f"!! {name} failed: {e!r}")
                    traceback.print_exc()
                    self.results.append(
                        {
                            "id": f"error.{name}",
                            "group": name,
                            "available": False,
                            "note": f"failed: {type(e).__name__}: {str(e)[:300]}",
                        }
                    )
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
        from bench import report  # matplotlib is imported only to draw the chart

        log("== targets (tessera one worker against node-oidc-provider in this run):")
        report.print_targets(json.loads(json.dumps(data)))
        if finished and not self.args.no_report:
            report.write_all(data, results_json=out)

    def meta(self) -> dict[str, Any]:
        return machine.meta(self.args, started=self.started, selected=self.selected, peers=self.peers)

    # ------------------------------------------------------------------ what the scenarios use
    def wrk(
        self,
        url: str,
        lua: str,
        args: list[str],
        duration: int,
        *,
        latency: bool = True,
        out: Path | None = None,
        mid: Callable[[], None] | None = None,
    ) -> tuple[str, float]:
        return wrk.run_wrk(self, url, lua, args, duration, latency=latency, out=out, mid=mid)

    def measure(
        self,
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
        return wrk.measure(
            self,
            sid,
            title,
            url,
            lua,
            args,
            target=target,
            server=server,
            port=port,
            config=config,
            extra_groups=extra_groups,
            endpoint=endpoint,
            note=note,
        )

    def unavailable(self, sid: str, title: str, note: str, **kw: Any) -> None:
        wrk.unavailable(self, sid, title, note, **kw)

    @contextlib.contextmanager
    def tessera(
        self,
        name: str,
        *,
        mode: str = "proxy",
        workers: int = 1,
        clients: int = 10,
        database_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Iterator[tuple[Any, Fixture]]:
        with servers.tessera(
            self.work,
            name,
            log_level=self.args.tessera_log_level,
            mode=mode,
            workers=workers,
            clients=clients,
            database_url=database_url,
            env=env,
        ) as served:
            yield served
