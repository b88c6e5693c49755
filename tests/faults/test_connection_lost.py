"""The database going away in the middle of a statement: ``StoreUnavailable`` (503), never a 500.

The outage test (test_outages.py) stops PostgreSQL while a prober runs, and once answered a
500: a connection the server dropped *between* the pool's check and the statement made
SQLAlchemy invalidate it, and the store's transaction then touched ``Connection.info``,
which raises ``PendingRollbackError`` on an invalidated connection. That window is a few
microseconds wide, so the outage test met it about once in a few hundred requests.

Here the window is opened on purpose, every time: a hook kills the connection's backend
(``pg_terminate_backend``) right before the statement runs. Each store path of the token
endpoints (SQLAlchemy Core reads and writes, the raw hot path) must raise
``StoreUnavailable``, and the store must work again on the next call.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import event

from tessera.core.models import Artifact, Merchant
from tessera.core.ports import StoreUnavailable
from tessera.errors import ServiceUnavailable
from tessera.storage import migrate
from tessera.storage.sql import SQLStore
from tessera.web.errors import as_oauth_error, database_gone

pytestmark = [pytest.mark.postgres]
NOW = int(time.time())


class KillNextStatement:
    """Terminate the backend of the connection that is about to run the next statement."""

    def __init__(self, store: SQLStore, url: str):
        self.store, self.armed = store, False
        self.admin = psycopg.connect(
            store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True
        )
        event.listen(store.engine, "before_cursor_execute", self.before)

    def before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if not self.armed:
            return
        self.armed = False
        pid = conn.connection.dbapi_connection.info.backend_pid
        self.admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))

    def close(self) -> None:
        event.remove(self.store.engine, "before_cursor_execute", self.before)
        self.admin.close()


@pytest.fixture
def store(postgres_url):
    s = SQLStore(postgres_url)
    migrate.upgrade(s.engine)
    s.create_merchant(Merchant(7, "Shop", None, NOW))
    yield s
    s.close()


CALLS = {
    "read (get_api_key)": lambda s: s.get_api_key(7, 1),
    "read (get_client)": lambda s: s.get_client("nobody"),
    "write (add_event)": lambda s: s.add_event("test", None, {}, NOW),
    "write (update_artifact_data)": lambda s: s.update_artifact_data("request_uri", "k", {"a": 1}),
    "read (list_server_keys)": lambda s: s.list_server_keys(),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_a_connection_killed_before_its_statement_is_store_unavailable(store, postgres_url, name):
    call = CALLS[name]
    killer = KillNextStatement(store, postgres_url)
    try:
        call(store)  # a pooled connection exists
        killer.armed = True
        with pytest.raises(StoreUnavailable):
            call(store)
        assert not killer.armed
    finally:
        killer.close()
    call(store)  # the pool replaced the connection: the store works again


def test_the_raw_hot_path_too(store, postgres_url):
    store.put_artifact(Artifact("request_uri", "k", "c", {}, NOW + 60))
    killer = KillNextStatement(store, postgres_url)
    try:
        # The raw path bypasses SQLAlchemy's execute events: kill the pooled connection's backend directly.
        with store.engine.connect() as c:
            pid = c.connection.dbapi_connection.info.backend_pid
        killer.admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
        for _ in range(3):  # whichever pooled connection is taken: a dead one is replaced, or the call is a 503
            try:
                assert store.get_artifact("request_uri", "k") is not None
            except StoreUnavailable:
                pass
    finally:
        killer.close()
    assert store.consume("request_uri", "k", NOW) is not None


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
        __import__("sqlite3").OperationalError("database is locked"),
        __import__("sqlalchemy").exc.PendingRollbackError("Can't reconnect until invalid transaction is rolled back"),
        __import__("sqlalchemy").exc.TimeoutError("QueuePool limit reached"),
    ],
    ids=["admin-shutdown", "server-closed", "sqlite-locked", "pending-rollback", "pool-timeout"],
)
def test_database_errors_that_escape_the_store_are_503_not_500(exc):
    assert database_gone(exc)
    err = as_oauth_error(exc)
    assert isinstance(err, ServiceUnavailable) and err.status == 503 and err.headers["Retry-After"] == "1"


def test_other_errors_stay_500():
    assert not database_gone(psycopg.errors.UniqueViolation("duplicate"))
    assert as_oauth_error(ValueError("bug")).status == 500


def test_the_503_log_line_carries_the_drivers_message_not_the_statement():
    import sqlalchemy.exc
    from structlog.testing import capture_logs

    exc = sqlalchemy.exc.OperationalError(
        "SELECT key_hash FROM api_keys WHERE merchant_id = %(m)s",
        {"m": "4242-secret"},
        psycopg.OperationalError("server closed the connection unexpectedly\n\tmore"),
    )
    with capture_logs() as logs:
        assert as_oauth_error(exc).status == 503
    (line,) = [entry for entry in logs if entry["event"] == "store_unavailable"]
    assert line["error"] == "server closed the connection unexpectedly"
    assert "SELECT" not in str(line) and "4242-secret" not in str(line)
