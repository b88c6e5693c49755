"""``tessera events``: the security events the server recorded."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape

from tessera import admin as ops
from tessera.cli.common import HomeOpt, JsonOpt, admin, emit, out

app = typer.Typer(no_args_is_help=True, help="Security events recorded by the server.")


@app.command("list")
def list_(
    kind: Annotated[str | None, typer.Option("--kind", help=f"only this kind ({', '.join(ops.EVENT_KINDS)})")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000, help="at most this many, the latest")] = 100,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The latest security events (oldest first): replayed refresh tokens, assertions and codes,
    revoked certificates used, brute-force lockouts."""
    with admin(home) as a:
        events = ops.list_events(a, kind=kind, limit=limit)
    if as_json:
        emit(
            True,
            {
                "events": [
                    {
                        "id": e.id,
                        "kind": e.kind,
                        "client_id": e.client_id,
                        "detail": e.detail,
                        "created_at": e.created_at,
                    }
                    for e in events
                ]
            },
        )
        return
    if not events:
        out.print("no events")
        return
    for e in events:  # one line per event: easy to grep
        when = datetime.fromtimestamp(e.created_at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        out.print(
            escape(f"{e.id}  {when}  {e.kind}  {e.client_id or '-'}  {json.dumps(e.detail, sort_keys=True)}"),
            highlight=False,
        )
