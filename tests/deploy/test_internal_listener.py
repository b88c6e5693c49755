"""deploy/nginx/tessera.conf keeps ``/metrics`` and the admin API off the public listener.

A real nginx runs the repository's file (ports and paths substituted, tests/support/nginx.py) in
front of one ``tessera serve`` in proxy mode (SQLite; named twice in the upstream block, which
lists two instances). Through the public listener, ``/metrics`` and ``/admin/v1/...`` get nginx's
own 404 (the access log shows no upstream: the request never reached tessera), also when the
path is disguised (%-escapes, doubled slashes, dot segments). Through the internal listener they
reach tessera: the metrics text, and for ``/admin/v1`` tessera's answer (its ``X-Request-ID``
header and JSON body; 401 once the admin API is there, a 404 "no route" before), and nothing else
is served there."""

from __future__ import annotations

import http.client
import ssl
import time

import httpx
import pytest

from tests.support.live import LiveServer, free_port
from tests.support.nginx import Nginx, find_nginx

pytestmark = pytest.mark.slow


class Site:
    def __init__(self, server: LiveServer, nginx: Nginx):
        self.server, self.nginx = server, nginx

    def client(self, *, internal: bool = False) -> httpx.Client:
        ctx = ssl.create_default_context(cafile=str(self.server.ca))
        port = self.nginx.internal_port if internal else self.nginx.port
        return httpx.Client(base_url=f"https://localhost:{port}", verify=ctx, timeout=30)

    def upstream_of(self, mark: int, path: str) -> str:
        """The upstream nginx logged for the first request for ``path`` after line ``mark``
        ('-': nginx answered it itself)."""
        deadline = time.monotonic() + 5  # nginx writes the log line just after answering
        while time.monotonic() < deadline:
            found = self.nginx.upstreams(mark, path)
            if found:
                return found[0]
            time.sleep(0.02)
        raise AssertionError(f"no access-log line for {path}: {self.nginx.access_log()[mark:]}")

    def upstreams_of(self, mark: int, count: int, path: str) -> list[str]:
        """The upstreams of the access-log lines for ``path`` after line ``mark``, waiting for
        ``count`` of them (nginx writes each just after answering, so a fast client reads first;
        and the previous test's last line can land after ``mark`` the same way, hence the path)."""
        deadline = time.monotonic() + 5
        while len(found := self.nginx.upstreams(mark, path)) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return found


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    find_nginx()
    work = tmp_path_factory.mktemp("internal-listener")
    server = LiveServer(
        work, env={"TESSERA_MTLS_MODE": "proxy", "TESSERA_TRUSTED_PROXIES": '["127.0.0.1/32"]'}, port=free_port()
    ).start()
    try:
        nginx = Nginx(port=free_port(), upstreams=[server.port, server.port], home=server.home).start()
        try:
            yield Site(server, nginx)
        finally:
            nginx.stop()
    finally:
        server.stop()


def test_the_public_listener_serves_the_api(site):
    with site.client() as c:
        r = c.get("/.well-known/oauth-authorization-server")
    assert r.status_code == 200 and r.json()["token_endpoint"]


@pytest.mark.parametrize(
    "path",
    [
        "/metrics",
        "/metrics/",
        "//metrics",
        "/./metrics",
        "/%6detrics",
        "/admin/v1/apps",
        "/admin/v1",
        "/%61dmin/v1/apps",
        "//admin//v1/apps",
        "/portal/../admin/v1/apps",
    ],
)
def test_metrics_and_admin_are_refused_on_the_public_listener(site, path):
    mark = len(site.nginx.access_log())
    for method in ("GET", "POST"):
        # http.client sends the path as written (httpx would normalise the disguises away).
        conn = http.client.HTTPSConnection(
            "localhost", site.nginx.port, context=ssl.create_default_context(cafile=str(site.server.ca)), timeout=30
        )
        try:
            conn.request(method, path, body=b"" if method == "POST" else None, headers={"Authorization": "Bearer x"})
            r = conn.getresponse()
            body = r.read().decode(errors="replace")
        finally:
            conn.close()
        assert r.status == 404, (method, path, r.status)
        assert r.getheader("x-request-id") is None and "nginx" in body  # nginx's page, not tessera's
    assert site.upstream_of(mark, path) == "-"
    assert site.upstreams_of(mark, 2, path) == ["-", "-"]  # the GET and the POST


def test_metrics_reach_tessera_on_the_internal_listener(site):
    with site.client() as c:
        c.get("/.well-known/oauth-authorization-server")  # something to count
    mark = len(site.nginx.access_log())
    with site.client(internal=True) as c:
        r = c.get("/metrics")
    assert r.status_code == 200, r.text[:300]
    assert "tessera_http_requests_total" in r.text
    assert site.upstream_of(mark, "/metrics") == f"127.0.0.1:{site.server.port}"


def test_admin_api_is_forwarded_on_the_internal_listener(site):
    mark = len(site.nginx.access_log())
    with site.client(internal=True) as c:
        r = c.get("/admin/v1/apps")
    # tessera answered (its request id, its JSON): 401 without a token once the admin API is
    # there, 404 "no route" from tessera before it.
    assert r.status_code in (401, 404), r.text[:300]
    assert r.headers.get("x-request-id")
    assert r.headers["content-type"].startswith(("application/json", "application/problem+json"))
    assert site.upstream_of(mark, "/admin/v1/apps") == f"127.0.0.1:{site.server.port}"


@pytest.mark.parametrize("path", ["/oauth2/token", "/.well-known/oauth-authorization-server", "/portal/"])
def test_the_internal_listener_serves_nothing_else(site, path):
    mark = len(site.nginx.access_log())
    with site.client(internal=True) as c:
        r = c.get(path)
    assert r.status_code == 404 and "x-request-id" not in r.headers
    assert site.upstream_of(mark, path) == "-"
