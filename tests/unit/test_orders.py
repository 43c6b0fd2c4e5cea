"""The order manager: churn control, in-flight states, limits, reconciliation, shutdown."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field, replace

import pytest

from mm_daemon.binance.limits import ORDER_COSTS
from mm_daemon.config import QuotingConfig, RiskConfig
from mm_daemon.core.budget import ActionCost, BudgetShares, LimitKind, Priority, RateLimit
from mm_daemon.core.quoting import MarketInputs, QuoteParams, Quoter, Quotes
from mm_daemon.core.risk import RiskGate, RiskLimits
from mm_daemon.core.types import (
    Fill,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Side,
)
from mm_daemon.engine.budget import VenueBudget
from mm_daemon.engine.metrics import Metrics
from mm_daemon.engine.order_state import LiveOrder, adopted_orders
from mm_daemon.engine.orders import OrderManager, OrderManagerSettings
from mm_daemon.venues.base import ExecutionSink
from tests.support import sample

NS = 1_000_000_000
INSTRUMENT = Instrument(
    "paper", "BTC/USDT", "BTCUSDT", InstrumentKind.SPOT, "BTC", "USDT", 0.01, 0.001
)
SETTINGS = OrderManagerSettings(
    price_tolerance_ticks=5,
    price_tolerance_bps=0.0,
    size_tolerance_fraction=0.2,
    max_order_age_ns=60 * NS,
    order_timeout_ns=2 * NS,
    max_open_orders_per_side=2,
)


@dataclass
class FakeExecution:
    """Records every call; answers open_orders from what the test says is open."""

    venue: str = "paper"
    calls: list[tuple[str, object]] = field(default_factory=list)
    open: list[OrderUpdate] = field(default_factory=list)
    fail_places: bool = False
    replaced: asyncio.Event = field(default_factory=asyncio.Event)

    async def connect(self) -> None:
        return None

    async def run(self, sink: ExecutionSink) -> None:
        self.calls.append(("run", sink))

    async def place(self, request: OrderRequest) -> None:
        self.calls.append(("place", request))
        if self.fail_places:
            raise ConnectionError("socket closed")

    async def replace(self, old_client_order_id: str, request: OrderRequest) -> None:
        self.calls.append(("replace", (old_client_order_id, request)))
        self.replaced.set()

    async def cancel(self, symbol: str, client_order_id: str) -> None:
        assert symbol == "BTC/USDT"
        self.calls.append(("cancel", client_order_id))

    async def cancel_all(self, symbol: str) -> None:
        self.calls.append(("cancel_all", symbol))
        self.open.clear()

    async def open_orders(self, symbol: str) -> list[OrderUpdate]:
        self.calls.append(("open_orders", symbol))
        return list(self.open)

    async def close(self) -> None:
        return None

    def actions(self) -> list[str]:
        return [name for name, _ in self.calls]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000 * NS

    def __call__(self) -> int:
        return self.now


def quotes_at(fair: float, size_base: float = 0.01) -> Quotes:
    quoter = Quoter(
        QuoteParams(model="fixed", order_size_base=size_base, lot_base=0.001, spread_bps=4.0)
    )
    return quoter.quote(MarketInputs(fair, None, None), 0.0, 0)


def manager(
    execution: FakeExecution,
    clock: Clock,
    settings: OrderManagerSettings = SETTINGS,
    **kwargs: object,
) -> OrderManager:
    return OrderManager(
        execution,
        INSTRUMENT,
        settings,
        clock=clock,
        client_id_prefix="mmtest",
        **kwargs,  # type: ignore[arg-type]
    )


def ack_all(om: OrderManager) -> None:
    for order in om.live_orders():
        if order.status is OrderStatus.PENDING_NEW:
            om.on_execution_event(update(order.client_order_id, OrderStatus.OPEN, order.side))


def update(
    client_id: str, status: OrderStatus, side: Side = Side.BUY, filled: int = 0, reason: str = ""
) -> OrderUpdate:
    return OrderUpdate(
        "paper", "BTC/USDT", 0, 0, client_id, "x" + client_id, status, side, 1, 10, filled, reason
    )


async def settled(om: OrderManager, execution: FakeExecution) -> list[str]:
    await om.drain()
    return execution.actions()


async def test_first_desired_quotes_place_one_order_per_quote() -> None:
    execution, clock = FakeExecution(), Clock()
    om = manager(execution, clock)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    assert await settled(om, execution) == ["place", "place"]
    sides = sorted(o.side for o in om.live_orders())
    assert sides == [Side.SELL, Side.BUY]


async def test_fair_value_move_below_tolerance_leaves_orders_alone() -> None:
    execution, clock = FakeExecution(), Clock()
    om = manager(execution, clock)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    ack_all(om)
    # 3 ticks of fair value; rounded outward the quotes move 1 and 4 ticks, below 5.
    om.set_desired(quotes_at(6_000_003.0), fair_ticks=6_000_003.0)
    assert await settled(om, execution) == ["place", "place"]


async def test_fair_value_move_past_tolerance_replaces_both_orders() -> None:
    execution, clock = FakeExecution(), Clock()
    om = manager(execution, clock)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    ack_all(om)
    old_ids = {o.client_order_id for o in om.live_orders()}
    om.set_desired(quotes_at(6_000_006.0), fair_ticks=6_000_006.0)  # 6 ticks >= 5
    assert await settled(om, execution) == ["place", "place", "replace", "replace"]
    replaced = {call[1][0] for call in execution.calls if call[0] == "replace"}  # type: ignore[index]
    assert replaced == old_ids


async def test_size_change_beyond_tolerance_replaces_and_within_does_not() -> None:
    execution, clock = FakeExecution(), Clock()
    om = manager(execution, clock)
    om.set_desired(quotes_at(6_000_000.0, 0.010), fair_ticks=6_000_000.0)
    ack_all(om)
    om.set_desired(quotes_at(6_000_000.0, 0.011), fair_ticks=6_000_000.0)  # 10 %
    assert (await settled(om, execution)).count("replace") == 0
    om.set_desired(quotes_at(6_000_000.0, 0.013), fair_ticks=6_000_000.0)  # 30 %
    assert (await settled(om, execution)).count("replace") == 2


async def test_order_older_than_max_age_is_replaced() -> None:
    execution, clock = FakeExecution(), Clock()
    om = manager(execution, clock)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    ack_all(om)
    clock.now += 61 * NS
    om.sync()
    assert (await settled(om, execution)).count("replace") == 2


async def test_side_no_longer_desired_is_cancelled() -> None:
    execution, clock = FakeExecution(), Clock()
    om = manager(execution, clock)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    ack_all(om)
    full = quotes_at(6_000_000.0)
    om.set_desired(Quotes(full.bids, (), 0), fair_ticks=6_000_000.0)
    assert (await settled(om, execution))[-1] == "cancel"
    pending = [o for o in om.live_orders() if o.status is OrderStatus.PENDING_CANCEL]
    assert [o.side for o in pending] == [Side.SELL]


async def test_pending_new_order_is_not_replaced_before_its_ack() -> None:
    execution, clock = FakeExecution(), Clock()
    om = manager(execution, clock)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    om.set_desired(quotes_at(6_000_100.0), fair_ticks=6_000_100.0)
    assert await settled(om, execution) == ["place", "place"]


async def test_never_more_live_orders_per_side_than_configured() -> None:
    execution, clock = FakeExecution(), Clock()
    om = manager(execution, clock)
    three_levels = Quoter(
        QuoteParams(
            model="fixed",
            order_size_base=0.01,
            lot_base=0.001,
            levels=3,
            level_spacing_bps=1.0,
        )
    ).quote(MarketInputs(6_000_000.0, None, None), 0.0, 0)
    om.set_desired(three_levels, fair_ticks=6_000_000.0)
    await om.drain()
    assert len(om.live_orders(Side.BUY)) == 2
    assert len(om.live_orders(Side.SELL)) == 2


def budget_of(clock: Clock, orders_per_10s: int, metrics: Metrics | None = None) -> VenueBudget:
    """A spot budget allowing quotes `orders_per_10s` new orders per 10 s window (the whole
    limit usable, no hedge reserve, refreshes up to half of it)."""
    return VenueBudget(
        "paper",
        (RateLimit(LimitKind.ORDERS, 10 * NS, orders_per_10s),),
        ORDER_COSTS["spot"],
        shares=BudgetShares(usable_fraction=1.0, hedge_reserve_fraction=0.0, refresh_fraction=0.5),
        metrics=metrics,
        clock=clock,
    )


def exhaust(budget: VenueBudget) -> None:
    while budget.try_take(Priority.HEDGE, ActionCost(1, 0)):
        pass


def settle_cancels(om: OrderManager) -> None:
    for order in list(om.live_orders()):
        if order.status is OrderStatus.PENDING_CANCEL:
            om.on_execution_event(update(order.client_order_id, OrderStatus.CANCELLED))


async def test_budget_holds_new_orders_under_a_burst_and_the_latest_desired_state_wins() -> None:
    execution, clock = FakeExecution(), Clock()
    om = manager(execution, clock, budget=budget_of(clock, 5))
    start = clock.now
    for i in range(1_000):  # 1000 events in 0.1 s, each moving fair value by 10 ticks
        clock.now = start + i * 100_000
        om.set_desired(quotes_at(6_000_000.0 + 10 * i), fair_ticks=6_000_000.0 + 10 * i)
        ack_all(om)
        settle_cancels(om)
    await om.drain()
    new_orders = [a for a in execution.actions() if a in {"place", "replace"}]
    assert len(new_orders) == 5
    assert om.deferred_count > 0
    clock.now = start + 10 * NS  # the next 10 s window
    om.sync()
    await om.drain()
    last = quotes_at(6_000_000.0 + 10 * 999)
    live = {o.side: o.price_ticks for o in om.live_orders() if o.status is OrderStatus.PENDING_NEW}
    assert live == {Side.BUY: last.bids[0].price_ticks, Side.SELL: last.asks[0].price_ticks}


async def test_quote_the_market_moved_through_is_cancelled_first_when_no_order_is_left() -> None:
    execution, clock = FakeExecution(), Clock()
    budget = budget_of(clock, 10)
    om = manager(execution, clock, budget=budget)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    ack_all(om)
    exhaust(budget)
    bid = om.live_orders(Side.BUY)[0]
    before = len(execution.calls)
    # Fair value falls below our bid: the bid is about to be picked off.
    om.set_desired(quotes_at(5_998_000.0), fair_ticks=5_998_000.0)
    await om.drain()
    actions = execution.calls[before:]
    assert actions[0] == ("cancel", bid.client_order_id)
    assert not [name for name, _ in actions if name in {"place", "replace"}]


async def test_stale_quote_is_cancelled_now_and_placed_when_the_budget_allows() -> None:
    execution, clock = FakeExecution(), Clock()
    budget = budget_of(clock, 10)
    om = manager(execution, clock, budget=budget)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    ack_all(om)
    exhaust(budget)
    before = len(execution.calls)
    om.set_desired(quotes_at(6_000_100.0), fair_ticks=6_000_100.0)  # 100 ticks: off, not through
    settle_cancels(om)
    await om.drain()
    assert sorted(name for name, _ in execution.calls[before:]) == ["cancel", "cancel"]
    clock.now += 10 * NS  # the next window
    om.sync()
    await om.drain()
    wanted = quotes_at(6_000_100.0)
    placed = {r.side: r.price_ticks for name, r in execution.calls if name == "place"}
    assert placed == {Side.BUY: wanted.bids[0].price_ticks, Side.SELL: wanted.asks[0].price_ticks}


async def test_size_refresh_waits_past_the_refresh_share_while_a_stale_quote_is_replaced() -> None:
    execution, clock = FakeExecution(), Clock()
    budget = budget_of(clock, 10)  # refreshes up to 5 orders a window, stale quotes up to 10
    om = manager(execution, clock, replace(SETTINGS, max_open_orders_per_side=1), budget=budget)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)  # 2 orders
    ack_all(om)
    for _ in range(4):  # 6 of 10 used: past the refresh share
        assert budget.try_take(Priority.STALE, ActionCost(1, 0))
    bid_only = Quotes(quotes_at(6_000_000.0).bids, quotes_at(6_000_100.0, 0.02).asks, 0)
    before = len(execution.calls)
    om.set_desired(bid_only, fair_ticks=6_000_000.0)  # the ask is off and bigger: replaced
    sized = Quotes(quotes_at(6_000_000.0, 0.02).bids, bid_only.asks, 0)
    ack_all(om)
    om.set_desired(sized, fair_ticks=6_000_000.0)  # the bid only bigger: a refresh
    await om.drain()
    replaced = [call[1] for name, call in execution.calls[before:] if name == "replace"]
    assert [r.side for r in replaced] == [Side.SELL]
    assert budget.deferred[Priority.REFRESH] >= 1


async def test_first_fill_of_an_order_gives_its_order_back_to_the_budget() -> None:
    execution, clock = FakeExecution(), Clock()
    budget = budget_of(clock, 10)
    om = manager(execution, clock, budget=budget)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    ack_all(om)
    bid = om.live_orders(Side.BUY)[0]
    for _ in range(2):  # two partial fills: one order given back
        om.on_execution_event(
            Fill(
                "paper",
                "BTC/USDT",
                0,
                0,
                bid.client_order_id,
                "x",
                "t",
                Side.BUY,
                bid.price_ticks,
                1,
                0.0,
                Liquidity.MAKER,
            )
        )
    assert [u.used for u in budget.usage()] == [1]


async def test_deferred_actions_are_counted_by_priority() -> None:
    execution, clock = FakeExecution(), Clock()
    metrics = Metrics()
    budget = budget_of(clock, 10, metrics)
    om = manager(execution, clock, budget=budget)
    exhaust(budget)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)  # two places wanted
    await om.drain()
    sample_value = metrics.registry.get_sample_value(
        "mm_order_actions_deferred_total", {"venue": "paper", "priority": "stale"}
    )
    assert sample_value == 2.0


def _quoted_with_bid_filled() -> tuple[FakeExecution, OrderManager, LiveOrder]:
    """Both quotes placed and acknowledged, then the bid filled in full."""
    execution = FakeExecution()
    om = manager(execution, Clock())
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    ack_all(om)
    bid = om.live_orders(Side.BUY)[0]
    om.on_execution_event(
        Fill("paper", "BTC/USDT", 0, 0, bid.client_order_id, "", "t1", Side.BUY,
             bid.price_ticks, bid.size_lots, 0.0, Liquidity.MAKER)
    )  # fmt: skip
    return execution, om, bid


async def test_filled_order_leaves_its_level_to_a_new_order_after_the_next_book_update() -> None:
    execution, om, bid = _quoted_with_bid_filled()
    assert om.get(bid.client_order_id).status is OrderStatus.FILLED  # type: ignore[union-attr]
    # The market just took our bid there: the same price from the same view waits.
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    assert (await settled(om, execution)).count("place") == 2
    om.on_book_update()
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    assert (await settled(om, execution)).count("place") == 3
    assert om.live_orders(Side.BUY)[0].price_ticks == bid.price_ticks


async def test_after_a_fill_a_bid_below_the_fill_price_goes_at_once() -> None:
    execution, om, bid = _quoted_with_bid_filled()
    om.set_desired(quotes_at(5_999_000.0), fair_ticks=5_999_000.0)  # skewed down by the fill
    await settled(om, execution)
    bids = om.live_orders(Side.BUY)
    assert len(bids) == 1
    assert bids[0].price_ticks < bid.price_ticks


async def test_partial_fill_marks_the_order_partially_filled() -> None:
    execution, clock = FakeExecution(), Clock()
    om = manager(execution, clock)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    ack_all(om)
    bid = om.live_orders(Side.BUY)[0]
    om.on_execution_event(update(bid.client_order_id, OrderStatus.PARTIALLY_FILLED, filled=3))
    assert bid.status is OrderStatus.PARTIALLY_FILLED
    assert bid.remaining_lots == bid.size_lots - 3
    await om.drain()


async def test_rejected_order_is_counted_and_forgotten() -> None:
    execution, clock, metrics = FakeExecution(), Clock(), Metrics()
    om = manager(execution, clock, metrics=metrics)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    bid = om.live_orders(Side.BUY)[0]
    om.on_execution_event(
        update(bid.client_order_id, OrderStatus.REJECTED, reason="Order would immediately match")
    )
    assert bid.client_order_id not in {o.client_order_id for o in om.live_orders()}
    value = metrics.registry.get_sample_value(
        "mm_order_rejects_total", {"venue": "paper", "reason": "post_only"}
    )
    assert value == 1.0
    await om.drain()


async def test_failed_send_rejects_the_order() -> None:
    execution, clock = FakeExecution(fail_places=True), Clock()
    om = manager(execution, clock)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    await om.drain()
    assert om.live_orders() == []


async def test_order_the_venue_took_after_its_send_failed_is_cancelled_once() -> None:
    execution, clock = FakeExecution(fail_places=True), Clock()
    om = manager(execution, clock)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    await om.drain()
    failed = [r.client_order_id for name, r in execution.calls if name == "place"]  # type: ignore[attr-defined]
    assert failed
    assert om.live_orders() == []
    # The connection came back and the venue reports one of them resting.
    om.on_execution_event(update(failed[0], OrderStatus.OPEN))
    om.on_execution_event(update(failed[0], OrderStatus.OPEN))
    await om.drain()
    assert [c for name, c in execution.calls if name == "cancel"] == [failed[0]]


async def test_late_update_of_an_order_filled_here_sends_no_cancel() -> None:
    execution, clock = FakeExecution(), Clock()
    om = manager(execution, clock)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    bid = om.live_orders(Side.BUY)[0]
    om.on_execution_event(update(bid.client_order_id, OrderStatus.FILLED, filled=10))
    om.on_execution_event(update(bid.client_order_id, OrderStatus.OPEN))  # the ack, overtaken
    await om.drain()
    assert "cancel" not in execution.actions()


async def test_live_order_of_another_client_id_prefix_is_left_alone() -> None:
    execution, clock = FakeExecution(), Clock()
    om = manager(execution, clock)
    om.on_execution_event(update("othermm-1", OrderStatus.OPEN))
    await om.drain()
    assert "cancel" not in execution.actions()


async def test_in_flight_timeout_reconciles_with_the_venue() -> None:
    execution, clock = FakeExecution(), Clock()
    om = manager(execution, clock)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    bid, ask = om.live_orders(Side.BUY)[0], om.live_orders(Side.SELL)[0]
    execution.open = [update(bid.client_order_id, OrderStatus.OPEN)]  # the ask never arrived
    clock.now += 3 * NS
    om.sync()
    await om.drain()
    assert "open_orders" in execution.actions()
    assert bid.status is OrderStatus.OPEN
    assert om.get(ask.client_order_id).status is OrderStatus.CANCELLED  # type: ignore[union-attr]


async def test_risk_gate_blocks_an_order_outside_the_price_band() -> None:
    execution, clock = FakeExecution(), Clock()
    gate = RiskGate(RiskLimits(5, 1000, 1.0, 1.0, 100.0))  # 1 bps band
    om = manager(execution, clock, risk=gate)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_010_000.0)  # quotes ~16 bps away
    assert await settled(om, execution) == []


async def test_shutdown_cancels_every_order_and_reports_none_left() -> None:
    execution, clock = FakeExecution(), Clock()
    om = manager(execution, clock)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    ack_all(om)
    execution.open = [update(o.client_order_id, OrderStatus.OPEN) for o in om.live_orders()]
    assert await om.shutdown() == 0
    assert "cancel_all" in execution.actions()
    assert om.live_orders() == []
    om.set_desired(quotes_at(6_100_000.0), fair_ticks=6_100_000.0)
    assert execution.actions().count("place") == 2  # nothing new after shutdown


async def test_client_order_ids_are_unique_and_venue_legal() -> None:
    execution, clock = FakeExecution(), Clock()
    om = OrderManager(execution, INSTRUMENT, SETTINGS, clock=clock)
    for i in range(50):
        om.set_desired(quotes_at(6_000_000.0 + 100 * i), fair_ticks=6_000_000.0 + 100 * i)
        ack_all(om)
        clock.now += NS
    await om.drain()
    ids = [c[1].client_order_id for c in execution.calls if c[0] == "place"]  # type: ignore[attr-defined]
    ids += [c[1][1].client_order_id for c in execution.calls if c[0] == "replace"]  # type: ignore[index]
    assert len(ids) == len(set(ids)) > 10
    assert all(re.fullmatch(r"[.A-Z:/a-z0-9_-]{1,36}", i) for i in ids)


async def test_tick_to_quote_is_measured_from_the_event_receipt() -> None:
    execution, clock, metrics = FakeExecution(), Clock(), Metrics()
    om = manager(execution, clock, metrics=metrics)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0, event_ts_ns=clock.now - 40_000)
    count = sample(metrics.registry, "mm_tick_to_quote_seconds_count", market="BTC/USDT@paper")
    total = sample(metrics.registry, "mm_tick_to_quote_seconds_sum", market="BTC/USDT@paper")
    assert count == 1.0
    assert total == pytest.approx(40e-6)
    await om.drain()


def test_settings_from_config_convert_seconds_to_ns() -> None:
    settings = OrderManagerSettings.from_config(
        QuotingConfig(max_order_age_seconds=2.5), RiskConfig()
    )
    assert settings.max_order_age_ns == 2_500_000_000


async def test_debounce_defers_a_requote_to_the_end_of_the_window() -> None:
    execution, clock = FakeExecution(), Clock()
    om = manager(execution, clock, replace(SETTINGS, debounce_ns=20_000_000))  # 20 ms
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    ack_all(om)
    await om.drain()
    clock.now += 1_000_000  # 1 ms later: inside the window
    om.set_desired(quotes_at(6_000_100.0), fair_ticks=6_000_100.0)
    await om.drain()
    assert "replace" not in execution.actions()
    clock.now += 20_000_000  # the window has passed when its timer fires
    async with asyncio.timeout(2):
        await execution.replaced.wait()
    await om.drain()
    assert execution.actions().count("replace") == 2


async def test_order_action_is_sent_before_set_desired_returns() -> None:
    execution, clock = FakeExecution(), Clock()
    om = manager(execution, clock)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    assert execution.actions() == ["place", "place"]  # no loop turn in between
    await om.drain()


class SlowExecution(FakeExecution):
    """place() sends at once, then waits for the venue's answer (an event the test sets)."""

    def __init__(self, fail_after_wait: bool = False) -> None:
        super().__init__()
        self.answer = asyncio.Event()
        self.fail_after_wait = fail_after_wait

    async def place(self, request: OrderRequest) -> None:
        self.calls.append(("place", request))
        await self.answer.wait()
        if self.fail_after_wait:
            raise ConnectionError("socket closed while waiting for the answer")


async def test_order_action_waiting_for_the_venue_completes_as_a_task() -> None:
    execution, clock = SlowExecution(), Clock()
    om = manager(execution, clock)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    assert execution.actions() == ["place", "place"]
    execution.answer.set()
    async with asyncio.timeout(2):
        await om.drain()
    assert len(om.live_orders()) == 2


async def test_venue_error_after_the_send_rejects_the_order() -> None:
    execution, clock = SlowExecution(fail_after_wait=True), Clock()
    om = manager(execution, clock)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    execution.answer.set()
    async with asyncio.timeout(2):
        await om.drain()
    assert om.live_orders() == []


class SharedFutureExecution(FakeExecution):
    """place() awaits one future shared by every call, as ccxt awaits a connection being opened."""

    def __init__(self) -> None:
        super().__init__()
        self.connected: asyncio.Future[None] | None = None

    async def place(self, request: OrderRequest) -> None:
        if self.connected is None:
            self.connected = asyncio.get_running_loop().create_future()
        await self.connected
        self.calls.append(("place", request))


async def test_orders_started_together_may_wait_on_the_same_future() -> None:
    execution, clock, metrics = SharedFutureExecution(), Clock(), Metrics()
    om = manager(execution, clock, metrics=metrics)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    assert execution.connected is not None
    execution.connected.set_result(None)
    async with asyncio.timeout(2):
        await om.drain()
    assert execution.actions() == ["place", "place"]
    assert len(om.live_orders()) == 2
    # Two sends, none failed and sent again.
    assert sample(metrics.registry, "mm_orders_total", market="BTC/USDT@paper", action="place") == 2
    assert (
        sample(
            metrics.registry, "mm_order_rejects_total", default=0.0, venue="paper", reason="error"
        )
        == 0
    )


class PostOnlyRejectingExecution(FakeExecution):
    """The venue's book is ahead of ours: every buy is refused as post-only would cross."""

    async def place(self, request: OrderRequest) -> None:
        self.calls.append(("place", request))
        if request.side is Side.BUY:
            raise RuntimeError("binance Order would immediately match and take.")


def _buys(execution: FakeExecution) -> list[int]:
    return [
        r.price_ticks for action, r in execution.calls if action == "place" and r.side is Side.BUY
    ]


async def test_a_price_refused_as_crossing_waits_for_the_next_book_update() -> None:
    execution, clock, metrics = PostOnlyRejectingExecution(), Clock(), Metrics()
    om = manager(execution, clock, metrics=metrics)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    async with asyncio.timeout(2):
        await om.drain()
        for _ in range(10):  # turns of the loop: a retry woken at once would run by now
            await asyncio.sleep(0)
        await om.drain()
    refused = _buys(execution)
    assert len(refused) == 1
    # Trades requote from the same view: the refused price is not sent again.
    for _ in range(3):
        om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
        async with asyncio.timeout(2):
            await om.drain()
    assert _buys(execution) == refused
    # Nor a higher bid; a lower one may rest, so it goes.
    om.set_desired(quotes_at(6_000_010.0), fair_ticks=6_000_010.0)
    async with asyncio.timeout(2):
        await om.drain()
    assert _buys(execution) == refused
    om.set_desired(quotes_at(5_999_990.0), fair_ticks=5_999_990.0)
    async with asyncio.timeout(2):
        await om.drain()
    assert len(_buys(execution)) == 2
    assert _buys(execution)[1] < refused[0]
    # The venue published its book: the refused price may be tried again.
    om.on_book_update()
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    async with asyncio.timeout(2):
        await om.drain()
    assert _buys(execution)[-1] == refused[0]
    assert (
        sample(metrics.registry, "mm_order_rejects_total", venue="paper", reason="post_only") == 3
    )


async def test_a_refusal_raised_by_the_venue_is_labelled_by_its_reason() -> None:
    execution, clock, metrics = PostOnlyRejectingExecution(), Clock(), Metrics()
    om = manager(execution, clock, metrics=metrics)
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    async with asyncio.timeout(2):
        await om.drain()
    value = metrics.registry.get_sample_value(
        "mm_order_rejects_total", {"venue": "paper", "reason": "post_only"}
    )
    assert value == 1.0


async def test_order_breaking_a_venue_filter_is_not_sent_and_is_counted() -> None:
    execution, clock = FakeExecution(), Clock()
    metrics = Metrics()
    one_order = replace(INSTRUMENT, max_num_orders=1)  # MAX_NUM_ORDERS: one open order
    om = OrderManager(
        execution, one_order, SETTINGS, clock=clock, client_id_prefix="mmtest", metrics=metrics
    )
    om.set_desired(quotes_at(6_000_000.0), fair_ticks=6_000_000.0)
    await om.drain()
    assert execution.actions() == ["place"]
    assert sample(metrics.registry, "mm_order_rejects_total", venue="paper", reason="filter") == 1.0


def test_adopted_orders_are_numbered_by_distance_from_the_touch_and_done_ones_left_out() -> None:
    def update(
        cid: str, side: Side, price: int, status: OrderStatus, filled: int = 0
    ) -> OrderUpdate:
        return OrderUpdate(
            "sim-spot", "BTC/USDT", 1, 1, cid, f"x{cid}", status, side, price, 1_000, filled
        )

    adopted = adopted_orders(
        [
            update("b-far", Side.BUY, 5_990_000, OrderStatus.OPEN),
            update("a-near", Side.SELL, 6_001_000, OrderStatus.PARTIALLY_FILLED, filled=400),
            update("b-near", Side.BUY, 5_999_000, OrderStatus.OPEN),
            update("b-done", Side.BUY, 5_999_500, OrderStatus.FILLED, filled=1_000),
            update("a-far", Side.SELL, 6_010_000, OrderStatus.OPEN),
        ],
        now_ns=7,
    )
    assert [(o.client_order_id, o.side, o.level) for o in adopted] == [
        ("b-near", Side.BUY, 0),
        ("b-far", Side.BUY, 1),
        ("a-near", Side.SELL, 0),
        ("a-far", Side.SELL, 1),
    ]
    partly = adopted[2]
    assert (partly.status, partly.filled_lots, partly.remaining_lots) == (
        OrderStatus.PARTIALLY_FILLED, 400, 600,
    )  # fmt: skip
    assert all(
        o.created_ns == 7 and o.exchange_order_id == "x" + o.client_order_id for o in adopted
    )
