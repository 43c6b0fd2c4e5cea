"""Queue-position fill model for resting maker orders, driven by a public market stream.

Paper execution and the simulator's replay source share it. It is pure: no clock, no I/O;
prices are integer ticks, sizes integer lots.

The queue model (the default):
- an order resting at a price joins the back of the displayed queue there: `queue_ahead` is the
  displayed size at its price when it is placed (zero at a new level);
- a public trade at the order's price first eats the queue ahead; what is left of the trade
  beyond the queue ahead fills the order (partial fills when it is smaller than the order);
- a size decrease at the order's level that no trade explains is a cancel somewhere in the
  queue; `QueueProbability` says which share of it was ahead of us: a fixed share, or a share
  that grows with the size ahead against the size behind (`power`: f(x) = x^n, `log`:
  f(x) = log(1 + x), the share ahead being f(ahead) / (f(ahead) + f(behind))). What the
  rule puts behind us beyond the size that is behind us came from ahead; the queue ahead never
  exceeds the level's displayed size;
- a trade through the price (a sell print below our bid, a buy print above our ask) means the
  aggressor swept our level: the order fills at once, up to the print's size.

The touch model (for comparison, what Hummingbot's paper mode does): the whole order fills as
soon as a trade prints at or through its price, or the opposite touch reaches it.

Several of our orders on one side share a trade print: better prices first, then time priority.

`fill_exposed` lets a caller fill an order outside these rules: the exposure model
(`mm_daemon.core.exposure`) fills quotes the market has moved through that way.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

from mm_daemon.core.types import Side

__all__ = [
    "QueueFill",
    "QueueFillModel",
    "QueueProbability",
    "QueueProbabilityKind",
    "RestingOrder",
]

QueueProbabilityKind = Literal["fixed", "power", "log"]


@dataclass(frozen=True, slots=True)
class QueueProbability:
    """Which share of an unexplained size decrease at our price was ahead of us.

    `fixed`: always `fixed_share_ahead`. `power` and `log` weigh the two sides of the queue by
    f(size): the share ahead is f(ahead) / (f(ahead) + f(behind)), with f(x) = x^n (`power`,
    n = `power_exponent`; n = 1 is in proportion to the sizes, a larger n leans towards the
    larger side) or f(x) = log(1 + x) (`log`: closer to an even split than proportional).
    Sizes are in lots.
    """

    kind: QueueProbabilityKind = "fixed"
    fixed_share_ahead: float = 0.5
    power_exponent: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("fixed", "power", "log"):
            raise ValueError(f"unknown queue probability {self.kind!r}")
        if not 0.0 <= self.fixed_share_ahead <= 1.0:
            raise ValueError("fixed_share_ahead must be within [0, 1]")
        if not self.power_exponent > 0.0:
            raise ValueError("power_exponent must be positive")

    def share_ahead(self, ahead_lots: float, behind_lots: float) -> float:
        """The share, within [0, 1], of a decrease taken from the queue ahead of us."""
        if self.kind == "fixed":
            return self.fixed_share_ahead
        if ahead_lots <= 0.0:
            return 0.0
        if behind_lots <= 0.0:
            return 1.0
        if self.kind == "power":
            # Divide by the larger side first: x^n overflows for large sizes and exponents.
            scale = max(ahead_lots, behind_lots)
            f_ahead = math.pow(ahead_lots / scale, self.power_exponent)
            f_behind = math.pow(behind_lots / scale, self.power_exponent)
        else:
            f_ahead, f_behind = math.log1p(ahead_lots), math.log1p(behind_lots)
        return f_ahead / (f_ahead + f_behind)


@dataclass(slots=True)
class RestingOrder:
    """One of our orders resting on the book, as the fill model sees it."""

    order_id: str
    side: Side
    price_ticks: int
    size_lots: int
    filled_lots: int = 0
    queue_ahead_lots: float = 0.0  # an estimate: cancels are shared out fractionally
    seq: int = 0  # time priority among our own orders

    @property
    def remaining_lots(self) -> int:
        return self.size_lots - self.filled_lots


@dataclass(frozen=True, slots=True)
class QueueFill:
    """A maker fill of one resting order, at the order's own price."""

    order_id: str
    side: Side
    price_ticks: int
    size_lots: int
    remaining_lots: int  # left open on the order after this fill; 0 means fully filled
    through: bool  # True when a trade went through our price, False when the queue reached us
    exposed: bool = False  # True when the exposure model filled it (see `fill_exposed`)
    ts_ns: int | None = None  # when it happened, if earlier than the call that reports it


@dataclass(slots=True)
class _Level:
    """What the model remembers of a displayed level where we rest."""

    size_lots: int
    traded_lots: int = 0  # traded at this price since the last size update (not a cancel)
    orders: list[RestingOrder] = field(default_factory=list)


class QueueFillModel:
    """Fills resting orders from public trades and level changes; see the module doc."""

    __slots__ = ("_levels", "_orders", "_seq", "probability", "touch")

    def __init__(
        self,
        *,
        size_decrease_queue_share: float = 0.5,
        touch: bool = False,
        probability: QueueProbability | None = None,
    ) -> None:
        """`probability` splits size decreases; without it, a fixed share of
        `size_decrease_queue_share` is taken to be ahead of us."""
        if not 0.0 <= size_decrease_queue_share <= 1.0:
            raise ValueError("size_decrease_queue_share must be within [0, 1]")
        self.probability = probability or QueueProbability(
            "fixed", fixed_share_ahead=size_decrease_queue_share
        )
        self.touch = touch
        self._orders: dict[str, RestingOrder] = {}
        self._levels: dict[tuple[Side, int], _Level] = {}
        self._seq = 0

    # -- orders -------------------------------------------------------------------------------

    def on_place(
        self, order_id: str, side: Side, price_ticks: int, size_lots: int, level_size_lots: int
    ) -> RestingOrder:
        """Rest an order behind `level_size_lots` displayed at its price (0 at a new level)."""
        if order_id in self._orders:
            raise ValueError(f"order {order_id!r} is already resting")
        if size_lots <= 0:
            raise ValueError("size_lots must be positive")
        self._seq += 1
        ahead = 0 if self.touch else max(0, level_size_lots)
        order = RestingOrder(order_id, side, price_ticks, size_lots, 0, float(ahead), self._seq)
        self._orders[order_id] = order
        key = (side, price_ticks)
        level = self._levels.get(key)
        if level is None:
            level = _Level(max(0, level_size_lots))
            self._levels[key] = level
        level.orders.append(order)
        return order

    def on_cancel(self, order_id: str) -> RestingOrder | None:
        """Remove an order; returns it (with its fills so far) or None if it is not resting."""
        order = self._orders.pop(order_id, None)
        if order is not None:
            self._detach(order)
        return order

    def get(self, order_id: str) -> RestingOrder | None:
        return self._orders.get(order_id)

    def orders(self) -> list[RestingOrder]:
        """Resting orders, in placement order."""
        return sorted(self._orders.values(), key=lambda o: o.seq)

    def __len__(self) -> int:
        return len(self._orders)

    def tracked_levels(self) -> list[tuple[Side, int]]:
        """(side, price_ticks) of every level where an order rests: feed their sizes back."""
        return list(self._levels)

    # -- market events ------------------------------------------------------------------------

    def on_level_change(self, side: Side, price_ticks: int, new_size_lots: int) -> None:
        """The displayed size at (side, price) is now `new_size_lots` (0: the level is gone).

        `side` is the book side: BUY for bids, SELL for asks. Levels where none of our orders
        rest are ignored, so every book update can be passed in cheaply.
        """
        level = self._levels.get((side, price_ticks))
        if level is None:
            return
        new_size = max(0, new_size_lots)
        decrease = level.size_lots - new_size
        # The part of a decrease that trades already explain has been taken off the queue.
        cancelled = decrease - level.traded_lots
        level.size_lots = new_size
        level.traded_lots = 0
        if self.touch:
            return
        probability = self.probability
        # The level before the cancels, without what traded (already off the queue ahead).
        before = float(new_size + cancelled)
        for order in level.orders:
            ahead = order.queue_ahead_lots
            if cancelled > 0:
                behind = max(0.0, before - ahead)
                from_ahead = probability.share_ahead(ahead, behind) * cancelled
                # More cancelled behind us than stood there: the rest was ahead.
                overflow = max(0.0, cancelled - from_ahead - behind)
                ahead -= from_ahead + overflow
            # Nobody can be ahead of us beyond what is displayed.
            order.queue_ahead_lots = max(0.0, min(ahead, float(new_size)))

    def on_trade(
        self,
        price_ticks: int,
        size_lots: int,
        aggressor: Side,
        excluded: Collection[str] = (),
    ) -> list[QueueFill]:
        """A public trade print; returns the fills it causes to our orders (maybe none).

        A SELL aggressor hits bids (ours at or above the print's price); a BUY aggressor lifts
        asks (ours at or below it). Orders in `excluded` are left to another fill rule (the
        exposure model's): the print neither fills them nor is taken by them.
        """
        if size_lots <= 0 or not self._orders:
            self._note_traded(aggressor.opposite, price_ticks, size_lots)
            return []
        maker_side = aggressor.opposite
        fills: list[QueueFill] = []
        through_budget = size_lots
        # Our orders on the hit side, better prices first (they are reached first).
        candidates = [
            o for o in self._orders.values() if o.side is maker_side and o.order_id not in excluded
        ]
        if maker_side is Side.BUY:
            candidates.sort(key=lambda o: (-o.price_ticks, o.seq))
        else:
            candidates.sort(key=lambda o: (o.price_ticks, o.seq))
        at_level_used = 0
        for order in candidates:
            through = (
                price_ticks < order.price_ticks
                if maker_side is Side.BUY
                else price_ticks > order.price_ticks
            )
            if through:
                qty = min(order.remaining_lots, through_budget)
                through_budget -= qty
            elif price_ticks == order.price_ticks:
                if self.touch:
                    qty = order.remaining_lots
                else:
                    ahead_before = order.queue_ahead_lots
                    order.queue_ahead_lots = max(0.0, ahead_before - size_lots)
                    # Through fills above took their share of this print first.
                    excess = int(through_budget - ahead_before) - at_level_used
                    qty = max(0, min(order.remaining_lots, excess))
                    at_level_used += qty
            else:
                break  # sorted: the rest are further from the print
            if qty > 0:
                fills.append(self._fill(order, qty, through=through))
        self._note_traded(maker_side, price_ticks, size_lots)
        return fills

    def on_touch(self, best_bid_ticks: int | None, best_ask_ticks: int | None) -> list[QueueFill]:
        """Touch model only: fill every order the opposite touch has reached.

        The queue model ignores this (a displayed order crossing ours says nothing certain about
        the queue; the trades that follow do).
        """
        if not self.touch or not self._orders:
            return []
        fills: list[QueueFill] = []
        for order in self.orders():
            if order.side is Side.BUY:
                reached = best_ask_ticks is not None and best_ask_ticks <= order.price_ticks
            else:
                reached = best_bid_ticks is not None and best_bid_ticks >= order.price_ticks
            if reached:
                fills.append(self._fill(order, order.remaining_lots, through=False))
        return fills

    def fill_exposed(self, order_id: str, size_lots: int, ts_ns: int) -> QueueFill | None:
        """Fill up to `size_lots` of a resting order outside the queue rules, at its price (the
        exposure model's fills); None if the order is not resting or `size_lots` < 1."""
        order = self._orders.get(order_id)
        qty = 0 if order is None else min(size_lots, order.remaining_lots)
        if order is None or qty <= 0:
            return None
        fill = self._fill(order, qty, through=False)
        return QueueFill(
            fill.order_id,
            fill.side,
            fill.price_ticks,
            fill.size_lots,
            fill.remaining_lots,
            through=False,
            exposed=True,
            ts_ns=ts_ns,
        )

    # -- internals ----------------------------------------------------------------------------

    def _note_traded(self, maker_side: Side, price_ticks: int, size_lots: int) -> None:
        level = self._levels.get((maker_side, price_ticks))
        if level is not None:
            level.traded_lots += size_lots

    def _fill(self, order: RestingOrder, qty: int, *, through: bool) -> QueueFill:
        order.filled_lots += qty
        remaining = order.remaining_lots
        if remaining <= 0:
            self._orders.pop(order.order_id, None)
            self._detach(order)
        return QueueFill(order.order_id, order.side, order.price_ticks, qty, remaining, through)

    def _detach(self, order: RestingOrder) -> None:
        key = (order.side, order.price_ticks)
        level = self._levels.get(key)
        if level is None:
            return
        level.orders = [o for o in level.orders if o.order_id != order.order_id]
        if not level.orders:
            del self._levels[key]
