"""``tessera init`` and ``tessera serve``: create a home, serve it."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from tessera.cli.common import HomeOpt, JsonOpt, emit, err, fail, global_home, require, settings
from tessera.config import Settings, redact_url


def init(
    home: HomeOpt = None,
    environment: Annotated[str, typer.Option(help="staging or production")] = "staging",
    issuer: Annotated[str | None, typer.Option(help="issuer URL (default https://HOSTNAME:PORT)")] = None,
    hostname: Annotated[str, typer.Option(help="name in the server's TLS certificate")] = "localhost",
    port: Annotated[int, typer.Option(help="port the issuer URL names")] = 8443,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="SQLAlchemy URL of the database (default $TESSERA_DATABASE_URL, else SQLite in the home); "
            "recorded in tessera.toml without its password",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a new home: CA, server TLS certificate, keys, database, tessera.toml."""
    from tessera.home import HomeExists, init_home

    if environment not in ("staging", "production"):
        fail("--environment must be staging or production")
    target = home or global_home() or Settings.load().home
    try:
        s = init_home(
            target,
            environment=environment,
            issuer=issuer,
            hostname=hostname,
            port=port,
            now=int(time.time()),
            database_url=database_url,
        )
    except HomeExists as e:
        fail(str(e))
    data = {
        "home": str(s.home.resolve()),
        "issuer": s.issuer,
        "environment": s.environment,
        "ca": str(s.ca_cert_path.resolve()),
        "database_url": redact_url(s.database_url),
    }
    emit(
        as_json,
        data,
        f"initialised {data['home']}\n  issuer: {s.issuer}\n  CA certificate: {data['ca']}\n"
        f"  database: {data['database_url']}\nnext: tessera --home {s.home} serve",
    )


def serve(
    home: HomeOpt = None,
    host: Annotated[str | None, typer.Option(help="address to bind (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 8443)")] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes")] = None,
) -> None:
    """Serve HTTPS with optional client certificates (embedded mTLS), or plain HTTP behind a proxy."""
    s = settings(home, host=host, port=port, workers=workers)
    require(s)
    # uvicorn and the web app: loaded by this command only (start-up time of the others), and
    # only once the settings are valid (a refused configuration exits without loading them).
    from tessera.server import run

    run(s, announce=err.print)
