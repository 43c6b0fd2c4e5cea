"""A start's recovery (engine.restart): the journal's books put back, then each venue aligned
with them: an earlier run's orders cancelled or adopted, fills made while down booked once,
positions compared. Against a real journal file; the venue is a scripted one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from mm_daemon.config import (
    HedgingConfig,
    InventoryConfig,
    MarketDataConfig,
    QuotingConfig,
    RiskConfig,
)
from mm_daemon.core.hedging import Hedger
from mm_daemon.core.instruments import BTC_USDT_PERP, BTC_USDT_SPOT
from mm_daemon.core.inventory import Ledger
from mm_daemon.core.markouts import MarkoutTracker
from mm_daemon.core.quoting import Quoter
from mm_daemon.core.risk import RiskGate, RiskState
from mm_daemon.core.types import (
    AccountPosition,
    BookSnapshot,
    Fill,
    Liquidity,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Side,
)
from mm_daemon.engine import wiring
from mm_daemon.engine.asset import AssetBook, HedgeLeg
from mm_daemon.engine.client_ids import hedge_prefix, instance_root, quote_prefix, run_prefix
from mm_daemon.engine.journal import Journal
from mm_daemon.engine.metrics import Metrics
from mm_daemon.engine.orders import OrderManager, OrderManagerSettings
from mm_daemon.engine.portfolio import Portfolio
from mm_daemon.engine.restart import RestartPolicy, StartRecovery
from mm_daemon.engine.trader import MarketTrader
from tests.support import sample

NOW = 1_700_000_000_000_000_000
SPOT = replace(BTC_USDT_SPOT, venue="spot")
PERP = replace(BTC_USDT_PERP, venue="perp")
INSTANCE = "test-instance"
ROOT = instance_root(INSTANCE)
MARKET = f"{SPOT.symbol}@{SPOT.venue}"


@dataclass
class ScriptedVenue:
    """An Execution whose account state the test writes: open orders, trade history,
    position; it records what it is asked to do."""

    name: str
    open: list[OrderUpdate] = field(default_factory=list)
    trades: list[Fill] = field(default_factory=list)
    lots: int = 0
    cancelled: list[str] = field(default_factory=list)
    placed: list[OrderRequest] = field(default_factory=list)
    replaced: list[tuple[str, OrderRequest]] = field(default_factory=list)

    @property
    def venue(self) -> str:
        return self.name

    async def connect(self) -> None:
        return None

    async def run(self, sink: object) -> None:  # noqa: ARG002  nothing streams here
        await asyncio.Event().wait()

    async def place(self, request: OrderRequest) -> None:
        self.placed.append(request)

    async def replace(self, old_client_order_id: str, request: OrderRequest) -> None:
        self.replaced.append((old_client_order_id, request))

    async def cancel(self, symbol: str, client_order_id: str) -> None:
        del symbol
        self.cancelled.append(client_order_id)
        self.open = [u for u in self.open if u.client_order_id != client_order_id]

    async def cancel_all(self, symbol: str) -> None:
        del symbol
        self.open.clear()

    async def open_orders(self, symbol: str) -> list[OrderUpdate]:
        return [u for u in self.open if u.symbol == symbol]

    async def order_status(self, symbol: str, client_order_id: str) -> OrderUpdate | None:
        del symbol, client_order_id
        return None

    async def trades_since(
        self,
        symbol: str,
        *,
        order_id: str = "",
        client_order_id: str = "",
        after_trade_id: str = "",
    ) -> list[Fill]:
        del order_id, client_order_id
        after = int(after_trade_id) if after_trade_id else -1
        return [f for f in self.trades if f.symbol == symbol and int(f.trade_id) > after]

    async def account_position(self, symbol: str) -> AccountPosition:
        last = max((int(f.trade_id) for f in self.trades if f.symbol == symbol), default=None)
        return AccountPosition(self.name, symbol, self.lots, "" if last is None else str(last))

    async def close(self) -> None:
        return None


@dataclass
class Run:
    """One start of the daemon's books over a journal file."""

    portfolio: Portfolio
    journal: Journal
    recovery: StartRecovery
    metrics: Metrics
    spot: ScriptedVenue
    perp: ScriptedVenue

    @property
    def market(self) -> MarketTrader:
        return self.portfolio.markets[0]

    @property
    def asset(self) -> AssetBook:
        return self.portfolio.assets[0]

    async def align(self) -> None:
        await self.recovery.align(
            {(SPOT.venue, SPOT.symbol): self.spot, (PERP.venue, PERP.symbol): self.perp}
        )


def start(
    path: Path,
    spot: ScriptedVenue | None = None,
    perp: ScriptedVenue | None = None,
    *,
    on_start: str = "cancel",
    position_mismatch: str = "halt",
    max_drawdown_quote: float = 1_000.0,
) -> Run:
    """What the daemon does at a start, without its sockets: open, read, start the run, build
    the books with this run's client ids, restore them."""
    metrics = Metrics()
    journal = Journal.open(path)
    recovered = journal.recover()
    journal.register_instrument(SPOT)
    journal.register_instrument(PERP)
    run = run_prefix(ROOT, journal.start_run(mode="live", instance_id=INSTANCE, config_yaml="",
                                             ts_ns=NOW))  # fmt: skip
    spot = spot or ScriptedVenue("spot")
    perp = perp or ScriptedVenue("perp")
    hedges_as = hedge_prefix(run, 0)
    ledger = Ledger(SPOT, hedge_client_id_prefix=hedges_as)
    hedger = Hedger(
        wiring.hedge_params(HedgingConfig(threshold_base=0.02)), PERP, client_id_prefix=hedges_as
    )
    ledger.add_instrument(PERP)
    leg = HedgeLeg(wiring.market_state(PERP, MarketDataConfig(fair_value="mid")), perp, hedger)
    asset = AssetBook("BTC", ledger, metrics, hedge=leg, journal=journal)
    quoting = QuotingConfig(model="fixed", spread_bps=2.0, min_spread_bps=0.5, levels=1)
    inventory = InventoryConfig(limit_base=0.1)
    risk = RiskGate(
        wiring.risk_limits(
            RiskConfig(max_drawdown_quote=max_drawdown_quote), inventory, quoting, SPOT
        )
    )
    MarketTrader(
        name=MARKET,
        state=wiring.market_state(SPOT, MarketDataConfig(fair_value="mid")),
        quoter=Quoter(wiring.quote_params(quoting, inventory, SPOT)),
        orders=OrderManager(
            spot,
            SPOT,
            OrderManagerSettings(),
            risk=risk,
            metrics=metrics,
            client_id_prefix=quote_prefix(run, 0),
            market=MARKET,
            journal=journal,
        ),
        markouts=MarkoutTracker(),
        risk=risk,
        asset=asset,
        metrics=metrics,
        journal=journal,
    )
    portfolio = Portfolio([asset], metrics, journal=journal)
    recovery = StartRecovery(
        portfolio,
        journal,
        recovered,
        RestartPolicy(ROOT, on_start=on_start, position_mismatch=position_mismatch),
        metrics=metrics,
    )
    recovery.restore()
    portfolio.stop_trading()
    return Run(portfolio, journal, recovery, metrics, spot, perp)


def book(run: Run, bid: int = 6_000_000, ask: int = 6_000_002) -> None:
    for inst, b, a in ((SPOT, bid, ask), (PERP, bid // 10, ask // 10 + 1)):
        run.portfolio.on_market_event(
            BookSnapshot(inst.venue, inst.symbol, NOW, NOW, 1, ((b, 10_000),), ((a, 10_000),))
        )


def fill(trade_id: int, side: Side, lots: int, *, price: int = 6_000_000, client: str = "") -> Fill:
    return Fill(
        SPOT.venue, SPOT.symbol, NOW + trade_id, NOW + trade_id, client or f"{ROOT}1_q0-1",
        str(100 + trade_id), str(trade_id), side, price, lots, 0.01, Liquidity.MAKER,
    )  # fmt: skip


def resting(client_id: str, side: Side, price: int, lots: int = 1_000) -> OrderUpdate:
    return OrderUpdate(
        SPOT.venue, SPOT.symbol, NOW, NOW, client_id, "9", OrderStatus.OPEN, side, price, lots, 0
    )


def first_run_with_fills(path: Path) -> Run:
    run = start(path)
    book(run)
    for trade_id, side, lots in ((1, Side.BUY, 3_000), (2, Side.BUY, 2_000), (3, Side.SELL, 1_000)):
        run.portfolio.on_execution_event(fill(trade_id, side, lots))
    run.portfolio.on_timer()
    return run


def test_a_restart_continues_the_ledger_exactly(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    first = first_run_with_fills(path)
    expected = first.asset.ledger.export_state()
    expected_pnl = first.asset.ledger.pnl()
    first.journal.close()  # no end_run, no checkpoint: as after a kill

    second = start(path)
    book(second)  # the same fair values as before the kill
    second.portfolio.on_timer()
    assert second.asset.ledger.export_state() == expected
    assert second.asset.ledger.pnl() == expected_pnl
    assert second.asset.net_exposure_base == pytest.approx(0.04)


def test_a_fill_booked_before_the_restart_does_not_count_again(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    first_run_with_fills(path).journal.close()
    second = start(path)
    book(second)
    second.portfolio.on_execution_event(fill(2, Side.BUY, 2_000))  # replayed by the venue
    assert second.asset.net_exposure_base == pytest.approx(0.04)
    counted = sample(
        second.metrics.registry,
        "mm_fills_total",
        default=0.0,
        venue="spot",
        symbol=SPOT.symbol,
        side="buy",
        liquidity="maker",
    )
    assert counted == 0.0


def test_a_halted_market_stays_halted_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    first = start(path)
    first.market.risk.halt("drawdown 12.00 beyond max_drawdown_quote 10")
    first.market.journal_risk("risk")
    first.journal.close()

    second = start(path, max_drawdown_quote=1e9)
    assert second.market.risk.state is RiskState.HALTED
    assert "drawdown" in second.market.risk.reason
    book(second)
    second.portfolio.start_trading()
    second.portfolio.on_timer()
    assert second.market.risk.state is RiskState.HALTED
    assert second.spot.placed == []


def test_an_operator_reset_is_what_a_restart_remembers(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    first = start(path)
    first.market.risk.halt("operator kill")
    first.market.journal_risk("operator")
    first.market.risk.reset()
    first.market.journal_risk("operator")
    first.journal.close()
    assert start(path).market.risk.state is RiskState.ACTIVE


async def test_an_earlier_runs_orders_are_cancelled_and_another_programs_left(
    tmp_path: Path,
) -> None:
    spot = ScriptedVenue("spot")
    spot.open = [
        resting(f"{ROOT}1_q0-4", Side.BUY, 5_999_000),
        resting(f"{ROOT}1_q0-5", Side.SELL, 6_001_000),
        resting("web_8f3a", Side.BUY, 5_990_000),
    ]
    run = start(tmp_path / "j.journal", spot)
    await run.align()
    assert sorted(spot.cancelled) == [f"{ROOT}1_q0-4", f"{ROOT}1_q0-5"]
    assert [u.client_order_id for u in spot.open] == ["web_8f3a"]
    registry = run.metrics.registry
    assert sample(registry, "mm_orphan_orders_total", venue="spot", action="cancelled") == 2
    assert sample(registry, "mm_orphan_orders_total", venue="spot", action="left") == 1


async def test_adopted_orders_are_managed_by_their_market(tmp_path: Path) -> None:
    spot = ScriptedVenue("spot")
    adopted = f"{ROOT}1_q0-4"
    spot.open = [resting(adopted, Side.BUY, 5_990_000, lots=1_000)]
    run = start(tmp_path / "j.journal", spot, on_start="adopt")
    await run.align()
    assert spot.cancelled == []
    assert [o.client_order_id for o in run.market.orders.live_orders()] == [adopted]
    book(run)
    run.portfolio.start_trading()
    await asyncio.sleep(0)
    # The quotes want a bid near 6,000,000: the adopted bid far below is moved, not left.
    assert [old for old, _ in spot.replaced] == [adopted]
    assert sample(run.metrics.registry, "mm_orphan_orders_total", venue="spot",
                  action="adopted") == 1  # fmt: skip


async def test_fills_made_while_down_are_booked_once(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    first = first_run_with_fills(path)
    first.journal.close()
    spot = ScriptedVenue("spot")
    # The venue's history: the three journaled trades, then two made while the daemon was down.
    spot.trades = [
        fill(1, Side.BUY, 3_000),
        fill(2, Side.BUY, 2_000),
        fill(3, Side.SELL, 1_000),
        fill(4, Side.SELL, 500, client=""),
        fill(5, Side.BUY, 1_500, client=""),
    ]
    second = start(path, spot)
    await second.align()
    assert second.recovery.recovered_fills == 2
    assert second.asset.net_exposure_base == pytest.approx(0.05)
    assert sample(second.metrics.registry, "mm_recovered_fills_total", venue="spot") == 2
    second.journal.close()

    third = start(path, spot)
    await third.align()
    assert third.recovery.recovered_fills == 0
    assert third.asset.net_exposure_base == pytest.approx(0.05)


async def test_the_first_start_takes_the_accounts_holding_as_its_baseline(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    spot = ScriptedVenue("spot", lots=7_000)  # held before this instance ever traded
    run = start(path, spot)
    await run.align()
    assert run.recovery.mismatches == {}
    run.journal.close()

    again = start(path, spot)
    await again.align()
    assert again.recovery.mismatches == {}
    assert again.market.risk.state is RiskState.ACTIVE


async def test_a_position_the_journal_does_not_explain_halts_the_asset(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    spot = ScriptedVenue("spot", lots=7_000)
    first = start(path, spot)
    await first.align()
    first.journal.close()
    spot.lots = 9_500  # 2,500 lots (0.025 BTC) more than baseline + journal say

    second = start(path, spot)
    await second.align()
    assert second.recovery.mismatches == {("spot", SPOT.symbol): 2_500}
    assert second.market.risk.state is RiskState.HALTED
    assert "position mismatch" in second.market.risk.reason
    diff = sample(second.metrics.registry, "mm_reconcile_position_diff_base", venue="spot",
                  symbol=SPOT.symbol)  # fmt: skip
    assert diff == pytest.approx(0.025)


async def test_adopt_venue_takes_the_venues_position(tmp_path: Path) -> None:
    path = tmp_path / "j.journal"
    spot = ScriptedVenue("spot", lots=7_000)
    first = first_run_with_fills(path)  # the journal holds 4,000 lots
    first.journal.close()
    spot.lots = 7_000 + 4_000 + 2_500

    # The baseline is recorded at a start that sees 7,000 + 4,000 (the journal's own fills).
    baseline = start(path, ScriptedVenue("spot", lots=11_000))
    book(baseline)
    await baseline.align()
    baseline.journal.close()

    second = start(path, spot, position_mismatch="adopt_venue")
    book(second)
    await second.align()
    assert second.market.risk.state is not RiskState.HALTED
    assert second.asset.ledger.position(SPOT.venue, SPOT.symbol).lots == 4_000 + 2_500
