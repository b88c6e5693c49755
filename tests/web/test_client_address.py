"""tessera.web.mtls.ClientAddress: the one rule for the caller's address (rate limits and the
access log alike)."""

from __future__ import annotations

from tessera.web.mtls import ClientAddress, MTLSConfig, MTLSExtractor


def scope(peer: str | None, *headers: tuple[bytes, bytes]) -> dict:
    return {"type": "http", "client": (peer, 4321) if peer else None, "headers": list(headers)}


def test_embedded_mode_is_the_peer_whatever_the_headers():
    address = ClientAddress(MTLSExtractor(MTLSConfig(mode="embedded")))
    assert address(scope("127.0.0.1", (b"x-real-ip", b"203.0.113.9"))) == "127.0.0.1"
    assert address(scope(None)) == "unknown"


def test_proxy_mode_takes_x_real_ip_from_a_trusted_proxy_only():
    address = ClientAddress(MTLSExtractor(MTLSConfig(mode="proxy", trusted_proxies=("10.0.0.0/8",))))
    assert address(scope("10.1.2.3", (b"x-real-ip", b" 203.0.113.9 "))) == "203.0.113.9"
    assert address(scope("10.1.2.3", (b"x-real-ip", b"203.0.113.9"), (b"x-real-ip", b"198.51.100.1"))) == "203.0.113.9"
    assert address(scope("192.0.2.7", (b"x-real-ip", b"203.0.113.9"))) == "192.0.2.7"  # not a trusted proxy
    assert address(scope("10.1.2.3")) == "10.1.2.3"  # no header: the proxy itself
    assert address(scope("10.1.2.3", (b"x-real-ip", b"  "))) == "10.1.2.3"  # an empty header too
    assert len(address(scope("10.1.2.3", (b"x-real-ip", b"a" * 500)))) == 64


def test_the_runtime_and_the_access_log_share_it(tmp_path):
    import time

    from tessera.config import Settings
    from tessera.home import init_home
    from tessera.web.app import create_app
    from tessera.web.middleware import RequestMiddleware

    init_home(tmp_path / "home", now=int(time.time()))
    app = create_app(Settings.load(tmp_path / "home"))
    rt = app.state.runtime
    stack = app.build_middleware_stack()
    while not isinstance(stack, RequestMiddleware):
        stack = stack.app
    assert stack.client_address is rt.client_address
