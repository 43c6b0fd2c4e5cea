"""One quoted market's trading loop: its market and order events in, quotes out.

Every handler is synchronous and runs on the event loop as the event arrives, so a book move,
trade, fill or inventory change can move the quotes at once (no fixed clock). The decisions
themselves are the pure core's (`MarketState`, `Quoter`, `RiskGate`); the market's asset book
(`engine.asset.AssetBook`) holds the ledger its quotes skew on and the hedge. This class routes
events to them, carries the quotes to the order manager, and keeps the market's metrics.

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
from typing import TYPE_CHECKING

from mm_daemon.core.pnl import COMPONENTS
from mm_daemon.core.quoting import MarketInputs, Quoter, Quotes
from mm_daemon.core.risk import RiskGate, RiskState
from mm_daemon.core.types import (
    BookDelta,
    BookSnapshot,
    ExecutionEvent,
    Fill,
    MarketEvent,
    Trade,
)
from mm_daemon.engine.journal import Snapshot
from mm_daemon.log import get_logger

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from mm_daemon.core.estimators import IntensityFit
    from mm_daemon.core.market_state import MarketState
    from mm_daemon.core.markouts import Markout, MarkoutTracker
    from mm_daemon.core.pnl import PnlBreakdown
    from mm_daemon.engine.asset import AssetBook
    from mm_daemon.engine.journal import Journal
    from mm_daemon.engine.metrics import Metrics
    from mm_daemon.engine.orders import OrderManager

__all__ = ["KILL_REASON", "OPERATOR_PAUSE", "PAUSE_REASONS", "MarketTrader"]

log = get_logger(__name__)

OPERATOR_PAUSE = "operator"
PAUSE_REASONS = frozenset(
    {"stale", "halted", "hedge_down", "volatility", "reduce_only", OPERATOR_PAUSE}
)
"""Why the quoter may quote nothing on purpose; anything else with no quotes is a fault.
`reduce_only` with nothing to reduce (REDUCING, or the hedge venue down, on a flat book) is
idle on purpose."""
KILL_REASON = "killed by an operator"
"""How an operator's kill starts its halt reason (journaled, so a restart knows it too)."""


class MarketTrader:
    """Routes one quoted market through the core; its asset book holds ledger and hedge."""

    def __init__(
        self,
        *,
        name: str,
        state: MarketState,
        quoter: Quoter,
        orders: OrderManager,
        markouts: MarkoutTracker,
        risk: RiskGate,
        asset: AssetBook,
        metrics: Metrics,
        clock: Callable[[], int] = time.time_ns,
        journal: Journal | None = None,
    ) -> None:
        self.name = name
        self.state = state
        self.instrument = state.instrument
        self.quoter = quoter
        self.orders = orders
        self.markouts = markouts
        self.risk = risk
        self.asset = asset
        self.metrics = metrics
        self.cross_venue = state.reference is not None
        self._clock = clock
        self._key = (self.instrument.venue, self.instrument.symbol)
        self._position_limited = risk.limits.max_position_notional_quote is not None
        self._fit: IntensityFit | None = None  # refitted on the timer, not per event
        self._quoted_fair: float | None = None  # fair value at the last requote
        self._deferred_ts_ns = 0  # oldest event waiting for the end-of-turn requote (0: none)
        self.paused = False  # quoting nothing on purpose (stale, halted, hedge down, volatility)
        self.pause_reason = ""
        self.trading = True  # False while a start recovers: the quotes wait for it
        self.operator_paused = False  # an operator's pause: no quotes until resumed
        self.journal = journal
        self._journaled_risk = risk.state
        m = metrics
        self._m_markout = {h: m.markout_bps.labels(name, h) for h in markouts.horizons}
        self._m_paused = m.quoting_paused.labels(name)
        self._m_risk = m.risk_state.labels(name)
        self._m_pnl = {c: m.market_pnl_quote.labels(name, c) for c in _PNL_LABELS}
        self._m_fair = m.fair_value.labels(self.instrument.venue, self.instrument.symbol)
        self._m_vol = m.volatility.labels(self.instrument.venue, self.instrument.symbol)
        m.market_up.labels(name).set(1)
        inst = self.instrument
        m.market_info.labels(name, inst.venue, inst.symbol, inst.base).set(1)
        asset.add_market(self)

    # -- market events ------------------------------------------------------------------------

    def on_market_event(self, event: MarketEvent) -> None:
        """An event of this market's own instrument."""
        self.state.on_event(event)
        kind = type(event)
        if kind is BookDelta or kind is BookSnapshot:
            self.orders.on_book_update()
        self._requote_after(event)

    def on_reference_event(self, event: MarketEvent) -> None:
        """An event of the cross-venue reference (the asset's hedge instrument)."""
        if type(event) is Trade:
            self._requote_later(event.ts_local_ns)
            return
        self.state.on_reference_update(event.ts_local_ns)
        self._requote_after(event)

    def _requote_after(self, event: MarketEvent) -> None:
        """Requote now or at the end of the loop turn (see the module docstring)."""
        kind = type(event)
        if kind is Trade:
            self._requote_later(event.ts_local_ns)
            return
        if kind is BookDelta:
            fair = self.state.fair_value_ticks
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
            self.metrics.event_errors.labels(self.instrument.venue).inc()
            log.exception("requote_failed", market=self.name)

    # -- quoting ------------------------------------------------------------------------------

    def requote(self, event_ts_ns: int) -> None:
        self._deferred_ts_ns = 0
        if not self.trading:
            return
        state = self.state
        fair = state.fair_value_ticks
        if fair is None:
            return
        if self.operator_paused:  # pulled by an operator, whatever the market says
            self.orders.set_desired(Quotes((), (), self._clock(), OPERATOR_PAUSE), fair_ticks=fair)
            self.paused, self.pause_reason = True, OPERATOR_PAUSE
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
        net = self.asset.net_exposure_base
        quotes = self.quoter.quote(inputs, net, now, self.risk.state, self.asset.hedge_down(now))
        self.orders.set_desired(
            quotes,
            fair_ticks=fair,
            net_exposure_base=net,
            event_ts_ns=event_ts_ns,
            # Exact arithmetic: read only when a position limit needs it.
            position_base=self.asset.ledger.position(*self._key).base
            if self._position_limited
            else 0.0,
        )
        self.paused = quotes.empty and quotes.reason in PAUSE_REASONS
        self.pause_reason = quotes.reason if quotes.empty else ""

    # -- order events -------------------------------------------------------------------------

    def on_execution(self, event: ExecutionEvent) -> None:
        """An order update or fill of this market's quotes."""
        if type(event) is Fill and not self.asset.book_fill(event, self.instrument):
            return  # booked before (the journal knows its trade id)
        self.orders.on_execution_event(event)
        if type(event) is Fill:
            self.markouts.on_fill(event.ts_local_ns, event.side, self.state.fair_value_price)
            # Quotes first: pulling a quote the market moved through comes before the hedge
            # (whose decision is committed to the journal before its order goes).
            self.asset.requote_markets(event.ts_local_ns)
            self.asset.maybe_hedge()

    # -- periodic work --------------------------------------------------------------------------

    def on_timer(self, now_ns: int) -> None:
        """Refit intensity, mark the ledger and markouts, re-evaluate risk, publish."""
        self._fit = self.state.intensity_fit(now_ns)
        fair = self.state.fair_value_price
        completed: list[Markout] = []
        if fair is not None:
            self.asset.ledger.on_fair_value(*self._key, fair)
            completed += self.markouts.on_fair_value(now_ns, fair)
        completed += self.markouts.advance(now_ns)
        journal = self.journal
        for markout in completed:
            self._m_markout[markout.horizon].observe(markout.bps)
            if journal is not None:
                journal.record_markout(self.name, markout, now_ns)

    def update_risk(self) -> RiskState:
        """Risk from the asset's net exposure and this market's own P&L; a change requotes."""
        before = self.risk.state
        state = self.risk.update(self.asset.net_exposure_base, float(self.pnl().total))
        if state is not before:
            log.warning("risk_state", market=self.name, state=state.name, reason=self.risk.reason)
            self._m_risk.set(int(state))
            self.requote(0)
        self.journal_risk("risk")
        return state

    @property
    def killed(self) -> bool:
        """HALTED by an operator's kill (nothing may be sent for it until a reset)."""
        risk = self.risk
        return risk.state is RiskState.HALTED and risk.halted_reason.startswith(KILL_REASON)

    def journal_risk(self, source: str) -> None:
        """Journal the risk state if it changed since it was last journaled (a halt commits
        before this returns; see `Journal.record_risk_state`)."""
        state = self.risk.state
        if self.journal is None or state is self._journaled_risk:
            return
        self._journaled_risk = state
        self.journal.record_risk_state(
            self.name, state, reason=self.risk.reason, source=source, ts_ns=self._clock()
        )

    def restore_risk(self, exported: Mapping[str, Any]) -> None:
        """Continue from a journaled risk state (a HALTED market stays HALTED)."""
        self.risk.restore_state(exported)
        self._journaled_risk = self.risk.state
        self._m_risk.set(int(self.risk.state))

    def snapshot(self, now_ns: int) -> Snapshot:
        """This market as of now, for the journal's 1 s series (what run reports plot)."""
        inst = self.instrument
        book = self.state.book
        bid, ask = book.best_bid(), book.best_ask()
        quote_bid, quote_ask = self.orders.best_prices()
        pnl = self.pnl().as_floats()
        ledger = self.asset.ledger
        return Snapshot(
            market=self.name,
            ts_ns=now_ns,
            fair_value=self.state.fair_value_price,
            best_bid=inst.ticks_to_price(bid[0]) if bid else None,
            best_ask=inst.ticks_to_price(ask[0]) if ask else None,
            quote_bid=inst.ticks_to_price(quote_bid) if quote_bid is not None else None,
            quote_ask=inst.ticks_to_price(quote_ask) if quote_ask is not None else None,
            position_base=ledger.position(*self._key).base,
            net_exposure_base=ledger.net_exposure_base,
            pnl_total=pnl["total"],
            pnl_spread_capture=pnl["spread_capture"],
            pnl_fees=pnl["fees"],
            pnl_inventory=pnl["inventory"],
            pnl_hedge_cost=pnl["hedge_cost"],
            pnl_basis=pnl["basis"],
            pnl_funding=pnl["funding"],
            drawdown_peak=self.risk.peak_pnl_quote,
            risk_state=self.risk.state.name,
            paused=self.paused,
            pause_reason=self.pause_reason if self.paused else "",
        )

    def pnl(self) -> PnlBreakdown:
        """This market's own P&L (its quoting fills; the asset's hedges are the asset's)."""
        return self.asset.ledger.pnl((self._key,))

    def publish(self) -> None:
        fair = self.state.fair_value_price
        if fair is not None:
            self._m_fair.set(fair)
        self._m_vol.set(self.state.volatility.value)
        for component, value in self.pnl().as_floats().items():
            self._m_pnl[component].set(value)
        self._m_paused.set(1 if self.paused else 0)
        self._m_risk.set(int(self.risk.state))


_PNL_LABELS = (*COMPONENTS, "total")
