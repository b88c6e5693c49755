"""The SDK against real servers and sockets:

- a ``tessera serve`` whose profiles all sit at the providers' own paths, at the root (as the
  sandbox serves them): every client, sync and async, works with its defaults and a base URL;
- every class of failure, for real: a refused port, TLS with the wrong CA, a socket that never
  answers (timeout), wrong credentials (401/400), a real 429 with ``Retry-After`` from tessera's
  rate limits (waited for, or raised when it is too long), and 5xx from a raw HTTP socket;
- keys made by the ``openssl`` CLI, encrypted (PKCS#8 and traditional), over real mutual TLS.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tessera.sdk import AxeptClient, B2BinPayClient, MobilePayClient, NexiSoftPOSClient, TokenCache
from tessera.sdk.errors import (
    AuthenticationError,
    ProviderError,
    RateLimited,
    RequestTimeout,
    SDKError,
    TLSError,
    TransportError,
)
from tessera.sdk.keys import load_certificates, load_private_key
from tessera.sdk.retry import RetryPolicy
from tests.support.live import LiveServer, free_port, openssl

pytestmark = pytest.mark.slow

ROOT = {"TESSERA_AXEPT_PREFIX": "", "TESSERA_B2BINPAY_PREFIX": ""}  # Nexi and MobilePay are there already


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    s = LiveServer(tmp_path_factory.mktemp("provider-paths"), env=dict(ROOT)).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def throttled(tmp_path_factory) -> Iterator[LiveServer]:
    """One request per second per credential, one B2BINPAY login per minute per address."""
    env = {
        **ROOT,
        "TESSERA_RATE_LIMIT_PER_CREDENTIAL": "1",
        "TESSERA_RATE_LIMIT_CREDENTIAL_BURST": "1",
        "TESSERA_B2BINPAY_LOGIN_PER_MINUTE": "1",
    }
    s = LiveServer(tmp_path_factory.mktemp("throttled"), env=env).start()
    yield s
    s.stop()


def base(s: LiveServer) -> str:
    return f"https://localhost:{s.port}"


def axept_key(s: LiveServer) -> dict:
    mid = secrets.randbelow(10**8) + 1
    s.cli_json("merchants", "create", "--merchant-id", str(mid), "--name", "Corner Shop")
    return s.cli_json("keys", "create", "--merchant-id", str(mid))


_creds: dict[int, tuple] = {}


def clients(s: LiveServer, *, wrong: bool = False, **kw) -> dict[str, object]:
    """One client of each provider, with nothing but the base URL, the CA and credentials."""
    if s.port not in _creds:
        _creds[s.port] = (s.new_app(), s.new_app(with_cert=False), axept_key(s))
    nexi_app, app, key = _creds[s.port]
    bad = "x" if wrong else ""
    common = {"verify": str(s.ca), "cache": TokenCache(), **kw}
    return {
        "nexi": NexiSoftPOSClient(
            base(s), nexi_app.client_id, nexi_app.client_secret + bad, nexi_app.cert, nexi_app.key, **common
        ),
        "axept": AxeptClient(base(s), key["merchantId"], key["keyId"], key["key"] + bad, **common),
        "mobilepay": MobilePayClient(base(s), app.client_id, app.client_secret + bad, **common),
        "b2binpay": B2BinPayClient(
            base(s), app.client_id, app.client_secret + bad, **{**common, "cache": TokenCache()}
        ),
    }


# ---------------------------------------------------------------------- the providers' paths
def test_every_client_works_at_the_providers_paths_with_a_base_url_alone(server) -> None:
    for name, c in clients(server).items():
        token = c.token()  # type: ignore[attr-defined]
        assert token.count(".") == 2, name
        assert c.token() == token  # type: ignore[attr-defined]


def test_every_client_works_at_the_providers_paths_async(server) -> None:
    async def main() -> dict[str, str]:
        return {name: await c.atoken() for name, c in clients(server).items()}  # type: ignore[attr-defined]

    assert all(t.count(".") == 2 for t in asyncio.run(main()).values())


def test_b2binpay_refreshes_at_the_root(server) -> None:
    app = server.new_app(with_cert=False)
    c = B2BinPayClient(base(server), app.client_id, app.client_secret, verify=str(server.ca), cache=TokenCache())
    paths: list[str] = []
    c.http.event_hooks["request"].append(lambda r: paths.append(r.url.path))
    first = c.token()
    c.invalidate()
    assert c.token() != first
    assert paths == ["/token/", "/token/refresh/"]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_nexi_enrollment_every_call(server, use_async) -> None:
    app = server.new_app()
    shop = server.new_merchant(app)
    c = NexiSoftPOSClient(
        base(server), app.client_id, app.client_secret, app.cert, app.key, verify=str(server.ca), cache=TokenCache()
    )
    kw = {"point_of_sale": shop.pos, "terminal_ids": [shop.softpos_tid], "username_merchant": shop.username}

    async def run_async() -> dict:
        assert (await c.ajwks())["keys"]
        assert (await c.aencryption_key())["use"] == "enc"
        assertion = await c.aclient_assertion(**kw)
        return await c.apar(client_assertion=assertion, scope="oidc", redirect_uri=app.redirect_uri)

    def run_sync() -> dict:
        assert c.jwks()["keys"]
        assert c.encryption_key()["use"] == "enc"
        return c.par(client_assertion=c.client_assertion(**kw), scope="oidc", redirect_uri=app.redirect_uri)

    answer = asyncio.run(run_async()) if use_async else run_sync()
    assert answer["request_uri"].startswith("urn:softpos_") and answer["expires_in"] == 90
    # The code exchange, refused (a real code needs the merchant's browser login: test_live_nexi.py).
    with pytest.raises(ProviderError) as info:
        if use_async:
            asyncio.run(c.aexchange_code(code="not-a-code", redirect_uri=app.redirect_uri))
        else:
            c.exchange_code(code="not-a-code", redirect_uri=app.redirect_uri)
    assert info.value.status == 400 and info.value.code == "invalid_grant"


# ---------------------------------------------------------------------- refusals
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_wrong_credentials_are_authentication_errors(server, use_async) -> None:
    for name, c in clients(server, wrong=True, retry=None).items():
        with pytest.raises(AuthenticationError) as info:
            asyncio.run(c.atoken()) if use_async else c.token()  # type: ignore[attr-defined]
        assert info.value.status in (400, 401), name


def test_a_real_429_is_waited_for_as_retry_after_says(throttled) -> None:
    waited: list[float] = []

    def sleep(seconds: float) -> None:
        waited.append(seconds)
        time.sleep(seconds)

    app = throttled.new_app(with_cert=False)
    c = MobilePayClient(
        base(throttled),
        app.client_id,
        app.client_secret,
        verify=str(throttled.ca),
        cache=TokenCache(),
        retry=RetryPolicy(attempts=4, base=0.1, cap=5, sleep=sleep),
    )
    for _ in range(5):  # back to back: one within the same second meets 429 with Retry-After
        c.invalidate()
        assert c.token().count(".") == 2  # waited for, then 200
        if waited:
            break
    assert waited and waited[0] >= 1


def test_a_real_429_beyond_the_cap_is_raised_with_retry_after(throttled) -> None:
    app = throttled.new_app(with_cert=False)
    c = B2BinPayClient(base(throttled), app.client_id, app.client_secret, verify=str(throttled.ca), cache=TokenCache())
    c.token()
    c.reset()  # forget the refresh token: the next call logs in again, over the budget
    with pytest.raises(RateLimited) as info:
        c.token()
    assert info.value.status == 429 and info.value.code == "throttled"
    assert info.value.retry_after is not None and info.value.retry_after > c.retry.cap


# ---------------------------------------------------------------------- network failures
class Waits:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def policy(self) -> RetryPolicy:
        async def asleep(s: float) -> None:
            self.waits.append(s)

        return RetryPolicy(sleep=self.waits.append, async_sleep=asleep)


def _all_calls(c: object, use_async: bool) -> None:
    if use_async:
        asyncio.run(c.atoken())  # type: ignore[attr-defined]
    else:
        c.token()  # type: ignore[attr-defined]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_a_refused_port_is_a_transport_error_retried(server, use_async) -> None:
    port = free_port()  # bound, then closed: nobody listens
    for name, c in clients(server).items():
        waits = Waits()
        c.base_url = f"https://127.0.0.1:{port}"  # type: ignore[attr-defined]
        c._calls.retry = waits.policy()  # type: ignore[attr-defined]
        with pytest.raises(TransportError) as info:
            _all_calls(c, use_async)
        assert type(info.value) is TransportError and not info.value.request_sent, name
        assert len(waits.waits) == 2, name  # a connection never made is retried, whatever the call


def _other_ca(directory: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Another CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / "other-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_tls_with_the_wrong_ca_is_a_tls_error_not_retried(server, tmp_path, use_async) -> None:
    for name, c in clients(server, verify=str(_other_ca(tmp_path))).items():
        with pytest.raises(TLSError) as info:
            _all_calls(c, use_async)
        assert "TLS handshake failed" in str(info.value) and "certificate" in str(info.value), name


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A socket that accepts connections and never says a word."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()[1]
    sock.close()


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_a_server_that_never_answers_is_a_timeout(server, silent_port, use_async) -> None:
    for name, c in clients(server, timeout=0.3, retry=None).items():
        c.base_url = f"https://127.0.0.1:{silent_port}"  # type: ignore[attr-defined]
        with pytest.raises(RequestTimeout):
            _all_calls(c, use_async)
        c.base_url = f"http://127.0.0.1:{silent_port}"  # type: ignore[attr-defined]  # plain HTTP: a read timeout
        with pytest.raises(RequestTimeout) as info:
            _all_calls(c, use_async)
        assert info.value.request_sent, name


@pytest.fixture(scope="module")
def http_5xx() -> Iterator[tuple[int, list[str]]]:
    """A raw HTTP/1.1 socket server: /500 answers 500, anything else 503 with Retry-After: 0."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    seen: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                path = data.split(b" ", 2)[1].decode() if data.count(b" ") >= 2 else "?"
                seen.append(path)
                status = b"500 Internal Server Error" if path.startswith("/500") else b"503 Service Unavailable"
                conn.sendall(
                    b"HTTP/1.1 " + status + b"\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield sock.getsockname()[1], seen
    stop.set()
    t.join(5)
    sock.close()


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_5xx_are_provider_errors_503_retried(server, http_5xx, use_async) -> None:
    port, seen = http_5xx
    for name, c in clients(server).items():
        waits = Waits()
        c._calls.retry = waits.policy()  # type: ignore[attr-defined]
        c.base_url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
        with pytest.raises(ProviderError) as info:
            _all_calls(c, use_async)
        assert info.value.status == 503 and len(waits.waits) == 2, name
        c.base_url = f"http://127.0.0.1:{port}/500"  # type: ignore[attr-defined]
        with pytest.raises(ProviderError) as info:
            _all_calls(c, use_async)
        assert info.value.status == 500 and len(waits.waits) == 2, name  # 500 is not retried
    assert seen


# ---------------------------------------------------------------------- keys from openssl
@pytest.fixture(scope="module")
def keys(server, tmp_path_factory):
    """An app's openssl key, and the same key encrypted as PKCS#8 and as a traditional PEM."""
    app = server.new_app()
    d = tmp_path_factory.mktemp("keys")
    openssl("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", str(app.key), "-out", "pkcs8.pem",
            "-passout", "pass:pass phrase 1", cwd=d)  # fmt: skip
    openssl("rsa", "-in", str(app.key), "-aes128", "-traditional", "-out", "traditional.pem",
            "-passout", "pass:pass phrase 1", cwd=d)  # fmt: skip
    assert b"ENCRYPTED PRIVATE KEY" in (d / "pkcs8.pem").read_bytes()
    assert b"Proc-Type: 4,ENCRYPTED" in (d / "traditional.pem").read_bytes()
    return app, d


@pytest.mark.parametrize("kind", ["pkcs8.pem", "traditional.pem"])
@pytest.mark.parametrize("form", ["path", "str", "bytes", "text", "objects"])
def test_encrypted_keys_with_a_password_over_real_mtls(server, keys, kind, form) -> None:
    app, d = keys
    path = d / kind
    password: str | bytes | None = "pass phrase 1"
    cert: object
    key: object
    if form == "path":
        cert, key = app.cert, path
    elif form == "str":
        cert, key = str(app.cert), str(path)
    elif form == "bytes":
        cert, key, password = app.cert.read_bytes(), path.read_bytes(), b"pass phrase 1"
    elif form == "text":
        cert, key = app.cert.read_text(), path.read_text()
    else:
        cert, key, password = load_certificates(app.cert)[0], load_private_key(path, "pass phrase 1"), None
    c = NexiSoftPOSClient(
        base(server), app.client_id, app.client_secret, cert, key, password=password,  # type: ignore[arg-type]
        verify=str(server.ca), cache=TokenCache(),
    )  # fmt: skip
    assert c.token().count(".") == 2


def test_an_encrypted_key_without_its_password_never_prompts(server, keys) -> None:
    app, d = keys
    code = (
        "import sys\n"
        "from tessera.sdk import NexiSoftPOSClient\n"
        "try:\n"
        f"    NexiSoftPOSClient('https://localhost:1', 'a', 's', {str(app.cert)!r}, {str(d / 'pkcs8.pem')!r})\n"
        "except ValueError as e:\n"
        "    print(e); sys.exit(3)\n"
    )
    # No terminal and no stdin: a prompt would hang or fail, not raise the ValueError.
    proc = subprocess.run(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
        env={**os.environ},
    )
    assert proc.returncode == 3, proc.stderr
    assert "encrypted: pass password=" in proc.stdout
    with pytest.raises(ValueError, match="wrong password"):
        NexiSoftPOSClient(base(server), "a", "s", app.cert, d / "traditional.pem", password="nope")


def test_no_sdk_error_is_a_builtin_or_httpx_error() -> None:
    import httpx

    for cls in (SDKError, TransportError, TLSError, RequestTimeout, ProviderError, AuthenticationError, RateLimited):
        assert not issubclass(cls, (httpx.HTTPError, OSError))
