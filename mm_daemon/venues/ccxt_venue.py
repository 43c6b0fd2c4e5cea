"""Market data of one venue: Binance read natively, other exchanges through ccxt.pro.

The exchange itself comes from `mm_daemon.venues.exchanges.create_exchange` (one factory for
every endpoint). `CcxtMarketData` implements `mm_daemon.venues.base.MarketData`:
- `connect()` loads markets once and builds each `Instrument` (tick, lot, min notional,
  contract size, fees); an unknown symbol raises `VenueError` naming the symbol and the venue.
- `run(sink)` starts one task per stream (book and trades per symbol) and a staleness watchdog.
  Binance spot and USD-M streams are read natively (`binance_stream`: own websocket reader,
  integer ticks, Binance's sync procedure), several times the throughput of ccxt's
  `watch_order_book` (bench/bench_market_data.py), with ccxt still serving markets and the REST
  snapshot. Other exchanges use ccxt's `watch_order_book` /
  `watch_trades`, emitting a BookSnapshot per book update; for bybit the `u` continuity that
  ccxt does not check is checked on the raw messages, and a gap resubscribes.
- A failing stream retries with exponential backoff and jitter and never ends `run`; every
  reconnect and resync is reported (`MarketDataReporter`) and logged.
- A book stream silent for `stale_after_seconds`, or out of sync, emits
  `MarketStatus(stale=True)`; the first synced data after that emits `MarketStatus(stale=False)`.
- `book(symbol)` is the sequence-checked local book the adapter keeps; a `MarketState` can share
  it (`book_is_shared=True`) instead of applying every delta a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

from mm_daemon.binance.capture import CaptureRecorder, CaptureWriter
from mm_daemon.binance.markets import DIALECTS, stream_name
from mm_daemon.core.book import Book, SequenceRule
from mm_daemon.core.types import (
    BookSnapshot,
    Instrument,
    InstrumentKind,
    MarketEvent,
    MarketStatus,
    Side,
    Trade,
)
from mm_daemon.retry import BackoffPolicy
from mm_daemon.venues.base import MarketDataReporter, MarketSink
from mm_daemon.venues.binance_mark_price import MarkPriceReader
from mm_daemon.venues.binance_stream import NativeConnection, NativeStream, SnapshotFetcher
from mm_daemon.venues.exchanges import VenueError, build_instrument, create_exchange

if TYPE_CHECKING:
    from mm_daemon.config import MarketDataConfig, VenueConfig

__all__ = ["BybitSequenceCheck", "CcxtMarketData"]

log = structlog.get_logger(__name__)

_RETRYABLE_NAMES = ("NetworkError", "ChecksumError", "RequestTimeout", "ExchangeNotAvailable")


@dataclass(slots=True)
class _StreamState:
    """What the watchdog knows about one book stream."""

    symbol: str
    last_rx_ns: int = 0  # monotonic
    synced: bool = False
    stale: bool = True  # until the first sync
    reason: str = "starting"
    redialed_ns: int = 0  # monotonic time of the last forced reconnect
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _recording_fetch(fetch: SnapshotFetcher, writer: CaptureWriter) -> SnapshotFetcher:
    """`fetch`, writing each snapshot it returns to the capture as it arrives."""

    async def fetch_and_record(exchange_symbol: str) -> Any:
        data = await fetch(exchange_symbol)
        writer.snapshot(data, time.time_ns())
        return data

    return fetch_and_record


class CcxtMarketData:
    """Public market data of one venue (book + trades per symbol), see the module docstring."""

    def __init__(
        self,
        venue: VenueConfig,
        market_data: MarketDataConfig,
        *,
        symbols: Sequence[str],
        exchange: Any | None = None,
        sim_base_url: str | None = None,
        reporter: MarketDataReporter | None = None,
        fees_bps: tuple[float, float] | None = None,
        native: bool = True,
        rate_limit: bool | None = None,
        redial_after_silence_s: float | None = None,
        trades_after_book: bool = False,
        recorder: CaptureRecorder | None = None,
        mark_prices: bool = False,
    ) -> None:
        self._config = venue
        # Binance USD-M: read each perpetual's mark price and funding (`MarkPrice` events).
        self._mark_prices = mark_prices
        self._recorder = recorder  # native streams' frames and snapshots written as received
        self._trades_after_book = trades_after_book  # see NativeStream.on_frame
        self._md = market_data
        self._symbols = tuple(symbols)
        self._exchange = (
            exchange
            if exchange is not None
            else create_exchange(venue, sim_base_url=sim_base_url, rate_limit=rate_limit)
        )
        self._report = reporter
        self._fees_bps = fees_bps if fees_bps is not None else _configured_fees(venue)
        self._native = native and venue.exchange in DIALECTS
        # A native book stream silent this long is closed and redialled (default: 3x the
        # staleness limit, at least 10 s).
        self._redial_ns = (
            max(3 * int(market_data.stale_after_seconds * 1e9), 10_000_000_000)
            if redial_after_silence_s is None
            else int(redial_after_silence_s * 1e9)
        )
        self._instruments: dict[str, Instrument] = {}
        self.unknown: dict[str, str] = {}  # symbols the venue does not list, with the problem
        self._books: dict[str, Book] = {}
        self._streams: dict[str, _StreamState] = {}
        self._rx_sources: dict[str, Callable[[], int]] = {}
        self._flushed_updates: dict[int, int] = {}
        self._native_streams: list[NativeStream] = []
        self._connections: list[NativeConnection] = []
        self._mark_readers: list[MarkPriceReader] = []
        self._sink: MarketSink | None = None
        self._started = asyncio.Event()
        self.reconnects = 0
        self.resyncs = 0
        self.malformed = 0

    # -- MarketData protocol ----------------------------------------------------------------

    @property
    def venue(self) -> str:
        return self._config.name

    @property
    def exchange(self) -> Any:
        """The underlying ccxt.pro exchange (markets, REST)."""
        return self._exchange

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        return self._instruments

    def book(self, symbol: str) -> Book:
        """The adapter's sequence-checked local book of `symbol` (exists after `connect`; the
        adapter applies every snapshot and delta to it before emitting the event)."""
        return self._books[symbol]

    async def connect(self, *, tolerate_unknown: bool = False) -> None:
        """Load markets and build each symbol's instrument. An unknown symbol raises
        `VenueError`, or with `tolerate_unknown` is left out and named in `unknown` (the other
        symbols trade)."""
        markets = await self._exchange.load_markets()
        self.unknown.clear()
        for symbol in self._symbols:
            market = markets.get(symbol)
            if market is None:
                near = sorted(s for s in markets if s.split("/")[0] == symbol.split("/")[0])[:5]
                hint = f"; listed with that base: {', '.join(near)}" if near else ""
                problem = (
                    f"venue {self.venue} ({self._config.exchange}, {self._config.endpoint}): "
                    f"unknown symbol {symbol!r}{hint}"
                )
                if not tolerate_unknown:
                    raise VenueError(problem)
                self.unknown[symbol] = problem
                continue
            self._instruments[symbol] = build_instrument(
                self.venue, market, fees_bps=self._fees_bps
            )
            if symbol not in self._books:
                self._books[symbol] = Book(SequenceRule.NONE)

    async def run(self, sink: MarketSink) -> None:
        if not self._instruments:
            await self.connect()
        self._sink = sink
        tasks: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        try:
            native: list[NativeStream] = []
            for symbol, instrument in self._instruments.items():
                state = _StreamState(symbol, last_rx_ns=time.monotonic_ns())
                self._streams[symbol] = state
                if self._native:
                    native.extend(self._native_streams_of(instrument, state, sink))
                else:
                    tasks.extend(self._start_ccxt(loop, instrument, state, sink))
            if native:
                # One connection for every symbol's depth and trades on this venue.
                connection = NativeConnection(
                    self.venue, self._ws_url(native[0].instrument), native
                )
                self._connections.append(connection)
                tasks.append(
                    loop.create_task(
                        self._supervise("streams", tuple(self._instruments), connection.run_once),
                        name=f"{self.venue}:streams",
                    )
                )
            perpetuals = [
                i for i in self._instruments.values() if i.kind is InstrumentKind.PERPETUAL
            ]
            if self._mark_prices and self._native and perpetuals:
                ex = self._exchange
                reader = MarkPriceReader(
                    self.venue,
                    ex.get_ws_url("linear", ex.get_future_ws_category("markPrice")) + "/1",
                    perpetuals,
                    sink,
                    on_malformed=self._count_malformed,
                )
                self._mark_readers.append(reader)
                tasks.append(
                    loop.create_task(
                        self._supervise(
                            "mark_price", tuple(i.symbol for i in perpetuals), reader.run_once
                        ),
                        name=f"{self.venue}:mark_price",
                    )
                )
            tasks.append(loop.create_task(self._watchdog(sink), name=f"{self.venue}:watchdog"))
            self._started.set()
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        for connection in self._connections:
            connection.close()
        for reader in self._mark_readers:
            reader.close()
        await self._exchange.close()

    # -- test and operations hooks ----------------------------------------------------------

    def is_stale(self, symbol: str) -> bool:
        return self._streams[symbol].stale

    async def wait_synced(self, symbol: str, timeout_s: float) -> None:
        """Wait until the book of `symbol` has synced at least once (native streams)."""
        await asyncio.wait_for(self._started.wait(), timeout_s)
        for stream in self._native_streams:
            if stream.instrument.symbol == symbol and stream.kind == "depth":
                await asyncio.wait_for(stream.stats.synced_once.wait(), timeout_s)
                return
        raise VenueError(f"{symbol}: no native depth stream")

    # -- native Binance streams -------------------------------------------------------------

    def _ws_url(self, instrument: Instrument) -> str:
        ex = self._exchange
        kind = "spot" if instrument.kind is InstrumentKind.SPOT else "linear"
        base: str = ex.get_ws_url(kind, ex.get_future_ws_category("depth"))
        return f"{base}/0"

    def _native_streams_of(
        self, instrument: Instrument, state: _StreamState, sink: MarketSink
    ) -> tuple[NativeStream, NativeStream]:
        """The depth and trade streams of one symbol, read over the venue's connection."""
        usdm = instrument.kind is not InstrumentKind.SPOT
        symbol = instrument.symbol
        m = self._report
        labels = (self.venue, symbol)
        fetch: SnapshotFetcher = self._fetch_usdm_depth if usdm else self._fetch_spot_depth
        depth_tap = trade_tap = None
        if self._recorder is not None:
            writer = self._recorder.writer(instrument)
            venue_id = instrument.exchange_symbol
            depth_tap = functools.partial(writer.frame, stream_name(venue_id, "depth").encode())
            trade_tap = functools.partial(writer.frame, stream_name(venue_id, "trade").encode())
            fetch = _recording_fetch(fetch, writer)

        def on_sync_change(synced: bool, reason: str) -> None:
            state.synced = synced
            state.reason = reason
            if synced:
                self._mark(sink, state, stale=False, reason=reason)
            else:
                if reason not in {"disconnected", "starting"}:
                    self.resyncs += 1
                self._mark(sink, state, stale=True, reason=reason)

        depth = NativeStream(
            venue=self.venue,
            ws_url="",
            instrument=instrument,
            kind="depth",
            usdm=usdm,
            sink=sink,
            fetch_snapshot=fetch,
            on_sync_change=on_sync_change,
            book=self._books[symbol],
            malformed_counter=m.malformed(self.venue) if m else None,
            latency_histogram=m.latency(*labels) if m else None,
            resync_counter=m.resyncs(*labels) if m else None,
            tap=depth_tap,
        )
        trades = NativeStream(
            venue=self.venue,
            ws_url="",
            instrument=instrument,
            kind="trade",
            usdm=usdm,
            sink=self._counting_trade_sink(sink, symbol),
            malformed_counter=m.malformed(self.venue) if m else None,
            latency_histogram=m.latency(*labels) if m else None,
            trades_after_book=self._trades_after_book,
            tap=trade_tap,
        )
        self._native_streams.extend((depth, trades))
        self._rx_sources[symbol] = lambda: depth.last_rx_ns
        return depth, trades

    async def _fetch_spot_depth(self, exchange_symbol: str) -> Any:
        return await self._exchange.publicGetDepth({"symbol": exchange_symbol, "limit": 1000})

    async def _fetch_usdm_depth(self, exchange_symbol: str) -> Any:
        return await self._exchange.fapiPublicGetDepth({"symbol": exchange_symbol, "limit": 1000})

    def _counting_trade_sink(self, sink: MarketSink, symbol: str) -> MarketSink:
        m = self._report
        if m is None:
            return sink
        counter = m.trades(self.venue, symbol)

        def counted(event: MarketEvent) -> None:
            counter.inc()
            sink(event)

        return counted

    # -- ccxt streams (non-Binance venues) --------------------------------------------------

    def _start_ccxt(
        self,
        loop: asyncio.AbstractEventLoop,
        instrument: Instrument,
        state: _StreamState,
        sink: MarketSink,
    ) -> list[asyncio.Task[None]]:
        symbol = instrument.symbol
        book = self._books[symbol]
        self._rx_sources[symbol] = lambda: state.last_rx_ns
        gap_check = self._hook_sequence_check(symbol)
        trade_sink = self._counting_trade_sink(sink, symbol)
        return [
            loop.create_task(
                self._supervise(
                    f"{symbol} book",
                    (symbol,),
                    lambda: self._ccxt_book_loop(instrument, book, state, sink, gap_check),
                ),
                name=f"{self.venue}:{symbol}:book",
            ),
            loop.create_task(
                self._supervise(
                    f"{symbol} trades",
                    (symbol,),
                    lambda: self._ccxt_trades_loop(instrument, trade_sink),
                ),
                name=f"{self.venue}:{symbol}:trades",
            ),
        ]

    def _hook_sequence_check(self, symbol: str) -> BybitSequenceCheck:
        """For bybit: check `u` continuity of the raw book messages (ccxt does not), by
        wrapping the exchange's book message handler. The check's `gap` flag tells the book
        loop to resubscribe."""
        check = BybitSequenceCheck(self._instruments[symbol].exchange_symbol)
        ex = self._exchange
        if getattr(ex, "id", "") != "bybit":
            return check
        original = ex.handle_order_book

        def checked(client: Any, message: Any) -> Any:
            if not check.on_message(message):
                self._count_malformed()
            return original(client, message)

        ex.handle_order_book = checked
        return check

    async def _ccxt_book_loop(
        self,
        instrument: Instrument,
        book: Book,
        state: _StreamState,
        sink: MarketSink,
        gap_check: BybitSequenceCheck,
    ) -> None:
        ex = self._exchange
        symbol = instrument.symbol
        tick, lot = instrument.tick_size, instrument.lot_size
        depth = min(self._md.book_depth_levels, 200)
        m = self._report
        labels = (self.venue, symbol)
        try:
            while True:
                ob = await ex.watch_order_book(symbol)
                now = time.time_ns()
                state.last_rx_ns = time.monotonic_ns()
                if gap_check.gap:
                    gap_check.gap = False
                    self._count_resync(symbol, "gap")
                    state.synced = False
                    self._mark(sink, state, stale=True, reason="gap")
                    with contextlib.suppress(Exception):
                        await ex.un_watch_order_book(symbol)
                    continue
                try:
                    bids = tuple(
                        (round(p / tick), round(q / lot)) for p, q, *_ in ob["bids"][:depth]
                    )
                    asks = tuple(
                        (round(p / tick), round(q / lot)) for p, q, *_ in ob["asks"][:depth]
                    )
                except (TypeError, ValueError, KeyError):
                    self._count_malformed()
                    continue
                ts_ms = ob.get("timestamp")
                ts_ex = int(ts_ms) * 1_000_000 if ts_ms else now
                nonce = ob.get("nonce")
                update_id = int(nonce) if nonce is not None else -1
                snapshot = BookSnapshot(self.venue, symbol, ts_ex, now, update_id, bids, asks)
                if book.apply_snapshot(snapshot):
                    self._count_resync(symbol, "crossed")
                    self._mark(sink, state, stale=True, reason="crossed")
                    with contextlib.suppress(Exception):
                        await ex.un_watch_order_book(symbol)
                    continue
                if m is not None:
                    m.book_updates(*labels).inc()
                    m.latency(*labels).observe(max(0, now - ts_ex) / 1e9)
                state.synced = True
                if state.stale:
                    self._mark(sink, state, stale=False, reason="synced")
                sink(snapshot)
        finally:
            state.synced = False

    async def _ccxt_trades_loop(self, instrument: Instrument, sink: MarketSink) -> None:
        ex = self._exchange
        symbol = instrument.symbol
        tick, lot = instrument.tick_size, instrument.lot_size
        last_id = ""
        while True:
            trades = await ex.watch_trades(symbol)
            now = time.time_ns()
            for t in trades:
                try:
                    tid = str(t["id"])
                    if tid == last_id:
                        continue
                    last_id = tid
                    trade = Trade(
                        self.venue,
                        symbol,
                        int(t["timestamp"]) * 1_000_000,
                        now,
                        int(tid) if tid.isdigit() else hash(tid) & 0x7FFFFFFFFFFFFFFF,
                        round(float(t["price"]) / tick),
                        round(float(t["amount"]) / lot),
                        Side.BUY if t["side"] == "buy" else Side.SELL,
                    )
                except (KeyError, TypeError, ValueError):
                    self._count_malformed()
                    continue
                sink(trade)

    # -- supervision, staleness, counting ---------------------------------------------------

    async def _supervise(
        self, name: str, symbols: tuple[str, ...], run_once: Callable[[], Awaitable[None]]
    ) -> None:
        """Run a stream forever: retry with backoff (`mm_daemon.retry`); never raise."""
        md = self._md
        backoff = BackoffPolicy(
            md.reconnect_initial_backoff_seconds, md.reconnect_max_backoff_seconds
        ).start()
        first = True
        while True:
            backoff.attempt()
            if not first:
                self.reconnects += 1
                if self._report is not None:
                    for symbol in symbols:
                        self._report.reconnects(self.venue, symbol).inc()
            first = False
            try:
                await run_once()
                error: str = "stream ended"
                level = "warning"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  a stream never takes the daemon down
                error = repr(exc)
                level = "warning" if _retryable(exc) else "error"
            delay = backoff.next_delay()
            log.log(
                40 if level == "error" else 30,
                "stream failed, reconnecting",
                venue=self.venue,
                stream=name,
                error=error,
                retry_in_s=round(delay, 3),
            )
            await asyncio.sleep(delay)

    async def _watchdog(self, sink: MarketSink) -> None:
        """Mark a market stale when its book stream is silent past the limit; un-stale on data.

        A native book stream silent for `redial_after_silence_s` is closed so that its
        supervisor reconnects: a half-open TCP connection would otherwise stay silent forever.
        """
        limit_ns = int(self._md.stale_after_seconds * 1e9)
        redial_ns = self._redial_ns
        interval = min(self._md.stale_after_seconds / 10, 0.5)
        m = self._report
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic_ns()
            for symbol, state in self._streams.items():
                rx = self._rx_sources[symbol]()
                silent = now - rx > limit_ns
                if silent and not state.stale:
                    self._mark(sink, state, stale=True, reason="silent")
                elif not silent and state.stale and state.synced:
                    self._mark(sink, state, stale=False, reason="data resumed")
                if now - rx > redial_ns and now - state.redialed_ns > redial_ns:
                    state.redialed_ns = now
                    await self._redial(symbol)
                if m is not None:
                    self._flush_update_counts(symbol)
                    book = self._books.get(symbol)
                    inst = self._instruments[symbol]
                    if book is not None and book.synced:
                        bid = book.best_bid_ticks
                        ask = book.best_ask_ticks
                        if bid is not None:
                            m.best_bid(self.venue, symbol).set(inst.ticks_to_price(bid))
                        if ask is not None:
                            m.best_ask(self.venue, symbol).set(inst.ticks_to_price(ask))

    async def _redial(self, symbol: str) -> None:
        for stream in self._native_streams:
            if stream.kind == "depth" and stream.instrument.symbol == symbol:
                log.warning(
                    "book stream silent too long, reconnecting", venue=self.venue, symbol=symbol
                )
                await stream.close()

    def _flush_update_counts(self, symbol: str) -> None:
        """Move the native streams' applied-delta counts into mm_book_updates_total."""
        m = self._report
        if m is None:
            return
        for stream in self._native_streams:
            if stream.kind == "depth" and stream.instrument.symbol == symbol:
                pending = stream.applied - self._flushed_updates.get(id(stream), 0)
                if pending > 0:
                    m.book_updates(self.venue, symbol).inc(pending)
                    self._flushed_updates[id(stream)] = stream.applied

    def _mark(self, sink: MarketSink, state: _StreamState, *, stale: bool, reason: str) -> None:
        if state.stale == stale:
            return
        state.stale = stale
        if self._report is not None:
            self._report.stale(self.venue, state.symbol).set(1 if stale else 0)
        log.info(
            "market stale" if stale else "market fresh",
            venue=self.venue,
            symbol=state.symbol,
            reason=reason,
        )
        sink(MarketStatus(self.venue, state.symbol, time.time_ns(), stale, reason))

    def _count_resync(self, symbol: str, cause: str) -> None:
        self.resyncs += 1
        if self._report is not None:
            self._report.resyncs(self.venue, symbol).inc()
        log.warning("book out of sync, resyncing", venue=self.venue, symbol=symbol, cause=cause)

    def _count_malformed(self) -> None:
        self.malformed += 1
        if self._report is not None:
            self._report.malformed(self.venue).inc()


class BybitSequenceCheck:
    """`u` continuity of one symbol's bybit `orderbook.*` messages: a snapshot (or `u == 1`,
    bybit's service restart) starts a run; each delta must carry the previous `u` + 1."""

    __slots__ = ("gap", "last_u", "market_id")

    def __init__(self, market_id: str) -> None:
        self.market_id = market_id
        self.last_u: int | None = None
        self.gap = False

    def on_message(self, message: Any) -> bool:
        """Check one raw message; False when it is malformed."""
        try:
            data = message.get("data") or {}
            if data.get("s") != self.market_id:
                return True
            u = int(data["u"])
        except (TypeError, ValueError, KeyError, AttributeError):
            return False
        if message.get("type") == "snapshot" or u == 1:
            self.last_u = u
        else:
            if self.last_u is not None and u != self.last_u + 1:
                self.gap = True
            self.last_u = u
        return True


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, OSError, aiohttp.ClientError, TimeoutError)):
        return True
    return any(cls.__name__ in _RETRYABLE_NAMES for cls in type(exc).__mro__)


def _configured_fees(venue: VenueConfig) -> tuple[float, float] | None:
    if venue.maker_fee_bps is None and venue.taker_fee_bps is None:
        return None
    return venue.fees_bps((0.0, 0.0))
