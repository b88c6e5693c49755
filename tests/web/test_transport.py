"""tessera.web.transport: one write per response, nothing lost or reordered.

Unit tests drive ``CoalescingTransport`` on a real event loop with a recording
transport; the socket tests run uvicorn with tessera's protocol class on a real
loopback socket and count the TCP reads a client needs for a whole response.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from tessera.web.transport import FLUSH_BYTES, CoalescingTransport
from tests.web.test_tls import running_server


class Recorder(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        assert not self.closing, "write after close"
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.events.append("close")
        self.closing = True

    def abort(self) -> None:
        self.events.append("abort")
        self.closing = True

    def write_eof(self) -> None:
        self.events.append("eof")

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


def run(coro_fn):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro_fn())
    finally:
        loop.close()


def test_writes_in_one_loop_step_leave_as_one():
    async def go():
        rec = Recorder()
        t = CoalescingTransport(rec, asyncio.get_running_loop())
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.write(b"")
        t.write(bytearray(b"body"))
        t.writelines([b"-", b"more"])
        assert rec.writes == []  # nothing before the loop step ends
        assert t.get_write_buffer_size() == len(b"HTTP/1.1 200 OK\r\n\r\nbody-more") + 7
        await asyncio.sleep(0)
        assert rec.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody-more"]
        t.write(b"next")
        await asyncio.sleep(0)
        assert rec.writes[1:] == [b"next"]

    run(go)


def test_large_bodies_are_written_at_once_in_order():
    async def go():
        rec = Recorder()
        t = CoalescingTransport(rec, asyncio.get_running_loop())
        t.write(b"head")
        t.write(b"x" * FLUSH_BYTES)
        assert rec.writes == [b"head" + b"x" * FLUSH_BYTES]  # over the threshold: not held back
        t.write(b"tail")
        await asyncio.sleep(0)
        assert b"".join(rec.writes) == b"head" + b"x" * FLUSH_BYTES + b"tail"

    run(go)


def test_close_and_eof_flush_first_abort_discards():
    async def go():
        loop = asyncio.get_running_loop()
        rec = Recorder()
        t = CoalescingTransport(rec, loop)
        t.write(b"last words")
        t.close()
        assert rec.writes == [b"last words"] and rec.events == ["close"]
        await asyncio.sleep(0)  # the scheduled flush finds nothing and writes nothing after close
        assert rec.writes == [b"last words"]

        rec2 = Recorder()
        t2 = CoalescingTransport(rec2, loop)
        t2.write(b"a")
        t2.write_eof()
        assert rec2.writes == [b"a"] and rec2.events == ["eof"]

        rec3 = Recorder()
        t3 = CoalescingTransport(rec3, loop)
        t3.write(b"dropped")
        t3.abort()
        await asyncio.sleep(0)
        assert rec3.writes == [] and rec3.events == ["abort"]

    run(go)


def test_other_attributes_are_the_real_transports():
    async def go():
        rec = Recorder()
        t = CoalescingTransport(rec, asyncio.get_running_loop())
        assert t.get_extra_info("peername") == ("127.0.0.1", 1)
        assert t.wrapped is rec

    run(go)


async def small_app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    body = b'{"access_token":"' + b"a" * 400 + b'"}'
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await asyncio.sleep(0.02)  # give a split response every chance to show as two reads
    await send({"type": "http.response.body", "body": body})


def read_response(sock: socket.socket) -> tuple[bytes, int]:
    """(the whole response, how many recv() calls it took)."""
    data, reads = b"", 0
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            length = int(
                [line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")][0]
            )
            if len(rest) >= length:
                return data, reads
        chunk = sock.recv(65536)
        reads += 1
        if not chunk:
            return data, reads
        data += chunk


@pytest.mark.parametrize("kind", ["httptools", "h11"])
def test_a_small_response_arrives_whole_keep_alive_and_close(kind):
    """Through uvicorn on a real socket: the status line, headers and body of a small
    answer arrive together; keep-alive, pipelining and Connection: close lose nothing."""
    with running_server(small_app, kind=kind) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            time.sleep(0.1)  # the whole answer is there before we read
            resp, _ = read_response(s)
            assert resp.startswith(b"HTTP/1.1 200") and resp.endswith(b'"}')
            # pipelined: three requests in one segment, the last one closing: three answers, in order
            s.sendall(
                b"POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" * 2
                + b"POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            rest = b""
            while chunk := s.recv(65536):
                rest += chunk
            answers = rest.split(b"HTTP/1.1 200 OK\r\n")
            assert answers[0] == b"" and len(answers) == 4
            assert all(a.endswith(b"a" * 400 + b'"}') for a in answers[1:])


@pytest.mark.parametrize("kind", ["httptools", "h11"])
def test_uvicorns_protocol_writes_a_response_once(kind):
    """uvicorn's own protocol class (tessera's subclass) on a real event loop, fed a real
    request: the status line, headers and body reach the transport in ONE write. (Plain
    uvicorn makes two: the test fails without the coalescing wrapper.)"""
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from tessera.web.tls import protocol_class

    async def quick_app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"300")]})
        await send({"type": "http.response.body", "body": b"x" * 300})

    async def go():
        config = Config(app=quick_app, http=protocol_class(kind), lifespan="off", log_config=None, access_log=False)
        config.load()
        rec = Recorder()
        proto = config.http_protocol_class(
            config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop()
        )
        proto.connection_made(rec)
        for _ in range(3):  # keep-alive: each answer one write
            proto.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            for _ in range(10):
                await asyncio.sleep(0)
        proto.connection_lost(None)
        assert len(rec.writes) == 3, [len(w) for w in rec.writes]
        for w in rec.writes:
            assert w.startswith(b"HTTP/1.1 200 OK\r\n") and w.endswith(b"\r\n\r\n" + b"x" * 300)

    run(go)
