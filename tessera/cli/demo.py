"""``tessera demo``: every profile's flow end to end against a running server."""

from __future__ import annotations

from typing import Annotated

import typer

from tessera.cli.common import HomeOpt, JsonOpt, emit, fail, out, require, settings


def demo(
    url: Annotated[str, typer.Option("--url", help="base URL of a running tessera")] = "https://127.0.0.1:8443",
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run every profile's flow end to end against a running server, printing each step.

    The paths are the home's (``tessera --home H demo`` on a ``tessera sandbox --home H``: the
    providers' own paths)."""
    from tessera.demo import DemoFailed, run_demo  # the SDK and httpx: loaded by this command only

    s = settings(home)
    require(s)
    try:
        result = run_demo(s, url, say=(lambda *_: None) if as_json else out.print)
    except DemoFailed as e:
        fail(f"the demo failed at {e}")
    if as_json:
        emit(True, result)
