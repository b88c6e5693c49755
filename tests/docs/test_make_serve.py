"""`make serve` on a home that does not exist yet: it initialises it, serves HTTPS, and says how to
reach the server and how to run the demo — as the README promises."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import time

import httpx
import pytest

from tests.support.live import REPO, free_port

pytestmark = pytest.mark.slow


def test_make_serve_initialises_and_serves(tmp_path):
    home = tmp_path / "fresh-home"
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}, "TESSERA_PORT": str(port)}
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["make", "--no-print-directory", "serve", f"HOME_DIR={home}"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"make serve exited: {log.read_text()}")
            try:
                r = httpx.get(
                    f"https://127.0.0.1:{port}/softpos/par/jwks.json",
                    verify=ssl.create_default_context(cafile=str(home / "ca.pem")),
                    timeout=2,
                )
                break
            except (httpx.HTTPError, OSError):
                time.sleep(0.3)
        else:
            pytest.fail(f"no server on {port}: {log.read_text()}")
        assert r.status_code == 200 and r.json()["keys"][0]["use"] == "enc"
        text = log.read_text()
        assert (home / "tessera.toml").exists() and (home / "tessera.db").exists()
        assert f"serving https://127.0.0.1:{port}" in text
        assert "demo --url" in text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
