"""Checklist row 35 and secrets at rest: every flow runs, then the server's log, its
database and the sealed key blobs are scanned for every secret, key and token in clear.

The run (fixture ``full_run``, on SQLite and on PostgreSQL through ``db_live_server``):

- ``tessera demo`` (the CLI's own entry point, as a user runs it): all four profiles end to end. Its secrets
  are its own; what it prints with ``--json`` is checked to hold none, and the scan's
  patterns (any JWT or JWE, any private-key PEM, any JWK ``d``) cover what it left behind.
- the same four profiles driven by tessera's SDK, registered through the CLI (``clients
  create``, ``certs sign``, ``keys create``, ``merchants ...``), every HTTP exchange
  recorded by the transport, so that every secret the clients saw is collected: client
  secret, axept key, B2BINPAY password, the merchant's password, access, refresh and ID
  tokens, authorization codes, request_uris, client assertions, PKCE verifiers, the key
  PEM of the developer certificate;
- the native surface with a secret: authorization_code + PKCE, refresh rotation,
  client_credentials, introspection and revocation; and ``private_key_jwt`` (its private
  JWK);
- the server's own private keys: the sealed signing/encryption keys opened with the KEK,
  the CA key, the TLS key, the KEK and the pepper.

The scan: ``server.log`` (bytes), the SQLite file and its ``-wal``/``-shm`` (bytes, with
offsets), and a SELECT of every column of every table (any backend; PostgreSQL is scanned
this way only). Each secret is looked for as text and, where it is base64url, as its raw
bytes, hex and standard base64; PEMs by each of their base64 lines. Any hit fails with
where it was found.

The ``tessera`` commands (the demo and the registrations) run in this process, through the
console script's entry point (``tests.support.incli``), on the server's home and environment:
what they write in the database is what a ``tessera`` process writes, without an interpreter
start for each (tests/security/test_configuration_errors.py checks the two paths answer alike).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from tests.e2e import native_helpers as nh
from tests.e2e import nexi_helpers as nx
from tests.support.incli import server_cli, server_cli_json
from tests.support.live import LiveServer

pytestmark = pytest.mark.slow

REDIRECT = "https://scan.example.test/cb"
#: Wire fields whose values are secrets, keys or tokens.
SECRET_FIELDS = {
    "access_token",
    "refresh_token",
    "id_token",
    "token",
    "access",
    "refresh",
    "request_uri",
    "code",
    "client_secret",
    "password",
    "key",
    "client_assertion",
    "code_verifier",
    "login_password",
}
JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")
JWE = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{40,}\.[A-Za-z0-9_-]{12,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{16,}")
PEM_PRIVATE = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")
JWK_PRIVATE = re.compile(rb'"(d|p|q|dp|dq|qi|k)"\s*:\s*"[A-Za-z0-9_-]{16,}')
PATTERNS = {"a JWT": JWT, "a JWE": JWE, "a private-key PEM": PEM_PRIVATE, "a private JWK member": JWK_PRIVATE}


# --------------------------------------------------------------------------------------------
# what the clients saw
# --------------------------------------------------------------------------------------------


class Recorder(httpx.HTTPTransport):
    """An httpx transport that keeps every request and response it carried."""

    def __init__(self, exchanges: list, **kw: Any) -> None:
        super().__init__(**kw)
        self.exchanges = exchanges

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        response.read()
        self.exchanges.append((request, response))
        return response


def _walk(value: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def secrets_on_the_wire(exchanges: list) -> dict[str, str]:  # noqa: C901 - one branch per wire format, kept side by side
    """Every secret value the recorded requests and responses carried, named by where."""
    found: dict[str, str] = {}

    def take(name: str, value: Any, where: str) -> None:
        if isinstance(value, str) and name in SECRET_FIELDS and len(value) >= 16:
            found[value] = f"{where} {name}"

    for request, response in exchanges:
        path = request.url.path
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            user, _, pwd = base64.b64decode(auth[6:]).decode().partition(":")
            take("client_secret", pwd, f"{path} Basic")
        elif auth.lower().startswith("bearer "):
            take("access_token", auth[7:], f"{path} Bearer")
        body = request.content
        ctype = request.headers.get("content-type", "")
        if "json" in ctype:
            for k, v in _walk(json.loads(body)):
                take(k, v, f"{path} request")
        elif body:
            for k, v in parse_qs(body.decode(), keep_blank_values=True).items():
                take(k, v[0], f"{path} request")
        for k, v in parse_qs(request.url.query.decode()).items():
            take(k, v[0], f"{path} query")
        if "json" in response.headers.get("content-type", ""):
            for k, v in _walk(response.json()):
                take(k, v, f"{path} response")
        if "location" in response.headers:
            for k, v in parse_qs(urlsplit(response.headers["location"]).query).items():
                take(k, v[0], f"{path} redirect")
    return found


@dataclass
class Run:
    server: LiveServer
    secrets: dict[str, str] = field(default_factory=dict)  # value -> what it is
    pems: dict[str, bytes] = field(default_factory=dict)  # name -> private key PEM
    demo: dict[str, Any] = field(default_factory=dict)
    demo_text: str = ""

    def add(self, value: str | bytes | None, what: str) -> None:
        if value:
            value = value.decode() if isinstance(value, bytes) else value
            self.secrets[value] = f"{self.secrets[value]} / {what}" if value in self.secrets else what


def _ctx(server: LiveServer, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    return nx.ssl_ctx(server, cert, key)


def run_sdk_flows(server: LiveServer, run: Run, workdir: Path) -> None:
    from tessera.sdk import (
        AxeptClient,
        B2BinPayClient,
        MobilePayClient,
        NexiSoftPOSClient,
        TokenCache,
        make_csr,
        make_pkce,
    )

    url = nx.base_url(server)
    exchanges: list = []
    # --- actors, through the CLI ----------------------------------------------------------------
    created = server_cli_json(server, "clients", "create", "--name", "scan app", "--redirect-uri", REDIRECT)
    client_id, secret = created["client_id"], created["client_secret"]
    run.add(secret, "client secret (CLI)")
    csr_pem, key_pem = make_csr("NOMEAPP")
    (workdir / "app.csr").write_bytes(csr_pem)
    key_path = workdir / "app.key"
    key_path.write_bytes(key_pem)
    run.pems["developer certificate key"] = key_pem
    cert_path = workdir / "app.pem"
    server_cli_json(
        server, "certs", "sign", "--client", client_id, "--csr", str(workdir / "app.csr"), "--out", str(cert_path)
    )
    mid = secrets.randbelow(9 * 10**8) + 10**8
    vat = f"DK{mid % 10**8:08d}"
    pos, sp, mp = f"POS-{mid}", f"SP{mid}", f"MP{mid}"
    username, password = f"owner-{mid}@scan.example", "merchant pw " + secrets.token_urlsafe(12)
    run.add(password, "merchant user password")
    server_cli_json(server, "merchants", "create", "--merchant-id", str(mid), "--vat", vat, "--name", "Scan Shop")
    server_cli(
        server, "merchants", "add-terminal", "--merchant-id", str(mid), "--pos", pos, "--tid", sp, "--kind", "softpos"
    )
    server_cli(
        server, "merchants", "add-terminal", "--merchant-id", str(mid), "--pos", pos, "--tid", mp, "--kind", "mpos"
    )
    server_cli(
        server,
        "merchants",
        "add-user",
        "--merchant-id",
        str(mid),
        "--username",
        username,
        "--password-stdin",
        input=password + "\n",
    )
    server_cli(server, "merchants", "grant", "--merchant-id", str(mid), "--client", client_id)
    key = server_cli_json(server, "keys", "create", "--merchant-id", str(mid))
    run.add(key["key"], "axept API key (CLI)")

    # --- nexi-softpos -------------------------------------------------------------------------------
    transport = Recorder(exchanges, verify=_ctx(server, cert_path, key_path))
    with NexiSoftPOSClient(
        url, client_id, secret, cert_path, key_path, verify=server.ca, transport=transport, cache=TokenCache()
    ) as nexi:
        nexi.token()
        assertion = nexi.client_assertion(point_of_sale=pos, terminal_ids=[sp, mp], username_merchant=username)
        verifier, challenge = make_pkce()
        run.add(verifier, "PKCE verifier")
        pushed = nexi.par(
            scope="openid oidc email",
            redirect_uri=REDIRECT,
            client_assertion=assertion,
            state="st",
            code_challenge=challenge,
        )
        with httpx.Client(transport=Recorder(exchanges, verify=_ctx(server)), timeout=30) as browser:
            assert browser.get(nexi.authorize_url(pushed["request_uri"])).status_code == 200
            login = browser.post(
                nexi.authorize_url(pushed["request_uri"]).split("?")[0],
                data={
                    "client_id": client_id,
                    "request_uri": pushed["request_uri"],
                    "username": username,
                    "password": password,
                },
            )
        assert login.status_code == 303, login.text[:200]
        code = parse_qs(urlsplit(login.headers["location"]).query)["code"][0]
        tokens = nexi.exchange_code(code=code, redirect_uri=REDIRECT, code_verifier=verifier)
        assert tokens.get("id_token")

    # --- axept, mobilepay, b2binpay ---------------------------------------------------------------------
    ctx = _ctx(server)
    with AxeptClient(
        url,
        mid,
        key["keyId"],
        key["key"],
        path="/axept/v1/authenticate",
        verify=ctx,
        transport=Recorder(exchanges, verify=ctx),
        cache=TokenCache(),
    ) as axept:
        axept.token()
    with MobilePayClient(
        url,
        client_id,
        secret,
        merchant_vat=vat,
        verify=ctx,
        transport=Recorder(exchanges, verify=ctx),
        cache=TokenCache(),
    ) as mobilepay:
        mobilepay.token()
    with B2BinPayClient(
        url,
        client_id,
        secret,
        prefix="/b2binpay",
        verify=ctx,
        transport=Recorder(exchanges, verify=ctx),
        cache=TokenCache(),
    ) as b2b:
        first = b2b.token()
        b2b.invalidate()
        assert b2b.token() != first  # the second one came from a refresh (rotation)
    paths = [r.url.path for r, _ in exchanges]
    assert "/b2binpay/token/refresh/" in paths and "/softpos/as/token" in paths, paths

    for value, what in secrets_on_the_wire(exchanges).items():
        run.add(value, what)


def run_native_flows(server: LiveServer, run: Run) -> None:
    m = server.new_merchant()
    run.add(m.password, "merchant user password")
    nc = nh.register(server)
    run.add(nc.client_secret, "native client secret")
    pushed = nh.push(server, nc)
    run.add(pushed.json()["request_uri"], "native request_uri")
    run.add(pushed.verifier, "native PKCE verifier")
    back = nh.code_from(nh.login(server, nc, pushed.json()["request_uri"], m.username, m.password))
    run.add(back["code"], "native authorization code")
    with nh.http(server) as c:
        r = c.post(
            nh.TOKEN,
            data={
                "grant_type": "authorization_code",
                "code": back["code"],
                "redirect_uri": nc.redirect_uri,
                "code_verifier": pushed.verifier,
            },
            auth=nh.basic(nc),
        )
        assert r.status_code == 200, r.text
        first = r.json()
        r = c.post(
            nh.TOKEN, data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, auth=nh.basic(nc)
        )
        assert r.status_code == 200, r.text
        rotated = r.json()
        cc = nh.client_credentials(server, nc)
        assert c.post(nh.INTROSPECT, data={"token": rotated["access_token"]}, auth=nh.basic(nc)).json()["active"]
        assert c.post(nh.REVOKE, data={"token": rotated["refresh_token"]}, auth=nh.basic(nc)).status_code == 200
    for body in (first, rotated, cc):
        for name in ("access_token", "refresh_token", "id_token"):
            run.add(body.get(name), f"native {name}")
    # private_key_jwt with a registered JWKS
    jc = nh.register(server, methods=("private_key_jwt",), with_jwks=True)
    run.pems["native client JWK"] = jc.jwk.export_to_pem(private_key=True, password=None)
    run.add(json.loads(jc.jwk.export_private())["d"], "native client JWK d")
    assertion = nh.sign(nh.claims_for(server, jc), jc.jwk)
    run.add(assertion, "native client_assertion")
    r = nh.cc_with_assertion(server, jc, assertion)
    assert r.status_code == 200, r.text
    run.add(r.json()["access_token"], "native private_key_jwt access token")


def collect_server_keys(server: LiveServer, run: Run) -> None:
    from tessera.home import load_ca
    from tessera.jose.keys import open_private_key

    settings = server.settings
    kek, pepper = settings.kek_bytes(), settings.pepper_bytes()
    for name, raw in (("KEK", kek), ("pepper", pepper)):
        run.add(base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), name)
        run.add(raw.hex(), f"{name} (hex)")
    for k in server.store.list_server_keys():
        private = open_private_key(k.sealed_private, kek, k.kid).as_dict(private=True)
        for member in ("d", "p", "q", "dp", "dq", "qi"):
            run.add(private.get(member), f"server {k.use} key {k.kid[:8]} {member}")
    from cryptography.hazmat.primitives import serialization

    ca = load_ca(settings)
    run.pems["CA private key"] = ca.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tls_key = settings.home / "secrets" / "server-key.pem"
    if tls_key.exists():
        run.pems["server TLS key"] = tls_key.read_bytes()


@pytest.fixture(scope="module")
def full_run(db_live_server, tmp_path_factory) -> Run:
    server = db_live_server
    run = Run(server)
    url = nx.base_url(server)
    out = server_cli(server, "demo", "--url", url, "--json")
    run.demo = json.loads(out.stdout)
    assert run.demo["ok"] is True
    run.demo_text = out.stdout + out.stderr
    run_sdk_flows(server, run, tmp_path_factory.mktemp(f"scan-{server.backend}"))
    run_native_flows(server, run)
    collect_server_keys(server, run)
    time.sleep(0.3)  # the access-log lines of the last requests
    return run


# --------------------------------------------------------------------------------------------
# the scan
# --------------------------------------------------------------------------------------------


def forms_of(value: str) -> list[bytes]:
    """The shapes a secret could be written in: as text, URL-encoded, and (base64url values)
    its raw bytes, hex and standard base64."""
    out = {value.encode(), quote(value, safe="").encode()}
    if re.fullmatch(r"[A-Za-z0-9_-]{16,}", value):
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        if len(raw) >= 12:
            out |= {raw, raw.hex().encode(), base64.b64encode(raw).rstrip(b"=")}
    return sorted(out)


def pem_lines(pem: bytes) -> list[bytes]:
    """The full base64 lines of a PEM body: a reformatted copy still holds them."""
    lines = [ln.strip() for ln in pem.splitlines() if ln.strip() and not ln.startswith(b"-----")]
    return [ln for ln in lines if len(ln) == 64]


def needles(run: Run) -> list[tuple[bytes, str]]:
    out = [(form, what) for value, what in run.secrets.items() for form in forms_of(value)]
    for name, pem in run.pems.items():
        out += [(line, f"{name} (PEM line)") for line in pem_lines(pem)]
    return out


def find_all(blob: bytes, items: list[tuple[bytes, str]]) -> list[str]:
    hits = []
    for needle, what in items:
        at = blob.find(needle)
        if at >= 0:
            hits.append(f"{what} at offset {at}: {needle[:16]!r}...")
    for name, pattern in PATTERNS.items():
        for m in pattern.finditer(blob):
            hits.append(f"{name} at offset {m.start()}: {m.group(0)[:40]!r}...")
    return hits


def database_rows(server: LiveServer) -> Iterable[tuple[str, str, str, bytes]]:
    """(table, column, primary key, value) for every non-null value of every table: the
    pg_dump-like view of the database, whatever the backend."""
    engine = server.store.engine
    meta = sa.MetaData()
    meta.reflect(bind=engine)
    with engine.connect() as c:
        for table in meta.sorted_tables:
            pk = [col.name for col in table.primary_key.columns]
            for row in c.execute(sa.select(table)).mappings():
                key = ",".join(f"{k}={row[k]}" for k in pk)
                for col, value in row.items():
                    if value is None or isinstance(value, (int, float, bool)):
                        continue
                    text = value if isinstance(value, (str, bytes)) else json.dumps(value)
                    yield table.name, col, key, text if isinstance(text, bytes) else text.encode()


def test_the_run_collected_what_it_must(full_run):
    kinds = " ".join(full_run.secrets.values())
    for what in (
        "client secret",
        "axept API key",
        "merchant user password",
        "Bearer",
        "refresh",
        "id_token",
        "request_uri",
        "code",
        "client_assertion",
        "PKCE verifier",
        "server sig key",
        "server enc key",
        "KEK",
        "pepper",
    ):
        assert what in kinds, (what, sorted(set(full_run.secrets.values())))
    assert {"developer certificate key", "CA private key", "server TLS key"} <= set(full_run.pems)
    assert len(full_run.secrets) > 40


def test_row_35_no_secrets_in_logs(full_run):
    log = (full_run.server.workdir / "server.log").read_bytes()
    assert b'"route":"/softpos/as/par"' in log and b'"route":"/b2binpay/token/refresh/"' in log  # the run is in it
    hits = find_all(log, needles(full_run))
    for marker in (b"Basic ", b"Bearer ", b"client_secret=", b"password=", b"code_verifier="):
        at = log.find(marker)
        if at >= 0:
            hits.append(f"{marker!r} at offset {at}")
    assert not hits, "secrets in server.log:\n" + "\n".join(hits)


def test_no_secrets_in_the_database(full_run):
    """Every column of every table (SELECT; the only view of PostgreSQL), and on SQLite also
    the bytes of the database file and its WAL, where deleted or superseded rows linger."""
    server = full_run.server
    items = needles(full_run)
    hits = []
    rows = 0
    for table, column, key, value in database_rows(server):
        rows += 1
        hits += [f"{table}.{column} [{key}]: {h}" for h in find_all(value, items)]
    assert rows > 50
    if server.backend == "sqlite":
        db = Path(server.settings.database_url.removeprefix("sqlite:///"))
        files = [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]
        assert db in files
        with server.store.engine.connect() as c:
            some_hash = c.execute(sa.text("SELECT secret_hash FROM clients WHERE secret_hash IS NOT NULL")).scalar()
        assert some_hash.encode() in b"".join(p.read_bytes() for p in files)  # the scan sees where the rows are
        hits += [f"{p.name}: {h}" for p in files for h in find_all(p.read_bytes(), items)]
    assert not hits, "secrets in the database:\n" + "\n".join(hits)


def test_the_scanner_finds_what_it_looks_for(full_run):
    """The scan's own check: planted copies of what it looks for are found."""
    items = needles(full_run)
    token = next(v for v, what in full_run.secrets.items() if "access_token" in what)
    pem_line = pem_lines(full_run.pems["developer certificate key"])[3]
    secret = next(v for v, what in full_run.secrets.items() if what.startswith("client secret"))
    raw = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    for planted in (
        b'{"x": "' + token.encode() + b'"}',
        b"..." + pem_line + b"...",
        b"\x00" + raw + b"\x00",
        raw.hex().encode(),
        quote(secret, safe="").encode(),
        b'{"kty":"RSA","d":"' + b"A" * 40 + b'"}',
        b"-----BEGIN PRIVATE KEY-----",
    ):
        assert find_all(planted, items), planted[:40]
    assert not find_all(b'{"status": "ok", "kid": "abc"}', items)


def test_sealed_key_blobs_hold_no_pem_and_no_private_jwk(full_run):
    server = full_run.server
    keys = server.store.list_server_keys()
    assert {k.use for k in keys} == {"sig", "enc"}
    for k in keys:
        blob = k.sealed_private
        assert re.fullmatch(r"v1\.[A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]+", blob), blob[:40]
        assert "BEGIN" not in blob and '"d"' not in blob
        raw = base64.urlsafe_b64decode(blob.split(".")[2] + "==")
        assert b"PRIVATE KEY" not in raw and b'"d"' not in raw  # the ciphertext is not the plaintext
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(k.public_jwk), k.kid
    ca_key = server.settings.ca_key_path.read_bytes()
    assert ca_key.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"), ca_key[:40]


def test_demo_json_output_holds_no_secret(full_run):
    """``tessera demo --json`` prints a summary: no token, key or secret. The one bearer
    reference in it, the Nexi request_uri, is already used up."""
    from tessera.core.secrets import sha256_key

    text = json.dumps(full_run.demo).encode()
    hits = [f"{name}: {m.group(0)[:30]!r}" for name, p in PATTERNS.items() for m in p.finditer(text)]
    hits += [f"{k}" for k, v in _walk(full_run.demo) if k in SECRET_FIELDS - {"request_uri"} and isinstance(v, str)]
    assert not hits, hits
    uri = full_run.demo["nexi-softpos"]["request_uri"]
    art = full_run.server.store.get_artifact("request_uri", sha256_key(uri))
    assert art is not None and art.consumed_at is not None, "the request_uri the demo prints must be used up"
    assert not JWT.search(full_run.demo_text.encode())
