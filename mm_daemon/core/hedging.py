"""Hedge policy: turns net exposure into IOC hedge orders on a correlated venue.

Feed the hedger the hedge venue's touch (`on_touch`), both fair values (`on_fair_values`), the
hedge venue's health (`on_venue_status`), and the hedge orders' updates and fills; call
`decide(now_ns, net_exposure_base)` after every fill and on a regular timer. It returns at most
one `HedgeIntent` per call. The quote engine reads `hedge_down(now_ns)`.

Modes (`HedgeParams.mode`):
- off: never hedges, never constrains quoting.
- threshold: when |exposure| > threshold_base, hedge down to |target_base| (same sign).
- partial: when |exposure| > threshold_base, hedge `fraction` of the excess over the target;
  repeated while still above the threshold, so exposure settles near the threshold.
- gradual: while |exposure| > threshold_base, hedge slices of at most slice_base, one per
  slice_interval_seconds.

Exposure here is the ledger's net exposure plus the exposure already being hedged (the unfilled
part of in-flight hedge orders), so nothing is hedged twice. An in-flight order is released by
its fills, by its terminal update (keeping any quantity the update reports filled until those
fills arrive) or, failing all, after hedge_timeout_seconds.

Sizes: exposure units convert to hedge base units through the hedge ratio (hedge base units per
unit of exposure): `ratio` when fixed, else the rolling beta of maker-venue returns on
hedge-venue returns (the minimum-variance hedge ratio), falling back to `ratio` until enough
returns are seen. The hedge venue's netting weight in the ledger must be `netting_weight`
(1 / hedge ratio), so a filled hedge nets the exposure it was sized for. Sizes round down to
whole lots (never beyond the target); a hedge below the venue's minimum size or notional waits.

Prices: an IOC limit at most max_slippage_bps through the touch: a buy at best ask * (1 + s)
rounded down to a tick, a sell at best bid * (1 - s) rounded up, computed exactly.

Hedge venue down (a source reported down through `on_venue_status`, no valid touch yet, or
a hedge rejected or unanswered within the timeout, for hedge_timeout_seconds after it): no
hedges are sent and `hedge_down` gives the quoter the configured reaction: widen quotes by
down_widen_bps, quote only the side that reduces exposure, or stop quoting.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass

from mm_daemon.core.modes import HedgeMode, HedgeRatioMode, HedgeVenueDownReaction
from mm_daemon.core.pnl import decimal_fraction
from mm_daemon.core.quoting import HedgeDown
from mm_daemon.core.types import (
    Fill,
    Instrument,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
)

__all__ = [
    "HedgeIntent",
    "HedgeParams",
    "HedgeStats",
    "Hedger",
    "RollingBeta",
]

_NS = 1_000_000_000
_BETA_MIN = 0.2  # a rolling beta outside these bounds is noise, not a hedge ratio
_BETA_MAX = 5.0
_DECISIONS_KEPT = 1024


@dataclass(frozen=True, slots=True)
class HedgeParams:
    """The hedge policy's parameters in plain values (the `hedging` config section's fields)."""

    mode: HedgeMode = HedgeMode.THRESHOLD
    threshold_base: float = 0.02
    target_base: float = 0.0
    fraction: float = 0.5
    slice_base: float = 0.01
    slice_interval_seconds: float = 1.0
    max_slippage_bps: float = 5.0
    ratio_mode: HedgeRatioMode = HedgeRatioMode.FIXED
    ratio: float = 1.0
    beta_window_seconds: float = 300.0
    on_hedge_venue_down: HedgeVenueDownReaction = HedgeVenueDownReaction.REDUCE_ONLY
    down_widen_bps: float = 10.0
    hedge_timeout_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class HedgeIntent:
    """A hedge order to send, with the fair values at decision (for hedge-cost attribution)."""

    request: OrderRequest
    fair_value: float  # the hedge instrument's fair value at decision
    reference_fair_value: float  # the quoted instrument's fair value at decision
    exposure_change_base: float  # change of net exposure once filled (a sell is negative)


@dataclass(slots=True)
class HedgeStats:
    orders: int = 0
    fills: int = 0
    rejects: int = 0
    timeouts: int = 0
    filled_base: float = 0.0
    slippage_bps_sum: float = 0.0  # over fills, weighted by nothing: one entry per fill
    unhedged_exposure_ns: int = 0  # time with |net exposure| above the threshold


class RollingBeta:
    """Beta of maker-venue log returns on hedge-venue log returns over a rolling window.

    Prices are sampled every `sample_interval_ns` (the latest price of each venue at the
    sample time), so irregular updates on either venue do not bias the estimate.
    """

    __slots__ = (
        "_beta",
        "_last",
        "_min_samples",
        "_next_sample_ns",
        "_prices",
        "_returns",
        "_sample_ns",
        "_window_ns",
    )

    def __init__(
        self, window_ns: int, sample_interval_ns: int = _NS, min_samples: int = 20
    ) -> None:
        self._window_ns = window_ns
        self._sample_ns = sample_interval_ns
        self._min_samples = min_samples
        self._returns: deque[tuple[int, float, float]] = deque()
        self._last: tuple[float, float] | None = None  # latest (maker, hedge) prices
        self._prices: tuple[float, float] | None = None  # prices at the previous sample
        self._next_sample_ns = 0
        self._beta: float | None = None

    @property
    def beta(self) -> float | None:
        """The estimate, or None before `min_samples` returns (or with a flat hedge price)."""
        return self._beta

    @property
    def window_ns(self) -> int:
        return self._window_ns

    @property
    def samples(self) -> int:
        return len(self._returns)

    def update(self, ts_ns: int, maker_price: float, hedge_price: float) -> None:
        if maker_price <= 0 or hedge_price <= 0:
            return
        if self._prices is None:
            self._prices = (maker_price, hedge_price)
            self._next_sample_ns = ts_ns + self._sample_ns
            self._last = (maker_price, hedge_price)
            return
        if ts_ns >= self._next_sample_ns and self._last is not None:
            # The sample at the boundary takes the prices that held just before this update.
            self._sample(self._next_sample_ns, self._last)
            steps = (ts_ns - self._next_sample_ns) // self._sample_ns + 1
            self._next_sample_ns += steps * self._sample_ns
        self._last = (maker_price, hedge_price)

    def _sample(self, ts_ns: int, prices: tuple[float, float]) -> None:
        assert self._prices is not None  # noqa: S101  set by the first update
        maker_return = math.log(prices[0] / self._prices[0])
        hedge_return = math.log(prices[1] / self._prices[1])
        self._prices = prices
        returns = self._returns
        returns.append((ts_ns, maker_return, hedge_return))
        horizon = ts_ns - self._window_ns
        while returns and returns[0][0] <= horizon:
            returns.popleft()
        n = len(returns)
        if n < self._min_samples:
            self._beta = None
            return
        mean_m = sum(r[1] for r in returns) / n
        mean_h = sum(r[2] for r in returns) / n
        cov = sum((r[1] - mean_m) * (r[2] - mean_h) for r in returns)
        var = sum((r[2] - mean_h) ** 2 for r in returns)
        self._beta = cov / var if var > 0 else None


class _InFlight:
    __slots__ = ("fills_seen", "request", "terminal_filled")

    def __init__(self, request: OrderRequest) -> None:
        self.request = request
        self.fills_seen = 0
        self.terminal_filled: int | None = None  # filled_lots of the terminal update

    @property
    def remaining_lots(self) -> int:
        expected = self.request.size_lots if self.terminal_filled is None else self.terminal_filled
        return max(0, expected - self.fills_seen)


class Hedger:
    """Decides hedge orders for one hedge instrument; pure: time comes in as ns arguments."""

    def __init__(
        self,
        config: HedgeParams,
        instrument: Instrument,
        client_id_prefix: str = "hdg-",
    ) -> None:
        self.config = config
        self.instrument = instrument
        self.client_id_prefix = client_id_prefix
        self.stats = HedgeStats()
        self._tick = decimal_fraction(instrument.tick_size)
        self._base_per_lot = decimal_fraction(instrument.lot_size) * decimal_fraction(
            instrument.contract_size_base
        )
        self._beta: RollingBeta | None = None
        self.reconfigure(config)
        self._bid: int | None = None
        self._ask: int | None = None
        self._down_sources: dict[str, str] = {}  # source -> reason, while it reports down
        self._failed_until_ns = 0
        self._failed_reason = ""
        self._hedge_fair: float | None = None
        self._reference_fair: float | None = None
        self._in_flight: dict[str, _InFlight] = {}
        self._decision_fair: OrderedDict[str, float] = OrderedDict()
        self._sent_ns: dict[str, int] = {}
        self._next_id = 0
        self._last_slice_ns: int | None = None
        self._last_decide_ns: int | None = None
        self._over_threshold = False

    def reconfigure(self, config: HedgeParams) -> None:
        """Hedge by `config` from the next decision on (a live reload); orders in flight, stats
        and the rolling beta (while its window is unchanged) carry over."""
        previous = self._beta
        self.config = config
        self._slippage = decimal_fraction(config.max_slippage_bps) / 10_000
        self._timeout_ns = round(config.hedge_timeout_seconds * _NS)
        self._slice_interval_ns = round(config.slice_interval_seconds * _NS)
        self._target = min(abs(config.target_base), config.threshold_base)
        window_ns = round(config.beta_window_seconds * _NS)
        if config.ratio_mode is not HedgeRatioMode.BETA:
            self._beta = None
        elif previous is None or previous.window_ns != window_ns:
            self._beta = RollingBeta(window_ns)

    # -- inputs --------------------------------------------------------------------------

    def on_touch(self, best_bid_ticks: int | None, best_ask_ticks: int | None) -> None:
        """The hedge venue's best bid and ask, in its ticks (None: that side is empty)."""
        self._bid = best_bid_ticks
        self._ask = best_ask_ticks

    def on_venue_status(self, stale: bool, reason: str = "", source: str = "market_data") -> None:
        """A part of the hedge venue (`source`: market data, order entry...) went down or up.

        The venue counts as down while any source reports it down.
        """
        if stale:
            self._down_sources[source] = reason or f"hedge venue {source} down"
        else:
            self._down_sources.pop(source, None)

    def on_fair_values(self, ts_ns: int, reference_fair: float, hedge_fair: float) -> None:
        """Latest fair values of the quoted and the hedge instrument (also feeds the beta)."""
        self._reference_fair = reference_fair
        self._hedge_fair = hedge_fair
        if self._beta is not None:
            self._beta.update(ts_ns, reference_fair, hedge_fair)

    def on_order_update(self, update: OrderUpdate, now_ns: int) -> None:
        order = self._in_flight.get(update.client_order_id)
        if order is None:
            return
        if update.status is OrderStatus.REJECTED:
            self.stats.rejects += 1
            self._fail(now_ns, f"hedge order rejected: {update.reason}".rstrip(": "))
            order.terminal_filled = update.filled_lots
        elif update.status.is_terminal:
            order.terminal_filled = update.filled_lots
        else:
            return
        if order.remaining_lots == 0:
            self._release(update.client_order_id)

    def on_fill(self, fill: Fill) -> float | None:
        """A fill on the hedge venue; return its slippage in bps (positive: paid through fair)."""
        fair = self._decision_fair.get(fill.client_order_id)
        order = self._in_flight.get(fill.client_order_id)
        if order is None and fair is None:
            return None
        if order is not None:
            order.fills_seen += fill.size_lots
            if order.terminal_filled is not None and order.remaining_lots == 0:
                self._release(fill.client_order_id)
        self._failed_until_ns = 0  # the venue fills: it is up
        self.stats.fills += 1
        self.stats.filled_base += float(fill.size_lots * self._base_per_lot)
        if fair is None or fair <= 0:
            return None
        price = float(fill.price_ticks * self._tick)
        slippage = fill.side * (price - fair) / fair * 1e4
        self.stats.slippage_bps_sum += slippage
        return slippage

    # -- outputs -------------------------------------------------------------------------

    @property
    def hedge_ratio(self) -> float:
        """Hedge base units per unit of exposure: the rolling beta, or the fixed ratio."""
        if self._beta is not None:
            beta = self._beta.beta
            if beta is not None and _BETA_MIN <= beta <= _BETA_MAX:
                return beta
        return self.config.ratio

    @property
    def netting_weight(self) -> float:
        """Exposure per base unit held on the hedge venue: set it in the ledger."""
        return 1.0 / self.hedge_ratio

    @property
    def in_flight_exposure_base(self) -> float:
        """Exposure the unfilled part of in-flight hedge orders will remove (signed)."""
        weight = self.netting_weight
        total = 0.0
        for order in self._in_flight.values():
            total += order.request.side * float(order.remaining_lots * self._base_per_lot)
        return total * weight

    @property
    def in_flight_orders(self) -> int:
        return len(self._in_flight)

    def is_down(self, now_ns: int) -> bool:
        return self._down_reason(now_ns) is not None

    def hedge_down(self, now_ns: int) -> HedgeDown | None:
        """How the quoter reacts now (None while the hedge venue is fine or hedging is off)."""
        if self.config.mode is HedgeMode.OFF:
            return None
        reason = self._down_reason(now_ns)
        if reason is None:
            return None
        config = self.config
        return HedgeDown(str(config.on_hedge_venue_down.value), config.down_widen_bps, reason)

    def decide(self, now_ns: int, net_exposure_base: float) -> HedgeIntent | None:
        """The hedge to send now for `net_exposure_base` (the ledger's), or None."""
        self._expire(now_ns)
        self._account_unhedged(now_ns, net_exposure_base)
        config = self.config
        if config.mode is HedgeMode.OFF or self._down_reason(now_ns) is not None:
            return None
        exposure = net_exposure_base + self.in_flight_exposure_base
        magnitude = abs(exposure)
        if magnitude <= config.threshold_base:
            return None
        excess = magnitude - self._target
        if config.mode is HedgeMode.THRESHOLD:
            amount = excess
        elif config.mode is HedgeMode.PARTIAL:
            amount = config.fraction * excess
        else:
            last = self._last_slice_ns
            if last is not None and now_ns - last < self._slice_interval_ns:
                return None
            amount = min(config.slice_base, excess)
        side = Side.SELL if exposure > 0 else Side.BUY
        return self._order(now_ns, side, amount)

    def withdraw(self, intent: HedgeIntent) -> None:
        """`intent` was not sent after all (the venue's order budget is short): forget it, so
        the next `decide` weighs the exposure again."""
        coid = intent.request.client_order_id
        if self._in_flight.pop(coid, None) is None:
            return
        self._sent_ns.pop(coid, None)
        self._decision_fair.pop(coid, None)
        self.stats.orders -= 1

    # -- internals -----------------------------------------------------------------------

    def _order(self, now_ns: int, side: Side, exposure_amount: float) -> HedgeIntent | None:
        instrument = self.instrument
        hedge_base = exposure_amount * self.hedge_ratio
        lots = math.floor(hedge_base / float(self._base_per_lot) + 1e-9)
        if lots < max(1, instrument.min_size_lots):
            return None
        price_ticks = self._limit_price_ticks(side)
        if price_ticks is None:
            return None
        notional = price_ticks * self._tick * lots * self._base_per_lot
        if notional < decimal_fraction(instrument.min_notional_quote):
            return None
        self._next_id += 1
        client_order_id = f"{self.client_id_prefix}{self._next_id}"
        request = OrderRequest(
            venue=instrument.venue,
            symbol=instrument.symbol,
            client_order_id=client_order_id,
            side=side,
            price_ticks=price_ticks,
            size_lots=lots,
            order_type=OrderType.IOC,
            ts_decided_ns=now_ns,
        )
        fair = self._hedge_fair
        if fair is None:
            assert self._bid is not None  # noqa: S101  checked by _limit_price_ticks
            assert self._ask is not None  # noqa: S101  checked by _limit_price_ticks
            fair = float((self._bid + self._ask) * self._tick / 2)
        reference = fair if self._reference_fair is None else self._reference_fair
        self._in_flight[client_order_id] = _InFlight(request)
        self._sent_ns[client_order_id] = now_ns
        self._decision_fair[client_order_id] = fair
        if len(self._decision_fair) > _DECISIONS_KEPT:
            self._decision_fair.popitem(last=False)
        self._last_slice_ns = now_ns
        self.stats.orders += 1
        exposure = side * float(lots * self._base_per_lot) * self.netting_weight
        return HedgeIntent(request, fair, reference, exposure)

    def _limit_price_ticks(self, side: Side) -> int | None:
        bid, ask = self._bid, self._ask
        if bid is None or ask is None or bid >= ask or bid <= 0:
            return None
        if side is Side.BUY:
            return math.floor(ask * (1 + self._slippage))
        return max(1, math.ceil(bid * (1 - self._slippage)))

    def _down_reason(self, now_ns: int) -> str | None:
        if self._down_sources:
            return next(iter(self._down_sources.values()))
        if self._bid is None or self._ask is None or self._bid >= self._ask:
            return "hedge venue book has no valid touch"
        if now_ns < self._failed_until_ns:
            return self._failed_reason
        return None

    def _fail(self, now_ns: int, reason: str) -> None:
        self._failed_until_ns = now_ns + self._timeout_ns
        self._failed_reason = reason

    def _release(self, client_order_id: str) -> None:
        self._in_flight.pop(client_order_id, None)
        self._sent_ns.pop(client_order_id, None)

    def _expire(self, now_ns: int) -> None:
        if not self._in_flight:
            return
        expired = [
            coid for coid, sent in self._sent_ns.items() if now_ns - sent >= self._timeout_ns
        ]
        for coid in expired:
            order = self._in_flight[coid]
            if order.terminal_filled is None:
                self.stats.timeouts += 1
                self._fail(now_ns, "hedge order unanswered past hedge_timeout_seconds")
            self._release(coid)

    def _account_unhedged(self, now_ns: int, net_exposure_base: float) -> None:
        last = self._last_decide_ns
        if last is not None and self._over_threshold and now_ns > last:
            self.stats.unhedged_exposure_ns += now_ns - last
        self._last_decide_ns = now_ns
        self._over_threshold = abs(net_exposure_base) > self.config.threshold_base
