"""The SDK's context managers are typed: ``with client as c`` gives the client's own class
(checked by mypy --strict on a snippet, with one deliberately wrong line that must be
reported, so that the check can fail)."""

from __future__ import annotations

import gc
from pathlib import Path

from mypy import api

SNIPPET = """
from typing import Any, assert_type

from tessera.sdk import AxeptClient, B2BinPayClient, ClientAssertion, MobilePayClient, NexiSoftPOSClient
from tessera.sdk.resource import JWKSCache


def clients(a: AxeptClient, m: MobilePayClient, b: B2BinPayClient, n: NexiSoftPOSClient, j: JWKSCache) -> None:
    with a as c1:
        assert_type(c1, AxeptClient)
    with m as c2:
        assert_type(c2, MobilePayClient)
    with b as c3:
        assert_type(c3, B2BinPayClient)
    with n as c4:
        assert_type(c4, NexiSoftPOSClient)
    with j as c5:
        assert_type(c5, JWKSCache)
    with a as wrong:
        assert_type(wrong, MobilePayClient)  # line 20: must be reported


async def aclients(a: AxeptClient, m: MobilePayClient, b: B2BinPayClient, n: NexiSoftPOSClient) -> None:
    async with a as c1:
        assert_type(c1, AxeptClient)
    async with m as c2:
        assert_type(c2, MobilePayClient)
    async with b as c3:
        assert_type(c3, B2BinPayClient)
    async with n as c4:
        assert_type(c4, NexiSoftPOSClient)
    assert_type(await n.apar(scope="s", redirect_uri="r", client_assertion="x"), dict[str, Any])
    assert_type(await n.aclient_assertion(point_of_sale="p", terminal_ids=["t"], username_merchant="u@x"),
                ClientAssertion)
"""


def test_with_client_as_c_gives_the_client_type(tmp_path: Path) -> None:
    path = tmp_path / "snippet.py"
    path.write_text(SNIPPET)
    collector, frozen = gc.get_threshold(), gc.get_freeze_count()
    try:
        stdout, stderr, status = api.run(
            [
                "--strict",
                "--follow-imports=silent",
                "--no-error-summary",
                "--cache-dir",
                str(tmp_path / ".mypy_cache"),
                str(path),
            ]
        )
    finally:
        # mypy's build is made for a process of its own: it sets its thresholds, and its
        # ``gc.freeze(); gc.unfreeze()`` thaws what the worker froze after its collection
        # (tests/conftest.py), which every later full collection of the worker then walked
        # (measured: 6.2 s of collector time in that worker, 1.3 to 1.8 s in the others).
        gc.set_threshold(*collector)
        if frozen:
            gc.collect()  # mypy's own garbage, not to be frozen with the rest
            gc.freeze()
    assert gc.get_threshold() == collector and gc.get_freeze_count() >= frozen
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    assert status == 1, stdout + stderr
    assert len(errors) == 1 and errors[0].startswith(f"{path}:20:"), stdout
    assert "assert_type" in errors[0] or "Expression is of type" in errors[0], errors[0]
