"""Checklist rows 23-28: mutual TLS and the developer certificates.

Rows 23-26 call the Nexi endpoints that need mTLS (``/softpos/appenrollment/token``,
``/softpos/as/par``, ``/softpos/as/token``) and the native ones (``tls_client_auth`` at
``/oauth2/token``, certificate-bound tokens at ``/oauth2/userinfo``) over real TLS sockets.
Row 27 puts the repository's nginx configuration (``deploy/nginx/tessera.conf``) in front
of a proxy-mode server, over TLS. Row 28 has the home's CA sign CSRs made by ``openssl``
(``tessera certs sign``) and uses the certificate it issued against the live server.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from tessera.core.models import CertificateRecord
from tests.ca.helpers import der_to_pem, pem_to_der
from tests.e2e import native_helpers as nh
from tests.e2e import nexi_helpers as nx
from tests.security.helpers import assert_error, ledger, nothing_new
from tests.support.live import AppIdentity, LiveServer, free_port, make_csr, openssl

pytestmark = pytest.mark.slow


def claims_of(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def nexi_token_call(server: LiveServer, app: AppIdentity, cert: Path | None, key: Path | None) -> httpx.Response | str:
    """The Nexi token call with ``cert``; "tls" when the handshake itself refused it."""
    try:
        with nx.http(server, app, cert=cert, key=key) as c:
            return nx.token_request(c, app)
    except httpx.TransportError:
        return "tls"


def store_cert(server: LiveServer, client_id: str, cert: x509.Certificate, path: Path) -> Path:
    from tessera.web.mtls import thumbprint

    pem = cert.public_bytes(serialization.Encoding.PEM)
    server.store.add_certificate(
        CertificateRecord(
            serial=format(cert.serial_number, "x"),
            client_id=client_id,
            thumbprint=thumbprint(cert.public_bytes(serialization.Encoding.DER)),
            subject=cert.subject.rfc4514_string(),
            not_before=int(cert.not_valid_before_utc.timestamp()),
            not_after=int(cert.not_valid_after_utc.timestamp()),
            pem=pem.decode(),
            created_at=int(time.time()),
        )
    )
    path.write_bytes(pem)
    return path


# === 23 ==========================================================================================


def test_row_23_nexi_token_without_a_client_certificate(nexi):
    with nx.http(nexi.server, cert=None) as c, nothing_new(nexi.server):
        assert_error(nx.token_request(c, nexi.app), 401, "invalid_client")


def test_row_23_nexi_code_exchange_without_a_client_certificate(nexi):
    m = nexi.server.new_merchant(nexi.app)
    verifier, challenge = nx.pkce_pair()
    code = nx.login_for_code(
        nexi.server,
        nexi.app,
        m,
        nx.push(nexi.server, nexi.app, m, token=nexi.token, jwks=nexi.jwks, code_challenge=challenge),
    )
    with nx.http(nexi.server, cert=None) as c, nothing_new(nexi.server):
        assert_error(nx.exchange(c, nexi.app, code, code_verifier=verifier), 401, "invalid_client")
    assert nx.exchange(nexi.backend, nexi.app, code, code_verifier=verifier).status_code == 200  # not used up


def test_row_23_native_tls_client_auth_without_a_certificate(live_server):
    nc = nh.register(live_server, methods=("tls_client_auth",), with_cert=True)
    with nh.http(live_server, nc, mtls=False) as c, nothing_new(live_server):
        assert_error(
            c.post(nh.TOKEN, data={"grant_type": "client_credentials", "client_id": nc.client_id}),
            401,
            "invalid_client",
        )


# === 24 ==========================================================================================


def test_row_24_app_a_certificate_with_app_b_credentials_nexi(nexi):
    with nothing_new(nexi.server):  # nexi.backend presents the app's certificate
        assert_error(nx.token_request(nexi.backend, nexi.other), 401, "invalid_client")


def test_row_24_app_a_certificate_with_app_b_credentials_native(live_server):
    a = nh.register(live_server, methods=("tls_client_auth", "client_secret_basic"), with_cert=True)
    b = nh.register(live_server, methods=("tls_client_auth", "client_secret_basic"), with_cert=True)
    with nh.http(live_server, cert=a.cert, key=a.key) as c, nothing_new(live_server):
        assert_error(
            c.post(nh.TOKEN, data={"grant_type": "client_credentials"}, auth=nh.basic(b)), 401, "invalid_client"
        )
        assert_error(
            c.post(nh.TOKEN, data={"grant_type": "client_credentials", "client_id": b.client_id}), 401, "invalid_client"
        )


# === 25 ==========================================================================================


def test_row_25_expired_certificate(live_server, tmp_path):
    from tessera.home import load_ca

    app = live_server.new_app(with_cert=False)
    csr, key = make_csr(tmp_path / "expired")
    issued = load_ca(live_server.settings).sign_csr(
        csr.read_bytes(), validity_days=1, now=datetime.now(UTC) - timedelta(days=5)
    )
    cert = store_cert(live_server, app.client_id, x509.load_pem_x509_certificate(issued.pem), tmp_path / "expired.pem")
    with nothing_new(live_server):
        r = nexi_token_call(live_server, app, cert, key)
        if r != "tls":
            assert_error(r, 401, "invalid_client")


def test_row_25_certificate_from_another_ca(live_server, tmp_path):
    from tessera.ca.authority import CertificateAuthority

    app = live_server.new_app(with_cert=False)
    csr, key = make_csr(tmp_path / "foreign")
    issued = CertificateAuthority.generate("another CA").sign_csr(csr.read_bytes(), validity_days=30)
    cert = tmp_path / "foreign.pem"
    cert.write_bytes(issued.pem)
    with nothing_new(live_server):
        r = nexi_token_call(live_server, app, cert, key)
        if r != "tls":
            assert_error(r, 401, "invalid_client")


def test_row_25_revoked_certificate(live_server):
    app = live_server.new_app()
    with nx.http(live_server, app) as c:
        assert nx.token_request(c, app).status_code == 200
    live_server.cli("certs", "revoke", "--serial", app.serial)
    with nothing_new(live_server):
        r = nexi_token_call(live_server, app, app.cert, app.key)
        assert r != "tls"  # the CA still vouches for it: tessera refuses it, on the very next request
        assert_error(r, 401, "invalid_client")


def test_row_25_certificate_without_the_client_auth_eku(live_server, tmp_path):
    from tessera.home import load_ca

    app = live_server.new_app(with_cert=False)
    csr_path, key = make_csr(tmp_path / "server-eku")
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    ca = load_ca(live_server.settings)
    now = datetime.now(UTC)
    cert = ca._sign(
        ca._leaf_builder(
            subject=csr.subject,
            public_key=csr.public_key(),
            not_before=now - timedelta(minutes=5),
            not_after=now + timedelta(days=5),
            eku=ExtendedKeyUsageOID.SERVER_AUTH,
        )
    )
    path = store_cert(live_server, app.client_id, cert, tmp_path / "server-eku.pem")
    with nothing_new(live_server):
        r = nexi_token_call(live_server, app, path, key)
        if r != "tls":
            assert_error(r, 401, "invalid_client")


# === 26 ==========================================================================================


def test_row_26_token_bound_to_certificate_a_used_with_certificate_b(nexi):
    import dataclasses

    second = nexi.server.add_cert(dataclasses.replace(nexi.app))  # another certificate of the same app
    assert claims_of(nexi.token)["cnf"]["x5t#S256"] == nexi.app.thumbprint != second.thumbprint
    with nx.http(nexi.server, second) as c, nothing_new(nexi.server):
        assert_error(nexi.par(c=c), 401, "invalid_token")


def test_row_26_token_bound_to_another_apps_certificate(nexi):
    with nx.http(nexi.server, nexi.other) as c, nothing_new(nexi.server):
        assert_error(nexi.par(c=c), 401, "invalid_token")


def test_row_26_bound_token_without_a_certificate(nexi, live_server):
    with nx.http(nexi.server, cert=None) as c, nothing_new(nexi.server):
        r = nexi.par(c=c)
    assert r.status_code == 401  # the Nexi PAR asks for the certificate first: invalid_client
    # native: a certificate-bound token at the resource endpoint, with B's certificate or none
    a = nh.register(live_server, with_cert=True)
    b = nh.register(live_server, with_cert=True)
    token = nh.client_credentials(live_server, a)["access_token"]
    assert claims_of(token)["cnf"] == {"x5t#S256": a.thumbprint}
    headers = {"Authorization": f"Bearer {token}"}
    with nh.http(live_server, cert=b.cert, key=b.key) as c:
        assert_error(c.get(nh.USERINFO, headers=headers), 401, "invalid_token")
    with nh.http(live_server, mtls=False) as c:
        assert_error(c.get(nh.USERINFO, headers=headers), 401, "invalid_token")


# === 27 ==========================================================================================


@pytest.fixture(scope="module")
def behind_nginx(tmp_path_factory):
    """A proxy-mode server (trusting 127.0.0.1 only) behind the repository's nginx site, over TLS."""
    from tests.support.nginx import Nginx, find_nginx

    find_nginx()
    server = LiveServer(
        tmp_path_factory.mktemp("sec-proxy"),
        env={"TESSERA_MTLS_MODE": "proxy", "TESSERA_TRUSTED_PROXIES": '["127.0.0.1/32"]'},
    ).start()
    nginx = None
    try:
        nginx = Nginx(port=free_port(), upstreams=[server.port, server.port], home=server.home).start()
        yield server, nginx
    finally:
        if nginx is not None:
            nginx.stop()
        server.stop()


def test_row_27_certificate_header_smuggled_through_the_proxy_is_ignored(behind_nginx):
    server, nginx = behind_nginx
    app = server.new_app()
    ctx_none = nx.ssl_ctx(server)
    with httpx.Client(base_url=f"https://localhost:{nginx.port}", verify=nx.ssl_ctx(server, app.cert, app.key)) as c:
        ok = nx.token_request(c, app)  # the real path: nginx verified the certificate and forwards it
    assert ok.status_code == 200, ok.text
    assert claims_of(ok.json()["access_token"])["cnf"]["x5t#S256"] == app.thumbprint
    smuggled = {"X-SSL-Client-Cert": quote(app.cert.read_text(), safe="")}
    with (
        httpx.Client(base_url=f"https://localhost:{nginx.port}", verify=ctx_none, headers=smuggled) as c,
        nothing_new(server),
    ):
        assert_error(nx.token_request(c, app), 401, "invalid_client")


def test_row_27_certificate_header_from_an_untrusted_peer_is_ignored(behind_nginx):
    server, _ = behind_nginx
    app = server.new_app()
    header = {"X-SSL-Client-Cert": quote(app.cert.read_text(), safe="")}
    with nothing_new(server):
        for source in ("127.0.0.2", "127.9.9.9"):  # not the trusted proxy address
            transport = httpx.HTTPTransport(local_address=source)
            with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", transport=transport, headers=header) as c:
                assert_error(nx.token_request(c, app), 401, "invalid_client")


# === 28 ==========================================================================================


def _sign(server: LiveServer, client_id: str, csr: Path, out: Path) -> subprocess.CompletedProcess:
    return server.cli("certs", "sign", "--client", client_id, "--csr", str(csr), "--out", str(out), check=False)


def _csr(directory: Path, name: str, *args: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    openssl(
        "req",
        "-nodes",
        *args,
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        "/CN=NOMEAPP/O=NEXI/C=IT",
        cwd=directory,
    )
    return directory / f"{name}.csr"


@pytest.mark.parametrize("case", ["bad-self-signature", "rsa-1024", "ca-true", "extra-eku"])
def test_row_28_bad_csr_is_refused(live_server, tmp_path, case):
    app = live_server.new_app(with_cert=False)
    if case == "bad-self-signature":
        csr = _csr(tmp_path, "t", "-newkey", "rsa:2048", "-addext", "extendedKeyUsage=clientAuth")
        der = bytearray(pem_to_der(csr.read_bytes()))
        der[-100] ^= 0x01  # inside the RSA signature
        csr.write_bytes(der_to_pem(bytes(der), "CERTIFICATE REQUEST"))
        x509.load_pem_x509_csr(csr.read_bytes())  # still well-formed
    else:
        extra = {
            "rsa-1024": ["-newkey", "rsa:1024", "-addext", "extendedKeyUsage=clientAuth"],
            "ca-true": ["-newkey", "rsa:2048", "-addext", "basicConstraints=critical,CA:TRUE"],
            "extra-eku": ["-newkey", "rsa:2048", "-addext", "extendedKeyUsage=clientAuth,serverAuth"],
        }[case]
        csr = _csr(tmp_path, "t", *extra)
    out = tmp_path / "issued.pem"
    before = ledger(live_server)
    if case == "bad-self-signature":  # ``tessera certs sign`` as an operator runs it: refused, nothing written
        proc = _sign(live_server, app.client_id, csr, out)
        assert proc.returncode != 0, proc.stdout
        assert "CSR refused" in proc.stdout + proc.stderr, (proc.stdout, proc.stderr)
        assert not out.exists()
    else:  # the other CSRs: the same command's check, in process (a CLI process costs a CPU second)
        from tessera.admin.certificates import SignCertificate, sign_certificate
        from tessera.admin.errors import Invalid
        from tests.support.admin import admin_of

        with admin_of(live_server) as a, pytest.raises(Invalid, match="CSR refused"):
            sign_certificate(a, SignCertificate(app.client_id, csr.read_bytes()))
    assert ledger(live_server) == before


def test_row_28_issued_certificate_is_ca_false_client_auth_only_and_works(live_server, tmp_path):
    app = live_server.new_app(with_cert=False)
    csr = _csr(
        tmp_path,
        "good",
        "-newkey",
        "rsa:2048",
        "-addext",
        "extendedKeyUsage=clientAuth",
        "-addext",
        "keyUsage=digitalSignature",
    )
    out = tmp_path / "good.pem"
    proc = _sign(live_server, app.client_id, csr, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.value.ca is False and bc.critical
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert not ku.key_cert_sign and not ku.crl_sign
    app.cert, app.key = out, tmp_path / "good.key"
    r = nexi_token_call(live_server, app, app.cert, app.key)
    assert r != "tls" and r.status_code == 200, r
    assert claims_of(r.json()["access_token"])["cnf"]["x5t#S256"] == nx.x5t_s256(out)
