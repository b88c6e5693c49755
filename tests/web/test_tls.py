"""Embedded mutual TLS: uvicorn + tessera.web.tls, against real sockets, curl and openssl s_client.

The PKI is made with the openssl CLI (the expired certificate with ``cryptography``,
since ``openssl x509 -req -days`` cannot go negative).  ``test_mtls.py`` reuses
the fixtures and helpers defined here.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tessera.web.mtls import MTLSConfig, MTLSExtractor
from tessera.web.tls import (
    CLIENT_CERT_DER_KEY,
    TLSH11Protocol,
    TLSHttpToolsProtocol,
    harden_ssl_context,
    protocol_class,
    ssl_options,
    tls_extension_from_ssl_object,
)

# ---------------------------------------------------------------------------------------------
# PKI, made with the openssl CLI
# ---------------------------------------------------------------------------------------------


def _tool(name: str) -> str:
    path = f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else shutil.which(name)
    if path is None:
        pytest.fail(f"the {name} CLI is needed for this test (make test-deps installs it)")
    return path


def _run(args: list[str], cwd: Path, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(args, cwd=cwd, input=stdin, capture_output=True, timeout=30)
    if proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}\n{proc.stderr.decode(errors='replace')}")
    return proc.stdout


@dataclass(frozen=True)
class PKI:
    dir: Path
    ca: Path  # the CA clients must chain to (also the server's issuer)
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    foreign_cert: Path  # issued by another CA
    foreign_key: Path
    expired_cert: Path  # issued by the right CA, expired yesterday
    expired_key: Path

    def thumbprint_by_openssl(self, cert: Path) -> str:
        """x5t#S256 computed independently: ``openssl x509 -outform DER | openssl dgst -sha256 -binary``."""
        openssl = _tool("openssl")
        der = _run([openssl, "x509", "-in", str(cert), "-outform", "DER"], self.dir)
        digest = _run([openssl, "dgst", "-sha256", "-binary"], self.dir, stdin=der)
        assert len(digest) == 32
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def escaped_pem(self, cert: Path) -> str:
        """The certificate as nginx's ``$ssl_client_escaped_cert`` sends it (URL-encoded PEM)."""
        from urllib.parse import quote

        return quote(cert.read_text(), safe="")


def _make_ca(openssl: str, d: Path, name: str, cn: str) -> None:
    _run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={cn}",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        d,
    )  # fmt: skip


def _make_leaf(openssl: str, d: Path, name: str, subj: str, ca: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext)
    csr = _run(
        [openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", f"{name}.key", "-subj", subj],
        d,
    )  # fmt: skip
    _run(
        [openssl, "x509", "-req", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-set_serial",
         str(int.from_bytes(os.urandom(8), "big")), "-days", "2", "-extfile", f"{name}.ext",
         "-out", f"{name}.pem"],
        d,
        stdin=csr,
    )  # fmt: skip


def _make_expired(d: Path, name: str, ca: str) -> None:
    ca_cert = x509.load_pem_x509_certificate((d / f"{ca}.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((d / f"{ca}.key").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=expired-client,O=Acme Payments"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=10))
        .not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    (d / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / f"{name}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    openssl = _tool("openssl")
    d = tmp_path_factory.mktemp("mtls-pki")
    _make_ca(openssl, d, "ca", "Tessera Test Clients CA")
    _make_ca(openssl, d, "other-ca", "Somebody Else's CA")
    _make_leaf(openssl, d, "server", "/CN=localhost", "ca",
               "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")  # fmt: skip
    client_ext = "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n"
    _make_leaf(openssl, d, "client", "/O=Acme Payments/CN=client-1", "ca", client_ext)
    _make_leaf(openssl, d, "foreign", "/O=Acme Payments/CN=client-1", "other-ca", client_ext)
    _make_expired(d, "expired", "ca")
    return PKI(
        dir=d,
        ca=d / "ca.pem",
        server_cert=d / "server.pem",
        server_key=d / "server.key",
        client_cert=d / "client.pem",
        client_key=d / "client.key",
        foreign_cert=d / "foreign.pem",
        foreign_key=d / "foreign.key",
        expired_cert=d / "expired.pem",
        expired_key=d / "expired.key",
    )


# ---------------------------------------------------------------------------------------------
# A real uvicorn server in a background thread
# ---------------------------------------------------------------------------------------------


def make_app(extractor: MTLSExtractor) -> Any:
    """ASGI app answering with what the extractor and the TLS extension say (``app.calls`` counts requests)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        app.calls += 1  # type: ignore[attr-defined]
        peer = extractor(scope)
        tls = (scope.get("extensions") or {}).get("tls")
        if tls is not None:
            tls = dict(tls)
            der = tls.pop(CLIENT_CERT_DER_KEY)
            tls["der_b64"] = base64.b64encode(der).decode() if der is not None else None
        body = json.dumps(
            {
                "peer": None if peer is None else {"thumbprint": peer.thumbprint, "via": peer.via},
                "tls": tls,
                "has_tls_extension": "tls" in (scope.get("extensions") or {}),
                "client": list(scope["client"]),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    app.calls = 0  # type: ignore[attr-defined]
    return app


# (protocol kind, event loop): httptools on uvloop and h11 on asyncio cover both protocol
# classes and both TLS implementations (uvloop's and asyncio's sslproto).
VARIANTS = [
    pytest.param("httptools", "uvloop", id="httptools-uvloop"),
    pytest.param("h11", "asyncio", id="h11-asyncio"),
]


@contextlib.contextmanager
def running_server(app: Any, *, kind: str = "auto", loop: str = "auto", **config: Any) -> Iterator[int]:
    """Run uvicorn on 127.0.0.1 (ephemeral port) in a thread; yields the port; always stops it."""
    cfg = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        http=protocol_class(kind),
        loop=loop,
        lifespan="off",
        log_level="critical",
        log_config=None,  # leave the test process's logging configuration alone
        access_log=False,
        **config,
    )
    server = uvicorn.Server(cfg)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        assert not thread.is_alive(), "uvicorn did not stop"


def curl(pki: PKI, port: int, *, cert: Path | None = None, key: Path | None = None) -> subprocess.CompletedProcess:
    args = [_tool("curl"), "-sS", "--max-time", "10", "--cacert", str(pki.ca)]
    if cert is not None:
        args += ["--cert", str(cert), "--key", str(key)]
    return subprocess.run([*args, f"https://127.0.0.1:{port}/"], capture_output=True, timeout=20)


def s_client(pki: PKI, port: int, *extra: str) -> str:
    """One HTTP request through ``openssl s_client`` (reads until the server closes); returns stdout."""
    proc = subprocess.run(
        [_tool("openssl"), "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(pki.ca),
         "-verify_return_error", "-cert", str(pki.client_cert), "-key", str(pki.client_key), "-ign_eof", *extra],
        input=b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        capture_output=True,
        timeout=20,
        cwd=pki.dir,
    )  # fmt: skip
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, out + proc.stderr.decode(errors="replace")
    return out


def json_body(http_response: str) -> dict[str, Any]:
    start = http_response.index('{"peer": ')  # s_client prints hex dumps with braces before it
    return json.JSONDecoder().raw_decode(http_response, start)[0]


@pytest.fixture
def embedded() -> MTLSExtractor:
    return MTLSExtractor(MTLSConfig(mode="embedded"))


# ---------------------------------------------------------------------------------------------
# Unit tests (no sockets)
# ---------------------------------------------------------------------------------------------


def test_protocol_class_selection() -> None:
    assert TLSHttpToolsProtocol is not None  # httptools is installed in this venv
    assert protocol_class() is TLSHttpToolsProtocol
    assert protocol_class("auto") is TLSHttpToolsProtocol
    assert protocol_class("httptools") is TLSHttpToolsProtocol
    assert protocol_class("h11") is TLSH11Protocol
    with pytest.raises(ValueError):
        protocol_class("zttp")


def test_ssl_options_shape(tmp_path: Path) -> None:
    opts = ssl_options(tmp_path / "s.pem", tmp_path / "s.key", tmp_path / "ca.pem")
    assert opts == {
        "ssl_certfile": str(tmp_path / "s.pem"),
        "ssl_keyfile": str(tmp_path / "s.key"),
        "ssl_cert_reqs": ssl.CERT_OPTIONAL,
        "ssl_ca_certs": str(tmp_path / "ca.pem"),
        "ssl_context_factory": harden_ssl_context,
    }


def test_config_builds_hardened_context(pki: PKI) -> None:
    cfg = uvicorn.Config(
        make_app(MTLSExtractor()),
        http=protocol_class(),
        log_config=None,
        **ssl_options(pki.server_cert, pki.server_key, pki.ca),
    )
    cfg.load()
    assert cfg.http_protocol_class is TLSHttpToolsProtocol
    ctx = cfg.ssl
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.options & ssl.OP_NO_RENEGOTIATION
    assert not ctx.options & ssl.OP_NO_TICKET
    assert ctx.num_tickets >= 1
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "Tessera Test Clients CA"),),)]


def test_extension_from_in_memory_handshake(pki: PKI) -> None:
    """tls_extension_from_ssl_object on a memory-BIO handshake (TLS 1.2 to check the cipher number)."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki.server_cert, pki.server_key)
    server_ctx.verify_mode = ssl.CERT_OPTIONAL
    server_ctx.load_verify_locations(pki.ca)
    client_ctx = ssl.create_default_context(cafile=str(pki.ca))
    client_ctx.load_cert_chain(pki.client_cert, pki.client_key)
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2

    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(10):
        for name, end in (("c", client), ("s", server)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            break
    assert all(done.values())

    tls = tls_extension_from_ssl_object(server)
    der = ssl.PEM_cert_to_DER_cert(pki.client_cert.read_text())
    assert tls["tls_version"] == 0x0303
    assert tls["cipher_suite"] == 0xC02C  # ECDHE-ECDSA-AES256-GCM-SHA384, the IANA number
    assert server.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
    assert tls["client_cert_name"] == "CN=client-1,O=Acme Payments"
    assert tls["client_cert_error"] is None
    assert tls["server_cert"] is None
    assert tls[CLIENT_CERT_DER_KEY] == der
    assert len(tls["client_cert_chain"]) == 1
    assert ssl.PEM_cert_to_DER_cert(tls["client_cert_chain"][0]) == der


# ---------------------------------------------------------------------------------------------
# Real servers
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "loop"), VARIANTS)
def test_curl_client_cert_and_refusals(pki: PKI, embedded: MTLSExtractor, kind: str, loop: str) -> None:
    opts = ssl_options(pki.server_cert, pki.server_key, pki.ca)
    app = make_app(embedded)
    with running_server(app, kind=kind, loop=loop, **opts) as port:
        # A certificate from the CA: the app sees it, and its thumbprint matches openssl's.
        ok = curl(pki, port, cert=pki.client_cert, key=pki.client_key)
        assert ok.returncode == 0, ok.stderr
        body = json.loads(ok.stdout)
        assert body["peer"] == {"thumbprint": pki.thumbprint_by_openssl(pki.client_cert), "via": "tls"}
        tls = body["tls"]
        assert tls["tls_version"] == 0x0304
        assert isinstance(tls["cipher_suite"], int) and 0x1301 <= tls["cipher_suite"] <= 0x1305
        assert tls["client_cert_name"] == "CN=client-1,O=Acme Payments"
        assert tls["client_cert_error"] is None and tls["server_cert"] is None
        der = base64.b64decode(tls["der_b64"])
        assert der == ssl.PEM_cert_to_DER_cert(pki.client_cert.read_text())
        assert [ssl.PEM_cert_to_DER_cert(p) for p in tls["client_cert_chain"]] == [der]

        # No certificate: the TLS handshake succeeds, the extractor sees nothing.
        anon = curl(pki, port)
        assert anon.returncode == 0, anon.stderr
        body = json.loads(anon.stdout)
        assert body["peer"] is None
        assert body["tls"]["client_cert_chain"] == [] and body["tls"]["der_b64"] is None
        assert body["tls"]["client_cert_name"] is None and body["tls"]["tls_version"] == 0x0304

        # Another CA's certificate, or an expired one: the handshake is refused and the app
        # never runs.  (Neither uvloop nor asyncio flushes the TLS alert before closing, so
        # curl reports "Empty reply"/"Connection reset" rather than "unknown ca".)
        calls = app.calls  # type: ignore[attr-defined]
        for cert, key in ((pki.foreign_cert, pki.foreign_key), (pki.expired_cert, pki.expired_key)):
            refused = curl(pki, port, cert=cert, key=key)
            assert refused.returncode != 0 and not refused.stdout, (cert.name, refused)
        assert app.calls == calls  # type: ignore[attr-defined]

        # ...and the server is none the worse for it.
        again = curl(pki, port, cert=pki.client_cert, key=pki.client_key)
        assert again.returncode == 0 and json.loads(again.stdout)["peer"]["via"] == "tls"


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "loop"), VARIANTS)
def test_keep_alive_requests_both_see_the_certificate(pki: PKI, embedded: MTLSExtractor, kind: str, loop: str) -> None:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.load_cert_chain(pki.client_cert, pki.client_key)
    expected = pki.thumbprint_by_openssl(pki.client_cert)
    opts = ssl_options(pki.server_cert, pki.server_key, pki.ca)
    with running_server(make_app(embedded), kind=kind, loop=loop, **opts) as port:
        with httpx.Client(verify=ctx, base_url=f"https://127.0.0.1:{port}") as client:
            first, second = client.get("/").json(), client.get("/").json()
    assert first["client"] == second["client"]  # same source port: one connection
    assert first["peer"] == second["peer"] == {"thumbprint": expected, "via": "tls"}


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "loop"), VARIANTS)
@pytest.mark.parametrize(
    ("flags", "version"),
    [
        pytest.param(["-tls1_3"], "TLSv1.3", id="tls13-ticket"),
        pytest.param(["-tls1_2"], "TLSv1.2", id="tls12-ticket"),
        pytest.param(["-tls1_2", "-no_ticket"], "TLSv1.2", id="tls12-session-id"),
    ],
)
def test_session_resumption_keeps_the_client_certificate(
    pki: PKI, embedded: MTLSExtractor, kind: str, loop: str, flags: list[str], version: str, tmp_path: Path
) -> None:
    session = str(tmp_path / "session.pem")
    expected = {"thumbprint": pki.thumbprint_by_openssl(pki.client_cert), "via": "tls"}
    opts = ssl_options(pki.server_cert, pki.server_key, pki.ca)
    with running_server(make_app(embedded), kind=kind, loop=loop, **opts) as port:
        # The full response is read before s_client exits, so TLS 1.3 tickets (sent after
        # the handshake) have arrived when the session is saved.
        first = s_client(pki, port, *flags, "-sess_out", session)
        assert f"New, {version}" in first, first
        assert json_body(first)["peer"] == expected

        resumed = s_client(pki, port, *flags, "-sess_in", session)
        assert f"Reused, {version}" in resumed, resumed
        body = json_body(resumed)
        assert body["peer"] == expected  # the resumed session still carries the client certificate
        assert body["tls"]["tls_version"] == {"TLSv1.3": 0x0304, "TLSv1.2": 0x0303}[version]
        assert body["client"] != json_body(first)["client"]  # really a second connection


@pytest.mark.slow
def test_renegotiation_is_refused(pki: PKI, embedded: MTLSExtractor) -> None:
    """TLS 1.2 renegotiation could swap the client certificate mid-connection; the server refuses it.

    (OpenSSL 3 already refuses client-initiated renegotiation; OP_NO_RENEGOTIATION, checked in
    test_config_builds_hardened_context, keeps it so on any OpenSSL build.)"""
    opts = ssl_options(pki.server_cert, pki.server_key, pki.ca)
    with running_server(make_app(embedded), **opts) as port:
        proc = subprocess.run(
            [_tool("openssl"), "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(pki.ca), "-tls1_2",
             "-cert", str(pki.client_cert), "-key", str(pki.client_key)],
            input=b"R\n",
            capture_output=True,
            timeout=20,
        )  # fmt: skip
    out = (proc.stdout + proc.stderr).decode(errors="replace")
    assert "RENEGOTIATING" in out, out
    assert "no renegotiation" in out, out


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "loop"), VARIANTS)
def test_plain_http_scope_is_untouched(embedded: MTLSExtractor, kind: str, loop: str) -> None:
    with running_server(make_app(embedded), kind=kind, loop=loop) as port:
        body = httpx.get(f"http://127.0.0.1:{port}/").json()
    assert body == {"peer": None, "tls": None, "has_tls_extension": False, "client": body["client"]}
