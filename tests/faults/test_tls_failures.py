"""Checklist row 25, the handshake side: in embedded mutual TLS a refused client certificate
gets a TLS alert (not a bare disconnect), one log line with the reason, and a count in
``/metrics`` (``tessera_tls_handshake_failures_total{reason}``).

Certificates: another CA and its client certificate made by the ``openssl`` CLI; an expired
certificate from tessera's own CA (a CSR made by ``openssl req``, signed 40 days in the past
for 1 day); a certificate from tessera's CA for another purpose (a server certificate: no
clientAuth). Clients: Python's ``ssl`` (TLS 1.3: the alert arrives on the first read) and
``openssl s_client`` (TLS 1.2: the alert arrives during the handshake).

Revocation is not refused in the handshake (the server's TLS context has no CRL): a revoked
certificate completes it and is refused by every endpoint that takes it (401, with a
``revoked_certificate_used`` event), see tests/security. A client without a certificate also
completes it (``CERT_OPTIONAL``: discovery and JWKS need none) and is refused at the HTTP level.
"""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tessera.home import load_ca
from tests.support.live import LiveServer, make_csr, openssl

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = LiveServer(tmp_path_factory.mktemp("tls-failures")).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def certs(server, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    d = tmp_path_factory.mktemp("tls-certs")
    out: dict[str, tuple[Path, Path]] = {}
    # another CA, and a client certificate (clientAuth) it signed: all by the openssl CLI
    openssl(
        "req",
        "-x509",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        "other-ca.key",
        "-out",
        "other-ca.pem",
        "-days",
        "30",
        "-subj",
        "/CN=Another CA",
        cwd=d,
    )
    csr, key = make_csr(d, "stranger", key_type="ec")
    (d / "ext.cnf").write_text("extendedKeyUsage=clientAuth\n")
    openssl(
        "x509",
        "-req",
        "-in",
        csr.name,
        "-CA",
        "other-ca.pem",
        "-CAkey",
        "other-ca.key",
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        "ext.cnf",
        "-out",
        "stranger.pem",
        cwd=d,
    )
    out["unknown_ca"] = (d / "stranger.pem", key)
    # tessera's own CA: expired (signed for one day, 40 days ago)
    ca = load_ca(server.settings)
    csr, key = make_csr(d, "expired", key_type="ec")
    issued = ca.sign_csr(csr.read_bytes(), validity_days=1, now=datetime.now(UTC) - timedelta(days=40))
    (d / "expired.pem").write_bytes(issued.pem)
    out["expired"] = (d / "expired.pem", key)
    return out


def metric(server: LiveServer, reason: str) -> float:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(server.ca)), timeout=10) as c:
        text = c.get(f"https://localhost:{server.port}/metrics").text
    m = re.search(rf'tessera_tls_handshake_failures_total\{{reason="{reason}"\}} (\S+)', text)
    return float(m.group(1)) if m else 0.0


def log_lines(server: LiveServer) -> list[str]:
    return [
        line
        for line in (server.workdir / "server.log").read_text(errors="replace").splitlines()
        if "tls_handshake_refused" in line
    ]


def python_client(server: LiveServer, cert: Path, key: Path) -> ssl.SSLError:
    """Connect with ``cert`` over TLS 1.3, send a request, and return the error the read raised."""
    ctx = ssl.create_default_context(cafile=str(server.ca))
    ctx.load_cert_chain(str(cert), str(key))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            try:
                tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                data = tls.recv(4096)
            except ssl.SSLError as e:
                return e
    raise AssertionError(f"the server answered instead of refusing: {data[:100]!r}")


ALERTS = {"unknown_ca": "TLSV1_ALERT_UNKNOWN_CA", "expired": "SSLV3_ALERT_CERTIFICATE_EXPIRED"}


@pytest.mark.parametrize("reason", ["unknown_ca", "expired"])
def test_a_refused_certificate_gets_an_alert_one_log_line_and_a_count(server, certs, reason):
    cert, key = certs[reason]
    before_metric, before_log = metric(server, reason), len(log_lines(server))
    err = python_client(server, cert, key)
    assert err.reason == ALERTS[reason], err  # the alert, not "server disconnected"
    new = log_lines(server)[before_log:]
    assert len(new) == 1 and f'"reason": "{reason}"' in new[0].replace('":"', '": "'), new
    assert metric(server, reason) == before_metric + 1


def test_a_certificate_for_another_purpose_is_refused_with_an_alert(server, certs, tmp_path):
    ca = load_ca(server.settings)
    key = tmp_path / "srv.key"
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key), cwd=tmp_path)
    # a server certificate (serverAuth only) from tessera's CA, for this key: made with the CA's own CSR path
    openssl(
        "req", "-new", "-key", str(key), "-subj", "/CN=not-a-client", "-out", str(tmp_path / "srv.csr"), cwd=tmp_path
    )
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    csr = x509.load_pem_x509_csr((tmp_path / "srv.csr").read_bytes())
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca.certificate.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    cert = builder.sign(ca.private_key, hashes.SHA256())
    (tmp_path / "srv.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    before = metric(server, "wrong_purpose")
    err = python_client(server, tmp_path / "srv.pem", key)
    assert err.reason == "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE", err
    assert metric(server, "wrong_purpose") == before + 1


def test_openssl_s_client_sees_the_alert_in_a_tls12_handshake(server, certs):
    cert, key = certs["unknown_ca"]
    before = metric(server, "unknown_ca")
    r = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{server.port}",
            "-servername",
            "localhost",
            "-tls1_2",
            "-CAfile",
            str(server.ca),
            "-cert",
            str(cert),
            "-key",
            str(key),
        ],
        input=b"",
        capture_output=True,
        timeout=30,
    )
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert "alert unknown ca" in out, out[-2000:]
    assert metric(server, "unknown_ca") == before + 1


def test_a_client_without_a_certificate_and_a_good_one_still_connect(server):
    with httpx.Client(verify=ssl.create_default_context(cafile=str(server.ca)), timeout=10) as c:
        assert c.get(f"https://localhost:{server.port}/healthz").status_code == 200
    app = server.new_app()
    ctx = ssl.create_default_context(cafile=str(server.ca))
    ctx.load_cert_chain(str(app.cert), str(app.key))
    with httpx.Client(verify=ctx, timeout=10) as c:
        assert c.get(f"https://localhost:{server.port}/healthz").status_code == 200
