"""``tessera sandbox``: one command, a ready sandbox of the providers (tessera.sandbox)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from tessera.cli.common import JsonOpt, err, global_home, out


def _human(d: dict[str, Any]) -> str:
    lines = [
        f"[bold]tessera sandbox[/]: serving {d['base_url']}  (profiles: {', '.join(d['profiles'])})",
        f"  CA file: {d['ca_file']}   (httpx verify=…, curl --cacert …)",
        f"  home:    {d['home']}" + ("  (temporary: removed on exit)" if d["temporary_home"] else ""),
    ]
    for profile, paths in d["paths"].items():
        lines.append(f"  {profile}: " + ", ".join(p.split()[-1] for p in paths))
    for app in d["nexi"]["apps"]:
        lines.append(
            f"  nexi app       client_id {app['client_id']}  client_secret {app['client_secret']}\n"
            f"                 certificate {app['certificate']}  key {app['key'] or '(yours: the CSR was given)'}"
        )
    for c in d["mobilepay"]["clients"]:
        lines.append(f"  mobilepay      client_id {c['client_id']}  client_secret {c['client_secret']}")
    for u in d["b2binpay"]["users"]:
        lines.append(f"  b2binpay       login {u['login']}  password {u['password']}")
    for a in d["apps"]:
        lines.append(f"  oauth app      client_id {a['client_id']}  client_secret {a['client_secret']}")
    for m in d["merchants"]:
        tids = [f"{t['tid']} ({t['kind']})" for p in m["points_of_sale"] for t in p["terminals"]]
        lines.append(
            f"  merchant {m['id']} {m['name']!r} VAT {m['vat'] or '-'}  POS "
            + (", ".join(p["id"] for p in m["points_of_sale"]) or "-")
            + (f"  TIDs {', '.join(tids)}" if tids else "")
        )
        for u in m["users"]:
            lines.append(f"    user {u['username']}  password {u['password']}")
        for k in m["axept_keys"]:
            lines.append(f"    axept merchantId {m['id']} keyId {k['key_id']}  key {k['key']}")
        if m["grants"]:
            lines.append(f"    granted to {', '.join(m['grants'])}")
    lines.append(f"  clock: curl --cacert {d['ca_file']} -d '{{\"advance\": 3600}}' {d['control']}/clock")
    lines.append("  Ctrl-C stops it.")
    return "\n".join(lines)


def sandbox(
    profile: Annotated[
        list[str] | None,
        typer.Option("--profile", help="nexi, axept, mobilepay, b2binpay or all (repeatable; default all)"),
    ] = None,
    fixtures: Annotated[
        Path | None, typer.Option("--fixtures", help="fixtures file (TOML; default: examples/sandbox.toml's content)")
    ] = None,
    port: Annotated[
        int, typer.Option("--port", help="port on 127.0.0.1 (default 0: a free one)", min=0, max=65535)
    ] = 0,
    home: Annotated[
        Path | None,
        typer.Option("--home", help="keep the sandbox's home here (default: a temporary one, not $TESSERA_HOME)"),
    ] = None,
    as_json: JsonOpt = False,
    stdin_eof: Annotated[
        bool,
        typer.Option(
            "--exit-on-stdin-eof",
            help="stop when standard input closes (a test runner that starts it and may die first)",
        ),
    ] = False,
) -> None:
    """Start a sandbox: the chosen providers at their own paths, fixed credentials, a movable clock."""
    from tessera.sandbox.fixtures import FixtureError
    from tessera.sandbox.server import exit_on_sigterm, prepare, profiles_for, stop_on_stdin_eof

    exit_on_sigterm()  # from here on, a SIGTERM still removes the temporary home

    try:
        chosen = profiles_for(profile or [])
    except ValueError as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
        raise typer.Exit(2) from None
    try:
        box = prepare(profiles=chosen, fixtures=fixtures, port=port, home=home or global_home())
    except FixtureError as e:
        err.print(f"[bold red]fixtures error:[/] {escape(str(e))}", highlight=False)
        raise typer.Exit(2) from None
    except OSError as e:
        err.print(f"[bold red]error:[/] cannot listen on 127.0.0.1:{port}: {escape(e.strerror or str(e))}")
        raise typer.Exit(1) from None

    if box.description["reused_home"] and fixtures is not None:
        err.print(
            f"[yellow]note:[/] {escape(str(box.home))} is reused as it is: its fixtures were loaded when it was "
            "made, and --fixtures is not read again",
            highlight=False,
        )

    def ready() -> None:
        if as_json:
            sys.stdout.write(json.dumps(box.description, sort_keys=True) + "\n")
            sys.stdout.flush()
        else:
            out.print(_human(box.description), highlight=False)

    if stdin_eof:
        stop_on_stdin_eof()
    try:
        box.serve(on_ready=ready)
    finally:
        box.close()
