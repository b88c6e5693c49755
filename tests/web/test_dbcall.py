"""tessera.web.dbcall: SQLite work stays on the event loop, PostgreSQL work goes to the pool."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

from tessera.web import dbcall


def _core(dialect: str | None):
    engine = SimpleNamespace(dialect=SimpleNamespace(name=dialect)) if dialect else None
    return SimpleNamespace(store=SimpleNamespace(engine=engine) if engine else SimpleNamespace())


def test_where_the_call_runs():
    async def main():
        loop_thread = threading.get_ident()
        on = {}
        for name in ("sqlite", "postgresql", None):
            core = _core(name)
            on[name] = await dbcall.run(core, lambda x, y=0: (threading.get_ident(), x + y), 1, y=2)
            assert on[name][1] == 3
        assert on["sqlite"][0] == loop_thread and on[None][0] == loop_thread  # local work: no hop
        assert on["postgresql"][0] != loop_thread  # a round trip: in the pool

    asyncio.run(main())


def test_errors_come_back_to_the_caller():
    async def main():
        def boom():
            raise ValueError("no")

        try:
            await dbcall.run(_core("postgresql"), boom)
        except ValueError as e:
            return str(e)

    assert asyncio.run(main()) == "no"
