"""Shared fixtures: a live ``tessera serve`` on loopback, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import secrets

import pytest

from tests.support.live import LiveServer
from tests.support.serial import SERIAL

pytest_plugins = ["tests.support.postgres"]

#: Fixtures that start a process (tessera serve, PostgreSQL, Redis, nginx): a test that uses one is
#: ``slow`` whether or not its module says so, and ``make test-fast`` stays in process.
PROCESS_FIXTURES = frozenset(
    {
        "live_server",
        "db_live_server",
        "address_lock_server",
        "postgres_server",
        "postgres_url",
        "redis_server",
        "redis_url",
    }
)
#: Modules whose tests start processes by hand (the tessera CLI, tessera serve, openssl, mypy).
PROCESS_MODULES = ("tests/security/test_configuration_errors.py", "tests/sdk/test_typing.py")


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if item.nodeid.split("[", 1)[0] in SERIAL:
            item.add_marker(pytest.mark.serial)
        if (
            PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            or item.nodeid.startswith(PROCESS_MODULES)
            or item.get_closest_marker("postgres") is not None
        ):
            item.add_marker(pytest.mark.slow)


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
    server = LiveServer(
        tmp_path_factory.mktemp("address-lock"), env={"TESSERA_LOGIN_MAX_FAILURES_PER_ADDRESS": "5"}
    ).start()
    yield server
    server.stop()
