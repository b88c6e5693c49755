"""The benchmark harness's pieces (bench/), checked without running a benchmark.

- the Lua scripts exist, and each one runs under wrk for a second against a tiny canned
  HTTP server on loopback (slow: needs wrk; skipped when it is not installed): its
  SUMMARY line parses, the B2BINPAY script rotates refresh tokens, and the PAR script
  never sends a pool line twice;
- the report renders a table, ratios, banner and chart from a sample results JSON;
- /proc accounting attributes a child's CPU to its group; RSS is sampled;
- the PAR assertion pool makes nested JWEs that an independent JOSE library opens;
- scenario selection and argument parsing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
LUA = BENCH / "lua"
SCRIPTS = ["token_basic.lua", "mobilepay_vat.lua", "axept.lua", "par_pool.lua", "b2b_refresh.lua", "b2b_login.lua"]


def load(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    if f"bench_{name}" in sys.modules:
        return sys.modules[f"bench_{name}"]
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------- files


def test_the_pieces_exist():
    for script in ["common.lua", *SCRIPTS]:
        assert (LUA / script).is_file(), script
    for f in ("run.sh", "run.py", "report.py", "procacct.py", "par_pool.py", "sdk_bench.py"):
        assert (BENCH / f).is_file(), f
    assert os.access(BENCH / "run.sh", os.X_OK)
    assert (BENCH / "harness").is_dir() and (BENCH / "scenarios").is_dir()
    scenarios = "".join(p.read_text() for p in sorted((BENCH / "scenarios").glob("*.py")))
    for script in SCRIPTS:  # every script is used by a scenario module
        assert f'"{script}"' in scenarios, script
    used = set(re.findall(r'"([a-z0-9_]+\.lua)"', scenarios))
    assert used <= set(SCRIPTS) and all((LUA / s).is_file() for s in used)  # every used script exists
    assert "@bench/run.sh" in (REPO / "Makefile").read_text()


def test_run_sh_is_valid_bash():
    subprocess.run(["bash", "-n", str(BENCH / "run.sh")], check=True)


# --------------------------------------------------------------------------- the Lua scripts under wrk


class Canned(BaseHTTPRequestHandler):
    """200 with a B2BINPAY-like body holding a fresh refresh token; records every body."""

    protocol_version = "HTTP/1.1"
    bodies: list[tuple[str, str, bytes]] = []
    lock = threading.Lock()
    counter = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        with Canned.lock:
            Canned.counter += 1
            n = Canned.counter
            Canned.bodies.append((self.path, self.headers.get("authorization", ""), body))
        out = json.dumps({"data": {"type": "auth-token", "attributes": {"refresh": f"rt{n}", "access": "at"}}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST

    def log_message(self, *args):
        pass

    def handle(self):
        try:
            super().handle()
        except ConnectionError:  # wrk closes its connections at the end
            pass


@pytest.fixture
def canned():
    Canned.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (bench/run.sh installs it)")
def test_every_lua_script_runs_under_wrk(canned, tmp_path):
    run = load("run")
    pool = tmp_path / "pool.txt"
    pool.write_text("".join(f"client_assertion=a{i}&client_id=c&scope=oidc&redirect_uri=r\n" for i in range(5000)))
    jobs = {
        "token_basic.lua": ("/token", ["id", "se:cret", "CERT%0A"]),
        "mobilepay_vat.lua": ("/mp", ["id", "secret", "DK12345678"]),
        "mobilepay_vat.lua#plain": ("/mp-plain", ["id", "secret", ""]),
        "axept.lua": ("/axept", ["1", "2", "key"]),
        "par_pool.lua": ("/par", [str(pool), "2", "tok", "CERT"]),
        "b2b_refresh.lua": ("/b2b/token/", ["login", "pw"]),
        "b2b_login.lua": ("/b2b-login/token/", ["login", "pw"]),
    }
    # One after another: five wrk processes at once can starve the small canned server.
    outputs, codes = {}, {}
    for name, (path, args) in jobs.items():
        p = subprocess.run(
            ["wrk", "-t2", "-c4", "-d1s", "--latency", "-s", str(LUA / name.split("#")[0]), canned + path, "--", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=30,
        )
        outputs[name], codes[name] = p.stdout, p.returncode
    for name, text in outputs.items():
        assert codes[name] == 0, (name, text)
        assert ".lua:" not in text, (name, text)  # wrk prints Lua errors and carries on
        s = run.parse_summary(text)
        assert s["requests"] > 0 and s["non2xx"] == 0, (name, text)
        assert {"p50_us", "p99_us", "rps", "err_timeout"} <= set(s), (name, s)

    sent = Canned.bodies
    basic = {auth for path, auth, _ in sent if path == "/token"}
    assert basic == {"Basic aWQ6c2UlM0FjcmV0"}  # base64("id:se%3Acret"): RFC 6749 §2.3.1
    assert {b for p, _, b in sent if p == "/mp"} == {b"grant_type=client_credentials&merchant_vat=DK12345678"}
    assert {b for p, _, b in sent if p == "/mp-plain"} == {b"grant_type=client_credentials"}
    assert {json.loads(b)["data"]["attributes"]["login"] for p, _, b in sent if p == "/b2b-login/token/"} == {"login"}
    assert json.loads(next(b for p, _, b in sent if p == "/axept")) == {"merchantId": 1, "keyId": 2, "key": "key"}

    par = [b for p, _, b in sent if p == "/par"]
    assert len(par) == len(set(par)) > 0, "a PAR pool line was sent twice"
    assert run.parse_summary(outputs["par_pool.lua"])["exhausted"] == 0

    b2b = [(p, json.loads(b)) for p, _, b in sent if p.startswith("/b2b/")]
    refreshed = [j["data"]["attributes"]["refresh"] for p, j in b2b if p == "/b2b/token/refresh/"]
    logins = [j for p, j in b2b if p == "/b2b/token/"]
    assert logins and refreshed
    assert logins[0]["data"]["attributes"] == {"login": "login", "password": "pw"}
    assert len(refreshed) == len(set(refreshed)), "a refresh token was used twice"
    s = run.parse_summary(outputs["b2b_refresh.lua"])
    assert s["refreshes"] >= len(refreshed) and s["logins"] >= 1


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (bench/run.sh installs it)")
def test_par_script_stops_when_the_pool_runs_out(canned, tmp_path):
    run = load("run")
    pool = tmp_path / "pool.txt"
    pool.write_text("".join(f"a={i}\n" for i in range(20)))
    p = subprocess.run(
        ["wrk", "-t2", "-c2", "-d1s", "-s", str(LUA / "par_pool.lua"), canned + "/par", "--", str(pool), "2", "t", ""],
        capture_output=True,
        text=True,
        timeout=30,
    )
    s = run.parse_summary(p.stdout)
    assert s["exhausted"] >= 1 and s["used"] <= 20
    par = [b for path, _, b in Canned.bodies if path == "/par"]
    assert len(par) == len(set(par))


# --------------------------------------------------------------------------- report


def sample_results() -> dict:
    def load_row(sid, target, rps, cpu, **kw):
        return {
            "id": sid,
            "group": sid.split(".")[0],
            "title": sid,
            "target": target,
            "available": True,
            "config": {"workers": 1, "db": "sqlite", "clients": 10},
            "rps": rps,
            "requests": int(rps * 15),
            "p50_ms": 5.0,
            "p90_ms": 8.0,
            "p99_ms": 20.0,
            "max_ms": 40.0,
            "non2xx": 0,
            "socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0},
            "cpu_us_per_req": cpu,
            "rss_peak_mb_per_worker": 90.0,
            "state": "CLEAN",
            **kw,
        }

    return {
        "meta": {
            "date": "2026-11-21T12:00:00Z",
            "commit": "abc1234",
            "smoke": True,
            "peers": True,
            "machine": {"cpu": "Test CPU", "cores": 2, "kernel": "6.1", "memory_gb": 24},
            "load": {
                "threads": 2,
                "connections": 32,
                "duration_s": 3,
                "warmup_s": 3,
                "retries": 0,
                "max_quiet_wait_s": 0,
            },
            "versions": {"python": "3.11.7", "wrk": "wrk 4.1.0"},
        },
        "scenarios": [
            load_row("peer.node_jwt", "node-oidc-provider", 4000.0, 300.0),
            load_row("peer.authlib_w1", "authlib", 1300.0, 800.0),
            load_row("s1.native", "tessera", 2000.0, 450.0),
            load_row(
                "s5.b2b_pg",
                "tessera",
                500.0,
                1500.0,
                db_cpu_us_per_req=700.0,
                counters={"logins": 32, "refreshes": 7000, "bad": 0},
            ),
            load_row("s2.nexi_mtls", "tessera", 1500.0, 600.0, proxy_cpu_us_per_req=200.0, conns_midrun=32),
            {
                "id": "s2.tls_new",
                "group": "s2",
                "title": "new TLS connections/s",
                "available": True,
                "target": "tessera",
                "connections": 900,
                "conns_per_s": 300.0,
                "cpu_us_per_conn": 2000.0,
                "non2xx": 0,
                "state": "CLEAN",
            },
            {
                "id": "s2.tls_resume",
                "group": "s2",
                "title": "resumed",
                "available": True,
                "target": "tessera",
                "connections": 1800,
                "conns_per_s": 600.0,
                "cpu_us_per_conn": 900.0,
                "resumed": 1799,
                "non2xx": 0,
                "state": "CLEAN",
            },
            load_row(
                "s3.par",
                "tessera",
                400.0,
                2400.0,
                pool={"run1": {"assertions": 30000, "seconds": 20.0}},
                config={"workers": 2, "db": "sqlite", "clients": 10},
            ),
            {
                "id": "s6.native_w2",
                "group": "s6",
                "title": "native token, 2 workers",
                "available": False,
                "note": "probe answered 404",
            },
        ],
        "par_crypto_bound": {
            "rsa_oaep256_decrypt_us": 650.0,
            "rs256_verify_us": 60.0,
            "a256gcm_decrypt_us": 3.0,
            "per_request_us": 713.0,
            "cores": 2,
            "bound_rps": 2805,
            "bound_rps_per_worker": 1402,
            "enc_key_bits": 2048,
        },
        "sdk": {
            "hit_sync_ns": 1000,
            "hit_async_ns": 1500,
            "single_flight": {
                "threads": 100,
                "rounds": 20,
                "fetch_ms": 50.0,
                "fetches_max": 1,
                "fetches_total": 20,
                "wall_ms_p50": 55.0,
                "overhead_ms_p50": 4.5,
                "overhead_ms_max": 9.0,
            },
        },
    }


def test_report_renders_a_table_with_ratios(tmp_path):
    report = load("report")
    data = sample_results()
    report.add_ratios(data)
    native = next(r for r in data["scenarios"] if r["id"] == "s1.native")
    assert native["vs_node"] == {"rps": 0.5, "cpu_us_per_req": 1.5}
    text = report.render_markdown(data)
    assert "smoke run" in text and "noise" in text
    assert (
        "| scenario | server | rps | p50 ms | p99 ms | non-2xx | CPU µs/req | RSS/worker MB | rps vs node "
        "| CPU vs node | run |" in text
    )
    row = next(line for line in text.splitlines() if line.startswith("| `s1.native`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:] == ["2000", "5.0", "20.0", "0", "450", "90", "0.50×", "1.50×", "CLEAN"]
    assert "db +700" in text and "proxy +200" in text
    assert "32 logins and 7000 refreshes" in text
    assert "| `s2.tls_resume` resumed | 600 | 900 | 1799/1800 | CLEAN |" in text
    assert "2805 req/s" in text and "with 2 worker(s): 14 % of the bound for 2 core(s) (2804 req/s)" in text
    targets = text[text.index("## Targets") :]
    assert "| s3: PAR ≥ 50 % of the cryptographic bound (all cores) | 14 % (2 workers" in targets.replace(
        "worker(s)", "workers"
    )
    assert (
        "| native `POST /oauth2/token`: ≥ 2.0× node-oidc-provider's req/s | 0.50× (by CPU per request 0.67×) "
        "| missed |" in targets
    )
    assert "| native `POST /oauth2/token`: ≤ 150 µs server CPU per request | 450 µs | missed |" in targets
    assert "`s6.native_w2` native token, 2 workers: probe answered 404" in text
    assert "1000 ns" in text and "at most 1 fetch" in text
    assert "nginx" in text and "proxy_ssl_certificate" in text


def test_report_without_peers_has_no_ratios():
    report = load("report")
    data = sample_results()
    data["scenarios"] = [r for r in data["scenarios"] if not r["id"].startswith("peer.")]
    data["meta"]["peers"] = False
    report.add_ratios(data)
    assert all("vs_node" not in r for r in data["scenarios"])
    text = report.render_markdown(data)
    assert "no ratios" in text


def test_report_writes_json_doc_and_chart(tmp_path):
    pytest.importorskip("matplotlib")
    report = load("report")
    data = sample_results()
    out_json, doc, img = (
        tmp_path / "latest.json",
        tmp_path / "docs" / "benchmarks.md",
        tmp_path / "docs" / "img" / "benchmarks.png",
    )
    report.write_all(data, results_json=out_json, doc=doc, image=img)
    assert img.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![tessera against the peers](img/benchmarks.png)" in doc.read_text()
    saved = json.loads(out_json.read_text())
    assert next(r for r in saved["scenarios"] if r["id"] == "s3.par")["vs_node"]["rps"] == 0.1
    # and the command line re-renders from the saved JSON
    assert report.main([str(out_json), "--doc", str(doc), "--image", str(img)]) == 0


# --------------------------------------------------------------------------- /proc accounting


def test_procacct_attributes_a_childs_cpu_to_its_group():
    procacct = load("procacct")
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nt=time.process_time()\nwhile time.process_time()-t<0.4: pass\ntime.sleep(30)",
        ]
    )
    try:
        s0 = procacct.snapshot()
        with procacct.RssSampler([child.pid], interval=0.05) as rss:
            time.sleep(0.8)
        s1 = procacct.snapshot()
        d = procacct.diff(s0, s1, {"server": [child.pid], "self": [os.getpid()]})
        assert 0.2 <= d.groups["server"] <= 0.8, d
        assert d.machine_busy >= d.groups["server"] - 0.05
        summary = rss.summary()
        assert summary["workers"] == 1 and summary["rss_peak_mb_per_worker"] > 1
        assert procacct.workers([child.pid]) == [child.pid]
        assert set(d.as_dict()) >= {"groups", "residual", "residual_cores", "machine_busy"}
    finally:
        child.kill()
        child.wait()


def test_quiet_wait_can_be_switched_off():
    procacct = load("procacct")
    assert procacct.quiet_wait({"self": [os.getpid()]}, max_wait=0) == {"waited": 0.0, "quiet": None}


# --------------------------------------------------------------------------- PAR pool


def test_par_pool_assertions_open_with_an_independent_library(tmp_path):
    pytest.importorskip("jwcrypto")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwcrypto import jwe, jwk, jws

    par_pool = load("par_pool")
    app_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    enc_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    enc_jwk = jwk.JWK.from_pyca(enc_key)
    public = json.loads(enc_jwk.export_public())
    public["kid"] = "enc-1"
    pem = app_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    spec = par_pool.assertion_spec(
        client_id="app-1",
        redirect_uri="https://app.example/cb",
        audience="https://localhost:8443",
        app_key_pem=pem,
        enc_jwk=public,
        pos="POS1",
        tids=["S1", "M1"],
        username="m@shop.example",
        lifetime=3600,
    )
    path = tmp_path / "pool.txt"
    par_pool.write_pool(path, spec, 6, processes=2)
    lines = path.read_text().splitlines()
    assert len(lines) == 6
    jtis = set()
    for line in lines:
        form = {k: v[0] for k, v in parse_qs(line).items()}
        assert (
            form["client_id"] == "app-1"
            and form["scope"] == "oidc"
            and form["redirect_uri"] == "https://app.example/cb"
        )
        outer = jwe.JWE()
        outer.deserialize(form["client_assertion"], key=enc_jwk)
        header = json.loads(outer.objects["protected"])
        assert header == {"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT", "kid": "enc-1"}
        inner = jws.JWS()
        inner.deserialize(outer.payload.decode())
        inner.verify(jwk.JWK.from_pyca(app_key.public_key()), alg="RS256")
        claims = json.loads(inner.payload)
        assert claims["iss"] == claims["sub"] == claims["appId"] == "app-1"
        assert claims["aud"] == "https://localhost:8443" and claims["exp"] - claims["iat"] == 3600
        assert claims["terminal_ids"] == ["S1", "M1"] and claims["username_merchant"] == "m@shop.example"
        jtis.add(claims["jti"])
    assert len(jtis) == 6


def test_crypto_bound_is_measured():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    par_pool = load("par_pool")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    b = par_pool.crypto_bound(pem, number=5)
    assert b["rsa_oaep256_decrypt_us"] > b["rs256_verify_us"] > 0
    assert abs(b["bound_rps"] - b["cores"] / (b["per_request_us"] / 1e6)) <= 0.01 * b["bound_rps"] + 1
    assert b["bound_rps_per_worker"] <= b["bound_rps"]


# --------------------------------------------------------------------------- run.py pieces


def test_scenario_selection_and_durations():
    run = load("run")
    assert run.Harness._select("all") == run.ALL_IDS
    assert run.Harness._select("s1,s3") == ["s1.native", "s1.nexi_proxy", "s3.par", "s3.par_nokid"]
    assert run.Harness._select("s6.nexi_w2,s6") == ["s6.nexi_w2", "s6.native_10k", "s6.nexi_10k", "s6.native_w2"]
    with pytest.raises(SystemExit):
        run.Harness._select("s9")
    assert run.seconds("15s") == 15 and run.seconds("3") == 3 and run.seconds("1m") == 60
    s = run.parse_summary(
        'junk\nSUMMARY requests=10 secs=1.000 rps=10.0 p50_us=5 non2xx=0 logins=2\nSAMPLE 401 {"e":1}\n'
    )
    assert s == {
        "requests": 10,
        "secs": 1.0,
        "rps": 10.0,
        "p50_us": 5,
        "non2xx": 0,
        "logins": 2,
        "sample": '401 {"e":1}',
    }


def test_sdk_bench_runs_small():
    pytest.importorskip("tessera.sdk.cache")
    sdk_bench = load("sdk_bench")
    res = sdk_bench.run(threads=10, rounds=1, hits=1000)
    assert res["single_flight"]["fetches_max"] == 1
    assert res["hit_sync_ns"] > 0 and res["hit_async_ns"] > 0


def test_scenarios_are_declared_as_data_in_their_group_module():
    load("run")  # puts the repository on sys.path for the bench package
    from bench import scenarios

    assert list(scenarios.GROUPS) == ["peers", "s1", "s2", "s3", "s4", "s5", "s6", "s7"]
    for module in scenarios._MODULES:
        for s in module.SCENARIOS:
            assert s.id.split(".")[0] in (module.GROUP, "peer"), (module.__name__, s.id)
            assert s.title and (s.lua is None or (LUA / s.lua).is_file()), s
    assert len(scenarios.ALL_IDS) == len(set(scenarios.ALL_IDS))
    assert [name for name, _ in scenarios.STEPS] == ["s1/s4/s5", "s6", "s3", "s2", "s5-pg", "s7"]


def test_the_targets_are_printed_met_or_missed(capsys):
    """``make bench`` ends with each target of the run on the console, met or missed."""
    report = load("report")
    report.print_targets(sample_results())
    out = capsys.readouterr().out.splitlines()
    assert "   MISSED  native `POST /oauth2/token`: ≤ 150 µs server CPU per request: 450 µs" in out
    assert all(line.split()[0] in ("MET", "MISSED") for line in out) and len(out) >= 3


def test_a_no_report_run_never_replaces_the_figures_the_docs_come_from():
    run = load("run")
    results = BENCH / "results"
    assert run.results_path(None, no_report=False) == results / "latest.json"
    assert run.results_path(None, no_report=True) == results / "no-report.json"
    assert run.results_path("/tmp/x.json", no_report=True) == Path("/tmp/x.json")
