"""The suite's own scheduling helpers: the longest-first order and the shared-server list."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.conftest import SHARED_SERVER_MODULES
from tests.support.schedule import LONGEST_FIRST, longest_first

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Item:
    nodeid: str


def test_listed_modules_exist():
    """A renamed module would silently lose its place (or its shared server): the lists name files that exist."""
    for path in LONGEST_FIRST:
        assert (REPO / path).is_file(), path
    for module in SHARED_SERVER_MODULES:
        assert (REPO / (module.replace(".", "/") + ".py")).is_file(), module


def test_longest_first_keeps_each_modules_own_order():
    first, second = LONGEST_FIRST[0], LONGEST_FIRST[1]
    items = [
        Item("tests/core/test_clock.py::test_a"),
        Item(f"{second}::test_b"),
        Item(f"{first}::test_c[1]"),
        Item("tests/core/test_clock.py::test_d"),
        Item(f"{first}::test_c[0]"),
    ]
    longest_first(items)
    assert [i.nodeid for i in items] == [
        f"{first}::test_c[1]",
        f"{first}::test_c[0]",
        f"{second}::test_b",
        "tests/core/test_clock.py::test_a",
        "tests/core/test_clock.py::test_d",
    ]
