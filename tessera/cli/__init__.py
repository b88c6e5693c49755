"""The ``tessera`` command. The contract (names, flags, ``--json`` output) is kept stable:
tests and documentation rely on it. Every command takes ``--home DIR`` (default
``$TESSERA_HOME``, else ``./.tessera``); with ``--json`` a command prints one JSON object.

One module per command group, each over the admin layer (``tessera.admin``); ``init`` and
``serve`` (``tessera.cli.server``) work on the home itself.

A process imports only the module of the command it runs (``COMMANDS``, loaded by
``LazyGroup``): the admin layer, the SQL store, Alembic, uvicorn are not paid for by
``tessera --version`` or by a command that does not use them. ``tessera --help`` lists the
commands from their summaries in ``COMMANDS`` without importing them; a test keeps that
listing identical to the one the loaded commands give."""

from __future__ import annotations

import importlib
import sys
from typing import Annotated, Any, cast

import typer
from typer.core import TyperCommand, TyperGroup

from tessera.cli.common import HomeOpt, err, set_global_home

#: Every command, in the order ``tessera --help`` lists them (the commands, then the groups):
#: name -> (module, attribute: a function or a ``typer.Typer``, the first paragraph of its help).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": (
        "tessera.cli.server",
        "init",
        "Create a new home: CA, server TLS certificate, keys, database, tessera.toml.",
    ),
    "serve": (
        "tessera.cli.server",
        "serve",
        "Serve HTTPS with optional client certificates (embedded mTLS), or plain HTTP behind a proxy.",
    ),
    "purge": (
        "tessera.cli.purge",
        "purge",
        "Delete expired artefacts (pushed requests, codes, jtis, refresh tokens and families no\n"
        "token needs any more) and security events past TESSERA_EVENT_RETENTION_DAYS, now; prints\n"
        "the rows deleted per kind. The server also does this every TESSERA_PURGE_INTERVAL_SECONDS.",
    ),
    "backup": (
        "tessera.cli.ops",
        "backup",
        "Copy the SQLite database to FILE while the server runs (SQLite's online backup: one\n"
        "consistent snapshot), checked and owner-only. PostgreSQL: use pg_dump (docs/operations.md).\n"
        "Keep the KEK and the pepper with it: the copy is useless without them.",
    ),
    "restore": (
        "tessera.cli.ops",
        "restore",
        "Replace the SQLite database with FILE: refused while a server has the database open\n"
        "(stop it first); FILE must be a tessera database this version knows, sealed under this\n"
        "home's KEK; it is upgraded to the current migration. The replaced database is kept beside\n"
        "it (<db>.replaced-<time>).",
    ),
    "demo": (
        "tessera.cli.demo",
        "demo",
        "Run every profile's flow end to end against a running server, printing each step.",
    ),
    "sandbox": (
        "tessera.cli.sandbox",
        "sandbox",
        "Start a sandbox: the chosen providers at their own paths, fixed credentials, a movable clock.",
    ),
    "orgs": ("tessera.cli.orgs", "app", "Organisations: the integrator companies that own apps."),
    "clients": ("tessera.cli.clients", "app", "Register integrator apps (OAuth clients)."),
    "certs": ("tessera.cli.certs", "app", "The developer CA: sign CSRs, revoke certificates."),
    "merchants": ("tessera.cli.merchants", "app", "Merchants, their terminals, users and grants."),
    "jwks": ("tessera.cli.jwks", "app", "The server's signing and encryption keys."),
    "enrollments": ("tessera.cli.enrollments", "app", "SoftPOS enrollments."),
    "keys": ("tessera.cli.keys", "app", "axept authentication keys (per merchant)."),
    "events": ("tessera.cli.events", "app", "Security events recorded by the server."),
    "portal": ("tessera.cli.portal", "app", "The portal: invite developers and merchant users."),
    "kek": ("tessera.cli.rotation", "kek_app", "The key-encryption key that seals the server keys and the CA key."),
    "ca": ("tessera.cli.rotation", "ca_app", "The developer CA: rotation with an overlap, and retirement."),
    "pepper": (
        "tessera.cli.rotation",
        "pepper_app",
        "The pepper of the machine credentials' HMAC: versions, rotation, retirement.",
    ),
}


def _no_callback() -> None:
    """A group needs a callback to hold named commands."""


def load_command(name: str) -> Any:
    """The click command ``name`` as ``app.command()`` / ``app.add_typer()`` make it."""
    module, attribute, _ = COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    holder = typer.Typer(add_completion=False)
    holder.callback()(_no_callback)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(target)
    return cast(TyperGroup, typer.main.get_command(holder)).commands[name]


class LazyGroup(TyperGroup):
    """The top-level group: a command's module is imported when that command runs (or its own
    help is asked for); the top-level help lists every command from its summary."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*self.commands, *(name for name in COMMANDS if name not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in COMMANDS:
            if self._listing:  # the help's list of commands: name and summary only
                return TyperCommand(name=cmd_name, help=COMMANDS[cmd_name][2])
            command = self.commands[cmd_name] = load_command(cmd_name)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    cls=LazyGroup,
    no_args_is_help=True,
    add_completion=False,
    help="tessera: authorization server for B2B payment channels",
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


def main() -> None:  # console-script entry point
    try:
        app()
    except Exception as e:
        # A configuration error: one line, exit 2, no traceback, no secret (its message never
        # holds a value). Only a command that loaded the settings can raise one.
        config = sys.modules.get("tessera.config")
        if config is None or not isinstance(e, config.ConfigError):
            raise
        from rich.markup import escape

        err.print(f"[bold red]configuration error:[/] {escape(str(e))}", highlight=False)
        sys.exit(2)


__all__ = ["COMMANDS", "app", "main"]
