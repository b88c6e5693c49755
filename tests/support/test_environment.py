"""``tests.support.live.environment``: a block's variables, then the environment as it was, even
when several threads use it at once (eight racers each opening a store from ``server.settings``
had left a server's ``TESSERA_*`` in a worker's environment, and a later test read them)."""

from __future__ import annotations

import os
import threading
import time

from tests.support.live import environment

NAME = "TESSERA_TEST_ENVIRONMENT_BLOCK"


def test_a_block_sets_then_restores_and_unsets() -> None:
    assert NAME not in os.environ
    with environment(**{NAME: "inside"}):
        assert os.environ[NAME] == "inside"
    assert NAME not in os.environ


def test_threads_at_once_leave_the_environment_as_it_was() -> None:
    threads, barrier, seen = 8, threading.Barrier(8), []

    def block(i: int) -> None:
        barrier.wait()
        with environment(**{NAME: str(i)}):
            time.sleep(0.01)  # another thread's block would save this one's value as "the old one"
            seen.append(os.environ[NAME] == str(i))

    racers = [threading.Thread(target=block, args=(i,)) for i in range(threads)]
    for t in racers:
        t.start()
    for t in racers:
        t.join(10)
    assert seen == [True] * threads  # each block saw its own value for its whole length
    assert NAME not in os.environ, os.environ.get(NAME)
