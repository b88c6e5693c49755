"""s4: the profiles' own token calls: axept (API key, JSON) and MobilePay without and with
merchant_vat (on s1's server, see ``s1_tokens.run_base``)."""

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
MOBILEPAY_PLAIN = Scenario(
    "s4.mobilepay",
    "MobilePay token without merchant_vat",
    "mobilepay_vat.lua",
    "POST /integrator-authentication/connect/token",
)
SCENARIOS = (AXEPT, MOBILEPAY_PLAIN, MOBILEPAY)


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


def mobilepay_vat(h: Harness, srv: Any, fx: Fixture, config: dict[str, Any], *, vat: bool = True) -> None:
    """MobilePay's token with ``merchant_vat`` (``s4.mobilepay_vat``), or without (``s4.mobilepay``)."""
    scenario = MOBILEPAY if vat else MOBILEPAY_PLAIN
    url = f"{srv.url}/integrator-authentication/connect/token"
    body = "grant_type=client_credentials" + (f"&merchant_vat={fx.vat}" if vat else "")
    r = probe(
        "POST",
        url,
        content=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(fx.client_id, fx.secret),
    )
    if r.status_code != 200:
        raise RuntimeError(f"MobilePay probe answered {r.status_code}: {r.text[:200]}")
    h.measure(
        scenario.id,
        scenario.title,
        url,
        scenario.lua or "",
        [fx.client_id, fx.secret, fx.vat if vat else ""],
        target="tessera",
        server=[srv.proc.pid],
        port=srv.port,
        config=config,
        endpoint=scenario.endpoint,
    )
