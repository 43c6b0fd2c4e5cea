"""Several markets in one portfolio: exposure nets per asset, hedging by asset, and the limits
over every market together."""

from __future__ import annotations

import asyncio
from dataclasses import replace

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
    BookSnapshot,
    Fill,
    Instrument,
    Liquidity,
    OrderRequest,
    OrderUpdate,
    Side,
)
from mm_daemon.engine import wiring
from mm_daemon.engine.asset import AssetBook, HedgeLeg
from mm_daemon.engine.metrics import Metrics
from mm_daemon.engine.orders import OrderManager, OrderManagerSettings
from mm_daemon.engine.portfolio import Portfolio, PortfolioLimits
from mm_daemon.engine.trader import MarketTrader
from tests.support import sample

NOW = 1_700_000_000_000_000_000
BTC_A = replace(BTC_USDT_SPOT, venue="spot-a")
BTC_B = replace(BTC_USDT_SPOT, venue="spot-b")
BTC_PERP = replace(BTC_USDT_PERP, venue="perp")
ETH = replace(
    BTC_USDT_SPOT, venue="spot-a", symbol="ETH/USDT", exchange_symbol="ETHUSDT", base="ETH",
    lot_size=0.0001,
)  # fmt: skip
ETH_PERP = replace(
    BTC_USDT_PERP, venue="perp", symbol="ETH/USDT:USDT", exchange_symbol="ETHUSDT", base="ETH",
    tick_size=0.01,
)  # fmt: skip


class Venue:
    """An Execution that records the orders it is asked for and answers nothing."""

    def __init__(self, venue: str) -> None:
        self._venue = venue
        self.placed: list[OrderRequest] = []

    @property
    def venue(self) -> str:
        return self._venue

    async def connect(self) -> None:
        return None

    async def run(self, sink: object) -> None:  # noqa: ARG002  nothing to deliver
        await asyncio.Event().wait()

    async def place(self, request: OrderRequest) -> None:
        self.placed.append(request)

    async def replace(self, old_client_order_id: str, request: OrderRequest) -> None:  # noqa: ARG002
        self.placed.append(request)

    async def cancel(self, symbol: str, client_order_id: str) -> None:
        del symbol, client_order_id

    async def cancel_all(self, symbol: str) -> None:
        del symbol

    async def open_orders(self, symbol: str) -> list[OrderUpdate]:  # noqa: ARG002
        return []

    async def close(self) -> None:
        return None


def _market(
    asset: AssetBook, instrument: Instrument, metrics: Metrics, venue: Venue, limit: float
) -> MarketTrader:
    quoting = QuotingConfig(model="fixed", spread_bps=2.0, min_spread_bps=0.5, levels=1)
    inventory = InventoryConfig(limit_base=limit)
    risk = RiskGate(wiring.risk_limits(RiskConfig(), inventory, quoting, instrument))
    return MarketTrader(
        name=f"{instrument.symbol}@{instrument.venue}",
        state=wiring.market_state(instrument, MarketDataConfig(fair_value="mid")),
        quoter=Quoter(wiring.quote_params(quoting, inventory, instrument)),
        orders=OrderManager(
            venue,
            instrument,
            OrderManagerSettings(),
            risk=risk,
            metrics=metrics,
            market=f"{instrument.symbol}@{instrument.venue}",
        ),
        markouts=MarkoutTracker(),
        risk=risk,
        asset=asset,
        metrics=metrics,
    )


def _asset(
    base: str,
    makers: list[Instrument],
    hedge: Instrument,
    metrics: Metrics,
    venues: dict[str, Venue],
) -> AssetBook:
    ledger = Ledger(makers[0])
    for instrument in makers[1:]:
        ledger.add_instrument(instrument)
    hedger = Hedger(wiring.hedge_params(HedgingConfig(threshold_base=0.02)), hedge)
    ledger.add_instrument(hedge)
    leg = HedgeLeg(
        wiring.market_state(hedge, MarketDataConfig(fair_value="mid")), venues["perp"], hedger
    )
    asset = AssetBook(base, ledger, metrics, hedge=leg)
    for instrument in makers:
        _market(asset, instrument, metrics, venues[instrument.venue], 0.1 if base == "BTC" else 2.0)
    return asset


def _portfolio(limits: PortfolioLimits | None = None) -> tuple[Portfolio, dict[str, Venue]]:
    metrics = Metrics()
    venues = {name: Venue(name) for name in ("spot-a", "spot-b", "perp")}
    btc = _asset("BTC", [BTC_A, BTC_B], BTC_PERP, metrics, venues)
    eth = _asset("ETH", [ETH], ETH_PERP, metrics, venues)
    portfolio = Portfolio([btc, eth], metrics, limits=limits)
    for inst, bid, ask in (
        (BTC_A, 6_000_000, 6_000_002),
        (BTC_B, 6_000_000, 6_000_002),
        (BTC_PERP, 600_000, 600_001),
        (ETH, 300_000, 300_002),
        (ETH_PERP, 300_000, 300_001),
    ):
        portfolio.on_market_event(
            BookSnapshot(inst.venue, inst.symbol, NOW, NOW, 1, ((bid, 10_000),), ((ask, 10_000),))
        )
    return portfolio, venues


def _fill(instrument: Instrument, side: Side, lots: int, trade: str) -> Fill:
    price = 6_000_000 if instrument.base == "BTC" else 300_000
    return Fill(
        instrument.venue, instrument.symbol, NOW, NOW, f"mm-{trade}", "1", trade, side, price,
        lots, 0.0, Liquidity.MAKER,
    )  # fmt: skip


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_buy_on_one_market_and_a_sell_on_another_of_the_asset_leave_no_hedge() -> None:
    portfolio, venues = _portfolio()
    # spot-a buys 0.03 BTC in two fills, spot-b sells 0.015 between them: alone, spot-a's
    # 0.03 would pass the 0.02 hedge threshold; netted, the asset holds 0.015.
    portfolio.on_execution_event(_fill(BTC_A, Side.BUY, 1_500, "1"))
    portfolio.on_execution_event(_fill(BTC_B, Side.SELL, 1_500, "2"))
    portfolio.on_execution_event(_fill(BTC_A, Side.BUY, 1_500, "3"))
    portfolio.on_timer()
    await _settle()
    btc = portfolio.assets[0]
    assert btc.ledger.position(BTC_A.venue, BTC_A.symbol).base == pytest.approx(0.03)
    assert btc.net_exposure_base == pytest.approx(0.015)
    assert [r for r in venues["perp"].placed if r.symbol == BTC_PERP.symbol] == []
    exported = sample(portfolio.metrics.registry, "mm_net_exposure_base", asset="BTC")
    assert exported == pytest.approx(0.015)


async def test_the_assets_exposure_is_hedged_once_whichever_market_bought_it() -> None:
    portfolio, venues = _portfolio()
    portfolio.on_execution_event(_fill(BTC_A, Side.BUY, 2_000, "1"))
    portfolio.on_execution_event(_fill(BTC_B, Side.BUY, 2_000, "2"))  # 0.04 BTC together
    await _settle()
    (hedge,) = [r for r in venues["perp"].placed if r.symbol == BTC_PERP.symbol]
    assert (hedge.side, hedge.size_lots) == (Side.SELL, 40)
    # ETH saw none of it.
    assert portfolio.assets[1].net_exposure_base == 0.0


async def test_every_market_of_an_asset_skews_on_the_assets_net_exposure() -> None:
    portfolio, _ = _portfolio()
    portfolio.on_execution_event(_fill(BTC_A, Side.BUY, 2_000, "1"))
    btc_b = portfolio.market("BTC/USDT@spot-b")
    assert btc_b is not None
    # spot-b did not trade, yet its quotes lean on the asset's long 0.02 BTC.
    assert btc_b.asset.net_exposure_base == pytest.approx(0.02)
    assert btc_b.pnl().total == 0


async def test_a_net_notional_limit_stops_the_adding_side_on_every_market_of_the_asset() -> None:
    portfolio, _ = _portfolio(PortfolioLimits(max_net_notional_quote=1_000.0))
    portfolio.on_execution_event(_fill(BTC_A, Side.BUY, 2_000, "1"))  # 0.02 BTC ~ 1,200 USDT
    portfolio.on_timer()
    for name in ("BTC/USDT@spot-a", "BTC/USDT@spot-b"):
        market = portfolio.market(name)
        assert market is not None
        assert market.risk.state is RiskState.REDUCING, name
        assert "BTC net notional" in market.risk.reason
        buy = OrderRequest(market.instrument.venue, "BTC/USDT", "x", Side.BUY, 5_999_000, 100)
        sell = OrderRequest(market.instrument.venue, "BTC/USDT", "y", Side.SELL, 6_001_000, 100)
        assert market.risk.check(buy, 6_000_001.0, 0, 0.02) == "reducing"
        assert market.risk.check(sell, 6_000_001.0, 0, 0.02) is None
    eth = portfolio.market("ETH/USDT@spot-a")
    assert eth is not None
    assert eth.risk.state is RiskState.ACTIVE


async def test_a_gross_notional_limit_reduces_every_market() -> None:
    portfolio, _ = _portfolio(PortfolioLimits(max_gross_notional_quote=1_000.0))
    portfolio.on_execution_event(_fill(BTC_A, Side.BUY, 2_000, "1"))
    portfolio.on_timer()
    assert sample(portfolio.metrics.registry, "mm_gross_notional_quote") > 1_000.0
    assert {m.risk.state for m in portfolio.markets} == {RiskState.REDUCING}


async def test_a_limit_lifted_lets_the_markets_quote_both_sides_again() -> None:
    portfolio, _ = _portfolio(PortfolioLimits(max_net_notional_quote=1_000.0))
    portfolio.on_execution_event(_fill(BTC_A, Side.BUY, 2_000, "1"))
    portfolio.on_timer()
    portfolio.on_execution_event(_fill(BTC_A, Side.SELL, 2_000, "2"))
    portfolio.on_timer()
    assert {m.risk.state for m in portfolio.markets} == {RiskState.ACTIVE}


async def test_a_portfolio_drawdown_halts_every_market() -> None:
    portfolio, _ = _portfolio(PortfolioLimits(max_drawdown_quote=5.0))
    portfolio.on_execution_event(_fill(BTC_A, Side.BUY, 1_000, "1"))  # 0.01 BTC at 60,000
    portfolio.on_timer()
    # BTC falls 1,000 USDT: 10 USDT lost on 0.01 BTC, past the 5 USDT drawdown.
    for inst, bid, ask in ((BTC_A, 5_900_000, 5_900_002), (BTC_B, 5_900_000, 5_900_002)):
        portfolio.on_market_event(
            BookSnapshot(inst.venue, inst.symbol, NOW, NOW, 2, ((bid, 10_000),), ((ask, 10_000),))
        )
    portfolio.on_timer()
    assert {m.risk.state for m in portfolio.markets} == {RiskState.HALTED}
    assert "portfolio drawdown" in portfolio.halted_reason
    assert all(
        sample(portfolio.metrics.registry, "mm_risk_state", market=m.name) == 2
        for m in portfolio.markets
    )


async def test_each_market_reports_its_own_pnl_and_the_parts_add_up() -> None:
    portfolio, _ = _portfolio()
    portfolio.on_execution_event(_fill(BTC_A, Side.BUY, 1_000, "1"))
    portfolio.on_execution_event(_fill(ETH, Side.SELL, 10_000, "2"))
    portfolio.on_timer()
    total = sum(m.pnl().total for m in portfolio.markets)
    assert float(total) == pytest.approx(portfolio.pnl()["total"])
    registry = portfolio.metrics.registry
    per_market = [
        sample(registry, "mm_market_pnl_quote", market=m.name, component="total")
        for m in portfolio.markets
    ]
    assert sum(per_market) == pytest.approx(sample(registry, "mm_pnl_quote", component="total"))
