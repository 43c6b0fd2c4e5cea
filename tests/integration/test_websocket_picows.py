"""The picows websocket client against real servers on loopback: what the market-data stream and
order entry rely on (messages with their receipt time, malformed frames counted, pings answered,
fragments joined, a close or a broken protocol reported on `closed`, a request on the wire
before `send` returns)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import select
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest
from aiohttp import WSMsgType, web

from mm_daemon.core.types import Instrument, InstrumentKind, MarketEvent, Trade
from mm_daemon.engine.metrics import Metrics
from mm_daemon.venues.binance_stream import NativeStream
from mm_daemon.venues.websocket import OP_TEXT, WebSocketError
from mm_daemon.venues.websocket_picows import picows_connect

INST = Instrument(
    "perp", "BTC/USDT:USDT", "BTCUSDT", InstrumentKind.PERPETUAL, "BTC", "USDT", 0.1, 0.001
)
GOOD_TRADE = {"e": "trade", "s": "BTCUSDT", "T": 1, "t": 42, "p": "100.0", "q": "1", "m": False}
MALFORMED = [
    "not json at all",
    "[1, 2, 3]",
    '{"e": "trade", "s": "BTCUSDT", "T": 1}',
    '{"stream": "btcusdt@trade"}',
]
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
async def raw_server(script: RawScript) -> AsyncIterator[str]:
    """A server that completes the handshake and then writes whatever bytes `script` writes:
    for frames no websocket server library would send."""

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
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n"
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
    assert len(payload) < 126
    return bytes((first_byte, len(payload))) + payload


async def test_malformed_frames_are_counted_and_the_stream_carries_on() -> None:
    done = asyncio.Event()

    async def script(ws: web.WebSocketResponse) -> None:
        request = orjson.loads((await ws.receive()).data)
        await ws.send_str(orjson.dumps({"result": None, "id": request["id"]}).decode())
        for frame in MALFORMED:
            await ws.send_str(frame)
        await ws.send_str(orjson.dumps(GOOD_TRADE).decode())
        await done.wait()

    events: list[MarketEvent] = []
    metrics = Metrics()
    async with aiohttp_server(script) as url:
        stream = NativeStream(
            venue="perp",
            ws_url=url,
            instrument=INST,
            kind="trade",
            usdm=True,
            sink=lambda e: (events.append(e), done.set()),  # type: ignore[func-returns-value]
            malformed_counter=metrics.malformed_frames.labels("perp"),
            connector=picows_connect,
        )
        task = asyncio.get_running_loop().create_task(stream.run_once())
        try:
            await asyncio.wait_for(done.wait(), 10.0)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert metrics.registry.get_sample_value("mm_malformed_frames_total", {"venue": "perp"}) == len(
        MALFORMED
    )
    assert [e.trade_id for e in events if isinstance(e, Trade)] == [42]


async def test_server_ping_is_answered_with_a_pong() -> None:
    got_pong: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def script(ws: web.WebSocketResponse) -> None:
        await ws.ping(b"are-you-there")
        msg = await ws.receive()
        if msg.type is WSMsgType.PONG:
            got_pong.set_result(msg.data)

    async with aiohttp_server(script) as url:
        ws = await picows_connect(url, ignore)
        try:
            assert await asyncio.wait_for(got_pong, 5.0) == b"are-you-there"
        finally:
            ws.close()


async def test_fragmented_message_is_joined() -> None:
    received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def script(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # TEXT without FIN, CONTINUATION without FIN, CONTINUATION with FIN.
        for first_byte, part in ((0x01, b'{"a":'), (0x00, b' 1, "b"'), (0x80, b": 2}")):
            writer.write(text_frame(part, first_byte))
        await writer.drain()
        await received

    def on_message(payload: bytes, _ts: int) -> None:
        if not received.done():
            received.set_result(payload)

    async with raw_server(script) as url:
        ws = await picows_connect(url, on_message)
        try:
            assert orjson.loads(await asyncio.wait_for(received, 5.0)) == {"a": 1, "b": 2}
        finally:
            ws.close()


async def test_server_close_is_answered_and_fails_closed() -> None:
    answer: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    async def script(ws: web.WebSocketResponse) -> None:
        await ws.close(code=1001, message=b"going away")  # waits for the client's close frame
        answer.set_result(ws.close_code)  # the code the client answered with

    async with aiohttp_server(script) as url:
        ws = await picows_connect(url, ignore)
        with pytest.raises(WebSocketError, match="closed by the server"):
            await asyncio.wait_for(ws.closed, 5.0)
        assert await asyncio.wait_for(answer, 5.0) == 1000


async def test_dropped_tcp_connection_fails_closed() -> None:
    async def script(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()

    async with raw_server(script) as url:
        ws = await picows_connect(url, ignore)
        with pytest.raises(WebSocketError, match="connection closed"):
            await asyncio.wait_for(ws.closed, 5.0)


async def test_masked_server_frame_fails_the_connection_and_is_not_delivered() -> None:
    received: list[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(bytes((0x81, 0x80 | 1)) + b"\0\0\0\0" + b"a")
        await writer.drain()
        await reader.read()  # until the client leaves

    async with raw_server(script) as url:
        ws = await picows_connect(url, lambda payload, _ts: received.append(payload))
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
        ws = await picows_connect(url, on_message)
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
    connecting = loop.create_task(picows_connect(f"ws://127.0.0.1:{port}/ws", ignore))
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
        frame = server_side.recv(64)
        mask, body = frame[2:6], frame[6:]
        assert frame[0] == 0x81
        assert bytes(b ^ mask[i % 4] for i, b in enumerate(body)) == b'{"id":1}'
        ws.close()
    finally:
        server_side.close()


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
            await picows_connect(f"ws://127.0.0.1:{port}/ws", ignore)
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/x", "ws://"])
async def test_non_websocket_urls_are_refused(url: str) -> None:
    with pytest.raises(WebSocketError, match="websocket URL"):
        await picows_connect(url, ignore)
