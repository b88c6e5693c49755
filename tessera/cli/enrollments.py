"""``tessera enrollments``: the SoftPOS enrollments made."""

from __future__ import annotations

import typer
from rich.table import Table

from tessera import admin as ops
from tessera.cli.common import HomeOpt, JsonOpt, admin, emit, out

app = typer.Typer(no_args_is_help=True, help="SoftPOS enrollments.")


@app.command("list")
def list_(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    with admin(home) as a:
        enrollments = ops.list_enrollments(a)
    if as_json:
        emit(
            True,
            {
                "enrollments": [
                    {
                        "id": e.id,
                        "client_id": e.client_id,
                        "merchantId": e.merchant_id,
                        "pointOfSale": e.pos,
                        "terminal_ids": list(e.tids),
                        "username_merchant": e.username,
                        "app_deviceid": e.device_id,
                        "created_at": e.created_at,
                    }
                    for e in enrollments
                ]
            },
        )
        return
    table = Table("id", "client_id", "merchant", "pos", "TIDs", "username", "device")
    for e in enrollments:
        table.add_row(
            str(e.id), e.client_id, str(e.merchant_id), e.pos, " ".join(e.tids), e.username, e.device_id or "-"
        )
    out.print(table)
