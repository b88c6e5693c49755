"""The ``tessera`` command. The contract (names, flags, ``--json`` output) is kept stable:
tests and documentation rely on it. Every command takes ``--home DIR`` (default
``$TESSERA_HOME``, else ``./.tessera``); with ``--json`` a command prints one JSON object.

One module per command group, each over the admin layer (``tessera.admin``); ``init`` and
``serve`` (``tessera.cli.server``) work on the home itself."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from tessera.cli import certs, clients, enrollments, events, jwks, keys, merchants, orgs, portal
from tessera.cli.common import HomeOpt, err, set_global_home
from tessera.cli.demo import demo
from tessera.cli.ops import backup, restore
from tessera.cli.purge import purge
from tessera.cli.rotation import ca_app, kek_app, pepper_app
from tessera.cli.sandbox import sandbox
from tessera.cli.server import init, serve
from tessera.config import ConfigError

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="tessera: authorization server for B2B payment channels"
)


def package_version() -> str:
    """The installed distribution's version (its metadata), else the package's own."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tessera-auth")
    except PackageNotFoundError:  # pragma: no cover - running from a tree that was never installed
        from tessera import __version__

        return __version__


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tessera {package_version()}")
        raise typer.Exit(0)


@app.callback()
def _main(
    home: HomeOpt = None,
    version: Annotated[
        bool,
        typer.Option("--version", help="print the version and exit", callback=_version, is_eager=True),
    ] = False,
) -> None:
    set_global_home(home)


app.command()(init)
app.command()(serve)
app.add_typer(orgs.app, name="orgs")
app.add_typer(clients.app, name="clients")
app.add_typer(certs.app, name="certs")
app.add_typer(merchants.app, name="merchants")
app.add_typer(jwks.app, name="jwks")
app.add_typer(enrollments.app, name="enrollments")
app.add_typer(keys.app, name="keys")
app.add_typer(events.app, name="events")
app.add_typer(portal.app, name="portal")
app.command("purge")(purge)
app.command("backup")(backup)
app.command("restore")(restore)
app.add_typer(kek_app, name="kek")
app.add_typer(ca_app, name="ca")
app.add_typer(pepper_app, name="pepper")
app.command()(demo)
app.command()(sandbox)


def main() -> None:  # console-script entry point
    try:
        app()
    except ConfigError as e:  # one line, exit 2, no traceback, no secret (its message never holds a value)
        err.print(f"[bold red]configuration error:[/] {escape(str(e))}", highlight=False)
        sys.exit(2)


__all__ = ["app", "main"]
