"""``tessera keys``: axept authentication keys, per merchant."""

from __future__ import annotations

from typing import Annotated

import typer

from tessera import admin as ops
from tessera.cli.common import HomeOpt, JsonOpt, admin, emit, fail_admin

app = typer.Typer(no_args_is_help=True, help="axept authentication keys (per merchant).")
MerchantOpt = Annotated[int, typer.Option("--merchant-id")]
KeyIdOpt = Annotated[int, typer.Option("--key-id")]


@app.command("create")
def create(merchant_id: MerchantOpt, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Create an authentication key; its value is printed now and never again."""
    with admin(home) as a:
        key = ops.create_key(a, merchant_id)
    emit(as_json, {"merchantId": key.merchant_id, "keyId": key.key_id, "key": key.key})


@app.command("list")
def list_(merchant_id: MerchantOpt, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    with admin(home) as a:
        keys = ops.list_keys(a, merchant_id)
    rows = [
        {"keyId": k.key_id, "enabled": k.enabled, "created_at": k.created_at, "disabled_at": k.disabled_at}
        for k in keys
    ]
    emit(
        as_json,
        {"merchantId": merchant_id, "keys": rows},
        None
        if as_json
        else "\n".join(f"key {k.key_id}: {'enabled' if k.enabled else 'disabled'}" for k in keys) or "no keys",
    )


@app.command("disable")
def disable(
    merchant_id: MerchantOpt,
    key_id: KeyIdOpt,
    yes: Annotated[bool, typer.Option("--yes", help="confirm disabling the last enabled key")] = False,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Disable a (compromised) key: refused from the next request on."""
    with admin(home) as a:
        try:
            key = ops.disable_key(a, merchant_id, key_id, confirm_last=yes)
        except ops.ConfirmationRequired as e:
            fail_admin(e, hint=". Pass --yes to confirm.")
    emit(as_json, {"merchantId": merchant_id, "keyId": key_id, "enabled": key.enabled})


@app.command("enable")
def enable(merchant_id: MerchantOpt, key_id: KeyIdOpt, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Enable a key again (at most three enabled per merchant)."""
    with admin(home) as a:
        key = ops.enable_key(a, merchant_id, key_id)
    emit(as_json, {"merchantId": merchant_id, "keyId": key_id, "enabled": key.enabled})
