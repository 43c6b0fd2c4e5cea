"""One Binance market-data websocket read natively: frames into core events, the book synced.

ccxt.pro's `watch_order_book` parses every level into floats, keeps its own book and resolves a
future per message; about 49 us a message. Here a frame goes from the socket (`websocket`)
through the compiled readers or orjson (`mm_daemon.binance.frames`) straight into integer ticks
and lots and into the core `Book`, synced by Binance's own procedure
(`mm_daemon.binance.depth`). ccxt still loads markets and serves the REST snapshot (its sandbox
URLs, rate limiter and signing stay in one place); the caller (`ccxt_venue.CcxtMarketData`)
supervises the stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from heapq import heappush
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from mm_daemon.binance.depth import BinanceDepthSync
from mm_daemon.binance.frames import (
    NS_PER_MS,
    DepthFields,
    FrameError,
    FrameParser,
    TradeFields,
    compiled_apply_side,
    compiled_frame_parser,
    new_book_delta,
    new_trade,
    parse_depth_event,
    parse_snapshot,
    parse_trade_event,
    shared_parser,
)
from mm_daemon.binance.markets import StreamKind, stream_name
from mm_daemon.core.book import ApplyResult, Book
from mm_daemon.core.types import BookDelta, BookLevels, Instrument, MarketEvent, Side
from mm_daemon.retry import BackoffPolicy
from mm_daemon.venues.websocket import OP_TEXT, WsClient, ws_connect

if TYPE_CHECKING:
    from mm_daemon.venues.base import Counter, Histogram

__all__ = ["NativeConnection", "NativeStream", "SnapshotFetcher", "StreamStats"]

log = structlog.get_logger(__name__)

SnapshotFetcher = Callable[[str], Awaitable[Any]]
"""Fetches the raw REST depth snapshot (`{"lastUpdateId":..,"bids":..,"asks":..}`) of a venue id."""

_NS_PER_MS = NS_PER_MS
_SNAPSHOT_RETRY = BackoffPolicy(initial_s=0.05, max_s=1.0)  # a refetch, not a reconnect
_loads = orjson.loads
_BUY = Side.BUY
_APPLIED = ApplyResult.APPLIED
_SKIPPED = ApplyResult.SKIPPED
_SELL = Side.SELL
_NEGATED, _AS_IS = True, False  # heap keys of a side: bids negated (best on top), asks as they are


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
        "connection",
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
        self.stream = stream_name(instrument.exchange_symbol, kind)
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
        self._ws: WsClient | None = None
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
        self.connection: NativeConnection | None = None  # the venue's shared socket, if any

    @property
    def book(self) -> Book:
        return self.sync.book

    async def run_once(self) -> None:
        """Connect, subscribe, (depth) sync, and read until the connection ends (raises
        `WebSocketError`/`OSError`)."""
        self.sync.reset()
        try:
            ws = await ws_connect(
                self.ws_url, self.on_frame if self._tap is None else self._tapped_frame
            )
            self._ws = ws
            self.stats.connects += 1
            self.stats.last_rx_ns = time.monotonic_ns()
            request = {"method": "SUBSCRIBE", "params": [self.stream], "id": 1}
            ws.send(OP_TEXT, orjson.dumps(request))
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

    def start_sync(self) -> None:
        """The shared connection subscribed: fetch the snapshot to sync on (depth)."""
        if self._is_depth:
            self._start_snapshot()

    def disconnected(self) -> None:
        """The shared connection ended: the book waits for the next sync."""
        self._cancel_snapshot()
        if self._is_depth:
            self._sync_changed(synced=False, reason="disconnected")

    async def close(self) -> None:
        ws = self._ws
        if ws is not None:
            ws.close()
        if self.connection is not None:
            self.connection.close()

    @property
    def last_rx_ns(self) -> int:
        """time.monotonic_ns() of the last data received (or of the connect)."""
        ws = self._ws
        if ws is not None and ws.last_rx_ns > self.stats.last_rx_ns:
            self.stats.last_rx_ns = ws.last_rx_ns
        return self.stats.last_rx_ns

    @property
    def receiver(self) -> Callable[[bytes, int], None]:
        """What a connection hands this stream's frames to (through the tap when recording)."""
        return self._tapped_frame if self._tap is not None else self.frame_handler

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
        self._emit_applied(delta)

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
        self._emit_applied(delta)

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
        """Count an applied diff, sample its latency (one in `_latency_every`), emit it."""
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
        backoff = _SNAPSHOT_RETRY.start()
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
                await backoff.sleep()
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
                await backoff.sleep()
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
        if self.connection is not None:
            self.connection.close()


class NativeConnection:
    """One websocket to a Binance venue carrying the depth and trade streams of every symbol
    the daemon reads there (one connection per venue, however many markets).

    It subscribes to every stream in one request and hands each frame to its stream's handler
    by event and symbol; each `NativeStream` keeps its own book sync, snapshot fetches and
    counters, exactly as on a socket of its own. `run_once` connects and reads until the
    connection ends (raising `WebSocketError`/`OSError`); the caller supervises it.
    """

    def __init__(self, venue: str, ws_url: str, streams: list[NativeStream]) -> None:
        self.venue = venue
        self.ws_url = ws_url
        self.streams = streams
        self.connects = 0
        self._ws: WsClient | None = None
        depth = {s.instrument.exchange_symbol.encode(): s for s in streams if s.kind == "depth"}
        trades = {s.instrument.exchange_symbol.encode(): s for s in streams if s.kind == "trade"}
        self._depth_handlers = {sym: s.receiver for sym, s in depth.items()}
        self._trade_handlers = {sym: s.receiver for sym, s in trades.items()}
        self._depth_streams = depth
        self._trade_streams = trades
        # One symbol (the usual market): the event alone picks the stream.
        self._single: tuple[_Route, _Route] | None = None
        if len(depth) <= 1 and len(trades) <= 1:
            self._single = (_route(depth), _route(trades))
        self._fallback = streams[0].receiver  # counts and logs what no stream claims
        for stream in streams:
            stream.connection = self

    async def run_once(self) -> None:
        for stream in self.streams:
            stream.sync.reset()
        try:
            ws = await ws_connect(self.ws_url, self.on_message)
            self._ws = ws
            self.connects += 1
            now = time.monotonic_ns()
            for stream in self.streams:
                stream.stats.connects += 1
                stream.stats.last_rx_ns = now
            request = {"method": "SUBSCRIBE", "params": [s.stream for s in self.streams], "id": 1}
            ws.send(OP_TEXT, orjson.dumps(request))
            for stream in self._depth_streams.values():
                stream.start_sync()
            await ws.closed
        finally:
            ws_open = self._ws
            self._ws = None
            if ws_open is not None:
                ws_open.close()
            for stream in self.streams:
                stream.disconnected()

    def close(self) -> None:
        ws = self._ws
        if ws is not None:
            ws.close()

    def on_message(self, raw: bytes, ts_local_ns: int) -> None:
        """Hand a frame to its stream: `{"e":"depthUpdate",...,"s":"BTCUSDT",...}` or a trade."""
        ws = self._ws
        rx_ns = ws.last_rx_ns if ws is not None else time.monotonic_ns()
        if raw[:6] != b'{"e":"':
            self._fallback(raw, ts_local_ns)  # an answer to our SUBSCRIBE, or not Binance's
            return
        is_depth = raw[6:7] == b"d"
        single = self._single
        handler: Callable[[bytes, int], None] | None
        stream: NativeStream | None
        if single is not None:
            handler, stream = single[0] if is_depth else single[1]
        else:
            start = raw.find(b'"s":"', 8, 120) + 5
            symbol = raw[start : raw.find(b'"', start)] if start > 4 else b""
            if is_depth:
                handler = self._depth_handlers.get(symbol)
                stream = self._depth_streams.get(symbol)
            else:
                handler = self._trade_handlers.get(symbol)
                stream = self._trade_streams.get(symbol)
        if handler is None or stream is None:
            self._fallback(raw, ts_local_ns)
            return
        stream.stats.last_rx_ns = rx_ns
        handler(raw, ts_local_ns)


_Route = tuple[Callable[[bytes, int], None] | None, NativeStream | None]


def _route(streams: dict[bytes, NativeStream]) -> _Route:
    stream = next(iter(streams.values()), None)
    return (stream.receiver if stream is not None else None), stream
