"""What a ``tessera`` process loads (issue 12): a command imports its own module only, so a
simple command starts without Alembic, the zip's AES, the web server or the web app.

- ``tessera --home H clients list`` and ``tessera --version``, run as processes, load none of
  the heavy packages (their ``sys.modules`` at exit); ``--version`` not even the admin layer;
- ``tessera --help`` lists the commands from their summaries (``COMMANDS``) without importing
  them, and its output is the same, byte for byte, as the one the loaded commands give;
- the store's migration check reads the head from the migration files (``file_head``) and
  the database's revision with one query (``stored_revision``): both agree with Alembic, and
  every case but "already at the head" still goes through Alembic (an older database is
  upgraded, a newer one refused as before);
- while a ``tessera`` process starts, the collector walks only its youngest generation
  (``tessera.startup``): a command run by the console script makes no older-generation
  collection, and a server's app, once built, gives CPython's thresholds back and freezes
  what the start made.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from alembic.util.exc import CommandError
from typer.testing import CliRunner

from tessera import cli, startup
from tessera.cli import COMMANDS, app
from tessera.storage import migrate
from tessera.storage.sql import make_engine

#: Never loaded by a simple command: Alembic (and its Mako), the zip's AES (pyzipper,
#: pycryptodomex, cffi), the web server and app, the JSON logging.
HEAVY = frozenset(
    {"alembic", "mako", "pyzipper", "Cryptodome", "cffi", "uvicorn", "starlette", "httptools", "uvloop", "structlog"}
)
#: Not loaded by ``--version`` either: the settings, the store, the admin layer.
NOT_FOR_VERSION = frozenset({"sqlalchemy", "pydantic_settings", "tessera.admin", "tessera.config", "tessera.storage"})

#: Runs the CLI's main as the console script does and writes, at exit, the loaded modules.
PROBE = """
import atexit, json, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv[0] = "tessera"
from tessera.cli import main
main()
"""


def loaded_by(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    report = tmp_path / f"modules-{len(list(tmp_path.glob('modules-*')))}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(report), *args], capture_output=True, text=True, env=env, timeout=120
    )
    return proc, set(json.loads(report.read_text()))


def roots(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


@pytest.mark.slow  # runs the tessera command
def test_a_simple_command_loads_nothing_it_does_not_use(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert CliRunner().invoke(app, ["--home", str(home), "init"]).exit_code == 0

    proc, modules = loaded_by(tmp_path, "--home", str(home), "clients", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"clients": []}
    assert "sqlalchemy" in roots(modules) and "tessera.admin.clients" in modules  # it did the work
    assert roots(modules) & HEAVY == set(), sorted(roots(modules) & HEAVY)
    assert not {m for m in modules if m.startswith("tessera.cli.") and m != "tessera.cli.common"} - {
        "tessera.cli.clients"
    }

    proc, modules = loaded_by(tmp_path, "--version")
    assert proc.returncode == 0 and proc.stdout.startswith("tessera "), proc.stderr
    assert roots(modules) & HEAVY == set(), sorted(roots(modules) & HEAVY)
    assert {m for m in modules if m.startswith(tuple(NOT_FOR_VERSION))} == set()


def eager_app() -> typer.Typer:
    """The command tree as it was built before the lazy group: every module imported,
    every command registered in ``COMMANDS``' order."""
    eager = typer.Typer(no_args_is_help=True, add_completion=False, help=app.info.help)
    eager.callback()(cli._main)
    for name, (module, attribute, _) in COMMANDS.items():
        target = getattr(importlib.import_module(module), attribute)
        if isinstance(target, typer.Typer):
            eager.add_typer(target, name=name)
        else:
            eager.command(name)(target)
    return eager


#: A terminal wide enough that no summary wraps (rich reads COLUMNS when its console is made).
WIDE = {"COLUMNS": "250"}


@pytest.mark.parametrize("args", [["--help"], []], ids=["help", "no-args"])
def test_the_help_lists_the_commands_as_the_loaded_commands_do(args: list[str]) -> None:
    lazy, eager = CliRunner().invoke(app, args, env=WIDE), CliRunner().invoke(eager_app(), args, env=WIDE)
    assert lazy.output == eager.output and lazy.exit_code == eager.exit_code
    for name, (_, _, summary) in COMMANDS.items():  # every command listed with its summary
        assert f" {name} " in lazy.output and all(line in lazy.output for line in summary.splitlines())


def test_a_group_loaded_on_demand_is_the_registered_one() -> None:
    for name in ("clients", "serve", "pepper"):
        lazy = CliRunner().invoke(app, [name, "--help"], env=WIDE)
        eager = CliRunner().invoke(eager_app(), [name, "--help"], env=WIDE)
        assert lazy.exit_code == 0 and lazy.output == eager.output
    unknown = CliRunner().invoke(app, ["client", "list"])
    assert unknown.exit_code == 2 and "No such command 'client'" in unknown.output


# --- the migration check without Alembic ------------------------------------------------------


def test_the_head_read_from_the_files_is_alembics_head() -> None:
    assert migrate.file_head() == migrate.head_revision()


@pytest.mark.parametrize(
    ("files", "head"),
    [
        ({"a.py": "revision = 'a'\ndown_revision = None\n", "b.py": "revision = 'b'\ndown_revision = 'a'\n"}, "b"),
        (  # the newer template's annotated assignments, a merge on one line
            {
                "a.py": 'revision: str = "a"\ndown_revision: str | None = None\n',
                "b.py": 'revision: str = "b"\ndown_revision = "a"\n',
                "c.py": 'revision: str = "c"\ndown_revision = "a"\n',
                "m.py": 'revision = "m"\ndown_revision: tuple[str, str] = ("b", "c")\n',
            },
            "m",
        ),
        ({"a.py": "revision = 'a'\ndown_revision = None\n", "b.py": "down_revision = 'a'\n"}, None),  # no revision
        ({"a.py": "revision = 'a'\ndown_revision = None\n", "b.py": "revision = 'b'\n"}, None),  # no down_revision
        (  # two heads
            {
                "a.py": "revision = 'a'\ndown_revision = None\n",
                "b.py": "revision = 'b'\ndown_revision = 'a'\n",
                "c.py": "revision = 'c'\ndown_revision = 'a'\n",
            },
            None,
        ),
        (  # a merge written over several lines: left to Alembic
            {
                "a.py": "revision = 'a'\ndown_revision = None\n",
                "m.py": "revision = 'm'\ndown_revision = (\n  'a',\n)\n",
            },
            None,
        ),
        ({"a.py": "revision = 'a'\ndown_revision = 'gone'\n"}, None),  # revises an unknown revision
        ({"a.py": "revision = 'a'\nrevision = 'b'\ndown_revision = None\n"}, None),  # assigned twice
        ({"a.py": "revision = 'a' + 'b'\ndown_revision = None\n"}, None),  # not a literal
    ],
    ids=["linear", "annotated-merge", "no-revision", "no-down", "two-heads", "multiline", "unknown", "twice", "expr"],
)
def test_file_head_is_none_unless_the_files_say_one_head(
    files: dict[str, str], head: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "versions").mkdir()
    (tmp_path / "versions" / "__init__.py").write_text("revision = 'not a migration'\n")
    for name, text in files.items():
        (tmp_path / "versions" / name).write_text('"""Revision ID: x"""\nfrom alembic import op\n' + text)
    monkeypatch.setattr(migrate, "MIGRATIONS", tmp_path)
    assert migrate.file_head.__wrapped__() == head


def test_the_revision_read_without_alembic_is_alembics(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        assert migrate.stored_revision(engine) is None and migrate.current_revision(engine) is None
        migrate.upgrade(engine, "0002")  # an older database: upgraded by Alembic
        assert migrate.stored_revision(engine) == migrate.current_revision(engine) == "0002"
        migrate.upgrade(engine)
        assert migrate.stored_revision(engine) == migrate.current_revision(engine) == migrate.head_revision()
        with engine.begin() as conn:  # a newer database than this version knows: refused, as before
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        with pytest.raises(CommandError, match="9999"):
            migrate.upgrade(engine)
        with engine.begin() as conn:  # two rows: not one revision, left to Alembic
            conn.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{migrate.head_revision()}'")
            conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('0002')")
        assert migrate.stored_revision(engine) is None
    finally:
        engine.dispose()


#: A way into the CLI (the console script's main, or ``python -m tessera.cli``), reporting at
#: exit what the collector did during the command.
GC_PROBE = """
import atexit, gc, json, runpy, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(
    {"before": BEFORE, "stats": gc.get_stats(), "threshold": gc.get_threshold(), "default": DEFAULT})))
DEFAULT = gc.get_threshold()
sys.argv[0] = "tessera"
BEFORE = gc.get_stats()
ENTRY
"""
ENTRIES = {
    "console script": "from tessera.console import main; main()",
    "python -m tessera.cli": "runpy.run_module('tessera.cli', run_name='__main__', alter_sys=True)",
}


@pytest.mark.slow  # runs the tessera command
@pytest.mark.parametrize("entry", ENTRIES)
def test_a_command_collects_only_the_young_generation_while_it_starts(tmp_path: Path, entry: str) -> None:
    home = tmp_path / "home"
    assert CliRunner().invoke(app, ["--home", str(home), "init"]).exit_code == 0
    report = tmp_path / "gc.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    probe = GC_PROBE.replace("ENTRY", ENTRIES[entry])
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(report), "--home", str(home), "clients", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0 and json.loads(proc.stdout) == {"clients": []}, proc.stderr
    seen = json.loads(report.read_text())
    young, middle, old = (
        a["collections"] - b["collections"] for a, b in zip(seen["stats"], seen["before"], strict=True)
    )
    assert young > 50, seen  # the youngest generation is collected as ever (its cycles are freed)
    if entry == "console script":
        assert (middle, old) == (0, 0), seen  # the start's long-lived objects were never walked again
    else:  # python -m imports the package (typer, rich) before its __main__ defers; nothing after
        assert middle <= 5 and old == 0, seen
    assert seen["threshold"] == [seen["default"][0], *startup.DEFERRED[1:]]


def test_defer_keeps_the_young_generation_and_settle_restores_and_freezes_only_its_own() -> None:
    before = gc.get_threshold()  # whatever the worker has (an in-process mypy run sets its own)
    frozen = gc.get_freeze_count()
    try:
        startup.defer()
        assert gc.get_threshold() == (startup.DEFAULT[0], 1000, 1000)
        made = [[i] for i in range(1000)]  # objects of "the start", tracked by the collector
        startup.settle()
        assert gc.get_threshold() == startup.DEFAULT
        assert gc.get_freeze_count() >= frozen + len(made)
        again = gc.get_freeze_count()
        startup.settle()  # idempotent: nothing more is frozen
        assert gc.get_freeze_count() == again
        gc.set_threshold(200_000, 30, 30)  # chosen by someone else (mypy's build does this)
        startup.settle()
        assert gc.get_threshold() == (200_000, 30, 30) and gc.get_freeze_count() == again
    finally:
        gc.set_threshold(*before)


def test_the_served_app_settles_once_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tessera.web.asgi import create

    home = tmp_path / "home"
    assert CliRunner().invoke(app, ["--home", str(home), "init"]).exit_code == 0
    monkeypatch.setenv("TESSERA_HOME", str(home))
    before = gc.get_threshold()
    try:
        startup.defer()
        create()  # what uvicorn calls in a worker of ``tessera serve``
        assert gc.get_threshold() == startup.DEFAULT
    finally:
        gc.set_threshold(*before)


def test_a_command_run_in_the_tests_process_leaves_its_collector_as_it_was(tmp_path: Path) -> None:
    from tests.support.incli import run_tessera

    before = gc.get_threshold()
    proc = run_tessera(["--version"], env={"PATH": os.environ["PATH"]}, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("tessera "), proc.stderr
    assert gc.get_threshold() == before != startup.DEFERRED  # main() deferred it; the tests' worker is no server
