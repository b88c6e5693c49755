"""``tessera backup`` and ``tessera restore`` of the embedded SQLite database.

The backup is taken from a live server while it writes (B2BINPAY logins, each storing a
refresh token and its family in one transaction, from several threads) and while another
process writes too; the copy is one consistent snapshot: restored into the stopped server's
home, the refresh tokens issued before the backup started work, those issued after it ended
do not exist. ``restore`` refuses while the server runs, refuses what is not a tessera
database at a known migration or was sealed under another KEK, and upgrades an older one."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest
from alembic import command
from sqlalchemy import create_engine

from tessera.admin import operations
from tessera.admin.clients import RegisterClient, list_clients, register_client
from tessera.admin.compose import open_admin
from tessera.admin.operations import check_tessera_database
from tessera.config import Settings
from tessera.home import init_home
from tessera.storage.migrate import alembic_config, head_revision
from tests.ops.helpers import tessera, tessera_json
from tests.support.live import AppIdentity, LiveServer

pytestmark = pytest.mark.slow

MEDIA = "application/vnd.api+json"
LOGIN, REFRESH = "/b2binpay/token/", "/b2binpay/token/refresh/"


def body(**attributes: str) -> bytes:
    return json.dumps({"data": {"type": "auth-token", "attributes": attributes}}).encode()


class Writers:
    """Threads logging in at the server's B2BINPAY endpoint as fast as it answers; each
    answer names the refresh token the server committed before sending it."""

    def __init__(self, server: LiveServer, app: AppIdentity, threads: int = 3):
        self.server, self.app = server, app
        self.stop = threading.Event()
        #: 0 before the backup, 1 while it runs, 2 after it returned
        self.phase = 0
        self.issued: list[tuple[int, int, str]] = []  # (phase when sent, phase when answered, refresh token)
        self.lock = threading.Lock()
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]

    def run(self) -> None:
        with httpx.Client(base_url=f"https://localhost:{self.server.port}", verify=self.server.ssl_context()) as c:
            while not self.stop.is_set():
                sent = self.phase
                r = c.post(
                    LOGIN,
                    content=body(login=self.app.client_id, password=self.app.client_secret),
                    headers={"Content-Type": MEDIA},
                )
                if r.status_code != 200:
                    self.errors.append(f"{r.status_code} {r.text[:200]}")
                    return
                with self.lock:
                    self.issued.append((sent, self.phase, r.json()["data"]["attributes"]["refresh"]))

    def count(self) -> int:
        with self.lock:
            return len(self.issued)

    def __enter__(self) -> Writers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


def refresh_status(server: LiveServer, token: str) -> int:
    with httpx.Client(base_url=f"https://localhost:{server.port}", verify=server.ssl_context()) as c:
        return c.post(REFRESH, content=body(refresh=token), headers={"Content-Type": MEDIA}).status_code


def test_online_backup_under_writes_restores_a_consistent_snapshot(tmp_path):
    server = LiveServer(
        tmp_path / "server",
        env={"TESSERA_RATE_LIMIT_PER_CREDENTIAL": "0", "TESSERA_RATE_LIMIT_PER_ADDRESS": "0"},
    ).start()
    try:
        app = server.new_app(with_cert=False)
        target = tmp_path / "backups" / "tessera.db"
        target.parent.mkdir()
        with Writers(server, app) as writers:
            while writers.count() < 20 and not writers.errors:
                time.sleep(0.01)
            # this process writes too (its own connection), while the server does
            other = [server.new_app(with_cert=False) for _ in range(3)]
            before = writers.count()
            writers.phase = 1
            result = tessera_json(server.home, "backup", str(target))
            writers.phase = 2
            after = writers.count()
            late_app = server.new_app(with_cert=False)
            while sum(1 for sent, _, _ in writers.issued if sent == 2) < 5 and not writers.errors:
                time.sleep(0.01)
        assert not writers.errors, writers.errors
        assert after > before, "the server wrote while the backup ran"
        assert result["revision"] == head_revision() and result["bytes"] == target.stat().st_size
        assert target.stat().st_mode & 0o077 == 0
        assert check_tessera_database(target) == head_revision()

        # The server runs: restore is refused.
        refused = tessera(server.home, "restore", str(target), check=False)
        assert refused.returncode == 1 and "stop the server first" in refused.stderr, refused.stderr

        server.stop()
        restored = tessera_json(server.home, "restore", str(target))
        assert restored["revision"] == head_revision() and restored["replaced"]
        assert Path(restored["replaced"]).exists()
        server.start()

        issued = writers.issued
        # Answered before the backup began: committed before it, so in the snapshot.
        early = [tok for _, answered, tok in issued if answered == 0]
        # Sent after the backup returned: committed after it, so not in it.
        late = [tok for sent, _, tok in issued if sent == 2]
        assert late and early
        for tok in (early[0], early[-1]):
            assert refresh_status(server, tok) == 200
        for tok in (late[0], late[-1]):
            assert refresh_status(server, tok) == 401
        with httpx.Client(base_url=f"https://localhost:{server.port}", verify=server.ssl_context()) as c:
            for a, expected in [(other[-1], 200), (late_app, 400)]:
                r = c.post(
                    LOGIN, content=body(login=a.client_id, password=a.client_secret), headers={"Content-Type": MEDIA}
                )
                assert r.status_code == expected, r.text
    finally:
        server.stop()


def backup_of(home: Path, target: Path) -> None:
    """A backup made as ``tessera backup`` makes it, in process: the set-up of the tests of
    ``restore`` (the command itself is run above and below)."""
    operations.backup(Settings.load(home), target)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("restore") / "home"
    init_home(home, now=int(time.time()))
    return home


def test_restore_refuses_what_is_not_a_tessera_database(home, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a database")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE t (x)")
    newer = tmp_path / "newer.db"
    backup_of(home, newer)
    with sqlite3.connect(newer) as c:
        c.execute("UPDATE alembic_version SET version_num = '9999'")
    for path, reason in [
        (text, "not an SQLite database"),
        (other, "not a tessera database"),
        (newer, "does not know"),
    ]:
        proc = tessera(home, "restore", str(path), check=False)
        assert proc.returncode == 1 and reason in proc.stderr, (path, proc.stderr)


def test_restore_refuses_a_backup_of_another_home(home, tmp_path):
    stranger = tmp_path / "stranger"
    init_home(stranger, now=int(time.time()))  # its own KEK
    foreign = tmp_path / "foreign.db"
    backup_of(stranger, foreign)
    proc = tessera(home, "restore", str(foreign), check=False)
    assert proc.returncode == 1 and "KEK" in proc.stderr, proc.stderr


def test_restore_upgrades_an_older_backup(home, tmp_path):
    admin = open_admin(Settings.load(home))
    try:
        client_id = register_client(admin, RegisterClient(name="Kept")).client_id
    finally:
        admin.store.close()
    old = tmp_path / "old.db"
    backup_of(home, old)
    engine = create_engine(f"sqlite:///{old}")
    try:
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0002")
    finally:
        engine.dispose()
    assert check_tessera_database(old) == "0002"
    restored = tessera_json(home, "restore", str(old))
    assert restored["restored_revision"] == "0002" and restored["revision"] == head_revision()
    admin = open_admin(Settings.load(home))
    try:
        assert client_id in {c.client_id for c in list_clients(admin)}  # the restored database
    finally:
        admin.store.close()
    # a backup to an existing file is refused unless --force
    again = tessera(home, "backup", str(old), check=False)
    assert again.returncode == 1 and "exists" in again.stderr
    tessera(home, "backup", str(old), "--force")
    assert check_tessera_database(old) == head_revision()


def test_postgres_is_backed_up_with_pg_dump_not_tessera_backup(tmp_path):
    from tessera.admin.errors import Invalid
    from tessera.admin.operations import sqlite_path
    from tessera.config import Settings

    with pytest.raises(Invalid, match="pg_dump"):
        sqlite_path(Settings.load(tmp_path, database_url="postgresql+psycopg://tessera@db.internal/tessera"))
    assert sqlite_path(Settings.load(tmp_path)) == (tmp_path / "tessera.db").resolve()
