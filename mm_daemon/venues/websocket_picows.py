"""The websocket client on picows (a Cython RFC 6455 implementation for asyncio), behind the same
`WsConnection` seam as the hand-written client in `websocket`.

picows parses frames in place in its read buffer and calls a listener per frame; this module's
listener gives the users what the hand-written client gives them: `on_message(payload, ts_ns)`
per whole message (fragments joined), with `ts_ns` the `time.time_ns()` of the read that
brought the frame (taken at its first frame; `WSFrame.last_in_buffer` ends the read), pings
answered, a close answered and reported as `WebSocketError` on `closed`. picows writes a frame
with a `send()` system call inside `WSTransport.send` whenever nothing is queued, so a request
leaves inside the call as the hand-written client's `send_at_once` makes it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import picows
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

from mm_daemon.venues.websocket import WebSocketError

__all__ = ["PicowsConnection", "picows_connect"]

_TEXT, _BINARY, _CONT = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION
_PING, _CLOSE = WSMsgType.PING, WSMsgType.CLOSE
# RFC 6455 opcodes (what `WsConnection.send` takes) to picows' message types.
_MSG_TYPES = {int(t.value): t for t in WSMsgType}
_HANDSHAKE_TIMEOUT_S = 10.0


def _consume_error(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class PicowsConnection(WSListener):
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


async def picows_connect(url: str, on_message: Callable[[bytes, int], None]) -> PicowsConnection:
    """Open a websocket to `url` (ws:// or wss://) on picows and complete the handshake."""
    try:
        _transport, listener = await picows.ws_connect(
            lambda: PicowsConnection(on_message),
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
    assert isinstance(listener, PicowsConnection)  # noqa: S101  the factory above made it
    return listener
