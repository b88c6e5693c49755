"""The Nexi token endpoint over a real TLS socket, with curl and a certificate made by openssl."""

import json
import subprocess

import pytest

pytestmark = pytest.mark.slow


def test_token_with_curl_over_mtls(live_server):
    app = live_server.new_app()
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--cacert",
            str(live_server.ca),
            "--cert",
            str(app.cert),
            "--key",
            str(app.key),
            f"https://localhost:{live_server.port}/softpos/appenrollment/token",
            "-H",
            "Content-Type: application/x-www-form-urlencoded",
            "--data-urlencode",
            "grant_type=client_credentials",
            "--data-urlencode",
            f"client_id={app.client_id}",
            "--data-urlencode",
            f"client_secret={app.client_secret}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    body = json.loads(out.stdout)
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert set(body) == {"access_token", "token_type", "expires_in"}
