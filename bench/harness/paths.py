"""Where things are: the bench folder, the Lua scripts, the results, the peers."""

from __future__ import annotations

from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
REPO = BENCH.parent
LUA = BENCH / "lua"
RESULTS = BENCH / "results"
PEERS_SRC = REPO.parent / "shared" / "peers"
PEERS_WORK = BENCH / "peers-work"
