"""Where the application gets the client's (mutual-TLS) certificate.

Shared by tessera's server (``tessera.web.mtls`` re-exports it) and by resource servers
(``tessera.sdk.resource``), so it lives in the SDK and imports nothing of the server; it also
holds tessera's one ``x5t#S256`` (:func:`thumbprint`).

Two deployments:

``embedded``
    uvicorn terminates TLS itself (see :mod:`tessera.web.tls`); the certificate
    comes from ``scope["extensions"]["tls"]``.  Any forwarded-certificate header
    is ignored -- in this mode nobody is entitled to send one.

``proxy``
    A reverse proxy terminates TLS and forwards the certificate as a header,
    e.g. nginx::

        proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;

    The header is honoured only when the TCP peer (``scope["client"][0]``) is
    inside ``trusted_proxies``; from anybody else it is ignored.  A trusted
    proxy is authoritative: if it sends no header the client had no
    certificate, and we do *not* fall back to the TLS extension (that would be
    the proxy's own upstream certificate).  Connections from other addresses
    (direct TLS clients) are served from the TLS extension, as in embedded mode.

    Beware uvicorn's ``proxy_headers`` (on by default, trusting 127.0.0.1):
    when the proxy also sends ``X-Forwarded-For``, uvicorn rewrites
    ``scope["client"]`` to the forwarded address before the application runs,
    so the proxy is no longer recognised and the header is ignored (fail
    closed).  Run uvicorn with ``proxy_headers=False`` in proxy mode, or have
    the proxy not send ``X-Forwarded-For``.

Failures never raise: a missing, oversized, duplicated or malformed header
yields ``None``, which the route reports as "no client certificate".
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import ipaddress
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from cryptography import x509

from tessera.limits import MAX_TOKEN_BYTES

__all__ = ["CLIENT_CERT_DER_KEY", "MTLSConfig", "MTLSExtractor", "PeerCertificate", "thumbprint"]

#: Private key in the ASGI TLS extension dict holding the leaf certificate as DER bytes
#: (set by the server's TLS protocol, ``tessera.web.tls``).
CLIENT_CERT_DER_KEY = "tessera.client_cert_der"

_CACHE_SIZE = 256

_PEM_RE = re.compile(
    r"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----",
)


def thumbprint(der: bytes) -> str:
    """RFC 8705 ``x5t#S256``: base64url (no padding) of the SHA-256 of the DER certificate
    (RFC 8705 §3.1, RFC 7515 §2). tessera's one implementation: the CA (``tessera.ca``),
    the server and the SDK all use it."""
    if not isinstance(der, (bytes, bytearray, memoryview)):
        raise TypeError("x5t#S256 takes the DER bytes of a certificate")
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class PeerCertificate:
    der: bytes
    thumbprint: str  # RFC 8705 x5t#S256
    via: str  # "tls" or "proxy"

    @cached_property
    def certificate(self) -> x509.Certificate:
        """The parsed certificate (parsed on first use, then cached)."""
        return x509.load_der_x509_certificate(self.der)


@dataclass(frozen=True)
class MTLSConfig:
    mode: str = "embedded"  # "embedded" | "proxy"
    header: str = "x-ssl-client-cert"
    trusted_proxies: tuple[str, ...] = ("127.0.0.1/32", "::1/128")  # CIDRs


def _der_from_pem(text: str) -> bytes | None:
    """DER of the first certificate in ``text``, or None if there is none / it is not a certificate."""
    match = _PEM_RE.search(text)
    if match is None:
        return None
    body = "".join(match.group(1).split())
    try:
        der = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None
    return der or None


def _from_der(der: bytes, via: str) -> PeerCertificate | None:
    try:
        cert = x509.load_der_x509_certificate(der)
    except Exception:  # ValueError for garbage; never let it become a 500
        return None
    peer = PeerCertificate(der=der, thumbprint=thumbprint(der), via=via)
    peer.__dict__["certificate"] = cert  # prime the cached_property: we parsed it anyway
    return peer


def _from_header_value(raw: bytes) -> PeerCertificate | None:
    try:
        text = urllib.parse.unquote(raw.decode("ascii"), errors="strict")  # not unquote_plus: '+' is base64
    except (UnicodeDecodeError, ValueError):
        return None
    der = _der_from_pem(text)
    return _from_der(der, "proxy") if der else None


def _from_tls_pem(pem: str) -> PeerCertificate | None:
    der = _der_from_pem(pem)
    return _from_der(der, "tls") if der else None


class MTLSExtractor:
    """``extractor(scope) -> PeerCertificate | None``; see the module docstring for the rules."""

    def __init__(self, config: MTLSConfig | None = None) -> None:
        config = config or MTLSConfig()
        if config.mode not in ("embedded", "proxy"):
            raise ValueError(f"unknown mTLS mode {config.mode!r} (expected 'embedded' or 'proxy')")
        self.config = config
        self._mode = config.mode
        self._header = config.header.lower().encode("latin-1")
        self._networks = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in config.trusted_proxies)
        # The same client certificate arrives on every request: parse it once.
        self._parse_header = functools.lru_cache(maxsize=_CACHE_SIZE)(_from_header_value)
        self._parse_der = functools.lru_cache(maxsize=_CACHE_SIZE)(functools.partial(_from_der, via="tls"))
        self._parse_pem = functools.lru_cache(maxsize=_CACHE_SIZE)(_from_tls_pem)
        # Peers are few (a proxy, a fleet's egress addresses): parse each address once.
        self._trusted = functools.lru_cache(maxsize=4096)(self._networks_hold)

    def __call__(self, scope: Mapping[str, Any]) -> PeerCertificate | None:
        if self._mode == "proxy" and self._from_trusted_proxy(scope):
            return self._from_header(scope)
        return self._from_tls(scope)

    # -- embedded / direct TLS ------------------------------------------------

    def _from_tls(self, scope: Mapping[str, Any]) -> PeerCertificate | None:
        tls = (scope.get("extensions") or {}).get("tls")
        if not isinstance(tls, Mapping):
            return None
        der = tls.get(CLIENT_CERT_DER_KEY)
        if isinstance(der, bytes) and der:
            return self._parse_der(der)
        chain = tls.get("client_cert_chain")
        if not chain:
            return None
        try:
            leaf = next(iter(chain))
        except (TypeError, StopIteration):
            return None
        return self._parse_pem(leaf) if isinstance(leaf, str) else None

    # -- behind a reverse proxy -------------------------------------------------

    def is_trusted_proxy(self, host: str) -> bool:
        return self._trusted(host)

    def _networks_hold(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone id
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)

    def _from_trusted_proxy(self, scope: Mapping[str, Any]) -> bool:
        client = scope.get("client")
        if not client or not isinstance(client[0], str):
            return False
        return self.is_trusted_proxy(client[0])

    def _from_header(self, scope: Mapping[str, Any]) -> PeerCertificate | None:
        value: bytes | None = None
        for name, header_value in scope.get("headers") or ():
            if name.lower() == self._header:
                if value is not None:
                    return None  # sent twice: ambiguous, refuse
                value = header_value
        if not value or len(value) > MAX_TOKEN_BYTES:
            return None
        return self._parse_header(bytes(value))
