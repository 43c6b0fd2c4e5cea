"""What a start does before its first quote: the books put back where the journal left them,
then every venue aligned with them. One path for every order entry (WS-API, ccxt, paper).

1. `restore`: each asset's ledger (positions, average costs, P&L components) from its latest
   checkpoint and the fills journaled after it; each market's risk state and drawdown peak
   (a HALTED market stays HALTED); the portfolio's peak and halt latch.
2. `align`, per venue and instrument, with quoting and hedging held:
   a. open orders: those whose client id carries this instance's root (any earlier run) are
      cancelled, or adopted by their market's order manager (`state.on_start: adopt`; hedge
      orders are always cancelled); others are another program's: left alone and reported;
   b. the venue's trades after the last journaled one (or after the baseline): each missing
      fill is booked once, by trade id (fills made while the daemon was down count);
   c. the venue's position against the journal's: the account's holding at this journal's
      first trade there (the baseline) plus the ledger's position. A difference beyond one lot
      is logged as an error, exported, and halts the asset's markets or is taken as the truth
      (`state.position_mismatch`). The first start on an instrument records its baseline.
3. Only then do the markets quote (`Portfolio.start_trading`); the hedger then hedges whatever
   net exposure was recovered.

Paper venues start empty: their open orders are the journal's, restored first (at the back of
their price level's queue), and their trade history is the journal itself, so (b) and (c)
have nothing to add.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from mm_daemon.core.risk import RiskState
from mm_daemon.core.types import Fill, Instrument, Liquidity, OrderStatus, OrderUpdate, Side
from mm_daemon.engine.journal import JournalError
from mm_daemon.log import get_logger

if TYPE_CHECKING:
    from mm_daemon.engine.asset import AssetBook
    from mm_daemon.engine.journal import Journal, Recovery
    from mm_daemon.engine.metrics import Metrics
    from mm_daemon.engine.portfolio import Portfolio
    from mm_daemon.engine.trader import MarketTrader
    from mm_daemon.venues.base import Execution

__all__ = ["RestartPolicy", "StartRecovery"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    instance_root: str  # every client id of every run of this instance starts with it
    on_start: str = "cancel"  # or "adopt"
    position_mismatch: str = "halt"  # or "adopt_venue"
    compare_positions: bool = True  # False for paper venues: the journal is their truth


@dataclass(slots=True)
class _Leg:
    """One instrument the portfolio trades: quoted by `market`, or `asset`'s hedge."""

    instrument: Instrument
    asset: AssetBook
    market: MarketTrader | None
    execution: Execution


class StartRecovery:
    """Restores from `recovery` (read from `journal` before this run started) and aligns the
    venues with it; see the module docstring for the order."""

    def __init__(
        self,
        portfolio: Portfolio,
        journal: Journal,
        recovery: Recovery,
        policy: RestartPolicy,
        *,
        metrics: Metrics,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.portfolio = portfolio
        self.journal = journal
        self.recovery = recovery
        self.policy = policy
        self.metrics = metrics
        self._clock = clock
        self.recovered_fills = 0
        self.cancelled: list[str] = []
        self.adopted: list[str] = []
        self.foreign: list[str] = []
        self.mismatches: dict[tuple[str, str], int] = {}  # lots: venue minus journal

    # -- 1. the journal --------------------------------------------------------------------------

    def restore(self) -> int:
        """Ledgers, risk states and the portfolio's latch; returns the fills booked again.
        Raises JournalError (one line: what to do) when the journal's ledger was kept for
        other instruments than this config trades."""
        recovery = self.recovery
        booked = 0
        for asset in self.portfolio.assets:
            try:
                booked += recovery.market(asset.asset).restore_ledger(asset.ledger)
            except (ValueError, KeyError) as exc:
                raise JournalError(
                    f"journal {self.journal.path}: the {asset.asset} ledger it keeps does not "
                    f"fit this config ({exc}); restore the config it was written with, or "
                    "start a new book with --fresh (the old journal is kept)"
                ) from None
        for market in self.portfolio.markets:
            risk = recovery.market(market.name).risk
            if risk is not None:
                market.restore_risk(risk)
                if market.risk.state is RiskState.HALTED:
                    log.warning(
                        "market_still_halted", market=market.name, reason=market.risk.reason
                    )
        if recovery.portfolio_risk is not None:
            self.portfolio.restore_state(recovery.portfolio_risk)
        if booked or recovery.markets:
            log.info(
                "journal_restored",
                fills_booked_again=booked,
                positions={
                    f"{p.instrument.symbol}@{p.instrument.venue}": p.base
                    for a in self.portfolio.assets
                    for p in a.ledger.positions()
                },
                net_exposure={
                    a.asset: round(a.net_exposure_base, 8) for a in self.portfolio.assets
                },
                pnl=self.portfolio.pnl(),
            )
        return booked

    # -- 2. the venues ---------------------------------------------------------------------------

    async def align(self, executions: Mapping[tuple[str, str], Execution]) -> None:
        """Open orders, missed fills and positions of every instrument, venue by venue;
        `executions` by (venue, symbol)."""
        legs = self._legs(executions)
        for leg in legs:
            await self._orders(leg)
        for leg in legs:
            await self._missed_fills(leg)
        if self.policy.compare_positions:
            for leg in legs:
                await self._position(leg)

    def _legs(self, executions: Mapping[tuple[str, str], Execution]) -> list[_Leg]:
        legs: list[_Leg] = []
        for asset in self.portfolio.assets:
            for market in asset.markets:
                inst = market.instrument
                legs.append(_Leg(inst, asset, market, executions[(inst.venue, inst.symbol)]))
            if asset.hedge is not None:
                inst = asset.hedge.state.instrument
                legs.append(_Leg(inst, asset, None, executions[(inst.venue, inst.symbol)]))
        return legs

    async def _orders(self, leg: _Leg) -> None:
        inst = leg.instrument
        root = self.policy.instance_root
        adopt: list[OrderUpdate] = []
        for update in await leg.execution.open_orders(inst.symbol):
            client_id = update.client_order_id
            if not client_id.startswith(root):
                self.foreign.append(client_id)
                self.metrics.orphan_orders.labels(inst.venue, "left").inc()
                log.warning(
                    "foreign_open_order",
                    venue=inst.venue,
                    symbol=inst.symbol,
                    client_order_id=client_id,
                    note="not this instance's: left alone",
                )
                continue
            if leg.market is not None and self.policy.on_start == "adopt":
                adopt.append(update)
                continue
            await leg.execution.cancel(inst.symbol, client_id)
            if leg.market is not None:
                # No order manager knows it, so none journals its end: the journal would
                # count it open (and give a paper venue it back) at every later start.
                now = self._clock()
                self.journal.record_order_update(
                    leg.market.name,
                    replace(
                        update,
                        status=OrderStatus.CANCELLED,
                        ts_exchange_ns=now,
                        ts_local_ns=now,
                        reason="cancelled at start",
                    ),
                )
            self.cancelled.append(client_id)
            self.metrics.orphan_orders.labels(inst.venue, "cancelled").inc()
            log.info("orphan_order_cancelled", venue=inst.venue, client_order_id=client_id)
        if adopt and leg.market is not None:
            leg.market.orders.adopt(adopt)
            self.adopted.extend(u.client_order_id for u in adopt)
            self.metrics.orphan_orders.labels(inst.venue, "adopted").inc(len(adopt))
            log.info(
                "orphan_orders_adopted",
                market=leg.market.name,
                client_order_ids=[u.client_order_id for u in adopt],
            )

    async def _missed_fills(self, leg: _Leg) -> None:
        inst = leg.instrument
        key = (inst.venue, inst.symbol)
        mark = self.recovery.last_trades.get(key)
        baseline = self.recovery.baselines.get(key)
        if mark is None and baseline is None:
            return  # this journal never traded it: its history is not ours
        after = mark.trade_id if mark is not None else baseline.last_trade_id if baseline else ""
        fills = await leg.execution.trades_since(inst.symbol, after_trade_id=after)
        hedge = leg.asset.hedge if leg.market is None else None
        for found in fills:
            fill = found
            if hedge is not None:
                # The venue's history has no client ids: a fill of the hedge instrument is a
                # hedge, whichever run sent it.
                fill = replace(found, client_order_id=f"{hedge.hedger.client_id_prefix}recovered")
            if leg.asset.book_fill(fill, inst, recovered=True):
                self.recovered_fills += 1
                self.metrics.recovered_fills.labels(inst.venue).inc()
        if fills:
            log.info(
                "missed_fills_booked",
                venue=inst.venue,
                symbol=inst.symbol,
                after_trade_id=after,
                fills=len(fills),
            )

    async def _position(self, leg: _Leg) -> None:
        inst = leg.instrument
        key = (inst.venue, inst.symbol)
        held = await leg.execution.account_position(inst.symbol)
        ledger_lots = leg.asset.ledger.position(*key).lots
        baseline = self.recovery.baselines.get(key)
        if baseline is None:
            self.journal.record_baseline(
                inst.venue,
                inst.symbol,
                lots=held.lots - ledger_lots,
                last_trade_id=held.last_trade_id,
                ts_ns=self._clock(),
            )
            self.metrics.reconcile_position_diff_base.labels(*key).set(0.0)
            return
        diff = held.lots - (baseline.lots + ledger_lots)
        beyond_a_lot = abs(diff) > 1
        gauge = self.metrics.reconcile_position_diff_base.labels(*key)
        gauge.set(inst.lots_to_base(diff) if beyond_a_lot else 0.0)
        if not beyond_a_lot:
            return
        self.mismatches[key] = diff
        reason = (
            f"position mismatch on {inst.symbol}@{inst.venue}: the venue holds "
            f"{inst.lots_to_base(held.lots - baseline.lots):g} {inst.base} for this instance, "
            f"the journal {inst.lots_to_base(ledger_lots):g}"
        )
        log.error(
            "position_mismatch",
            venue=inst.venue,
            symbol=inst.symbol,
            venue_lots=held.lots,
            baseline_lots=baseline.lots,
            journal_lots=ledger_lots,
            diff_base=inst.lots_to_base(diff),
            action=self.policy.position_mismatch,
        )
        if self.policy.position_mismatch == "adopt_venue" and self._book_adjustment(leg, diff):
            return
        for market in leg.asset.markets:
            market.risk.halt(reason)
            market.journal_risk("reconcile")

    def _book_adjustment(self, leg: _Leg, diff_lots: int) -> bool:
        """Take the venue's position as the truth: a fill of the difference at the mark, with
        no fee (it moves the position, not the P&L of the moment). False without a mark."""
        inst = leg.instrument
        ledger = leg.asset.ledger
        now = self._clock()
        mark_ticks = round(float(ledger.mark(inst.venue, inst.symbol)) / inst.tick_size)
        if mark_ticks <= 0:
            return False
        fill = Fill(
            inst.venue,
            inst.symbol,
            now,
            now,
            "",
            "",
            f"adjust-{now}",
            Side.BUY if diff_lots > 0 else Side.SELL,
            mark_ticks,
            abs(diff_lots),
            0.0,
            Liquidity.TAKER,
        )
        leg.asset.book_fill(fill, inst, recovered=True)
        log.warning(
            "position_adopted_from_venue",
            venue=inst.venue,
            symbol=inst.symbol,
            adjustment_base=inst.lots_to_base(diff_lots),
        )
        return True
