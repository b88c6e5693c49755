"""The portal in process: tessera's own app (``create_app`` over a fresh home) with a clock the
test moves, driven through Starlette's TestClient over ``https://`` (the cookies are
``Secure``); and a local SMTP sink (aiosmtpd) on a free loopback port that keeps what it got."""

from __future__ import annotations

import re
import socket
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from argon2 import PasswordHasher

from tessera.admin import Admin
from tessera.config import Settings
from tessera.core import secrets as core_secrets
from tessera.home import build_core, init_home, load_ca, open_store
from tessera.web.app import create_app

with warnings.catch_warnings():  # starlette's TestClient on httpx
    warnings.simplefilter("ignore", DeprecationWarning)
    from starlette.testclient import TestClient

NOW = 1_800_000_000
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


class Sink:
    """An SMTP server on loopback that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", autouse=True)
def cheap_argon2() -> Iterator[None]:
    """Passwords hashed here at argon2id's lowest cost (verification reads the cost from the
    hash): the rules are the same, the in-process tests stay fast. The production cost is
    the library's default (``tessera.core.secrets``)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        yield


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Sink, int]]:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@dataclass
class Portal:
    settings: Settings
    clock: Clock
    app: Any
    admin: Admin
    clients: list[TestClient] = field(default_factory=list)

    def client(self) -> TestClient:
        c = TestClient(self.app, base_url="https://testserver", follow_redirects=False)
        self.clients.append(c)
        return c


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, html[:2000]
    return m.group(1)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("portal") / "home"
    init_home(h, hostname="localhost", port=8443, issuer="https://localhost:8443", now=NOW)
    return h


@pytest.fixture(scope="module")
def portal(home: Path, smtp: tuple[Sink, int]) -> Iterator[Portal]:
    _, port = smtp
    settings = Settings.load(
        home, smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False, smtp_from="portal@tessera.test"
    )
    store = open_store(settings)
    core = build_core(settings, store)
    clock = Clock()
    core.clock = clock
    app = create_app(settings, core=core)
    admin = Admin(store=store, settings=settings, ca=lambda: load_ca(settings), clock=lambda: int(clock()))
    p = Portal(settings, clock, app, admin)
    try:
        yield p
    finally:
        for c in p.clients:
            c.close()
        store.close()
