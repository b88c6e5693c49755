"""Checklist row 45 and issue 11's operator items, through the real ``tessera`` command:

- every bad configuration value gives one line on stderr and a non-zero exit, no traceback,
  and never a character of a secret (a KEK of the wrong length used to echo 16 of them);
- a well-formed but wrong KEK (or pepper) is detected at start-up and the server refuses to
  start (it used to start and answer 500 on every token request);
- the home knows its database: ``tessera init --database-url`` records it in tessera.toml
  (without its password), commands use it when ``TESSERA_DATABASE_URL`` is unset, and refuse
  to run against another database, on SQLite and on PostgreSQL.

Most rows are configuration-validation rules: they run the command in this process, through the
console script's own entry point (``tests.support.incli``: the same command line, environment,
working directory, captured output and exit status). A few run as a real ``tessera`` process, at
least one of each kind of refusal (a refused ``serve``, a refused admin command, a malformed
tessera.toml, an unreachable database), and each of those also runs in process and must give the
same exit status, stdout and stderr: the in-process path is checked against the process path.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from tests.support.incli import run_tessera, run_tessera_process
from tests.support.live import free_port

#: Distinctive secrets: no window of them can occur by chance in a message.
BAD_KEK = "QkVLLXZ3eHl6LXNlY3JldC1vZi10aGUtd3JvbmctbGVuZ3Ro"  # 36 bytes: the wrong length
WRONG_KEK = "V1JPTkdXUk9OR1dST05HV1JPTkdXUk9OR1dST05HV1I"  # 32 bytes: well formed, not this home's
WRONG_PEPPER = "UEVQUEVSUEVQUEVSUEVQUEVSUEVQUEVSUEVQUEVSUEU"


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def tessera(
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
    process: bool = False,
) -> subprocess.CompletedProcess:
    """``tessera --home HOME ARGS`` with the environment's ``TESSERA_*`` replaced by ``env``: in
    this process, or (``process=True``) as a real process, which must then answer exactly what
    the in-process run answers (run second: it sees what the process left)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    argv, full_env, where = ("--home", str(home), *args), {**base, **(env or {})}, cwd or home.parent
    if not process:
        return run_tessera(argv, env=full_env, cwd=where)
    proc = run_tessera_process(argv, env=full_env, cwd=where, timeout=timeout)
    same = run_tessera(argv, env=full_env, cwd=where)
    # rich colours a terminal only: strip its escapes, should the in-process console have one
    assert (same.returncode, ANSI.sub("", same.stdout), ANSI.sub("", same.stderr)) == (
        proc.returncode,
        proc.stdout,
        proc.stderr,
    ), "the in-process run answers otherwise than the process"
    return proc


def assert_one_line_refusal(proc: subprocess.CompletedProcess, *, secrets: tuple[str, ...] = (), says: str = "") -> str:
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "Traceback" not in output and 'File "' not in output, output
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for secret in secrets:  # not a run of 4 characters of the secret anywhere
        for i in range(len(secret) - 3):
            assert secret[i : i + 4] not in output, (secret[i : i + 4], output)
    assert says.lower() in lines[0].lower(), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("config-errors")
    proc = tessera(work / "home", "init", "--json")
    assert proc.returncode == 0, proc.stderr
    return work / "home"


BAD_VALUES = {
    "kek-wrong-length": ({"TESSERA_KEK": BAD_KEK}, "TESSERA_KEK"),
    "kek-not-base64": ({"TESSERA_KEK": "#!Zq%" + BAD_KEK + "%!"}, "TESSERA_KEK"),
    "pepper-short": ({"TESSERA_PEPPER": BAD_KEK[:20]}, "TESSERA_PEPPER"),
    "port-not-a-number": ({"TESSERA_PORT": "eighty"}, "TESSERA_PORT"),
    "port-out-of-range": ({"TESSERA_PORT": "70000"}, "TESSERA_PORT"),
    "workers-zero": ({"TESSERA_WORKERS": "0"}, "TESSERA_WORKERS"),
    "mtls-mode": ({"TESSERA_MTLS_MODE": "sometimes"}, "TESSERA_MTLS_MODE"),
    "trusted-proxies-not-json": ({"TESSERA_TRUSTED_PROXIES": "10.0.0.1"}, "trusted_proxies"),
    "trusted-proxies-bad-net": ({"TESSERA_TRUSTED_PROXIES": '["300.1.2.3/8"]'}, "TESSERA_TRUSTED_PROXIES"),
    "log-level": ({"TESSERA_LOG_LEVEL": "loud"}, "TESSERA_LOG_LEVEL"),
    "database-url-garbage": ({"TESSERA_DATABASE_URL": "not a url"}, "TESSERA_DATABASE_URL"),
    "redis-url-scheme": ({"TESSERA_REDIS_URL": "http://127.0.0.1:6379"}, "TESSERA_REDIS_URL"),
    "max-body-too-small": ({"TESSERA_MAX_BODY_BYTES": "10"}, "TESSERA_MAX_BODY_BYTES"),
    "signing-alg": ({"TESSERA_SIGNING_ALG": "HS256"}, "TESSERA_SIGNING_ALG"),
    "wrong-kek": ({"TESSERA_KEK": WRONG_KEK}, "key-encryption key"),
    "wrong-pepper": ({"TESSERA_PEPPER": WRONG_PEPPER}, "pepper"),
}
#: The row that also runs as a real ``tessera serve`` process: a wrong KEK, found by opening the
#: home's keys, past the settings (the secret must not show in the process's output either).
SERVE_PROCESS_ROWS = {"wrong-kek"}
#: ... and as a real admin command: a KEK of the wrong length (the one that used to be echoed).
ADMIN_PROCESS_ROWS = {"kek-wrong-length"}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_row_45_serve_refuses_a_bad_value_in_one_line(home, case):
    env, says = BAD_VALUES[case]
    port = free_port()
    # --port would win over a bad TESSERA_PORT (flags win over the environment)
    flags = () if "TESSERA_PORT" in env else ("--port", str(port))
    proc = tessera(home, "serve", *flags, env=env, timeout=60, process=case in SERVE_PROCESS_ROWS)
    assert_one_line_refusal(
        proc, secrets=tuple(v for k, v in env.items() if k in ("TESSERA_KEK", "TESSERA_PEPPER")), says=says
    )
    with pytest.raises(OSError):  # nothing listens: it never started
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()


@pytest.mark.parametrize("case", ["kek-wrong-length", "pepper-short", "port-not-a-number", "wrong-pepper"])
def test_row_45_admin_commands_refuse_a_bad_value_in_one_line(home, case):
    env, says = BAD_VALUES[case]
    proc = tessera(home, "clients", "list", "--json", env=env, process=case in ADMIN_PROCESS_ROWS)
    assert_one_line_refusal(
        proc, secrets=tuple(v for k, v in env.items() if k in ("TESSERA_KEK", "TESSERA_PEPPER")), says=says
    )


def test_row_45_wrong_kek_never_seals_new_keys(home):
    before = tessera(home, "jwks", "list", "--json")
    proc = tessera(home, "jwks", "rotate", env={"TESSERA_KEK": WRONG_KEK})
    assert_one_line_refusal(proc, secrets=(WRONG_KEK,), says="key-encryption key")
    assert tessera(home, "jwks", "list", "--json").stdout == before.stdout


def test_row_45_wrong_kek_at_certs_sign(home, tmp_path):
    from tests.support.live import make_csr

    client = tessera(home, "clients", "create", "--name", "x", "--json")
    assert client.returncode == 0, client.stderr
    import json

    csr, _key = make_csr(tmp_path, key_type="ec")  # the CSR is not what is tested: a cheap key
    proc = tessera(
        home,
        "certs",
        "sign",
        "--client",
        json.loads(client.stdout)["client_id"],
        "--csr",
        str(csr),
        "--out",
        str(tmp_path / "c.pem"),
        env={"TESSERA_KEK": WRONG_KEK},
    )
    assert_one_line_refusal(proc, secrets=(WRONG_KEK,), says="key-encryption key")
    assert not (tmp_path / "c.pem").exists()


def test_row_45_malformed_tessera_toml(tmp_path):
    assert tessera(tmp_path / "home", "init").returncode == 0
    cfg = tmp_path / "home" / "tessera.toml"
    cfg.write_text(cfg.read_text() + "port = [unterminated\n")
    assert_one_line_refusal(tessera(tmp_path / "home", "clients", "list", process=True), says="tessera.toml")


def test_row_45_init_with_a_bad_kek_writes_nothing(tmp_path):
    proc = tessera(tmp_path / "home", "init", env={"TESSERA_KEK": BAD_KEK})
    assert_one_line_refusal(proc, secrets=(BAD_KEK,), says="TESSERA_KEK")
    assert not (tmp_path / "home").exists()


def test_the_right_configuration_still_serves(home):
    """The same home, with nothing wrong, starts and answers (the refusals above are not a
    server that never starts)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tessera.cli", "--home", str(home), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=home.parent,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("the server did not start")
    finally:
        proc.terminate()
        proc.wait(15)


# === the home knows its database ===================================================================


def _toml(home: Path) -> dict:
    return tomllib.loads((home / "tessera.toml").read_text())


def test_default_home_records_its_own_sqlite_database(tmp_path):
    home = tmp_path / "home"
    assert tessera(home, "init").returncode == 0
    assert _toml(home)["database_url"] == "sqlite:///tessera.db"  # relative: the home's own file
    # The home may move: its database moves with it.
    moved = tmp_path / "elsewhere"
    home.rename(moved)
    listed = tessera(moved, "jwks", "list", "--json")
    assert listed.returncode == 0 and '"keys"' in listed.stdout, listed.stderr
    # Another database named in the environment: refused, nothing written anywhere.
    other = tmp_path / "other.db"
    proc = tessera(
        moved, "clients", "create", "--name", "x", "--json", env={"TESSERA_DATABASE_URL": f"sqlite:///{other}"}
    )
    assert_one_line_refusal(proc, says="another database")
    assert not other.exists()
    # The same database spelt differently (absolute path) is the same database.
    same = tessera(
        moved, "clients", "list", "--json", env={"TESSERA_DATABASE_URL": f"sqlite:///{moved / 'tessera.db'}"}
    )
    assert same.returncode == 0, same.stderr


def test_init_database_url_is_recorded_and_enforced_on_postgres(tmp_path, postgres_server):
    url = postgres_server.create_database("recorded_home")
    other = postgres_server.create_database("another_db")
    home = tmp_path / "home"
    with_password = url.replace("://postgres@", "://postgres:s3cr3t-pw@")  # trust auth: the password is not needed
    assert with_password != url
    init = tessera(home, "init", "--database-url", with_password, "--json")
    assert init.returncode == 0, init.stderr
    assert "s3cr3t-pw" not in init.stdout + init.stderr
    assert "s3cr3t-pw" not in (home / "tessera.toml").read_text()
    assert _toml(home)["database_url"] == url

    # TESSERA_DATABASE_URL unset: the recorded database; the client lands in PostgreSQL.
    created = tessera(home, "clients", "create", "--name", "pg", "--json")
    assert created.returncode == 0, created.stderr
    assert not (home / "tessera.db").exists(), "a SQLite database was created beside a PostgreSQL home"
    import json

    import psycopg

    client_id = json.loads(created.stdout)["client_id"]
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        assert conn.execute("SELECT count(*) FROM clients WHERE client_id = %s", (client_id,)).fetchone()[0] == 1

    # The same URL with its password: fine. Another database, or SQLite: refused, nothing written.
    assert tessera(home, "clients", "list", "--json", env={"TESSERA_DATABASE_URL": with_password}).returncode == 0
    for wrong in (other, f"sqlite:///{home / 'tessera.db'}"):
        proc = tessera(home, "clients", "create", "--name", "x", "--json", env={"TESSERA_DATABASE_URL": wrong})
        assert_one_line_refusal(proc, secrets=("s3cr3t-pw",), says="another database")
        proc = tessera(home, "serve", "--port", str(free_port()), env={"TESSERA_DATABASE_URL": wrong})
        assert_one_line_refusal(proc, says="another database")
    assert not (home / "tessera.db").exists()
    with psycopg.connect(other.replace("postgresql+psycopg://", "postgresql://")) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'clients'").fetchone()[0] == 0


def test_init_refuses_two_different_databases(tmp_path):
    proc = tessera(
        tmp_path / "home",
        "init",
        "--database-url",
        f"sqlite:///{tmp_path / 'a.db'}",
        env={"TESSERA_DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}"},
    )
    assert_one_line_refusal(proc, says="different databases")
    assert not (tmp_path / "home").exists()


def test_unreachable_database_is_one_line_and_init_leaves_no_half_home(tmp_path):
    home = tmp_path / "home"
    url = f"postgresql+psycopg://nobody:pw-not-shown@127.0.0.1:{free_port()}/nothing"
    proc = tessera(home, "init", "--database-url", url, process=True)
    assert_one_line_refusal(proc, secrets=("pw-not-shown",), says="cannot open the database")
    assert not home.exists()  # a retry with the right URL is not refused as "already a home"
