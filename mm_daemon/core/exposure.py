"""Exposure: resting quotes that the market has moved through are picked off.

A paper order is not in the venue's book, so the public stream never shows the flow that a
stale quote attracts: when fair value moves through a resting bid, real markets send sellers
(arbitrageurs, informed traders, market makers requoting with marketable orders) straight at
it, and the deeper it is through the market the sooner and the more they take. This model puts
that flow back, estimated from the flow the public stream does show. Pure: time is passed in,
prices are integer ticks, sizes integer lots, and the random draws come from a seeded
generator, so the same events give the same fills.

- Fair value is the mid of the public book. A resting order whose price is beyond it (a bid
  above the mid, an ask below it; an opposite touch at or through the price is a special case)
  is *exposed*, `depth` ticks past the mid.
- The market moved through the order somewhere between the book update that shows it and the
  one before, at most `onset_window_ns` before it (a diff-depth stream batches what changed,
  100 ms on Binance spot). The moment is drawn at a fraction x of that window with the
  distribution F(x) = 1 - (1 - x)^onset_shape: 1 is uniform, larger values put the moment
  earlier. The shape is fitted to live post-only orders: of those the next update shows
  crossed, how many the venue refused against when within the window they arrived
  (`venues.paper_calibration.fit_onset_shape`); the public prints of the window told less
  about it than a uniform draw. Exposure starts then, or when the order rested if later.
- A post-only order that the opposite touch is seen to have crossed, and that reached the venue
  only after the drawn moment, never rested: the venue would have refused it on arrival, as it
  checks post-only orders against its own book, not against our delayed view of it. It is
  refused then (see `on_book`), with no fill.
- While exposed, aggressive orders arrive at the order as a Poisson process of intensity
  `rate(side) * (rate_multiplier + rate_multiplier_per_bps * depth_bps)`, `rate(side)` being
  the observed arrival rate of aggressive orders on the side that would hit it (sells for a
  bid), an exponentially weighted count with half-life `flow_halflife_ns`. Each arrival takes
  `size * (size_multiplier + size_multiplier_per_bps * depth_bps)` lots, `size` drawn from the
  sizes of the last `size_samples` aggressive orders on that side (at least one lot, at most
  what is left of the order).
- Prints with the same exchange time and aggressor are one aggressive order (a sweep).
- A print through an order's price (a sell below our bid, a buy above our ask) shows at once
  that the market trades beyond it: the order is exposed from then (depth the larger of its
  distance past the mid and past the print), and that aggressive order is its first arrival.
  While an order is exposed, this model alone fills it: the queue rules leave it alone
  (`exposed_ids`), since the flow that picks off a stale quote is what prints through it.
- Exposure ends when the book moves back, or when the order is gone: filled, or cancelled. A
  cancel takes the order out when it takes effect at the venue (after its latency), so the
  caller advances the model to that time first: what arrived until then has filled.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass

from mm_daemon.core.queue import QueueFill, QueueFillModel
from mm_daemon.core.types import Side

__all__ = ["AggressiveFlow", "ExposureModel", "ExposureParams"]

_NS = 1_000_000_000
_LN2 = math.log(2.0)


@dataclass(frozen=True, slots=True)
class ExposureParams:
    """How fast and how much a quote the market has moved through is filled; see the module doc.

    The multipliers are dimensionless (exposed arrivals per observed aggressive arrival, and
    lots taken per lot of an observed aggressive order); the `_per_bps` terms add per basis
    point of depth past fair value.
    """

    rate_multiplier: float = 1.0
    rate_multiplier_per_bps: float = 0.0
    size_multiplier: float = 1.0
    size_multiplier_per_bps: float = 0.0
    flow_halflife_ns: int = 30 * _NS
    size_samples: int = 256
    onset_window_ns: int = 100_000_000
    onset_shape: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (
            "rate_multiplier",
            "rate_multiplier_per_bps",
            "size_multiplier",
            "size_multiplier_per_bps",
            "onset_window_ns",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.flow_halflife_ns <= 0 or self.size_samples <= 0:
            raise ValueError("flow_halflife_ns and size_samples must be positive")
        if self.onset_shape <= 0:
            raise ValueError("onset_shape must be positive")


class AggressiveFlow:
    """Arrival rate and sizes of the aggressive orders on one side of the market."""

    __slots__ = ("_count", "_first_ns", "_halflife_ns", "_last_key", "_last_ns", "sizes")

    def __init__(self, halflife_ns: int, size_samples: int) -> None:
        self._halflife_ns = halflife_ns
        self._count = 0.0  # decayed to `_last_ns`
        self._first_ns: int | None = None
        self._last_ns = 0
        self._last_key: int | None = None
        self.sizes: deque[int] = deque(maxlen=size_samples)

    def on_print(self, now_ns: int, size_lots: int, exchange_ts_ns: int) -> None:
        """A print of an aggressive order; prints sharing `exchange_ts_ns` are one order."""
        if size_lots <= 0:
            return
        if exchange_ts_ns == self._last_key and self.sizes:
            self.sizes[-1] += size_lots
            return
        self._last_key = exchange_ts_ns
        self.sizes.append(size_lots)
        if self._first_ns is None:
            self._first_ns = now_ns
        self._count = self._decayed(now_ns) + 1.0
        self._last_ns = max(self._last_ns, now_ns)

    def rate_per_second(self, now_ns: int) -> float:
        """Aggressive orders a second, weighted towards the last `halflife` or so."""
        first = self._first_ns
        if first is None:
            return 0.0
        # The weight of a window that started at the first print: exact while it is younger
        # than a few half-lives, the usual halflife / ln 2 afterwards.
        window_s = self._halflife_ns / _NS / _LN2
        window_s *= 1.0 - math.pow(0.5, max(0, now_ns - first) / self._halflife_ns)
        if window_s <= 0.0:
            return 0.0
        return self._decayed(now_ns) / window_s

    def draw_size(self, rng: random.Random) -> int:
        sizes = self.sizes
        return sizes[rng.randrange(len(sizes))] if sizes else 0

    def _decayed(self, now_ns: int) -> float:
        return self._count * math.pow(0.5, max(0, now_ns - self._last_ns) / self._halflife_ns)


@dataclass(slots=True)
class _Exposure:
    order_id: str
    rested_ns: int
    post_only: bool
    depth_ticks: float = 0.0  # past fair value; positive while exposed
    rate_per_s: float = 0.0  # of arrivals at this order while exposed
    next_ns: int | None = None  # next arrival; None while not exposed


class ExposureModel:
    """Fills resting orders of a `QueueFillModel` that the market has moved through."""

    __slots__ = (
        "_flows",
        "_last_book_ns",
        "_mid",
        "_orders",
        "_queue",
        "_rng",
        "params",
    )

    def __init__(self, params: ExposureParams, queue: QueueFillModel) -> None:
        self.params = params
        self._queue = queue
        self._rng = random.Random(params.seed)
        # Keyed by the aggressor's side: SELL orders hit bids, BUY orders lift asks.
        self._flows = {
            side: AggressiveFlow(params.flow_halflife_ns, params.size_samples)
            for side in (Side.BUY, Side.SELL)
        }
        self._orders: dict[str, _Exposure] = {}
        self._mid: float | None = None
        self._last_book_ns: int | None = None

    def is_exposed(self, order_id: str) -> bool:
        state = self._orders.get(order_id)
        return state is not None and state.next_ns is not None

    # -- events -------------------------------------------------------------------------------

    def on_place(self, order_id: str, now_ns: int, *, post_only: bool = False) -> list[QueueFill]:
        """An order of the queue model rests from `now_ns`; it may be exposed at once."""
        state = _Exposure(order_id, now_ns, post_only)
        self._orders[order_id] = state
        return self._evaluate(state, now_ns, now_ns)

    def on_cancel(self, order_id: str) -> None:
        self._orders.pop(order_id, None)

    def on_trade(
        self, now_ns: int, price_ticks: int, size_lots: int, aggressor: Side, exchange_ts_ns: int
    ) -> list[QueueFill]:
        """A public print: the observed flow, and the orders it went through (exposed from now,
        each with this aggressive order as its first arrival); returns their fills."""
        self._flows[aggressor].on_print(now_ns, size_lots, exchange_ts_ns)
        if not self._orders:
            return []
        queue = self._queue
        maker_side = aggressor.opposite
        through: list[_Exposure] = []
        for state in self._orders.values():
            if state.next_ns is not None:
                continue
            order = queue.get(state.order_id)
            if order is None or order.side is not maker_side:
                continue
            beyond = (order.price_ticks - price_ticks) * int(maker_side)
            if beyond <= 0:
                continue
            mid = self._mid
            depth = (
                beyond if mid is None else max(beyond, (order.price_ticks - mid) * int(order.side))
            )
            state.depth_ticks = float(depth)
            state.rate_per_s = self._rate(
                order.side, depth, mid or float(order.price_ticks), now_ns
            )
            state.next_ns = now_ns
            through.append(state)
        fills: list[QueueFill] = []
        for state in through:
            fill = self._arrive(state)
            if fill is not None:
                fills.append(fill)
        return fills

    def exposed_ids(self) -> frozenset[str]:
        """The orders this model fills now (the queue rules leave them alone)."""
        return frozenset(i for i, s in self._orders.items() if s.next_ns is not None)

    def on_book(
        self, now_ns: int, best_bid_ticks: int | None, best_ask_ticks: int | None
    ) -> tuple[list[QueueFill], list[str]]:
        """The public book's touch after an update at `now_ns`: the fills it reveals (exposure
        that started before `now_ns`) and the ids of the post-only orders the venue would have
        refused on arrival, now gone from the queue model (see the module doc). Advance to
        `now_ns` first."""
        previous = self._last_book_ns
        self._last_book_ns = now_ns
        if best_bid_ticks is None or best_ask_ticks is None:
            self._mid = None
        else:
            self._mid = (best_bid_ticks + best_ask_ticks) / 2.0
        fills: list[QueueFill] = []
        refused: list[str] = []
        if not self._orders:
            return fills, refused
        window = 0
        if previous is not None and previous < now_ns:
            window = min(now_ns - previous, self.params.onset_window_ns)
        inverse_shape = 1.0 / self.params.onset_shape
        queue = self._queue
        for state in list(self._orders.values()):
            if state.next_ns is not None:  # exposed already: a new depth, a new rate
                fills.extend(self._evaluate(state, now_ns, now_ns))
                continue
            order = queue.get(state.order_id)
            mid = self._mid
            if order is None or mid is None or (order.price_ticks - mid) * int(order.side) <= 0:
                continue  # not exposed
            crossed = (
                best_ask_ticks is not None and best_ask_ticks <= order.price_ticks
                if order.side is Side.BUY
                else best_bid_ticks is not None and best_bid_ticks >= order.price_ticks
            )
            onset = now_ns
            if window:
                into = 1.0 - math.pow(1.0 - self._rng.random(), inverse_shape)  # F^-1(u)
                onset = now_ns - window + round(into * window)
            if crossed and state.post_only and onset < state.rested_ns:
                queue.on_cancel(state.order_id)
                del self._orders[state.order_id]
                refused.append(state.order_id)
                continue
            fills.extend(self._evaluate(state, onset, now_ns))
        return fills, refused

    def advance(self, now_ns: int) -> list[QueueFill]:
        """The fills of every arrival up to `now_ns`, in time order."""
        fills: list[QueueFill] = []
        while True:
            due: _Exposure | None = None
            due_ns = now_ns + 1
            for state in self._orders.values():
                at = state.next_ns
                if at is not None and at < due_ns:
                    due, due_ns = state, at
            if due is None:
                return fills
            fill = self._arrive(due)
            if fill is not None:
                fills.append(fill)

    def next_due_ns(self) -> int | None:
        """When the next arrival is due (None: no order is exposed)."""
        queue = self._queue
        for order_id in [i for i in self._orders if queue.get(i) is None]:
            del self._orders[order_id]  # filled out by the queue rules
        times = [s.next_ns for s in self._orders.values() if s.next_ns is not None]
        return min(times) if times else None

    # -- internals ----------------------------------------------------------------------------

    def _evaluate(self, state: _Exposure, onset_ns: int, now_ns: int) -> list[QueueFill]:
        """Set the order's exposure from the current mid; exposure that starts now is dated
        `onset_ns` (not before the order rested) and its arrivals up to `now_ns` are filled."""
        order = self._queue.get(state.order_id)
        mid = self._mid
        if order is None:
            self._orders.pop(state.order_id, None)
            return []
        depth = 0.0 if mid is None else (order.price_ticks - mid) * int(order.side)
        if mid is None or depth <= 0.0:
            state.depth_ticks = 0.0
            state.rate_per_s = 0.0
            state.next_ns = None
            return []
        was_exposed = state.next_ns is not None
        state.depth_ticks = depth
        state.rate_per_s = self._rate(order.side, depth, mid, now_ns)
        if state.rate_per_s <= 0.0:
            state.next_ns = None
            return []
        # Arrivals are memoryless: with a new rate the next one is drawn afresh from now.
        start = now_ns if was_exposed else max(state.rested_ns, onset_ns)
        state.next_ns = start + self._gap_ns(state.rate_per_s)
        fills: list[QueueFill] = []
        while state.next_ns is not None and state.next_ns <= now_ns:
            fill = self._arrive(state)
            if fill is not None:
                fills.append(fill)
        return fills

    def _rate(self, side: Side, depth_ticks: float, mid: float, now_ns: int) -> float:
        """Arrivals a second at an order of `side` `depth_ticks` past fair value `mid`."""
        p = self.params
        depth_bps = depth_ticks / mid * 1e4
        flow = self._flows[side.opposite]
        return flow.rate_per_second(now_ns) * (
            p.rate_multiplier + p.rate_multiplier_per_bps * depth_bps
        )

    def _arrive(self, state: _Exposure) -> QueueFill | None:
        """One aggressive order reaches the exposed order at `state.next_ns`."""
        at = state.next_ns
        assert at is not None  # noqa: S101  only exposed orders are due
        order = self._queue.get(state.order_id)
        if order is None:
            self._orders.pop(state.order_id, None)
            return None
        p = self.params
        mid = self._mid or float(order.price_ticks)
        depth_bps = state.depth_ticks / mid * 1e4
        drawn = self._flows[order.side.opposite].draw_size(self._rng)
        size = round(drawn * (p.size_multiplier + p.size_multiplier_per_bps * depth_bps))
        fill = self._queue.fill_exposed(state.order_id, max(1, size), at)
        if fill is None or fill.remaining_lots <= 0:
            self._orders.pop(state.order_id, None)
            state.next_ns = None
        elif state.rate_per_s > 0.0:
            state.next_ns = at + self._gap_ns(state.rate_per_s)
        else:
            state.next_ns = None  # no flow observed yet: nothing more arrives
        return fill

    def _gap_ns(self, rate_per_s: float) -> int:
        return max(1, round(self._rng.expovariate(rate_per_s) * _NS))
