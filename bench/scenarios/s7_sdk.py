"""s7: the SDK's token cache, in process (``bench/sdk_bench.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.harness.paths import REPO
from bench.harness.procs import log
from bench.scenarios.spec import Scenario

if TYPE_CHECKING:
    from bench.harness.session import Harness

GROUP = "s7"
SDK = Scenario("s7.sdk", "SDK token cache")
SCENARIOS = (SDK,)


def run(h: Harness) -> None:
    if not h.want(SDK.id):
        return
    if not (REPO / "tessera" / "sdk" / "cache.py").exists():
        h.unavailable(SDK.id, SDK.title, "tessera/sdk/cache.py does not exist")
        return
    from bench import sdk_bench

    log("== s7: SDK token cache (in process)")
    res = sdk_bench.run(threads=100, rounds=h.args.sdk_rounds)
    log(
        f"   hit {res['hit_sync_ns']} ns (sync), {res['hit_async_ns']} ns (asyncio); single flight x100 threads: "
        f"{res['single_flight']['fetches_max']} fetch, overhead p50 {res['single_flight']['overhead_ms_p50']} ms"
    )
    h.extras["sdk"] = res
    h.results.append(
        {
            "id": SDK.id,
            "group": "s7",
            "title": SDK.title,
            "target": "tessera-sdk",
            "available": True,
            "non2xx": 0,
            "state": "CLEAN",
            "sdk": res,
        }
    )
