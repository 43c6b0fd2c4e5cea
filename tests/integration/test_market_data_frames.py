"""The native websocket reader against a scripted loopback server: malformed frames are counted
and never fatal; pings are answered; fragmented messages are joined."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest
from aiohttp import WSMsgType, web

from mm_daemon.core.types import Instrument, InstrumentKind, MarketEvent, Trade
from mm_daemon.engine.metrics import Metrics
from mm_daemon.venues.binance_stream import NativeStream
from mm_daemon.venues.websocket import ws_connect

INST = Instrument(
    "perp", "BTC/USDT:USDT", "BTCUSDT", InstrumentKind.PERPETUAL, "BTC", "USDT", 0.1, 0.001
)
GOOD_TRADE = {"e": "trade", "s": "BTCUSDT", "T": 1, "t": 42, "p": "100.0", "q": "1", "m": False}
MALFORMED = [
    "not json at all",
    "[1, 2, 3]",
    '{"e": "trade", "s": "BTCUSDT", "T": 1}',
    '{"e": "trade", "s": "BTCUSDT", "T": 1, "t": 1, "p": "abc", "q": "1", "m": true}',
    '{"stream": "btcusdt@trade"}',
]

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
Script = Callable[[web.WebSocketResponse], Awaitable[None]]


@contextlib.asynccontextmanager
async def scripted_server(script: Script) -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        await script(ws)
        return ws

    app = web.Application()
    app.router.add_get("/public/ws/0", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"ws://127.0.0.1:{port}/public/ws/0"
    finally:
        await runner.cleanup()


async def ack_subscription(ws: web.WebSocketResponse) -> None:
    msg = await ws.receive()
    request = orjson.loads(msg.data)
    await ws.send_str(orjson.dumps({"result": None, "id": request["id"]}).decode())


async def test_malformed_frames_are_counted_and_the_stream_carries_on() -> None:
    done = asyncio.Event()

    async def script(ws: web.WebSocketResponse) -> None:
        await ack_subscription(ws)
        for frame in MALFORMED:
            await ws.send_str(frame)
        await ws.send_str(orjson.dumps(GOOD_TRADE).decode())
        await done.wait()

    events: list[MarketEvent] = []
    metrics = Metrics()
    async with scripted_server(script) as url:
        stream = NativeStream(
            venue="perp",
            ws_url=url,
            instrument=INST,
            kind="trade",
            usdm=True,
            sink=lambda e: (events.append(e), done.set()),  # type: ignore[func-returns-value]
            malformed_counter=metrics.malformed_frames.labels("perp"),
        )
        task = asyncio.get_running_loop().create_task(stream.run_once())
        try:
            await asyncio.wait_for(done.wait(), 10.0)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert stream.stats.malformed == len(MALFORMED)
    assert metrics.registry.get_sample_value("mm_malformed_frames_total", {"venue": "perp"}) == len(
        MALFORMED
    )
    assert stream.stats.connects == 1
    assert len(events) == 1
    assert isinstance(events[0], Trade)
    assert events[0].trade_id == 42


async def test_server_ping_is_answered_with_a_pong() -> None:
    got_pong: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def script(ws: web.WebSocketResponse) -> None:
        await ws.ping(b"are-you-there")
        msg = await ws.receive()
        if msg.type is WSMsgType.PONG:
            got_pong.set_result(msg.data)
        await asyncio.sleep(0)

    async with scripted_server(script) as url:
        ws = await ws_connect(url, lambda _payload, _ts: None)
        try:
            assert await asyncio.wait_for(got_pong, 5.0) == b"are-you-there"
        finally:
            ws.close()


async def test_fragmented_message_is_joined() -> None:
    received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

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
        # TEXT without FIN, CONTINUATION without FIN, CONTINUATION with FIN.
        for first_byte, part in ((0x01, b'{"a":'), (0x00, b' 1, "b"'), (0x80, b": 2}")):
            writer.write(bytes((first_byte, len(part))) + part)
        await writer.drain()
        await received
        writer.close()

    def on_message(payload: bytes, ts: int) -> None:
        if not received.done():
            received.set_result(payload)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        ws = await ws_connect(f"ws://127.0.0.1:{port}/ws", on_message)
        try:
            assert orjson.loads(await asyncio.wait_for(received, 5.0)) == {"a": 1, "b": 2}
        finally:
            ws.close()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/x", "ws://"])
async def test_non_websocket_urls_are_refused(url: str) -> None:
    with pytest.raises(ConnectionError, match="websocket URL"):
        await ws_connect(url, lambda _payload, _ts: None)
