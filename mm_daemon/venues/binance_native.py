"""Native Binance market data beside ccxt: frame parsing, book sync and the websocket reader.

ccxt.pro's `watch_order_book` parses every level into floats, keeps its own book and resolves a
future per message; about 49 us a message. Here a frame goes from the socket through orjson
straight into integer ticks and lots and into the core `Book` (`mm_daemon.core.book`), which
checks Binance's own sequence rules. ccxt still loads markets and serves the REST snapshot
(its sandbox URLs, rate limiter and signing stay in one place).

Book sync (Binance's documented procedure, spot and USD-M):
1. subscribe to `<symbol>@depth@100ms` and buffer the diffs;
2. fetch the REST snapshot `depth?limit=1000` (lastUpdateId `L`);
3. drop buffered diffs with `u <= L` (spot) / `u < L` (USD-M); the first kept one straddles `L`;
4. then every diff continues the previous one (`U == prev_u + 1` spot, `pu == prev_u` USD-M).
A gap or a crossed book starts over at 2 (buffering again) and is counted as a resync.

`BinanceDepthSync` is that state machine for one symbol, with no I/O: it is handed frames and
snapshots and says what to emit. `NativeStream` is one websocket (one symbol, one stream kind:
depth or trades) read with a minimal websocket client on a bare asyncio transport
(`WsClientProtocol`); the caller (`ccxt_venue.CcxtMarketData`) supervises it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, fields
from heapq import heappush
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast
from urllib.parse import urlsplit

import orjson
import structlog

from mm_daemon.core.book import ApplyResult, Book, SequenceRule
from mm_daemon.core.types import (
    BookDelta,
    BookLevels,
    BookSnapshot,
    Instrument,
    MarketEvent,
    Side,
    Trade,
)

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram

ApplySide = Callable[[Any, dict[int, int], list[int], bool, float, float], BookLevels]


class FrameParser(NamedTuple):
    """The compiled frame readers (`mm_daemon._levels`): whole Binance frames into integers.

    Each returns None for a frame it does not recognise as a plain frame of its kind for the
    symbol (other events, escapes, floats, odd nesting, text that is not plain decimal); the
    stream then takes its general path (orjson), which also counts what is malformed.
    """

    parse_depth: Callable[[bytes, bytes, float, float], DepthFields | None]
    parse_trade: Callable[[bytes, bytes, float, float], TradeFields | None]
    apply_levels: Callable[
        [BookLevels, BookLevels, dict[int, int], list[int], dict[int, int], list[int]],
        tuple[int | None, int | None],
    ]
    """Writes both sides' levels and trims their heaps (`Book.finish_update` but the crossed
    check); returns the touch for `Book.set_touch`."""


DepthFields = tuple[int, int, int, int, BookLevels, BookLevels]
"""(E in ms, U, u, pu or -1, bids, asks) of a depthUpdate, levels in ticks and lots."""
TradeFields = tuple[int, int, int, int, bool]
"""(T in ms, trade id, price in ticks, size in lots, buyer is maker) of a trade."""

compiled_apply_side: ApplySide | None
compiled_frame_parser: FrameParser | None
try:  # the compiled hot path (setup.py builds it where a C compiler is at hand)
    from mm_daemon import _levels

    compiled_apply_side = _levels.apply_side
    compiled_frame_parser = FrameParser(
        _levels.parse_depth, _levels.parse_trade, _levels.apply_levels
    )
except ImportError:  # pragma: no cover  depends on the build
    compiled_apply_side = None
    compiled_frame_parser = None

__all__ = [
    "DEPTH_RATE",
    "BinanceDepthSync",
    "DepthFields",
    "FrameError",
    "FrameParser",
    "LevelParser",
    "NativeStream",
    "StreamKind",
    "TradeFields",
    "WebSocketError",
    "WsClientProtocol",
    "new_book_delta",
    "new_trade",
    "parse_depth_event",
    "parse_levels",
    "parse_snapshot",
    "parse_trade_event",
    "read_capture",
    "recorded_data_dir",
    "shared_parser",
    "stream_name",
    "ws_connect",
]

log = structlog.get_logger(__name__)

DEPTH_RATE = "100ms"
"""Diff-depth stream rate, the one ccxt subscribes to (both spot and USD-M serve it)."""

StreamKind = Literal["depth", "trade"]
SnapshotFetcher = Callable[[str], Awaitable[Any]]
"""Fetches the raw REST depth snapshot (`{"lastUpdateId":..,"bids":..,"asks":..}`) of a venue id."""

_NS_PER_MS = 1_000_000
_loads = orjson.loads
_BUY = Side.BUY
_APPLIED = ApplyResult.APPLIED
_SKIPPED = ApplyResult.SKIPPED
_SELL = Side.SELL
_NEGATED, _AS_IS = True, False  # heap keys of a side: bids negated (best on top), asks as they are


def _slot_setters(cls: type, expected: tuple[str, ...]) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot descriptors' setters of a frozen slotted dataclass, in field order.

    A frozen dataclass's `__init__` sets each field through `object.__setattr__`; setting the
    same fields through the slot descriptors, on an instance made with `object.__new__`, builds
    an ordinary instance (same class, equal to one built by the constructor) at about half the
    cost, which counts on the per-frame path. The field names are checked at import so a change
    in `core.types` fails loudly instead of filling the wrong fields.
    """
    names = tuple(f.name for f in fields(cls))
    if names != expected:
        raise RuntimeError(f"{cls.__name__} fields changed: {names}")
    return tuple(getattr(cls, name).__set__ for name in names)


def _delta_constructor() -> Callable[..., BookDelta]:
    """`BookDelta(...)` through its slot setters (see `_slot_setters`)."""
    s0, s1, s2, s3, s4, s5, s6, s7, s8 = _slot_setters(
        BookDelta,
        (
            "venue",
            "symbol",
            "ts_exchange_ns",
            "ts_local_ns",
            "first_update_id",
            "last_update_id",
            "prev_update_id",
            "bids",
            "asks",
        ),
    )
    new = object.__new__

    def make(  # noqa: PLR0917  one argument per BookDelta field, as its constructor
        venue: str,
        symbol: str,
        ts_exchange_ns: int,
        ts_local_ns: int,
        first_update_id: int,
        last_update_id: int,
        prev_update_id: int,
        bids: BookLevels,
        asks: BookLevels,
    ) -> BookDelta:
        delta: BookDelta = new(BookDelta)
        s0(delta, venue)
        s1(delta, symbol)
        s2(delta, ts_exchange_ns)
        s3(delta, ts_local_ns)
        s4(delta, first_update_id)
        s5(delta, last_update_id)
        s6(delta, prev_update_id)
        s7(delta, bids)
        s8(delta, asks)
        return delta

    return make


def _trade_constructor() -> Callable[..., Trade]:
    """`Trade(...)` through its slot setters (see `_slot_setters`)."""
    s0, s1, s2, s3, s4, s5, s6, s7 = _slot_setters(
        Trade,
        (
            "venue",
            "symbol",
            "ts_exchange_ns",
            "ts_local_ns",
            "trade_id",
            "price_ticks",
            "size_lots",
            "aggressor",
        ),
    )
    new = object.__new__

    def make(  # noqa: PLR0917  one argument per Trade field, as its constructor
        venue: str,
        symbol: str,
        ts_exchange_ns: int,
        ts_local_ns: int,
        trade_id: int,
        price_ticks: int,
        size_lots: int,
        aggressor: Side,
    ) -> Trade:
        trade: Trade = new(Trade)
        s0(trade, venue)
        s1(trade, symbol)
        s2(trade, ts_exchange_ns)
        s3(trade, ts_local_ns)
        s4(trade, trade_id)
        s5(trade, price_ticks)
        s6(trade, size_lots)
        s7(trade, aggressor)
        return trade

    return make


def _compiled_builder(cls: type, python_builder: Callable[..., Any]) -> Callable[..., Any]:
    """The compiled slot builder for `cls` (same fields, same order as `python_builder`
    checked); `python_builder` where the compiled module is not built."""
    if compiled_frame_parser is None:
        return python_builder
    return cast("Callable[..., Any]", _levels.SlotBuilder(cls, tuple(f.name for f in fields(cls))))


new_book_delta: Callable[..., BookDelta] = _compiled_builder(BookDelta, _delta_constructor())
new_trade: Callable[..., Trade] = _compiled_builder(Trade, _trade_constructor())


class FrameError(ValueError):
    """A frame that is not valid JSON or misses what its kind must carry."""


def stream_name(instrument: Instrument, kind: StreamKind) -> str:
    lower = instrument.exchange_symbol.lower()
    return f"{lower}@depth@{DEPTH_RATE}" if kind == "depth" else f"{lower}@trade"


def parse_levels(raw: list[list[str]], tick: float, lot: float) -> BookLevels:
    """Binance `[["price","qty"], ...]` into (ticks, lots) pairs, order kept."""
    return tuple((round(float(p) / tick), round(float(q) / lot)) for p, q in raw)


def parse_snapshot(raw: Any, instrument: Instrument) -> tuple[int, BookLevels, BookLevels]:
    """(lastUpdateId, bids, asks) of a REST depth snapshot."""
    try:
        tick = instrument.tick_size
        lot = instrument.lot_size
        return (
            int(raw["lastUpdateId"]),
            parse_levels(raw["bids"], tick, lot),
            parse_levels(raw["asks"], tick, lot),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise FrameError(f"malformed depth snapshot: {exc!r}") from None


class LevelParser:
    """Binance level strings into (ticks, lots), memoised per string.

    Prices and sizes repeat all the time on a live book (the same levels change again and
    again; "0.000" deletes), so a dict lookup replaces float(), a division and round() for most
    levels: about twice as fast as parsing each string. Each memo is cleared past `max_entries`.
    """

    __slots__ = ("_lot", "_max", "_prices", "_sizes", "_tick")

    def __init__(self, tick: float, lot: float, max_entries: int = 50_000) -> None:
        self._tick = tick
        self._lot = lot
        self._max = max_entries
        self._prices: dict[str, int] = {}
        self._sizes: dict[str, int] = {}

    def memos(self) -> tuple[dict[str, int], dict[str, int]]:
        """The (price, size) memos, for fused parse-and-apply loops."""
        return self._prices, self._sizes

    @property
    def max_entries(self) -> int:
        return self._max

    def levels(self, raw: list[list[str]]) -> BookLevels:
        prices = self._prices
        sizes = self._sizes
        out: list[tuple[int, int]] = []
        append = out.append
        for p, q in raw:
            px = prices.get(p)
            if px is None:
                px = round(float(p) / self._tick)
                if len(prices) >= self._max:
                    prices.clear()
                prices[p] = px
            sz = sizes.get(q)
            if sz is None:
                sz = round(float(q) / self._lot)
                if len(sizes) >= self._max:
                    sizes.clear()
                sizes[q] = sz
            append((px, sz))
        return tuple(out)


_SHARED_PARSERS: dict[tuple[float, float], LevelParser] = {}


def shared_parser(tick: float, lot: float) -> LevelParser:
    """One memoising parser per (tick, lot), shared by every stream of the process."""
    parser = _SHARED_PARSERS.get((tick, lot))
    if parser is None:
        parser = _SHARED_PARSERS[(tick, lot)] = LevelParser(tick, lot)
    return parser


def parse_depth_event(
    data: Any,
    instrument: Instrument,
    venue: str,
    ts_local_ns: int,
    parser: LevelParser | None = None,
) -> BookDelta:
    """A `depthUpdate` payload (spot or USD-M) as a BookDelta; USD-M's `pu` kept, else -1."""
    if parser is None:
        parser = LevelParser(instrument.tick_size, instrument.lot_size)
    try:
        return BookDelta(
            venue,
            instrument.symbol,
            data["E"] * _NS_PER_MS,
            ts_local_ns,
            data["U"],
            data["u"],
            data.get("pu", -1),
            parser.levels(data["b"]),
            parser.levels(data["a"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FrameError(f"malformed depthUpdate: {exc!r}") from None


def parse_trade_event(data: Any, instrument: Instrument, venue: str, ts_local_ns: int) -> Trade:
    """A `trade` payload as a Trade; `m` (buyer is maker) means the aggressor sold."""
    try:
        return new_trade(
            venue,
            instrument.symbol,
            data["T"] * _NS_PER_MS,
            ts_local_ns,
            int(data["t"]),
            round(float(data["p"]) / instrument.tick_size),
            round(float(data["q"]) / instrument.lot_size),
            _SELL if data["m"] else _BUY,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FrameError(f"malformed trade: {exc!r}") from None


class BinanceDepthSync:
    """Binance's book-sync procedure for one symbol; pure (no I/O, no clock).

    `on_delta` returns what the caller should do with a parsed diff:
    - `ApplyResult.APPLIED`: applied to `book`; emit it;
    - `ApplyResult.SKIPPED`: buffered (awaiting a snapshot) or older than the book; emit nothing;
    - `GAP` / `CROSSED`: the book is out of sync; the diff is kept in the buffer and the caller
      must fetch a new snapshot (`awaiting_snapshot` is now true).
    `on_snapshot` loads a REST snapshot and replays the buffer; it returns APPLIED when the book
    is in sync (emit `snapshot_event`), or GAP/CROSSED when the snapshot does not join the
    buffered diffs (fetch again).
    """

    __slots__ = ("_buffer", "awaiting_snapshot", "book", "instrument", "usdm", "venue")

    MAX_BUFFER = 10_000

    def __init__(
        self, instrument: Instrument, venue: str, *, usdm: bool, book: Book | None = None
    ) -> None:
        self.instrument = instrument
        self.venue = venue
        self.usdm = usdm
        rule = SequenceRule.BINANCE_USDM if usdm else SequenceRule.BINANCE_SPOT
        if book is None:
            book = Book(rule)
        book.rule = rule
        self.book = book
        self._buffer: list[BookDelta] = []
        self.awaiting_snapshot = True

    def reset(self) -> None:
        """Forget the book (e.g. the connection dropped): buffer until the next snapshot."""
        self.book.invalidate()
        self._buffer.clear()
        self.awaiting_snapshot = True

    def on_delta(self, delta: BookDelta) -> ApplyResult:
        if self.awaiting_snapshot:
            buf = self._buffer
            buf.append(delta)
            if len(buf) > self.MAX_BUFFER:
                del buf[: len(buf) // 2]
            return ApplyResult.SKIPPED
        result = self.book.update(
            delta.first_update_id,
            delta.last_update_id,
            delta.prev_update_id,
            delta.bids,
            delta.asks,
        )
        if result >= ApplyResult.GAP:
            self.out_of_sync(result, delta)
        return result

    def out_of_sync(self, result: ApplyResult, delta: BookDelta) -> None:
        """The book broke on `delta` (GAP: keep it, it is newer than the book; CROSSED: it was
        applied): buffer from here until the next snapshot."""
        self.book.invalidate()
        self.awaiting_snapshot = True
        self._buffer.clear()
        if result == ApplyResult.GAP:
            self._buffer.append(delta)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def first_buffered_id(self) -> int | None:
        return self._buffer[0].first_update_id if self._buffer else None

    def on_snapshot(self, last_update_id: int, bids: BookLevels, asks: BookLevels) -> ApplyResult:
        book = self.book
        result = book.load(last_update_id, bids, asks)
        if result:
            return result
        for delta in self._buffer:
            result = book.update(
                delta.first_update_id,
                delta.last_update_id,
                delta.prev_update_id,
                delta.bids,
                delta.asks,
            )
            if result >= ApplyResult.GAP:
                # The snapshot does not join the buffered diffs: keep buffering, fetch again.
                book.invalidate()
                return result
        self._buffer.clear()
        self.awaiting_snapshot = False
        return ApplyResult.APPLIED

    def snapshot_event(self, ts_exchange_ns: int, ts_local_ns: int) -> BookSnapshot:
        """The synced book as a BookSnapshot (emitted after a (re)sync)."""
        book = self.book
        return BookSnapshot(
            self.venue,
            self.instrument.symbol,
            ts_exchange_ns,
            ts_local_ns,
            book.update_id,
            book.bids(),
            book.asks(),
        )


@dataclass(slots=True)
class StreamStats:
    """Counters a supervisor reads (and the staleness watchdog)."""

    last_rx_ns: int = 0  # time.monotonic_ns() of the last frame
    frames: int = 0
    malformed: int = 0
    unknown_symbol: int = 0
    resyncs: int = 0
    connects: int = 0
    synced_once: asyncio.Event = field(default_factory=asyncio.Event)


# -- a minimal websocket client ---------------------------------------------------------------

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_MAX_HANDSHAKE_BYTES = 65_536
_FIN_TEXT = 0x80 | _OP_TEXT


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
        self.send(_OP_TEXT, text.encode())

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
        if opcode in (_OP_TEXT, _OP_BINARY):
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


async def ws_connect(url: str, on_message: Callable[[bytes, int], None]) -> WsClientProtocol:
    """Open a websocket to `url` (ws:// or wss://) and complete the handshake."""
    parsed = urlsplit(url)
    secure = parsed.scheme == "wss"
    if parsed.scheme not in {"ws", "wss"} or not parsed.hostname:
        raise WebSocketError(f"not a websocket URL: {url}")
    port = parsed.port or (443 if secure else 80)
    path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
    host_header = parsed.netloc.rsplit("@", 1)[-1]
    loop = asyncio.get_running_loop()
    ssl_context = ssl.create_default_context() if secure else None
    _, protocol = await loop.create_connection(
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
    return protocol


class NativeStream:
    """One Binance websocket: one symbol, one stream kind; emits core events into `sink`.

    `run_once` connects, subscribes, (for depth) syncs the book and reads until the socket
    fails; it raises `WebSocketError` (a ConnectionError) or `OSError` when the connection ends.
    The supervisor calls it again with backoff.
    """

    # Slots, not an instance dict: past 30 attributes an instance dict stops sharing its keys
    # and every `self.x` on the per-frame path becomes a dict lookup.
    __slots__ = (
        "_apply_side",
        "_book",
        "_clock",
        "_expected_symbol",
        "_fetch_snapshot",
        "_frames",
        "_held",
        "_hold_trades",
        "_is_depth",
        "_latency",
        "_latency_count",
        "_latency_every",
        "_lot",
        "_malformed",
        "_max_snapshot_attempts",
        "_on_sync_change",
        "_parser",
        "_prices",
        "_resyncs",
        "_sizes",
        "_snapshot_task",
        "_symbol",
        "_symbol_bytes",
        "_tap",
        "_tick",
        "_ws",
        "applied",
        "instrument",
        "kind",
        "sink",
        "stats",
        "stream",
        "sync",
        "usdm",
        "venue",
        "ws_url",
    )

    def __init__(
        self,
        *,
        venue: str,
        ws_url: str,
        instrument: Instrument,
        kind: StreamKind,
        usdm: bool,
        sink: Callable[[MarketEvent], None],
        fetch_snapshot: SnapshotFetcher | None = None,
        on_sync_change: Callable[[bool, str], None] | None = None,
        malformed_counter: Counter | None = None,
        latency_histogram: Histogram | None = None,
        resync_counter: Counter | None = None,
        max_snapshot_attempts: int = 5,
        book: Book | None = None,
        trades_after_book: bool = False,
        clock: Callable[[], int] = time.time_ns,
        tap: Callable[[bytes, int], None] | None = None,
    ) -> None:
        if kind == "depth" and fetch_snapshot is None:
            raise ValueError("a depth stream needs fetch_snapshot")
        self.venue = venue
        self.ws_url = ws_url
        self.instrument = instrument
        self.kind = kind
        self.usdm = usdm
        self.sink = sink
        self.stream = stream_name(instrument, kind)
        self.stats = StreamStats()
        self.sync = BinanceDepthSync(instrument, venue, usdm=usdm, book=book)
        self._book = self.sync.book
        self._fetch_snapshot = fetch_snapshot
        self._on_sync_change = on_sync_change
        self._malformed = malformed_counter
        self._latency = latency_histogram
        self._resyncs = resync_counter
        self._max_snapshot_attempts = max_snapshot_attempts
        self._clock = clock  # stamps the events this stream makes itself (snapshots)
        self._tap = tap  # sees every received frame first (recording), when given
        self._snapshot_task: asyncio.Task[None] | None = None
        self._ws: WsClientProtocol | None = None
        self._expected_symbol = instrument.exchange_symbol
        self._parser = shared_parser(instrument.tick_size, instrument.lot_size)
        self._prices, self._sizes = self._parser.memos()
        self._tick = instrument.tick_size
        self._lot = instrument.lot_size
        self._symbol = instrument.symbol
        self._is_depth = kind == "depth"
        self._apply_side = compiled_apply_side  # None: the Python level loop below
        self._frames = compiled_frame_parser  # None: every frame through orjson
        self._symbol_bytes = instrument.exchange_symbol.encode()
        # Trade frames held until the loop has handed over everything else it read this turn
        # (see `on_frame`); only for trade streams, and only when asked.
        self._hold_trades = trades_after_book and kind == "trade"
        self._held: list[tuple[str | bytes, int]] = []
        self._latency_every = 8  # depth latency is sampled: one observation per 8 diffs
        self._latency_count = 0
        self.applied = 0  # deltas applied; the supervisor flushes it into the metrics

    @property
    def book(self) -> Book:
        return self.sync.book

    async def run_once(self, session: Any = None) -> None:
        """Connect, subscribe, (depth) sync, and read until the connection ends (raises
        `WebSocketError`/`OSError`). `session` is unused (kept for callers that pass one)."""
        del session
        self.sync.reset()
        try:
            ws = await ws_connect(
                self.ws_url, self.on_frame if self._tap is None else self._tapped_frame
            )
            self._ws = ws
            self.stats.connects += 1
            self.stats.last_rx_ns = time.monotonic_ns()
            request = {"method": "SUBSCRIBE", "params": [self.stream], "id": 1}
            ws.send_text(orjson.dumps(request).decode())
            if self.kind == "depth":
                self._start_snapshot()
            await ws.closed
        finally:
            ws_open = self._ws
            self._ws = None
            if ws_open is not None:
                ws_open.close()
            self._cancel_snapshot()
            if self.kind == "depth":
                self._sync_changed(synced=False, reason="disconnected")

    def start_offline(self) -> None:
        """Take frames from the caller (`on_frame`, a replay of recorded frames) instead of a
        socket: start afresh and, for a depth stream, fetch the snapshot to sync on."""
        self.sync.reset()
        if self._is_depth:
            self._start_snapshot()

    async def close(self) -> None:
        ws = self._ws
        if ws is not None:
            ws.close()

    @property
    def last_rx_ns(self) -> int:
        """time.monotonic_ns() of the last data received (or of the connect)."""
        ws = self._ws
        if ws is not None and ws.last_rx_ns > self.stats.last_rx_ns:
            self.stats.last_rx_ns = ws.last_rx_ns
        return self.stats.last_rx_ns

    # -- frames -----------------------------------------------------------------------------

    @property
    def frame_handler(self) -> Callable[[str | bytes, int], None]:
        """What the websocket reader hands each frame to: `on_frame`, or, when no trades are
        held, the handler behind it (one call less on every frame)."""
        return self.on_frame if self._hold_trades else self._handle_frame

    def _tapped_frame(self, raw: str | bytes, ts_local_ns: int) -> None:
        tap = self._tap
        if tap is not None:
            tap(raw if type(raw) is bytes else str(raw).encode(), ts_local_ns)
        self.on_frame(raw, ts_local_ns)

    def on_frame(self, raw: str | bytes, ts_local_ns: int) -> None:
        """Parse and handle one frame; malformed frames are counted and logged, never raised.

        With `trades_after_book`, a trade stream's frames are only queued here and handled
        once the loop has run every socket read of this turn: a sweep prints a burst of trades
        just before the book diff that moves the price, and handling them first delays the
        requote by the whole burst. Trades keep their receipt times and their order. Paper
        execution needs trades before the book changes they explain, so the daemon asks for
        this in live mode only.
        """
        if self._hold_trades:
            held = self._held
            held.append((raw, ts_local_ns))
            if len(held) == 1:
                try:
                    asyncio.get_running_loop().call_soon(self._release_trades)
                except RuntimeError:  # no loop (a replay, a test): handle it now
                    self._release_trades()
            return
        self._handle_frame(raw, ts_local_ns)

    def _release_trades(self) -> None:
        held = self._held
        self._held = []
        for raw, ts_local_ns in held:
            self._handle_frame(raw, ts_local_ns)

    def _handle_frame(self, raw: str | bytes, ts_local_ns: int) -> None:
        self.stats.frames += 1
        frames = self._frames
        if frames is not None and type(raw) is bytes:
            if self._is_depth:
                if not self.sync.awaiting_snapshot:
                    depth = frames.parse_depth(raw, self._symbol_bytes, self._tick, self._lot)
                    if depth is not None:
                        self._depth_parsed(frames, depth, ts_local_ns)
                        return
            else:
                trade = frames.parse_trade(raw, self._symbol_bytes, self._tick, self._lot)
                if trade is not None:
                    self._trade_parsed(trade, ts_local_ns)
                    return
        self._handle_general(raw, ts_local_ns)

    def _depth_parsed(self, frames: FrameParser, depth: DepthFields, ts_local_ns: int) -> None:
        """The in-sync hot path for a frame the compiled reader parsed: sequence check, levels
        into the book, emit the BookDelta."""
        event_ms, first_id, last_id, prev_id, bids, asks = depth
        book = self._book
        result = book.begin_update(first_id, last_id, prev_id)
        if result is not _APPLIED:
            if result is not _SKIPPED:
                delta = new_book_delta(
                    self.venue,
                    self._symbol,
                    event_ms * _NS_PER_MS,
                    ts_local_ns,
                    first_id,
                    last_id,
                    prev_id,
                    bids,
                    asks,
                )
                self._out_of_sync(result, delta)
            return
        result = book.set_touch(*frames.apply_levels(bids, asks, *book.sides()))
        delta = new_book_delta(
            self.venue,
            self._symbol,
            event_ms * _NS_PER_MS,
            ts_local_ns,
            first_id,
            last_id,
            prev_id,
            bids,
            asks,
        )
        if result is not _APPLIED:
            self._out_of_sync(result, delta)
            return
        # `_emit_fused` written out: this is the path of nearly every frame.
        self.applied += 1
        latency = self._latency
        if latency is not None:
            self._latency_count += 1
            if self._latency_count >= self._latency_every:
                self._latency_count = 0
                latency.observe((ts_local_ns - delta.ts_exchange_ns) / 1e9)
        self.sink(delta)

    def _trade_parsed(self, fields: TradeFields, ts_local_ns: int) -> None:
        trade_ms, trade_id, price_ticks, size_lots, buyer_is_maker = fields
        ts_exchange_ns = trade_ms * _NS_PER_MS
        trade = new_trade(
            self.venue,
            self._symbol,
            ts_exchange_ns,
            ts_local_ns,
            trade_id,
            price_ticks,
            size_lots,
            _SELL if buyer_is_maker else _BUY,
        )
        if self._latency is not None:
            self._latency.observe((ts_local_ns - ts_exchange_ns) / 1e9)
        self.sink(trade)

    def _handle_general(self, raw: str | bytes, ts_local_ns: int) -> None:
        """Any frame, through orjson: the path for text the compiled reader leaves alone, for
        diffs buffered before a snapshot, and for every frame where it is not built."""
        try:
            msg = _loads(raw)
            data = msg["data"] if "stream" in msg else msg
            event = data.get("e")
        except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError):
            self._bad_frame(raw, "not a JSON object")
            return
        if (
            event == "depthUpdate"
            and self._is_depth
            and not self.sync.awaiting_snapshot
            and data.get("s") == self._expected_symbol
        ):
            try:
                self._depth_fused(data, ts_local_ns)
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
                # Levels may have been half applied: the book cannot be trusted any more.
                self._bad_frame(raw, f"malformed depthUpdate: {exc!r}")
                self._out_of_sync(ApplyResult.NOT_SYNCED, None)
            return
        if event is None:
            if "result" in data or "id" in data:
                return  # subscription acknowledgement
            self._bad_frame(raw, "no event type")
            return
        if data.get("s") != self._expected_symbol:
            self.stats.unknown_symbol += 1
            if self._malformed is not None:
                self._malformed.inc()
            log.warning(
                "unknown symbol in frame", venue=self.venue, symbol=data.get("s"), kind=event
            )
            return
        try:
            if event == "depthUpdate" and self.kind == "depth":
                self._on_depth(
                    parse_depth_event(data, self.instrument, self.venue, ts_local_ns, self._parser)
                )
            elif event == "trade" and self.kind == "trade":
                if data.get("X", "MARKET") != "MARKET":
                    return  # USD-M insurance-fund / ADL prints are not market trades
                trade = parse_trade_event(data, self.instrument, self.venue, ts_local_ns)
                self._observe_latency(trade.ts_local_ns - trade.ts_exchange_ns)
                self.sink(trade)
        except FrameError as exc:
            self._bad_frame(raw, str(exc))

    def _depth_fused(self, data: Any, ts_local_ns: int) -> None:
        """The in-sync hot path: sequence check, then parse each level and apply it to the book
        in the same pass, then emit the BookDelta."""
        book = self._book
        first_id = data["U"]
        last_id = data["u"]
        prev_id = data.get("pu", -1)
        result = book.begin_update(first_id, last_id, prev_id)
        if result is not _APPLIED:
            if result is not _SKIPPED:
                delta = parse_depth_event(
                    data, self.instrument, self.venue, ts_local_ns, self._parser
                )
                self._out_of_sync(result, delta)
            return
        bids_book, bid_heap, asks_book, ask_heap = book.sides()
        apply_side = self._apply_side
        if apply_side is not None:
            self._emit_fused(
                data["E"] * _NS_PER_MS,
                ts_local_ns,
                first_id,
                last_id,
                prev_id,
                apply_side(data["b"], bids_book, bid_heap, _NEGATED, self._tick, self._lot),
                apply_side(data["a"], asks_book, ask_heap, _AS_IS, self._tick, self._lot),
            )
            return
        # The two sides are written out rather than looped over: a shared helper costs a call
        # and attribute lookups per level on the hottest loop of the daemon.
        prices = self._prices
        sizes = self._sizes
        bids: list[tuple[int, int]] = []
        append = bids.append
        for p, q in data["b"]:
            px = prices.get(p)
            if px is None:
                px = self._memo_price(p)
            sz = sizes.get(q)
            if sz is None:
                sz = self._memo_size(q)
            append((px, sz))
            if sz:
                if px not in bids_book:
                    heappush(bid_heap, -px)
                bids_book[px] = sz
            else:
                bids_book.pop(px, None)
        asks: list[tuple[int, int]] = []
        append = asks.append
        for p, q in data["a"]:
            px = prices.get(p)
            if px is None:
                px = self._memo_price(p)
            sz = sizes.get(q)
            if sz is None:
                sz = self._memo_size(q)
            append((px, sz))
            if sz:
                if px not in asks_book:
                    heappush(ask_heap, px)
                asks_book[px] = sz
            else:
                asks_book.pop(px, None)
        self._emit_fused(
            data["E"] * _NS_PER_MS,
            ts_local_ns,
            first_id,
            last_id,
            prev_id,
            tuple(bids),
            tuple(asks),
        )

    def _emit_fused(  # noqa: PLR0917  the parts of the delta the fused path has in hand
        self,
        ts_exchange_ns: int,
        ts_local_ns: int,
        first_id: int,
        last_id: int,
        prev_id: int,
        bids: BookLevels,
        asks: BookLevels,
    ) -> None:
        """After the levels are written: trim the heaps, check the touch, emit the delta."""
        result = self._book.finish_update()
        delta = new_book_delta(
            self.venue,
            self._symbol,
            ts_exchange_ns,
            ts_local_ns,
            first_id,
            last_id,
            prev_id,
            bids,
            asks,
        )
        if result is not _APPLIED:
            self._out_of_sync(result, delta)
            return
        self.applied += 1
        if self._latency is not None:
            self._latency_count += 1
            if self._latency_count >= self._latency_every:
                self._latency_count = 0
                self._latency.observe((ts_local_ns - delta.ts_exchange_ns) / 1e9)
        self.sink(delta)

    def _memo_price(self, p: str) -> int:
        px = round(float(p) / self._tick)
        prices = self._prices
        if len(prices) >= self._parser.max_entries:
            prices.clear()
        prices[p] = px
        return px

    def _memo_size(self, q: str) -> int:
        sz = round(float(q) / self._lot)
        sizes = self._sizes
        if len(sizes) >= self._parser.max_entries:
            sizes.clear()
        sizes[q] = sz
        return sz

    def _emit_applied(self, delta: BookDelta) -> None:
        self.applied += 1
        if self._latency is not None:
            self._latency_count += 1
            if self._latency_count >= self._latency_every:
                self._latency_count = 0
                self._latency.observe((delta.ts_local_ns - delta.ts_exchange_ns) / 1e9)
        self.sink(delta)

    def _out_of_sync(self, result: ApplyResult, delta: BookDelta | None) -> None:
        if delta is not None:
            self.sync.out_of_sync(result, delta)
        else:
            self.sync.reset()
        self._resync_needed(result, delta)

    def _on_depth(self, delta: BookDelta) -> None:
        result = self.sync.on_delta(delta)
        if result is ApplyResult.APPLIED:
            self._emit_applied(delta)
        elif result >= ApplyResult.GAP:
            self._resync_needed(result, delta)

    def _resync_needed(self, result: ApplyResult, delta: BookDelta | None) -> None:
        self.stats.resyncs += 1
        if self._resyncs is not None:
            self._resyncs.inc()
        log.warning(
            "book out of sync, resyncing",
            venue=self.venue,
            symbol=self.instrument.symbol,
            cause=result.name.lower(),
            book_update_id=self.book.update_id,
            first_update_id=None if delta is None else delta.first_update_id,
            last_update_id=None if delta is None else delta.last_update_id,
            prev_update_id=None if delta is None else delta.prev_update_id,
        )
        self._sync_changed(synced=False, reason=result.name.lower())
        self._start_snapshot()

    def _observe_latency(self, ns: int) -> None:
        if self._latency is not None:
            self._latency.observe(ns / 1e9)

    def _bad_frame(self, raw: str | bytes, why: str) -> None:
        self.stats.malformed += 1
        if self._malformed is not None:
            self._malformed.inc()
        preview = raw[:120] if isinstance(raw, str) else raw[:120].decode("utf-8", "replace")
        log.warning("malformed frame", venue=self.venue, stream=self.stream, why=why, frame=preview)

    def _sync_changed(self, *, synced: bool, reason: str) -> None:
        if self._on_sync_change is not None:
            self._on_sync_change(synced, reason)

    # -- snapshots --------------------------------------------------------------------------

    def _start_snapshot(self) -> None:
        if self._snapshot_task is None or self._snapshot_task.done():
            self._snapshot_task = asyncio.get_running_loop().create_task(self._resync())

    def _cancel_snapshot(self) -> None:
        task = self._snapshot_task
        if task is not None and not task.done():
            task.cancel()
        self._snapshot_task = None

    async def _resync(self) -> None:
        fetch = self._fetch_snapshot
        assert fetch is not None  # noqa: S101  checked in __init__ for depth streams
        sync = self.sync
        for attempt in range(1, self._max_snapshot_attempts + 1):
            try:
                raw = await fetch(self.instrument.exchange_symbol)
                last_id, bids, asks = parse_snapshot(raw, self.instrument)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  any REST failure: retry, then reconnect
                log.warning(
                    "depth snapshot failed",
                    venue=self.venue,
                    symbol=self.instrument.symbol,
                    attempt=attempt,
                    error=repr(exc),
                )
                await asyncio.sleep(0.05 * 2**attempt)
                continue
            first = sync.first_buffered_id()
            if first is not None and last_id + 1 < first:
                # The snapshot is older than the first buffered diff: it cannot join; refetch.
                log.info(
                    "depth snapshot older than the stream, refetching",
                    venue=self.venue,
                    symbol=self.instrument.symbol,
                    snapshot_id=last_id,
                    first_buffered_id=first,
                )
                await asyncio.sleep(0.05 * attempt)
                continue
            result = sync.on_snapshot(last_id, bids, asks)
            if result is ApplyResult.APPLIED:
                now = self._clock()
                self.sink(sync.snapshot_event(now, now))
                self._sync_changed(synced=True, reason="synced")
                self.stats.synced_once.set()
                log.info(
                    "book synced",
                    venue=self.venue,
                    symbol=self.instrument.symbol,
                    update_id=sync.book.update_id,
                    levels=sync.book.level_count(),
                )
                return
            log.warning(
                "depth snapshot does not join the stream, refetching",
                venue=self.venue,
                symbol=self.instrument.symbol,
                cause=result.name.lower(),
                snapshot_id=last_id,
            )
        # Give up on this connection: the supervisor reconnects with backoff.
        ws = self._ws
        if ws is not None:
            ws.close()


def recorded_data_dir() -> Path | None:
    """Folder of the recorded Binance captures: $MMD_DATA_DIR, else `shared/data/binance` beside
    the repository; None when neither exists."""
    env = os.environ.get("MMD_DATA_DIR")
    if env:
        path = Path(env)
        return path if path.is_dir() else None
    repo_root = Path(__file__).resolve().parents[2]
    path = repo_root.parent / "shared" / "data" / "binance"
    return path if path.is_dir() else None


def read_capture(*paths: Path) -> Iterator[tuple[int, bytes]]:
    """(local receive ns, raw JSON bytes) of each line of gzip captures, files chained in order."""
    for path in paths:
        with gzip.open(path, "rb") as fh:
            for line in fh:
                ts, _, raw = line.partition(b" ")
                yield int(ts), raw.rstrip(b"\n")
