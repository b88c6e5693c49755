"""``tessera kek``: rotate the key-encryption key (docs/operations.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from tessera.admin import rotation
from tessera.cli.common import HomeOpt, JsonOpt, admin, emit, fail

kek_app = typer.Typer(no_args_is_help=True, help="The key-encryption key that seals the server keys and the CA key.")


@kek_app.command("rotate")
def rotate_kek(
    new_kek_file: Annotated[
        Path | None,
        typer.Option(
            "--new-kek-file",
            help="file holding the new KEK (base64url of 32 bytes); default: $TESSERA_NEW_KEK",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Seal the server keys and the CA key again under a new KEK. The current KEK is the one
    the home is configured with (TESSERA_KEK or secrets/kek). Then give the server the new KEK
    (TESSERA_KEK; a home's secrets/kek is rewritten here) and restart it: it refuses the old one."""
    if new_kek_file is not None:
        value, source = new_kek_file.read_text(), str(new_kek_file)
    elif os.environ.get("TESSERA_NEW_KEK"):
        value, source = os.environ["TESSERA_NEW_KEK"], "TESSERA_NEW_KEK"
    else:
        fail("give the new KEK with --new-kek-file FILE or TESSERA_NEW_KEK")
    with admin(home) as a:
        result = rotation.rotate_kek(a, rotation.parse_kek(value, source))
    data = result.as_dict()
    emit(
        as_json,
        data,
        f"sealed {len(result.resealed)} server key(s) and {len(result.ca_keys)} CA key file(s) under the new KEK"
        + (f" ({len(result.already)} already were)" if result.already else "")
        + (
            f"; {result.kek_file} now holds it"
            if result.kek_file
            else "; now set TESSERA_KEK to the new KEK and restart the server"
        ),
    )
