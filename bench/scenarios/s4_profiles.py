"""s4: the profiles' own token calls: axept (API key, JSON) and MobilePay with merchant_vat
(on s1's server, see ``s1_tokens.run_base``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.harness.fixtures import Fixture, probe
from bench.scenarios.spec import Scenario

if TYPE_CHECKING:
    from bench.harness.session import Harness

GROUP = "s4"
AXEPT = Scenario("s4.axept", "axept authenticate (API key, JSON)", "axept.lua", "POST /axept/v1/authenticate")
MOBILEPAY = Scenario(
    "s4.mobilepay_vat",
    "MobilePay token with merchant_vat",
    "mobilepay_vat.lua",
    "POST /integrator-authentication/connect/token",
)
SCENARIOS = (AXEPT, MOBILEPAY)


def axept(h: Harness, srv: Any, fx: Fixture, config: dict[str, Any]) -> None:
    mid, kid, key = fx.axept
    url = f"{srv.url}/axept/v1/authenticate"
    r = probe("POST", url, json={"merchantId": mid, "keyId": kid, "key": key})
    if r.status_code != 200:
        raise RuntimeError(f"axept probe answered {r.status_code}: {r.text[:200]}")
    h.measure(
        AXEPT.id,
        AXEPT.title,
        url,
        AXEPT.lua or "",
        [str(mid), str(kid), key],
        target="tessera",
        server=[srv.proc.pid],
        port=srv.port,
        config=config,
        endpoint=AXEPT.endpoint,
    )


def mobilepay_vat(h: Harness, srv: Any, fx: Fixture, config: dict[str, Any]) -> None:
    url = f"{srv.url}/integrator-authentication/connect/token"
    r = probe(
        "POST",
        url,
        content=f"grant_type=client_credentials&merchant_vat={fx.vat}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(fx.client_id, fx.secret),
    )
    if r.status_code != 200:
        raise RuntimeError(f"MobilePay probe answered {r.status_code}: {r.text[:200]}")
    h.measure(
        MOBILEPAY.id,
        MOBILEPAY.title,
        url,
        MOBILEPAY.lua or "",
        [fx.client_id, fx.secret, fx.vat],
        target="tessera",
        server=[srv.proc.pid],
        port=srv.port,
        config=config,
        endpoint=MOBILEPAY.endpoint,
    )
