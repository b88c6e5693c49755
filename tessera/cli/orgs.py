"""``tessera orgs``: the organisations (integrator companies) that own apps."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tessera import admin as ops
from tessera.cli.common import HomeOpt, JsonOpt, admin, emit, out

app = typer.Typer(no_args_is_help=True, help="Organisations: the integrator companies that own apps.")


@app.command("create")
def create(
    name: Annotated[str, typer.Option(help="the organisation's name")],
    org_id: Annotated[
        str | None,
        typer.Option("--id", "--org", help="its id (lower-case letters, digits, '-'); default: made from the name"),
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an organisation; apps are registered for it with ``tessera clients create --org ID``."""
    with admin(home) as a:
        org = ops.create_organisation(a, ops.CreateOrganisation(name, org_id))
    emit(as_json, {"org_id": org.org_id, "name": org.name})


@app.command("list")
def list_(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    with admin(home) as a:
        orgs = ops.list_organisations(a)
    if as_json:
        emit(True, {"organisations": [{"org_id": o.org_id, "name": o.name, "created_at": o.created_at} for o in orgs]})
        return
    table = Table("org_id", "name")
    for o in orgs:
        table.add_row(o.org_id, o.name)
    out.print(table)
