"""Single-use artefacts are single-use under concurrency, on SQLite and on PostgreSQL.

Each race: 20 threads, each with its own TLS connection (opened before the start), released
together by a barrier, all presenting the same request_uri / authorization code / assertion
jti. Exactly one wins. Every race runs three times: on the shared one-worker server of each
database (``db_live_server``), and on a server with three worker processes per database, where
the racers really run at once across processes. A last test races two exchanges of one code
and checks that the winner's token is revoked whatever the order (the loser is a replay).
"""

from __future__ import annotations

import os
import secrets
import time

import pytest
from argon2 import PasswordHasher

from tessera.core.models import Merchant, MerchantUser, Terminal
from tests.e2e.nexi_helpers import (
    assert_error,
    build_assertion,
    count_artifacts,
    exchange,
    get_token,
    http,
    login,
    login_for_code,
    par_form,
    par_request,
    pkce_pair,
    push,
    race,
)
from tests.support.live import LiveServer, MerchantSetup

pytestmark = [pytest.mark.slow]

N = 20
ROUNDS = range(3)
#: The race is about the request_uri, not about argon2: the merchant users of these tests get
#: a valid but cheap argon2id hash, so 20 concurrent logins do not cost 20 x 64 MiB x 3 passes.
_CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def race_merchant(server: LiveServer, app) -> MerchantSetup:
    mid = secrets.randbelow(10**9) + 1
    m = MerchantSetup(mid, f"POS{mid}", f"S{mid}", f"M{mid}", f"race{mid}@shop.example", "race password")
    now = int(time.time())
    server.store.create_merchant(Merchant(mid, f"Race shop {mid}", None, now))
    server.store.add_terminal(Terminal(m.softpos_tid, mid, m.pos, "softpos"))
    server.store.add_terminal(Terminal(m.mpos_tid, mid, m.pos, "mpos"))
    server.store.add_user(MerchantUser(m.username, mid, _CHEAP.hash(m.password)))
    server.store.grant(mid, app.client_id, now)
    return m


# =============================================================================================
# the races
# =============================================================================================


def request_uri_race(server: LiveServer, app) -> None:
    merchant = race_merchant(server, app)
    uri = push(server, app, merchant)
    codes_before = count_artifacts(server, "authorization_code", app.client_id)

    results = race(
        N, lambda: http(server, cert=None), lambda c: login(c, app, uri, merchant.username, merchant.password)
    )

    won = [r for r in results if r.status_code == 303]
    assert len(won) == 1, sorted(r.status_code for r in results)
    assert won[0].headers["location"].startswith(app.redirect_uri + "?code=")
    for r in results:
        if r is not won[0]:
            assert r.status_code == 400 and "<code>invalid_request_uri</code>" in r.text, (r.status_code, r.text[:200])
    assert count_artifacts(server, "authorization_code", app.client_id) == codes_before + 1


def authorization_code_race(server: LiveServer, app) -> None:
    merchant = race_merchant(server, app)
    verifier, challenge = pkce_pair()
    code = login_for_code(server, app, merchant, push(server, app, merchant, code_challenge=challenge))

    results = race(N, lambda: http(server, app), lambda c: exchange(c, app, code, code_verifier=verifier))

    won = [r for r in results if r.status_code == 200]
    assert len(won) == 1, sorted(r.status_code for r in results)
    for r in results:
        if r is not won[0]:
            assert_error(r, 400, "invalid_grant")
    assert len([e for e in server.store.list_enrollments() if e.username == merchant.username]) == 1

    # Every loser was a replay of the code: what the winner got is revoked (RFC 6749 §4.1.2).
    token = won[0].json()["access_token"]
    a = build_assertion(server, app, merchant)
    with http(server, app) as c:
        assert_error(par_request(c, token, par_form(app, a.token)), 401, "invalid_token")


def code_replay_pair(server: LiveServer, app, token: str, rounds: int) -> None:
    """Two exchanges of one code at once, again and again: whichever order the database
    serialises them in, the token of the winner ends up revoked (the loser was a replay)."""
    survived = 0
    for _ in range(rounds):
        merchant = race_merchant(server, app)
        verifier, challenge = pkce_pair()
        code = login_for_code(server, app, merchant, push(server, app, merchant, token=token, code_challenge=challenge))

        def exchange_this(c, code=code, verifier=verifier):
            return exchange(c, app, code, code_verifier=verifier)

        results = race(2, lambda: http(server, app), exchange_this)
        won = [r for r in results if r.status_code == 200]
        assert len(won) == 1, [r.status_code for r in results]
        a = build_assertion(server, app, merchant)
        with http(server, app) as c:
            r = par_request(c, won[0].json()["access_token"], par_form(app, a.token))
        survived += r.status_code != 401
    assert survived == 0, f"{survived}/{rounds} winners of a replayed code kept a live token"


def assertion_jti_race(server: LiveServer, app, token: str) -> None:
    merchant = race_merchant(server, app)
    a = build_assertion(server, app, merchant)
    form = par_form(app, a.token)
    pushed_before = count_artifacts(server, "request_uri", app.client_id)

    results = race(N, lambda: http(server, app), lambda c: par_request(c, token, form))

    won = [r for r in results if r.status_code == 201]
    assert len(won) == 1, sorted(r.status_code for r in results)
    for r in results:
        if r is not won[0]:
            body = assert_error(r, 400, "invalid_client")  # an assertion problem at the PAR: 400, as Nexi answers
            assert "jti" in body.get("error_description", ""), body
    assert count_artifacts(server, "request_uri", app.client_id) == pushed_before + 1


# =============================================================================================
# one worker process (the shared db_live_server fixture): SQLite and PostgreSQL
# =============================================================================================


@pytest.fixture(scope="module")
def env(db_live_server):
    server = db_live_server
    app = server.new_app()
    return server, app, get_token(server, app)


#: db_live_server's own parameters, with the PostgreSQL one marked (``-m "not postgres"`` works).
on_both_databases = pytest.mark.parametrize(
    "db_live_server", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True, scope="module"
)


@on_both_databases
@pytest.mark.parametrize("round_", ROUNDS)
def test_request_uri_race(env, round_):
    server, app, _ = env
    request_uri_race(server, app)


@on_both_databases
@pytest.mark.parametrize("round_", ROUNDS)
def test_authorization_code_race(env, round_):
    server, app, _ = env
    authorization_code_race(server, app)


@on_both_databases
@pytest.mark.parametrize("round_", ROUNDS)
def test_assertion_jti_race(env, round_):
    server, app, token = env
    assertion_jti_race(server, app, token)


# =============================================================================================
# several worker processes: the racers really run at once, across processes
# =============================================================================================


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return kids


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def multi_env(request, tmp_path_factory):
    url = None
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_server").create_database(f"races_{secrets.token_hex(6)}")
    server = LiveServer(
        tmp_path_factory.mktemp(f"races-{request.param}"), database_url=url, env={"TESSERA_WORKERS": "3"}
    ).start()
    try:
        deadline = time.monotonic() + 30
        while len(_children(server.proc.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(_children(server.proc.pid)) >= 3, "the server did not start three workers"
        app = server.new_app()
        yield server, app, get_token(server, app)
    finally:
        server.stop()


@pytest.mark.parametrize("round_", ROUNDS)
def test_request_uri_race_workers(multi_env, round_):
    server, app, _ = multi_env
    request_uri_race(server, app)


@pytest.mark.parametrize("round_", ROUNDS)
def test_authorization_code_race_workers(multi_env, round_):
    server, app, _ = multi_env
    authorization_code_race(server, app)


@pytest.mark.parametrize("round_", ROUNDS)
def test_assertion_jti_race_workers(multi_env, round_):
    server, app, token = multi_env
    assertion_jti_race(server, app, token)


def test_code_replay_pair_race_workers(multi_env):
    server, app, token = multi_env
    code_replay_pair(server, app, token, rounds=6)
