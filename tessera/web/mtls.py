"""Who is calling: the client's (mutual-TLS) certificate and the client's address.

The certificate extraction is ``tessera.sdk.mtls``, which lives in the SDK so that resource
servers (``tessera.sdk.resource``) use the very same extraction without importing the
server. ``ClientAddress`` is the one rule for the caller's address, used by the rate
limits (``Runtime.client_ip``) and the access log alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tessera.sdk.mtls import (
    CLIENT_CERT_DER_KEY,
    MTLSConfig,
    MTLSExtractor,
    PeerCertificate,
    thumbprint,
)

__all__ = [
    "CLIENT_CERT_DER_KEY",
    "ClientAddress",
    "MTLSConfig",
    "MTLSExtractor",
    "PeerCertificate",
    "thumbprint",
]

#: The longest forwarded address kept (an IPv6 address with a zone fits).
MAX_ADDRESS = 64


class ClientAddress:
    """``client_address(scope) -> str``: the TCP peer's address or, in proxy mode and from a
    trusted proxy (the extractor's list), the first ``X-Real-IP`` the proxy set. Computed
    from the ASGI scope alone."""

    __slots__ = ("_trusted",)

    def __init__(self, extractor: MTLSExtractor) -> None:
        self._trusted = extractor.is_trusted_proxy if extractor.config.mode == "proxy" else None

    def __call__(self, scope: Mapping[str, Any]) -> str:
        client = scope.get("client")
        host = str(client[0]) if client else "unknown"
        if self._trusted is not None and self._trusted(host):
            for name, value in scope["headers"]:
                if name == b"x-real-ip":
                    forwarded: str = value.decode("latin-1").strip()[:MAX_ADDRESS]
                    return forwarded or host
        return host
