"""A running ``tessera sandbox``, from a test: start it in a subprocess, read what it serves and
its fixture credentials (typed), and drive it (sign a CSR, issue a token, move the clock).

Imports nothing of the server: it talks to the ``tessera sandbox`` command and to its
``/_sandbox`` control routes over HTTPS, with httpx (an SDK dependency)."""

from __future__ import annotations

import json
import os
import queue
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Self

import httpx

__all__ = [
    "AxeptKey",
    "B2BinPayUser",
    "IssuedToken",
    "Merchant",
    "MerchantUser",
    "MobilePayClient",
    "NexiApp",
    "OAuthApp",
    "PointOfSale",
    "SandboxError",
    "TesseraSandbox",
    "Terminal",
    "start_sandbox",
]


class SandboxError(RuntimeError):
    """The sandbox did not start, or refused a control request."""


@dataclass(frozen=True)
class NexiApp:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    #: the developer certificate (PEM file) signed by the sandbox's CA, and its private key
    #: (None when the fixture gave a CSR: the key is yours)
    certificate: Path
    key: Path | None
    thumbprint: str


@dataclass(frozen=True)
class MobilePayClient:
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class B2BinPayUser:
    login: str
    password: str


@dataclass(frozen=True)
class OAuthApp:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]


@dataclass(frozen=True)
class Terminal:
    tid: str
    kind: str


@dataclass(frozen=True)
class PointOfSale:
    id: str
    terminals: tuple[Terminal, ...]


@dataclass(frozen=True)
class MerchantUser:
    username: str
    password: str


@dataclass(frozen=True)
class AxeptKey:
    merchant_id: int
    key_id: int
    key: str


@dataclass(frozen=True)
class Merchant:
    id: int
    name: str
    vat: str | None
    grants: tuple[str, ...]
    points_of_sale: tuple[PointOfSale, ...]
    users: tuple[MerchantUser, ...]
    axept_keys: tuple[AxeptKey, ...]


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    claims: dict[str, Any]
    #: B2BINPAY: the refresh token of the new family
    refresh: str | None
    #: the control route's whole answer
    raw: dict[str, Any]


def _merchant(m: dict[str, Any]) -> Merchant:
    return Merchant(
        id=m["id"],
        name=m["name"],
        vat=m["vat"],
        grants=tuple(m["grants"]),
        points_of_sale=tuple(
            PointOfSale(p["id"], tuple(Terminal(t["tid"], t["kind"]) for t in p["terminals"]))
            for p in m["points_of_sale"]
        ),
        users=tuple(MerchantUser(u["username"], u["password"]) for u in m["users"]),
        axept_keys=tuple(AxeptKey(m["id"], k["key_id"], k["key"]) for k in m["axept_keys"]),
    )


@dataclass
class TesseraSandbox:
    """What a running sandbox serves (``base_url``, ``ca_file``, ``profiles``), its fixture
    credentials, and the helpers of its control routes."""

    description: dict[str, Any]
    process: subprocess.Popen[bytes] | None = None
    #: the sandbox's standard error: an unnamed file (nothing to clean up, even after a kill)
    log: BinaryIO | None = None
    _http: httpx.Client = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._http = httpx.Client(verify=self.ssl_context(), timeout=30.0)

    # --- what it serves -------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return str(self.description["base_url"])

    @property
    def ca_file(self) -> Path:
        return Path(self.description["ca_file"])

    @property
    def home(self) -> Path:
        return Path(self.description["home"])

    @property
    def profiles(self) -> tuple[str, ...]:
        return tuple(self.description["profiles"])

    def ssl_context(self, *, certificate: str | Path | None = None, key: str | Path | None = None) -> ssl.SSLContext:
        """A TLS context that trusts the sandbox's CA (``httpx.Client(verify=...)``); with
        ``certificate`` and ``key``, it presents that client certificate (Nexi's mTLS)."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if certificate is not None:
            context.load_cert_chain(str(certificate), str(key) if key is not None else None)
        return context

    # --- the fixture credentials ------------------------------------------------------------
    @property
    def nexi_apps(self) -> tuple[NexiApp, ...]:
        return tuple(
            NexiApp(
                a["client_id"],
                a["client_secret"],
                tuple(a["redirect_uris"]),
                Path(a["certificate"]),
                Path(a["key"]) if a["key"] else None,
                a["thumbprint"],
            )
            for a in self.description["nexi"]["apps"]
        )

    @property
    def mobilepay_clients(self) -> tuple[MobilePayClient, ...]:
        return tuple(
            MobilePayClient(c["client_id"], c["client_secret"]) for c in self.description["mobilepay"]["clients"]
        )

    @property
    def b2binpay_users(self) -> tuple[B2BinPayUser, ...]:
        return tuple(B2BinPayUser(u["login"], u["password"]) for u in self.description["b2binpay"]["users"])

    @property
    def oauth_apps(self) -> tuple[OAuthApp, ...]:
        return tuple(
            OAuthApp(a["client_id"], a["client_secret"], tuple(a["redirect_uris"])) for a in self.description["apps"]
        )

    @property
    def merchants(self) -> tuple[Merchant, ...]:
        return tuple(_merchant(m) for m in self.description["merchants"])

    def merchant(self, merchant_id: int) -> Merchant:
        for m in self.merchants:
            if m.id == merchant_id:
                return m
        raise KeyError(f"no merchant {merchant_id} in the fixtures")

    # --- helpers --------------------------------------------------------------------------------
    def _control(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self._http.request(method, f"{self.base_url}/_sandbox{path}", json=body)
        answer: dict[str, Any] = response.json()
        if response.status_code != 200:
            raise SandboxError(f"{method} /_sandbox{path}: {response.status_code} {answer}")
        return answer

    def sign_csr(self, client_id: str, csr_pem: str | bytes) -> str:
        """A developer certificate (PEM) for ``client_id``, signed from ``csr_pem`` by the
        sandbox's CA (as ``tessera certs sign`` does)."""
        csr = csr_pem.decode() if isinstance(csr_pem, bytes) else csr_pem
        return str(self._control("POST", "/certificates", {"client_id": client_id, "csr": csr})["certificate"])

    def issue_token(self, profile: str, **params: Any) -> IssuedToken:
        """A token issued directly, the one the profile's endpoint would give:
        ``issue_token("nexi", client_id=…)`` (bound to the app's newest certificate, or to
        ``thumbprint=…``), ``("mobilepay", client_id=…, merchant_vat=…)``,
        ``("axept", merchant_id=…, key_id=…)``, ``("b2binpay", login=…)``,
        ``("native", client_id=…, scope=…)``."""
        body: dict[str, Any] = {"profile": profile}
        names = {"merchant_id": "merchantId", "key_id": "keyId"}
        body.update({names.get(k, k): v for k, v in params.items()})
        raw = self._control("POST", "/tokens", body)
        return IssuedToken(raw["access_token"], int(raw["expires_in"]), raw["claims"], raw.get("refresh"), raw)

    def server_time(self) -> int:
        """The sandbox's clock (Unix time)."""
        return int(self._control("GET", "/clock")["now"])

    def advance_clock(self, seconds: float) -> int:
        """Move the sandbox's clock forward by ``seconds``; its new time. Tokens, codes and
        refresh tokens expire as they would after that long. See ``reset_clock``."""
        return int(self._control("POST", "/clock", {"advance": seconds})["now"])

    def reset_clock(self) -> int:
        """Put the sandbox's clock back on the system time (the fixture ``tessera_clock`` does
        it after each test)."""
        return int(self._control("POST", "/clock", {"reset": True})["now"])

    # --- lifecycle --------------------------------------------------------------------------------
    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log, lines) if self.log is not None else ""

    def stop(self) -> None:
        """Stop the sandbox (SIGTERM: it removes its temporary home)."""
        self._http.close()
        proc = self.process
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self.log is not None:
            self.log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _tail(log: BinaryIO, lines: int) -> str:
    size = os.fstat(log.fileno()).st_size
    start = max(0, size - 64 * 1024)
    text = os.pread(log.fileno(), size - start, start).decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def start_sandbox(
    *,
    fixtures: str | Path | None = None,
    profiles: Sequence[str] = ("all",),
    port: int = 0,
    home: str | Path | None = None,
    timeout: float = 120.0,
    command: Sequence[str] | None = None,
) -> TesseraSandbox:
    """Start ``tessera sandbox --json`` and wait until it serves. ``fixtures``: a fixtures file
    (None: the built-in example); ``home``: keep the sandbox's home there (None: a temporary
    one, removed when it stops); ``command``: how to run tessera (default: this Python's
    ``-m tessera.console``). ``TESSERA_*`` variables of this process are not passed on: the sandbox
    is the same whatever the environment of the test run."""
    args = [
        *(command or (sys.executable, "-m", "tessera.console")),
        "sandbox",
        "--json",
        "--exit-on-stdin-eof",  # if this process dies, the pipe closes and the sandbox stops
        "--port",
        str(port),
    ]
    for p in profiles:
        args += ["--profile", p]
    if fixtures is not None:
        args += ["--fixtures", str(Path(fixtures).resolve())]
    if home is not None:
        args += ["--home", str(Path(home).resolve())]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    # O_APPEND: the sandbox writes at the end whatever this process reads (os.pread, no seek).
    log = tempfile.TemporaryFile(mode="a+b", prefix="tessera-sandbox-", suffix=".log")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.PIPE, env=env)
    lines: queue.Queue[bytes] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(b"")

    threading.Thread(target=read, daemon=True, name="tessera-sandbox-stdout").start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line:
            try:
                description = json.loads(line)
            except ValueError:
                continue
            return TesseraSandbox(description, proc, log)
        if line == b"" or time.monotonic() >= deadline:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            tail = _tail(log, 20)
            log.close()
            hint = (
                "\n(the sandbox needs the server: pip install 'tessera-auth[server]')"
                if "No module named" in tail
                else ""
            )
            raise SandboxError(f"tessera sandbox did not start (exit {proc.returncode}):\n{tail}{hint}")
