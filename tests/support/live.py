"""A real ``tessera serve`` process on loopback, with helpers to set up clients,
certificates (made by the ``openssl`` CLI, as the provider document does) and merchants.

The admin helpers write straight into the server's database through the Store, which is
fast; tests of the CLI itself go through ``cli()``.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tessera.config import Settings
from tessera.core.models import Merchant, MerchantUser, Terminal
from tessera.home import init_home, open_store

REPO = Path(__file__).resolve().parents[2]
NEXI_SUBJECT = "/CN=NOMEAPP/O=NEXI/OU=API Security - STAGING/L=Milano/C=IT/"


#: Held for an ``environment`` block: the process has one environment, and two threads each saving
#: and restoring it (``open_store(server.settings)`` from eight racers at once) would leave the
#: one's values set after both blocks: a later test of the worker then saw a server's lifted limits.
_ENVIRONMENT = threading.RLock()


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """``os.environ`` with ``values`` set for the block, then as it was (unset names unset again).
    One thread at a time (``_ENVIRONMENT``)."""
    with _ENVIRONMENT:
        old = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_csr(
    directory: Path, name: str = "NOMEAPP", *, key_type: str = "rsa", subject: str = NEXI_SUBJECT
) -> tuple[Path, Path]:
    """The CSR exactly as the Nexi document's ``openssl req`` command makes it (or EC P-256)."""
    directory.mkdir(parents=True, exist_ok=True)
    newkey = ["-newkey", "rsa:2048"] if key_type == "rsa" else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    openssl(
        "req",
        "-nodes",
        *newkey,
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        subject,
        "-addext",
        "extendedKeyUsage=clientAuth",
        cwd=directory,
    )
    return directory / f"{name}.csr", directory / f"{name}.key"


#: The TLS context of a plain-HTTP test client: httpx builds one for every client, even for
#: ``http://`` URLs, and its default loads certifi's ~140 certificates (~10 ms a client). This one
#: trusts nothing, so an ``https://`` request made with it by mistake fails its verification.
PLAIN_HTTP = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

#: SQLite homes made by ``init_home`` in this process, one per environment that ``init_home`` reads
#: (the ``TESSERA_*`` names of the process), copied for each server by ``copy_home``.
_HOME_TEMPLATES: dict[tuple[tuple[str, str], ...], Path] = {}
#: The port a template home is made for (never served: each copy gets its server's own).
TEMPLATE_PORT = 1


def template_key() -> tuple[tuple[str, str], ...]:
    """What ``init_home`` reads of the process's environment: its ``TESSERA_*`` names."""
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("TESSERA_")))


def copy_home(home: Path, port: int) -> None:
    """A SQLite home for a server on ``port``: a copy of one ``init_home`` made once per worker
    (and per ``TESSERA_*`` environment), with the port and issuer of its own.

    ``init_home`` is the same for every such server but for those two lines of tessera.toml, and
    it cost 0.2 to 0.4 CPU seconds (four RSA-2048 keys, the CA, the migrations): ~15 % of the test
    workers' own CPU over ~90 servers. The copies share their CA, KEK, pepper and signing keys: a
    test that needs two servers that do not trust each other makes its homes with ``init_home``
    itself. One that relied on two copies differing would fail (a token or certificate of one is
    then accepted by the other); it cannot pass silently."""
    with _ENVIRONMENT:
        key = template_key()
        template = _HOME_TEMPLATES.get(key)
        if template is None or not (template / "tessera.toml").exists():
            template = Path(tempfile.mkdtemp(prefix="tessera-home-template-")) / "home"
            atexit.register(shutil.rmtree, template.parent, True)
            init_home(
                template,
                hostname="localhost",
                port=TEMPLATE_PORT,
                issuer=f"https://localhost:{TEMPLATE_PORT}",
                now=int(time.time()),
            )
            _HOME_TEMPLATES[key] = template
    shutil.copytree(template, home, dirs_exist_ok=True)  # as init_home, into an empty directory too
    config = home / "tessera.toml"
    lines = config.read_text().splitlines(keepends=True)
    mine = {
        f'issuer = "https://localhost:{TEMPLATE_PORT}"\n': f'issuer = "https://localhost:{port}"\n',
        f"port = {TEMPLATE_PORT}\n": f"port = {port}\n",
    }
    if sorted(line for line in lines if line in mine) != sorted(mine):
        raise AssertionError(f"init_home no longer writes the issuer and port lines copy_home rewrites:\n{lines}")
    config.write_text("".join(mine.get(line, line) for line in lines))


_cheap_hashes: dict[str, str] = {}


def merchant_password_hash(password: str) -> str:
    """An argon2id hash of a test merchant's password, made once per password and with argon2's
    lowest cost. The server reads the cost from the hash when it verifies, so each of the suite's
    logins costs a millisecond instead of production's tens (RFC 9106 defaults, which the CLI's
    ``merchants add-user`` uses, and tests/security/test_credentials.py row 31 checks)."""
    if password not in _cheap_hashes:
        from argon2 import PasswordHasher

        _cheap_hashes[password] = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(password)
    return _cheap_hashes[password]


@dataclass
class AppIdentity:
    client_id: str
    client_secret: str
    redirect_uri: str
    cert: Path | None = None
    key: Path | None = None
    serial: str | None = None
    thumbprint: str | None = None


@dataclass
class MerchantSetup:
    merchant_id: int
    pos: str
    softpos_tid: str
    mpos_tid: str
    username: str
    password: str


@dataclass
class LiveServer:
    workdir: Path
    database_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen | None = None
    serve_args: tuple[str, ...] = ()  # more flags for ``tessera serve`` (e.g. ``("--workers", "2")``)

    def __post_init__(self) -> None:
        self.home = self.workdir / "home"
        self.port = self.port or free_port()
        # The refusal suites send hundreds of failures from 127.0.0.1: the per-address lockout
        # is tested on servers of its own (fixture address_lock_server); the per-credential one stays.
        # The B2BINPAY login's own per-address budget (15 a minute) is lifted too, and tested on
        # servers of its own (tests/e2e/test_b2binpay_provider.py).
        # So is the budget of unauthenticated writes (60 a minute: login pages), tested in tests/faults/test_flood.py.
        self.env = {
            "TESSERA_LOGIN_MAX_FAILURES_PER_ADDRESS": "1000000",
            "TESSERA_B2BINPAY_LOGIN_PER_MINUTE": "0",
            "TESSERA_UNAUTHENTICATED_WRITES_PER_MINUTE": "0",
            **self.env,
        }
        self._env = {**os.environ, **self.env}
        if self.database_url:
            self._env["TESSERA_DATABASE_URL"] = self.database_url
        self._env.pop("TESSERA_HOME", None)

    # --- lifecycle --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        scheme = (
            "http" if self._env.get("TESSERA_MTLS_MODE") == "proxy" or self._env.get("TESSERA_PLAIN_HTTP") else "https"
        )
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def ca(self) -> Path:
        return self.home / "ca.pem"

    @property
    def settings(self) -> Settings:
        """The server's settings, as its process sees them (its TESSERA_* environment included)."""
        overrides = {k: v for k, v in self.env.items() if k.startswith("TESSERA_")}
        if self.database_url:
            overrides["TESSERA_DATABASE_URL"] = self.database_url
        with environment(**overrides):
            return Settings.load(self.home)

    def init(self) -> None:
        if self.database_url:
            with environment(TESSERA_DATABASE_URL=self.database_url):
                init_home(
                    self.home,
                    hostname="localhost",
                    port=self.port,
                    issuer=f"https://localhost:{self.port}",
                    now=int(time.time()),
                )
        else:
            copy_home(self.home, self.port)
        self.store = open_store(self.settings)

    def start(self, timeout: float = 30) -> LiveServer:
        if not (self.home / "tessera.toml").exists():
            self.init()
        with open(self.workdir / "server.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tessera.cli",
                    "--home",
                    str(self.home),
                    "serve",
                    "--port",
                    str(self.port),
                    *self.serve_args,
                ],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tessera serve exited early:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"tessera serve did not start:\n{self.log_tail()}")

    #: How long ``stop`` lets uvicorn drain before it forces the exit. The server's own grace period
    #: (``timeout_graceful_shutdown``, 10 s) is for production; a test's clients that keep idle
    #: keep-alive connections open would make every teardown wait for all of it.
    STOP_GRACE = 2.0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(self.STOP_GRACE)
            except subprocess.TimeoutExpired:
                # A second signal, SIGINT, is uvicorn's "force exit": it stops waiting for open
                # connections and background tasks, and still runs the application's shutdown.
                try:
                    os.killpg(self.proc.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(5)
        if getattr(self, "store", None) is not None:
            self.store.close()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join((self.workdir / "server.log").read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def ssl_context(self, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if cert:
            ctx.load_cert_chain(str(cert), str(key))
        return ctx

    # --- CLI -------------------------------------------------------------------------------------
    def cli(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "tessera.cli", "--home", str(self.home), *args],
            env=self._env,
            input=input,
            capture_output=True,
            text=True,
            cwd=self.workdir,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"tessera {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def cli_json(self, *args: str, input: str | None = None) -> dict[str, Any]:
        return json.loads(self.cli(*args, "--json", input=input).stdout)

    # --- fast admin helpers (through the Store) ---------------------------------------------------
    def new_app(
        self, *, redirect_uri: str = "https://app.example.test/callback", with_cert: bool = True, key_type: str = "rsa"
    ) -> AppIdentity:
        from tessera.core.models import Client
        from tessera.core.secrets import generate_client_id, generate_secret, hash_secret

        secret = generate_secret()
        client = Client(
            client_id=generate_client_id(),
            name="Test App",
            secret_hash=hash_secret(secret, self.settings.pepper_bytes()),
            redirect_uris=(redirect_uri,),
            grant_types=("client_credentials", "authorization_code"),
            created_at=int(time.time()),
        )
        self.store.create_client(client)
        app = AppIdentity(client.client_id, secret, redirect_uri)
        if with_cert:
            self.add_cert(app, key_type=key_type)
        return app

    def add_cert(self, app: AppIdentity, *, key_type: str = "rsa", validity_days: int = 30) -> AppIdentity:
        """openssl makes the key and CSR; the home's CA signs it (as ``tessera certs sign`` does)."""
        from tessera.core.models import CertificateRecord
        from tessera.home import load_ca

        d = self.workdir / "apps" / app.client_id / secrets.token_hex(4)
        csr, key = make_csr(d, key_type=key_type)
        issued = load_ca(self.settings).sign_csr(csr.read_bytes(), validity_days=validity_days)
        self.store.add_certificate(
            CertificateRecord(
                serial=issued.serial,
                client_id=app.client_id,
                thumbprint=issued.thumbprint,
                subject=issued.subject,
                not_before=int(issued.not_before.timestamp()),
                not_after=int(issued.not_after.timestamp()),
                pem=issued.pem.decode(),
                created_at=int(time.time()),
            )
        )
        cert = d / "NOMEAPP.pem"
        cert.write_bytes(issued.pem)
        app.cert, app.key, app.serial, app.thumbprint = cert, key, issued.serial, issued.thumbprint
        return app

    def new_merchant(self, app: AppIdentity | None = None, *, grant: bool = True) -> MerchantSetup:
        mid = secrets.randbelow(10**9) + 1
        pos = f"POS{mid}"
        setup = MerchantSetup(mid, pos, f"S{mid}", f"M{mid}", f"merchant{mid}@shop.example", "correct horse battery")
        self.store.create_merchant(Merchant(mid, f"Shop {mid}", None, int(time.time())))
        self.store.add_terminal(Terminal(setup.softpos_tid, mid, pos, "softpos"))
        self.store.add_terminal(Terminal(setup.mpos_tid, mid, pos, "mpos"))
        self.store.add_user(MerchantUser(setup.username, mid, merchant_password_hash(setup.password)))
        if app is not None and grant:
            self.store.grant(mid, app.client_id, int(time.time()))
        return setup


def module_server(tmp_path_factory: Any, name: str, env: dict[str, str]) -> Iterator[LiveServer]:
    """A module fixture's whole body (``yield from``): a server with settings of its own in a
    fresh directory, started, and stopped when the module is done."""
    server = LiveServer(tmp_path_factory.mktemp(name), env=env).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class SharedHomeServer(LiveServer):
    """A ``tessera serve`` on the home (and database) of another instance: ``shared_home``."""

    shared_home: Path | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.home = self.shared_home
