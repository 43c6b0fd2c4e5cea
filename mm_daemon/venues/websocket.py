"""A websocket client (RFC 6455) on a bare asyncio transport, for market data and order entry.

Frames are cut out of each received chunk in one loop and handed to `on_message(payload,
ts_ns)` synchronously, with no await in between; requests go out as one masked frame written
straight to the transport (the compiled frame writer of `mm_daemon._orderwire` where it is
built). Why not aiohttp's websocket: it wraps every message in an object, a queue and an
awaited future, about 6 us a message here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, cast
from urllib.parse import urlsplit

__all__ = [
    "OP_TEXT",
    "WebSocketError",
    "WsClientProtocol",
    "WsConnection",
    "WsConnector",
    "WsReader",
    "WsReaderConnector",
    "ws_connect",
]

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_CONT, OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_MAX_HANDSHAKE_BYTES = 65_536
_FIN_TEXT = 0x80 | OP_TEXT


class WebSocketError(ConnectionError):
    """The websocket handshake failed, the server broke the protocol, or the socket closed."""


def _consume_error(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class _MaskSource:
    """Websocket masking keys (RFC 6455 5.3: unpredictable), drawn from `os.urandom` in batches
    so that a request does not wait on a system call for its four bytes."""

    __slots__ = ("_at", "_pool")
    BATCH = 4_096

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def next(self) -> bytes:
        at = self._at
        if at + 4 > len(self._pool):
            self._pool = os.urandom(self.BATCH)
            at = 0
        self._at = at + 4
        return self._pool[at : at + 4]


_masks = _MaskSource()


def _python_client_frame(opcode: int, payload: bytes, mask: bytes) -> bytes:
    """A client frame masked with `mask` (RFC 6455 section 5.3: clients mask every frame)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65_536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    if not n:
        return head + mask
    # XOR the whole payload as one integer: a per-byte loop costs ~75 us on an order request.
    key = int.from_bytes(mask * (n // 4 + 1), "little") & ((1 << (8 * n)) - 1)
    masked = (int.from_bytes(payload, "little") ^ key).to_bytes(n, "little")
    return head + mask + masked


_frame_writer: Callable[[int, bytes, bytes], bytes]
try:  # the compiled frame writer (setup.py builds it where a C compiler is at hand)
    from mm_daemon import _orderwire

    _frame_writer = _orderwire.client_frame
except ImportError:  # pragma: no cover  depends on the build
    _frame_writer = _python_client_frame


def _client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame with a fresh masking key."""
    return _frame_writer(opcode, payload, _masks.next())


class WsClientProtocol(asyncio.Protocol):
    """A websocket client on a bare asyncio transport: frames are cut out of each received chunk
    in one loop and handed to `on_message(payload, ts_ns)` synchronously.

    Why not aiohttp's websocket: it wraps every message in an object, a queue and an awaited
    future, about 6 us a message here; this reader hands a whole TCP chunk's frames to the
    parser with no await in between. `ts_ns` is `time.time_ns()` when the chunk arrived.
    Handles ping (answers pong), close, fragmented messages; no extensions are negotiated.
    """

    def __init__(self, host: str, path: str, on_message: Callable[[bytes, int], None]) -> None:
        self._host = host
        self._path = path
        self._on_message = on_message
        self._key = base64.b64encode(os.urandom(16))
        self._buf = bytearray()
        self._need = 0
        self._open = False
        self._fragments: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        # A connection may end while nobody awaits these: mark their errors as seen.
        self.opened.add_done_callback(_consume_error)
        self.closed.add_done_callback(_consume_error)
        self.last_rx_ns = 0  # time.monotonic_ns() of the last received chunk

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transports are not asyncio.Transport subclasses: cast, not isinstance.
        self._transport = cast("asyncio.Transport", transport)
        transport = self._transport
        transport.write(
            f"GET {self._path} HTTP/1.1\r\nHost: {self._host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self._key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        error = WebSocketError(f"connection lost: {exc!r}" if exc else "connection closed")
        if not self.opened.done():
            self.opened.set_exception(error)
        if not self.closed.done():
            self.closed.set_exception(error)

    def send(self, opcode: int, payload: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(_client_frame(opcode, payload))

    def send_text(self, text: str) -> None:
        self.send(OP_TEXT, text.encode())

    def close(self) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            with contextlib.suppress(Exception):
                transport.write(_client_frame(_OP_CLOSE, (1000).to_bytes(2, "big")))
            transport.close()

    def _fail(self, why: str) -> None:
        error = WebSocketError(why)
        if not self.opened.done():
            self.opened.set_exception(error)
        if not self.closed.done():
            self.closed.set_exception(error)
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        ts = time.time_ns()
        self.last_rx_ns = time.monotonic_ns()
        buf = self._buf
        if not self._open:
            buf += data
            if not self._handshake(buf):
                return
            data = bytes(buf)
            buf.clear()
        elif buf:
            # The previous chunk ended inside a frame: join it with this one once it is whole
            # (a large frame in many small chunks is copied once, not once per chunk).
            buf += data
            if len(buf) < self._need:
                return
            data = bytes(buf)
            buf.clear()
        # Frames are cut from the immutable chunk: one copy per payload, no buffer shifting.
        pos = 0
        size = len(data)
        need = 0
        on_message = self._on_message
        while size - pos >= 2:
            b1 = data[pos + 1]
            n = b1 & 0x7F
            if n < 126:
                start = pos + 2
            elif n == 126:
                start = pos + 4
                if start > size:
                    break
                n = (data[pos + 2] << 8) | data[pos + 3]
            else:
                start = pos + 10
                if start > size:
                    break
                n = int.from_bytes(data[pos + 2 : start], "big")
            end = start + n
            if end > size:
                need = end - pos
                break
            b0 = data[pos]
            pos = end
            if b0 == _FIN_TEXT and not b1 & 0x80:
                on_message(data[start:end], ts)
            elif not self._control(b0, b1, data[start:end], ts):
                return
        self._need = need  # bytes the unfinished frame needs (0: its header is not whole)
        if pos < size:
            buf += memoryview(data)[pos:]

    def _handshake(self, buf: bytearray) -> bool:
        """Consume the HTTP upgrade response from `buf`; True once the websocket is open."""
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > _MAX_HANDSHAKE_BYTES:
                self._fail("handshake response too long")
            return False
        head = bytes(buf[:end]).decode("latin-1")
        del buf[: end + 4]
        lines = head.split("\r\n")
        status = lines[0].split(" ", 2)
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
        }
        accept = base64.b64encode(hashlib.sha1(self._key + _WS_GUID).digest()).decode()  # noqa: S324  RFC 6455 defines the accept key with SHA-1
        if len(status) < 2 or status[1] != "101":
            self._fail(f"handshake refused: {lines[0]}")
            return False
        if headers.get("sec-websocket-accept") != accept:
            self._fail("handshake: wrong Sec-WebSocket-Accept")
            return False
        self._open = True
        self.opened.set_result(None)
        return True

    def _control(self, b0: int, b1: int, payload: bytes, ts: int) -> bool:
        """Every frame but an unfragmented text frame; False when reading must stop."""
        if b1 & 0x80:
            self._fail("server sent a masked frame")
            return False
        opcode = b0 & 0x0F
        if opcode in (OP_TEXT, _OP_BINARY):
            if b0 & 0x80:
                self._on_message(payload, ts)
            else:
                self._fragments = [payload]
        elif opcode == _OP_CONT:
            self._fragments.append(payload)
            if b0 & 0x80:
                whole = b"".join(self._fragments)
                self._fragments = []
                self._on_message(whole, ts)
        elif opcode == _OP_PING:
            self.send(_OP_PONG, payload)
        elif opcode == _OP_CLOSE:
            self.close()
            if not self.closed.done():
                self.closed.set_exception(WebSocketError("closed by the server"))
            return False
        return True


class WsConnection(Protocol):
    """What a websocket user needs of a connection: the seam that tests fill with a fake."""

    @property
    def closed(self) -> asyncio.Future[None]:
        """Fails (with `WebSocketError`) when the connection ends."""
        ...

    def send(self, opcode: int, payload: bytes) -> None: ...

    def close(self) -> None: ...


WsConnector = Callable[[str, Callable[[bytes, int], None]], Awaitable[WsConnection]]
"""Opens a connection to a URL, handing each received message to the callback."""


class WsReader(WsConnection, Protocol):
    """A connection a market-data stream reads: also says when data last arrived."""

    @property
    def last_rx_ns(self) -> int:
        """`time.monotonic_ns()` of the last read from the socket (0 before the first)."""
        ...


WsReaderConnector = Callable[[str, Callable[[bytes, int], None]], Awaitable[WsReader]]
"""Opens a market-data connection to a URL, handing each received message to the callback."""


async def ws_connect(
    url: str, on_message: Callable[[bytes, int], None], *, send_at_once: bool = False
) -> WsClientProtocol:
    """Open a websocket to `url` (ws:// or wss://) and complete the handshake.

    `send_at_once`: every write leaves on the socket inside the call, not at the end of the
    loop turn. uvloop queues a write below the transport's high-water mark and sends it only
    once the loop has run every ready callback (or, for a write made inside a socket read,
    every other socket read of that turn): with 2,500 book messages a second that held an
    order request 0.5-0.7 ms (p50) between `write` and the venue reading it. With the mark at
    0 uvloop tries the send at once, as asyncio's own transports do; a send the kernel cannot
    take whole is queued as before (the protocol's pause/resume callbacks are no-ops).
    """
    parsed = urlsplit(url)
    secure = parsed.scheme == "wss"
    if parsed.scheme not in {"ws", "wss"} or not parsed.hostname:
        raise WebSocketError(f"not a websocket URL: {url}")
    port = parsed.port or (443 if secure else 80)
    path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
    host_header = parsed.netloc.rsplit("@", 1)[-1]
    loop = asyncio.get_running_loop()
    ssl_context = ssl.create_default_context() if secure else None
    transport, protocol = await loop.create_connection(
        lambda: WsClientProtocol(host_header, path, on_message),
        parsed.hostname,
        port,
        ssl=ssl_context,
        server_hostname=parsed.hostname if secure else None,
    )
    try:
        await asyncio.wait_for(protocol.opened, 10.0)
    except BaseException:
        protocol.close()
        raise
    if send_at_once:
        cast("asyncio.WriteTransport", transport).set_write_buffer_limits(high=0)
    return protocol
