"""The websocket client against real servers on loopback: what the market-data stream and
order entry rely on (frames whole and in order however the bytes arrive, messages stamped with
the read that brought them, a close, a dropped socket or a broken protocol reported on
`closed`, a request on the wire before `send` returns). Malformed frames, pings and fragmented
messages: tests/integration/test_market_data_frames.py."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import select
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from mm_daemon.venues.websocket import OP_TEXT, WebSocketError, ws_connect

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

Script = Callable[[web.WebSocketResponse], Awaitable[None]]
RawScript = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def ignore(_payload: bytes, _ts: int) -> None:
    return None


@contextlib.asynccontextmanager
async def aiohttp_server(script: Script) -> AsyncIterator[str]:
    """An aiohttp websocket server running `script` on each connection; yields its URL."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        await script(ws)
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def raw_server(script: RawScript, with_handshake: bytes = b"") -> AsyncIterator[str]:
    """A server that completes the handshake (its response followed by `with_handshake` in one
    write) and then writes whatever bytes `script` writes: for frames and cuts no websocket
    server library would make."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        key = next(
            line.split(":", 1)[1].strip()
            for line in head.split("\r\n")
            if line.lower().startswith("sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()  # noqa: S324  RFC 6455 handshake
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
            + accept.encode()
            + b"\r\n\r\n"
            + with_handshake
        )
        await writer.drain()
        try:
            await script(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        server.close()
        await server.wait_closed()


def text_frame(payload: bytes, first_byte: int = 0x81) -> bytes:
    """A server frame (unmasked) in the shortest length form."""
    n = len(payload)
    if n < 126:
        head = bytes((first_byte, n))
    elif n < 65_536:
        head = bytes((first_byte, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first_byte, 127)) + n.to_bytes(8, "big")
    return head + payload


PAYLOADS = [b"x" * 10, b"y" * 125, b"z" * 126, b"w" * 70_000, b'{"e":"depthUpdate"}']


@pytest.mark.parametrize("chunk_size", [1, 3, 125, 4096, 1 << 20])
async def test_frames_cut_at_any_chunk_boundary_arrive_whole_and_in_order(
    chunk_size: int,
) -> None:
    received: list[bytes] = []
    done = asyncio.Event()
    wire = b"".join(text_frame(p) for p in PAYLOADS)

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The large frame is cut finely only around its header: the cuts that matter.
        big = wire.index(b"w" * 16)
        for start, end, step in ((0, big + 16, chunk_size), (big + 16, len(wire), 4096)):
            for i in range(start, end, step):
                writer.write(wire[i : min(i + step, end)])
                await writer.drain()
                await asyncio.sleep(0)  # let the client read this piece on its own
        await reader.read()

    def on_message(payload: bytes, _ts: int) -> None:
        received.append(payload)
        if len(received) == len(PAYLOADS):
            done.set()

    async with raw_server(script) as url:
        ws = await ws_connect(url, on_message)
        try:
            await asyncio.wait_for(done.wait(), 10.0)
        finally:
            ws.close()
    assert received == PAYLOADS
    assert all(type(payload) is bytes for payload in received)


async def test_handshake_and_first_frames_in_one_read_are_all_delivered() -> None:
    received: list[bytes] = []
    done = asyncio.Event()
    second = text_frame(b"sec")

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)  # the first read has come and gone
        writer.write(second[3:])
        await reader.read()

    def on_message(payload: bytes, _ts: int) -> None:
        received.append(payload)
        if len(received) == 2:
            done.set()

    async with raw_server(script, with_handshake=text_frame(b"first") + second[:3]) as url:
        ws = await ws_connect(url, on_message)
        try:
            await asyncio.wait_for(done.wait(), 5.0)
        finally:
            ws.close()
    assert received == [b"first", b"sec"]


async def test_server_close_is_answered_and_fails_closed() -> None:
    answer: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    async def script(ws: web.WebSocketResponse) -> None:
        await ws.close(code=1001, message=b"going away")  # waits for the client's close frame
        answer.set_result(ws.close_code)  # the code the client answered with

    async with aiohttp_server(script) as url:
        ws = await ws_connect(url, ignore)
        with pytest.raises(WebSocketError, match="closed by the server"):
            await asyncio.wait_for(ws.closed, 5.0)
        assert await asyncio.wait_for(answer, 5.0) == 1000


async def test_dropped_tcp_connection_fails_closed() -> None:
    async def script(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()

    async with raw_server(script) as url:
        ws = await ws_connect(url, ignore)
        with pytest.raises(WebSocketError, match="connection closed"):
            await asyncio.wait_for(ws.closed, 5.0)


async def test_masked_server_frame_fails_the_connection_and_is_not_delivered() -> None:
    received: list[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(bytes((0x81, 0x80 | 1)) + b"\0\0\0\0" + b"a")
        await writer.drain()
        await reader.read()  # until the client leaves

    async with raw_server(script) as url:
        ws = await ws_connect(url, lambda payload, _ts: received.append(payload))
        with pytest.raises(WebSocketError, match="masked"):
            await asyncio.wait_for(ws.closed, 5.0)
    assert received == []


async def test_frames_read_together_share_their_receipt_time() -> None:
    received: list[tuple[bytes, int]] = []
    two, three = asyncio.Event(), asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # One write, before the client's loop gets to read: one read brings both frames.
        writer.write(text_frame(b"a") + text_frame(b"b"))
        await two.wait()
        writer.write(text_frame(b"c"))
        await reader.read()

    def on_message(payload: bytes, ts: int) -> None:
        received.append((payload, ts))
        (two if len(received) == 2 else three).set()

    async with raw_server(script) as url:
        ws = await ws_connect(url, on_message)
        try:
            await asyncio.wait_for(three.wait(), 5.0)
        finally:
            ws.close()
    assert [p for p, _ in received] == [b"a", b"b", b"c"]
    assert received[0][1] == received[1][1]
    assert received[2][1] > received[1][1]


async def test_a_message_is_on_the_socket_when_send_returns() -> None:
    """Order entry writes a request and goes on with market data in the same loop turn: the
    bytes must reach the kernel inside `send`, not at the end of the turn."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.settimeout(0.0)  # non-blocking, as the loop needs
    loop = asyncio.get_running_loop()
    connecting = loop.create_task(ws_connect(f"ws://127.0.0.1:{port}/ws", ignore))
    server_side, _ = await loop.sock_accept(listener)
    listener.close()
    try:
        head = b""
        while b"\r\n\r\n" not in head:
            head += await loop.sock_recv(server_side, 4096)
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID.encode()).digest())  # noqa: S324  RFC 6455 handshake
        await loop.sock_sendall(
            server_side,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n",
        )
        ws = await asyncio.wait_for(connecting, 5.0)
        ws.send(OP_TEXT, b'{"id":1}')
        # No await between the send and this check: the loop has not run since.
        readable, _, _ = select.select([server_side], [], [], 1.0)
        assert readable == [server_side]
        assert unmask(server_side.recv(64)) == b'{"id":1}'
        ws.close()
    finally:
        server_side.close()


def unmask(frame: bytes) -> bytes:
    """The payload of one short masked text frame, read as a server does."""
    assert frame[0] == 0x81  # FIN, text
    assert frame[1] & 0x80  # masked
    assert frame[1] & 0x7F == len(frame) - 6
    mask = frame[2:6]
    return bytes(b ^ mask[i % 4] for i, b in enumerate(frame[6:]))


async def test_every_frame_sent_has_a_mask_of_its_own() -> None:
    frames: list[bytes] = []
    done = asyncio.Event()

    async def script(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        while len(frames) < 50:
            frames.append(await reader.readexactly(2 + 4 + 8))
        done.set()

    async with raw_server(script) as url:
        ws = await ws_connect(url, ignore)
        try:
            for i in range(50):
                ws.send(OP_TEXT, b"request%d" % (i % 10))
            await asyncio.wait_for(done.wait(), 5.0)
        finally:
            ws.close()
    assert [unmask(f) for f in frames] == [b"request%d" % (i % 10) for i in range(50)]
    assert len({f[2:6] for f in frames}) == 50


async def test_a_refused_handshake_is_a_websocket_error() -> None:
    async def handler(_request: web.Request) -> web.Response:
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        with pytest.raises(WebSocketError, match="handshake"):
            await ws_connect(f"ws://127.0.0.1:{port}/ws", ignore)
    finally:
        await runner.cleanup()
