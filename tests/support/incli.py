"""The ``tessera`` command run in the test's own process: the console script's entry point
(``tessera.console.main``, which ``python -m tessera.cli`` and the installed ``tessera`` both
reach) with the command line, environment, working directory and standard input a process
would get, its standard output and error captured and its exit status kept.

It answers with a ``subprocess.CompletedProcess``, as ``subprocess.run(..., capture_output=True,
text=True)`` does, so that the same assertions read both. A process costs about a CPU second of
interpreter start-up (docs/testing.md); this costs what the command itself does. Use it where a
test is about what a command does or says; keep a real process where the test is about the
process (its start, its exit on a signal, its log file, what a refused ``serve`` leaves bound),
and keep at least one real process for each kind of answer a test module checks in process.

What it reproduces of a process:

- the exit status: ``SystemExit`` as the interpreter maps it (``None`` → 0, an int → itself,
  anything else printed on stderr → 1), and an uncaught exception as the interpreter reports it:
  its traceback on stderr, status 1 (so "no traceback" assertions still see one);
- the environment: exactly ``env`` (``os.environ`` is replaced for the call and restored);
- the working directory, ``sys.argv``, ``sys.stdin`` (``input``), ``sys.stdout``, ``sys.stderr``.

What differs: the program's name in a usage error (click reads it from ``sys.argv[0]``: ``tessera``
here, ``python -m tessera.cli`` in the process), and what the interpreter does before the command
(imports, the first use of each module's caches) is not repeated on every call.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from subprocess import CompletedProcess
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.live import LiveServer


def run_tessera(
    args: Sequence[str], *, env: Mapping[str, str], cwd: Path, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``tessera ARGS`` in process, as ``subprocess.run([... "-m", "tessera.cli", *args], env=env,
    cwd=cwd, input=input, capture_output=True, text=True)`` would run it."""
    from tessera.console import main

    argv = ["tessera", *args]
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_argv, saved_stdin, saved_cwd = dict(os.environ), sys.argv, sys.stdin, os.getcwd()
    saved_gc = gc.get_threshold()  # main() defers the collector's older generations (tessera/startup.py)
    code: int = 0
    try:
        os.environ.clear()
        os.environ.update(env)
        sys.argv = argv
        sys.stdin = io.StringIO(input or "")
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as e:
                if e.code is None:
                    code = 0
                elif isinstance(e.code, int):
                    code = e.code
                else:
                    print(e.code, file=sys.stderr)
                    code = 1
            except Exception:  # what the interpreter prints for an uncaught exception
                traceback.print_exc(file=sys.stderr)
                code = 1
    finally:
        os.chdir(saved_cwd)
        gc.set_threshold(*saved_gc)
        sys.stdin, sys.argv = saved_stdin, saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def run_tessera_process(
    args: Sequence[str], *, env: Mapping[str, str], cwd: Path, input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The same command in a real process (``python -m tessera.cli``)."""
    return subprocess.run(
        [sys.executable, "-m", "tessera.cli", *args],
        env=dict(env),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def server_cli(server: LiveServer, *args: str, input: str | None = None, check: bool = True) -> CompletedProcess[str]:
    """``LiveServer.cli`` in process: ``tessera --home HOME ARGS`` on a live server's home, with the
    environment and working directory its own ``cli`` gives the process."""
    proc = run_tessera(("--home", str(server.home), *args), env=server._env, cwd=server.workdir, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"tessera {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def server_cli_json(server: LiveServer, *args: str, input: str | None = None) -> dict[str, Any]:
    """``LiveServer.cli_json`` in process."""
    return dict(json.loads(server_cli(server, *args, "--json", input=input).stdout))
