"""The issued certificates in a real mutual-TLS handshake (Python's ssl, in memory).

The server uses ``issue_server_certificate``; the client presents a certificate
from ``sign_csr``. OpenSSL's own chain and purpose checks decide, on both sides.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tessera.ca import CertificateAuthority

from .helpers import build_csr


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, hostname: str) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=hostname)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {c: False, s: False}
    for _ in range(20):
        for side in (c, s):
            if done[side]:
                continue
            try:
                side.do_handshake()
                done[side] = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            # TLS 1.3: the server judges the client certificate after the client is "done";
            # one application-data round trip surfaces a rejection on the client side too.
            c.write(b"ping")
            s_in.write(c_out.read())
            assert s.read(4) == b"ping"
            return c, s
    raise AssertionError("handshake did not finish")


def _contexts(tmp_path: Path, ca: CertificateAuthority, client_cert_pem: bytes, client_key_pem: bytes):
    (tmp_path / "ca.pem").write_bytes(ca.certificate_pem())
    server_cert, server_key = ca.issue_server_certificate("tessera.test")
    (tmp_path / "server.pem").write_bytes(server_cert)
    (tmp_path / "server.key").write_bytes(server_key)
    (tmp_path / "client.pem").write_bytes(client_cert_pem)
    (tmp_path / "client.key").write_bytes(client_key_pem)

    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    server.load_verify_locations(tmp_path / "ca.pem")
    server.verify_mode = ssl.CERT_REQUIRED

    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(tmp_path / "ca.pem")
    client.load_cert_chain(tmp_path / "client.pem", tmp_path / "client.key")
    return client, server


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize("key_fixture", ["rsa_key", "ec_key"])
def test_mutual_tls_with_issued_certificates(request, tmp_path, ca, key_fixture):
    key = request.getfixturevalue(key_fixture)
    issued = ca.sign_csr(build_csr(key, cn="mtls-app"))
    client, server = _contexts(tmp_path, ca, issued.pem, _key_pem(key))
    _, s = _handshake(client, server, "tessera.test")
    peer = x509.load_der_x509_certificate(s.getpeercert(binary_form=True))
    assert peer == issued.certificate
    ca.verify_issued(peer)


def test_server_refuses_a_server_certificate_as_client_certificate(tmp_path, ca):
    # A serverAuth-only certificate from the same CA must not pass as a client certificate.
    cert_pem, key_pem = ca.issue_server_certificate("sneaky-client")
    client, server = _contexts(tmp_path, ca, cert_pem, key_pem)
    with pytest.raises(ssl.SSLCertVerificationError, match="unsuitable certificate purpose"):
        _handshake(client, server, "tessera.test")


def test_server_refuses_a_client_certificate_from_another_ca(tmp_path, ca, ec_key):
    other = CertificateAuthority.generate()
    client, server = _contexts(tmp_path, ca, other.sign_csr(build_csr(ec_key)).pem, _key_pem(ec_key))
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        _handshake(client, server, "tessera.test")
