"""s6: growth: the s1 token loads with 10 000 registered clients, and with 2 workers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.harness.procs import log
from bench.scenarios.s1_tokens import NATIVE, NEXI, token_scenarios
from bench.scenarios.spec import Scenario

if TYPE_CHECKING:
    from bench.harness.session import Harness

GROUP = "s6"
NATIVE_10K = Scenario("s6.native_10k", NATIVE.title + ", many clients", NATIVE.lua, NATIVE.endpoint)
NEXI_10K = Scenario("s6.nexi_10k", NEXI.title + ", many clients", NEXI.lua, NEXI.endpoint)
NATIVE_W2 = Scenario("s6.native_w2", NATIVE.title + ", 2 workers", NATIVE.lua, NATIVE.endpoint)
NEXI_W2 = Scenario("s6.nexi_w2", NEXI.title + ", 2 workers", NEXI.lua, NEXI.endpoint)
SCENARIOS = (NATIVE_10K, NEXI_10K, NATIVE_W2, NEXI_W2)


def run(h: Harness) -> None:
    n = h.args.growth_clients
    if h.want(NATIVE_10K.id, NEXI_10K.id):
        log(f"== s6: tessera, proxy mode, 1 worker, SQLite, {n} clients")
        config = {"workers": 1, "db": "sqlite", "clients": n, "mtls": "proxy", "tls": False}
        with h.tessera("growth-clients", clients=n) as (srv, fx):
            token_scenarios(
                h,
                srv,
                fx,
                native=NATIVE_10K.id if h.want(NATIVE_10K.id) else None,
                nexi=NEXI_10K.id if h.want(NEXI_10K.id) else None,
                config=config,
                title_suffix=f", {n} clients",
            )
    if h.want(NATIVE_W2.id, NEXI_W2.id):
        log("== s6: tessera, proxy mode, 2 workers, SQLite, 10 clients")
        config = {"workers": 2, "db": "sqlite", "clients": 10, "mtls": "proxy", "tls": False}
        with h.tessera("growth-workers", workers=2) as (srv, fx):
            token_scenarios(
                h,
                srv,
                fx,
                native=NATIVE_W2.id if h.want(NATIVE_W2.id) else None,
                nexi=NEXI_W2.id if h.want(NEXI_W2.id) else None,
                config=config,
                title_suffix=", 2 workers",
            )
