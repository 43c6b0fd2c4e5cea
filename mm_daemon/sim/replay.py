"""Serve recorded Binance captures: frames, the replayed book, and client orders against them.

Captures are gzip text, one message a line: `<local receive ns> <raw JSON>` (REST depth
snapshot, or a combined-stream envelope of depthUpdate, trade or bookTicker). Spot captures
span two files per symbol, chained by date.

- `iter_frames` yields `RecordedFrame`s in receive order (raw bytes kept for serving as is).
- `ReplayBook` rebuilds the order book with Binance's sync rules (spot: `U`/`u`; USD-M: `pu`),
  so a REST depth request can be answered with the state at the moment it is asked
  (`lastUpdateId` = the last applied `u`).
- `ReplayEngine` is a `MatchingEngine` whose displayed book is the recorded one: client orders
  that cross it fill at once as taker against the displayed size (LIMIT_MAKER is refused);
  resting client orders fill from recorded trades through the queue model
  (`mm_daemon.core.queue.QueueFillModel`): queue ahead at placement = displayed size at the
  price, reduced by trades at that price and by a share of unexplained size decreases.
  Client orders are not shown in the recorded book and do not change it.

Nothing here reads a clock: the caller passes the time of each call and paces the frames
(`ReplayClock` maps recorded time to wall time at a speed-up factor).
"""

from __future__ import annotations

import bisect
import gzip
import heapq
import os
from collections import deque
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from mm_daemon.core.queue import QueueFillModel
from mm_daemon.core.types import BookLevels, Instrument, InstrumentKind, Liquidity, OrderType, Side
from mm_daemon.sim.market import PERP_VENUE, SPOT_VENUE
from mm_daemon.sim.matching import (
    Accounts,
    LevelChange,
    MatchingEngine,
    MatchResult,
    PublicTrade,
    _Order,
)

if TYPE_CHECKING:
    from mm_daemon.config import SimConfig

__all__ = [
    "DATA_DIR_ENV",
    "Dialect",
    "FrameKind",
    "RecordedFrame",
    "ReplayBook",
    "ReplayClock",
    "ReplayEngine",
    "ReplayFeed",
    "ReplayGapError",
    "capture_files",
    "default_data_dir",
    "envelope_payload",
    "iter_frames",
    "merge_feeds",
    "open_replay",
    "read_frames",
    "read_raw_frames",
    "replay_instrument",
]

DATA_DIR_ENV = "MMD_DATA_DIR"
_PENDING_MAX = 10_000  # depth updates buffered before the first snapshot
Dialect = Literal["spot", "usdm"]


def default_data_dir() -> Path:
    """$MMD_DATA_DIR, else `shared/data/binance` beside the repository root."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parents[2]
    return repo_root.parent / "shared" / "data" / "binance"


def capture_files(data_dir: Path, dialect: Dialect, symbol: str) -> list[Path]:
    """The capture files of one market in replay order (e.g. spot/btcusdt_2024080[89].gz)."""
    folder = data_dir / dialect
    return sorted(folder.glob(f"{symbol.lower()}_*.gz"))


class FrameKind(StrEnum):
    SNAPSHOT = "snapshot"
    DEPTH = "depth"
    TRADE = "trade"
    BOOK_TICKER = "bookTicker"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class RecordedFrame:
    """One recorded message. `raw` is the line's JSON as Binance sent it (a combined-stream
    envelope, or the REST snapshot); `data` is the parsed payload (the envelope's `data`)."""

    local_ns: int
    raw: bytes
    kind: FrameKind
    stream: str  # e.g. "btcusdt@depth@100ms"; "" for the REST snapshot
    data: dict[str, Any]

    @property
    def payload_raw(self) -> bytes:
        """The payload's raw JSON (what a single-stream `/ws` connection receives)."""
        return envelope_payload(self.raw) if self.stream else self.raw


_DATA_KEY = b'"data":'


def envelope_payload(raw: bytes) -> bytes:
    """The raw `data` of a combined-stream envelope (`raw` itself when it has none)."""
    start = raw.find(_DATA_KEY)
    return raw[start + len(_DATA_KEY) : raw.rindex(b"}")] if start >= 0 else raw


def _kind(stream: str) -> FrameKind:
    if "@depth" in stream:
        return FrameKind.DEPTH
    if stream.endswith("@trade"):
        return FrameKind.TRADE
    if stream.endswith("@bookTicker"):
        return FrameKind.BOOK_TICKER
    return FrameKind.OTHER


_STREAM_PREFIX = b'{"stream":"'


def read_raw_frames(
    paths: Iterable[Path],
) -> Generator[tuple[int, FrameKind, str, bytes], None, None]:
    """(local receive ns, kind, stream name, raw JSON line) of the given capture files, in order,
    file after file; the JSON is not parsed (the stream name is read off the envelope)."""
    for path in paths:
        with gzip.open(path, "rb") as fh:
            for line in fh:
                space = line.find(b" ")
                if space <= 0:
                    continue
                raw = line[space + 1 :].rstrip(b"\r\n")
                local_ns = int(line[:space])
                if raw.startswith(_STREAM_PREFIX):
                    end = raw.find(b'"', len(_STREAM_PREFIX))
                    stream = raw[len(_STREAM_PREFIX) : end].decode()
                    yield local_ns, _kind(stream), stream, raw
                elif b'"lastUpdateId"' in raw[:32]:
                    yield local_ns, FrameKind.SNAPSHOT, "", raw


def read_frames(paths: Iterable[Path]) -> Iterator[RecordedFrame]:
    """Frames of the given capture files, in order, file after file."""
    for local_ns, kind, stream, raw in read_raw_frames(paths):
        msg = orjson.loads(raw)
        yield RecordedFrame(local_ns, raw, kind, stream, msg["data"] if stream else msg)


def iter_frames(data_dir: Path, dialect: Dialect, symbol: str) -> Iterator[RecordedFrame]:
    """Frames of one recorded market (`symbol` like "btcusdt"); raises if none is recorded."""
    paths = capture_files(data_dir, dialect, symbol)
    if not paths:
        raise FileNotFoundError(f"no {dialect} capture of {symbol} under {data_dir}")
    return read_frames(paths)


def replay_instrument(
    dialect: Dialect,
    symbol: str,
    venue: str,
    *,
    maker_fee_rate: float = 0.0,
    taker_fee_rate: float = 0.0,
) -> Instrument:
    """The instrument of a recorded market, with Binance's filters for BTC and ETH USDT."""
    sym = symbol.upper()
    base = sym.removesuffix("USDT")
    if dialect == "spot":
        lot = 0.00001 if base == "BTC" else 0.0001
        return Instrument(
            venue=venue,
            symbol=f"{base}/USDT",
            exchange_symbol=sym,
            kind=InstrumentKind.SPOT,
            base=base,
            quote="USDT",
            tick_size=0.01,
            lot_size=lot,
            min_notional_quote=5.0,
            maker_fee_rate=maker_fee_rate,
            taker_fee_rate=taker_fee_rate,
        )
    return Instrument(
        venue=venue,
        symbol=f"{base}/USDT:USDT",
        exchange_symbol=sym,
        kind=InstrumentKind.PERPETUAL,
        base=base,
        quote="USDT",
        tick_size=0.1 if base == "BTC" else 0.01,
        lot_size=0.001,
        min_notional_quote=100.0 if base == "BTC" else 20.0,
        maker_fee_rate=maker_fee_rate,
        taker_fee_rate=taker_fee_rate,
    )


class ReplayGapError(Exception):
    """A depth update does not continue the book: the capture has a sequence gap."""


class _Side:
    """Displayed levels of one side; keys are sign * price so the best is keys[-1]."""

    __slots__ = ("keys", "levels", "sign")

    def __init__(self, side: Side) -> None:
        self.sign = int(side)
        self.levels: dict[int, int] = {}
        self.keys: list[int] = []

    def clear(self) -> None:
        self.levels.clear()
        self.keys.clear()

    def set(self, price: int, lots: int) -> None:
        levels = self.levels
        if lots > 0:
            if price not in levels:
                bisect.insort(self.keys, price * self.sign)
            levels[price] = lots
        elif price in levels:
            del levels[price]
            key = price * self.sign
            keys = self.keys
            if keys[-1] == key:
                keys.pop()
            else:
                del keys[bisect.bisect_left(keys, key)]

    def best(self) -> tuple[int, int] | None:
        if not self.keys:
            return None
        price = self.keys[-1] * self.sign
        return price, self.levels[price]

    def top(self, n: int) -> BookLevels:
        keys = self.keys
        sign = self.sign
        stop = max(len(keys) - n, 0) if n > 0 else 0
        out = []
        for i in range(len(keys) - 1, stop - 1, -1):
            price = keys[i] * sign
            out.append((price, self.levels[price]))
        return tuple(out)

    def walk(self) -> Iterator[tuple[int, int]]:
        keys = self.keys
        sign = self.sign
        for i in range(len(keys) - 1, -1, -1):
            price = keys[i] * sign
            yield price, self.levels[price]


class ReplayBook:
    """The recorded order book, rebuilt with Binance's rules.

    Spot: updates with u <= L (the snapshot's lastUpdateId) are dropped; the first applied has
    U <= L+1 <= u; every later one has U == previous u + 1. USD-M: updates with u < L are
    dropped; the first applied has U <= L <= u; every later one has pu == previous u.
    Updates that arrive before the snapshot are buffered and applied by `apply_snapshot`
    under the same rules (a capture fetches its snapshot after subscribing). A break raises
    `ReplayGapError`.
    """

    __slots__ = (
        "_asks",
        "_bids",
        "_lot",
        "_pending",
        "_tick",
        "dialect",
        "last_update_id",
        "synced",
    )

    def __init__(self, instrument: Instrument, dialect: Dialect) -> None:
        self.dialect = dialect
        self._tick = instrument.tick_size
        self._lot = instrument.lot_size
        self._bids = _Side(Side.BUY)
        self._asks = _Side(Side.SELL)
        self.last_update_id = -1
        self.synced = False  # a snapshot has been applied and the first update has followed it
        self._pending: deque[Mapping[str, Any]] = deque(maxlen=_PENDING_MAX)

    @property
    def ready(self) -> bool:
        """Whether the book holds a snapshot (it can answer depth requests)."""
        return self.last_update_id >= 0

    def _ticks(self, text: str) -> int:
        return round(float(text) / self._tick)

    def _lots(self, text: str) -> int:
        return round(float(text) / self._lot)

    def apply_snapshot(self, data: Mapping[str, Any]) -> list[LevelChange]:
        """Reset the book to a REST depth snapshot, then apply the buffered updates that
        follow it; returns their level changes."""
        self._bids.clear()
        self._asks.clear()
        for price, qty in data["bids"]:
            self._bids.set(self._ticks(price), self._lots(qty))
        for price, qty in data["asks"]:
            self._asks.set(self._ticks(price), self._lots(qty))
        self.last_update_id = int(data["lastUpdateId"])
        self.synced = False
        changes: list[LevelChange] = []
        while self._pending:
            applied = self.apply_depth(self._pending.popleft())
            if applied:
                changes.extend(applied)
        return changes

    def apply_depth(self, data: Mapping[str, Any]) -> list[LevelChange] | None:
        """Apply a depthUpdate payload; None when it is dropped (stale) or buffered (before
        the first snapshot)."""
        if self.last_update_id < 0:
            self._pending.append(data)
            return None
        first = int(data["U"])
        last = int(data["u"])
        prev = self.last_update_id
        if self.dialect == "spot":
            if last <= prev:
                return None
            if self.synced:
                if first != prev + 1:
                    raise ReplayGapError(f"spot depth U={first} does not follow u={prev}")
            elif not first <= prev + 1 <= last:
                raise ReplayGapError(f"spot depth U={first} u={last} misses snapshot {prev}")
        else:
            if last < prev:
                return None
            if self.synced:
                if int(data["pu"]) != prev:
                    raise ReplayGapError(f"usdm depth pu={data['pu']} does not follow u={prev}")
            elif not first <= prev <= last:
                raise ReplayGapError(f"usdm depth U={first} u={last} misses snapshot {prev}")
        changes: list[LevelChange] = []
        for side, book, levels in (
            (Side.BUY, self._bids, data["b"]),
            (Side.SELL, self._asks, data["a"]),
        ):
            for price_text, qty_text in levels:
                price = self._ticks(price_text)
                lots = self._lots(qty_text)
                book.set(price, lots)
                changes.append(LevelChange(side, price, lots))
        self.last_update_id = last
        self.synced = True
        return changes

    def best_bid(self) -> tuple[int, int] | None:
        return self._bids.best()

    def best_ask(self) -> tuple[int, int] | None:
        return self._asks.best()

    def depth(self, n: int) -> tuple[BookLevels, BookLevels, int]:
        """Top `n` levels per side (all when n <= 0) and lastUpdateId."""
        return self._bids.top(n), self._asks.top(n), self.last_update_id

    def level_size(self, side: Side, price_ticks: int) -> int:
        return (self._bids if side is Side.BUY else self._asks).levels.get(price_ticks, 0)

    def walk(self, side: Side) -> Iterator[tuple[int, int]]:
        """(price_ticks, size_lots) of one side, best first; do not mutate meanwhile."""
        return (self._bids if side is Side.BUY else self._asks).walk()

    def level_count(self, side: Side) -> int:
        return len((self._bids if side is Side.BUY else self._asks).keys)


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


class ReplayEngine(MatchingEngine):
    """A matching engine over a recorded book; see the module doc.

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
        super().__init__(
            instrument, accounts, first_order_id=first_order_id, first_trade_id=first_trade_id
        )
        self.book = ReplayBook(instrument, dialect)
        self.queue = QueueFillModel(size_decrease_queue_share=size_decrease_queue_share)
        self._recorded_trade_id = 0
        self._lot_size = instrument.lot_size
        self._tick_size = instrument.tick_size
        # Displayed liquidity our takers consumed since the level last changed (lots).
        self._taken: dict[tuple[Side, int], int] = {}

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

    def on_frame(self, frame: RecordedFrame, ts_ns: int) -> MatchResult:
        """Apply one recorded frame at time `ts_ns`.

        The result's `level_changes` are the recorded book changes (empty for a dropped
        update), `trades` the recorded public trade, `reports` the client fills it caused.
        `update_id` is the book's lastUpdateId after the frame.
        """
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
                self._on_trade(data, ts_ns, result)
        elif kind is FrameKind.SNAPSHOT:
            result.level_changes = self.book.apply_snapshot(data)
            self._taken.clear()
            for side, price in self.queue.tracked_levels():
                self.queue.on_level_change(side, price, self.book.level_size(side, price))
        result.update_id = self.book.last_update_id
        return result

    def _on_trade(self, data: Mapping[str, Any], ts_ns: int, result: MatchResult) -> None:
        trade_id = int(data["t"])
        self._recorded_trade_id = trade_id
        price = round(float(data["p"]) / self._tick_size)
        lots = round(float(data["q"]) / self._lot_size)
        aggressor = Side.SELL if data["m"] else Side.BUY
        result.trades.append(PublicTrade(trade_id, price, lots, aggressor, ts_ns, -1, -1))
        for fill in self.queue.on_trade(price, lots, aggressor):
            order = self._open.get(int(fill.order_id))
            if order is None:
                continue
            book = self._bids if order.side is Side.BUY else self._asks
            level = book.levels[order.price]
            level.total -= fill.size_lots
            own_id = self._next_trade_id
            self._next_trade_id += 1
            self._fill(
                order,
                price=fill.price_ticks,
                qty=fill.size_lots,
                trade_id=own_id,
                ts_ns=ts_ns,
                liquidity=Liquidity.MAKER,
                result=result,
            )
            if order.remaining == 0:
                order.dead = True
                level.dead += 1
                if level.total == 0:
                    book.remove_level(order.price)
                self._drop_filled(order)

    # -- hooks -----------------------------------------------------------------------------

    def _would_cross(self, side: Side, price_ticks: int) -> bool:
        if side is Side.BUY:
            ask = self.book.best_ask()
            return ask is not None and ask[0] <= price_ticks
        bid = self.book.best_bid()
        return bid is not None and bid[0] >= price_ticks

    def _market_units(self, side: Side, lots: int) -> int:
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

    def _take(
        self,
        order: _Order,
        ts_ns: int,
        result: MatchResult,
        touched: dict[tuple[Side, int], None],
    ) -> None:
        """Fill as taker against the displayed recorded levels up to the order's limit."""
        del touched
        maker_side = order.side.opposite
        is_market = order.order_type is OrderType.MARKET
        fills: list[tuple[int, int]] = []
        left = order.remaining
        for price, size in self.book.walk(maker_side):
            if not is_market and (
                price > order.price if order.side is Side.BUY else price < order.price
            ):
                break
            key = (maker_side, price)
            qty = min(left, size - self._taken.get(key, 0))
            if qty <= 0:
                continue
            fills.append((price, qty))
            left -= qty
            if left == 0:
                break
        for price, qty in fills:
            key = (maker_side, price)
            self._taken[key] = self._taken.get(key, 0) + qty
            trade_id = self._next_trade_id
            self._next_trade_id += 1
            self._fill(
                order,
                price=price,
                qty=qty,
                trade_id=trade_id,
                ts_ns=ts_ns,
                liquidity=Liquidity.TAKER,
                result=result,
            )

    def _close(self, result: MatchResult, touched: dict[tuple[Side, int], None]) -> None:
        """Client orders are not part of the recorded book: no level changes, no new id."""
        del touched
        result.update_id = self.book.last_update_id

    def _on_rest(self, order: _Order) -> None:
        self.queue.on_place(
            str(order.order_id),
            order.side,
            order.price,
            order.remaining,
            self.book.level_size(order.side, order.price),
        )

    def _on_unrest(self, order: _Order) -> None:
        self.queue.on_cancel(str(order.order_id))


@dataclass(slots=True)
class ReplayFeed:
    """One replayed venue: its engine and the recorded frames still to feed it."""

    venue: str
    engine: ReplayEngine
    frames: Iterator[RecordedFrame]


def open_replay(
    cfg: SimConfig, *, symbol: str = "btcusdt", data_dir: Path | None = None
) -> dict[str, ReplayFeed]:
    """The recorded spot market on sim-spot and the USD-M one on sim-perp, with the config's
    fees and starting balances. `data_dir` defaults to `cfg.replay_data_dir`, then
    `default_data_dir()`; raises FileNotFoundError when a capture is missing."""
    folder = data_dir or cfg.replay_data_dir or default_data_dir()
    feeds: dict[str, ReplayFeed] = {}
    plan: tuple[tuple[str, Dialect, float, float], ...] = (
        (SPOT_VENUE, "spot", cfg.spot_maker_fee_bps, cfg.spot_taker_fee_bps),
        (PERP_VENUE, "usdm", cfg.perp_maker_fee_bps, cfg.perp_taker_fee_bps),
    )
    for venue, dialect, maker_bps, taker_bps in plan:
        inst = replay_instrument(
            dialect,
            symbol,
            venue,
            maker_fee_rate=maker_bps * 1e-4,
            taker_fee_rate=taker_bps * 1e-4,
        )
        balances = (
            {inst.base: cfg.starting_base, inst.quote: cfg.starting_quote}
            if dialect == "spot"
            else {inst.quote: cfg.starting_quote}
        )
        engine = ReplayEngine(inst, Accounts(inst.kind, balances), dialect=dialect)
        feeds[venue] = ReplayFeed(venue, engine, iter_frames(folder, dialect, symbol))
    return feeds


def merge_feeds(feeds: Mapping[str, ReplayFeed]) -> Iterator[tuple[str, RecordedFrame]]:
    """(venue, frame) across feeds in recorded receive order (one collector clock)."""
    streams = [_tagged(venue, feed.frames) for venue, feed in feeds.items()]
    for _ns, venue, frame in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        yield venue, frame


def _tagged(
    venue: str, frames: Iterator[RecordedFrame]
) -> Iterator[tuple[int, str, RecordedFrame]]:
    for frame in frames:
        yield frame.local_ns, venue, frame
