"""Embedded TLS termination for uvicorn, with the ASGI TLS extension.

uvicorn (0.54) terminates TLS and verifies client certificates, but it does not
fill ``scope["extensions"]["tls"]`` (https://asgi.readthedocs.io/en/latest/specs/tls.html),
so the application cannot see *which* certificate the client presented.  This
module plugs that gap through uvicorn's protocol-class hook::

    config = uvicorn.Config(
        app,
        http=protocol_class(),                      # instead of "auto"/"httptools"/"h11"
        **ssl_options("server.pem", "server.key", "clients-ca.pem"),
    )

The protocol subclasses read the transport's ``ssl_object`` once, when the
connection is made (after the handshake), and wrap ``self.app`` -- which
uvicorn keeps per connection -- in a tiny ASGI callable that adds the TLS
extension to every HTTP scope on that connection.  Plain (non-TLS)
connections are left untouched.

Besides the spec keys the extension carries ``"tessera.client_cert_der"``: the
leaf certificate's DER, so the application can hash it without re-decoding PEM.

Limits: Python's ``ssl`` (3.11) only exposes the peer's *leaf* certificate,
so ``client_cert_chain`` holds at most one PEM; ``server_cert`` is ``None``.
WebSocket connections upgraded from these protocols do not get the extension
(uvicorn builds the websocket protocol from the config, not from ``self.app``).
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol

from tessera.web.transport import CoalescingTransport

try:  # httptools is optional for uvicorn; h11 is always there.
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - exercised only without httptools
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

__all__ = [
    "CLIENT_CERT_DER_KEY",
    "TLSH11Protocol",
    "TLSHttpToolsProtocol",
    "AlertingSSLObject",
    "harden_ssl_context",
    "protocol_class",
    "ssl_options",
    "tls_extension_from_ssl_object",
]

#: Private key in the TLS extension dict holding the leaf certificate as DER bytes.
from tessera.sdk.mtls import CLIENT_CERT_DER_KEY  # noqa: E402 - defined with its reader

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

_TLS_VERSIONS = {
    "SSLv3": 0x0300,
    "TLSv1": 0x0301,
    "TLSv1.1": 0x0302,
    "TLSv1.2": 0x0303,
    "TLSv1.3": 0x0304,
}

# OpenSSL cipher name -> IANA 16-bit cipher-suite number.  The mapping is
# global (names and numbers are fixed), filled lazily from the contexts we see.
_CIPHER_IDS: dict[str, int] = {}


def _cipher_suite(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> int | None:
    cipher = ssl_object.cipher()
    if not cipher:
        return None
    name = cipher[0]
    if name not in _CIPHER_IDS:
        try:
            for entry in ssl_object.context.get_ciphers():
                _CIPHER_IDS.setdefault(entry["name"], entry["id"] & 0xFFFF)
        except (ssl.SSLError, KeyError, TypeError, AttributeError):  # pragma: no cover - defensive
            return None
    return _CIPHER_IDS.get(name)


@functools.lru_cache(maxsize=256)
def _describe_certificate(der: bytes) -> tuple[str, str | None]:
    """PEM and RFC 4514 subject of a DER certificate (cached: clients reconnect a lot)."""
    pem = ssl.DER_cert_to_PEM_cert(der)
    try:
        from cryptography import x509

        name: str | None = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    except Exception:  # cryptography is stricter than OpenSSL about some encodings
        name = None
    return pem, name


def tls_extension_from_ssl_object(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> dict[str, Any]:
    """Build the ASGI ``tls`` extension dict for an established TLS connection."""
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        pem, name = _describe_certificate(der)
        chain = [pem]
    else:
        der, name, chain = None, None, []
    version = ssl_object.version()
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        # With CERT_OPTIONAL/CERT_REQUIRED a certificate that fails verification
        # aborts the handshake, so a connection that exists never has an error.
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(version) if version else None,
        "cipher_suite": _cipher_suite(ssl_object),
        CLIENT_CERT_DER_KEY: der,
    }


class _TLSScopeApp:
    """Per-connection ASGI wrapper that adds ``scope["extensions"]["tls"]``."""

    __slots__ = ("app", "tls")

    def __init__(self, app: ASGIApp, tls: dict[str, Any]) -> None:
        self.app = app
        self.tls = tls

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            extensions = scope.get("extensions")
            if extensions is None:
                extensions = scope["extensions"] = {}
            # A fresh dict per request (cheap; the PEM strings are shared) so a
            # request cannot leak mutations into the next one on the connection.
            tls = dict(self.tls)
            tls["client_cert_chain"] = list(self.tls["client_cert_chain"])
            extensions["tls"] = tls
        await self.app(scope, receive, send)


class _TLSExtensionMixin:
    app: ASGIApp

    def connection_made(self, transport: Any) -> None:
        # One write per response (tessera.web.transport); the TLS details come from the real transport.
        super().connection_made(CoalescingTransport(transport))  # type: ignore[misc]
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.app = _TLSScopeApp(self.app, tls_extension_from_ssl_object(ssl_object))


class TLSH11Protocol(_TLSExtensionMixin, H11Protocol):
    """uvicorn's h11 protocol, plus the ASGI TLS extension."""


if HttpToolsProtocol is not None:

    class TLSHttpToolsProtocol(_TLSExtensionMixin, HttpToolsProtocol):  # type: ignore[misc,valid-type,unused-ignore]
        """uvicorn's httptools protocol, plus the ASGI TLS extension."""

else:  # pragma: no cover
    TLSHttpToolsProtocol = None  # type: ignore[assignment,misc]


def protocol_class(kind: str = "auto") -> type:
    """The protocol class to pass as ``uvicorn.Config(http=...)``.

    ``kind`` is ``"auto"`` (httptools when importable, else h11), ``"httptools"`` or ``"h11"``.
    """
    if kind == "h11":
        return TLSH11Protocol
    if kind == "httptools":
        if TLSHttpToolsProtocol is None:  # pragma: no cover
            raise ImportError("httptools is not installed")
        return TLSHttpToolsProtocol
    if kind == "auto":
        return TLSHttpToolsProtocol if TLSHttpToolsProtocol is not None else TLSH11Protocol
    raise ValueError(f"unknown HTTP protocol kind {kind!r} (expected 'auto', 'httptools' or 'h11')")


# --- refused handshakes: a TLS alert, one log line, a metric ---------------------------------------
#: OpenSSL's X.509 verification codes (``X509_V_ERR_*``) as the reasons a handshake was refused.
_VERIFY_REASONS = {
    2: "unknown_ca",
    18: "unknown_ca",
    19: "unknown_ca",
    20: "unknown_ca",
    21: "unknown_ca",  # no path to our CA
    9: "not_yet_valid",
    10: "expired",
    23: "revoked",
    26: "wrong_purpose",  # no clientAuth in the extended key usage
    7: "bad_signature",
}
#: OpenSSL reason strings of refusals that are not about the certificate's verification.
_OTHER_REASONS = {
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "no_certificate",
    "CERTIFICATE_REQUIRED": "no_certificate",
}
_log = None


def refusal_reason(err: ssl.SSLError) -> str:
    """A short, bounded label for why OpenSSL refused a handshake (the metric's ``reason``)."""
    code = getattr(err, "verify_code", None)
    if isinstance(err, ssl.SSLCertVerificationError) or code:
        return _VERIFY_REASONS.get(code or 0, "bad_certificate")
    reason = getattr(err, "reason", None) or ""
    if reason in _OTHER_REASONS:
        return _OTHER_REASONS[reason]
    return "protocol"  # plain HTTP on the TLS port, no shared version or cipher, a malformed message


def _refused(err: ssl.SSLError) -> None:
    """Log (once per handshake) and count a refused handshake."""
    global _log
    if _log is None:
        import structlog

        _log = structlog.get_logger("tessera.tls")
    reason = refusal_reason(err)
    detail = getattr(err, "verify_message", None) or getattr(err, "reason", None) or type(err).__name__
    try:
        from tessera.web.metrics import count_tls_failure

        count_tls_failure(reason)
    finally:
        _log.warning("tls_handshake_refused", reason=reason, detail=str(detail)[:120])


class AlertingSSLObject(ssl.SSLObject):
    """An ``SSLObject`` whose refused handshake reaches the client as a TLS alert.

    When OpenSSL refuses a handshake (a client certificate from another CA, expired, for
    another purpose, ...) it writes the alert into the outgoing buffer and fails
    ``do_handshake``; the event loop's SSL protocol (asyncio's and uvloop's alike) then
    closes the socket without sending what is in that buffer, so the client saw "server
    disconnected" and nothing else. Here the first failure is recorded (logged and counted,
    once) and reported to the loop as "want read": the loop sends the pending bytes (the
    alert) and waits for the client, which closes on the alert (or sends something, and the
    recorded failure is raised then: the loop closes the connection)."""

    _refusal: ssl.SSLError | None = None

    def do_handshake(self) -> None:
        if self._refusal is not None:
            raise self._refusal
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as e:
            self._refusal = e
            _refused(e)
            raise ssl.SSLWantReadError("handshake refused: the alert is on its way") from None


def harden_ssl_context(config: Config, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """``uvicorn.Config(ssl_context_factory=...)``: uvicorn's context, pinned down.

    uvicorn builds the context with ``ssl.SSLContext(PROTOCOL_TLS_SERVER)``,
    ``load_cert_chain``, ``verify_mode`` and ``load_verify_locations``; we keep
    that and only tighten it, via uvicorn's own factory hook (no ``Config``
    subclass needed):

    * ``minimum_version = TLSv1_2`` -- CPython >= 3.10 already defaults to it,
      but a system OpenSSL policy or an older runtime could lower it; FAPI and
      RFC 8705 deployments require >= 1.2.
    * ``sslobject_class = AlertingSSLObject`` -- a refused handshake sends its
      TLS alert, and is logged once and counted (``tessera_tls_handshake_failures_total``).
    * ``OP_NO_RENEGOTIATION`` -- the peer certificate is read once per
      connection (see the protocol classes), so a TLS 1.2 renegotiation must
      not be able to swap it mid-connection.  OpenSSL 3 already refuses
      client-initiated renegotiation; this makes it explicit for every build.

    Session resumption needs nothing: CPython sets a session-id context on
    every ``SSLContext`` (without one OpenSSL would refuse to resume sessions
    once client verification is on), the server-side session cache is on, and
    tickets are issued (``num_tickets`` = 2 in TLS 1.3, RFC 5077 tickets in
    TLS 1.2).  A resumed session carries the client certificate of the full
    handshake, so the application still sees it.  Caveat: the session cache
    and the ticket key live in this one ``SSLContext``, i.e. per worker
    process -- a client resuming against another worker gets a full handshake.
    """
    context = default_factory()
    if context.minimum_version < ssl.TLSVersion.TLSv1_2:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.sslobject_class = AlertingSSLObject  # a refused handshake: alert, log line, metric
    return context


def ssl_options(certfile: str | Any, keyfile: str | Any, ca_certs: str | Any) -> dict[str, Any]:
    """``uvicorn.Config`` keyword arguments for mutual TLS.

    The server asks every client for a certificate issued by ``ca_certs``
    (``CERT_OPTIONAL``: a client without one still connects -- routes that need
    a certificate refuse at the HTTP level; a client whose certificate does not
    verify, e.g. another CA or expired, is refused in the handshake).
    """
    return {
        "ssl_certfile": str(certfile),
        "ssl_keyfile": str(keyfile),
        "ssl_cert_reqs": ssl.CERT_OPTIONAL,
        "ssl_ca_certs": str(ca_certs),
        "ssl_context_factory": harden_ssl_context,
    }
