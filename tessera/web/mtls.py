"""The server's view of the client's (mutual-TLS) certificate: ``tessera.sdk.mtls``, which
lives in the SDK so that resource servers (``tessera.sdk.resource``) use the very same
extraction without importing the server."""

from tessera.sdk.mtls import *  # noqa: F403
from tessera.sdk.mtls import CLIENT_CERT_DER_KEY, MAX_HEADER_BYTES, MTLSConfig, MTLSExtractor, PeerCertificate, thumbprint

__all__ = ["CLIENT_CERT_DER_KEY", "MAX_HEADER_BYTES", "MTLSConfig", "MTLSExtractor", "PeerCertificate", "thumbprint"]
