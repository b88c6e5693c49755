"""docs/deployment.md and deploy/nginx/tessera.conf say what the cluster test relies on."""

from __future__ import annotations

import re

from tessera.config import Settings
from tests.support.live import REPO

DOC = (REPO / "docs" / "deployment.md").read_text()
CONF = (REPO / "deploy" / "nginx" / "tessera.conf").read_text()


def directives(text: str) -> list[str]:
    """The configuration without comments, one directive per item."""
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    return [" ".join(d.split()) for d in re.split(r"[;{}]", code) if d.strip()]


def test_deployment_page_names_the_settings_that_matter():
    for name in (
        "MTLS_MODE",
        "TRUSTED_PROXIES",
        "MTLS_HEADER",
        "WORKERS",
        "DATABASE_URL",
        "REDIS_URL",
        "REVOCATION_CACHE_SECONDS",
        "REVOCATION_POLL_MS",
        "KEK",
        "PEPPER",
    ):
        assert f"TESSERA_{name}" in DOC, name
        assert name.lower() in Settings.model_fields
    assert "deploy/nginx/tessera.conf" in DOC
    assert "deploy/systemd/tessera.service" in DOC  # the systemd unit (tests/ops/test_systemd.py)


def test_nginx_config_forwards_only_what_nginx_verified():
    d = directives(CONF)
    assert "ssl_verify_client optional" in d
    assert "ssl_session_cache shared:SSL:10m" in d
    assert "ssl_client_certificate /var/lib/tessera/ca.pem" in d
    assert "proxy_set_header X-SSL-Client-Cert $tessera_client_cert" in d
    assert "SUCCESS $ssl_client_escaped_cert" in d and 'default ""' in d
    assert "proxy_set_header X-Real-IP $remote_addr" in d
    assert not any("X-Forwarded-For" in x for x in d)  # uvicorn's proxy_headers would rewrite the peer
    assert not any("non_idempotent" in x for x in d)  # never resend a POST to another instance
    # Every proxy_set_header lives at server level: no location overrides (and so drops) them.
    locations = re.findall(r"location[^{]*\{([^}]*)\}", CONF)
    assert locations and not any("proxy_set_header" in body for body in locations)


def test_uvicorn_proxy_headers_stay_off(tmp_path):
    from tessera.server import uvicorn_kwargs

    s = Settings.load(tmp_path, mtls_mode="proxy")
    assert uvicorn_kwargs(s)["proxy_headers"] is False
