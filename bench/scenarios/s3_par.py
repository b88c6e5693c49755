"""s3: Nexi PAR with a nested-JWE assertion per request, from a pool made beforehand: every
JWE names its key (s3.par), or none does and each goes to a random key of the JWKS, as
Nexi's reference backend sends them (s3.par_nokid: the server tries its published keys in
turn). The server gets one worker per core, as the cryptographic bound counts every core."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from bench import par_pool
from bench.harness.fixtures import Fixture, probe
from bench.harness.procs import log
from bench.scenarios.spec import Scenario

if TYPE_CHECKING:
    from bench.harness.session import Harness

GROUP = "s3"
PAR = Scenario(
    "s3.par",
    "Nexi PAR, nested JWE (RSA-OAEP-256 + RS256), one assertion per request",
    "par_pool.lua",
    "POST /softpos/as/par",
)
PAR_NOKID = Scenario(
    "s3.par_nokid",
    "Nexi PAR, nested JWE without kid to a random JWKS key (RSA-OAEP-256 + RS256), one assertion per request",
    "par_pool.lua",
    "POST /softpos/as/par",
)
SCENARIOS = (PAR, PAR_NOKID)
#: One worker per core, as the cryptographic bound counts every core.
PAR_WORKERS = int(os.environ.get("TESSERA_BENCH_PAR_WORKERS", "2"))
#: The Nexi PAR takes assertions up to the provider's 15 minutes.
LIFETIME = 900


def run(h: Harness) -> None:
    if not h.want(PAR.id, PAR_NOKID.id):
        return
    # Two workers, each writing to the one SQLite database (WAL; the writers queue on its
    # lock, busy timeout 30 s as in production), one write transaction per PAR.
    workers = PAR_WORKERS
    log(f"== s3: tessera, proxy mode, {workers} workers, SQLite (WAL): PAR with a nested-JWE assertion per request")
    config = {"workers": workers, "db": "sqlite", "clients": 10, "mtls": "proxy", "tls": False}
    env = {"TESSERA_NEXI_TOKEN_TTL": str(86400), "TESSERA_NEXI_ASSERTION_MAX_LIFETIME": str(LIFETIME)}
    with h.tessera("par", workers=workers, env=env) as (srv, fx):
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-SSL-Client-Cert": fx.cert_header}
        r = probe(
            "POST",
            f"{srv.url}/softpos/appenrollment/token",
            headers=headers,
            content=f"grant_type=client_credentials&client_id={quote(fx.client_id)}&client_secret="
            f"{quote(fx.secret)}".encode(),
        )
        if r.status_code != 200:
            raise RuntimeError(f"Nexi token probe answered {r.status_code}: {r.text[:200]}")
        token = r.json()["access_token"]
        jwks = probe("GET", f"{srv.url}/softpos/par/jwks.json").json()
        enc = jwks["keys"][0]
        key_pem = fx.key_path.read_bytes()
        bound = par_pool.crypto_bound(key_pem, enc_bits=srv.settings.encryption_key_bits)
        log(
            f"   cryptographic bound: decrypt {bound['rsa_oaep256_decrypt_us']} us "
            f"+ verify {bound['rs256_verify_us']} us "
            f"-> {bound['bound_rps']} req/s on {bound['cores']} cores ({bound['bound_rps_per_worker']} per worker)"
        )
        h.extras["par_crypto_bound"] = bound
        url = f"{srv.url}/softpos/as/par"
        for scenario, kidless in ((PAR, False), (PAR_NOKID, True)):
            if h.want(scenario.id):
                variant(h, scenario, kidless, srv, fx, key_pem, jwks, enc, bound, token, headers, url, config)


def variant(
    h: Harness,
    scenario: Scenario,
    kidless: bool,
    srv: Any,
    fx: Fixture,
    key_pem: bytes,
    jwks: dict[str, Any],
    enc: dict[str, Any],
    bound: dict[str, Any],
    token: str,
    headers: dict[str, str],
    url: str,
    config: dict[str, Any],
) -> None:
    sid = scenario.id
    m = fx.merchant
    spec = par_pool.assertion_spec(
        client_id=fx.client_id,
        redirect_uri=fx.redirect_uri,
        audience=srv.settings.issuer,
        app_key_pem=key_pem,
        enc_jwk=enc,
        pos=m.pos,
        tids=[m.softpos_tid, m.mpos_tid],
        username=m.username,
        lifetime=LIFETIME,
        enc_jwks=jwks["keys"],
        kidless=kidless,
    )
    r = probe(
        "POST", url, content=par_pool.one_body(spec).encode(), headers={**headers, "Authorization": f"Bearer {token}"}
    )
    if r.status_code != 201:
        raise RuntimeError(f"PAR probe answered {r.status_code}: {r.text[:300]}")

    # Enough distinct assertions for the fastest the server could possibly go: the
    # cryptographic bound of its one worker (a worker handles PAR on its event loop,
    # one core at most), with a 30 % margin; --par-pool overrides.
    def size(secs: int) -> int:
        fastest = min(bound["bound_rps"], bound["bound_rps_per_worker"] * config["workers"])
        return int(h.args.par_pool or int(fastest * secs * 1.3) + 200)

    made: dict[str, Any] = {}

    def pool_for(phase: str) -> list[str]:
        path = h.work / f"par-pool-{sid}-{phase}.txt"
        n = size(h.args.warmup if phase == "warmup" else h.args.duration)
        took = par_pool.write_pool(path, spec, n)
        made[phase] = {"assertions": n, "seconds": round(took, 1)}
        log(f"   pool {phase}: {n} assertions made in {took:.1f} s")
        return [str(path), str(h.args.threads), token, fx.cert_header]

    res = h.measure(
        sid,
        scenario.title,
        url,
        scenario.lua or "",
        pool_for,
        target="tessera",
        server=[srv.proc.pid],
        port=srv.port,
        config=config,
        endpoint=scenario.endpoint,
    )
    res["pool"] = made
    res["crypto_bound_rps"] = bound["bound_rps"]
    res["crypto_bound_rps_per_worker"] = bound["bound_rps_per_worker"]
    res["enc_keys_published"] = len(jwks["keys"])
    if res.get("counters", {}).get("exhausted"):
        res["state"] = "INVALID"
        res["note"] = "the assertion pool ran out: rerun with a bigger --par-pool"
