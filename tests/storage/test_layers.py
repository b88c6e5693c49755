"""The arrows between core and storage: storage implements core's ports and imports nothing of
core's use cases; core imports neither storage nor the configuration. Checked in a fresh
interpreter, where an import made anywhere in the chain shows up in ``sys.modules``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: What a storage module may load of core: the records, the ports and the kinds.
CORE_FOR_STORAGE = {"tessera.core", "tessera.core.models", "tessera.core.ports", "tessera.core.kinds"}


def _loaded(*modules: str) -> list[str]:
    code = "import importlib, json, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    loaded: list[str] = json.loads(out.stdout)
    return loaded


@pytest.mark.parametrize(
    "module",
    ["tessera.storage.memory", "tessera.storage.sql", "tessera.storage.redis_store", "tessera.storage.redis_limits"],
)
def test_storage_loads_no_use_case(module):
    core = {m for m in _loaded(module) if m.startswith("tessera.core")}
    assert core <= CORE_FOR_STORAGE | {"tessera.core.ratelimit"}, core - CORE_FOR_STORAGE


def test_core_loads_no_storage_configuration_or_web():
    modules = [
        "tessera.core.context",
        "tessera.core.refresh",
        "tessera.core.tokens",
        "tessera.core.purge",
        "tessera.core.flows.native",
        "tessera.core.flows.b2binpay",
        "tessera.core.flows.nexi",
        "tessera.core.flows.mobilepay",
        "tessera.core.flows.axept",
        "tessera.core.client_auth",
    ]
    loaded = _loaded(*modules)
    assert set(modules) <= set(loaded)  # the check saw them
    assert not [
        m
        for m in loaded
        if m.startswith(
            ("tessera.storage", "tessera.config", "tessera.web", "pydantic", "sqlalchemy", "redis", "starlette")
        )
    ]
