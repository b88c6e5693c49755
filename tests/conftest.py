"""Shared fixtures: a live ``tessera serve`` on loopback, on SQLite and on a real PostgreSQL.

A server costs about two CPU seconds to start (the interpreter, the web stack, the home's
keys), so the modules named in ``SHARED_SERVER_MODULES`` share one per test worker and
backend; every other module gets a server of its own (docs/testing.md)."""

from __future__ import annotations

import gc
import secrets

import pytest

from tessera import startup
from tests.support.live import LiveServer
from tests.support.schedule import longest_first
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


#: Modules whose tests share one ``tessera serve`` per pytest worker (``live_server``) and per
#: database backend (``db_live_server``). Each of them works only on clients, merchants,
#: certificates, keys and artefacts it creates itself (random ids), and reads back only those
#: (counts and events filtered by its own client); none rotates the server's keys, changes its
#: settings, stops it, counts its metrics, scans its whole log or database, or lists all of a
#: table. A module that does any of that is left out and gets a server of its own.
SHARED_SERVER_MODULES = frozenset(
    {
        "tests.interop.test_authlib",
        "tests.interop.test_curl",
        "tests.interop.test_openid_client",
        "tests.interop.test_requests_oauthlib",
        "tests.e2e.test_axept",
        "tests.e2e.test_b2binpay",
        "tests.e2e.test_browser_login",
        "tests.e2e.test_mobilepay",
        "tests.e2e.test_native",
        "tests.e2e.test_native_security",
        "tests.e2e.test_nexi_authorize",
        "tests.e2e.test_nexi_par",
        "tests.e2e.test_nexi_token",
        "tests.e2e.test_profile_seal",
        "tests.e2e.test_races",
        "tests.e2e.test_refresh_races",
        "tests.e2e.test_revocation_cache",
        "tests.e2e.test_smoke",
        "tests.security.test_assertions",
        "tests.security.test_mtls_certs",
        "tests.security.test_par_codes",
        "tests.security.test_revocation_everywhere",
        "tests.security.test_strict_input",
    }
)


def pytest_configure(config) -> None:
    # Collection imports every test module (and most of tessera): only the youngest generation is
    # collected meanwhile, as in a ``tessera`` process's start (tessera/startup.py).
    startup.defer()
    keep_collection_order(config.option)


def keep_collection_order(option) -> None:
    """``--dist loadscope`` hands out the modules in collection order, the longest first
    (tests/support/schedule.py): pytest-xdist 3 would hand them out by number of tests, most
    first, unless ``--no-loadscope-reorder``, and the long modules of few tests (the walkthroughs,
    the schemathesis run, the flood) then ran last while the other workers had nothing to do."""
    if hasattr(option, "loadscopereorder"):
        option.loadscopereorder = False


def pytest_collection_finish(session) -> None:
    gc.collect()  # collection's garbage is freed (once per worker), not frozen
    startup.settle()


def pytest_collection_modifyitems(config, items) -> None:
    longest_first(items)
    for item in items:
        if item.nodeid.split("[", 1)[0] in SERIAL:
            item.add_marker(pytest.mark.serial)
        if (
            PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            or item.nodeid.startswith(PROCESS_MODULES)
            or item.get_closest_marker("postgres") is not None
        ):
            item.add_marker(pytest.mark.slow)


def _start(request, tmp_path_factory, backend: str) -> LiveServer:
    url = None
    if backend == "postgres":
        pg = request.getfixturevalue("postgres_server")
        url = pg.create_database(f"live_{secrets.token_hex(6)}")
    server = LiveServer(tmp_path_factory.mktemp(f"live-{backend}"), database_url=url).start()
    server.backend = backend
    return server


@pytest.fixture(scope="session")
def shared_sqlite_server(request, tmp_path_factory) -> LiveServer:
    """The server the ``SHARED_SERVER_MODULES`` share on this worker, on SQLite."""
    server = _start(request, tmp_path_factory, "sqlite")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def shared_postgres_server(request, tmp_path_factory) -> LiveServer:
    """The server the ``SHARED_SERVER_MODULES`` share on this worker, on PostgreSQL."""
    server = _start(request, tmp_path_factory, "postgres")
    yield server
    server.stop()


def _server(request, tmp_path_factory, backend: str) -> LiveServer:
    if request.module.__name__ in SHARED_SERVER_MODULES:
        yield request.getfixturevalue(f"shared_{backend}_server")
        return
    server = _start(request, tmp_path_factory, backend)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live_server(request, tmp_path_factory) -> LiveServer:
    """One server per test module (or per worker: ``SHARED_SERVER_MODULES``), on SQLite."""
    yield from _server(request, tmp_path_factory, "sqlite")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def db_live_server(request, tmp_path_factory) -> LiveServer:
    """One server per test module (or per worker: ``SHARED_SERVER_MODULES``) and database
    backend: the same tests run on both."""
    yield from _server(request, tmp_path_factory, request.param)


@pytest.fixture(scope="module")
def address_lock_server(tmp_path_factory) -> LiveServer:
    """A server whose per-address brute-force lock is reachable in a test (5 failures)."""
    server = LiveServer(
        tmp_path_factory.mktemp("address-lock"), env={"TESSERA_LOGIN_MAX_FAILURES_PER_ADDRESS": "5"}
    ).start()
    yield server
    server.stop()
