"""The garbage collector while a process starts (a leaf: it imports nothing of tessera).

Starting a ``tessera`` process is mostly imports (the CLI, SQLAlchemy, pydantic, Starlette): tens
of thousands of objects that live as long as the process. CPython's cyclic collector, at its
default thresholds, walks them again and again as they pile up: the older generations'
collections were 40 to 70 ms of a command's 0.5 to 0.7 CPU seconds (``docs/testing.md``). While
a process starts, :func:`defer` lets only the youngest generation be collected (a few hundred
objects each time, so a young cycle is still freed); :func:`settle` gives the collector
CPython's thresholds back once a server's app is built: one full collection (the start's few
hundred garbage objects, of ~97,000 tracked, measured on a ``tessera serve`` start), then it
freezes what is left (it lives as long as the process, and no later full collection walks it
again). A command that exits without serving never settles: its older generations are collected
after a thousand young collections.
"""

from __future__ import annotations

import gc

#: CPython's thresholds, as this process found them.
DEFAULT = gc.get_threshold()
#: While starting: the youngest generation as CPython collects it; the older ones after a
#: thousand young collections (a command's start makes fewer than two hundred).
DEFERRED = (DEFAULT[0], 1000, 1000)


def defer() -> None:
    """Collect only the youngest generation until :func:`settle` (called first by the console script)."""
    gc.set_threshold(*DEFERRED)


def settle() -> None:
    """The start is over: collect its garbage, freeze what it made, restore CPython's thresholds.
    Idempotent."""
    if gc.get_threshold() != DEFAULT:
        gc.collect()
        gc.freeze()
        gc.set_threshold(*DEFAULT)
