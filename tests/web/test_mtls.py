"""MTLSExtractor: hand-built scopes, then real uvicorn servers in proxy mode.

The PKI fixture and the server helpers come from ``test_tls.py``.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509

from tessera.limits import MAX_TOKEN_BYTES
from tessera.web.mtls import MTLSConfig, MTLSExtractor, PeerCertificate, thumbprint
from tessera.web.tls import CLIENT_CERT_DER_KEY, ssl_options

from .test_tls import PKI, VARIANTS, curl, make_app, running_server

HEADER = b"x-ssl-client-cert"


def der_of(cert: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.read_text())


def http_scope(client: Any = ("127.0.0.1", 50000), headers: Any = (), tls: Any = None) -> dict[str, Any]:
    scope: dict[str, Any] = {"type": "http", "client": client, "headers": list(headers)}
    if tls is not None:
        scope["extensions"] = {"tls": tls}
    return scope


def tls_ext(der: bytes | None, *, private: bool = True) -> dict[str, Any]:
    ext: dict[str, Any] = {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": 0x0304,
        "cipher_suite": 0x1302,
    }
    if private:
        ext[CLIENT_CERT_DER_KEY] = der
    return ext


@pytest.fixture
def proxy() -> MTLSExtractor:
    return MTLSExtractor(MTLSConfig(mode="proxy"))


@pytest.fixture
def embedded() -> MTLSExtractor:
    return MTLSExtractor(MTLSConfig(mode="embedded"))


# ---------------------------------------------------------------------------------------------
# PeerCertificate, config
# ---------------------------------------------------------------------------------------------


def test_thumbprint_is_rfc8705_x5t_s256(pki: PKI) -> None:
    assert thumbprint(der_of(pki.client_cert)) == pki.thumbprint_by_openssl(pki.client_cert)
    assert thumbprint(b"") == "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"  # SHA-256 of nothing, no padding


def test_peer_certificate_parses_lazily_and_once(pki: PKI) -> None:
    der = der_of(pki.client_cert)
    peer = PeerCertificate(der=der, thumbprint=thumbprint(der), via="tls")
    assert "certificate" not in peer.__dict__
    cert = peer.certificate
    assert isinstance(cert, x509.Certificate)
    assert cert.subject.rfc4514_string() == "CN=client-1,O=Acme Payments"
    assert peer.certificate is cert
    with pytest.raises(AttributeError):
        peer.via = "proxy"  # type: ignore[misc]


def test_config_defaults_and_validation() -> None:
    cfg = MTLSConfig()
    assert (cfg.mode, cfg.header, cfg.trusted_proxies) == ("embedded", "x-ssl-client-cert", ("127.0.0.1/32", "::1/128"))
    with pytest.raises(ValueError):
        MTLSExtractor(MTLSConfig(mode="both"))
    with pytest.raises(ValueError):
        MTLSExtractor(MTLSConfig(mode="proxy", trusted_proxies=("not-a-cidr",)))


# ---------------------------------------------------------------------------------------------
# Embedded mode
# ---------------------------------------------------------------------------------------------


def test_embedded_uses_the_private_der(pki: PKI, embedded: MTLSExtractor) -> None:
    der = der_of(pki.client_cert)
    peer = embedded(http_scope(tls=tls_ext(der)))
    assert peer is not None
    assert (peer.der, peer.via) == (der, "tls")
    assert peer.thumbprint == pki.thumbprint_by_openssl(pki.client_cert)
    assert peer.certificate.subject.rfc4514_string() == "CN=client-1,O=Acme Payments"
    assert embedded(http_scope(tls=tls_ext(der))) is peer  # cached: parsed once


def test_embedded_falls_back_to_the_pem_chain(pki: PKI, embedded: MTLSExtractor) -> None:
    der = der_of(pki.client_cert)
    peer = embedded(http_scope(tls=tls_ext(der, private=False)))
    assert peer is not None and peer.der == der and peer.via == "tls"
    assert peer.thumbprint == pki.thumbprint_by_openssl(pki.client_cert)


def test_embedded_ignores_the_forwarded_header(pki: PKI, embedded: MTLSExtractor) -> None:
    header = (HEADER, pki.escaped_pem(pki.client_cert).encode())
    assert embedded(http_scope(headers=[header])) is None
    assert embedded(http_scope(headers=[header], tls=tls_ext(None))) is None
    # With a TLS certificate, that one wins and the header is still ignored.
    peer = embedded(http_scope(headers=[(HEADER, pki.escaped_pem(pki.foreign_cert).encode())],
                               tls=tls_ext(der_of(pki.client_cert))))  # fmt: skip
    assert peer is not None and peer.der == der_of(pki.client_cert) and peer.via == "tls"


@pytest.mark.parametrize(
    "scope",
    [
        {"type": "http"},
        {"type": "http", "extensions": None},
        {"type": "http", "extensions": {}},
        {"type": "http", "extensions": {"tls": None}},
        {"type": "http", "extensions": {"tls": "nope"}},
        {"type": "http", "extensions": {"tls": {}}},
        {"type": "http", "extensions": {"tls": {"client_cert_chain": []}}},
        {"type": "http", "extensions": {"tls": {"client_cert_chain": None}}},
        {"type": "http", "extensions": {"tls": {"client_cert_chain": 42}}},
        {"type": "http", "extensions": {"tls": {"client_cert_chain": [b"bytes"]}}},
        {"type": "http", "extensions": {"tls": {"client_cert_chain": ["not a pem"]}}},
        {
            "type": "http",
            "extensions": {
                "tls": {"client_cert_chain": ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"]}
            },
        },
        {"type": "http", "extensions": {"tls": {CLIENT_CERT_DER_KEY: b"\x30\x03\x02\x01\x00"}}},
    ],
)
def test_embedded_odd_scopes_give_none(scope: dict[str, Any], embedded: MTLSExtractor) -> None:
    assert embedded(scope) is None


# ---------------------------------------------------------------------------------------------
# Proxy mode
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("peer_address", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_proxy_header_from_a_trusted_proxy(pki: PKI, proxy: MTLSExtractor, peer_address: str) -> None:
    peer = proxy(http_scope(client=(peer_address, 1234), headers=[(HEADER, pki.escaped_pem(pki.client_cert).encode())]))
    assert peer is not None
    assert (peer.der, peer.via) == (der_of(pki.client_cert), "proxy")
    assert peer.thumbprint == pki.thumbprint_by_openssl(pki.client_cert)
    assert peer.certificate.subject.rfc4514_string() == "CN=client-1,O=Acme Payments"


def test_proxy_header_encodings(pki: PKI, proxy: MTLSExtractor) -> None:
    pem = pki.client_cert.read_text()
    expected = der_of(pki.client_cert)
    variants = [
        quote(pem, safe=""),  # nginx $ssl_client_escaped_cert style
        quote(pem, safe="+/="),  # '+' left raw (e.g. AWS ALB): must not turn into a space
        pem.replace("\n", "%0A").replace(" ", "%20"),
        pem.strip().replace("\n", " "),  # spaces instead of newlines
        pem.replace("\n", "\n\t").strip(),  # nginx's legacy $ssl_client_cert folding (pre-escaped)
    ]
    for value in variants:
        peer = proxy(http_scope(headers=[(HEADER, value.encode())]))
        assert peer is not None and peer.der == expected, value


def test_proxy_header_from_an_untrusted_peer_is_ignored(pki: PKI) -> None:
    extractor = MTLSExtractor(MTLSConfig(mode="proxy", trusted_proxies=("10.0.0.0/8", "fd00::/8")))
    header = (HEADER, pki.escaped_pem(pki.client_cert).encode())
    for client in (("127.0.0.1", 1), ("192.168.1.1", 1), ("::1", 1), ("testclient", 1), None, ("", 0)):
        assert extractor(http_scope(client=client, headers=[header])) is None, client
    assert extractor(http_scope(client=("10.9.8.7", 1), headers=[header])) is not None
    assert extractor(http_scope(client=("fd00::1", 1), headers=[header])) is not None


def test_proxy_mode_direct_tls_connection(pki: PKI, proxy: MTLSExtractor) -> None:
    client_der, foreign_der = der_of(pki.client_cert), der_of(pki.foreign_cert)
    # Not from a proxy: the TLS extension is used; a header from such a peer is ignored.
    direct = proxy(http_scope(client=("192.0.2.10", 1), tls=tls_ext(client_der),
                              headers=[(HEADER, pki.escaped_pem(pki.foreign_cert).encode())]))  # fmt: skip
    assert direct is not None and (direct.der, direct.via) == (client_der, "tls")
    # From a trusted proxy the header is authoritative, even over TLS...
    forwarded = proxy(
        http_scope(tls=tls_ext(foreign_der), headers=[(HEADER, pki.escaped_pem(pki.client_cert).encode())])
    )
    assert forwarded is not None and (forwarded.der, forwarded.via) == (client_der, "proxy")
    # ...and no header means no client certificate, not "the proxy's own certificate".
    assert proxy(http_scope(tls=tls_ext(foreign_der))) is None


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"garbage",
        b"-----BEGIN CERTIFICATE-----",
        b"-----BEGIN%20CERTIFICATE-----%0A!!!!%0A-----END%20CERTIFICATE-----%0A",
        b"-----BEGIN%20CERTIFICATE-----%0AMIIB%0A-----END%20CERTIFICATE-----%0A",  # truncated DER
        b"-----BEGIN%20CERTIFICATE-----%0AAAAA%0A-----END%20CERTIFICATE-----%0A",  # decodes to junk
        b"-----BEGIN%20CERTIFICATE-----%0AMIIB%FF%0A-----END%20CERTIFICATE-----%0A",  # %FF: not UTF-8
        b"\xff\xfe\x00binary",
        b"-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----",
    ],
)
def test_proxy_malformed_header_gives_none(value: bytes, proxy: MTLSExtractor) -> None:
    assert proxy(http_scope(headers=[(HEADER, value)])) is None


def test_proxy_header_too_large_or_repeated(pki: PKI, proxy: MTLSExtractor) -> None:
    good = pki.escaped_pem(pki.client_cert).encode()
    padded = good + b"%0A" * ((MAX_TOKEN_BYTES - len(good)) // 3 + 1)
    assert len(padded) > MAX_TOKEN_BYTES
    assert proxy(http_scope(headers=[(HEADER, padded)])) is None
    assert proxy(http_scope(headers=[(HEADER, good), (HEADER, good)])) is None  # ambiguous: refuse
    assert proxy(http_scope(headers=[(b"x-other", good)])) is None
    assert proxy(http_scope(headers=[(HEADER, good)])) is not None


def test_proxy_custom_header_name(pki: PKI) -> None:
    extractor = MTLSExtractor(MTLSConfig(mode="proxy", header="X-Client-Cert"))
    value = pki.escaped_pem(pki.client_cert).encode()
    assert extractor(http_scope(headers=[(HEADER, value)])) is None
    peer = extractor(http_scope(headers=[(b"x-client-cert", value)]))
    assert peer is not None and peer.via == "proxy"


def test_proxy_parses_each_header_value_once(pki: PKI, proxy: MTLSExtractor) -> None:
    value = pki.escaped_pem(pki.client_cert).encode()
    first = proxy(http_scope(headers=[(HEADER, value)]))
    assert first is not None and "certificate" in first.__dict__  # parsed while validating
    for _ in range(5):
        assert proxy(http_scope(headers=[(HEADER, bytes(value))])) is first
    info = proxy._parse_header.cache_info()  # type: ignore[attr-defined]
    assert (info.misses, info.hits, info.maxsize) == (1, 5, 256)


# ---------------------------------------------------------------------------------------------
# Real servers
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "loop"), VARIANTS)
def test_server_proxy_mode_header(pki: PKI, kind: str, loop: str) -> None:
    """Plain HTTP behind a (simulated) nginx on 127.0.0.1."""
    header = {"X-SSL-Client-Cert": pki.escaped_pem(pki.client_cert)}
    expected = {"thumbprint": pki.thumbprint_by_openssl(pki.client_cert), "via": "proxy"}
    trusted = make_app(MTLSExtractor(MTLSConfig(mode="proxy")))
    untrusted = make_app(MTLSExtractor(MTLSConfig(mode="proxy", trusted_proxies=("10.0.0.0/8",))))
    embedded = make_app(MTLSExtractor(MTLSConfig(mode="embedded")))
    with running_server(trusted, kind=kind, loop=loop, proxy_headers=False) as port:
        url = f"http://127.0.0.1:{port}/"
        assert httpx.get(url, headers=header).json()["peer"] == expected
        malformed = httpx.get(url, headers={"X-SSL-Client-Cert": "-----BEGIN%20CERTIFICATE-----%0Anope"})
        assert malformed.status_code == 200 and malformed.json()["peer"] is None
        assert httpx.get(url).json()["peer"] is None
    with running_server(untrusted, kind=kind, loop=loop, proxy_headers=False) as port:
        response = httpx.get(f"http://127.0.0.1:{port}/", headers=header)
        assert response.status_code == 200 and response.json()["peer"] is None
    with running_server(embedded, kind=kind, loop=loop, proxy_headers=False) as port:
        assert httpx.get(f"http://127.0.0.1:{port}/", headers=header).json()["peer"] is None


@pytest.mark.slow
def test_server_proxy_mode_with_uvicorn_proxy_headers_fails_closed(pki: PKI) -> None:
    """uvicorn's proxy_headers (default on) rewrites scope["client"] from X-Forwarded-For, so the
    proxy is no longer recognised and its certificate header is ignored -- documented, fail closed."""
    header = {"X-SSL-Client-Cert": pki.escaped_pem(pki.client_cert)}
    app = make_app(MTLSExtractor(MTLSConfig(mode="proxy")))
    with running_server(app, proxy_headers=True, forwarded_allow_ips="127.0.0.1") as port:
        url = f"http://127.0.0.1:{port}/"
        assert httpx.get(url, headers=header).json()["peer"]["via"] == "proxy"  # no X-Forwarded-For
        body = httpx.get(url, headers={**header, "X-Forwarded-For": "203.0.113.7"}).json()
    assert body["client"][0] == "203.0.113.7" and body["peer"] is None


@pytest.mark.slow
def test_server_proxy_mode_direct_tls(pki: PKI) -> None:
    """Proxy mode on a TLS listener: direct clients are served from the TLS extension."""
    opts = ssl_options(pki.server_cert, pki.server_key, pki.ca)
    direct_ok = make_app(MTLSExtractor(MTLSConfig(mode="proxy", trusted_proxies=("10.0.0.0/8",))))
    with running_server(direct_ok, proxy_headers=False, **opts) as port:
        ok = curl(pki, port, cert=pki.client_cert, key=pki.client_key)
        assert ok.returncode == 0, ok.stderr
        assert httpx.Response(200, content=ok.stdout).json()["peer"] == {
            "thumbprint": pki.thumbprint_by_openssl(pki.client_cert),
            "via": "tls",
        }
    # The same connection from an address that *is* a trusted proxy: only its header counts.
    from_proxy = make_app(MTLSExtractor(MTLSConfig(mode="proxy")))
    with running_server(from_proxy, proxy_headers=False, **opts) as port:
        ok = curl(pki, port, cert=pki.client_cert, key=pki.client_key)
        assert ok.returncode == 0, ok.stderr
        assert httpx.Response(200, content=ok.stdout).json()["peer"] is None
