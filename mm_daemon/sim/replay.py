"""Serve recorded Binance captures: the replayed book, and client orders against them.

The captures are read with `mm_daemon.binance.capture` (frames in receive order, raw bytes kept
for serving as is).

- `ReplayBook` rebuilds the order book with Binance's sync rules (spot: `U`/`u`; USD-M: `pu`),
  so a REST depth request can be answered with the state at the moment it is asked
  (`lastUpdateId` = the last applied `u`).
- `ReplayEngine` is a `MatchingEngine` whose displayed book (the engine's `DisplayedBook` hook,
  here `RecordedDisplayedBook`) is the recorded one: client orders that cross it fill at once
  as taker against the displayed size (LIMIT_MAKER is refused); resting client orders fill
  from recorded trades through the queue model (`mm_daemon.core.queue.QueueFillModel`): queue
  ahead at placement = displayed size at the price, reduced by trades at that price and by a
  share of unexplained size decreases. Client orders are not shown in the recorded book and
  do not change it.

Nothing here reads a clock: the caller passes the time of each call and paces the frames
(`ReplayClock` maps recorded time to wall time at a speed-up factor).

`open_replay` opens one feed per recorded book (BTCUSDT and ETHUSDT, spot on sim-spot and USD-M
on sim-perp, by default), and `merge_feeds` interleaves them in recorded receive order (the
captures share one collector clock), ties broken by the order of the feeds: the same captures
always give the same sequence.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mm_daemon.binance.capture import FrameKind, RecordedFrame, default_data_dir, iter_frames
from mm_daemon.binance.depth import BinanceDepthSync
from mm_daemon.binance.frames import parse_snapshot, shared_parser
from mm_daemon.binance.markets import Dialect, recorded_instrument
from mm_daemon.core.book import ApplyResult
from mm_daemon.core.queue import QueueFillModel
from mm_daemon.core.types import BookDelta, BookLevels, Instrument, Liquidity, OrderType, Side
from mm_daemon.sim.market_params import PERP_VENUE, SPOT_VENUE, BookKey, starting_balances
from mm_daemon.sim.matching import (
    Accounts,
    Fills,
    LevelChange,
    MatchingEngine,
    MatchResult,
    Order,
    PublicTrade,
)

if TYPE_CHECKING:
    from mm_daemon.config import SimConfig

__all__ = [
    "RecordedDisplayedBook",
    "ReplayBook",
    "ReplayClock",
    "ReplayEngine",
    "ReplayFeed",
    "ReplayGapError",
    "merge_feeds",
    "open_replay",
    "replay_symbols",
]


class ReplayGapError(Exception):
    """A depth update does not continue the book: the capture has a sequence gap."""


class ReplayBook:
    """The recorded order book, rebuilt with Binance's sync procedure (`BinanceDepthSync`, the
    same code the live reader runs): updates that arrive before the snapshot are buffered and
    applied after it (a capture fetches its snapshot after subscribing); a break in the
    sequence, or a crossed book, raises `ReplayGapError`.
    """

    __slots__ = ("_book", "_instrument", "_parser", "_sync", "dialect", "synced")

    def __init__(self, instrument: Instrument, dialect: Dialect) -> None:
        self.dialect = dialect
        self._instrument = instrument
        self._sync = BinanceDepthSync(instrument, instrument.venue, usdm=dialect == "usdm")
        self._book = self._sync.book
        self._parser = shared_parser(instrument.tick_size, instrument.lot_size)
        self.synced = False  # a snapshot has been applied and an update has followed it

    @property
    def ready(self) -> bool:
        """Whether the book holds a snapshot (it can answer depth requests)."""
        return self._book.update_id >= 0

    @property
    def last_update_id(self) -> int:
        return self._book.update_id

    def apply_snapshot(self, data: Mapping[str, Any]) -> list[LevelChange]:
        """Reset the book to a REST depth snapshot, then apply the buffered updates that
        follow it; returns the level changes of the updates applied."""
        last_id, bids, asks = parse_snapshot(data, self._instrument)
        sync = self._sync
        result = sync.on_snapshot(last_id, bids, asks)
        if result is not ApplyResult.APPLIED:
            raise ReplayGapError(
                f"{self.dialect} snapshot {last_id} does not join the buffered updates "
                f"({result.name.lower()})"
            )
        self.synced = bool(sync.replayed)
        return [change for delta in sync.replayed for change in _changes(delta)]

    def apply_depth(self, data: Mapping[str, Any]) -> list[LevelChange] | None:
        """Apply a depthUpdate payload; None when it is dropped (older than the book) or
        buffered (before the first snapshot)."""
        parser = self._parser
        try:
            delta = BookDelta(
                self._instrument.venue,
                self._instrument.symbol,
                0,
                0,
                int(data["U"]),
                int(data["u"]),
                int(data.get("pu", -1)),
                parser.levels(data["b"]),
                parser.levels(data["a"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ReplayGapError(f"{self.dialect} malformed depth update: {exc!r}") from None
        result = self._sync.on_delta(delta)
        if result is ApplyResult.APPLIED:
            self.synced = True
            return _changes(delta)
        if result is ApplyResult.SKIPPED:
            return None
        raise ReplayGapError(
            f"{self.dialect} depth U={delta.first_update_id} u={delta.last_update_id} "
            f"pu={delta.prev_update_id} does not follow {self._book.update_id} "
            f"({result.name.lower()})"
        )

    def best_bid(self) -> tuple[int, int] | None:
        return self._book.best_bid()

    def best_ask(self) -> tuple[int, int] | None:
        return self._book.best_ask()

    def depth(self, n: int) -> tuple[BookLevels, BookLevels, int]:
        """Top `n` levels per side (all when n <= 0) and lastUpdateId."""
        book = self._book
        count = None if n <= 0 else n
        return book.bids(count), book.asks(count), book.update_id

    def level_size(self, side: Side, price_ticks: int) -> int:
        book = self._book
        return book.bid_size_at(price_ticks) if side is Side.BUY else book.ask_size_at(price_ticks)

    def walk(self, side: Side) -> Iterator[tuple[int, int]]:
        """(price_ticks, size_lots) of one side, best first (rare: takers crossing the book)."""
        return iter(self._book.bids() if side is Side.BUY else self._book.asks())

    def level_count(self, side: Side) -> int:
        bids, asks = self._book.level_count()
        return bids if side is Side.BUY else asks


def _changes(delta: BookDelta) -> list[LevelChange]:
    buy, sell = Side.BUY, Side.SELL
    return [LevelChange(buy, px, sz) for px, sz in delta.bids] + [
        LevelChange(sell, px, sz) for px, sz in delta.asks
    ]


@dataclass(frozen=True, slots=True)
class ReplayClock:
    """Maps recorded receive times to wall times: `speed` 1 is recorded pace, 10 ten times
    faster, 0 as fast as the reader takes them (every frame is due at once)."""

    first_local_ns: int
    start_wall_ns: int
    speed: float = 1.0

    def due_ns(self, local_ns: int) -> int:
        if self.speed <= 0.0:
            return self.start_wall_ns
        return self.start_wall_ns + round((local_ns - self.first_local_ns) / self.speed)


class RecordedDisplayedBook:
    """The displayed book of a replay (a `DisplayedBook`): the recorded book, and a queue
    model for the client orders resting in it; see the module doc.

    Client takers fill at once against the displayed size (less what earlier takers already
    took at that level since it last changed); client orders rest only in the queue model and
    fill from recorded trades. Client orders never change the recorded levels or update id.
    """

    __slots__ = (
        "_lot_size",
        "_next_trade_id",
        "_recorded_trade_id",
        "_resting",
        "_taken",
        "_tick_size",
        "book",
        "queue",
    )

    def __init__(
        self,
        instrument: Instrument,
        dialect: Dialect,
        *,
        size_decrease_queue_share: float = 0.5,
        first_trade_id: int = 1,
    ) -> None:
        self.book = ReplayBook(instrument, dialect)
        self.queue = QueueFillModel(size_decrease_queue_share=size_decrease_queue_share)
        self._recorded_trade_id = 0
        self._next_trade_id = first_trade_id  # ids of client fills (not public trades)
        self._lot_size = instrument.lot_size
        self._tick_size = instrument.tick_size
        # Displayed liquidity our takers consumed since the level last changed (lots).
        self._taken: dict[tuple[Side, int], int] = {}
        self._resting: dict[int, Order] = {}

    # -- the recorded view -----------------------------------------------------------------

    @property
    def update_id(self) -> int:
        return self.book.last_update_id

    @property
    def last_trade_id(self) -> int:
        return self._recorded_trade_id

    def best_bid(self) -> tuple[int, int] | None:
        return self.book.best_bid()

    def best_ask(self) -> tuple[int, int] | None:
        return self.book.best_ask()

    def depth(self, n: int) -> tuple[BookLevels, BookLevels, int]:
        return self.book.depth(n)

    def level_size(self, side: Side, price_ticks: int) -> int:
        return self.book.level_size(side, price_ticks)

    def iter_levels(self, side: Side) -> Iterator[tuple[int, int]]:
        return self.book.walk(side)

    def level_count(self, side: Side) -> int:
        return self.book.level_count(side)

    # -- frames ----------------------------------------------------------------------------

    def on_frame(self, frame: RecordedFrame, ts_ns: int, fills: Fills) -> MatchResult:
        """Apply one recorded frame; see `ReplayEngine.on_frame`."""
        result = MatchResult(update_id=self.book.last_update_id)
        kind = frame.kind
        data = frame.data
        if kind is FrameKind.DEPTH:
            changes = self.book.apply_depth(data)
            if changes:
                result.level_changes = changes
                taken = self._taken
                queue = self.queue
                for change in changes:
                    if taken:
                        taken.pop((change.side, change.price_ticks), None)
                    queue.on_level_change(change.side, change.price_ticks, change.size_lots)
        elif kind is FrameKind.TRADE:
            if data.get("X", "MARKET") == "MARKET":
                self._on_trade(data, ts_ns, result, fills)
        elif kind is FrameKind.SNAPSHOT:
            result.level_changes = self.book.apply_snapshot(data)
            self._taken.clear()
            for side, price in self.queue.tracked_levels():
                self.queue.on_level_change(side, price, self.book.level_size(side, price))
        result.update_id = self.book.last_update_id
        return result

    def _on_trade(
        self, data: Mapping[str, Any], ts_ns: int, result: MatchResult, fills: Fills
    ) -> None:
        trade_id = int(data["t"])
        self._recorded_trade_id = trade_id
        price = round(float(data["p"]) / self._tick_size)
        lots = round(float(data["q"]) / self._lot_size)
        aggressor = Side.SELL if data["m"] else Side.BUY
        result.trades.append(PublicTrade(trade_id, price, lots, aggressor, ts_ns, -1, -1))
        for fill in self.queue.on_trade(price, lots, aggressor):
            order = self._resting.get(int(fill.order_id))
            if order is None:
                continue
            own_id = self._next_trade_id
            self._next_trade_id += 1
            fills.apply_fill(
                order, fill.price_ticks, fill.size_lots, own_id, ts_ns, Liquidity.MAKER, result
            )
            if order.remaining == 0:
                # The queue model has let go of it already.
                del self._resting[order.order_id]
                fills.drop_filled(order)

    # -- the engine's hook -----------------------------------------------------------------

    def would_cross(self, side: Side, price_ticks: int) -> bool:
        if side is Side.BUY:
            ask = self.book.best_ask()
            return ask is not None and ask[0] <= price_ticks
        bid = self.book.best_bid()
        return bid is not None and bid[0] >= price_ticks

    def market_units(self, side: Side, lots: int) -> int:
        units = 0
        left = lots
        for price, size in self.book.walk(side.opposite):
            take = min(left, size - self._taken.get((side.opposite, price), 0))
            if take <= 0:
                continue
            units += take * price
            left -= take
            if left == 0:
                break
        return units

    def take(self, taker: Order, ts_ns: int, result: MatchResult, fills: Fills) -> None:
        """Fill as taker against the displayed recorded levels up to the order's limit (no
        public trade: the recording has the market's trades)."""
        maker_side = taker.side.opposite
        is_market = taker.order_type is OrderType.MARKET
        planned: list[tuple[int, int]] = []
        left = taker.remaining
        for price, size in self.book.walk(maker_side):
            if not is_market and (
                price > taker.price if taker.side is Side.BUY else price < taker.price
            ):
                break
            key = (maker_side, price)
            qty = min(left, size - self._taken.get(key, 0))
            if qty <= 0:
                continue
            planned.append((price, qty))
            left -= qty
            if left == 0:
                break
        for price, qty in planned:
            key = (maker_side, price)
            self._taken[key] = self._taken.get(key, 0) + qty
            trade_id = self._next_trade_id
            self._next_trade_id += 1
            fills.apply_fill(taker, price, qty, trade_id, ts_ns, Liquidity.TAKER, result)

    def rest(self, order: Order) -> None:
        self._resting[order.order_id] = order
        self.queue.on_place(
            str(order.order_id),
            order.side,
            order.price,
            order.remaining,
            self.book.level_size(order.side, order.price),
        )

    def unrest(self, order: Order) -> None:
        del self._resting[order.order_id]
        self.queue.on_cancel(str(order.order_id))

    def close(self, result: MatchResult) -> None:
        """Client orders are not part of the recorded book: no level changes, no new id."""
        result.update_id = self.book.last_update_id


class ReplayEngine(MatchingEngine):
    """A matching engine over a recorded book (its displayed book is a
    `RecordedDisplayedBook`); see the module doc.

    Feed every recorded frame, in order, through `on_frame`; client calls (submit, cancel,
    cancel_replace, modify, queries) are those of `MatchingEngine`. `depth`, `best_bid`,
    `best_ask`, `level_size` and `update_id` show the recorded book; `last_trade_id` is the
    last recorded trade's id.
    """

    def __init__(
        self,
        instrument: Instrument,
        accounts: Accounts | None = None,
        *,
        dialect: Dialect,
        size_decrease_queue_share: float = 0.5,
        first_order_id: int = 1,
        first_trade_id: int = 1,
    ) -> None:
        recorded = RecordedDisplayedBook(
            instrument,
            dialect,
            size_decrease_queue_share=size_decrease_queue_share,
            first_trade_id=first_trade_id,
        )
        super().__init__(instrument, accounts, displayed=recorded, first_order_id=first_order_id)
        self.recorded = recorded
        self.book = recorded.book
        self.queue = recorded.queue

    def on_frame(self, frame: RecordedFrame, ts_ns: int) -> MatchResult:
        """Apply one recorded frame at time `ts_ns`.

        The result's `level_changes` are the recorded book changes (empty for a dropped
        update), `trades` the recorded public trade, `reports` the client fills it caused.
        `update_id` is the book's lastUpdateId after the frame.
        """
        return self.recorded.on_frame(frame, ts_ns, self)


@dataclass(slots=True)
class ReplayFeed:
    """One replayed book: its venue, engine and the recorded frames still to feed it."""

    venue: str
    engine: ReplayEngine
    frames: Iterator[RecordedFrame]

    @property
    def key(self) -> BookKey:
        return self.venue, self.engine.instrument.exchange_symbol


def replay_symbols(cfg: SimConfig) -> tuple[str, ...]:
    """The recorded markets to replay: the configured assets against USDT (`btcusdt`, ...)."""
    return tuple(f"{asset.base.lower()}usdt" for asset in cfg.assets)


def open_replay(
    cfg: SimConfig, *, symbols: Sequence[str] | None = None, data_dir: Path | None = None
) -> dict[BookKey, ReplayFeed]:
    """The recorded spot markets on sim-spot and the USD-M ones on sim-perp (`symbols` like
    "btcusdt", default `replay_symbols(cfg)`: BTCUSDT and ETHUSDT), keyed by (venue, exchange
    symbol), spot first; with the config's fees, and starting balances shared by a venue's
    books (those of the synthetic market, `starting_balances`). `data_dir` defaults to
    `cfg.replay_data_dir`, then `default_data_dir()`; raises FileNotFoundError naming a
    capture that is missing."""
    folder = data_dir or cfg.replay_data_dir or default_data_dir()
    names = tuple(symbols) if symbols is not None else replay_symbols(cfg)
    feeds: dict[BookKey, ReplayFeed] = {}
    plan: tuple[tuple[str, Dialect, float, float], ...] = (
        (SPOT_VENUE, "spot", cfg.spot_maker_fee_bps, cfg.spot_taker_fee_bps),
        (PERP_VENUE, "usdm", cfg.perp_maker_fee_bps, cfg.perp_taker_fee_bps),
    )
    for venue, dialect, maker_bps, taker_bps in plan:
        instruments = [
            recorded_instrument(
                dialect,
                symbol,
                venue,
                maker_fee_rate=maker_bps * 1e-4,
                taker_fee_rate=taker_bps * 1e-4,
            )
            for symbol in names
        ]
        balances = {inst.quote: cfg.starting_quote for inst in instruments}
        if dialect == "spot":
            balances.update(starting_balances(cfg))
        accounts = Accounts(instruments[0].kind, balances)
        for symbol, inst in zip(names, instruments, strict=True):
            engine = ReplayEngine(inst, accounts, dialect=dialect)
            feed = ReplayFeed(venue, engine, iter_frames(folder, dialect, symbol))
            feeds[feed.key] = feed
    return feeds


def merge_feeds(feeds: Mapping[BookKey, ReplayFeed]) -> Iterator[tuple[BookKey, RecordedFrame]]:
    """(book, frame) across feeds in recorded receive order (one collector clock); frames
    received at the same nanosecond come in the order of `feeds`."""
    streams = [_tagged(i, feed.frames) for i, feed in enumerate(feeds.values())]
    keys = list(feeds)
    for _ns, index, frame in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        yield keys[index], frame


def _tagged(
    index: int, frames: Iterator[RecordedFrame]
) -> Iterator[tuple[int, int, RecordedFrame]]:
    for frame in frames:
        yield frame.local_ns, index, frame
