"""``tessera certs``: the developer CA signs CSRs and revokes certificates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tessera import admin as ops
from tessera.cli.common import HomeOpt, JsonOpt, admin, emit

app = typer.Typer(no_args_is_help=True, help="The developer CA: sign CSRs, revoke certificates.")


@app.command("sign")
def sign(
    client: Annotated[str, typer.Option("--client", help="client_id the certificate is bound to")],
    csr: Annotated[Path, typer.Option("--csr", help="the CSR file (PEM or DER)", exists=True, dir_okay=False)],
    out_path: Annotated[Path, typer.Option("--out", help="where to write the certificate (PEM)")],
    p7b: Annotated[Path | None, typer.Option("--p7b", help="also write it as PKCS#7 (.p7b)")] = None,
    validity_days: Annotated[int | None, typer.Option(help="validity in days (default: cert_validity_days)")] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign a developer CSR with the home's CA and bind the certificate to a client."""
    with admin(home) as a:
        signed = ops.sign_certificate(a, ops.SignCertificate(client, csr.read_bytes(), validity_days))
    out_path.write_bytes(signed.pem)
    if p7b:
        p7b.write_bytes(signed.p7b)
    emit(
        as_json,
        {
            "serial": signed.serial,
            "client_id": client,
            "x5t#S256": signed.thumbprint,
            "subject": signed.subject,
            "not_after": signed.not_after.isoformat(),
            "pem": str(out_path),
            "p7b": str(p7b) if p7b else None,
        },
    )


@app.command("revoke")
def revoke(
    serial: Annotated[str, typer.Option("--serial", help="certificate serial (hex)")],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a developer certificate; it is refused from the next request on."""
    with admin(home) as a:
        rec = ops.revoke_certificate(a, serial)
    emit(as_json, {"serial": rec.serial, "client_id": rec.client_id, "revoked_at": rec.revoked_at})


@app.command("list")
def list_(
    client: Annotated[str | None, typer.Option("--client")] = None, home: HomeOpt = None, as_json: JsonOpt = False
) -> None:
    with admin(home) as a:
        certs = ops.list_certificates(a, client)
    rows = [
        {
            "serial": r.serial,
            "client_id": r.client_id,
            "subject": r.subject,
            "not_after": r.not_after,
            "revoked": r.revoked,
            "x5t#S256": r.thumbprint,
        }
        for r in certs
    ]
    emit(
        as_json,
        {"certificates": rows},
        None
        if as_json
        else "\n".join(f"{r.serial}  {r.client_id}  {'REVOKED ' if r.revoked else ''}{r.subject}" for r in certs)
        or "no certificates",
    )
