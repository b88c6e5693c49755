"""Shared fixtures: a live ``tessera serve`` on loopback, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import secrets

import pytest

from tests.support.live import LiveServer

pytest_plugins = ["tests.support.postgres"]

#: Tests that measure time or CPU (constant-time comparisons, rate windows, a CPU attribution, a
#: fuzzing run with a hard time bound). ``make test`` runs them alone, after the parallel run of
#: everything else (``-m serial``), so that the suite's own workers do not skew what they measure.
SERIAL = (
    "tests/jose/test_nested.py::test_kidless_failures_do_not_tell_which_key_was_right",
    "tests/jose/test_nested.py::test_bad_padding_and_bad_tag_take_similar_time",
    "tests/storage/test_notices.py::test_sqlite_changed_is_cheap",
    "tests/security/test_credentials.py::test_row_31_compared_in_constant_time",
    "tests/core/test_ratelimit.py::test_redis_rate_refills_on_redis_time",
    "tests/core/test_ratelimit.py::test_rate_hot_path_costs_a_few_microseconds",
    "tests/web/test_observability.py::test_readyz_ready",
    "tests/faults/test_rate_limits.py::test_limits_are_shared_through_redis_and_fall_back_to_each_process_without_it",
    "tests/faults/test_rate_limits.py::test_per_address_limit",
    "tests/bench/test_harness.py::test_procacct_attributes_a_childs_cpu_to_its_group",
    "tests/security/test_fuzz.py::test_schemathesis_finds_no_server_error_and_no_schema_break",
)


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if item.nodeid.split("[", 1)[0] in SERIAL:
            item.add_marker(pytest.mark.serial)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory) -> LiveServer:
    """One server per test module, on SQLite."""
    server = LiveServer(tmp_path_factory.mktemp("live")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def db_live_server(request, tmp_path_factory) -> LiveServer:
    """One server per test module and database backend: the same tests run on both."""
    url = None
    if request.param == "postgres":
        pg = request.getfixturevalue("postgres_server")
        url = pg.create_database(f"live_{secrets.token_hex(6)}")
    server = LiveServer(tmp_path_factory.mktemp(f"live-{request.param}"), database_url=url).start()
    server.backend = request.param
    yield server
    server.stop()


@pytest.fixture(scope="module")
def address_lock_server(tmp_path_factory) -> LiveServer:
    """A server whose per-address brute-force lock is reachable in a test (5 failures)."""
    server = LiveServer(tmp_path_factory.mktemp("address-lock"), env={"TESSERA_LOGIN_MAX_FAILURES_PER_ADDRESS": "5"}).start()
    yield server
    server.stop()
