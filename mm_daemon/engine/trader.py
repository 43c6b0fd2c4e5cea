"""The trading loop's event handlers: market and execution events in, quotes and hedges out.

Every handler is synchronous and runs on the event loop as the event arrives, so a book move,
trade, fill or inventory change can move the quotes at once (no fixed clock). The decisions
themselves are the pure core's (`MarketState`, `Quoter`, `Ledger`, `Hedger`, `RiskGate`); this
class routes events to them, carries their decisions to the order manager and the hedge venue,
and keeps the metrics.

When to requote: a book event that moves fair value by the order manager's price tolerance or
more since the last requote, a snapshot, a status change or a fill requotes before its handler
returns (the latency that matters: quotes left behind a move get picked off). Every other
market event (trades, book changes inside the tolerance) marks the quotes for one requote once
the loop has handed over everything it read in this turn: a sweep arrives as a burst of trade
frames and book diffs, and requoting after each one would delay the frame that moves the price.
Without a running loop (tests, replays) every event requotes at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mm_daemon.core.quoting import MarketInputs, Quoter
from mm_daemon.core.risk import RiskGate, RiskState
from mm_daemon.core.types import (
    BookDelta,
    ExecutionEvent,
    Fill,
    MarketEvent,
    MarketStatus,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Trade,
)
from mm_daemon.engine.orders import REJECT_REASONS, reject_reason_label
from mm_daemon.log import get_logger

if TYPE_CHECKING:
    from mm_daemon.core.estimators import IntensityFit
    from mm_daemon.core.hedging import Hedger
    from mm_daemon.core.inventory import Ledger
    from mm_daemon.core.market_state import MarketState
    from mm_daemon.core.markouts import MarkoutTracker
    from mm_daemon.engine.metrics import Metrics
    from mm_daemon.engine.orders import OrderManager
    from mm_daemon.venues.base import Execution

__all__ = ["PAUSE_REASONS", "HedgeLeg", "Trader"]

log = get_logger(__name__)

_NS = 1_000_000_000
PAUSE_REASONS = frozenset({"stale", "halted", "hedge_down", "volatility"})
"""Why the quoter may quote nothing on purpose; anything else with no quotes is a fault."""


@dataclass(slots=True)
class HedgeLeg:
    """The hedge venue as the trader sees it."""

    state: MarketState
    execution: Execution
    hedger: Hedger


class Trader:
    """Routes one maker market (and an optional hedge market) through the core."""

    def __init__(
        self,
        *,
        maker_state: MarketState,
        quoter: Quoter,
        orders: OrderManager,
        ledger: Ledger,
        markouts: MarkoutTracker,
        risk: RiskGate,
        metrics: Metrics,
        hedge: HedgeLeg | None = None,
        paper_feeds: dict[str, Callable[[MarketEvent], None]] | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.maker = maker_state
        self.maker_venue = maker_state.instrument.venue
        self.quoter = quoter
        self.orders = orders
        self.ledger = ledger
        self.markouts = markouts
        self.risk = risk
        self.metrics = metrics
        self.hedge = hedge
        self._paper_feeds = paper_feeds or {}
        self._clock = clock
        self._cross_venue = maker_state.reference is not None
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_unhedged_ns = 0
        self.market_events = 0
        self._fit: IntensityFit | None = None  # refitted on the timer, not per event
        self._quoted_fair: float | None = None  # maker fair value at the last requote
        self._deferred_ts_ns = 0  # oldest event waiting for the end-of-turn requote (0: none)
        self._paused = False  # quoting nothing on purpose (stale, halted, hedge down, volatility)
        self._init_metrics()

    def _init_metrics(self) -> None:
        # Book, latency, trade and staleness series are the market-data adapter's; the
        # trader publishes what it derives: fair value, volatility, inventory, P&L, markouts.
        m = self.metrics
        self._m_markout = {h: m.markout_bps.labels(h) for h in self.markouts.horizons}
        # Series exist from the start (dashboards and alerts see 0, not "no data").
        for state in (self.maker, *([self.hedge.state] if self.hedge else [])):
            venue = state.instrument.venue
            m.event_errors.labels(venue)
            for reason in REJECT_REASONS:
                m.order_rejects.labels(venue, reason)
            for side in ("buy", "sell"):
                for liquidity in ("maker", "taker"):
                    m.fills.labels(venue, side, liquidity)
                m.fill_volume_base.labels(venue, side)
        if self.hedge is not None:
            m.hedge_orders.labels(self.hedge.execution.venue)
        self._m_markets = [
            (
                state,
                m.fair_value.labels(state.instrument.venue, state.instrument.symbol),
                m.volatility.labels(state.instrument.venue, state.instrument.symbol),
            )
            for state in (self.maker, *([self.hedge.state] if self.hedge else []))
        ]

    # -- market events ------------------------------------------------------------------------

    def on_market_event(self, event: MarketEvent) -> None:
        try:
            self._on_market_event(event)
        except Exception:  # noqa: BLE001  one bad event is logged and skipped, never fatal
            self._event_failed(event)

    def on_maker_execution(self, event: ExecutionEvent) -> None:
        try:
            self._on_maker_execution(event)
        except Exception:  # noqa: BLE001  one bad event is logged and skipped, never fatal
            self._event_failed(event)

    def on_hedge_execution(self, event: ExecutionEvent) -> None:
        try:
            self._on_hedge_execution(event)
        except Exception:  # noqa: BLE001  one bad event is logged and skipped, never fatal
            self._event_failed(event)

    def _event_failed(self, event: MarketEvent | ExecutionEvent) -> None:
        self.metrics.event_errors.labels(event.venue).inc()
        log.exception("event_failed", venue=event.venue, kind=type(event).__name__)  # noqa: LOG004  called from the handlers' except blocks

    def _on_market_event(self, event: MarketEvent) -> None:
        self.market_events += 1
        feed = self._paper_feeds.get(event.venue)
        if feed is not None:
            feed(event)  # paper fills see the public flow before we requote on it
        if event.venue == self.maker_venue:
            self._on_maker_event(event)
        elif self.hedge is not None and event.venue == self.hedge.state.instrument.venue:
            self._on_hedge_event(event, self.hedge)

    def _on_maker_event(self, event: MarketEvent) -> None:
        self.maker.on_event(event)
        self._requote_after(event)

    def _on_hedge_event(self, event: MarketEvent, leg: HedgeLeg) -> None:
        state = leg.state
        state.on_event(event)
        if type(event) is MarketStatus:
            leg.hedger.on_venue_status(event.stale, event.reason, source="market_data")
            self.requote(event.ts_local_ns)
            return
        if type(event) is not Trade:
            book = state.book
            bid, ask = book.best_bid(), book.best_ask()
            leg.hedger.on_touch(bid[0] if bid else None, ask[0] if ask else None)
        if self._cross_venue:
            if type(event) is Trade:
                self._requote_later(event.ts_local_ns)
                return
            self.maker.on_reference_update(event.ts_local_ns)
            self._requote_after(event)

    def _requote_after(self, event: MarketEvent) -> None:
        """Requote now or at the end of the loop turn (see the module docstring)."""
        kind = type(event)
        if kind is Trade:
            self._requote_later(event.ts_local_ns)
            return
        if kind is BookDelta:
            fair = self.maker.fair_value_ticks
            quoted = self._quoted_fair
            if (
                fair is not None
                and quoted is not None
                and abs(fair - quoted) < self.orders.price_tolerance_ticks(quoted)
            ):
                self._requote_later(event.ts_local_ns)
                return
        self.requote(event.ts_local_ns)

    def _requote_later(self, event_ts_ns: int) -> None:
        if self._deferred_ts_ns:
            return  # already due this turn, for an older event
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.requote(event_ts_ns)
            return
        self._deferred_ts_ns = event_ts_ns or 1
        loop.call_soon(self._deferred_requote)

    def _deferred_requote(self) -> None:
        ts = self._deferred_ts_ns
        if not ts:
            return  # a requote since then has seen everything
        try:
            self.requote(ts)
        except Exception:  # a failing requote is logged, never fatal to the loop
            self.metrics.event_errors.labels(self.maker_venue).inc()
            log.exception("requote_failed", venue=self.maker_venue)

    # -- quoting ------------------------------------------------------------------------------

    def requote(self, event_ts_ns: int) -> None:
        self._deferred_ts_ns = 0
        state = self.maker
        fair = state.fair_value_ticks
        if fair is None:
            return
        self._quoted_fair = fair
        now = self._clock()
        book = state.book
        bid, ask = book.best_bid(), book.best_ask()
        fit = self._fit
        inputs = MarketInputs.from_relative(
            fair,
            bid[0] if bid else None,
            ask[0] if ask else None,
            sigma_relative=state.volatility.value,
            intensity_a=fit.a_per_second if fit is not None else 0.0,
            intensity_k=fit.k_per_tick if fit is not None else 0.0,
            imbalance=state.flow_imbalance,
            stale=state.stale,
        )
        hedge_down = self.hedge.hedger.hedge_down(now) if self.hedge is not None else None
        net = self.ledger.net_exposure_base
        quotes = self.quoter.quote(inputs, net, now, self.risk.state, hedge_down)
        self.orders.set_desired(
            quotes, fair_ticks=fair, net_exposure_base=net, event_ts_ns=event_ts_ns
        )
        self._paused = quotes.empty and quotes.reason in PAUSE_REASONS

    # -- execution events -----------------------------------------------------------------------

    def _on_maker_execution(self, event: ExecutionEvent) -> None:
        self.orders.on_execution_event(event)
        if type(event) is Fill:
            self._book_fill(event)
            self.markouts.on_fill(event.ts_local_ns, event.side, self.maker.fair_value_price)
            self.maybe_hedge()
            self.requote(event.ts_local_ns)

    def _on_hedge_execution(self, event: ExecutionEvent) -> None:
        leg = self.hedge
        if leg is None:
            return
        now = self._clock()
        if type(event) is Fill:
            self._book_fill(event)
            slippage = leg.hedger.on_fill(event)
            if slippage is not None:
                self.metrics.hedge_slippage_bps.observe(slippage)
            self.requote(event.ts_local_ns)
        elif type(event) is OrderUpdate:
            leg.hedger.on_order_update(event, now)
            if event.status.value == "rejected":
                reason = reject_reason_label(event.reason or "rejected")
                self.metrics.order_rejects.labels(event.venue, reason).inc()
                log.warning("hedge_rejected", venue=event.venue, reason=event.reason)

    def _book_fill(self, fill: Fill) -> None:
        self.ledger.on_fill(fill)
        side = "buy" if fill.side > 0 else "sell"
        self.metrics.fills.labels(fill.venue, side, fill.liquidity.value).inc()
        inst = self.maker.instrument
        if self.hedge is not None and fill.venue == self.hedge.state.instrument.venue:
            inst = self.hedge.state.instrument
        self.metrics.fill_volume_base.labels(fill.venue, side).inc(
            inst.lots_to_base(fill.size_lots)
        )
        log.info(
            "fill",
            venue=fill.venue,
            side=side,
            price=inst.ticks_to_price(fill.price_ticks),
            size=inst.lots_to_size(fill.size_lots),
            liquidity=fill.liquidity.value,
            fee=fill.fee_quote,
            net_exposure_base=round(self.ledger.net_exposure_base, 8),
        )

    # -- hedging --------------------------------------------------------------------------------

    def maybe_hedge(self) -> None:
        leg = self.hedge
        if leg is None:
            return
        now = self._clock()
        intent = leg.hedger.decide(now, self.ledger.net_exposure_base)
        if intent is None:
            return
        self.ledger.on_hedge_intent(intent)
        self.metrics.hedge_orders.labels(leg.execution.venue).inc()
        request = intent.request
        log.info(
            "hedge_sent",
            venue=request.venue,
            side="buy" if request.side > 0 else "sell",
            size=leg.state.instrument.lots_to_size(request.size_lots),
            limit=leg.state.instrument.ticks_to_price(request.price_ticks),
        )
        task = asyncio.get_running_loop().create_task(self._send_hedge(leg, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_hedge(self, leg: HedgeLeg, request: OrderRequest) -> None:
        try:
            await leg.execution.place(request)
        except Exception as exc:  # noqa: BLE001  any order-entry failure is a rejected hedge
            log.warning("hedge_order_failed", venue=request.venue, error=repr(exc))
            now = self._clock()
            self.on_hedge_execution(
                request.as_update(OrderStatus.REJECTED, now, "order entry failed")
            )

    # -- periodic work (markouts mature, hedge slices and timeouts, risk, gauges) ---------------

    def on_timer(self) -> None:
        now = self._clock()
        self._fit = self.maker.intensity_fit(now)
        maker_fair = self.maker.fair_value_price
        inst = self.maker.instrument
        if maker_fair is not None:
            self.ledger.on_fair_value(inst.venue, inst.symbol, maker_fair)
            for markout in self.markouts.on_fair_value(now, maker_fair):
                self._m_markout[markout.horizon].observe(markout.bps)
        for markout in self.markouts.advance(now):
            self._m_markout[markout.horizon].observe(markout.bps)
        leg = self.hedge
        if leg is not None:
            hedge_fair = leg.state.fair_value_price
            hinst = leg.state.instrument
            if hedge_fair is not None:
                self.ledger.on_fair_value(hinst.venue, hinst.symbol, hedge_fair)
                if maker_fair is not None:
                    leg.hedger.on_fair_values(now, maker_fair, hedge_fair)
                    self.ledger.set_netting_weight(hinst.venue, leg.hedger.netting_weight)
            self.maybe_hedge()
            unhedged_ns = leg.hedger.stats.unhedged_exposure_ns
            if unhedged_ns > self._last_unhedged_ns:
                self.metrics.unhedged_exposure_seconds.inc(
                    (unhedged_ns - self._last_unhedged_ns) / _NS
                )
                self._last_unhedged_ns = unhedged_ns
        pnl = self.ledger.pnl().as_floats()
        before = self.risk.state
        state = self.risk.update(self.ledger.net_exposure_base, pnl["total"])
        if state is not before:
            log.warning("risk_state", state=state.name, reason=self.risk.halted_reason)
            self.metrics.risk_state.set(int(state))
            if state is RiskState.HALTED:
                self.requote(0)
        self._publish(pnl)

    def _publish(self, pnl: dict[str, float]) -> None:
        m = self.metrics
        for state, fair_gauge, vol_gauge in self._m_markets:
            fair = state.fair_value_price
            if fair is not None:
                fair_gauge.set(fair)
            vol_gauge.set(state.volatility.value)
        for component, value in pnl.items():
            m.pnl_quote.labels(component).set(value)
        for venue, base in self.ledger.inventory_by_venue().items():
            m.inventory_base.labels(venue).set(base)
        m.net_exposure_base.set(self.ledger.net_exposure_base)
        m.quoting_paused.set(1 if self._paused else 0)
