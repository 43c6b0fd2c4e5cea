"""One base asset's book: the markets that quote it, its ledger, and its hedge.

Exposure nets per asset: every fill of a market quoting BTC (on any venue) and every hedge fill
of BTC's hedge instrument go into one `Ledger`, whose net exposure each of those markets skews
on and the one `Hedger` of the asset hedges. Two maker markets of the same asset therefore
share one hedge, and a buy on one and a sell on the other leave nothing to hedge.

The asset book routes its hedge instrument's market events (touch, staleness, cross-venue
reference) and its hedge orders' updates and fills, books every fill, decides hedges, and tells
its markets to requote when the exposure they skew on changes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mm_daemon.core.budget import Priority
from mm_daemon.core.filters import check_filters
from mm_daemon.core.types import (
    ExecutionEvent,
    Fill,
    FundingFee,
    Instrument,
    MarketEvent,
    MarketStatus,
    MarkPrice,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Trade,
)
from mm_daemon.engine.journal import FillOutcome, Snapshot
from mm_daemon.engine.order_state import REJECT_REASONS, reject_reason_label
from mm_daemon.log import get_logger

if TYPE_CHECKING:
    from mm_daemon.core.funding import FundingSettler
    from mm_daemon.core.hedging import Hedger
    from mm_daemon.core.inventory import Ledger
    from mm_daemon.core.market_state import MarketState
    from mm_daemon.core.quoting import HedgeDown
    from mm_daemon.core.risk import RiskGate
    from mm_daemon.engine.budget import VenueBudget
    from mm_daemon.engine.journal import Journal
    from mm_daemon.engine.metrics import Metrics
    from mm_daemon.engine.trader import MarketTrader
    from mm_daemon.venues.base import Execution

__all__ = ["AssetBook", "HedgeLeg"]

log = get_logger(__name__)

_NS = 1_000_000_000
# A restart books at most this many fills again: 0.35 s for a journal of 100k fills, against
# 5.3 s with no checkpoint (bench_journal.py).
CHECKPOINT_EVERY_FILLS = 1_000


@dataclass(slots=True)
class HedgeLeg:
    """The asset's hedge instrument as the engine sees it."""

    state: MarketState
    execution: Execution
    hedger: Hedger
    budget: VenueBudget | None = None  # the hedge venue account's order budget
    risk: RiskGate | None = None  # every hedge order passes it before it is sent


class AssetBook:
    """The ledger and hedge of one base asset, shared by every market that quotes it."""

    def __init__(
        self,
        asset: str,
        ledger: Ledger,
        metrics: Metrics,
        *,
        hedge: HedgeLeg | None = None,
        clock: Callable[[], int] = time.time_ns,
        journal: Journal | None = None,
        fills_kept_by_venue: bool = False,
    ) -> None:
        """`fills_kept_by_venue`: live, the venues' trade histories hold every fill and a
        restart reads back what the journal lacks, so fills need not be committed before they
        count (see `Journal.record_fill`)."""
        self.asset = asset
        self.ledger = ledger
        self.metrics = metrics
        self.hedge = hedge
        self.markets: list[MarketTrader] = []
        self.journal = journal
        self.fills_kept_by_venue = fills_kept_by_venue
        self.trading = True  # False while a start recovers: no hedge is sent
        self.fills_since_checkpoint = 0
        self._hedge_fills: dict[str, tuple[int, float]] = {}  # lots, slippage x lots per order
        self._clock = clock
        self.funding_settlers: dict[tuple[str, str], FundingSettler] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_unhedged_ns = 0
        self._m_net = metrics.net_exposure_base.labels(asset)
        self._m_net_notional = metrics.net_notional_quote.labels(asset)
        self._m_unhedged = metrics.unhedged_exposure_seconds.labels(asset)
        self._m_slippage = metrics.hedge_slippage_bps.labels(asset)
        if hedge is not None:
            venue = hedge.execution.venue
            self._m_hedge_orders = metrics.hedge_orders.labels(asset, venue)
            self.register_instrument(hedge.state.instrument)

    def register_instrument(self, instrument: Instrument) -> None:
        """Series exist from the start (dashboards and alerts see 0, not "no data")."""
        m = self.metrics
        venue, symbol = instrument.venue, instrument.symbol
        m.event_errors.labels(venue)
        for reason in REJECT_REASONS:
            m.order_rejects.labels(venue, reason)
        for side in ("buy", "sell"):
            for liquidity in ("maker", "taker"):
                m.fills.labels(venue, symbol, side, liquidity)
            m.fill_volume_base.labels(venue, symbol, side)

    def add_market(self, market: MarketTrader) -> None:
        self.markets.append(market)
        self.register_instrument(market.state.instrument)

    @property
    def net_exposure_base(self) -> float:
        return self.ledger.net_exposure_base

    def hedge_down(self, now_ns: int) -> HedgeDown | None:
        return self.hedge.hedger.hedge_down(now_ns) if self.hedge is not None else None

    def requote_markets(self, event_ts_ns: int) -> None:
        """The exposure every market of the asset skews on changed: each requotes."""
        for market in self.markets:
            market.requote(event_ts_ns)

    # -- the hedge instrument's market data -----------------------------------------------

    def on_hedge_market_event(self, event: MarketEvent) -> None:
        leg = self.hedge
        if leg is None:
            return
        state = leg.state
        state.on_event(event)
        if type(event) is MarketStatus:
            leg.hedger.on_venue_status(event.stale, event.reason, source="market_data")
            self.requote_markets(event.ts_local_ns)
            return
        if type(event) is not Trade:
            book = state.book
            bid, ask = book.best_bid(), book.best_ask()
            leg.hedger.on_touch(bid[0] if bid else None, ask[0] if ask else None)
        for market in self.markets:
            if market.cross_venue:
                market.on_reference_event(event)

    # -- fills and hedges ---------------------------------------------------------------------

    def book_fill(self, fill: Fill, instrument: Instrument, *, recovered: bool = False) -> bool:
        """Into the journal, then the ledger (net exposure, P&L), counted once, logged; False
        for a fill the journal has booked already (it must not count again).

        `recovered`: read back from the venue's trade history at a start, not streamed.
        """
        ledger = self.ledger
        journal = self.journal
        if journal is not None:
            marks = ledger.entry_marks(fill)
            outcome = journal.record_fill(
                self.asset,
                fill,
                marks,
                recovered=recovered,
                kept_by_venue=self.fills_kept_by_venue,
            )
            if outcome is FillOutcome.DUPLICATE:
                log.info("fill_already_booked", venue=fill.venue, trade_id=fill.trade_id)
                return False
            ledger.on_fill(fill, marks)
            self.fills_since_checkpoint += 1
            if self.fills_since_checkpoint >= CHECKPOINT_EVERY_FILLS:
                self.checkpoint(fill.ts_local_ns)
        else:
            ledger.on_fill(fill)
        side = "buy" if fill.side > 0 else "sell"
        m = self.metrics
        m.fills.labels(fill.venue, fill.symbol, side, fill.liquidity.value).inc()
        m.fill_volume_base.labels(fill.venue, fill.symbol, side).inc(
            instrument.lots_to_base(fill.size_lots)
        )
        log.info(
            "fill",
            venue=fill.venue,
            symbol=fill.symbol,
            side=side,
            price=instrument.ticks_to_price(fill.price_ticks),
            size=instrument.lots_to_size(fill.size_lots),
            liquidity=fill.liquidity.value,
            fee=fill.fee_quote,
            net_exposure_base=round(self.ledger.net_exposure_base, 8),
            recovered=recovered,
        )
        return True

    # -- funding -----------------------------------------------------------------------------

    def add_funding_settler(self, settler: FundingSettler) -> None:
        """Paper: settle funding on this perpetual from its mark price stream."""
        self.funding_settlers[(settler.venue, settler.symbol)] = settler

    def on_mark_price(self, event: MarkPrice) -> None:
        """A perpetual's mark price and funding rate: in paper mode, a funding settlement it
        reveals as due is booked on the position held now."""
        settler = self.funding_settlers.get((event.venue, event.symbol))
        if settler is None:
            return
        position = self.ledger.position(event.venue, event.symbol).base
        fee = settler.on_mark_price(event, position)
        if fee is not None:
            self.book_funding(fee)

    def book_funding(self, fee: FundingFee) -> bool:
        """Into the journal, then the ledger's funding component, counted once; False for a
        settlement the journal holds already (it must not count again)."""
        journal = self.journal
        if journal is not None and not journal.record_funding(
            self.asset,
            venue=fee.venue,
            symbol=fee.symbol,
            funding_time_ns=fee.funding_time_ns,
            amount=fee.amount_quote,
            asset=fee.asset,
            rate=fee.rate,
            position_base=fee.position_base,
        ):
            log.info("funding_already_booked", venue=fee.venue, symbol=fee.symbol)
            return False
        self.ledger.on_funding(fee.venue, fee.symbol, fee.amount_quote)
        self.metrics.funding_payments.labels(fee.venue, fee.symbol).inc()
        log.info(
            "funding",
            venue=fee.venue,
            symbol=fee.symbol,
            funding_time_ms=fee.funding_time_ns // 1_000_000,
            amount=fee.amount_quote,
            asset=fee.asset,
            rate=fee.rate,
            position_base=fee.position_base,
            payment_id=fee.payment_id,
        )
        return True

    def checkpoint(self, now_ns: int) -> None:
        """The ledger as of now into the journal: a restart books only the fills after it."""
        if self.journal is not None:
            self.journal.record_checkpoint(
                self.asset,
                now_ns,
                ledger=self.ledger.export_state(hedge_decisions=False),
                risk=None,
            )
            self.fills_since_checkpoint = 0

    def on_hedge_execution(self, event: ExecutionEvent) -> None:
        leg = self.hedge
        if leg is None:
            return
        now = self._clock()
        if type(event) is Fill:
            if not self.book_fill(event, leg.state.instrument):
                return
            if leg.budget is not None and event.client_order_id not in self._hedge_fills:
                leg.budget.on_first_fill()  # the venue stops counting an order that trades
            slippage = leg.hedger.on_fill(event)
            if slippage is not None:
                self._m_slippage.observe(slippage)
                lots, weighted = self._hedge_fills.get(event.client_order_id, (0, 0.0))
                self._hedge_fills[event.client_order_id] = (
                    lots + event.size_lots,
                    weighted + slippage * event.size_lots,
                )
            self.requote_markets(event.ts_local_ns)
        elif type(event) is OrderUpdate:
            leg.hedger.on_order_update(event, now)
            if event.status.is_terminal:
                self._hedge_finished(event)
            if event.status is OrderStatus.REJECTED:
                reason = reject_reason_label(event.reason or "rejected")
                self.metrics.order_rejects.labels(event.venue, reason).inc()
                log.warning("hedge_rejected", venue=event.venue, reason=event.reason)

    def _hedge_finished(self, update: OrderUpdate) -> None:
        lots, weighted = self._hedge_fills.pop(update.client_order_id, (0, 0.0))
        if self.journal is None or self.hedge is None:
            return
        inst = self.hedge.state.instrument
        self.journal.record_hedge_outcome(
            self.asset,
            venue=update.venue,
            symbol=update.symbol,
            client_order_id=update.client_order_id,
            status=update.status.value,
            filled_lots=update.filled_lots,
            avg_price=inst.ticks_to_price(update.price_ticks) if update.filled_lots else None,
            slippage_bps=weighted / lots if lots else None,
            reason=update.reason,
            ts_ns=update.ts_local_ns,
        )

    @property
    def held(self) -> bool:
        """No hedge is sent while an operator's kill holds the asset's markets."""
        return any(market.killed for market in self.markets)

    def maybe_hedge(self) -> None:
        leg = self.hedge
        if leg is None or not self.trading or self.held:
            return
        now = self._clock()
        intent = leg.hedger.decide(now, self.ledger.net_exposure_base)
        if intent is None:
            return
        refused = self._refusal(leg, intent.request)
        if refused is not None:
            # Hedging is impaired: the hedger counts it rejected and reports the hedge venue
            # down for a while (the quotes take the configured reaction).
            self.metrics.order_rejects.labels(intent.request.venue, refused).inc()
            log.warning("hedge_refused", asset=self.asset, reason=refused)
            leg.hedger.on_order_update(
                intent.request.as_update(OrderStatus.REJECTED, now, refused), now
            )
            return
        budget = leg.budget
        if budget is not None and not budget.try_take(Priority.HEDGE, budget.costs.place):
            leg.hedger.withdraw(intent)  # decided again once the budget allows
            return
        if self.journal is not None:
            # Durable before the order leaves: its fill is measured from this decision.
            self.journal.record_hedge_decision(self.asset, intent, now)
        self.ledger.on_hedge_intent(intent)
        self._m_hedge_orders.inc()
        request = intent.request
        log.info(
            "hedge_sent",
            asset=self.asset,
            venue=request.venue,
            side="buy" if request.side > 0 else "sell",
            size=leg.state.instrument.lots_to_size(request.size_lots),
            limit=leg.state.instrument.ticks_to_price(request.price_ticks),
        )
        task = asyncio.get_running_loop().create_task(self._send_hedge(leg, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _refusal(self, leg: HedgeLeg, request: OrderRequest) -> str | None:
        """Why the hedge venue's filters or the risk gate refuse `request` (a metric label),
        else None."""
        state = leg.state
        fair = state.fair_value_ticks or 0.0
        hedger = leg.hedger
        if check_filters(state.instrument, request, fair, open_orders=hedger.in_flight_orders - 1):
            return "filter"
        if leg.risk is None:
            return None
        inst = state.instrument
        reason = leg.risk.check(
            request,
            fair,
            hedger.in_flight_orders - 1,
            net_exposure_base=self.ledger.net_exposure_base,
            position_base=self.ledger.position(inst.venue, inst.symbol).base,
        )
        return None if reason is None else f"risk_{reason}"

    async def _send_hedge(self, leg: HedgeLeg, request: OrderRequest) -> None:
        try:
            await leg.execution.place(request)
        except Exception as exc:  # noqa: BLE001  any order-entry failure is a rejected hedge
            log.warning("hedge_order_failed", venue=request.venue, error=repr(exc))
            self.on_hedge_execution(
                request.as_update(OrderStatus.REJECTED, self._clock(), "order entry failed")
            )

    # -- periodic work -----------------------------------------------------------------------

    def on_timer(self, now_ns: int, reference_fair: float | None) -> None:
        """Hedge fair value into the ledger and the hedger's beta; hedge; account the time
        spent unhedged. `reference_fair` is the asset's first market's fair value."""
        leg = self.hedge
        if leg is None:
            return
        hedge_fair = leg.state.fair_value_price
        inst = leg.state.instrument
        if hedge_fair is not None:
            self.ledger.on_fair_value(inst.venue, inst.symbol, hedge_fair)
            if reference_fair is not None:
                leg.hedger.on_fair_values(now_ns, reference_fair, hedge_fair)
                self.ledger.set_netting_weight(inst.venue, leg.hedger.netting_weight)
        if leg.risk is not None:
            leg.risk.update(self.ledger.net_exposure_base, 0.0)
        self.maybe_hedge()
        unhedged_ns = leg.hedger.stats.unhedged_exposure_ns
        if unhedged_ns > self._last_unhedged_ns:
            self._m_unhedged.inc((unhedged_ns - self._last_unhedged_ns) / _NS)
            self._last_unhedged_ns = unhedged_ns

    def snapshot(self, now_ns: int) -> Snapshot:
        """This asset as of now, for the journal's 1 s series: the P&L of its whole ledger
        (markets and hedge), its net exposure, and its hedge instrument's market and position;
        paused while the hedge venue counts as down."""
        ledger = self.ledger
        pnl = ledger.pnl().as_floats()
        fair = bid_price = ask_price = None
        position = 0.0
        down = None
        leg = self.hedge
        if leg is not None:
            inst = leg.state.instrument
            fair = leg.state.fair_value_price
            bid, ask = leg.state.book.best_bid(), leg.state.book.best_ask()
            bid_price = inst.ticks_to_price(bid[0]) if bid else None
            ask_price = inst.ticks_to_price(ask[0]) if ask else None
            position = ledger.position(inst.venue, inst.symbol).base
            down = leg.hedger.hedge_down(now_ns)
        return Snapshot(
            market=self.asset,
            ts_ns=now_ns,
            fair_value=fair,
            best_bid=bid_price,
            best_ask=ask_price,
            quote_bid=None,
            quote_ask=None,
            position_base=position,
            net_exposure_base=ledger.net_exposure_base,
            pnl_total=pnl["total"],
            pnl_spread_capture=pnl["spread_capture"],
            pnl_fees=pnl["fees"],
            pnl_inventory=pnl["inventory"],
            pnl_hedge_cost=pnl["hedge_cost"],
            pnl_basis=pnl["basis"],
            pnl_funding=pnl.get("funding", 0.0),
            drawdown_peak=None,
            risk_state="ACTIVE",
            paused=down is not None,
            pause_reason=down.reason if down is not None else "",
        )

    def publish(self) -> None:
        net = self.ledger.net_exposure_base
        self._m_net.set(net)
        reference = self.ledger.reference
        self._m_net_notional.set(
            abs(net) * float(self.ledger.mark(reference.venue, reference.symbol))
        )
        for position in self.ledger.positions():
            inst = position.instrument
            self.metrics.inventory_base.labels(inst.venue, inst.symbol).set(position.base)

    def gross_notional_quote(self) -> float:
        """Sum of |position| x mark over the asset's instruments."""
        total = 0.0
        for position in self.ledger.positions():
            if position.lots:
                inst = position.instrument
                total += abs(position.base) * float(self.ledger.mark(inst.venue, inst.symbol))
        return total
