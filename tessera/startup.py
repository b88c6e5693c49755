"""The garbage collector while a process starts (a leaf: it imports nothing of tessera).

Starting a ``tessera`` process is mostly imports (the CLI, SQLAlchemy, pydantic, Starlette): tens
of thousands of objects that live as long as the process. CPython's cyclic collector, at its
default thresholds, walks them again and again as they pile up: the older generations'
collections were 40 to 70 ms of a command's 0.5 to 0.7 CPU seconds (``docs/testing.md``). While
a process starts, :func:`defer` lets only the youngest generation be collected (a few hundred
objects each time, so a young cycle is still freed); :func:`settle` gives the collector
CPython's thresholds back once a server's app is built, and freezes what the start made first
(it lives as long as the process, and no later full collection walks it again). Freezing keeps
the start's own garbage too: about 500 objects of the ~97,000 tracked on a ``tessera serve``
start, once; a full collection before the freeze would free them, and cost 46 to 56 ms of that
start, more than the deferral saves. A command that exits without serving never settles: its
older generations are collected after a thousand young collections.
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
    """The start is over: freeze what it made and restore CPython's thresholds. Only undoes
    :func:`defer` (thresholds someone else chose are left alone); idempotent."""
    if gc.get_threshold() == DEFERRED:
        gc.freeze()
        gc.set_threshold(*DEFAULT)
