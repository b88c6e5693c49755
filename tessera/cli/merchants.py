"""``tessera merchants``: merchants, their terminals, users and grants."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tessera import admin as ops
from tessera.cli.common import HomeOpt, JsonOpt, admin, emit, fail

app = typer.Typer(no_args_is_help=True, help="Merchants, their terminals, users and grants.")
MerchantOpt = Annotated[int, typer.Option("--merchant-id")]


@app.command("create")
def create(
    merchant_id: MerchantOpt,
    vat: Annotated[str | None, typer.Option("--vat", help="VAT number, e.g. DK12345678")] = None,
    name: Annotated[str, typer.Option("--name")] = "",
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    with admin(home) as a:
        m = ops.create_merchant(a, ops.CreateMerchant(merchant_id, name, vat))
    emit(as_json, {"merchantId": m.merchant_id, "vat": m.vat, "name": m.name})


@app.command("add-terminal")
def add_terminal(
    merchant_id: MerchantOpt,
    pos: Annotated[str, typer.Option("--pos", help="point-of-sale id")],
    tid: Annotated[str, typer.Option("--tid", help="terminal id")],
    kind: Annotated[str, typer.Option("--kind", help="softpos or mpos")],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    with admin(home) as a:
        t = ops.add_terminal(a, ops.AddTerminal(merchant_id, pos, tid, kind))
    emit(as_json, {"merchantId": t.merchant_id, "pos": t.pos, "tid": t.tid, "kind": t.kind})


@app.command("add-user")
def add_user(
    merchant_id: MerchantOpt,
    username: Annotated[str, typer.Option("--username", help="the user's e-mail address")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a merchant user (the login of the enrollment page); the password is hashed with argon2id."""
    if not password_stdin:
        fail("pass --password-stdin and give the password on standard input")
    password = sys.stdin.readline().rstrip("\r\n")
    with admin(home) as a:
        user = ops.add_user(a, ops.AddUser(merchant_id, username, password))
    emit(as_json, {"merchantId": user.merchant_id, "username": user.username})


@app.command("grant")
def grant(
    merchant_id: MerchantOpt,
    client: Annotated[str, typer.Option("--client", help="client_id of the integrator app")],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record that the merchant granted an integrator app access."""
    with admin(home) as a:
        g = ops.grant(a, merchant_id, client)
    emit(as_json, {"merchantId": g.merchant_id, "client_id": g.client_id, "granted": g.granted})
