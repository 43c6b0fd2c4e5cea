"""The trader: every market event may move the quotes; fills move inventory, skew and hedges."""

from __future__ import annotations

import asyncio
import math
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
from mm_daemon.core.risk import RiskGate
from mm_daemon.core.types import (
    BookDelta,
    BookSnapshot,
    ExecutionEvent,
    Fill,
    Liquidity,
    MarketEvent,
    MarketStatus,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    Trade,
)
from mm_daemon.engine import wiring
from mm_daemon.engine.asset import AssetBook, HedgeLeg
from mm_daemon.engine.metrics import Metrics
from mm_daemon.engine.orders import OrderManager, OrderManagerSettings
from mm_daemon.engine.portfolio import Portfolio
from mm_daemon.engine.trader import MarketTrader
from tests.support import sample

SPOT = replace(BTC_USDT_SPOT, venue="spot")
PERP = replace(BTC_USDT_PERP, venue="perp")
NOW = 1_700_000_000_000_000_000


class RecordingExecution:
    """An Execution that records what it is asked to do and answers nothing."""

    def __init__(self, venue: str) -> None:
        self._venue = venue
        self.placed: list[OrderRequest] = []
        self.replaced: list[tuple[str, OrderRequest]] = []
        self.cancelled: list[str] = []

    @property
    def venue(self) -> str:
        return self._venue

    async def connect(self) -> None:
        return None

    async def run(self, sink: object) -> None:  # noqa: ARG002  nothing to deliver
        await asyncio.Event().wait()

    async def place(self, request: OrderRequest) -> None:
        self.placed.append(request)

    async def replace(self, old_client_order_id: str, request: OrderRequest) -> None:
        self.replaced.append((old_client_order_id, request))

    async def cancel(self, symbol: str, client_order_id: str) -> None:  # noqa: ARG002
        self.cancelled.append(client_order_id)

    async def cancel_all(self, symbol: str) -> None:  # noqa: ARG002  one symbol only
        return None

    async def open_orders(self, symbol: str) -> list[OrderUpdate]:  # noqa: ARG002  one symbol
        return []

    async def close(self) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


def _symbol(venue: str) -> str:
    return SPOT.symbol if venue == "spot" else PERP.symbol


def _snapshot(venue: str, bid: int, ask: int, ts: int = NOW, size: int = 100_000) -> BookSnapshot:
    return BookSnapshot(
        venue,
        _symbol(venue),
        ts,
        ts,
        1,
        ((bid, size), (bid - 1, size)),
        ((ask, size), (ask + 1, size)),
    )


def _fill(venue: str, side: Side, price: int, lots: int, cid: str = "x-1") -> Fill:
    return Fill(
        venue, _symbol(venue), NOW, NOW, cid, "1", "t1", side, price, lots, 0.0, Liquidity.MAKER
    )


class Rig:
    """One market (and its asset's hedge) in a portfolio, driven as the daemon drives it."""

    def __init__(self, portfolio: Portfolio) -> None:
        self.portfolio = portfolio
        self.market: MarketTrader = portfolio.markets[0]
        self.asset: AssetBook = portfolio.assets[0]
        self.metrics = portfolio.metrics

    def on_market_event(self, event: MarketEvent) -> None:
        self.portfolio.on_market_event(event)

    def on_execution(self, event: ExecutionEvent) -> None:
        self.portfolio.on_execution_event(event)

    def on_timer(self) -> None:
        self.portfolio.on_timer()

    @property
    def ledger(self) -> Ledger:
        return self.asset.ledger

    @property
    def hedge(self) -> HedgeLeg | None:
        return self.asset.hedge


def _build(
    *,
    hedge: bool = False,
    quoting: QuotingConfig | None = None,
    hedging: HedgingConfig | None = None,
) -> tuple[Rig, RecordingExecution, RecordingExecution | None, Clock]:
    clock = Clock()
    quoting = quoting or QuotingConfig(model="fixed", spread_bps=2.0, min_spread_bps=0.5, levels=1)
    inventory = InventoryConfig(limit_base=0.1)
    maker_state = wiring.market_state(SPOT, MarketDataConfig(fair_value="mid"))
    maker_exec = RecordingExecution("spot")
    metrics = Metrics()
    risk = RiskGate(wiring.risk_limits(RiskConfig(), inventory, quoting, SPOT))
    orders = OrderManager(
        maker_exec,
        SPOT,
        OrderManagerSettings(price_tolerance_ticks=1),
        risk=risk,
        metrics=metrics,
        clock=clock,
    )
    ledger = Ledger(SPOT, {"spot": 1.0})
    leg = None
    hedge_exec = None
    if hedge:
        hedge_exec = RecordingExecution("perp")
        hedger = Hedger(wiring.hedge_params(hedging or HedgingConfig(threshold_base=0.02)), PERP)
        ledger.add_instrument(PERP)
        ledger.set_netting_weight("perp", hedger.netting_weight)
        hedge_state = wiring.market_state(PERP, MarketDataConfig(fair_value="mid"))
        leg = HedgeLeg(hedge_state, hedge_exec, hedger)
    asset = AssetBook("BTC", ledger, metrics, hedge=leg, clock=clock)
    MarketTrader(
        name="BTC/USDT@spot",
        state=maker_state,
        quoter=Quoter(wiring.quote_params(quoting, inventory, SPOT)),
        orders=orders,
        markouts=MarkoutTracker(),
        risk=risk,
        asset=asset,
        metrics=metrics,
        clock=clock,
    )
    return Rig(Portfolio([asset], metrics, clock=clock)), maker_exec, hedge_exec, clock


def _half_spread_ticks(fair: float, bps: float) -> float:
    return fair * bps * 1e-4 / 2


def _ack_all(trader: Rig, execution: RecordingExecution) -> None:
    requests = [*execution.placed, *(r for _, r in execution.replaced)]
    for request in requests:
        trader.on_execution(
            OrderUpdate(
                "spot",
                SPOT.symbol,
                NOW,
                NOW,
                request.client_order_id,
                "1",
                OrderStatus.OPEN,
                request.side,
                request.price_ticks,
                request.size_lots,
                0,
            )
        )


async def _settle() -> None:
    # Order actions run as tasks; let every ready task run once.
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_book_event_puts_quotes_on_both_sides_around_fair_value() -> None:
    trader, execution, _, _ = _build()
    trader.on_market_event(_snapshot("spot", 6_000_000, 6_000_002))
    await _settle()
    sides = {r.side: r for r in execution.placed}
    assert set(sides) == {Side.BUY, Side.SELL}
    # Fair 6_000_001 ticks, 2 bps wide: 600.0001 ticks each side, rounded outward.
    half = _half_spread_ticks(6_000_001, 2.0)
    assert sides[Side.BUY].price_ticks == math.floor(6_000_001 - half) == 5_999_400
    assert sides[Side.SELL].price_ticks == math.ceil(6_000_001 + half) == 6_000_602
    assert all(r.order_type is OrderType.LIMIT_MAKER for r in execution.placed)


async def test_a_move_beyond_tolerance_replaces_the_quotes() -> None:
    trader, execution, _, _ = _build()
    trader.on_market_event(_snapshot("spot", 6_000_000, 6_000_002))
    await _settle()
    _ack_all(trader, execution)
    trader.on_market_event(_snapshot("spot", 6_000_100, 6_000_102))
    await _settle()
    half = _half_spread_ticks(6_000_101, 2.0)
    assert {r.price_ticks for _, r in execution.replaced} == {
        math.floor(6_000_101 - half),
        math.ceil(6_000_101 + half),
    }


class CountingQuoter:
    """Wraps the trader's quoter and counts the requotes."""

    def __init__(self, quoter: Quoter) -> None:
        self._quoter = quoter
        self.calls = 0

    def quote(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        return self._quoter.quote(*args, **kwargs)  # type: ignore[arg-type]


def _delta(
    bids: tuple[tuple[int, int], ...], asks: tuple[tuple[int, int], ...], uid: int
) -> BookDelta:
    return BookDelta("spot", SPOT.symbol, NOW, NOW, uid, uid, uid - 1, bids, asks)


def _trade(price: int, trade_id: int) -> Trade:
    return Trade("spot", SPOT.symbol, NOW, NOW, trade_id, price, 1_000, Side.BUY)


async def _quoted_and_acked() -> tuple[Rig, RecordingExecution, CountingQuoter]:
    trader, execution, _, _ = _build()
    trader.on_market_event(_snapshot("spot", 6_000_000, 6_000_002))
    await _settle()
    _ack_all(trader, execution)
    counting = CountingQuoter(trader.market.quoter)
    trader.market.quoter = counting  # type: ignore[assignment]
    return trader, execution, counting


async def test_a_burst_of_trades_and_small_book_changes_is_requoted_once_after_the_turn() -> None:
    trader, execution, counting = await _quoted_and_acked()
    for i in range(5):
        trader.on_market_event(_trade(6_000_002, 100 + i))
    for i in range(3):  # sizes change at the touch; the mid stays put
        trader.on_market_event(_delta(((6_000_000, 90_000 - i),), (), 10 + i))
    assert counting.calls == 0  # nothing requoted inside the burst
    await asyncio.sleep(0)
    assert counting.calls == 1  # one requote, after everything read in the turn
    await _settle()
    assert counting.calls == 1
    assert not execution.replaced  # the quotes did not move past the tolerance


async def test_a_book_move_past_the_tolerance_is_requoted_before_the_handler_returns() -> None:
    trader, execution, counting = await _quoted_and_acked()
    trader.on_market_event(_trade(6_000_002, 100))  # due at the end of the turn
    trader.on_market_event(
        _delta(
            ((6_000_100, 100_000),),
            ((6_000_002, 0), (6_000_003, 0), (6_000_102, 100_000)),
            10,
        )
    )
    # Both replaces are on their way before control returns to the loop.
    assert counting.calls == 1
    half = _half_spread_ticks(6_000_101, 2.0)
    assert {r.price_ticks for _, r in execution.replaced} == {
        math.floor(6_000_101 - half),
        math.ceil(6_000_101 + half),
    }
    await _settle()
    assert counting.calls == 1  # the trade's end-of-turn requote was covered by that one


async def test_a_filled_bid_returns_at_its_price_after_the_next_book_update_not_a_trade() -> None:
    trader, execution, _ = await _quoted_and_acked()
    bid = next(r for r in execution.placed if r.side is Side.BUY)
    trader.on_execution(
        _fill("spot", Side.BUY, bid.price_ticks, bid.size_lots, bid.client_order_id)
    )
    for i in range(3):  # prints from the same view of the book
        trader.on_market_event(_trade(6_000_002, 100 + i))
        await _settle()
    assert [r.side for r in execution.placed].count(Side.BUY) == 1
    trader.on_market_event(_delta(((6_000_000, 90_000),), (), 10))  # the book, published
    await _settle()
    bids = [r for r in execution.placed if r.side is Side.BUY]
    assert len(bids) == 2
    assert bids[1].price_ticks == bid.price_ticks


async def test_a_stale_market_pulls_every_quote() -> None:
    trader, execution, _, _ = _build()
    trader.on_market_event(_snapshot("spot", 6_000_000, 6_000_002))
    await _settle()
    _ack_all(trader, execution)
    trader.on_market_event(MarketStatus("spot", SPOT.symbol, NOW, stale=True, reason="silent"))
    await _settle()
    assert sorted(execution.cancelled) == sorted(r.client_order_id for r in execution.placed)


async def test_a_fill_moves_inventory_and_skews_quotes_down() -> None:
    quoting = QuotingConfig(
        model="linear_skew", spread_bps=2.0, min_spread_bps=0.5, skew_bps_per_base=10.0, levels=1
    )
    trader, execution, _, _ = _build(quoting=quoting)
    trader.on_market_event(_snapshot("spot", 6_000_000, 6_000_002))
    await _settle()
    _ack_all(trader, execution)
    bid = next(r for r in execution.placed if r.side is Side.BUY)
    trader.on_execution(_fill("spot", Side.BUY, bid.price_ticks, 1000, bid.client_order_id))
    await _settle()
    assert trader.ledger.net_exposure_base == pytest.approx(0.01)
    # Long 0.01 BTC at 10 bps per BTC: reservation 0.1 bp (60 ticks) lower.
    replaced_asks = [r for _, r in execution.replaced if r.side is Side.SELL]
    assert replaced_asks
    skew = 6_000_001 * 0.1 * 1e-4
    expected = math.ceil(6_000_001 - skew + _half_spread_ticks(6_000_001, 2.0))
    assert replaced_asks[-1].price_ticks == expected


async def test_exposure_past_threshold_sends_one_ioc_hedge_and_not_twice() -> None:
    trader, _, hedge_exec, _ = _build(hedge=True)
    assert hedge_exec is not None
    trader.on_market_event(_snapshot("perp", 600_000, 600_001))
    trader.on_market_event(_snapshot("spot", 6_000_000, 6_000_002))
    trader.on_execution(_fill("spot", Side.BUY, 5_999_500, 3000))  # 0.03 BTC long
    trader.on_execution(_fill("spot", Side.BUY, 5_999_500, 100))
    await _settle()
    (hedge,) = hedge_exec.placed
    assert hedge.side is Side.SELL
    assert hedge.order_type is OrderType.IOC
    # 0.03 BTC down to target 0 in 0.001 lots; the next 0.001 BTC stays under the threshold
    # once the in-flight hedge is counted, so no second hedge.
    assert hedge.size_lots == 30
    assert hedge.client_order_id.startswith("hdg-")


async def test_a_failed_hedge_order_counts_as_rejected_and_releases_the_exposure() -> None:
    trader, _, hedge_exec, clock = _build(hedge=True)
    assert hedge_exec is not None

    async def failing_place(request: OrderRequest) -> None:
        raise ConnectionError("venue unreachable")

    hedge_exec.place = failing_place  # type: ignore[method-assign]
    trader.on_market_event(_snapshot("perp", 600_000, 600_001))
    trader.on_market_event(_snapshot("spot", 6_000_000, 6_000_002))
    trader.on_execution(_fill("spot", Side.BUY, 5_999_500, 3000))
    await _settle()
    assert trader.hedge is not None
    hedger = trader.hedge.hedger
    assert hedger.stats.rejects == 1
    assert hedger.in_flight_orders == 0
    assert hedger.is_down(clock.now)


async def test_an_event_that_fails_is_counted_and_skipped_not_fatal() -> None:
    trader, execution, _, _ = _build()
    stray = Fill("spot", "DOGE/USDT", NOW, NOW, "x", "1", "t", Side.BUY, 1, 1, 0.0, Liquidity.MAKER)
    trader.on_execution(stray)
    trader.on_market_event(_snapshot("spot", 6_000_000, 6_000_002))
    await _settle()
    assert sample(trader.metrics.registry, "mm_event_errors_total", venue="spot") == 1
    assert len(execution.placed) == 2


async def test_a_stale_market_reports_quoting_paused_and_recovery_clears_it() -> None:
    trader, _, _, _ = _build()
    trader.on_market_event(_snapshot("spot", 6_000_000, 6_000_002))
    trader.on_timer()
    assert sample(trader.metrics.registry, "mm_quoting_paused", market="BTC/USDT@spot") == 0
    trader.on_market_event(MarketStatus("spot", SPOT.symbol, NOW, stale=True, reason="silent"))
    trader.on_timer()
    assert sample(trader.metrics.registry, "mm_quoting_paused", market="BTC/USDT@spot") == 1
    trader.on_market_event(MarketStatus("spot", SPOT.symbol, NOW, stale=False, reason="synced"))
    trader.on_timer()
    assert sample(trader.metrics.registry, "mm_quoting_paused", market="BTC/USDT@spot") == 0
    await _settle()


async def test_each_maker_fill_counts_once_in_the_fill_counters() -> None:
    trader, execution, _, _ = _build()
    trader.on_market_event(_snapshot("spot", 6_000_000, 6_000_002))
    await _settle()
    _ack_all(trader, execution)
    bid = next(r for r in execution.placed if r.side is Side.BUY)
    for trade in ("t1", "t2", "t3"):
        fill = _fill("spot", Side.BUY, bid.price_ticks, 100, bid.client_order_id)
        trader.on_execution(replace(fill, trade_id=trade))
    await _settle()
    registry = trader.metrics.registry
    labels = {"venue": "spot", "symbol": SPOT.symbol, "side": "buy"}
    assert sample(registry, "mm_fills_total", liquidity="maker", **labels) == 3
    volume = sample(registry, "mm_fill_volume_base_total", **labels)
    assert volume == pytest.approx(3 * SPOT.lots_to_base(100))


async def test_reduce_only_with_nothing_to_reduce_reports_quoting_paused() -> None:
    # The hedge venue has no book yet: it counts as down, and the default reaction quotes only
    # the side that reduces exposure; flat, that is no side at all, on purpose.
    trader, _, _, _ = _build(hedge=True)
    trader.on_market_event(_snapshot("spot", 6_000_000, 6_000_002))
    trader.on_timer()
    assert trader.market.pause_reason == "reduce_only"
    assert sample(trader.metrics.registry, "mm_quoting_paused", market="BTC/USDT@spot") == 1
    await _settle()
