"""``tessera kek``, ``tessera ca`` and ``tessera pepper``: rotate the key-encryption key, the
developer CA and the credentials' pepper (docs/operations.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from tessera.admin import ca_rotation, peppers, rotation
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


ca_app = typer.Typer(no_args_is_help=True, help="The developer CA: rotation with an overlap, and retirement.")


@ca_app.command("status")
def ca_status(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """The CAs trusted for client certificates (ca.pem), the signing one, and how many usable
    certificates each has signed."""
    with admin(home) as a:
        cas = ca_rotation.ca_status(a)
    emit(
        as_json,
        {"cas": [c.as_dict() for c in cas]},
        None
        if as_json
        else "\n".join(
            f"{c.serial}  {'signing' if c.signing else 'old    '}  {c.active_certificates} active certificate(s)  "
            f"{c.subject}"
            for c in cas
        ),
    )


@ca_app.command("rotate")
def ca_rotate(
    validity_days: Annotated[int, typer.Option("--validity-days", help="the new CA's lifetime")] = 3650,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a new CA: it signs every certificate from now on; ca.pem trusts it and the old one
    (restart the server, reload nginx). Retire the old one later (tessera ca retire)."""
    with admin(home) as a:
        info = ca_rotation.rotate_ca(a, validity_days=validity_days)
    emit(as_json, info.as_dict(), f"new signing CA {info.serial} ({info.subject}); ca.pem now trusts it and the old")


@ca_app.command("retire")
def ca_retire(
    serial: Annotated[str, typer.Option("--serial", help="the old CA's serial (tessera ca status)")],
    force: Annotated[
        bool, typer.Option("--force", help="retire it although certificates it signed are still usable")
    ] = False,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop trusting an old CA (restart the server, reload nginx afterwards)."""
    with admin(home) as a:
        info = ca_rotation.retire_ca(a, serial, force=force)
    emit(as_json, info.as_dict(), f"retired CA {info.serial}; ca.pem no longer trusts it")


pepper_app = typer.Typer(
    no_args_is_help=True, help="The pepper of the machine credentials' HMAC: versions, rotation, retirement."
)


@pepper_app.command("status")
def pepper_status(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """The current pepper, the earlier ones configured, and how many stored credential hashes
    each one keys (an old pepper can be retired when none remain on it)."""
    with admin(home) as a:
        usage = peppers.pepper_usage(a)
    lines = [f"current pepper: {usage.current}; configured: {', '.join(map(str, usage.configured))}"]
    for pid, kinds in sorted(usage.hashes.items()):
        lines.append(f"pepper {pid}: {kinds['client_secrets']} client secret(s), {kinds['api_keys']} axept key(s)")
    lines.append(f"on old peppers: {usage.remaining_on_old()}")
    emit(as_json, usage.as_dict(), "\n".join(lines))


@pepper_app.command("add")
def pepper_add(
    pepper_id: Annotated[int, typer.Option("--id", help="the new pepper's id (a number not used before)")],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a new pepper (given in TESSERA_NEW_PEPPER) under --id in tessera.toml. Then make it
    the current one: TESSERA_PEPPER=<new>, TESSERA_PEPPER_ID=<id>, and the old one in
    TESSERA_OLD_PEPPERS=<old id>:<old pepper>; restart the server."""
    value = os.environ.get("TESSERA_NEW_PEPPER")
    if not value:
        fail("give the new pepper in TESSERA_NEW_PEPPER")
    with admin(home) as a:
        peppers.add_pepper(a, pepper_id, rotation.parse_kek(value, "TESSERA_NEW_PEPPER"))
    emit(as_json, {"pepper_id": pepper_id}, f"recorded pepper {pepper_id}")


@pepper_app.command("retire")
def pepper_retire(
    pepper_id: Annotated[int, typer.Option("--id", help="the old pepper's id")],
    force: Annotated[
        bool, typer.Option("--force", help="retire it although credential hashes remain under it (they stop working)")
    ] = False,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Never accept an old pepper again (then remove it from TESSERA_OLD_PEPPERS and restart)."""
    with admin(home) as a:
        usage = peppers.retire_pepper(a, pepper_id, force=force)
    remaining = sum(usage.hashes.get(pepper_id, {}).values())
    emit(
        as_json,
        {"retired": pepper_id, "invalidated": remaining},
        f"retired pepper {pepper_id}" + (f" ({remaining} credential(s) invalidated)" if remaining else ""),
    )
