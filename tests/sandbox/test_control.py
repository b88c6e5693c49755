"""The sandbox's app in process: the control routes (loopback only, their refusals), the
profile filter, the movable clock, and ``tessera serve``'s app without any of it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tessera.config import Settings
from tessera.home import init_home
from tessera.sandbox.clock import MAX_ADVANCE, SandboxClock
from tessera.sandbox.server import Sandbox, prepare, profiles_for
from tessera.sdk import make_csr

LOOPBACK = ("127.0.0.1", 50000)


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sandbox = prepare(profiles=profiles_for([]), home=tmp_path_factory.mktemp("sandbox") / "home")
    try:
        yield sandbox
    finally:
        sandbox.close()


@pytest.fixture(scope="module")
def client(box: Sandbox) -> Iterator[TestClient]:
    with TestClient(box.app(), client=LOOPBACK, base_url=box.base_url) as c:
        yield c


def test_clock_unit() -> None:
    now = [1000.0]
    clock = SandboxClock(lambda: now[0])
    assert clock() == 1000.0
    assert clock.advance(60) == 60.0 and clock() == 1060.0
    now[0] = 2000.0
    assert clock() == 2060.0
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        clock.advance(MAX_ADVANCE + 1)
    clock.reset()
    assert clock() == 2000.0


def test_clock_route_moves_the_core_clock(box: Sandbox, client: TestClient) -> None:
    before = client.get("/_sandbox/clock").json()
    assert before["offset"] == 0
    moved = client.post("/_sandbox/clock", json={"advance": 7200}).json()
    assert moved["offset"] == 7200 and moved["now"] >= before["now"] + 7200
    token = client.post("/_sandbox/tokens", json={"profile": "axept", "merchantId": 1001, "keyId": 1}).json()
    assert token["claims"]["iat"] >= before["now"] + 7200  # the core issued it on the moved clock
    assert client.post("/_sandbox/clock", json={"reset": True}).json()["offset"] == 0
    assert box.clock.offset == 0


@pytest.mark.parametrize(
    "body", [{"advance": -5}, {"advance": "60"}, {"advance": True}, {}, {"reset": False}, {"advance": 1, "reset": True}]
)
def test_clock_route_refuses(client: TestClient, body: dict[str, object]) -> None:
    r = client.post("/_sandbox/clock", json=body)
    assert r.status_code == 400 and "error" in r.json()


def test_control_routes_answer_loopback_only(box: Sandbox) -> None:
    with TestClient(box.app(), client=("192.0.2.7", 50000)) as remote:
        for method, path in (("GET", "/_sandbox"), ("GET", "/_sandbox/clock"), ("POST", "/_sandbox/clock")):
            r = remote.request(method, path, json={"advance": 10})
            assert r.status_code == 403, path
    assert box.clock.offset == 0


def test_description_lists_credentials(client: TestClient, box: Sandbox) -> None:
    d = client.get("/_sandbox").json()
    assert d["base_url"] == box.base_url and d["profiles"] == list(profiles_for([]))
    assert d["mobilepay"]["clients"][0]["client_id"] == "mobilepay-integrator"
    assert Path(d["nexi"]["apps"][0]["key"]).stat().st_mode & 0o777 == 0o600


def test_sign_csr_route(client: TestClient) -> None:
    csr, _ = make_csr()
    r = client.post("/_sandbox/certificates", json={"client_id": "softpos-demo-app", "csr": csr.decode()})
    assert r.status_code == 200 and r.json()["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert client.post("/_sandbox/certificates", json={"client_id": "nobody", "csr": csr.decode()}).status_code == 404
    bad = client.post("/_sandbox/certificates", json={"client_id": "softpos-demo-app", "csr": "not a csr"})
    assert bad.status_code == 400 and "CSR refused" in bad.json()["error"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"profile": "visa"}, 400),
        ({}, 400),
        ({"profile": "nexi"}, 400),
        ({"profile": "nexi", "client_id": "nobody"}, 404),
        ({"profile": "nexi", "client_id": "mobilepay-integrator"}, 404),  # no certificate
        ({"profile": "nexi", "client_id": "softpos-demo-app", "thumbprint": "x"}, 404),
        ({"profile": "axept", "merchantId": 1001, "keyId": 9}, 404),
        ({"profile": "axept", "merchantId": "1001", "keyId": 1}, 400),
        ({"profile": "mobilepay", "client_id": "mobilepay-integrator", "merchant_vat": "XX1"}, 400),
        ({"profile": "mobilepay", "client_id": "mobilepay-integrator", "merchant_vat": "FI87654321"}, 400),
        ({"profile": "b2binpay", "login": "mobilepay-integrator"}, 404),  # not a B2BINPAY user
        ({"profile": "native", "client_id": "mobilepay-integrator", "scope": 3}, 400),
    ],
)
def test_token_route_refusals(client: TestClient, body: dict[str, object], status: int) -> None:
    assert client.post("/_sandbox/tokens", json=body).status_code == status


def test_token_route_body_must_be_an_object(client: TestClient) -> None:
    assert client.post("/_sandbox/tokens", content=b"[1]").status_code == 400
    assert client.post("/_sandbox/tokens", content=b"{").status_code == 400


def test_native_token(client: TestClient) -> None:
    r = client.post("/_sandbox/tokens", json={"profile": "native", "client_id": "mobilepay-integrator"})
    assert r.status_code == 200 and r.json()["claims"]["client_id"] == "mobilepay-integrator"


def test_profiles_not_chosen_are_not_served(box: Sandbox) -> None:
    only = dataclasses.replace(box, profiles=profiles_for(["b2binpay"]))
    with TestClient(only.app(), client=LOOPBACK) as c:
        assert c.post("/v1/authenticate", json={}).status_code == 404
        assert c.post("/integrator-authentication/connect/token").status_code == 404
        assert c.get("/softpos/par/jwks.json").status_code == 404
        assert c.post("/token/", json={}).status_code == 400  # served: B2BINPAY's own refusal
        assert c.get("/_sandbox/clock").status_code == 200


def test_profile_choices() -> None:
    assert profiles_for(["nexi", "axept"]) == ("nexi-softpos", "axept")
    assert profiles_for(["all", "nexi"]) == ("nexi-softpos", "axept", "mobilepay", "b2binpay", "native")
    with pytest.raises(ValueError, match="--profile"):
        profiles_for(["visa"])


def test_tessera_serve_has_no_control_routes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app ``tessera serve`` runs (tessera.web.asgi:create) mounts no /_sandbox route."""
    for name in [n for n in __import__("os").environ if n.startswith("TESSERA_")]:
        monkeypatch.delenv(name)
    init_home(tmp_path / "home", now=1_800_000_000)
    monkeypatch.setenv("TESSERA_HOME", str(tmp_path / "home"))
    from tessera.web.asgi import create

    app = create()
    assert not [r for r in app.routes if getattr(r, "path", "").startswith("/_sandbox")]
    with TestClient(app, client=LOOPBACK) as c:
        assert c.get("/_sandbox/clock").status_code == 404
        assert c.post("/_sandbox/clock", json={"advance": 60}).status_code == 404
        assert c.post("/_sandbox/tokens", json={"profile": "native"}).status_code == 404
    settings = Settings.load(tmp_path / "home")
    assert settings.axept_prefix == "/axept"  # tessera serve keeps tessera's own prefixes
