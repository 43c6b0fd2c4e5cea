"""The displayed book: what a matching engine shows the market and matches takers against.

`DisplayedBook` is the engine's hook. The engine owns orders (ids, statuses, indexes),
accounts and execution reports; the displayed book owns the liquidity the market sees: which
prices a taker crosses, whom it trades with, which levels a call changed, the book's update
id and the public trade ids. It fills orders only through the engine's `Fills`.

`PriceTimeBook` is the engine's own book (the default): resting orders are the liquidity,
matched in price-time priority. The replay's book (`sim.replay.RecordedDisplayedBook`) shows
recorded depth instead and fills resting orders through a queue model.

Layout of `PriceTimeBook`, per side: a dict price -> `Level` (a FIFO deque of orders and their
total size) and a sorted list of keys (`price` for bids, `-price` for asks), so the best level
is always the last key. Finding a level is a dict lookup, the best price is O(1), and a new
price level is a bisect insert. Cancelled orders stay in their level's deque, marked dead, and
are skipped by matching; a level compacts itself when its dead orders outnumber its live ones.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterator
from typing import Protocol

from mm_daemon.core.types import BookLevels, Liquidity, OrderType, Side
from mm_daemon.sim.matching.orders import Order
from mm_daemon.sim.matching.results import LevelChange, MatchResult, PublicTrade

__all__ = ["BookSide", "DisplayedBook", "Fills", "Level", "PriceTimeBook"]

_NO_LIMIT = -(1 << 62)
"""A taker limit key below every level: a market order crosses everything."""


class Fills(Protocol):
    """What a displayed book may do to the engine's orders (the engine implements it)."""

    def apply_fill(  # noqa: PLR0917  positional: called per fill on the matching path
        self,
        order: Order,
        price: int,
        qty: int,
        trade_id: int,
        ts_ns: int,
        liquidity: Liquidity,
        result: MatchResult,
    ) -> None:
        """Fill `qty` of `order` at `price`: its status, the account's balances, the account's
        trade and execution report in `result`."""

    def drop_filled(self, order: Order) -> None:
        """Forget a resting order the book filled completely (already out of the book)."""


class DisplayedBook(Protocol):
    """The liquidity a matching engine shows and matches against; see the module doc.

    The engine calls `take` for every incoming order, `rest` / `unrest` when one of its orders
    starts or stops resting (an order that fills completely is dropped through
    `Fills.drop_filled` instead), and `close` once at the end of every call that may have
    changed the book.
    """

    @property
    def update_id(self) -> int:
        """The book update id (Binance `lastUpdateId` / `u`)."""

    @property
    def last_trade_id(self) -> int:
        """Id of the last public trade."""

    def best_bid(self) -> tuple[int, int] | None:
        """(price_ticks, size_lots) of the best bid, or None."""

    def best_ask(self) -> tuple[int, int] | None:
        """(price_ticks, size_lots) of the best ask, or None."""

    def depth(self, n: int) -> tuple[BookLevels, BookLevels, int]:
        """Top `n` levels per side (all when n <= 0; bids descending, asks ascending) and the
        update id."""

    def level_size(self, side: Side, price_ticks: int) -> int:
        """Displayed size at a price on one side (0 when there is no level)."""

    def iter_levels(self, side: Side) -> Iterator[tuple[int, int]]:
        """(price_ticks, size_lots) of one side's levels, best first."""

    def level_count(self, side: Side) -> int:
        """Number of price levels on one side."""

    def would_cross(self, side: Side, price_ticks: int) -> bool:
        """Whether a limit order at this price would take liquidity."""

    def market_units(self, side: Side, lots: int) -> int:
        """Price x lots a market order of `lots` would pay sweeping the book."""

    def take(self, taker: Order, ts_ns: int, result: MatchResult, fills: Fills) -> None:
        """Match an incoming order as taker as far as its limit allows (MARKET: no limit),
        adding the public trades to `result` and filling through `fills`."""

    def rest(self, order: Order) -> None:
        """An order starts resting with `order.remaining` at `order.price`."""

    def unrest(self, order: Order) -> None:
        """A resting order leaves the book other than by a complete fill (cancel, modify)."""

    def close(self, result: MatchResult) -> None:
        """End of an engine call: report the levels it changed in `result.level_changes` and
        set `result.update_id`."""


class Level:
    """One price level: its orders in time priority (dead ones included) and live total."""

    __slots__ = ("dead", "orders", "price", "total")

    def __init__(self, price: int) -> None:
        self.price = price
        self.total = 0
        self.dead = 0
        self.orders: deque[Order] = deque()

    def compact(self) -> None:
        self.orders = deque(o for o in self.orders if not o.dead)
        self.dead = 0


class BookSide:
    """One side of the book; keys are `sign * price` so the best level is always keys[-1]."""

    __slots__ = ("keys", "levels", "sign")

    def __init__(self, side: Side) -> None:
        self.sign = int(side)
        self.levels: dict[int, Level] = {}
        self.keys: list[int] = []

    def best(self) -> Level | None:
        if not self.keys:
            return None
        return self.levels[self.keys[-1] * self.sign]

    def level_for_insert(self, price: int) -> Level:
        level = self.levels.get(price)
        if level is None:
            level = self.levels[price] = Level(price)
            bisect.insort(self.keys, price * self.sign)
        return level

    def remove_level(self, price: int) -> None:
        del self.levels[price]
        key = price * self.sign
        if self.keys[-1] == key:
            self.keys.pop()
        else:
            del self.keys[bisect.bisect_left(self.keys, key)]

    def top(self, n: int) -> BookLevels:
        sign = self.sign
        levels = self.levels
        keys = self.keys
        stop = max(len(keys) - n, 0) if n > 0 else 0
        return tuple(
            (keys[i] * sign, levels[keys[i] * sign].total)
            for i in range(len(keys) - 1, stop - 1, -1)
        )

    def crosses(self, key_limit: int) -> bool:
        """Whether the best level of this (resting) side is at or through a taker limit."""
        return bool(self.keys) and self.keys[-1] >= key_limit

    def sweep_units(self, limit_key: int, lots: int) -> int:
        """Price x lots a taker of `lots` would pay walking this side up to its limit."""
        units = 0
        left = lots
        sign = self.sign
        keys = self.keys
        for i in range(len(keys) - 1, -1, -1):
            key = keys[i]
            if key < limit_key:
                break
            level = self.levels[key * sign]
            take = min(left, level.total)
            units += take * level.price
            left -= take
            if left == 0:
                break
        return units


class PriceTimeBook:
    """The engine's own book: resting orders matched in price-time priority (a `DisplayedBook`).

    Every call that changes a level advances `update_id` by one and reports each changed
    level once, in first-touched order, with its new absolute size.
    """

    __slots__ = ("_touched", "asks", "bids", "next_trade_id", "update_id")

    def __init__(self, *, first_update_id: int = 1, first_trade_id: int = 1) -> None:
        self.update_id = first_update_id - 1
        self.next_trade_id = first_trade_id
        self.bids = BookSide(Side.BUY)
        self.asks = BookSide(Side.SELL)
        # Levels changed since the last close, as an insertion-ordered set.
        self._touched: dict[tuple[Side, int], None] = {}

    # -- queries ---------------------------------------------------------------------------

    @property
    def last_trade_id(self) -> int:
        return self.next_trade_id - 1

    def best_bid(self) -> tuple[int, int] | None:
        level = self.bids.best()
        return None if level is None else (level.price, level.total)

    def best_ask(self) -> tuple[int, int] | None:
        level = self.asks.best()
        return None if level is None else (level.price, level.total)

    def depth(self, n: int) -> tuple[BookLevels, BookLevels, int]:
        return self.bids.top(n), self.asks.top(n), self.update_id

    def level_size(self, side: Side, price_ticks: int) -> int:
        level = (self.bids if side is Side.BUY else self.asks).levels.get(price_ticks)
        return 0 if level is None else level.total

    def iter_levels(self, side: Side) -> Iterator[tuple[int, int]]:
        """Best first; do not change the book meanwhile."""
        book = self.bids if side is Side.BUY else self.asks
        keys = book.keys
        levels = book.levels
        sign = book.sign
        for i in range(len(keys) - 1, -1, -1):
            price = keys[i] * sign
            yield price, levels[price].total

    def level_count(self, side: Side) -> int:
        return len((self.bids if side is Side.BUY else self.asks).keys)

    # -- the engine's hook -----------------------------------------------------------------

    def would_cross(self, side: Side, price_ticks: int) -> bool:
        opposite = self.asks if side is Side.BUY else self.bids
        return opposite.crosses(price_ticks * opposite.sign)

    def market_units(self, side: Side, lots: int) -> int:
        return (self.asks if side is Side.BUY else self.bids).sweep_units(_NO_LIMIT, lots)

    def take(self, taker: Order, ts_ns: int, result: MatchResult, fills: Fills) -> None:
        opposite = self.asks if taker.side is Side.BUY else self.bids
        if taker.order_type is OrderType.MARKET:
            limit_key = _NO_LIMIT
        else:
            limit_key = taker.price * opposite.sign
        keys = opposite.keys
        if not keys or keys[-1] < limit_key:
            return
        levels = opposite.levels
        sign = opposite.sign
        maker_side = taker.side.opposite
        touched = self._touched
        trades = result.trades
        apply_fill = fills.apply_fill
        as_maker, as_taker = Liquidity.MAKER, Liquidity.TAKER
        while taker.remaining > 0 and keys and keys[-1] >= limit_key:
            price = keys[-1] * sign
            level = levels[price]
            orders = level.orders
            while taker.remaining > 0 and orders:
                maker = orders[0]
                if maker.dead:
                    orders.popleft()
                    level.dead -= 1
                    continue
                qty = min(taker.remaining, maker.remaining)
                level.total -= qty
                trade_id = self.next_trade_id
                self.next_trade_id += 1
                trades.append(
                    PublicTrade(
                        trade_id, price, qty, taker.side, ts_ns, maker.order_id, taker.order_id
                    )
                )
                apply_fill(maker, price, qty, trade_id, ts_ns, as_maker, result)
                apply_fill(taker, price, qty, trade_id, ts_ns, as_taker, result)
                if maker.remaining == 0:
                    orders.popleft()
                    maker.dead = True
                    fills.drop_filled(maker)
            touched[(maker_side, price)] = None
            if level.total == 0:
                del levels[price]
                keys.pop()

    def rest(self, order: Order) -> None:
        if order.dead:
            self._drop_stale_entry(order)
        book = self.bids if order.side is Side.BUY else self.asks
        level = book.level_for_insert(order.price)
        level.orders.append(order)
        level.total += order.remaining
        order.dead = False
        order.level = level
        self._touched[(order.side, order.price)] = None

    @staticmethod
    def _drop_stale_entry(order: Order) -> None:
        """An order rests again after leaving (modify): its old queue entry, left behind by
        the lazy removal, must not come back to life with it at its old price and place."""
        stale = order.level
        if stale is not None and order in stale.orders:  # compaction may have dropped it
            stale.orders.remove(order)
            stale.dead -= 1

    def unrest(self, order: Order) -> None:
        """Take the order out of its level lazily: marked dead, skipped by matching."""
        book = self.bids if order.side is Side.BUY else self.asks
        level = book.levels[order.price]
        level.total -= order.remaining
        order.dead = True
        level.dead += 1
        if level.total == 0:
            book.remove_level(order.price)
        elif level.dead > 16 and level.dead * 2 > len(level.orders):
            level.compact()
        self._touched[(order.side, order.price)] = None

    def close(self, result: MatchResult) -> None:
        touched = self._touched
        if touched:
            bids = self.bids.levels
            asks = self.asks.levels
            changes = result.level_changes
            for side, price in touched:
                level = (bids if side is Side.BUY else asks).get(price)
                changes.append(LevelChange(side, price, 0 if level is None else level.total))
            touched.clear()
            self.update_id += 1
        result.update_id = self.update_id
