"""Market-data publishing of one venue: websocket connections, subscriptions, depth batching.

Every depth stream (`<sym>@depth`, `@depth@100ms`, `@depth@0ms`, ...) keeps its own
accumulator of level changes; a message carries U = previous u + 1 and u = the book's update id
at flush time, so every update id is accounted for. Rate 0 flushes after every book mutation
batch, the others on their interval. Frames are serialized once with orjson and written to
each subscribed connection's queue; combined-stream connections (`/stream`) get the envelope
`{"stream": ..., "data": ...}` by byte concatenation.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from mm_daemon.binance.markets import Dialect
from mm_daemon.binance.numbers import NumberFormat
from mm_daemon.core.types import Instrument
from mm_daemon.sim.binance.common import dumps
from mm_daemon.sim.faults import FaultState

__all__ = ["BookSide", "Connection", "DepthStream", "MarketStreams", "SymbolFeed"]

BookSide = Callable[[], tuple[int, list[tuple[int, int]], list[tuple[int, int]]]]
_NS_PER_MS = 1_000_000
_SPOT_DEPTH = b'{"e":"depthUpdate","E":%d,"s":"%b","U":%d,"u":%d,"b":[%b],"a":[%b]}'
_USDM_DEPTH = b'{"e":"depthUpdate","E":%d,"T":%d,"s":"%b","U":%d,"u":%d,"pu":%d,"b":[%b],"a":[%b]}'
_WRITE_BATCH = 1024  # frames per transport write at most
_MARK_SLOW_MS = 3000  # `<symbol>@markPrice`; `@markPrice@1s` is every second
_HIGH_WATER_BYTES = 4 * 1024 * 1024  # pause writing while the kernel/transport holds this much
_HEADER_SHORT = struct.Struct("!BB").pack
_HEADER_MEDIUM = struct.Struct("!BBH").pack
_HEADER_LONG = struct.Struct("!BBQ").pack


class Connection:
    """One websocket client: a queue of frames written by its own task, in order."""

    __slots__ = (
        "_queue",
        "_task",
        "_wake",
        "closed",
        "combined",
        "faults",
        "streams",
        "transport",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        *,
        combined: bool,
        faults: FaultState,
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.combined = combined
        self.faults = faults
        self.streams: set[str] = set()
        self._queue: deque[tuple[int, bytes]] = deque()
        self._wake = asyncio.Event()
        self.closed = False
        self._task: asyncio.Task[None] | None = None

    @property
    def backlog(self) -> int:
        """Frames queued and not yet written."""
        return len(self._queue)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._writer())

    def send(self, frame: bytes, now_ns: int) -> None:
        """Queue a text frame; under a `delay` fault it is held until now + the delay."""
        if self.closed:
            return
        faults = self.faults
        # (fault fields read inline: this runs for every frame)
        due = now_ns + faults.delay_ns if now_ns < faults.delay_until_ns else 0
        self._queue.append((due, frame))
        if not self._wake.is_set():
            self._wake.set()

    def send_stream(self, stream: bytes, payload: bytes, now_ns: int) -> None:
        if self.combined:
            self.send(b'{"stream":"' + stream + b'","data":' + payload + b"}", now_ns)
        else:
            self.send(payload, now_ns)

    async def _writer(self) -> None:
        """Write queued frames in batches: many websocket frames per transport write.

        Frames are built here (server frames are unmasked, compression is off) and written
        whole, so they interleave safely with aiohttp's own control frames (pong, close).
        """
        queue = self._queue
        transport = self.transport
        if transport is None:
            await self._writer_per_frame()
            return
        try:
            while not self.closed:
                if not queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                due = queue[0][0]
                if due:
                    now = time.time_ns()
                    if due > now:
                        await asyncio.sleep((due - now) / 1e9)
                        continue
                if transport.is_closing():
                    self.closed = True
                    break
                chunks: list[bytes] = []
                count = 0
                while queue and count < _WRITE_BATCH:
                    if queue[0][0] and queue[0][0] > time.time_ns():
                        break
                    frame = queue.popleft()[1]
                    size = len(frame)
                    if size < 126:
                        chunks.append(_HEADER_SHORT(0x81, size))
                    elif size < 65536:
                        chunks.append(_HEADER_MEDIUM(0x81, 126, size))
                    else:
                        chunks.append(_HEADER_LONG(0x81, 127, size))
                    chunks.append(frame)
                    count += 1
                transport.write(b"".join(chunks))
                # Flow control: the transport exposes no awaitable drain outside its protocol.
                while transport.get_write_buffer_size() > _HIGH_WATER_BYTES:
                    if transport.is_closing():
                        break
                    await asyncio.sleep(0.001)
                await asyncio.sleep(0)
        except (ConnectionError, RuntimeError):
            self.closed = True
        finally:
            queue.clear()

    async def _writer_per_frame(self) -> None:
        queue = self._queue
        try:
            while not self.closed:
                if not queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                due, frame = queue[0]
                now = time.time_ns()
                if due > now:
                    await asyncio.sleep((due - now) / 1e9)
                    continue
                queue.popleft()
                await self.ws.send_frame(frame, WSMsgType.TEXT)
        except (ConnectionError, RuntimeError):
            self.closed = True
        finally:
            queue.clear()

    def abort(self) -> None:
        """Drop the connection at once, as a network failure would (no close handshake)."""
        self.closed = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
        if self.transport is not None:
            self.transport.abort()

    async def close(self) -> None:
        self.closed = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                await self._task
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close()


@dataclass(slots=True)
class DepthStream:
    """Pending level changes of one depth stream (one symbol, one rate)."""

    name: bytes
    rate_ms: int
    last_u: int  # u of the last message (sent or skipped by a gap fault)
    pending: list[tuple[int, int]] = field(default_factory=list)  # (level key, size)
    batches: int = 0  # on_levels calls in `pending` (one call never repeats a level)
    next_flush_ns: int = 0
    subscribers: set[Connection] = field(default_factory=set)


class SymbolFeed:
    """Streams of one symbol: depth at each subscribed rate, trades, bookTicker."""

    def __init__(
        self,
        dialect: Dialect,
        instrument: Instrument,
        fmt: NumberFormat,
        book: BookSide,
        faults: FaultState,
    ) -> None:
        self.dialect = dialect
        self.instrument = instrument
        self.fmt = fmt
        self.book = book
        self.faults = faults
        self.lower = instrument.exchange_symbol.lower()
        self.depth: dict[int, DepthStream] = {}
        self.trade_subs: set[Connection] = set()
        self.ticker_subs: set[Connection] = set()
        self.mark_subs: dict[bool, set[Connection]] = {True: set(), False: set()}  # by slow
        self._trade_name = f"{self.lower}@trade".encode()
        self._ticker_name = f"{self.lower}@bookTicker".encode()
        self._mark_names = {
            True: f"{self.lower}@markPrice".encode(),
            False: f"{self.lower}@markPrice@1s".encode(),
        }
        self._best: tuple[int, int, int, int] = (0, 0, 0, 0)
        self._symbol = instrument.exchange_symbol
        self._symbol_bytes = instrument.exchange_symbol.encode()
        self.update_id = book()[0]  # the update id the published changes have reached
        self.raw = False  # replay: recorded frames are sent as they are (`send_raw`)

    # subscriptions --------------------------------------------------------------------
    def subscribe(self, conn: Connection, kind: str, rate_ms: int) -> None:
        if kind == "depth":
            stream = self.depth.get(rate_ms)
            if stream is None:
                # spot's plain `@depth` is the 1000 ms stream; every other rate names itself
                plain = rate_ms == 1000 and self.dialect == "spot"
                name = f"{self.lower}@depth" + ("" if plain else f"@{rate_ms}ms")
                stream = DepthStream(name.encode(), rate_ms, self.update_id)
                self.depth[rate_ms] = stream
            stream.subscribers.add(conn)
        elif kind == "trade":
            self.trade_subs.add(conn)
        elif kind == "bookTicker":
            self.ticker_subs.add(conn)
        elif kind == "markPrice":
            self.mark_subs[rate_ms == _MARK_SLOW_MS].add(conn)

    def unsubscribe(self, conn: Connection, kind: str | None = None, rate_ms: int = -1) -> None:
        if kind in (None, "depth"):
            for rate, stream in list(self.depth.items()):
                if rate_ms in (-1, rate):
                    stream.subscribers.discard(conn)
                    if not stream.subscribers:
                        del self.depth[rate]
        if kind in (None, "trade"):
            self.trade_subs.discard(conn)
        if kind in (None, "bookTicker"):
            self.ticker_subs.discard(conn)
        if kind in (None, "markPrice"):
            for slow, subs in self.mark_subs.items():
                if rate_ms == -1 or slow == (rate_ms == _MARK_SLOW_MS):
                    subs.discard(conn)

    # publishing -----------------------------------------------------------------------
    def on_levels(self, changes: list[tuple[int, int]], update_id: int) -> None:
        """Record the level changes that brought the book to `update_id`: (level key, new size
        lots) pairs, the key being -price_ticks for a bid and +price_ticks for an ask (so one
        sort orders bids best first, then asks best first)."""
        self.update_id = update_id
        if not self.depth or self.raw:
            return
        for stream in self.depth.values():
            stream.pending += changes
            stream.batches += 1

    def send_raw(self, kind: str, payload: bytes, now_ns: int) -> None:
        """Send a recorded payload (`depth`, `trade` or `bookTicker`) to its subscribers as is;
        depth goes to every depth subscription of the symbol whatever its rate."""
        if self.faults.stalled(now_ns):
            return
        if kind == "depth":
            if self.depth and self.faults.take_gap():
                return
            for stream in self.depth.values():
                name = stream.name
                for conn in stream.subscribers:
                    conn.send_stream(name, payload, now_ns)
        elif kind == "trade":
            for conn in self.trade_subs:
                conn.send_stream(self._trade_name, payload, now_ns)
        elif kind == "bookTicker":
            for conn in self.ticker_subs:
                conn.send_stream(self._ticker_name, payload, now_ns)

    def flush_depth(self, now_ns: int) -> None:
        """Send the due depth messages (rate 0: always), up to the published update id."""
        update_id = self.update_id
        for stream in self.depth.values():
            if stream.rate_ms:
                if now_ns < stream.next_flush_ns:
                    continue
                stream.next_flush_ns = now_ns + stream.rate_ms * _NS_PER_MS
            if update_id > stream.last_u:
                self._send_depth(stream, update_id, now_ns)

    def flush(self, now_ns: int) -> None:
        """Send due depth messages, and a bookTicker if the touch moved.

        Call only when every engine result has been published (the ticker reads the book).
        """
        if self.raw:
            return
        if self.depth:
            self.flush_depth(now_ns)
        if self.ticker_subs:
            self._maybe_ticker(now_ns)

    def _send_depth(self, stream: DepthStream, update_id: int, now_ns: int) -> None:
        first = stream.last_u + 1
        prev = stream.last_u
        stream.last_u = update_id
        pending = stream.pending
        single = stream.batches == 1
        stream.pending = []
        stream.batches = 0
        faults = self.faults
        if faults.gaps_pending and faults.take_gap():
            return
        if now_ns < faults.stall_until_ns:
            return
        # The hot path of the feed: the last size of each level wins (dict), one sort orders
        # bids then asks, each level is two cached JSON fragments (price, then size).
        levels = sorted(pending) if single else sorted(dict(pending).items())
        split = bisect.bisect_left(levels, (0, 0))
        prices = self.fmt.price_fragments
        sizes = self.fmt.size_fragments
        parts = [prices[key] + sizes[lots] for key, lots in levels]
        b = b",".join(parts[:split])
        a = b",".join(parts[split:])
        ms = now_ns // _NS_PER_MS
        if self.dialect == "spot":
            payload = _SPOT_DEPTH % (ms, self._symbol_bytes, first, update_id, b, a)
        else:
            payload = _USDM_DEPTH % (ms, ms, self._symbol_bytes, first, update_id, prev, b, a)
        name = stream.name
        for conn in stream.subscribers:
            conn.send_stream(name, payload, now_ns)

    def _maybe_ticker(self, now_ns: int) -> None:
        update_id, bids, asks = self.book()
        bid_px, bid_sz = bids[0] if bids else (0, 0)
        ask_px, ask_sz = asks[0] if asks else (0, 0)
        best = (bid_px, bid_sz, ask_px, ask_sz)
        if best == self._best:
            return
        self._best = best
        if self.faults.stalled(now_ns):
            return
        px = self.fmt.px
        qty = self.fmt.qty
        if self.dialect == "spot":
            data: dict[str, object] = {
                "u": update_id,
                "s": self._symbol,
                "b": px(bid_px),
                "B": qty(bid_sz),
                "a": px(ask_px),
                "A": qty(ask_sz),
            }
        else:
            ms = now_ns // _NS_PER_MS
            data = {
                "e": "bookTicker",
                "u": update_id,
                "s": self._symbol,
                "b": px(bid_px),
                "B": qty(bid_sz),
                "a": px(ask_px),
                "A": qty(ask_sz),
                "T": ms,
                "E": ms,
            }
        payload = dumps(data)
        for conn in self.ticker_subs:
            conn.send_stream(self._ticker_name, payload, now_ns)

    def on_mark_price(self, event: dict[str, object], now_ns: int, *, slow: bool) -> None:
        """Send a `markPriceUpdate` to `@markPrice@1s` subscribers, and to `@markPrice` ones
        when `slow` (every third second)."""
        if self.faults.stalled(now_ns):
            return
        payload = b""
        for is_slow, subs in self.mark_subs.items():
            if not subs or (is_slow and not slow):
                continue
            if not payload:
                payload = dumps(event)
            name = self._mark_names[is_slow]
            for conn in subs:
                conn.send_stream(name, payload, now_ns)

    def on_trade(
        self, trade_id: int, price_ticks: int, size_lots: int, buyer_is_maker: bool, now_ns: int
    ) -> None:
        if not self.trade_subs or self.raw or self.faults.stalled(now_ns):
            return
        ms = now_ns // _NS_PER_MS
        if self.dialect == "spot":
            data: dict[str, object] = {
                "e": "trade",
                "E": ms,
                "s": self._symbol,
                "t": trade_id,
                "p": self.fmt.px(price_ticks),
                "q": self.fmt.qty(size_lots),
                "T": ms,
                "m": buyer_is_maker,
                "M": True,
            }
        else:
            data = {
                "e": "trade",
                "E": ms,
                "T": ms,
                "s": self._symbol,
                "t": trade_id,
                "p": self.fmt.px(price_ticks),
                "q": self.fmt.qty(size_lots),
                "X": "MARKET",
                "m": buyer_is_maker,
            }
        payload = dumps(data)
        for conn in self.trade_subs:
            conn.send_stream(self._trade_name, payload, now_ns)


class MarketStreams:
    """All public streams of one venue, by lower-case symbol."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.feeds: dict[str, SymbolFeed] = {}
        self.connections: set[Connection] = set()

    def add_feed(self, feed: SymbolFeed) -> None:
        self.feeds[feed.lower] = feed

    def parse_stream(self, name: str) -> tuple[SymbolFeed, str, int] | None:
        """(feed, kind, rate ms) of a stream name like `btcusdt@depth@100ms`; None if unknown."""
        parts = name.split("@")
        feed = self.feeds.get(parts[0].lower())
        if feed is None or len(parts) < 2:
            return None
        kind = parts[1]
        if kind == "depth":
            if len(parts) == 2:
                rate = 1000 if self.dialect == "spot" else 250
            elif len(parts) == 3 and parts[2].endswith("ms") and parts[2][:-2].isdigit():
                rate = int(parts[2][:-2])
            else:
                return None
            if rate not in (0, 100, 250, 500, 1000):
                return None
            return feed, kind, rate
        if kind in ("trade", "bookTicker") and len(parts) == 2:
            return feed, kind, 0
        if kind == "markPrice" and self.dialect == "usdm":
            if len(parts) == 2:
                return feed, kind, _MARK_SLOW_MS
            if len(parts) == 3 and parts[2] == "1s":
                return feed, kind, 1000
        return None

    def subscribe(self, conn: Connection, names: list[str]) -> list[str]:
        """Subscribe; returns the names that are not known streams."""
        unknown = []
        for name in names:
            parsed = self.parse_stream(name)
            if parsed is None:
                unknown.append(name)
                continue
            feed, kind, rate = parsed
            feed.subscribe(conn, kind, rate)
            conn.streams.add(name)
        return unknown

    def unsubscribe(self, conn: Connection, names: list[str]) -> None:
        for name in names:
            parsed = self.parse_stream(name)
            if parsed is None:
                continue
            feed, kind, rate = parsed
            feed.unsubscribe(conn, kind, rate)
            conn.streams.discard(name)

    def has_subscribers(self) -> bool:
        return any(
            feed.depth or feed.trade_subs or feed.ticker_subs or any(feed.mark_subs.values())
            for feed in self.feeds.values()
        )

    def drop(self, conn: Connection) -> None:
        for feed in self.feeds.values():
            feed.unsubscribe(conn)
        self.connections.discard(conn)

    def flush(self, now_ns: int) -> None:
        for feed in self.feeds.values():
            feed.flush(now_ns)
