"""``tessera sandbox``: a ready server with the chosen provider profiles at the providers' own
paths, at the root of ``https://127.0.0.1:PORT``:

=============  =============================================================================
nexi           ``/softpos/appenrollment/token``, ``/softpos/par/jwks.json``, ``/softpos/as/par``,
               ``/softpos/as/authorize``, ``/softpos/as/token`` (mTLS, the sandbox's CA)
axept          ``/v1/authenticate``
mobilepay      ``/integrator-authentication/connect/token`` (and its discovery document)
b2binpay       ``/token/``, ``/token/refresh/``
all            the four, and the native OAuth 2.0 routes (``/oauth2/*``)
=============  =============================================================================

A profile not chosen is not served (404). The home is a temporary directory removed on exit,
unless ``home`` is given (a new home is created there; an existing one is reused as it is, its
fixtures loaded when it was created). The fixtures (``tessera.sandbox.fixtures``) are loaded
through the admin layer; the issuer, and so the ``aud`` of Nexi's client assertions, is the
base URL. The core's clock is a ``SandboxClock`` that ``/_sandbox/clock`` moves forward.

Two limits that a test suite from one address trips on are lifted (unless set in the
environment): the B2BINPAY logins per minute per address (``TESSERA_B2BINPAY_LOGIN_PER_MINUTE``)
and the unauthenticated writes per minute (``TESSERA_UNAUTHENTICATED_WRITES_PER_MINUTE``).
Every other rule is the profile's own.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tessera import startup
from tessera.admin import Admin
from tessera.config import ConfigError, Settings
from tessera.home import build_core, check_kek, init_home, load_ca, open_store
from tessera.sandbox.clock import SandboxClock
from tessera.sandbox.control import PREFIX, control_routes
from tessera.sandbox.defaults import DEFAULT_FIXTURES
from tessera.sandbox.fixtures import Fixtures, load_fixtures, parse_fixtures
from tessera.sandbox.setup import load_into
from tessera.sandbox.tokens import Issuing

#: ``--profile`` → the profiles served.
PROFILE_CHOICES: dict[str, tuple[str, ...]] = {
    "nexi": ("nexi-softpos",),
    "axept": ("axept",),
    "mobilepay": ("mobilepay",),
    "b2binpay": ("b2binpay",),
    "all": ("nexi-softpos", "axept", "mobilepay", "b2binpay", "native"),
}

#: The providers' own path prefixes (the SDK clients' defaults).
PREFIXES = {
    "nexi_prefix": "/softpos",
    "axept_prefix": "",
    "mobilepay_prefix": "/integrator-authentication",
    "b2binpay_prefix": "",
}

#: What each profile serves, for the announcement.
PATHS: dict[str, tuple[str, ...]] = {
    "nexi-softpos": (
        "POST /softpos/appenrollment/token",
        "GET  /softpos/par/jwks.json",
        "POST /softpos/as/par",
        "GET  /softpos/as/authorize",
        "POST /softpos/as/token",
    ),
    "axept": ("POST /v1/authenticate",),
    "mobilepay": ("POST /integrator-authentication/connect/token",),
    "b2binpay": ("POST /token/", "POST /token/refresh/"),
    "native": ("POST /oauth2/token", "GET  /.well-known/oauth-authorization-server"),
}

LIFTED_LIMITS = {"b2binpay_login_per_minute": 0, "unauthenticated_writes_per_minute": 0}
CREDENTIALS_FILE = "sandbox-credentials.json"


def profiles_for(choices: Sequence[str]) -> tuple[str, ...]:
    """The profiles served for the ``--profile`` values given (none: all)."""
    chosen: list[str] = []
    for c in choices or ("all",):
        if c not in PROFILE_CHOICES:
            raise ValueError(f"--profile must be one of {', '.join(PROFILE_CHOICES)} (got {c!r})")
        chosen += [p for p in PROFILE_CHOICES[c] if p not in chosen]
    return tuple(chosen)


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1 (``port`` 0: a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@dataclass
class Sandbox:
    """A prepared sandbox: its home, settings, socket, clock and description. ``serve`` runs
    it; ``close`` removes a temporary home."""

    profiles: tuple[str, ...]
    home: Path
    temporary: bool
    sock: socket.socket
    settings: Settings
    description: dict[str, Any]
    clock: SandboxClock = field(default_factory=SandboxClock)
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return str(self.description["base_url"])

    def app(self) -> Any:
        from tessera.web.app import create_app

        store = open_store(self.settings)
        check_kek(self.settings, store)
        core = build_core(self.settings, store)
        core.clock = self.clock
        admin = Admin(
            store=store, settings=self.settings, ca=lambda: load_ca(self.settings), clock=lambda: int(self.clock())
        )
        routes = control_routes(
            clock=self.clock,
            admin=admin,
            issuing=Issuing(core, self.settings, self.passwords),
            description=self.description,
        )
        return create_app(self.settings, core=core, profiles=self.profiles, extra_routes=routes)

    def serve(self, *, on_ready: Callable[[], None] = lambda: None) -> None:
        """Serve until SIGINT/SIGTERM (uvicorn's handlers), calling ``on_ready`` once serving."""
        import uvicorn

        from tessera.server import uvicorn_kwargs
        from tessera.web.logging import configure_logging

        exit_on_sigterm()
        configure_logging(self.settings.log_level)
        kwargs = uvicorn_kwargs(self.settings)
        kwargs.pop("host"), kwargs.pop("port")
        config = uvicorn.Config(self.app(), log_config=None, lifespan="on", **kwargs)
        startup.settle()  # the app is built: the collector's own thresholds from here on (tessera.startup)

        class Server(uvicorn.Server):
            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets)
                if not self.should_exit:
                    on_ready()

        Server(config).run(sockets=[self.sock])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.temporary:
            shutil.rmtree(self.home, ignore_errors=True)


def exit_on_sigterm() -> None:
    """SIGTERM exits 0 through ``SystemExit`` (uvicorn re-raises it once drained), so that the
    ``finally`` blocks run and a temporary home is removed."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))


def stop_on_stdin_eof() -> None:
    """SIGTERM this process once standard input reaches its end: the parent that holds the
    other end (the pytest plugin) has exited, even if killed, so the sandbox stops too."""

    def watch() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="sandbox-stdin-eof").start()


def _overrides(port: int) -> dict[str, Any]:
    base = f"https://127.0.0.1:{port}"
    flags: dict[str, Any] = {"issuer": base, "port": port, **PREFIXES}
    flags.update({k: v for k, v in LIFTED_LIMITS.items() if f"TESSERA_{k.upper()}" not in os.environ})
    return flags


#: What the sandbox needs whatever the environment says (``TESSERA_*`` variables set the rest).
PINNED = {"host": "127.0.0.1", "workers": 1, "mtls_mode": "embedded", "plain_http": False}


def read_fixtures(path: Path | None) -> tuple[Fixtures, Path]:
    """The fixtures of ``path`` (None: ``DEFAULT_FIXTURES``) and the directory their relative
    paths are read from."""
    if path is None:
        return parse_fixtures(DEFAULT_FIXTURES, source="the default fixtures"), Path.cwd()
    return load_fixtures(path), path.resolve().parent


def prepare(
    *, profiles: tuple[str, ...], fixtures: Path | None = None, port: int = 0, home: Path | None = None
) -> Sandbox:
    """Check the fixtures, bind the port, make (or reuse) the home and load the fixtures.
    ``FixtureError`` for a bad fixtures file (before anything is made); ``OSError`` if the port
    is taken; ``ConfigError`` for a bad setting, or a home no sandbox made."""
    parsed, base_dir = read_fixtures(fixtures)
    sock = bind(port)
    temporary = home is None
    target = Path(tempfile.mkdtemp(prefix="tessera-sandbox-")) if home is None else Path(home)
    try:
        return _prepare(profiles, parsed, base_dir, sock, target, temporary)
    except BaseException:
        sock.close()
        if temporary:
            shutil.rmtree(target, ignore_errors=True)
        raise


def _prepare(
    profiles: tuple[str, ...], parsed: Fixtures, base_dir: Path, sock: socket.socket, home: Path, temporary: bool
) -> Sandbox:
    port = int(sock.getsockname()[1])
    flags = _overrides(port)
    credentials_file = home / CREDENTIALS_FILE
    fresh = not (home / "tessera.toml").exists()
    if fresh:
        database = f"sqlite:///{(home / 'tessera.db').resolve()}" if temporary else None
        with _no_database_env(temporary):
            init_home(
                home,
                hostname="localhost",
                port=port,
                issuer=flags["issuer"],
                now=int(time.time()),
                database_url=database,
            )
    _record(home, flags)
    settings = Settings.load(home, **PINNED, **{k: flags[k] for k in ("issuer", "port", *PREFIXES)})
    if fresh:
        store = open_store(settings)
        try:
            admin = Admin(store=store, settings=settings, ca=lambda: load_ca(settings))
            credentials = load_into(admin, parsed, base=base_dir, apps_dir=home / "apps")
        finally:
            store.close()
        credentials_file.write_text(json.dumps(credentials, indent=2) + "\n")
        credentials_file.chmod(0o600)
    else:
        try:
            credentials = json.loads(credentials_file.read_text())
        except (OSError, ValueError):
            raise ConfigError(f"{home} holds a tessera home that no sandbox made (no {CREDENTIALS_FILE})") from None
    base = str(flags["issuer"])
    description: dict[str, Any] = {
        "base_url": base,
        "ca_file": str(settings.ca_cert_path.resolve()),
        "home": str(home.resolve()),
        "temporary_home": temporary,
        "reused_home": not fresh,
        "profiles": list(profiles),
        "paths": {p: list(PATHS[p]) for p in profiles},
        "control": f"{base}{PREFIX}",
        **credentials,
    }
    passwords = {u["login"]: u["password"] for u in credentials.get("b2binpay", {}).get("users", [])}
    return Sandbox(profiles, home, temporary, sock, settings, description, passwords=passwords)


#: The settings the sandbox records in its home's tessera.toml, so that every command on that
#: home (``tessera --home H demo``, ``clients list``, ...) sees the sandbox as it runs.
RECORDED = ("issuer", "port", *PREFIXES, *LIFTED_LIMITS)


def _record(home: Path, flags: dict[str, Any]) -> None:
    """Write ``RECORDED`` of ``flags`` into ``home``'s tessera.toml (over what init wrote)."""
    path = home / "tessera.toml"
    with path.open("rb") as f:
        config = tomllib.load(f)
    config.update({k: flags[k] for k in RECORDED if k in flags})

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v) if isinstance(v, int | float) else json.dumps(str(v))

    path.write_text("".join(f"{k} = {value(v)}\n" for k, v in config.items()))


@contextlib.contextmanager
def _no_database_env(active: bool) -> Iterator[None]:
    """A temporary home keeps its own SQLite database, whatever TESSERA_DATABASE_URL says."""
    saved = os.environ.pop("TESSERA_DATABASE_URL", None) if active else None
    try:
        yield
    finally:
        if saved is not None:
            os.environ["TESSERA_DATABASE_URL"] = saved
