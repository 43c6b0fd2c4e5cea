"""The websocket client of market data and order entry: picows (a Cython RFC 6455 client for
asyncio) behind the narrow `WsConnection` seam its users and their tests hold.

Why picows: it replaced a hand-written client (frames cut in a Python loop, a compiled frame
writer) after the two ran side by side in one run each, with the `--picows` switch the two
benchmarks had at commit b2e4cfd, and picows was at least as fast on every figure (ratios
picows / hand-written, two runs each, load average 3-5 on 2 shared cores; tables in
bench/README.md, raw runs in bench/results/websocket_clients.json):
- market data, `bench_market_data.py --repeats 8 --picows`: adapter messages/s 1.11 and 1.28
  (per CPU-second 1.04 and 1.14); receipt -> fair value at 2,500 msg/s p50 0.96 and 1.03, p99
  0.92 and 0.24 (the hand-written client's p99 carried two outlier runs);
- order entry, `bench_reaction.py --seconds 15 --rounds 4 --only native --picows`: reaction
  p50 0.59 and 0.69 with picows on both paths, 0.81 and 0.50 on order entry alone (p99 bound
  by the load); the hops each client owns: frame read -> order handed 255 vs 268 us and 206 vs
  227 us, handed -> on the wire 99-106 vs 108 us and 90-97 vs 92 us.

What this module adds to picows: `on_message(payload, ts_ns)` per whole message (fragments
joined), handed over synchronously from the read, with `ts_ns` the `time.time_ns()` of the read
that brought the frame (taken at its first frame; `WSFrame.last_in_buffer` ends the read, so
every frame must reach the listener: pings are answered here, not by picows); a close answered
and reported as `WebSocketError` on `closed`, as is a broken protocol or a lost connection.
picows writes a frame with one `send()` system call inside `WSTransport.send` whenever nothing
is queued, so an order request is on the wire when `send` returns (uvloop's own transport would
hold a small write until the end of the loop turn). picows draws masking keys from C `rand()`,
not from a strong source as RFC 6455 section 5.3 asks: masking protects proxies that read
cleartext from payloads a script chose, and the venues are reached over TLS (wss).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import picows
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

__all__ = [
    "OP_TEXT",
    "WebSocketError",
    "WsClient",
    "WsConnection",
    "WsConnector",
    "ws_connect",
]

OP_TEXT = 0x1  # RFC 6455 opcodes, as `WsConnection.send` takes them
_TEXT, _BINARY, _CONT = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION
_PING, _CLOSE = WSMsgType.PING, WSMsgType.CLOSE
_MSG_TYPES = {int(t.value): t for t in WSMsgType}
_HANDSHAKE_TIMEOUT_S = 10.0


class WebSocketError(ConnectionError):
    """The websocket handshake failed, the server broke the protocol, or the socket closed."""


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


def _consume_error(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class WsClient(WSListener):
    """One connection: picows' listener and the `WsConnection` its user holds."""

    def __init__(self, on_message: Callable[[bytes, int], None]) -> None:
        self._on_message = on_message
        self._transport: WSTransport | None = None
        self._ended: asyncio.Task[None] | None = None
        self._read_ns = 0  # time.time_ns() of the read being handed over; 0 between reads
        self._fragments: list[bytes] = []
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A connection may end while nobody awaits it: mark its error as seen.
        self._closed.add_done_callback(_consume_error)
        self.last_rx_ns = 0  # time.monotonic_ns() of the last read

    @property
    def closed(self) -> asyncio.Future[None]:
        return self._closed

    def send(self, opcode: int, payload: bytes) -> None:
        transport = self._transport
        if transport is not None:
            transport.send(_MSG_TYPES[opcode], payload)

    def close(self) -> None:
        transport = self._transport
        if transport is not None and not transport.is_disconnected:
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()

    # -- picows' callbacks ------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._transport = transport
        # picows keeps the error that made it close the connection for `wait_disconnected`;
        # awaited nowhere else, asyncio would report it as never retrieved.
        self._ended = asyncio.get_running_loop().create_task(transport.wait_disconnected())
        self._ended.add_done_callback(_consume_error)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        ts = self._read_ns
        if not ts:
            ts = self._read_ns = time.time_ns()
            self.last_rx_ns = time.monotonic_ns()
        if frame.last_in_buffer:
            self._read_ns = 0
        msg_type = frame.msg_type
        if msg_type is _TEXT and frame.fin:
            self._on_message(frame.get_payload_as_bytes(), ts)
        else:
            self._other_frame(transport, frame, msg_type, ts)

    def _other_frame(
        self, transport: WSTransport, frame: WSFrame, msg_type: WSMsgType, ts: int
    ) -> None:
        if msg_type is _TEXT or msg_type is _BINARY:
            if frame.fin:
                self._on_message(frame.get_payload_as_bytes(), ts)
            else:
                self._fragments = [frame.get_payload_as_bytes()]
        elif msg_type is _CONT:
            self._fragments.append(frame.get_payload_as_bytes())
            if frame.fin:
                whole = b"".join(self._fragments)
                self._fragments = []
                self._on_message(whole, ts)
        elif msg_type is _PING:
            transport.send_pong(frame.get_payload_as_bytes())
        elif msg_type is _CLOSE:
            self._fail("closed by the server")
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        handshake = transport.close_handshake
        sent = handshake.sent if handshake is not None else None
        if sent is not None and sent.code is not WSCloseCode.OK:
            # picows closed with a code of its own: the server broke the protocol (or a
            # handler raised).
            self._fail(f"closed with {sent.code.name}: {sent.reason}")
        else:
            self._fail("connection closed")

    def _fail(self, why: str) -> None:
        if not self._closed.done():
            self._closed.set_exception(WebSocketError(why))


async def ws_connect(url: str, on_message: Callable[[bytes, int], None]) -> WsClient:
    """Open a websocket to `url` (ws:// or wss://) and complete the handshake."""
    try:
        _transport, listener = await picows.ws_connect(
            lambda: WsClient(on_message),
            url,
            websocket_handshake_timeout=_HANDSHAKE_TIMEOUT_S,
            enable_auto_pong=False,  # every frame reaches the listener: it ends each read
            max_redirects=0,
            logger_name="client",
        )
    except picows.WSInvalidURL as exc:
        raise WebSocketError(f"not a websocket URL: {url}") from exc
    except picows.WSError as exc:
        raise WebSocketError(f"handshake failed: {exc}") from exc
    assert isinstance(listener, WsClient)  # noqa: S101  the factory above made it
    return listener
