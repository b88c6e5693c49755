"""docs/sdk.md runs as written: its ``python`` blocks, in order, in one interpreter, against a
live tessera serving every provider at the provider's own paths at the root (as a sandbox
does), with the credentials in the environment variables the page names."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.support.live import REPO, LiveServer, openssl

pytestmark = pytest.mark.slow

BLOCK = re.compile(r"```python\n(.*?)```", re.S)
PAGE = REPO / "docs" / "sdk.md"


def test_the_sdk_page_runs(tmp_path) -> None:
    script = "\n".join(BLOCK.findall(PAGE.read_text()))
    assert "SANDBOX_URL" in script
    server = LiveServer(tmp_path / "server", env={"TESSERA_AXEPT_PREFIX": "", "TESSERA_B2BINPAY_PREFIX": ""}).start()
    try:
        nexi = server.new_app()
        shop = server.new_merchant(nexi)
        openssl("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", str(nexi.key), "-out", "nexi-key.pem",
                "-passout", "pass:doc pass phrase", cwd=tmp_path)  # fmt: skip
        app = server.new_app(with_cert=False)
        server.cli_json("merchants", "create", "--merchant-id", "4242", "--name", "Corner Shop")
        key = server.cli_json("keys", "create", "--merchant-id", "4242")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
        env.update(
            SANDBOX_URL=f"https://localhost:{server.port}",
            SANDBOX_CA=str(server.ca),
            NEXI_CLIENT_ID=nexi.client_id,
            NEXI_CLIENT_SECRET=nexi.client_secret,
            NEXI_CERT=str(nexi.cert),
            NEXI_KEY=str(tmp_path / "nexi-key.pem"),
            NEXI_KEY_PASSWORD="doc pass phrase",
            NEXI_POS=shop.pos,
            NEXI_TID=shop.softpos_tid,
            NEXI_MERCHANT_USER=shop.username,
            NEXI_REDIRECT_URI=nexi.redirect_uri,
            MOBILEPAY_CLIENT_ID=app.client_id,
            MOBILEPAY_CLIENT_SECRET=app.client_secret,
            AXEPT_MERCHANT_ID=str(key["merchantId"]),
            AXEPT_KEY_ID=str(key["keyId"]),
            AXEPT_KEY=key["key"],
            B2BINPAY_LOGIN=app.client_id,
            B2BINPAY_PASSWORD=app.client_secret,
        )
        proc = subprocess.run(
            [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{server.log_tail()}"
        out = proc.stdout
        for line in ("MobilePay token:", "Nexi token:", "refused at once:", "sign in at:", "axept token:",
                     "refused: 400 2006", "B2BINPAY token:", "request_uri urn:softpos_"):  # fmt: skip
            assert line in out, (line, out)
        for secret in (nexi.client_secret, app.client_secret, key["key"]):
            assert secret not in out
    finally:
        server.stop()
