"""Calibrating the paper fill model against live orders.

A live recording holds what the daemon saw of one market while it traded live: the public book
and trades as they arrived, the orders it sent (with their send times), and what the venue
answered (acknowledgements and fills, with the venue's times). From it, `counterfactual` asks
what the paper venue would have filled of the same orders in the same market:

- the market is the public one: our own resting orders are taken out of the book (each level
  less what we had resting there at the update's venue time). Our own fills stay in the trades
  as public prints: without our order, the aggressor that filled it would have traded with the
  orders behind it at that price. (Taking them out left paper only the prints after live had
  filled; at the front of a queue there were none, and the queue rules that fill the most
  looked best.) `Recording.own_trade_ids` names them, for `unseen_fills`, which asks what
  others printed;
- each order that rested live rests on paper when it rested at the venue, and is cancelled
  when its cancel took effect there (the venue's times, on our clock): the paper venue gets
  the orders with the latencies they had, so what is fitted is the venue's fill process, not
  a difference of latencies;
- an order that filled out live was never cancelled; the daemon would have replaced it on the
  first book update after the fill (that update shows the move that filled it), after its
  usual reaction time (measured in the recording: from a book update to the cancel it
  caused), plus the usual cancel latency (measured: from sending a cancel to it taking
  effect).

`fit` first chooses the queue probability function on the orders the public book never showed
past fair value (queue position decides most of them: only a print through one starts its
exposure), by its error on each recording summed. It then searches, with that function, the
exposure parameters that make the paper fills of the other orders match the live ones: the
number of fills and the volume, per bucket of how far past fair value the public book showed
each order (three depths), pooled over the recordings. The draws are averaged over several
seeds, the same ones for every candidate, so the comparison between candidates is not noise.

`fit_onset_shape` fits where within a book update's window the market crossed a quote: of the
live post-only orders that the next public update shows crossed, the venue refused the ones that
arrived after the crossing. Each such order's position in its window (from the update before
its arrival to the one after) and whether it was refused give the likelihood of the onset
distribution F(x) = 1 - (1 - x)^shape (`mm_daemon.core.exposure`), maximised over the shape.

Pure: rows (as the recorder writes them, one dict a line) in, figures out; no I/O.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mm_daemon.core.exposure import ExposureParams
from mm_daemon.core.queue import QueueProbability
from mm_daemon.core.types import (
    BookDelta,
    BookSnapshot,
    Fill,
    Instrument,
    InstrumentKind,
    Liquidity,
    MarketEvent,
    OrderRequest,
    OrderType,
    Side,
    Trade,
)
from mm_daemon.venues.paper import PaperMatcher

__all__ = [
    "DEPTH_BUCKETS_BPS",
    "BucketFigures",
    "CounterfactualOrder",
    "FitResult",
    "OnsetFit",
    "PaperOutcome",
    "Recording",
    "UnseenFills",
    "counterfactual",
    "fit",
    "fit_onset_shape",
    "not_exposed_error",
    "recording_from_rows",
    "score",
    "unseen_fills",
]

_NS = 1_000_000_000
_MS = 1_000_000
DEPTH_BUCKETS_BPS = (0.0, 0.1, 0.3)
"""Lower edges of the exposure-depth buckets past the first (not exposed): (0, 0.1], ..."""
_RESTED = frozenset({"open", "partially_filled", "filled"})


@dataclass(frozen=True, slots=True)
class CounterfactualOrder:
    """One live order as the paper venue gets it."""

    order_id: str
    side: Side
    price_ticks: int
    size_lots: int
    rest_ns: int  # local clock: reaches the paper venue
    end_ns: int  # local clock: its cancel takes effect on paper
    live_fills: int
    live_filled_lots: int
    max_depth_bps: float  # furthest past the public mid while it rested on paper (<= 0: never)
    live_fill_times: tuple[tuple[int, int], ...] = ()  # (local ns, lots) of each live fill


@dataclass(frozen=True, slots=True)
class Recording:
    name: str
    instrument: Instrument
    market: tuple[tuple[int, MarketEvent], ...]  # (local ns, public event), in time order
    orders: tuple[CounterfactualOrder, ...]
    reaction_ns: int  # measured: book update to the cancel it caused being sent
    entry_latency_ns: int  # measured medians: order sent to resting at the venue,
    cancel_latency_ns: int  # cancel sent to taking effect,
    ack_latency_ns: int  # and the venue's update to its receipt (venue times on our clock)
    live_rejects: int  # orders the venue refused (post-only) ...
    live_rejects_crossed_next: int  # ... of which the next public book update shows crossed
    mid_times: tuple[int, ...] = ()  # local ns of each book update
    mids: tuple[float | None, ...] = ()  # the public mid after it, in ticks
    # Live post-only orders that the next public update after their arrival shows crossed:
    # (how far into the window between the updates around its arrival it arrived, 0..1;
    # whether the venue refused it).
    crossed_arrivals: tuple[tuple[float, bool], ...] = ()
    own_trade_ids: frozenset[str] = frozenset()  # ids of the public trades that were our fills

    def mid_at(self, ts_ns: int) -> float | None:
        """The public mid as of `ts_ns` (the last update at or before it)."""
        i = bisect.bisect_right(self.mid_times, ts_ns) - 1
        return self.mids[i] if i >= 0 else None


@dataclass(slots=True)
class _Order:
    order_id: str
    side: Side
    price_ticks: int
    size_lots: int
    sent_ns: int  # local
    rest_e: int | None = None  # venue clock
    end_e: int | None = None  # venue clock: cancelled, or the last fill of a filled order
    cancel_sent_ns: int | None = None  # local
    fills: list[tuple[int, int]] = field(default_factory=list)  # (venue ns, lots)
    rejected: bool = False
    filled_out: bool = False


def _instrument(meta: Mapping[str, Any]) -> Instrument:
    inst = meta["instrument"]
    return Instrument(
        venue=str(inst["venue"]),
        symbol=str(inst["symbol"]),
        exchange_symbol=str(inst["exchange_symbol"]),
        kind=InstrumentKind(inst["kind"]),
        base=str(inst["base"]),
        quote=str(inst["quote"]),
        tick_size=float(inst["tick_size"]),
        lot_size=float(inst["lot_size"]),
        min_notional_quote=float(inst.get("min_notional_quote", 0.0)),
        min_size_lots=int(inst.get("min_size_lots", 1)),
        contract_size_base=float(inst.get("contract_size_base", 1.0)),
        maker_fee_rate=float(inst.get("maker_fee_rate", 0.0)),
        taker_fee_rate=float(inst.get("taker_fee_rate", 0.0)),
    )


def _levels(raw: Iterable[Sequence[int]]) -> tuple[tuple[int, int], ...]:
    return tuple((int(p), int(s)) for p, s in raw)


def recording_from_rows(rows: Iterable[Mapping[str, Any]], name: str) -> Recording:
    """Build the counterfactual of one live recording (see the module doc). The first row is
    the `meta` row (the instrument)."""
    rows = list(rows)
    if not rows or rows[0].get("k") != "meta":
        raise ValueError(f"{name}: the first row must be the meta row")
    inst = _instrument(rows[0])
    body = sorted(rows[1:], key=lambda r: int(r["t"]))
    orders: dict[str, _Order] = {}
    trade_lags = []
    for r in body:
        kind = r["k"]
        if kind in ("place", "replace"):
            orders[r["id"]] = _Order(r["id"], Side(r["s"]), r["p"], r["q"], int(r["t"]))
            if kind == "replace" and r["old"] in orders:
                old = orders[r["old"]]
                if old.cancel_sent_ns is None:
                    old.cancel_sent_ns = int(r["t"])
        elif kind == "cancel" and r["id"] in orders:
            order = orders[r["id"]]
            if order.cancel_sent_ns is None:
                order.cancel_sent_ns = int(r["t"])
        elif kind == "upd" and r["id"] in orders:
            order = orders[r["id"]]
            status = r["st"]
            if status in _RESTED and order.rest_e is None:
                order.rest_e = int(r["e"])
            if status == "rejected" and order.rest_e is None:
                order.rejected = True
            elif status in ("cancelled", "expired") and order.end_e is None:
                order.end_e = int(r["e"])
        elif kind == "fill" and r["id"] in orders:
            order = orders[r["id"]]
            order.fills.append((int(r["e"]), int(r["q"])))
            if order.rest_e is None:
                order.rest_e = int(r["e"])
        elif kind == "trade":
            trade_lags.append(int(r["t"]) - int(r["e"]))
    for order in orders.values():
        if sum(q for _, q in order.fills) >= order.size_lots:
            order.filled_out = True
            order.end_e = max(e for e, _ in order.fills)
    # The venue's clock against ours: the smallest market-data delay is the closest to none.
    offset = min(trade_lags) if trade_lags else 0
    rested = [o for o in orders.values() if o.rest_e is not None and not o.rejected]
    market, book_times, mids, touches = _public_market(body, inst, rested)
    own_trade_ids = frozenset(str(r["tid"]) for r in body if r["k"] == "fill")
    # Live post-only rejects, and how many of them the next public book update shows crossed.
    rejects = crossed_next = 0
    for o in orders.values():
        if not o.rejected:
            continue
        rejects += 1
        i = bisect.bisect_right(book_times, o.sent_ns)
        if i < len(touches):
            crossed_next += _crosses(o, touches[i])
    reaction = _reaction_ns(body, book_times)
    entries, cancels = [0], [0]
    for o in rested:
        if o.rest_e is not None:
            entries.append(o.rest_e + offset - o.sent_ns)
        if o.end_e is not None and o.cancel_sent_ns is not None and not o.filled_out:
            cancels.append(o.end_e + offset - o.cancel_sent_ns)
    entry_latency = statistics.median(entries[1:] or entries)
    cancel_latency = statistics.median(cancels[1:] or cancels)
    acks = [int(r["t"]) - int(r["e"]) - offset for r in body if r["k"] == "upd"]
    ack_latency = statistics.median(acks or [0])
    out: list[CounterfactualOrder] = []
    for o in rested:
        assert o.rest_e is not None  # noqa: S101  `rested` holds only orders that rested
        rest = o.rest_e + offset
        if o.filled_out:
            assert o.end_e is not None  # noqa: S101  set above for every filled order
            i = bisect.bisect_right(book_times, o.end_e + offset)
            seen = book_times[i] if i < len(book_times) else o.end_e + offset
            end = seen + reaction + round(cancel_latency)
        elif o.end_e is not None:
            end = o.end_e + offset
        elif o.cancel_sent_ns is not None:
            end = o.cancel_sent_ns + round(cancel_latency)
        else:
            end = int(body[-1]["t"]) if body else rest
        if end <= rest:
            continue
        out.append(
            CounterfactualOrder(
                o.order_id,
                o.side,
                o.price_ticks,
                o.size_lots,
                rest,
                end,
                len(o.fills),
                sum(q for _, q in o.fills),
                _max_depth_bps(o, rest, end, book_times, mids),
                tuple((e + offset, q) for e, q in sorted(o.fills)),
            )
        )
    out.sort(key=lambda o: o.rest_ns)
    crossed_arrivals = []
    for o in orders.values():
        if not o.rejected and o.rest_e is None:
            continue  # no answer recorded
        arrival = o.sent_ns + round(entry_latency)
        i = bisect.bisect_right(book_times, arrival) - 1
        if i < 0 or i + 1 >= len(book_times) or _crosses(o, touches[i]):
            continue  # sent against a book already crossed: not a question of timing
        if _crosses(o, touches[i + 1]):
            window = max(1, book_times[i + 1] - book_times[i])
            crossed_arrivals.append((min(1.0, (arrival - book_times[i]) / window), o.rejected))
    return Recording(
        name,
        inst,
        tuple(market),
        tuple(out),
        reaction,
        round(entry_latency),
        round(cancel_latency),
        round(ack_latency),
        rejects,
        crossed_next,
        tuple(book_times),
        tuple(mids),
        tuple(crossed_arrivals),
        own_trade_ids,
    )


def _crosses(order: _Order, touch: tuple[int | None, int | None]) -> bool:
    """Whether the opposite touch is at or through the order's price."""
    bid, ask = touch
    if order.side is Side.BUY:
        return ask is not None and ask <= order.price_ticks
    return bid is not None and bid >= order.price_ticks


def _public_market(
    body: Sequence[Mapping[str, Any]], inst: Instrument, rested: Sequence[_Order]
) -> tuple[
    list[tuple[int, MarketEvent]],
    list[int],
    list[float | None],
    list[tuple[int | None, int | None]],
]:
    """The public events (our orders out of the book; the trades as printed, our fills among
    them), with the local times of the book updates and the public mid and touch after each."""
    # Our resting lots per level as a function of venue time: +size at rest, -lots at each
    # fill, -remainder at the cancel; swept in venue time as the book updates come.
    changes: list[tuple[int, Side, int, int]] = []
    for o in rested:
        assert o.rest_e is not None  # noqa: S101  `rested` holds only orders that rested
        changes.append((o.rest_e, o.side, o.price_ticks, o.size_lots))
        left = o.size_lots
        for e, q in sorted(o.fills):
            changes.append((e, o.side, o.price_ticks, -q))
            left -= q
        if left > 0 and o.end_e is not None:
            changes.append((o.end_e, o.side, o.price_ticks, -left))
    changes.sort(key=lambda c: c[0])
    ours: dict[tuple[Side, int], int] = {}
    raw: dict[Side, dict[int, int]] = {Side.BUY: {}, Side.SELL: {}}
    public: dict[Side, dict[int, int]] = {Side.BUY: {}, Side.SELL: {}}
    market: list[tuple[int, MarketEvent]] = []
    book_times: list[int] = []
    mids: list[float | None] = []
    touches: list[tuple[int | None, int | None]] = []
    applied = 0
    touched_ours: set[tuple[Side, int]] = set()
    for r in body:
        kind = r["k"]
        t = int(r["t"])
        if kind == "trade":
            aggressor = Side(r["s"])
            event: MarketEvent = Trade(
                inst.venue, inst.symbol, int(r["e"]), t, int(r["id"]), r["p"], r["q"], aggressor
            )
            market.append((t, event))
            continue
        if kind != "book":
            continue
        e = int(r["e"])
        while applied < len(changes) and changes[applied][0] <= e:
            _, side, price, delta = changes[applied]
            ours[(side, price)] = ours.get((side, price), 0) + delta
            touched_ours.add((side, price))
            applied += 1
        bids, asks = _levels(r["b"]), _levels(r["a"])
        snapshot = bool(r.get("snap"))
        if snapshot:
            raw[Side.BUY].clear()
            raw[Side.SELL].clear()
        for side, levels in ((Side.BUY, bids), (Side.SELL, asks)):
            book = raw[side]
            for price, size in levels:
                if size > 0:
                    book[price] = size
                else:
                    book.pop(price, None)
        levels_now = {(Side.BUY, p) for p, _ in bids} | {(Side.SELL, p) for p, _ in asks}
        levels_now |= touched_ours
        touched_ours = {k for k, v in ours.items() if v > 0}
        if snapshot:
            levels_now |= {(s, p) for s in (Side.BUY, Side.SELL) for p in raw[s]}
            public[Side.BUY].clear()
            public[Side.SELL].clear()
        changed: dict[Side, list[tuple[int, int]]] = {Side.BUY: [], Side.SELL: []}
        for side, price in levels_now:
            size = max(0, raw[side].get(price, 0) - max(0, ours.get((side, price), 0)))
            if size > 0:
                public[side][price] = size
            else:
                public[side].pop(price, None)
            changed[side].append((price, size))
        if snapshot:
            event = BookSnapshot(
                inst.venue,
                inst.symbol,
                e,
                t,
                0,
                tuple(sorted(public[Side.BUY].items(), reverse=True)),
                tuple(sorted(public[Side.SELL].items())),
            )
        else:
            event = BookDelta(
                inst.venue,
                inst.symbol,
                e,
                t,
                0,
                0,
                -1,
                tuple(sorted(changed[Side.BUY], reverse=True)),
                tuple(sorted(changed[Side.SELL])),
            )
        market.append((t, event))
        book_times.append(t)
        best_bid = max(public[Side.BUY], default=None)
        best_ask = min(public[Side.SELL], default=None)
        mids.append(None if best_bid is None or best_ask is None else (best_bid + best_ask) / 2)
        touches.append((best_bid, best_ask))
    return market, book_times, mids, touches


def _reaction_ns(body: Sequence[Mapping[str, Any]], book_times: Sequence[int]) -> int:
    """Median time from a book update to a cancel (or replace) sent in reaction to it."""
    gaps = []
    for r in body:
        if r["k"] in ("cancel", "replace"):
            t = int(r["t"])
            i = bisect.bisect_right(book_times, t) - 1
            if i >= 0 and t - book_times[i] < 20 * _MS:
                gaps.append(t - book_times[i])
    return round(statistics.median(gaps)) if gaps else 0


def _max_depth_bps(
    order: _Order,
    start_ns: int,
    end_ns: int,
    book_times: Sequence[int],
    mids: Sequence[float | None],
) -> float:
    """How far past the public mid the order was at its furthest while it rested."""
    i = max(0, bisect.bisect_right(book_times, start_ns) - 1)
    deepest = -math.inf
    while i < len(book_times) and book_times[i] <= end_ns:
        mid = mids[i]
        if mid is not None:
            deepest = max(deepest, (order.price_ticks - mid) * int(order.side) / mid * 1e4)
        i += 1
    return deepest


# -- the paper venue on a recording ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaperOutcome:
    """What the paper venue filled of each order: order id -> (fills, lots)."""

    filled: Mapping[str, tuple[int, int]]  # maker fills only
    crossed: frozenset[str]  # orders the public book crossed on arrival (they took liquidity)
    fill_times: Mapping[str, tuple[tuple[int, int], ...]]  # (ns when it happened, lots)


def counterfactual(
    recording: Recording,
    probability: QueueProbability,
    exposure: ExposureParams | None,
) -> PaperOutcome:
    """Run the recording's public market and orders through a `PaperMatcher`.

    The orders are plain limit orders: every one of them rested live, so none is refused as
    post-only here (in a paper run the refusals are the exposure model's, see
    `mm_daemon.core.exposure`); one that the public book crosses on arrival takes liquidity,
    which is not counted."""
    inst = recording.instrument
    matcher = PaperMatcher(
        inst,
        queue_probability=probability,
        exposure=exposure,
        starting_base=1e12,
        starting_quote=1e18,
    )
    # (time, order of kind at equal times, index): market events first, then places, cancels.
    actions: list[tuple[int, int, int]] = [(t, 0, i) for i, (t, _) in enumerate(recording.market)]
    actions += [(o.rest_ns, 1, i) for i, o in enumerate(recording.orders)]
    actions += [(o.end_ns, 2, i) for i, o in enumerate(recording.orders)]
    actions.sort()
    filled: dict[str, list[int]] = {}
    crossed: set[str] = set()
    times: dict[str, list[tuple[int, int]]] = {}

    def note(events: Iterable[object]) -> None:
        for event in events:
            if isinstance(event, Fill):
                if event.liquidity is Liquidity.TAKER:
                    crossed.add(event.client_order_id)
                    continue
                got = filled.setdefault(event.client_order_id, [0, 0])
                got[0] += 1
                got[1] += event.size_lots
                times.setdefault(event.client_order_id, []).append(
                    (event.ts_exchange_ns, event.size_lots)
                )

    for t, kind, i in actions:
        if kind == 0:
            note(matcher.on_market_event(recording.market[i][1], t))
        elif kind == 1:
            o = recording.orders[i]
            request = OrderRequest(
                inst.venue,
                inst.symbol,
                o.order_id,
                o.side,
                o.price_ticks,
                o.size_lots,
                OrderType.LIMIT,
            )
            note(matcher.advance(t))
            note(matcher.accept(request, t))
        else:
            note(matcher.cancel(recording.orders[i].order_id, t))
    return PaperOutcome(
        {k: (v[0], v[1]) for k, v in filled.items()},
        frozenset(crossed),
        {k: tuple(v) for k, v in times.items()},
    )


# -- what the public stream does not show ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnseenFills:
    """Of one recording's live fills of orders the public book never showed past the mid: what
    the public trades of the fill's update window show at the order's price. And of all its
    filled orders: how many were filled after another of the same side in one update window
    (live's quote filled, replaced and filled again before the next update)."""

    print_through: int  # a public trade beyond the order's price in the window
    print_at: int  # none beyond it, one at its price
    no_print: int  # neither: nothing public reached the price
    filled_orders: int
    repeat_orders: int

    @property
    def fills(self) -> int:
        return self.print_through + self.print_at + self.no_print


def unseen_fills(recording: Recording) -> UnseenFills:
    """See `UnseenFills`; windows run from one public book update to the next."""
    times = recording.mid_times
    own = recording.own_trade_ids
    trades = [
        (t, e) for t, e in recording.market if isinstance(e, Trade) and str(e.trade_id) not in own
    ]
    trade_times = [t for t, _ in trades]

    def window(ts_ns: int) -> tuple[int, int, int]:
        i = bisect.bisect_right(times, ts_ns) - 1
        start = times[i] if i >= 0 else 0
        end = times[i + 1] if i + 1 < len(times) else ts_ns
        return i, start, end

    through = at = none = 0
    orders_by_window: dict[tuple[int, Side], int] = {}
    for o in recording.orders:
        if not o.live_fill_times:
            continue
        first, _, _ = window(o.live_fill_times[0][0])
        key = (first, o.side)
        orders_by_window[key] = orders_by_window.get(key, 0) + 1
        if o.max_depth_bps > 0.0:
            continue
        beyond = int(o.side)  # a print below a bid, above an ask
        for ts, _ in o.live_fill_times:
            _, start, end = window(ts)
            lo, hi = bisect.bisect_left(trade_times, start), bisect.bisect_right(trade_times, end)
            prices = [e.price_ticks for _, e in trades[lo:hi]]
            if any((o.price_ticks - p) * beyond > 0 for p in prices):
                through += 1
            elif o.price_ticks in prices:
                at += 1
            else:
                none += 1
    return UnseenFills(
        through,
        at,
        none,
        sum(orders_by_window.values()),
        sum(n - 1 for n in orders_by_window.values()),
    )


# -- scoring and fitting -----------------------------------------------------------------------


def _bucket(depth_bps: float) -> int:
    """0: never past fair value; then one bucket per edge of `DEPTH_BUCKETS_BPS`."""
    if depth_bps <= 0.0:
        return 0
    return max(i for i, edge in enumerate(DEPTH_BUCKETS_BPS) if depth_bps > edge) + 1


@dataclass(frozen=True, slots=True)
class BucketFigures:
    orders: int
    live_fills: float
    live_lots: float
    paper_fills: float
    paper_lots: float
    # Lots-weighted mean markout of the fills against the public mid MARKOUT_NS later, in bps
    # (positive: the fill earned); None without fills.
    live_markout_bps: float | None = None
    paper_markout_bps: float | None = None


MARKOUT_NS = _NS


class _Markouts:
    """Lots-weighted markout sums per bucket."""

    def __init__(self, buckets: int) -> None:
        self.sums = [0.0] * buckets
        self.lots = [0.0] * buckets

    def add(
        self,
        bucket: int,
        recording: Recording,
        order: CounterfactualOrder,
        fills: Iterable[tuple[int, int]],
        weight: float,
    ) -> None:
        for ts, lots in fills:
            later = recording.mid_at(ts + MARKOUT_NS)
            if later is None:
                continue
            edge = (later - order.price_ticks) * int(order.side) / order.price_ticks * 1e4
            self.sums[bucket] += edge * lots * weight
            self.lots[bucket] += lots * weight

    def mean(self, bucket: int) -> float | None:
        return self.sums[bucket] / self.lots[bucket] if self.lots[bucket] else None


def score(
    recordings: Sequence[Recording],
    probability: QueueProbability,
    exposure: ExposureParams | None,
    seeds: Sequence[int] = (1,),
) -> tuple[float, list[BucketFigures]]:
    """(objective, per-bucket figures) of one candidate; lower is better.

    The objective sums, over the buckets of orders the public book showed exposed, the squared
    log ratios of paper to live fills and lots (each with one order's worth added to both, so an
    empty bucket does not dominate), weighted by the bucket's share of the lots live filled (and
    a fiftieth of an order's size per order). The orders it never showed exposed are in the
    figures but not in the objective.
    """
    n = len(DEPTH_BUCKETS_BPS) + 1
    orders = [0] * n
    live_f = [0.0] * n
    live_l = [0.0] * n
    paper_f = [0.0] * n
    paper_l = [0.0] * n
    runs = [None] if exposure is None else [replace(exposure, seed=s) for s in seeds]
    live_markouts, paper_markouts = _Markouts(n), _Markouts(n)
    for rec in recordings:
        for o in rec.orders:
            b = _bucket(o.max_depth_bps)
            orders[b] += 1
            live_f[b] += o.live_fills
            live_l[b] += o.live_filled_lots
            live_markouts.add(b, rec, o, o.live_fill_times, 1.0)
        for params in runs:
            outcome = counterfactual(rec, probability, params)
            for o in rec.orders:
                got = outcome.filled.get(o.order_id)
                if got is not None:
                    b = _bucket(o.max_depth_bps)
                    paper_f[b] += got[0] / len(runs)
                    paper_l[b] += got[1] / len(runs)
                    times = outcome.fill_times.get(o.order_id, ())
                    paper_markouts.add(b, rec, o, times, 1.0 / len(runs))
    size = (
        statistics.median(o.size_lots for r in recordings for o in r.orders)
        if any(r.orders for r in recordings)
        else 1
    )
    # A bucket weighs what live filled in it, plus a little per order so that a bucket where
    # live filled nothing still counts. Orders the public book never showed exposed (bucket 0)
    # are reported, not fitted: what fills them live is what no public view shows.
    mass = [0.0] + [live_l[b] + 0.02 * size * orders[b] for b in range(1, n)]
    total = sum(mass) or 1.0
    objective = 0.0
    figures = []
    for b in range(n):
        weight = mass[b] / total
        lots = math.log((paper_l[b] + size) / (live_l[b] + size))
        fills = math.log((paper_f[b] + 1.0) / (live_f[b] + 1.0))
        objective += weight * (lots * lots + fills * fills)
        figures.append(
            BucketFigures(
                orders[b],
                live_f[b],
                live_l[b],
                paper_f[b],
                paper_l[b],
                live_markouts.mean(b),
                paper_markouts.mean(b),
            )
        )
    return objective, figures


@dataclass(frozen=True, slots=True)
class FitResult:
    probability: QueueProbability
    exposure: ExposureParams
    objective: float
    buckets: list[BucketFigures]
    evaluations: int
    # Of each queue probability: its error on the orders the public book never showed exposed
    # (the ones the queue rules fill), `not_exposed_error` summed over the recordings.
    probability_scores: dict[str, float]
    onset: OnsetFit | None = None


@dataclass(frozen=True, slots=True)
class OnsetFit:
    shape: float
    orders: int  # live post-only orders the next update showed crossed
    refused: int  # of which the venue refused
    log_likelihood: float
    log_likelihood_uniform: float  # shape 1
    # Per fifth of the window: (orders, refused, refused share the fitted shape predicts).
    by_fifth: tuple[tuple[int, int, float], ...]


def _onset_log_likelihood(arrivals: Sequence[tuple[float, bool]], shape: float) -> float:
    total = 0.0
    for into, refused in arrivals:
        before = 1.0 - math.pow(1.0 - into, shape)  # P(the crossing came before the arrival)
        p = min(max(before if refused else 1.0 - before, 1e-9), 1.0)
        total += math.log(p)
    return total


def fit_onset_shape(recordings: Sequence[Recording]) -> OnsetFit:
    """The onset shape of most likelihood for the recordings' crossed arrivals (see the module
    doc); 1 (uniform) when there are none."""
    arrivals = [a for r in recordings for a in r.crossed_arrivals]
    shape = 1.0
    if arrivals:
        # Golden-section search on log(shape) over 0.05..50: the likelihood is unimodal in it.
        lo, hi = math.log(0.05), math.log(50.0)
        ratio = (math.sqrt(5.0) - 1.0) / 2.0
        for _ in range(80):
            a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
            if _onset_log_likelihood(arrivals, math.exp(a)) >= _onset_log_likelihood(
                arrivals, math.exp(b)
            ):
                hi = b
            else:
                lo = a
        shape = math.exp((lo + hi) / 2.0)
    fifths = []
    for k in range(5):
        inside = [(x, r) for x, r in arrivals if k / 5 <= x < (k + 1) / 5 or (k == 4 and x >= 1)]
        predicted = [1.0 - math.pow(1.0 - x, shape) for x, _ in inside]
        fifths.append(
            (
                len(inside),
                sum(r for _, r in inside),
                statistics.fmean(predicted) if predicted else 0.0,
            )
        )
    return OnsetFit(
        shape,
        len(arrivals),
        sum(r for _, r in arrivals),
        _onset_log_likelihood(arrivals, shape),
        _onset_log_likelihood(arrivals, 1.0),
        tuple(fifths),
    )


def not_exposed_error(buckets: Sequence[BucketFigures]) -> float:
    """Squared log ratios of paper to live fills and lots of the never-exposed orders."""
    b = buckets[0]
    size = b.live_lots / b.live_fills if b.live_fills else 1.0
    lots = math.log((b.paper_lots + size) / (b.live_lots + size))
    fills = math.log((b.paper_fills + 1.0) / (b.live_fills + 1.0))
    return lots * lots + fills * fills


_PARAMS = (
    "rate_multiplier",
    "rate_multiplier_per_bps",
    "size_multiplier",
    "size_multiplier_per_bps",
)


def fit(
    recordings: Sequence[Recording],
    *,
    start: ExposureParams | None = None,
    probabilities: Mapping[str, QueueProbability] | None = None,
    seeds: Sequence[int] = (1, 2, 3),
    iterations: int = 60,
    progress: Callable[[int, float, ExposureParams], None] | None = None,
) -> FitResult:
    """Choose the queue probability function, then search the exposure parameters with it
    (Nelder-Mead on their logarithms); see the module doc.

    The function is chosen on the orders the public book never showed exposed, which the
    queue rules fill unless a print goes through them, by their error summed over the
    recordings: one market's surplus must not pass for another's shortfall."""
    onset = fit_onset_shape(recordings)
    base = replace(start or ExposureParams(), onset_shape=onset.shape)
    probabilities = probabilities or {"fixed": QueueProbability()}
    scores: dict[str, float] = {}
    chosen, chosen_error = next(iter(probabilities.values())), math.inf
    for name, probability in probabilities.items():
        scores[name] = sum(
            not_exposed_error(score([rec], probability, base, seeds)[1]) for rec in recordings
        )
        # A tie keeps the earlier one: the first is the established rule.
        if scores[name] < chosen_error - 1e-9:
            chosen, chosen_error = probability, scores[name]
    evaluations = 0
    floor = 1e-3  # the logarithm of a parameter can reach 0.001 (effectively off), not 0

    def params_of(x: Sequence[float]) -> ExposureParams:
        rate, rate_per_bps, size, size_per_bps = (
            math.exp(v) if v > math.log(floor) else 0.0 for v in x
        )
        return replace(
            base,
            rate_multiplier=rate,
            rate_multiplier_per_bps=rate_per_bps,
            size_multiplier=size,
            size_multiplier_per_bps=size_per_bps,
        )

    def objective(x: Sequence[float]) -> float:
        nonlocal evaluations
        evaluations += 1
        value, _ = score(recordings, chosen, params_of(x), seeds)
        if progress is not None:
            progress(evaluations, value, params_of(x))
        return value

    # A coarse grid over the two multipliers first: where every candidate fills everything (or
    # nothing) the objective is flat, and the simplex needs a start on the slope. The per-bps
    # terms reach 100: an exposed quote filled in pieces near fair value and whole far past it
    # needs a small multiplier and a large slope (live fills on the simulator whose touch is
    # sticky; from the grid's 0.01 slopes the simplex stalled at 0.059 where 0.046 was there).
    grid = [
        [math.log(rate), math.log(per_bps), math.log(size), math.log(per_bps)]
        for rate in (0.1, 1.0, 10.0, 100.0)
        for size in (1.0, 10.0, 100.0)
        for per_bps in (floor * 10, 1.0, 100.0)
    ]
    grid.append([math.log(max(getattr(base, name), floor * 10)) for name in _PARAMS])
    x0 = min(grid, key=objective)
    best = _nelder_mead(objective, x0, step=1.0, iterations=iterations)
    fitted = params_of(best)
    value, buckets = score(recordings, chosen, fitted, seeds)
    return FitResult(chosen, fitted, value, buckets, evaluations, scores, onset)


def _nelder_mead(
    f: Callable[[Sequence[float]], float],
    x0: Sequence[float],
    *,
    step: float,
    iterations: int,
    tolerance: float = 1e-3,
) -> list[float]:
    """Minimise `f` from `x0` with the Nelder-Mead simplex (standard coefficients), until the
    simplex's values and points agree within `tolerance` or after `iterations`."""
    dim = len(x0)
    simplex = [list(x0)]
    for i in range(dim):
        point = list(x0)
        point[i] += step
        simplex.append(point)
    values = [f(p) for p in simplex]
    for _ in range(iterations):
        order = sorted(range(dim + 1), key=lambda i: values[i])
        simplex = [simplex[i] for i in order]
        values = [values[i] for i in order]
        spread = max(abs(a - b) for p in simplex[1:] for a, b in zip(p, simplex[0], strict=True))
        if values[-1] - values[0] <= tolerance and spread <= tolerance:
            break
        centroid = [sum(p[j] for p in simplex[:-1]) / dim for j in range(dim)]
        worst = simplex[-1]
        reflected = [c + (c - w) for c, w in zip(centroid, worst, strict=True)]
        fr = f(reflected)
        if fr < values[0]:
            expanded = [c + 2.0 * (c - w) for c, w in zip(centroid, worst, strict=True)]
            fe = f(expanded)
            simplex[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = reflected, fr
        else:
            contracted = [c + 0.5 * (w - c) for c, w in zip(centroid, worst, strict=True)]
            fc = f(contracted)
            if fc < values[-1]:
                simplex[-1], values[-1] = contracted, fc
            else:
                best = simplex[0]
                simplex = [best] + [
                    [b + 0.5 * (p - b) for b, p in zip(best, point, strict=True)]
                    for point in simplex[1:]
                ]
                values = [values[0]] + [f(p) for p in simplex[1:]]
    i = min(range(dim + 1), key=lambda k: values[k])
    return simplex[i]
