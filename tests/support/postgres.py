"""A throwaway PostgreSQL server for the tests, and the pytest fixtures that use it.

The test set-up starts its own cluster on 127.0.0.1, on a free port, in a temporary
directory, and removes it afterwards; it never touches a system cluster.  The server
binaries are discovered (``find_pg_bin``); ``scripts/install-test-deps.sh`` installs
them on Debian.

PostgreSQL refuses to run as root.  When the tests run as root (CI does), ``initdb``
and ``pg_ctl`` run as the ``postgres`` system user (created by the Debian package)
through ``runuser -u postgres --``, and the temporary directory is chowned to it.

Use as a plugin: ``pytest_plugins = ["tests.support.postgres"]`` gives the fixtures
``postgres_server`` (one server per test session) and ``postgres_url`` (a fresh
database per test, dropped afterwards).

Safety nets so that a crashed run leaves no server behind: ``stop()`` is idempotent
and registered with ``atexit``; and a small watchdog process, started with the server,
stops it and removes its directory if the test process dies without running atexit
hooks (SIGKILL, ``os._exit``).
"""

from __future__ import annotations

import atexit
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = [
    "PostgresError",
    "PostgresServer",
    "find_pg_bin",
    "require_pg_bin",
    "postgres_server",
    "postgres_url",
    "migrated_postgres_url",
]

#: Environment variable naming a directory with initdb/pg_ctl/postgres; wins over discovery.
PG_BIN_ENV = "TESSERA_PG_BIN"
#: The PostgreSQL superuser role of the test cluster (trust auth, so no password).
SUPERUSER = "postgres"
#: The OS user that owns the cluster when the tests run as root.
ROOT_OS_USER = "postgres"

INITDB_TIMEOUT = 120.0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
# Longest path Linux accepts for a unix socket (sun_path is 108 bytes with the NUL).
_MAX_SOCKET_PATH = 107


class PostgresError(RuntimeError):
    """The test PostgreSQL server could not be set up, started or used."""


# ---------------------------------------------------------------------------------
# Finding the binaries
# ---------------------------------------------------------------------------------

_REQUIRED = ("initdb", "pg_ctl", "postgres")


def _is_bindir(path: Path | str | None) -> bool:
    if not path:
        return False
    p = Path(path)
    return all(os.access(p / name, os.X_OK) and (p / name).is_file() for name in _REQUIRED)


def _version_key(bindir: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin -> (15,); 9.6 -> (9, 6)
    nums = re.findall(r"\d+", bindir.parent.name)
    return tuple(int(n) for n in nums) or (0,)


def find_pg_bin() -> Path | None:
    """Return the directory holding initdb, pg_ctl and postgres, or None.

    Order: ``$TESSERA_PG_BIN``; the directory of ``initdb`` on PATH; ``pg_config
    --bindir``; the highest version among ``/usr/lib/postgresql/*/bin`` (Debian and
    Ubuntu).  Each candidate must hold all three programs.
    """
    override = os.environ.get(PG_BIN_ENV)
    if override:
        return Path(override).resolve() if _is_bindir(override) else None

    on_path = shutil.which("initdb")
    if on_path and _is_bindir(Path(on_path).resolve().parent):
        return Path(on_path).resolve().parent

    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if _is_bindir(out):
            return Path(out).resolve()

    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found = [p for p in found if _is_bindir(p)]
    if found:
        return max(found, key=_version_key)
    return None


# ---------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env() -> dict[str, str]:
    """The caller's environment without PG* variables (they would redirect the tools)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    env.pop("LANGUAGE", None)
    return env


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no server log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); look at its state.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _others_can_traverse(path: Path) -> bool:
    """Whether every directory from / down to ``path`` is searchable by other users."""
    try:
        p = path.resolve()
        return all(os.stat(d).st_mode & 0o001 for d in [p, *p.parents])
    except OSError:
        return False


def _runuser_prefix(user: str) -> list[str]:
    for cand in (shutil.which("runuser"), "/usr/sbin/runuser", "/sbin/runuser"):
        if cand and os.access(cand, os.X_OK):
            return [cand, "-u", user, "--"]
    return []  # fall back to subprocess(user=...) below


# The watchdog: blocks on its stdin (a pipe whose only writer is the test process);
# at EOF, i.e. when the test process has gone, it stops the server if it still runs
# and removes the directory.  After a normal stop() there is nothing left to do.
_WATCHDOG = r"""
import json, os, shutil, subprocess, sys
data, workdir, cmd = json.loads(os.environ.pop("TESSERA_PG_WATCHDOG"))
try:
    sys.stdin.buffer.read()
except BaseException:
    pass
if os.path.exists(os.path.join(data, "postmaster.pid")):
    for mode in ("fast", "immediate"):
        try:
            r = subprocess.run(cmd + ["stop", "-D", data, "-m", mode, "-w", "-t", "20"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=40, cwd="/")
            if r.returncode == 0:
                break
        except Exception:
            pass
shutil.rmtree(workdir, ignore_errors=True)
"""


# ---------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1, in a temp dir, on a free port.

    ``base_dir`` is where the temporary directory is made (default: the system temp
    dir); only the temporary directory is removed by ``stop()``.
    """

    def __init__(
        self,
        base_dir: Path | None = None,
        *,
        bindir: Path | None = None,
        max_connections: int = 200,
        dbname: str = "tessera_test",
        durable: bool = False,
    ) -> None:
        """``durable=False`` (the tests): fsync, synchronous_commit and full_page_writes off,
        fast and throwaway. ``durable=True`` (the benchmarks): PostgreSQL's own safe defaults,
        every commit flushed to disk before it is acknowledged."""
        self.durable = durable
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self._bindir = Path(bindir) if bindir is not None else None
        self.max_connections = max_connections
        self.dbname = dbname
        #: A database at the migrations' head that tests/support/migrated.py copies (made on first use).
        self.migrated_template: str | None = None
        self.user = SUPERUSER
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.workdir: Path | None = None
        self.datadir: Path | None = None
        self.logfile: Path | None = None
        self.socket_dir: Path | None = None
        self.url: str = ""
        self.start_seconds: float | None = None
        self.stop_seconds: float | None = None
        self._os_user: pwd.struct_passwd | None = None
        self._prefix: list[str] = []
        self._running = False
        self._lock = threading.RLock()
        self._owner_pid: int | None = None
        self._watchdog: subprocess.Popen | None = None
        self._watchdog_w: int | None = None

    # -- context manager -----------------------------------------------------------

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"<PostgresServer {state} port={self.port} dir={self.workdir}>"

    @property
    def running(self) -> bool:
        return self._running

    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            found = find_pg_bin()
            if found is None:
                raise PostgresError(
                    "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found; "
                    "run scripts/install-test-deps.sh or set " + PG_BIN_ENV
                )
            self._bindir = found
        return self._bindir

    # -- running the tools ---------------------------------------------------------

    def _run(self, args: list[str], timeout: float, what: str) -> subprocess.CompletedProcess:
        """Run a PostgreSQL tool as the cluster's owner; raise PostgresError on failure."""
        kwargs: dict = {}
        cmd = list(args)
        if self._os_user is not None:
            if self._prefix:
                cmd = self._prefix + cmd
            else:
                kwargs.update(user=self._os_user.pw_uid, group=self._os_user.pw_gid, extra_groups=[])
        try:
            proc = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=_clean_env(),
                cwd=str(self.workdir) if self.workdir else "/",
                **kwargs,
            )
        except subprocess.TimeoutExpired as exc:
            raise PostgresError(
                f"{what} did not finish within {timeout:.0f}s: {' '.join(cmd)}\n"
                f"--- server log ({self.logfile}) ---\n{self._log_tail()}"
            ) from exc
        except OSError as exc:
            raise PostgresError(f"{what} could not run: {' '.join(cmd)}: {exc}") from exc
        if proc.returncode != 0:
            raise PostgresError(
                f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                f"--- stdout ---\n{proc.stdout.strip()}\n--- stderr ---\n{proc.stderr.strip()}\n"
                f"--- server log ({self.logfile}) ---\n{self._log_tail()}"
            )
        return proc

    def _log_tail(self) -> str:
        return _tail(self.logfile) if self.logfile else "(no server log)"

    def _tool(self, name: str) -> str:
        return str(self.bindir / name)

    # -- start ---------------------------------------------------------------------

    def start(self) -> None:
        """initdb, pg_ctl start -w, create the default test database."""
        with self._lock:
            if self._running:
                return
            t0 = time.monotonic()
            bindir = self.bindir  # raises a clear error if nothing is installed
            try:
                self._prepare_dirs()
                self._initdb()
                self._start_server()
                self._start_watchdog(bindir)
                self.url = self.create_database(self.dbname)
            except BaseException:
                self._teardown()
                raise
            self.start_seconds = time.monotonic() - t0

    def _prepare_dirs(self) -> None:
        if os.geteuid() == 0:
            try:
                self._os_user = pwd.getpwnam(ROOT_OS_USER)
            except KeyError:
                raise PostgresError(
                    "running as root, but PostgreSQL refuses to run as root and there is no "
                    f"'{ROOT_OS_USER}' system user to run it as; install the Debian "
                    "'postgresql' package (scripts/install-test-deps.sh) or run as a normal user"
                ) from None
            self._prefix = _runuser_prefix(ROOT_OS_USER)
        else:
            self._os_user = None
            self._prefix = []

        parent = self.base_dir
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
        elif self._os_user is not None and not _others_can_traverse(Path(tempfile.gettempdir())):
            parent = Path("/tmp")  # e.g. TMPDIR under /root: the postgres user can't get in
        self.workdir = Path(tempfile.mkdtemp(prefix="tessera-pg-", dir=parent)).resolve()
        self.datadir = self.workdir / "data"
        self.logfile = self.workdir / "server.log"
        self.socket_dir = self.workdir
        # The socket path must fit sun_path; fall back to a short dir under /tmp.
        if len(str(self.socket_dir / ".s.PGSQL.65535")) > _MAX_SOCKET_PATH:
            self.socket_dir = Path(tempfile.mkdtemp(prefix="tpg-", dir="/tmp"))
        if self._os_user is not None:
            uid, gid = self._os_user.pw_uid, self._os_user.pw_gid
            for d in {self.workdir, self.socket_dir}:
                os.chown(d, uid, gid)
                os.chmod(d, 0o700)
            # The postgres user must be able to reach the directory (e.g. not under /root).
            probe = subprocess.run(
                (self._prefix or []) + ["test", "-w", str(self.workdir), "-a", "-x", str(self.workdir)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env=_clean_env(),
                cwd="/",
                timeout=30,
                **({} if self._prefix else {"user": uid, "group": gid, "extra_groups": []}),
            )
            if probe.returncode != 0:
                raise PostgresError(
                    f"the '{ROOT_OS_USER}' user cannot reach {self.workdir} (a parent directory "
                    "is not traversable by it); pass a base_dir it can reach, such as /tmp"
                )

    def _initdb(self) -> None:
        assert self.datadir is not None and self.workdir is not None
        self._run(
            [
                self._tool("initdb"),
                "-D",
                str(self.datadir),
                "-U",
                self.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            INITDB_TIMEOUT,
            "initdb",
        )
        socket_dir = str(self.socket_dir).replace("'", "''")
        durability = (
            "fsync = on\nsynchronous_commit = on\nfull_page_writes = on\nwal_level = minimal\nmax_wal_senders = 0"
            if self.durable
            else "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            "wal_level = minimal\nmax_wal_senders = 0"
        )
        conf = f"""
# --- tessera test cluster ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '{socket_dir}'
max_connections = {int(self.max_connections)}
shared_buffers = 64MB
{durability}
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
log_min_error_statement = error
"""
        # Trust on loopback only: the unix socket (in our private dir) and 127.0.0.1.
        hba = "# tessera test cluster: trust, loopback only\nlocal all all trust\nhost  all all 127.0.0.1/32 trust\n"
        with open(self.datadir / "postgresql.conf", "a") as fh:
            fh.write(conf)
        (self.datadir / "pg_hba.conf").write_text(hba)
        # Files written by root are owned by root; hand them back (root can read everything).
        if self._os_user is not None:
            for name in ("postgresql.conf", "pg_hba.conf"):
                os.chown(self.datadir / name, self._os_user.pw_uid, self._os_user.pw_gid)

    def _start_server(self) -> None:
        assert self.datadir is not None and self.logfile is not None
        last: PostgresError | None = None
        for _attempt in range(5):
            port = _free_port()
            if self.logfile.exists():  # keep only this attempt's messages in the log
                with open(self.logfile, "r+") as fh:
                    fh.truncate()
            try:
                self._run(
                    [
                        self._tool("pg_ctl"),
                        "start",
                        "-D",
                        str(self.datadir),
                        "-l",
                        str(self.logfile),
                        "-o",
                        f"-p {port}",
                        "-w",
                        "-t",
                        str(int(START_TIMEOUT)),
                    ],
                    START_TIMEOUT + 30,
                    "pg_ctl start",
                )
            except PostgresError as exc:
                last = exc
                # Another process took the port between our probe and the bind: retry.
                if "already in use" in str(exc) or "could not bind" in str(exc):
                    self._kill_leftover()
                    continue
                self._kill_leftover()
                raise
            self.port = port
            self._running = True
            self._owner_pid = os.getpid()
            atexit.register(self._atexit_stop)
            return
        raise PostgresError(f"could not start PostgreSQL on a free port after 5 tries:\n{last}")

    def _start_watchdog(self, bindir: Path) -> None:
        assert self.datadir is not None and self.workdir is not None
        r, w = os.pipe()
        try:
            cmd = (self._prefix if self._os_user is not None else []) + [str(bindir / "pg_ctl")]
            # The paths go in the environment, not argv, so `pgrep -f DATADIR` finds
            # only the server itself.
            env = _clean_env()
            env["TESSERA_PG_WATCHDOG"] = json.dumps([str(self.datadir), str(self.workdir), cmd])
            self._watchdog = subprocess.Popen(
                [sys.executable, "-c", _WATCHDOG],
                stdin=r,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                cwd="/",
                start_new_session=True,  # a Ctrl-C to the test's process group spares it
            )
        except OSError:
            os.close(w)
            w = None  # no watchdog: atexit still covers the ordinary exits
        finally:
            os.close(r)
        self._watchdog_w = w

    # -- databases -----------------------------------------------------------------

    def connect_admin(self):
        """A psycopg autocommit connection to the 'postgres' maintenance database."""
        import psycopg

        if not self._running:
            raise PostgresError("the PostgreSQL test server is not running")
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        )

    def url_for(self, name: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{name}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (must not exist), a copy of ``template`` if given (a database
        no one is connected to), and return its SQLAlchemy URL."""
        from psycopg import sql

        _check_dbname(name)
        with self.connect_admin() as conn:
            stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template is not None:
                _check_dbname(template)
                stmt = stmt + sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            if conn.info.server_version >= 150000:
                # With fsync off, copying the tiny template's files beats WAL-logging it.
                stmt = stmt + sql.SQL(" STRATEGY FILE_COPY")
            conn.execute(stmt)
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, closing any connections still open to it."""
        from psycopg import sql

        _check_dbname(name)
        if not self._running:
            return
        with self.connect_admin() as conn:
            ident = sql.Identifier(name)
            if conn.info.server_version >= 130000:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
            else:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(ident))

    # -- stop ----------------------------------------------------------------------

    def stop(self) -> None:
        """pg_ctl stop -m fast, then remove the temp dir.  Safe to call more than once."""
        with self._lock:
            t0 = time.monotonic()
            was_running = self._running
            self._teardown()
            if was_running:
                self.stop_seconds = time.monotonic() - t0

    def _atexit_stop(self) -> None:
        if os.getpid() == self._owner_pid:  # not in a forked child
            try:
                self.stop()
            except Exception:
                pass

    def _postmaster_pid(self) -> int | None:
        if self.datadir is None:
            return None
        try:
            return int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def _kill_leftover(self) -> None:
        """Make sure no postmaster of ours survives (after a failed start or stop)."""
        pid = self._postmaster_pid()
        if pid is None or not _pid_alive(pid):
            return
        for mode, wait in (("fast", 20), ("immediate", 10)):
            try:
                self._run(
                    [self._tool("pg_ctl"), "stop", "-D", str(self.datadir), "-m", mode, "-w", "-t", str(wait)],
                    wait + 20,
                    f"pg_ctl stop -m {mode}",
                )
                return
            except PostgresError:
                pass
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        deadline = time.monotonic() + 10
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _teardown(self) -> None:
        error: PostgresError | None = None
        pid = self._postmaster_pid()
        if self._running:
            try:
                self._run(
                    [
                        self._tool("pg_ctl"),
                        "stop",
                        "-D",
                        str(self.datadir),
                        "-m",
                        "fast",
                        "-w",
                        "-t",
                        str(int(STOP_TIMEOUT)),
                    ],
                    STOP_TIMEOUT + 30,
                    "pg_ctl stop",
                )
            except PostgresError as exc:
                error = exc
            self._running = False
        if self.datadir is not None:
            self._kill_leftover()
        try:
            atexit.unregister(self._atexit_stop)
        except Exception:
            pass
        for d in (self.workdir, self.socket_dir):
            if d is not None:
                shutil.rmtree(d, ignore_errors=True)
        # Closing our end of the pipe lets the watchdog go; it finds nothing left to do.
        if self._watchdog_w is not None:
            os.close(self._watchdog_w)
            self._watchdog_w = None
        if self._watchdog is not None:
            try:
                self._watchdog.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait()
            self._watchdog = None
        if pid is not None and _pid_alive(pid):
            raise PostgresError(
                f"PostgreSQL (pid {pid}) is still running after stop" + (f":\n{error}" if error else "")
            )


_DBNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _check_dbname(name: str) -> None:
    if not _DBNAME.match(name):
        raise ValueError(f"not a safe test database name: {name!r} (letters, digits, _; max 63)")


# ---------------------------------------------------------------------------------
# pytest fixtures (load with pytest_plugins = ["tests.support.postgres"])
# ---------------------------------------------------------------------------------


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def require_pg_bin() -> Path:
    """The PostgreSQL bindir; else skip the test, or fail it under CI=true."""
    bindir = find_pg_bin()
    if bindir is None:
        msg = (
            "no PostgreSQL server binaries found (initdb/pg_ctl under "
            "/usr/lib/postgresql/*/bin, pg_config --bindir, PATH or $" + PG_BIN_ENV + ")"
        )
        if _in_ci():
            pytest.fail(msg + "; CI must run scripts/install-test-deps.sh first", pytrace=False)
        pytest.skip(msg + "; run scripts/install-test-deps.sh to run the PostgreSQL tests")
    return bindir


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole test session, stopped at its end."""
    server = PostgresServer(bindir=require_pg_bin())
    try:
        server.start()
    except PostgresError as exc:
        pytest.fail(f"could not start the PostgreSQL test server:\n{exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


_counter = 0
_counter_lock = threading.Lock()


def _unique_dbname(hint: str) -> str:
    global _counter
    with _counter_lock:
        _counter += 1
        n = _counter
    slug = re.sub(r"[^a-z0-9]+", "_", hint.lower()).strip("_")[:30] or "db"
    return f"t{n}_{slug}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A SQLAlchemy URL to a fresh, empty database for this test; dropped afterwards."""
    name = _unique_dbname(request.node.name)
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def migrated_postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """Like ``postgres_url``, the database already at the migrations' head: a copy of a template
    migrated once (tests/support/migrated.py); dropped afterwards."""
    from tests.support import migrated

    name = _unique_dbname(request.node.name)
    url = migrated.postgres_url(postgres_server, name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)
