"""Live execution through real ccxt.pro against the simulator over loopback: WS-API order entry,
order updates and fills from the private streams, cancel-all, and the mainnet guard."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mm_daemon.config import VenueConfig
from mm_daemon.core.quoting import Quote, Quotes
from mm_daemon.core.types import (
    Fill,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
)
from mm_daemon.engine.orders import OrderManager, OrderManagerSettings
from mm_daemon.engine.reconcile import ReconciledExecution
from mm_daemon.sim.runner import SimulatorHandle
from mm_daemon.venues.ccxt_execution import (
    CcxtExecution,
    MainnetRefusedError,
    check_mainnet_allowed,
    fill_from_ccxt,
    order_update_from_ccxt,
)
from mm_daemon.venues.exchanges import build_instrument
from tests.integration.conftest import until_user_data_gone
from tests.support import ExecutionRecorder

SPOT = "sim-spot"
SYMBOL = "BTC/USDT"
KEY = "live-execution-test-key"


@pytest.fixture
def market_speed() -> float:
    return 20.0


@pytest.fixture
async def live(
    sim: SimulatorHandle, make_exchange: Any
) -> AsyncIterator[tuple[CcxtExecution, ExecutionRecorder]]:
    exchange = make_exchange(SPOT, api_key=KEY)
    await exchange.load_markets()
    instrument = build_instrument(SPOT, exchange.market(SYMBOL))
    execution = CcxtExecution(exchange, venue=SPOT, instruments=(instrument,))
    await execution.connect()
    events = ExecutionRecorder()
    # Through the daemon's own wrapper: it reconciles after every reconnect.
    task = asyncio.create_task(ReconciledExecution(execution).run(events))
    try:
        yield execution, events
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def engine(sim: SimulatorHandle) -> Any:
    return sim.venues[SPOT].symbols["BTCUSDT"].engine


def request(cid: str, side: Side, price_ticks: int, size_lots: int = 100) -> OrderRequest:
    return OrderRequest(SPOT, SYMBOL, cid, side, price_ticks, size_lots)


def open_client_ids(sim: SimulatorHandle) -> list[str]:
    state = sim.venues[SPOT].state(depth=1)
    return [o["clientOrderId"] for o in state["open_orders"].get(KEY, [])]


async def test_placed_order_rests_in_the_simulator_book(
    sim: SimulatorHandle, live: tuple[CcxtExecution, ExecutionRecorder]
) -> None:
    execution, events = live
    best_bid = engine(sim).best_bid()[0]
    price = best_bid - 5_000  # 50 USDT below the touch: nothing trades there in this test
    await execution.place(request("t-rest-1", Side.BUY, price))
    ack = await events.update("t-rest-1", OrderStatus.OPEN)
    assert ack.price_ticks == price
    assert "t-rest-1" in open_client_ids(sim)
    assert engine(sim).level_size(Side.BUY, price) >= 100


async def test_post_only_order_that_would_cross_is_rejected(
    sim: SimulatorHandle, live: tuple[CcxtExecution, ExecutionRecorder]
) -> None:
    execution, events = live
    best_ask = engine(sim).best_ask()[0]
    await execution.place(request("t-cross-1", Side.BUY, best_ask + 100))
    rejected = await events.update("t-cross-1", OrderStatus.REJECTED)
    assert rejected.reason == "Order would immediately match and take."
    assert "t-cross-1" not in open_client_ids(sim)


async def test_order_failing_a_venue_filter_is_rejected_without_a_rest_retry(
    sim: SimulatorHandle, live: tuple[CcxtExecution, ExecutionRecorder]
) -> None:
    execution, events = live
    price = engine(sim).best_bid()[0] - 5_000
    await execution.place(request("t-tiny-1", Side.BUY, price, size_lots=1))  # ~0.6 USDT
    rejected = await events.update("t-tiny-1", OrderStatus.REJECTED)
    assert "NOTIONAL" in rejected.reason
    assert execution.ws_fallbacks == 0


async def test_replace_swaps_the_order_in_one_cancel_replace(
    sim: SimulatorHandle, live: tuple[CcxtExecution, ExecutionRecorder]
) -> None:
    execution, events = live
    price = engine(sim).best_bid()[0] - 5_000
    await execution.place(request("t-repl-1", Side.BUY, price))
    await events.update("t-repl-1", OrderStatus.OPEN)
    await execution.replace("t-repl-1", request("t-repl-2", Side.BUY, price - 10))
    await events.update("t-repl-2", OrderStatus.OPEN)
    await events.update("t-repl-1", OrderStatus.CANCELLED)
    assert open_client_ids(sim) == ["t-repl-2"]
    assert execution.ws_fallbacks == 0


async def test_cancel_all_leaves_no_open_order_of_the_account(
    sim: SimulatorHandle, live: tuple[CcxtExecution, ExecutionRecorder]
) -> None:
    execution, events = live
    price = engine(sim).best_bid()[0] - 5_000
    for i in range(3):
        await execution.place(request(f"t-all-{i}", Side.BUY, price - i))
    await events.update("t-all-2", OrderStatus.OPEN)
    assert len(open_client_ids(sim)) == 3
    await execution.cancel_all(SYMBOL)
    assert open_client_ids(sim) == []
    assert await execution.open_orders(SYMBOL) == []


async def test_open_orders_lists_what_rests(
    sim: SimulatorHandle, live: tuple[CcxtExecution, ExecutionRecorder]
) -> None:
    execution, events = live
    price = engine(sim).best_bid()[0] - 5_000
    await execution.place(request("t-open-1", Side.BUY, price))
    await events.update("t-open-1", OrderStatus.OPEN)
    listed = await execution.open_orders(SYMBOL)
    assert [(u.client_order_id, u.price_ticks, u.size_lots) for u in listed] == [
        ("t-open-1", price, 100)
    ]


async def test_quotes_at_the_touch_get_filled_and_fills_arrive_through_watch_my_trades(
    sim: SimulatorHandle, live: tuple[CcxtExecution, ExecutionRecorder]
) -> None:
    execution, events = live
    om = OrderManager(
        execution,
        execution.instruments[0],
        OrderManagerSettings(price_tolerance_ticks=1, order_timeout_ns=5_000_000_000),
    )
    moved = asyncio.Event()
    sim.venues[SPOT].book_observers.append(lambda _sym, _result: moved.set())
    events.listeners.append(om.on_execution_event)  # as the daemon routes the streams
    async with asyncio.timeout(60):
        while not any(isinstance(e, Fill) for e in events.items):
            bid, ask = engine(sim).best_bid()[0], engine(sim).best_ask()[0]
            quotes = Quotes((Quote(Side.BUY, 0, bid, 50),), (Quote(Side.SELL, 0, ask, 50),), 0)
            om.set_desired(quotes, fair_ticks=(bid + ask) / 2)
            moved.clear()
            await moved.wait()
    fill = next(e for e in events.items if isinstance(e, Fill))
    assert fill.liquidity is Liquidity.MAKER
    assert fill.client_order_id.startswith(om.client_id_prefix)
    assert await om.shutdown() == 0
    assert open_client_ids(sim) == []


# -- mapping and the mainnet guard (no simulator needed) ----------------------------------------

INSTRUMENT = Instrument("v", "BTC/USDT", "BTCUSDT", InstrumentKind.SPOT, "BTC", "USDT", 0.01, 1e-5)


@pytest.mark.parametrize("market_speed", [0.0])  # a still market: only our sell fills the order
async def test_fill_while_the_private_streams_were_down_arrives_once_after_they_return(
    sim: SimulatorHandle, live: tuple[CcxtExecution, ExecutionRecorder], admin: Any
) -> None:
    execution, events = live
    price = engine(sim).best_bid()[0]
    await execution.place(request("ccxt-gap-1", Side.BUY, price))
    await events.update("ccxt-gap-1", OrderStatus.OPEN)
    await admin.fault(SPOT, "disconnect")
    venue = sim.venues[SPOT]
    await until_user_data_gone(sim, SPOT, KEY)
    bids, _, _ = engine(sim).depth(1_000_000)
    venue.submit(  # another account sells through our bid: its report has nowhere to go
        venue.symbols["BTCUSDT"],
        "ccxt-gap-counterparty",
        side=Side.SELL,
        order_type=OrderType.MARKET,
        size_lots=sum(size for px, size in bids if px >= price),
        price_ticks=0,
        client_order_id=None,
        reduce_only=False,
    )
    await events.update("ccxt-gap-1", OrderStatus.FILLED)
    fills = [e for e in events.items if isinstance(e, Fill) and e.client_order_id == "ccxt-gap-1"]
    assert sum(f.size_lots for f in fills) == 100
    assert len({f.trade_id for f in fills}) == len(fills)
    assert all(f.price_ticks == price and f.liquidity is Liquidity.MAKER for f in fills)
    assert execution.stream_restarts >= 1


def test_ccxt_order_maps_to_ticks_lots_and_status() -> None:
    order = {
        "clientOrderId": "mm1-a",
        "id": "42",
        "status": "open",
        "side": "sell",
        "price": 60000.01,
        "amount": 0.001,
        "filled": 0.0004,
        "timestamp": 1_700_000_000_000,
    }
    update = order_update_from_ccxt(order, INSTRUMENT, "v", 5)
    assert update is not None
    assert (update.status, update.side, update.price_ticks, update.size_lots) == (
        OrderStatus.PARTIALLY_FILLED,
        Side.SELL,
        6_000_001,
        100,
    )
    assert update.filled_lots == 40
    assert update.ts_exchange_ns == 1_700_000_000_000_000_000


def test_fee_charged_in_base_is_converted_to_quote() -> None:
    trade = {
        "info": {"c": "mm1-b"},
        "id": "7",
        "order": "42",
        "side": "buy",
        "price": 60000.0,
        "amount": 0.001,
        "fee": {"cost": 0.000001, "currency": "BTC"},
        "takerOrMaker": "maker",
    }
    fill = fill_from_ccxt(trade, INSTRUMENT, "v", 5)
    assert fill is not None
    assert fill.fee_quote == pytest.approx(0.06)
    assert (fill.client_order_id, fill.liquidity, fill.size_lots) == ("mm1-b", Liquidity.MAKER, 100)


def mainnet_venue() -> VenueConfig:
    return VenueConfig(name="binance-spot", exchange="binance", endpoint="mainnet")


def test_mainnet_is_refused_without_allow_mainnet() -> None:
    with pytest.raises(MainnetRefusedError, match="allow_mainnet: true"):
        check_mainnet_allowed(mainnet_venue(), allow_mainnet=False, environ={})


def test_mainnet_is_refused_without_the_environment_confirmation() -> None:
    with pytest.raises(MainnetRefusedError, match="MMD_CONFIRM_MAINNET=yes"):
        check_mainnet_allowed(mainnet_venue(), allow_mainnet=True, environ={})


def test_mainnet_is_allowed_with_both_confirmations() -> None:
    env = {"MMD_CONFIRM_MAINNET": "yes"}
    check_mainnet_allowed(mainnet_venue(), allow_mainnet=True, environ=env)


def test_sim_and_testnet_need_no_confirmation() -> None:
    for endpoint in ("sim", "testnet"):
        venue = VenueConfig(name="v", exchange="binance", endpoint=endpoint)
        check_mainnet_allowed(venue, allow_mainnet=False, environ={})


# -- USD-M (the hedge venue): WS-API order entry and the private streams ------------------------

PERP = "sim-perp"
PERP_SYMBOL = "BTC/USDT:USDT"


@pytest.fixture
async def live_perp(
    sim: SimulatorHandle, make_exchange: Any
) -> AsyncIterator[tuple[CcxtExecution, ExecutionRecorder]]:
    exchange = make_exchange(PERP, api_key=KEY)
    await exchange.load_markets()
    instrument = build_instrument(PERP, exchange.market(PERP_SYMBOL))
    execution = CcxtExecution(exchange, venue=PERP, instruments=(instrument,))
    await execution.connect()
    events = ExecutionRecorder()
    task = asyncio.create_task(execution.run(events))
    try:
        yield execution, events
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def perp_engine(sim: SimulatorHandle) -> Any:
    return sim.venues[PERP].symbols["BTCUSDT"].engine


async def test_usdm_post_only_order_rests_and_cancels(
    sim: SimulatorHandle, live_perp: tuple[CcxtExecution, ExecutionRecorder]
) -> None:
    execution, events = live_perp
    price = perp_engine(sim).best_bid()[0] - 500  # 50 USDT below the touch (tick 0.1)
    await execution.place(OrderRequest(PERP, PERP_SYMBOL, "p-rest-1", Side.BUY, price, 5))
    await events.update("p-rest-1", OrderStatus.OPEN)
    assert [u.client_order_id for u in await execution.open_orders(PERP_SYMBOL)] == ["p-rest-1"]
    await execution.cancel(PERP_SYMBOL, "p-rest-1")
    await events.update("p-rest-1", OrderStatus.CANCELLED)
    assert await execution.open_orders(PERP_SYMBOL) == []


async def test_usdm_ioc_hedge_order_fills_and_the_fill_arrives_through_watch_my_trades(
    sim: SimulatorHandle, live_perp: tuple[CcxtExecution, ExecutionRecorder]
) -> None:
    execution, events = live_perp
    best_ask = perp_engine(sim).best_ask()[0]
    hedge = OrderRequest(PERP, PERP_SYMBOL, "p-ioc-1", Side.BUY, best_ask + 50, 5, OrderType.IOC)
    await execution.place(hedge)
    fill = await events.fill()
    assert (fill.client_order_id, fill.side, fill.liquidity) == (
        "p-ioc-1",
        Side.BUY,
        Liquidity.TAKER,
    )
    assert 0 < fill.size_lots <= 5
