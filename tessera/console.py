"""The ``tessera`` console script. The CLI is part of the server extra; without it the
command says what to install, in one line, and exits 2 (no traceback)."""

from __future__ import annotations

import sys

from tessera import startup

__all__ = ["main"]

#: Import names of the server extra's packages (pyproject.toml, ``[project.optional-dependencies] server``).
SERVER_MODULES = frozenset(
    {
        "starlette",
        "uvicorn",
        "multipart",
        "python_multipart",
        "sqlalchemy",
        "alembic",
        "psycopg",
        "pydantic",
        "pydantic_settings",
        "typer",
        "click",
        "rich",
        "argon2",
        "structlog",
        "prometheus_client",
        "jinja2",
        "redis",
        "orjson",
        "pyzipper",
    }
)
MESSAGE = "tessera: the server needs: pip install 'tessera-auth[server]'"


def main() -> None:
    startup.defer()  # a server settles once its app is built (tessera.startup)
    # The CLI imports a command's modules when that command runs: a missing package of the
    # extra can show there, not only at the first import.
    try:
        from tessera.cli import main as cli_main

        cli_main()
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in SERVER_MODULES:
            raise
        print(f"{MESSAGE} (missing: {e.name})", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover - python -m tessera.console
    main()
