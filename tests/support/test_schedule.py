"""The suite's own scheduling helpers: the longest-first order and the shared-server list."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from xdist.scheduler import LoadScopeScheduling

from tests.conftest import SHARED_SERVER_MODULES, keep_collection_order
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


@dataclass(eq=False)
class Worker:
    """What xdist's scheduler asks of a worker: an id, and the tests it is sent (their indexes)."""

    id: str
    sent: list[int] = field(default_factory=list)
    shutting_down: bool = False

    @property
    def gateway(self) -> SimpleNamespace:
        return SimpleNamespace(id=self.id)

    def send_runtest_some(self, indexes: list[int]) -> None:
        self.sent.extend(indexes)

    def shutdown(self) -> None:
        self.shutting_down = True


@pytest.mark.parametrize("reorder", [True, False], ids=["xdist-default", "ours"])
def test_loadscope_hands_out_the_longest_module_first(reorder: bool) -> None:
    """xdist's own scheduler, given our collection order: the first module handed out is the
    longest, though it has the fewest tests; without tests/conftest.py's option, the module with
    the most tests would go first."""
    option = SimpleNamespace(loadscopereorder=True)
    if not reorder:
        keep_collection_order(option)
    config = SimpleNamespace(option=option, getvalue=lambda name: ["1*popen"] if name == "tx" else None)
    longest, other = LONGEST_FIRST[0], "tests/core/test_clock.py"
    collection = [f"{longest}::test_a", *(f"{other}::test_{i}" for i in range(5))]
    scheduler = LoadScopeScheduling(config)  # type: ignore[arg-type]
    worker = Worker("gw0")
    scheduler.add_node(worker)  # type: ignore[arg-type]
    scheduler.add_node_collection(worker, collection)  # type: ignore[arg-type]
    scheduler.schedule()
    first = collection[worker.sent[0]].split("::")[0]
    assert first == (other if reorder else longest)
