"""A log line that cannot be written never turns an answer into a 500.

Found in the suite's own output: a server whose stderr had been closed under it answered every
request with a 500, because the access line's ``write`` raised ``OSError: [Errno 9] Bad file
descriptor`` inside the request middleware. The same happens in production when the log
collector's pipe breaks or the disk fills. The line is dropped and counted instead
(``tessera_log_lines_lost`` on ``/metrics``); the answer is the one the request earned.
"""

from __future__ import annotations

import errno
import io
import sys
import time
import warnings

import pytest

with warnings.catch_warnings():  # starlette's TestClient on httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from tessera.config import Settings
from tessera.home import init_home
from tessera.web import logging as web_logging
from tessera.web.app import create_app


class BrokenStream(io.TextIOBase):
    """A stream whose every write fails as a closed descriptor's or a full disk's does."""

    def __init__(self, err: int) -> None:
        self.err = err

    def write(self, s: str) -> int:
        raise OSError(self.err, "broken on purpose")


def closed_stream() -> io.StringIO:
    stream = io.StringIO()
    stream.close()
    return stream


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    home = tmp_path_factory.mktemp("logloss") / "home"
    init_home(home, hostname="localhost", port=8443, issuer="https://localhost:8443", now=int(time.time()))
    with TestClient(create_app(Settings.load(home)), raise_server_exceptions=True) as c:
        yield c


def lost_metric(client: TestClient) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("tessera_log_lines_lost_total "):
            return float(line.split()[1])
    raise AssertionError("tessera_log_lines_lost_total is not exposed")


@pytest.mark.parametrize(
    "stream",
    [
        lambda: BrokenStream(errno.EBADF),
        lambda: BrokenStream(errno.EPIPE),
        lambda: BrokenStream(errno.ENOSPC),
        closed_stream,
    ],
    ids=["EBADF", "EPIPE", "ENOSPC", "closed"],
)
def test_an_unwritable_stderr_drops_the_line_and_keeps_the_answer(client, stream, monkeypatch) -> None:
    metric_before, lost_before = lost_metric(client), web_logging.lines_lost()
    monkeypatch.setattr(sys, "stderr", stream())
    answers = [client.get("/healthz"), client.post("/oauth2/token", data={"grant_type": "client_credentials"})]
    monkeypatch.undo()
    assert [a.status_code for a in answers] == [200, 401]
    assert answers[0].text == "ok"
    assert answers[1].json()["error"] == "invalid_client"
    assert web_logging.lines_lost() >= lost_before + 2  # one access line per request at least
    assert lost_metric(client) == metric_before + (web_logging.lines_lost() - lost_before)


def test_a_working_stderr_loses_nothing(client, capsys) -> None:
    before = web_logging.lines_lost()
    capsys.readouterr()
    assert client.get("/healthz").status_code == 200
    assert web_logging.lines_lost() == before
    assert capsys.readouterr().err.count("\n") >= 1  # the access line was written
