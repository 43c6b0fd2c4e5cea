"""Hedge orders go through the risk gate and the hedge venue's order budget like every order."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from mm_daemon.binance.limits import ORDER_COSTS
from mm_daemon.config import HedgingConfig, MarketDataConfig, RiskConfig
from mm_daemon.core.budget import ActionCost, BudgetShares, LimitKind, Priority, RateLimit
from mm_daemon.core.hedging import Hedger
from mm_daemon.core.instruments import BTC_USDT_PERP, BTC_USDT_SPOT
from mm_daemon.core.inventory import Ledger
from mm_daemon.core.risk import RiskGate
from mm_daemon.core.types import BookSnapshot, Fill, Liquidity, OrderRequest, Side
from mm_daemon.engine import wiring
from mm_daemon.engine.asset import AssetBook, HedgeLeg
from mm_daemon.engine.budget import VenueBudget
from mm_daemon.engine.metrics import Metrics
from tests.support import sample

NS = 1_000_000_000
NOW = 1_700_000_005 * NS
SPOT = BTC_USDT_SPOT
PERP = replace(BTC_USDT_PERP, venue="perp")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


class Perp:
    """The hedge venue: records the orders it is asked for."""

    venue = "perp"

    def __init__(self) -> None:
        self.placed: list[OrderRequest] = []

    async def place(self, request: OrderRequest) -> None:
        self.placed.append(request)


def budget_of(clock: Clock, orders_per_10s: int, metrics: Metrics) -> VenueBudget:
    return VenueBudget(
        "perp",
        (RateLimit(LimitKind.ORDERS, 10 * NS, orders_per_10s),),
        ORDER_COSTS["usdm"],
        shares=BudgetShares(usable_fraction=1.0, hedge_reserve_fraction=0.2),
        metrics=metrics,
        clock=clock,
    )


def asset_with_hedge(
    risk: RiskConfig | None = None,
    *,
    budget_orders: int = 100,
    hedging: HedgingConfig | None = None,
    inventory_limit_base: float = 1.0,
) -> tuple[AssetBook, Perp, VenueBudget, Clock]:
    clock = Clock()
    metrics = Metrics()
    hedging = hedging or HedgingConfig(threshold_base=0.02)
    ledger = Ledger(SPOT)
    ledger.add_instrument(PERP)
    perp = Perp()
    budget = budget_of(clock, budget_orders, metrics)
    leg = HedgeLeg(
        wiring.market_state(PERP, MarketDataConfig(fair_value="mid")),
        perp,  # type: ignore[arg-type]
        Hedger(wiring.hedge_params(hedging), PERP),
        budget=budget,
        risk=RiskGate(
            wiring.hedge_risk_limits(risk or RiskConfig(), inventory_limit_base, hedging, PERP)
        ),
    )
    asset = AssetBook("BTC", ledger, metrics, hedge=leg, clock=clock)
    asset.on_hedge_market_event(
        BookSnapshot("perp", PERP.symbol, NOW, NOW, 1, ((600_000, 10_000),), ((600_001, 10_000),))
    )
    return asset, perp, budget, clock


def bought(asset: AssetBook, lots: int, trade: str = "1") -> None:
    """A maker buy of `lots` (of 0.00001 BTC) at 60,000 on the spot market."""
    asset.book_fill(
        Fill(
            "sim-spot",
            SPOT.symbol,
            NOW,
            NOW,
            f"q-{trade}",
            "1",
            trade,
            Side.BUY,
            6_000_000,
            lots,
            0.0,
            Liquidity.MAKER,
        ),
        SPOT,
    )


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_hedge_within_every_limit_is_sent() -> None:
    asset, perp, _, _ = asset_with_hedge()
    bought(asset, 4_000)  # 0.04 BTC
    asset.maybe_hedge()
    await settle()
    assert [(r.side, r.size_lots) for r in perp.placed] == [(Side.SELL, 40)]


async def test_hedge_worth_more_than_the_order_notional_limit_is_refused_and_counted() -> None:
    asset, perp, _, clock = asset_with_hedge(RiskConfig(max_order_notional_quote=1_000.0))
    bought(asset, 4_000)  # a 2,400 USDT hedge
    asset.maybe_hedge()
    await settle()
    assert perp.placed == []
    rejects = sample(
        asset.metrics.registry, "mm_order_rejects_total", venue="perp", reason="risk_order_notional"
    )
    assert rejects == 1.0
    assert asset.hedge_down(clock.now) is not None  # the quotes take the hedge-down reaction


async def test_hedge_carrying_the_hedge_position_past_its_notional_limit_is_refused() -> None:
    asset, perp, _, _ = asset_with_hedge(RiskConfig(max_position_notional_quote=2_000.0))
    bought(asset, 4_000)  # the hedge would hold -0.04 BTC: 2,400 USDT
    asset.maybe_hedge()
    await settle()
    assert perp.placed == []
    rejects = sample(
        asset.metrics.registry,
        "mm_order_rejects_total",
        venue="perp",
        reason="risk_position_notional",
    )
    assert rejects == 1.0


async def test_hedge_priced_outside_the_price_band_is_refused() -> None:
    # The IOC limit is 5 bps through the touch; the band allows 1 bp around fair value.
    asset, perp, _, _ = asset_with_hedge(RiskConfig(price_band_bps=1.0))
    bought(asset, 4_000)
    asset.maybe_hedge()
    await settle()
    assert perp.placed == []
    rejects = sample(
        asset.metrics.registry, "mm_order_rejects_total", venue="perp", reason="risk_price_band"
    )
    assert rejects == 1.0


async def test_hedge_that_reduces_exposure_passes_while_the_asset_is_reducing() -> None:
    asset, perp, _, clock = asset_with_hedge(inventory_limit_base=0.03)
    bought(asset, 4_000)  # 0.04 BTC: past the 0.03 limit, the gate is REDUCING
    asset.on_timer(clock.now, 60_000.0)
    await settle()
    assert asset.hedge is not None
    assert asset.hedge.risk is not None
    assert asset.hedge.risk.state.name == "REDUCING"
    assert [(r.side, r.size_lots) for r in perp.placed] == [(Side.SELL, 40)]


async def test_hedge_waits_for_the_budget_and_is_counted_deferred() -> None:
    asset, perp, budget, clock = asset_with_hedge(budget_orders=10)
    while budget.try_take(Priority.URGENT, ActionCost(1, 0)):
        pass
    bought(asset, 4_000)
    asset.maybe_hedge()
    await settle()
    assert perp.placed == []
    deferred = sample(
        asset.metrics.registry, "mm_order_actions_deferred_total", venue="perp", priority="hedge"
    )
    assert deferred == 1.0
    assert asset.hedge_down(clock.now) is None  # waiting for the budget is not a failure
    clock.now += 10 * NS  # the next window
    asset.maybe_hedge()
    await settle()
    assert [(r.side, r.size_lots) for r in perp.placed] == [(Side.SELL, 40)]


async def test_hedge_uses_the_reserve_that_quotes_cannot() -> None:
    asset, perp, budget, _ = asset_with_hedge(budget_orders=10)  # quotes get 8, hedges 10
    while budget.try_take(Priority.STALE, ActionCost(1, 0)):
        pass
    bought(asset, 4_000)
    asset.maybe_hedge()
    await settle()
    assert len(perp.placed) == 1


async def test_first_fill_of_a_hedge_gives_its_order_back() -> None:
    asset, perp, budget, _ = asset_with_hedge()
    bought(asset, 4_000)
    asset.maybe_hedge()
    await settle()
    (hedge,) = perp.placed
    for trade in ("h1", "h2"):
        asset.on_hedge_execution(
            Fill(
                "perp",
                PERP.symbol,
                NOW,
                NOW,
                hedge.client_order_id,
                "2",
                trade,
                Side.SELL,
                599_990,
                20,
                0.0,
                Liquidity.TAKER,
            )
        )
    assert [u.used for u in budget.usage()] == [0]


def test_hedge_risk_limits_cap_a_hedge_at_twice_the_inventory_limit() -> None:
    limits = wiring.hedge_risk_limits(RiskConfig(), 0.1, HedgingConfig(), PERP)
    assert limits.max_order_size_lots == pytest.approx(200)
