"""``tessera clients``: register integrator apps (OAuth clients), list them, revoke them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tessera import admin as ops
from tessera.admin.clients import DEFAULT_AUTH_METHODS, DEFAULT_GRANT_TYPES
from tessera.admin.delivery import credentials_zip
from tessera.cli.common import HomeOpt, JsonOpt, admin, emit, fail, out
from tessera.core.client_auth import SECRET_METHODS

app = typer.Typer(no_args_is_help=True, help="Register integrator apps (OAuth clients).")


@app.command("create")
def create(
    name: Annotated[str, typer.Option(help="the app's name")],
    redirect_uri: Annotated[
        list[str] | None, typer.Option("--redirect-uri", help="registered redirect URI (repeatable)")
    ] = None,
    scope: Annotated[str, typer.Option(help="space-separated scopes the client may ask for")] = "",
    auth_method: Annotated[
        list[str] | None,
        typer.Option(
            "--auth-method",
            help="tls_client_auth, private_key_jwt, client_secret_basic or client_secret_post (repeatable; "
            "default: client_secret_basic and client_secret_post)",
        ),
    ] = None,
    jwks: Annotated[
        Path | None,
        typer.Option(
            "--jwks", help="JWKS file with the client's public keys (private_key_jwt)", exists=True, dir_okay=False
        ),
    ] = None,
    require_par: Annotated[
        bool, typer.Option("--require-par", help="the client must push its authorization requests (PAR)")
    ] = False,
    grant_type: Annotated[
        list[str] | None,
        typer.Option(
            "--grant-type",
            help="client_credentials, authorization_code or refresh_token (repeatable; "
            "default: client_credentials and authorization_code)",
        ),
    ] = None,
    zip_file: Annotated[
        Path | None,
        typer.Option(
            "--zip",
            help="write the client id and secret into this AES-256 encrypted zip (as MobilePay delivers "
            "them) instead of printing the secret; the zip's password is printed, to be sent by another channel",
            dir_okay=False,
        ),
    ] = None,
    org: Annotated[
        str | None, typer.Option("--org", help="the organisation that owns the app (tessera orgs create)")
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a client; prints its client_id and, for the secret methods, its client_secret
    (the secret is shown only now). With --zip the secret goes into the encrypted zip only, and
    the zip's password is printed instead (never both in one output)."""
    keys: Any = None
    if jwks is not None:
        try:
            keys = json.loads(jwks.read_text())
        except ValueError as e:
            fail(f"--jwks: {e}")
    req = ops.RegisterClient(
        name=name,
        redirect_uris=tuple(redirect_uri or ()),
        scope=scope,
        auth_methods=tuple(auth_method or DEFAULT_AUTH_METHODS),
        grant_types=tuple(grant_type or DEFAULT_GRANT_TYPES),
        require_par=require_par,
        jwks=keys,
        org_id=org,
    )
    if zip_file is not None:
        if not set(req.auth_methods).intersection(SECRET_METHODS):
            fail("--zip: the client has no secret (choose a client_secret_* --auth-method)")
        if zip_file.exists():
            fail(f"--zip: {zip_file} exists; refusing to overwrite it")
    with admin(home) as a:
        registered = ops.register_client(a, req)
    data = {"client_id": registered.client_id}
    if zip_file is not None and registered.client_secret is not None:
        content, password = credentials_zip(registered.client_id, registered.client_secret)
        write_private(zip_file, content)
        data.update(zip=str(zip_file), zip_password=password)
    elif registered.client_secret is not None:
        data["client_secret"] = registered.client_secret
    emit(as_json, data)


def write_private(path: Path, content: bytes) -> None:
    """``content`` to a new file readable by its owner only."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        fail(f"--zip: cannot create {path}: {e.strerror}")
    with os.fdopen(fd, "wb") as f:
        f.write(content)


@app.command("list")
def list_(
    org: Annotated[str | None, typer.Option("--org", help="only the apps this organisation owns")] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    with admin(home) as a:
        clients = ops.list_clients(a, org)
    rows = [
        {
            "client_id": c.client_id,
            "name": c.name,
            "status": c.status,
            "redirect_uris": list(c.redirect_uris),
            "auth_methods": list(c.auth_methods),
            "org_id": c.org_id,
        }
        for c in clients
    ]
    if as_json:
        emit(True, {"clients": rows})
        return
    table = Table("client_id", "name", "status", "redirect_uris")
    for c in clients:
        table.add_row(c.client_id, c.name, c.status, " ".join(c.redirect_uris))
    out.print(table)


@app.command("revoke")
def revoke(
    client: Annotated[str, typer.Option("--client", help="client_id")], home: HomeOpt = None, as_json: JsonOpt = False
) -> None:
    """Revoke a client: its credentials stop working on the next request."""
    with admin(home) as a:
        info = ops.revoke_client(a, client)
    emit(as_json, {"client_id": info.client_id, "status": info.status})


@app.command("rotate-secret")
def rotate_secret(
    client_id: Annotated[str, typer.Argument(help="the client whose secret to replace")],
    overlap: Annotated[
        int | None,
        typer.Option(
            "--overlap",
            help="seconds the previous secret stays valid (default TESSERA_CLIENT_SECRET_OVERLAP, 86400; "
            "0: the new one only, at once)",
        ),
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A new client secret, shown only now; the previous one stays valid for the overlap. A
    second rotation during an overlap is refused unless --overlap 0 (a leaked secret)."""
    with admin(home) as a:
        rotated = ops.rotate_secret(a, client_id, overlap)
    emit(
        as_json,
        {
            "client_id": rotated.client_id,
            "client_secret": rotated.client_secret,
            "previous_valid_until": rotated.previous_valid_until,
        },
    )


@app.command("update")
def update(
    client_id: Annotated[str, typer.Argument(help="the client to change")],
    redirect_uri: Annotated[
        list[str] | None,
        typer.Option("--redirect-uri", help="the redirect URIs (repeatable; replaces the registered ones)"),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="the app's new name")] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change an app's redirect URIs (all of them at once) and/or its name."""
    if redirect_uri is None and name is None:
        fail("give --redirect-uri and/or --name")
    req = ops.UpdateClient(name=name, redirect_uris=tuple(redirect_uri) if redirect_uri is not None else None)
    with admin(home) as a:
        info = ops.update_client(a, client_id, req)
    emit(as_json, {"client_id": info.client_id, "name": info.name, "redirect_uris": list(info.redirect_uris)})
