"""s1: client_credentials tokens, ES256, plain HTTP (proxy mode): the native token endpoint
and Nexi's token with the certificate in a header. Its server also carries s4,
s5.b2b_login and s5.b2b_sqlite (``run_base``: one server, 1 worker, SQLite, 10 clients)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.harness.fixtures import Fixture, check_token
from bench.harness.procs import log
from bench.scenarios import s4_profiles, s5_b2b
from bench.scenarios.spec import Scenario

if TYPE_CHECKING:
    from bench.harness.session import Harness

GROUP = "s1"
NATIVE = Scenario("s1.native", "native /oauth2/token, client_secret_basic", "token_basic.lua", "POST /oauth2/token")
NEXI = Scenario(
    "s1.nexi_proxy",
    "Nexi token, proxy mode (X-SSL-Client-Cert)",
    "token_basic.lua",
    "POST /softpos/appenrollment/token",
)
SCENARIOS = (NATIVE, NEXI)


def token_scenarios(
    h: Harness,
    srv: Any,
    fx: Fixture,
    *,
    native: str | None,
    nexi: str | None,
    config: dict[str, Any],
    title_suffix: str = "",
) -> None:
    """The native and Nexi token loads (under the ids given: s1's, or s6's)."""
    server = [srv.proc.pid]
    if native:
        status, body = check_token(f"{srv.url}/oauth2/token", fx, cert=False)
        if h.native_available is None:
            h.native_available = status == 200
        if status == 200:
            h.measure(
                native,
                f"{NATIVE.title}{title_suffix}",
                f"{srv.url}/oauth2/token",
                NATIVE.lua or "",
                [fx.client_id, fx.secret],
                target="tessera",
                server=server,
                port=srv.port,
                config=config,
                endpoint=NATIVE.endpoint,
            )
        else:
            h.unavailable(
                native,
                f"native /oauth2/token{title_suffix}",
                f"probe answered {status} {body[:120]!r}: the native token endpoint is not there yet",
            )
    if nexi:
        url = f"{srv.url}/softpos/appenrollment/token"
        status, body = check_token(url, fx, cert=True)
        if status != 200:
            raise RuntimeError(f"Nexi token probe answered {status}: {body}")
        h.measure(
            nexi,
            f"{NEXI.title}{title_suffix}",
            url,
            NEXI.lua or "",
            [fx.client_id, fx.secret, fx.cert_header],
            target="tessera",
            server=server,
            port=srv.port,
            config=config,
            endpoint=NEXI.endpoint,
        )


def run_base(h: Harness) -> None:
    """s1 (native, Nexi proxy), s4 (axept, MobilePay), s5 B2BINPAY on SQLite: one server."""
    ids = [NATIVE.id, NEXI.id, *(s.id for s in s4_profiles.SCENARIOS), s5_b2b.LOGIN.id, s5_b2b.SQLITE.id]
    if not h.want(*ids):
        return
    log("== s1/s4/s5: tessera, proxy mode, 1 worker, SQLite, 10 clients")
    config = {"workers": 1, "db": "sqlite", "clients": 10, "mtls": "proxy", "tls": False}
    with h.tessera("base") as (srv, fx):
        token_scenarios(
            h,
            srv,
            fx,
            native=NATIVE.id if h.want(NATIVE.id) else None,
            nexi=NEXI.id if h.want(NEXI.id) else None,
            config=config,
        )
        if h.want(s4_profiles.AXEPT.id):
            s4_profiles.axept(h, srv, fx, config)
        if h.want(s4_profiles.MOBILEPAY_PLAIN.id):
            s4_profiles.mobilepay_vat(h, srv, fx, config, vat=False)
        if h.want(s4_profiles.MOBILEPAY.id):
            s4_profiles.mobilepay_vat(h, srv, fx, config)
        if h.want(s5_b2b.LOGIN.id):
            s5_b2b.login(h, srv, fx, config)
        if h.want(s5_b2b.SQLITE.id):
            s5_b2b.b2b(h, s5_b2b.SQLITE.id, srv, fx, config, extra_groups=None)
