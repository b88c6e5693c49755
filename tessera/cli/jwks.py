"""``tessera jwks``: the server's signing and encryption keys."""

from __future__ import annotations

from typing import Annotated

import typer

from tessera import admin as ops
from tessera.admin.server_keys import USES
from tessera.cli.common import HomeOpt, JsonOpt, admin, emit, fail

app = typer.Typer(no_args_is_help=True, help="The server's signing and encryption keys.")


@app.command("rotate")
def rotate(
    use: Annotated[str, typer.Option("--use", help="sig or enc")] = "sig",
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Promote the published next key, retire the current one (kept published until what it
    made has expired), and publish a new next key. ``sig`` rotates every signing ring: the
    shared one and MobilePay's RS256 ring (``rings`` in the JSON answer)."""
    if use not in USES:
        fail("--use must be sig or enc")
    with admin(home) as a:
        rotation = ops.rotate_server_keys(a, use)
    emit(as_json, rotation.as_dict())


@app.command("list")
def list_(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    with admin(home) as a:
        keys = ops.list_server_keys(a)
    rows = [{"kid": k.kid, "use": k.use, "alg": k.alg, "status": k.status, "retire_at": k.retire_at} for k in keys]
    emit(
        as_json,
        {"keys": rows},
        None if as_json else "\n".join(f"{k.use}  {k.status:8} {k.alg:13} {k.kid}" for k in keys),
    )
