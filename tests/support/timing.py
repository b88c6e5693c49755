"""Helpers for the tests that time the code: the measurement runs without a tracer.

``make test-fast`` and ``make coverage`` run the suite under coverage, whose trace function
runs on every line and costs several microseconds a call: a test that checks that a hot path
costs "a few microseconds" would measure the tracer. ``untraced()`` lifts the current thread's
trace function for the measurement and puts it back; what runs is the same code.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def untraced() -> Iterator[None]:
    tracer = sys.gettrace()
    sys.settrace(None)
    try:
        yield
    finally:
        sys.settrace(tracer)
