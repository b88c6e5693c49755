"""The admin API in process: one fresh home per module (SQLite; and PostgreSQL, slow), tessera's own ``create_app``
over a core whose clock the tests hold, Starlette's TestClient, and operator clients that get
their Bearer tokens from ``/oauth2/token`` as an operator would."""

from __future__ import annotations

import base64
import os
import secrets
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

with warnings.catch_warnings():  # starlette's TestClient on httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from tessera import admin as ops
from tessera.admin import Admin
from tessera.config import Settings
from tessera.home import build_core, init_home, load_ca, open_store
from tessera.web.app import create_app

NOW = 1_800_000_000


@dataclass
class Clock:
    now: int = NOW

    def __call__(self) -> float:
        return float(self.now)


@dataclass
class Operator:
    client_id: str
    secret: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Api:
    client: TestClient
    settings: Settings
    admin: Admin  # the CLI's view of the same home (no actor)
    clock: Clock

    def operator(self, *, org: str | None = None, scope: str = "tessera:admin") -> Operator:
        reg = ops.register_client(
            self.admin, ops.RegisterClient(name="ops", scope=scope, grant_types=("client_credentials",), org_id=org)
        )
        assert reg.client_secret is not None
        return Operator(reg.client_id, reg.client_secret, self.token(reg.client_id, reg.client_secret))

    def token(self, client_id: str, secret: str, scope: str | None = None) -> str:
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        data = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
        r = self.client.post("/oauth2/token", data=data, headers={"Authorization": f"Basic {basic}"})
        assert r.status_code == 200, r.text
        token: str = r.json()["access_token"]
        return token

    def call(self, op: Operator, method: str, path: str, **kw: Any) -> Any:
        headers = {**op.auth, **kw.pop("headers", {})}
        return self.client.request(method, "/admin/v1" + path, headers=headers, **kw)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow])]
)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    url = None
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_server").create_database(f"admin_api_{secrets.token_hex(6)}")
    saved = {k: os.environ.pop(k) for k in [n for n in os.environ if n.startswith("TESSERA_")]}
    home = tmp_path_factory.mktemp("admin-api") / "home"
    init_home(home, hostname="localhost", port=8443, issuer="https://localhost:8443", now=NOW, database_url=url)
    settings = Settings.load(home)
    store = open_store(settings)
    core = build_core(settings, store)
    clock = Clock()
    core.clock = clock
    app = create_app(settings, core=core)
    admin = Admin(store=store, settings=settings, ca=lambda: load_ca(settings), clock=lambda: int(clock()))
    try:
        with TestClient(app, raise_server_exceptions=False, client=("10.7.0.1", 50000)) as client:
            yield Api(client, settings, admin, clock)
    finally:
        store.close()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def platform(api: Api) -> Operator:
    return api.operator()
