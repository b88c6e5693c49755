"""The SDK imports nothing of the server: ``import tessera.sdk`` and ``import
tessera.sdk.resource`` (and using what they export) load no server module, no web framework
and no database driver. Starlette comes only with ``tessera.sdk.resource.starlette``, when
it is asked for. Each case runs in a fresh interpreter and reads ``sys.modules``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SERVER = (
    "tessera.web",
    "tessera.storage",
    "tessera.core",
    "tessera.cli",
    "tessera.admin",
    "tessera.server",
    "tessera.home",
    "tessera.config",
    "uvicorn",
    "sqlalchemy",
    "pydantic_settings",
    "alembic",
    "redis",
    "psycopg",
    "typer",
    # the rest of the server extra (pyproject.toml): an SDK-only install has none of them
    "tessera.jose",
    "orjson",
    "argon2",
    "structlog",
    "prometheus_client",
    "jinja2",
    "pydantic",
)
#: Starlette loads these itself when they are installed (require_token brings Starlette).
STARLETTE_OPTIONAL = ("multipart", "python_multipart")


def _loaded(code: str) -> list[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    modules: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return modules


def _matching(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)]


@pytest.mark.parametrize(
    "code",
    [
        "import tessera.sdk",
        "import tessera.sdk.resource",
        # every name the resource package exports without Starlette, used
        "from tessera.sdk.resource import (AuthContext, InsufficientScope, InvalidTokenError, JWKSCache, "
        "MobilePayMerchantRule, PosApiError, TokenVerifier)\n"
        "from tessera.sdk import TokenVerifier as T, NexiSoftPOSClient, AxeptClient, MobilePayClient, B2BinPayClient\n"
        "TokenVerifier({'keys': []}, issuer='https://as.example', audience='api').jwks.get_key(None)\n"
        "MobilePayMerchantRule().merchant({'merchant_vat': 'DK12345678'}, [])",
    ],
)
def test_sdk_loads_no_server_module_and_no_starlette(code: str) -> None:
    modules = _loaded(code)
    assert _matching(modules, (*SERVER, *STARLETTE_OPTIONAL, "starlette")) == []
    assert "tessera.sdk" in modules


def test_the_starlette_dependency_loads_starlette_and_still_no_server_module() -> None:
    modules = _loaded("from tessera.sdk.resource import require_token, resource_error_handler")
    assert "starlette" in modules and "tessera.sdk.resource.starlette" in modules
    assert _matching(modules, SERVER) == []


def test_the_probe_sees_a_server_import() -> None:
    """The check can fail: importing the web layer is seen."""
    modules = _loaded("import tessera.web.mtls, tessera.home")
    assert "tessera.web.mtls" in _matching(modules, SERVER)
    assert "sqlalchemy" in _matching(modules, SERVER)
