"""Every market of the daemon together: event routing, the periodic work, portfolio limits.

Market events and order events arrive per venue; each is routed by (venue, symbol) to the
market that quotes that instrument, or to the asset book that hedges with it (and first, in
paper mode, to the paper venue that fills against the public flow). The timer marks every
market, hedges every asset, then applies the limits over all of them:

- total gross notional (sum of |position| x fair value over every instrument): past it every
  market quotes only the side that reduces its asset's exposure;
- net notional per asset (|net exposure| x fair value): past it the side that adds to the
  asset's exposure stops on every market of that asset;
- a drawdown of the total P&L from its peak: every market is HALTED.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from mm_daemon.core.pnl import COMPONENTS
from mm_daemon.core.risk import RiskState
from mm_daemon.core.types import ExecutionEvent, MarketEvent, MarkPrice
from mm_daemon.log import get_logger

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from mm_daemon.engine.asset import AssetBook
    from mm_daemon.engine.journal import Journal
    from mm_daemon.engine.metrics import Metrics
    from mm_daemon.engine.trader import MarketTrader

__all__ = ["Portfolio", "PortfolioLimits"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PortfolioLimits:
    max_gross_notional_quote: float | None = None
    max_net_notional_quote: float | None = None
    max_drawdown_quote: float | None = None


class Portfolio:
    """The markets and asset books of one daemon, and the limits over all of them."""

    def __init__(
        self,
        assets: list[AssetBook],
        metrics: Metrics,
        *,
        limits: PortfolioLimits | None = None,
        paper_feeds: dict[tuple[str, str], Callable[[MarketEvent], None]] | None = None,
        clock: Callable[[], int] = time.time_ns,
        journal: Journal | None = None,
    ) -> None:
        self.assets = assets
        self.markets: list[MarketTrader] = [m for a in assets for m in a.markets]
        self.metrics = metrics
        self.limits = limits or PortfolioLimits()
        self._paper_feeds = paper_feeds or {}
        self._clock = clock
        self._markets_by_key = {(m.instrument.venue, m.instrument.symbol): m for m in self.markets}
        self._hedges_by_key = {
            (a.hedge.state.instrument.venue, a.hedge.state.instrument.symbol): a
            for a in assets
            if a.hedge is not None
        }
        self._assets_by_key = {
            (p.instrument.venue, p.instrument.symbol): a
            for a in assets
            for p in a.ledger.positions()
        }
        self._peak_pnl: float | None = None
        self.halted_reason = ""
        self.journal = journal
        self._last_checkpoint_ns = 0
        self.market_events = 0
        self._m_pnl = {c: metrics.pnl_quote.labels(c) for c in (*COMPONENTS, "total")}

    def asset_of(self, venue: str, symbol: str) -> AssetBook | None:
        """The asset book whose ledger holds the instrument (its funding is booked there)."""
        return self._assets_by_key.get((venue, symbol))

    def market(self, name: str) -> MarketTrader | None:
        return next((m for m in self.markets if m.name == name), None)

    # -- events -------------------------------------------------------------------------------

    def on_market_event(self, event: MarketEvent) -> None:
        """Every venue's market-data sink."""
        try:
            self.market_events += 1
            key = (event.venue, event.symbol)
            if type(event) is MarkPrice:
                # Funding only: no book, quote or paper fill reads a mark price.
                owner = self._assets_by_key.get(key)
                if owner is not None:
                    owner.on_mark_price(event)
                return
            feed = self._paper_feeds.get(key)
            if feed is not None:
                feed(event)  # paper fills see the public flow before we requote on it
            market = self._markets_by_key.get(key)
            if market is not None:
                market.on_market_event(event)
            asset = self._hedges_by_key.get(key)
            if asset is not None:
                asset.on_hedge_market_event(event)
        except Exception:  # noqa: BLE001  one bad event is logged and skipped, never fatal
            self._event_failed(event.venue, type(event).__name__)

    def on_execution_event(self, event: ExecutionEvent) -> None:
        """Every venue's execution sink (order updates and fills of any of its symbols)."""
        try:
            key = (event.venue, event.symbol)
            market = self._markets_by_key.get(key)
            if market is not None:
                market.on_execution(event)
                return
            asset = self._hedges_by_key.get(key)
            if asset is not None:
                asset.on_hedge_execution(event)
                return
            # An order of this account on an instrument no market trades: another program's,
            # or a config that changed; counted and left alone.
            self.metrics.event_errors.labels(event.venue).inc()
            log.warning("unrouted_order_event", venue=event.venue, symbol=event.symbol)
        except Exception:  # noqa: BLE001  one bad event is logged and skipped, never fatal
            self._event_failed(event.venue, type(event).__name__)

    def _event_failed(self, venue: str, kind: str) -> None:
        self.metrics.event_errors.labels(venue).inc()
        log.exception("event_failed", venue=venue, kind=kind)  # noqa: LOG004  called from the handlers' except blocks

    # -- periodic work ------------------------------------------------------------------------

    def on_timer(self) -> None:
        """Mark, hedge, apply the limits, publish (every `TIMER_INTERVAL_SECONDS`)."""
        now = self._clock()
        for market in self.markets:
            market.on_timer(now)
        for asset in self.assets:
            reference = asset.markets[0].state.fair_value_price if asset.markets else None
            asset.on_timer(now, reference)
        self._apply_limits()
        for market in self.markets:
            market.update_risk()
        self.publish()

    def pnl(self) -> dict[str, float]:
        """The portfolio's P&L by component and total, in quote (every asset's ledger)."""
        totals = dict.fromkeys((*COMPONENTS, "total"), Fraction(0))
        for asset in self.assets:
            breakdown = asset.ledger.pnl()
            for component in COMPONENTS:
                totals[component] += getattr(breakdown, component)
            totals["total"] += breakdown.total
        return {name: float(value) for name, value in totals.items()}

    def gross_notional_quote(self) -> float:
        return sum(asset.gross_notional_quote() for asset in self.assets)

    def _apply_limits(self) -> None:
        limits = self.limits
        total = self.pnl()["total"]
        if self._peak_pnl is None or total > self._peak_pnl:
            self._peak_pnl = total
        drawdown = self._peak_pnl - total
        if (
            limits.max_drawdown_quote is not None
            and drawdown > limits.max_drawdown_quote
            and not self.halted_reason
        ):
            self.halted_reason = (
                f"portfolio drawdown {drawdown:.2f} beyond portfolio.max_drawdown_quote "
                f"{limits.max_drawdown_quote:g}"
            )
            log.error("portfolio_halted", reason=self.halted_reason)
            if self.journal is not None:
                self.journal.record_risk_state(
                    None,
                    RiskState.HALTED,
                    reason=self.halted_reason,
                    source="portfolio",
                    ts_ns=self._clock(),
                )
            for market in self.markets:
                market.risk.halt(self.halted_reason)
                market.journal_risk("portfolio")
        gross = self.gross_notional_quote()
        self.metrics.gross_notional_quote.set(gross)
        gross_reason = ""
        if limits.max_gross_notional_quote is not None and gross > limits.max_gross_notional_quote:
            gross_reason = (
                f"portfolio gross notional {gross:.0f} beyond {limits.max_gross_notional_quote:g}"
            )
        for asset in self.assets:
            reason = gross_reason
            if limits.max_net_notional_quote is not None:
                reference = asset.ledger.reference
                mark = float(asset.ledger.mark(reference.venue, reference.symbol))
                net_notional = abs(asset.net_exposure_base) * mark
                if net_notional > limits.max_net_notional_quote:
                    reason = (
                        f"{asset.asset} net notional {net_notional:.0f} beyond "
                        f"portfolio.max_net_notional_quote {limits.max_net_notional_quote:g}"
                    )
            for market in asset.markets:
                market.risk.constrain(reason)

    def halt(self, reason: str, *, source: str = "operator") -> None:
        """HALT every market and every hedge (an operator's kill switch, a journal that
        cannot write)."""
        for asset in self.assets:
            if asset.hedge is not None and asset.hedge.risk is not None:
                asset.hedge.risk.halt(reason)
        for market in self.markets:
            market.risk.halt(reason)
            market.journal_risk(source)
            market.requote(0)

    def reset_halt(self) -> list[str]:
        """Every HALTED market and the portfolio's drawdown latch leave HALTED (an operator's
        reset, journaled); drawdowns count from the next P&L. Returns the markets reset."""
        reset = []
        for market in self.markets:
            if market.risk.state is RiskState.HALTED:
                market.risk.reset()
                market.journal_risk("operator")
                reset.append(market.name)
        if self.halted_reason and self.journal is not None:
            self.journal.record_risk_state(
                None, RiskState.ACTIVE, reason="", source="operator", ts_ns=self._clock()
            )
        self.halted_reason = ""
        self._peak_pnl = None
        for market in self.markets:
            market.requote(0)
        return reset

    # -- restart state -----------------------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        """The portfolio's own risk state: its drawdown peak and halt latch."""
        return {
            "state": "HALTED" if self.halted_reason else "ACTIVE",
            "halted_reason": self.halted_reason,
            "peak_pnl_quote": self._peak_pnl,
        }

    def restore_state(self, state: Mapping[str, Any]) -> None:
        peak = state.get("peak_pnl_quote")
        self._peak_pnl = None if peak is None else float(peak)
        self.halted_reason = (
            str(state.get("halted_reason") or "") if state.get("state") == "HALTED" else ""
        )

    def start_trading(self) -> None:
        """The start has recovered: markets quote and assets hedge from now on."""
        for asset in self.assets:
            asset.trading = True
        for market in self.markets:
            market.trading = True
            market.requote(0)

    def stop_trading(self) -> None:
        """Nothing quotes or hedges until `start_trading` (a start recovering)."""
        for asset in self.assets:
            asset.trading = False
        for market in self.markets:
            market.trading = False

    def persist(self, now_ns: int, *, checkpoint_every_ns: int = 60 * 1_000_000_000) -> None:
        """Each market's snapshot (once a second, from the daemon's timer) and, every
        `checkpoint_every_ns`, the checkpoints a restart starts from."""
        journal = self.journal
        if journal is None:
            return
        for market in self.markets:
            journal.record_snapshot(market.snapshot(now_ns))
        if now_ns - self._last_checkpoint_ns >= checkpoint_every_ns:
            self.checkpoint(now_ns)

    def checkpoint(self, now_ns: int) -> None:
        """Every ledger, every market's risk and the portfolio's, as of now."""
        journal = self.journal
        if journal is None:
            return
        self._last_checkpoint_ns = now_ns
        for asset in self.assets:
            asset.checkpoint(now_ns)
        for market in self.markets:
            journal.record_checkpoint(
                market.name, now_ns, ledger=None, risk=market.risk.export_state()
            )
        journal.record_checkpoint(None, now_ns, ledger=None, risk=self.export_state())

    def publish(self) -> None:
        for component, value in self.pnl().items():
            self._m_pnl[component].set(value)
        for market in self.markets:
            market.publish()
        for asset in self.assets:
            asset.publish()

    @property
    def halted(self) -> bool:
        return all(m.risk.state is RiskState.HALTED for m in self.markets)
