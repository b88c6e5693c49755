"""One write per response: a transport wrapper for uvicorn's HTTP protocols.

uvicorn writes a response's status line and headers as soon as the application sends
``http.response.start``, and the body on ``http.response.body``: two ``send()`` calls,
two TCP segments (two TLS records under TLS), and on loopback the sender pays the
receiver's TCP processing for each. A token answer is a few hundred bytes, so the
second segment costs about as much as the first.

``CoalescingTransport`` keeps the writes made during one event-loop step and hands
them to the real transport together, from a callback scheduled on the first write
(``loop.call_soon``): the header and body of a small response leave in one segment.
Ordering is preserved, nothing is delayed past the current loop iteration, a large
streamed body is passed on as soon as ``FLUSH_BYTES`` are pending, and ``close``,
``write_eof`` and ``set_protocol`` flush first (``abort`` discards, as the real
one does). Everything else is the real transport's.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["CoalescingTransport", "FLUSH_BYTES"]

#: Pending bytes that are written at once rather than at the end of the loop step.
FLUSH_BYTES = 65536


class CoalescingTransport:
    __slots__ = ("_transport", "_loop", "_pending", "_size", "_scheduled")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._transport = transport
        self._loop = loop or asyncio.get_event_loop()
        self._pending: list[bytes] = []
        self._size = 0
        self._scheduled = False

    @property
    def wrapped(self) -> asyncio.Transport:
        return self._transport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        self._pending.append(bytes(data))
        self._size += len(data)
        if self._size >= FLUSH_BYTES:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush_soon)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush_soon(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        """Hand every pending byte to the real transport now."""
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        self._pending = []
        self._size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self._size + self._transport.get_write_buffer_size()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def set_protocol(self, protocol: Any) -> None:
        self.flush()
        self._transport.set_protocol(protocol)

    def abort(self) -> None:
        self._pending = []
        self._size = 0
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
