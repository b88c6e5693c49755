"""Every profile's flow end to end over real TLS, on SQLite and on a real PostgreSQL, through
`tessera demo` (the CLI, as a user runs it) — it drives the SDK and plain HTTP clients."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_demo_runs_every_flow(db_live_server):
    result = db_live_server.cli_json("demo", "--url", f"https://localhost:{db_live_server.port}")
    assert result["ok"] is True
    assert result["nexi-softpos"]["request_uri"].startswith("urn:softpos_")
    assert result["nexi-softpos"]["id_token"] is True
    assert result["mobilepay"] == {"expires_in": 3700, "scope": "integrator_scope"}
    assert result["b2binpay"]["rotated"] is True
    enrollments = db_live_server.store.list_enrollments()  # what the database holds (read in process)
    assert len(enrollments) == 1 and len(enrollments[0].tids) == 2


def test_demo_prints_each_step(live_server):
    out = live_server.cli("demo", "--url", f"https://127.0.0.1:{live_server.port}").stdout
    for step in (
        "CSR",
        "certificate",
        "token",
        "JWKS",
        "PAR",
        "authorize",
        "code",
        "axept",
        "mobilepay",
        "b2binpay",
        "all flows completed",
    ):
        assert step in out, step
