"""``tessera purge``: delete expired artefacts and old security events now."""

from __future__ import annotations

from tessera import admin as ops
from tessera.cli.common import HomeOpt, JsonOpt, admin, emit


def purge(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Delete expired artefacts (pushed requests, codes, jtis, refresh tokens and families no
    token needs any more) and security events past TESSERA_EVENT_RETENTION_DAYS, now; prints
    the rows deleted per kind. The server also does this every TESSERA_PURGE_INTERVAL_SECONDS."""
    with admin(home) as a:
        counts = ops.purge(a)
    total = sum(counts.values())
    emit(
        as_json,
        {"deleted": counts, "total": total},
        None
        if as_json
        else ("\n".join(f"{k}: {v}" for k, v in sorted(counts.items())) + "\n" if counts else "") + f"total: {total}",
    )
