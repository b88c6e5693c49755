"""tessera.web.dbcall: the one rule for leaving the event loop (``Runtime.run_flow``).

A local database's flow stays on the event loop, a database server's goes to the database
pool, and a flow that may wait leaves the loop whatever the database; the runtime reads
which database it is once, from the store's capability (``SQLDatabase.remote``)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tessera.config import Settings
from tessera.home import init_home
from tessera.web.app import create_app
from tessera.web.dbcall import FlowRunner


def where(runner: FlowRunner, **kw: bool) -> tuple[str, int]:
    async def main() -> tuple[str, int]:
        loop_thread = threading.get_ident()

        def flow(x: int, *, y: int = 0) -> tuple[int, int]:
            return threading.get_ident(), x + y

        ident, total = await runner(flow, 1, y=2, **kw)
        return ("loop" if ident == loop_thread else "thread"), total

    return asyncio.run(main())


def test_where_the_flow_runs():
    assert where(FlowRunner(remote=False)) == ("loop", 3)  # SQLite: no hop
    assert where(FlowRunner(remote=True)) == ("thread", 3)  # PostgreSQL: the database pool
    assert where(FlowRunner(remote=False), waits=True) == ("thread", 3)  # argon2id, a grace-window wait


def test_a_database_server_uses_the_database_pool():
    async def main() -> str:
        return await FlowRunner(remote=True)(lambda: threading.current_thread().name)

    assert asyncio.run(main()).startswith("tessera-db")


def test_errors_come_back_to_the_caller():
    def boom() -> None:
        raise ValueError("no")

    for runner, kw in (
        (FlowRunner(remote=True), {}),
        (FlowRunner(remote=False), {}),
        (FlowRunner(remote=False), {"waits": True}),
    ):
        with pytest.raises(ValueError, match="no"):
            asyncio.run(runner(boom, **kw))


def test_the_loop_serves_others_while_a_remote_flow_waits():
    async def main() -> list[str]:
        runner, order = FlowRunner(remote=True), []

        async def other() -> None:
            order.append("other")

        await asyncio.gather(runner(lambda: (time.sleep(0.2), order.append("flow"))), other())
        return order

    assert asyncio.run(main()) == ["other", "flow"]


def test_the_runtime_runs_sqlite_flows_on_the_loop(tmp_path):
    init_home(tmp_path / "home", now=int(time.time()))
    rt = create_app(Settings.load(tmp_path / "home")).state.runtime
    assert rt.run_flow.remote is False
