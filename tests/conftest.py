"""Shared fixtures: a live ``tessera serve`` on loopback, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import secrets

import pytest

from tests.support.live import LiveServer

pytest_plugins = ["tests.support.postgres"]


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
