"""Native WS-API order entry against the simulator over loopback: orders rest in the book,
cancel-replace moves them in one request, fills arrive with their fees, post-only crossing is
rejected with the venue's reason, cancel-all empties the account, and a dropped connection is
survived. Spot (/ws-api/v3, user data on the same socket) and USD-M (/ws-fapi/v1, listenKey)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from mm_daemon.config import SimConfig
from mm_daemon.core.types import (
    Fill,
    InstrumentKind,
    Liquidity,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
)
from mm_daemon.engine.reconcile import ReconciledExecution
from mm_daemon.sim.runner import SimulatorHandle, VenueEndpoint
from mm_daemon.venues.binance_ws_api import BinanceWsApiExecution
from mm_daemon.venues.binance_ws_api_wire import WsApiEndpoints
from mm_daemon.venues.exchanges import build_instrument
from tests.integration.conftest import until_user_data_gone
from tests.support import ExecutionRecorder

SPOT = "sim-spot"
PERP = "sim-perp"
SPOT_SYMBOL = "BTC/USDT"
PERP_SYMBOL = "BTC/USDT:USDT"
KEY = "ws-api-test-key"
OTHER = "ws-api-counterparty"
MAKER_FEE_BPS = 2.0


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(seed=7, spot_maker_fee_bps=MAKER_FEE_BPS, perp_maker_fee_bps=MAKER_FEE_BPS)


Live = tuple[ReconciledExecution, ExecutionRecorder]


async def _start(
    sim: SimulatorHandle,
    make_exchange: Any,
    venue: str,
    symbol: str,
    endpoints: WsApiEndpoints,
    *,
    initial_backoff_s: float = 0.02,
) -> AsyncIterator[Live]:
    exchange = make_exchange(venue, api_key=None)
    await exchange.load_markets()
    instrument = build_instrument(venue, exchange.market(symbol))
    native = BinanceWsApiExecution(
        endpoints,
        SecretStr(KEY),
        SecretStr(KEY),
        venue=venue,
        usdm=instrument.kind is InstrumentKind.PERPETUAL,
        instruments=(instrument,),
        initial_backoff_s=initial_backoff_s,
    )
    # The daemon's own wrapper: it reconciles after every reconnect.
    execution = ReconciledExecution(native)
    events = ExecutionRecorder()
    task = asyncio.create_task(execution.run(events))
    try:
        async with asyncio.timeout(10):
            await execution.open_orders(symbol)  # waits until connected
        yield execution, events
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await execution.close()


def native_of(execution: ReconciledExecution) -> BinanceWsApiExecution:
    assert isinstance(execution.inner, BinanceWsApiExecution)
    return execution.inner


@pytest.fixture
def reconnect_backoff_s() -> float:
    return 0.02


@pytest.fixture
async def spot(
    sim: SimulatorHandle,
    make_exchange: Any,
    spot_endpoint: VenueEndpoint,
    reconnect_backoff_s: float,
) -> AsyncIterator[Live]:
    endpoints = WsApiEndpoints(ws_api=f"{spot_endpoint.ws}/ws-api/v3")
    async for live in _start(
        sim, make_exchange, SPOT, SPOT_SYMBOL, endpoints, initial_backoff_s=reconnect_backoff_s
    ):
        yield live


@pytest.fixture
async def perp(
    sim: SimulatorHandle,
    make_exchange: Any,
    perp_endpoint: VenueEndpoint,
    reconnect_backoff_s: float,
) -> AsyncIterator[Live]:
    endpoints = WsApiEndpoints(
        ws_api=f"{perp_endpoint.ws}/ws-fapi/v1",
        rest=f"{perp_endpoint.rest}/fapi/v1",
        user_ws=f"{perp_endpoint.ws}/private/ws",
    )
    async for live in _start(
        sim, make_exchange, PERP, PERP_SYMBOL, endpoints, initial_backoff_s=reconnect_backoff_s
    ):
        yield live


def book(sim: SimulatorHandle, venue: str) -> Any:
    return sim.venues[venue].symbols["BTCUSDT"]


def open_ids(sim: SimulatorHandle, venue: str) -> list[str]:
    return [o.client_order_id for o in book(sim, venue).engine.open_orders(KEY)]


def spot_order(cid: str, side: Side, price: int, lots: int = 100) -> OrderRequest:
    return OrderRequest(SPOT, SPOT_SYMBOL, cid, side, price, lots)


def perp_order(cid: str, side: Side, price: int, lots: int = 5) -> OrderRequest:
    return OrderRequest(PERP, PERP_SYMBOL, cid, side, price, lots)


async def fill_while_disconnected(
    sim: SimulatorHandle, live: Live, admin: Any, venue: str, order: OrderRequest
) -> list[Fill]:
    """Rest `order` at the bid, drop the connections, sell through it while no user-data
    stream of ours is connected, and return the fills delivered once the execution is back."""
    execution, events = live
    await execution.place(order)
    await events.update(order.client_order_id, OrderStatus.OPEN)
    await admin.fault(venue, "disconnect")
    await until_user_data_gone(sim, venue, KEY)
    sell_down_to(sim, venue, order.price_ticks)  # its user-data event has nowhere to go
    await events.update(order.client_order_id, OrderStatus.FILLED)
    return [
        e
        for e in events.items
        if isinstance(e, Fill) and e.client_order_id == order.client_order_id
    ]


def sell_down_to(sim: SimulatorHandle, venue: str, price: int) -> None:
    """Another account sells at market everything bid at `price` or better, ours included."""
    sym = book(sim, venue)
    bids, _, _ = sym.engine.depth(1_000_000)
    lots = sum(size for px, size in bids if px >= price)
    sim.venues[venue].submit(
        sym,
        OTHER,
        side=Side.SELL,
        order_type=OrderType.MARKET,
        size_lots=lots,
        price_ticks=0,
        client_order_id=None,
        reduce_only=False,
    )


# -- spot -----------------------------------------------------------------------------------------


async def test_placed_order_rests_in_the_simulator_book(sim: SimulatorHandle, spot: Live) -> None:
    execution, events = spot
    price = book(sim, SPOT).engine.best_bid()[0] - 5_000
    await execution.place(spot_order("w-rest-1", Side.BUY, price))
    ack = await events.update("w-rest-1", OrderStatus.OPEN)
    assert (ack.price_ticks, ack.size_lots) == (price, 100)
    assert open_ids(sim, SPOT) == ["w-rest-1"]
    assert book(sim, SPOT).engine.level_size(Side.BUY, price) >= 100


async def test_cancel_replace_moves_the_order_in_one_request(
    sim: SimulatorHandle, spot: Live
) -> None:
    execution, events = spot
    price = book(sim, SPOT).engine.best_bid()[0] - 5_000
    await execution.place(spot_order("w-mv-1", Side.BUY, price))
    await events.update("w-mv-1", OrderStatus.OPEN)
    sent = native_of(execution).requests_sent
    await execution.replace("w-mv-1", spot_order("w-mv-2", Side.BUY, price - 10))
    assert native_of(execution).requests_sent == sent + 1
    await events.update("w-mv-1", OrderStatus.CANCELLED)
    moved = await events.update("w-mv-2", OrderStatus.OPEN)
    assert moved.price_ticks == price - 10
    assert open_ids(sim, SPOT) == ["w-mv-2"]


@pytest.mark.parametrize("market_speed", [0.0])  # a still market: only our sell fills it
async def test_fill_arrives_with_the_maker_fee_in_quote(sim: SimulatorHandle, spot: Live) -> None:
    execution, events = spot
    bid = book(sim, SPOT).engine.best_bid()[0]
    await execution.place(spot_order("w-fill-1", Side.BUY, bid))
    await events.update("w-fill-1", OrderStatus.OPEN)
    sell_down_to(sim, SPOT, bid)
    fill = await events.fill("w-fill-1")
    (inst,) = native_of(execution).instruments
    assert (fill.side, fill.price_ticks, fill.size_lots) == (Side.BUY, bid, 100)
    assert fill.liquidity is Liquidity.MAKER
    notional = inst.ticks_to_price(bid) * inst.lots_to_size(100)
    assert fill.fee_quote == pytest.approx(notional * MAKER_FEE_BPS / 1e4, rel=1e-3)
    await events.update("w-fill-1", OrderStatus.FILLED)


async def test_post_only_order_that_would_cross_is_rejected_with_the_venue_reason(
    sim: SimulatorHandle, spot: Live
) -> None:
    execution, events = spot
    ask = book(sim, SPOT).engine.best_ask()[0]
    await execution.place(
        spot_order("w-x-1", Side.BUY, ask + 10_000)
    )  # 1 bp through: the market cannot run away first
    rejected = await events.update("w-x-1", OrderStatus.REJECTED)
    assert rejected.reason == "Order would immediately match and take."
    assert open_ids(sim, SPOT) == []


async def test_replace_into_a_crossing_price_rejects_the_new_order(
    sim: SimulatorHandle, spot: Live
) -> None:
    execution, events = spot
    engine = book(sim, SPOT).engine
    await execution.place(spot_order("w-rx-1", Side.BUY, engine.best_bid()[0] - 5_000))
    await events.update("w-rx-1", OrderStatus.OPEN)
    await execution.replace("w-rx-1", spot_order("w-rx-2", Side.BUY, engine.best_ask()[0] + 100))
    rejected = await events.update("w-rx-2", OrderStatus.REJECTED)
    assert rejected.reason == "Order would immediately match and take."
    await events.update("w-rx-1", OrderStatus.CANCELLED)


async def test_cancel_all_leaves_no_open_order_of_the_account(
    sim: SimulatorHandle, spot: Live
) -> None:
    execution, events = spot
    price = book(sim, SPOT).engine.best_bid()[0] - 5_000
    for i in range(3):
        await execution.place(spot_order(f"w-all-{i}", Side.BUY, price - i))
    await events.update("w-all-2", OrderStatus.OPEN)
    await execution.cancel_all(SPOT_SYMBOL)
    assert open_ids(sim, SPOT) == []
    assert await execution.open_orders(SPOT_SYMBOL) == []


async def test_cancel_of_an_order_already_gone_is_not_an_error(spot: Live) -> None:
    execution, _ = spot
    await execution.cancel(SPOT_SYMBOL, "w-never-placed")


async def test_dropped_connection_is_survived_and_orders_reconciled(
    sim: SimulatorHandle, spot: Live, admin: Any
) -> None:
    execution, events = spot
    price = book(sim, SPOT).engine.best_bid()[0] - 5_000
    await execution.place(spot_order("w-dc-1", Side.BUY, price))
    await events.update("w-dc-1", OrderStatus.OPEN)
    before = len(events.items)
    await admin.fault(SPOT, "disconnect")
    # After the reconnect, the reconcile reports the order that stayed open.
    await events.wait_for(
        lambda e: (
            events.items.index(e) >= before
            and isinstance(e, OrderUpdate)
            and e.client_order_id == "w-dc-1"
            and e.status is OrderStatus.OPEN
        )
    )
    assert native_of(execution).reconnects >= 1
    await execution.place(spot_order("w-dc-2", Side.BUY, price - 1))
    await events.update("w-dc-2", OrderStatus.OPEN)
    assert sorted(open_ids(sim, SPOT)) == ["w-dc-1", "w-dc-2"]


@pytest.mark.parametrize("market_speed", [0.0])  # a still market: only our sell fills it
@pytest.mark.parametrize("reconnect_backoff_s", [1.0])
async def test_fill_while_disconnected_is_recovered_once_on_reconnect(
    sim: SimulatorHandle, spot: Live, admin: Any
) -> None:
    bid = book(sim, SPOT).engine.best_bid()[0]
    fills = await fill_while_disconnected(
        sim, spot, admin, SPOT, spot_order("w-gap-1", Side.BUY, bid)
    )
    assert sum(f.size_lots for f in fills) == 100
    assert len({f.trade_id for f in fills}) == len(fills)
    assert all(f.price_ticks == bid and f.liquidity is Liquidity.MAKER for f in fills)


# -- USD-M ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("market_speed", [0.0])  # a still market: only our sell fills it
@pytest.mark.parametrize("reconnect_backoff_s", [1.0])
async def test_usdm_fill_while_disconnected_is_recovered_once_on_reconnect(
    sim: SimulatorHandle, perp: Live, admin: Any
) -> None:
    bid = book(sim, PERP).engine.best_bid()[0]
    fills = await fill_while_disconnected(
        sim, perp, admin, PERP, perp_order("p-gap-1", Side.BUY, bid)
    )
    assert sum(f.size_lots for f in fills) == 5
    assert len({f.trade_id for f in fills}) == len(fills)
    assert all(f.price_ticks == bid and f.liquidity is Liquidity.MAKER for f in fills)


async def test_usdm_order_rests_and_replace_moves_it(sim: SimulatorHandle, perp: Live) -> None:
    execution, events = perp
    price = book(sim, PERP).engine.best_bid()[0] - 500
    await execution.place(perp_order("p-mv-1", Side.BUY, price))
    await events.update("p-mv-1", OrderStatus.OPEN)
    await execution.replace("p-mv-1", perp_order("p-mv-2", Side.BUY, price - 10))
    await events.update("p-mv-1", OrderStatus.CANCELLED)
    moved = await events.update("p-mv-2", OrderStatus.OPEN)
    assert moved.price_ticks == price - 10
    assert open_ids(sim, PERP) == ["p-mv-2"]


async def test_usdm_fill_arrives_through_the_listen_key_stream(
    sim: SimulatorHandle, perp: Live
) -> None:
    execution, events = perp
    bid = book(sim, PERP).engine.best_bid()[0]
    await execution.place(perp_order("p-fill-1", Side.BUY, bid))
    await events.update("p-fill-1", OrderStatus.OPEN)
    sell_down_to(sim, PERP, bid)
    fill = await events.fill("p-fill-1")
    (inst,) = native_of(execution).instruments
    assert (fill.price_ticks, fill.size_lots, fill.liquidity) == (bid, 5, Liquidity.MAKER)
    notional = inst.ticks_to_price(bid) * inst.lots_to_base(5)
    assert fill.fee_quote == pytest.approx(notional * MAKER_FEE_BPS / 1e4, rel=1e-3)


async def test_usdm_post_only_crossing_is_rejected(sim: SimulatorHandle, perp: Live) -> None:
    execution, events = perp
    ask = book(sim, PERP).engine.best_ask()[0]
    await execution.place(
        perp_order("p-x-1", Side.BUY, ask + 1_000)
    )  # 17 bps through: the market cannot run away first
    rejected = await events.update("p-x-1", OrderStatus.REJECTED)
    assert "immediately" in rejected.reason.lower() or "post" in rejected.reason.lower()
    assert open_ids(sim, PERP) == []


async def test_usdm_cancel_all_leaves_no_open_order(sim: SimulatorHandle, perp: Live) -> None:
    execution, events = perp
    price = book(sim, PERP).engine.best_bid()[0] - 500
    for i in range(3):
        await execution.place(perp_order(f"p-all-{i}", Side.BUY, price - i))
    await events.update("p-all-2", OrderStatus.OPEN)
    await execution.cancel_all(PERP_SYMBOL)
    assert open_ids(sim, PERP) == []
