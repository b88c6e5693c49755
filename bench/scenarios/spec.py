"""A scenario as data: its id, title, Lua script (None for loads that wrk does not drive)
and endpoint."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    lua: str | None = None
    endpoint: str = ""
