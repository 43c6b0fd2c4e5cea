"""Paper execution: queue position, partial fills, latency, post-only rejection, fees, balances."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from mm_daemon.binance.capture import default_data_dir, read_capture
from mm_daemon.binance.frames import parse_depth_event, parse_snapshot, parse_trade_event
from mm_daemon.config import FillModel, PaperConfig
from mm_daemon.core.book import Book
from mm_daemon.core.quoting import MarketInputs, QuoteParams, Quoter
from mm_daemon.core.types import (
    BookDelta,
    BookSnapshot,
    ExecutionEvent,
    Fill,
    Instrument,
    InstrumentKind,
    Liquidity,
    MarketEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    Trade,
)
from mm_daemon.engine.orders import OrderManager, OrderManagerSettings
from mm_daemon.venues.paper import POST_ONLY_REJECT, PaperExecution, PaperMatcher

# 1000.00 USDT with a 0.01 tick = 100_000 ticks; lot 0.001 base; maker 10 bps, taker 20 bps.
INSTRUMENT = Instrument(
    "paper",
    "BTC/USDT",
    "BTCUSDT",
    InstrumentKind.SPOT,
    "BTC",
    "USDT",
    tick_size=0.01,
    lot_size=0.001,
    maker_fee_rate=0.001,
    taker_fee_rate=0.002,
)
T0 = 1_000_000_000


def snapshot(bids: tuple[tuple[int, int], ...], asks: tuple[tuple[int, int], ...]) -> BookSnapshot:
    return BookSnapshot("paper", "BTC/USDT", T0, T0, 1, bids, asks)


def delta(
    bids: tuple[tuple[int, int], ...] = (), asks: tuple[tuple[int, int], ...] = ()
) -> BookDelta:
    return BookDelta("paper", "BTC/USDT", T0, T0, 2, 2, -1, bids, asks)


def trade(price: int, size: int, aggressor: Side) -> Trade:
    return Trade("paper", "BTC/USDT", T0, T0, 1, price, size, aggressor)


def order(
    cid: str,
    side: Side,
    price: int,
    size: int,
    order_type: OrderType = OrderType.LIMIT_MAKER,
) -> OrderRequest:
    return OrderRequest("paper", "BTC/USDT", cid, side, price, size, order_type)


def matcher(touch: bool = False) -> PaperMatcher:
    m = PaperMatcher(INSTRUMENT, touch=touch, starting_base=1.0, starting_quote=10_000.0)
    m.on_market_event(snapshot(((100_000, 5), (99_990, 8)), ((100_010, 4), (100_020, 6))), T0)
    return m


def fills(events: list[ExecutionEvent]) -> list[tuple[int, int, Liquidity]]:
    return [(e.price_ticks, e.size_lots, e.liquidity) for e in events if isinstance(e, Fill)]


def statuses(events: list[ExecutionEvent]) -> list[OrderStatus]:
    return [e.status for e in events if isinstance(e, OrderUpdate)]


def test_order_behind_five_lots_fills_only_after_five_lots_traded_at_its_price() -> None:
    m = matcher()
    assert statuses(m.accept(order("b1", Side.BUY, 100_000, 2), T0)) == [OrderStatus.OPEN]
    assert m.on_market_event(trade(100_000, 3, Side.SELL), T0) == []
    assert m.on_market_event(trade(100_000, 2, Side.SELL), T0) == []
    events = m.on_market_event(trade(100_000, 1, Side.SELL), T0)
    assert fills(events) == [(100_000, 1, Liquidity.MAKER)]


def test_partial_fills_report_partially_filled_then_filled() -> None:
    m = matcher()
    m.accept(order("b1", Side.BUY, 100_000, 2), T0)
    m.on_market_event(trade(100_000, 5, Side.SELL), T0)
    first = m.on_market_event(trade(100_000, 1, Side.SELL), T0)
    second = m.on_market_event(trade(100_000, 4, Side.SELL), T0)
    assert statuses(first) == [OrderStatus.PARTIALLY_FILLED]
    assert statuses(second) == [OrderStatus.FILLED]
    assert [e.filled_lots for e in second if isinstance(e, OrderUpdate)] == [2]
    assert m.open_orders(T0) == []


def test_cancels_ahead_in_the_queue_bring_the_fill_closer() -> None:
    m = matcher()
    m.accept(order("b1", Side.BUY, 100_000, 1), T0)  # behind 5
    m.on_market_event(delta(bids=((100_000, 2),)), T0)  # 3 cancelled; at most 2 ahead now
    assert fills(m.on_market_event(trade(100_000, 3, Side.SELL), T0)) == [
        (100_000, 1, Liquidity.MAKER)
    ]


def test_trade_through_the_price_fills_at_once() -> None:
    m = matcher()
    m.accept(order("a1", Side.SELL, 100_010, 3), T0)  # behind 4
    events = m.on_market_event(trade(100_020, 2, Side.BUY), T0)
    assert fills(events) == [(100_010, 2, Liquidity.MAKER)]


def test_post_only_order_that_would_cross_is_rejected() -> None:
    m = matcher()
    events = m.accept(order("b1", Side.BUY, 100_010, 1), T0)
    assert statuses(events) == [OrderStatus.REJECTED]
    assert isinstance(events[0], OrderUpdate)
    assert events[0].reason == POST_ONLY_REJECT
    assert m.open_orders(T0) == []


def test_maker_fill_pays_the_maker_fee_and_moves_balances() -> None:
    m = matcher()
    m.accept(order("b1", Side.BUY, 100_000, 2), T0)
    events = m.on_market_event(trade(99_990, 2, Side.SELL), T0)
    fill = next(e for e in events if isinstance(e, Fill))
    # 2 lots = 0.002 BTC at 1000.00 = 2.00 USDT notional; 10 bps maker fee = 0.002 USDT.
    assert fill.fee_quote == pytest.approx(0.002)
    assert m.base_balance == pytest.approx(1.002)
    assert m.quote_balance == pytest.approx(10_000.0 - 2.0 - 0.002)


def test_crossing_limit_order_takes_liquidity_at_the_taker_fee_and_rests_the_rest() -> None:
    m = matcher()
    events = m.accept(order("b1", Side.BUY, 100_010, 6, OrderType.LIMIT), T0)
    fill = next(e for e in events if isinstance(e, Fill))
    # 4 lots at 1000.10 = 4.0004 USDT; 20 bps taker fee = 0.0080008 USDT.
    assert (fill.price_ticks, fill.size_lots, fill.liquidity) == (100_010, 4, Liquidity.TAKER)
    assert fill.fee_quote == pytest.approx(0.0080008)
    resting = m.open_orders(T0)
    assert [(u.status, u.filled_lots) for u in resting] == [(OrderStatus.PARTIALLY_FILLED, 4)]


def test_ioc_remainder_expires() -> None:
    m = matcher()
    events = m.accept(order("b1", Side.BUY, 100_010, 6, OrderType.IOC), T0)
    assert fills(events) == [(100_010, 4, Liquidity.TAKER)]
    assert statuses(events)[-1] is OrderStatus.EXPIRED
    assert m.open_orders(T0) == []


def test_buy_beyond_the_quote_balance_is_rejected() -> None:
    m = matcher()
    events = m.accept(order("b1", Side.BUY, 99_000, 20_000), T0)  # 20 BTC at 990 > 10k USDT
    assert statuses(events) == [OrderStatus.REJECTED]


def test_cancelled_order_no_longer_fills() -> None:
    m = matcher()
    m.accept(order("b1", Side.BUY, 100_000, 1), T0)
    assert statuses(m.cancel("b1", T0)) == [OrderStatus.CANCELLED]
    assert m.on_market_event(trade(99_000, 50, Side.SELL), T0) == []


def test_touch_model_fills_the_whole_order_on_the_first_print_at_its_price() -> None:
    m = matcher(touch=True)
    m.accept(order("b1", Side.BUY, 100_000, 3), T0)
    events = m.on_market_event(trade(100_000, 1, Side.SELL), T0)
    assert fills(events) == [(100_000, 3, Liquidity.MAKER)]


# -- PaperExecution: latency through the event loop's timers ----------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[float, ExecutionEvent]] = []
        self.changed = asyncio.Event()

    def __call__(self, event: ExecutionEvent) -> None:
        self.events.append((asyncio.get_running_loop().time(), event))
        self.changed.set()

    async def wait_for(self, status: OrderStatus) -> float:
        async with asyncio.timeout(2.0):
            while True:
                for at, event in self.events:
                    if isinstance(event, OrderUpdate) and event.status is status:
                        return at
                self.changed.clear()
                await self.changed.wait()


async def started(config: PaperConfig) -> tuple[PaperExecution, Recorder, asyncio.Task[None]]:
    execution = PaperExecution(INSTRUMENT, config)
    await execution.connect()
    recorder = Recorder()
    task = asyncio.create_task(execution.run(recorder))
    execution.on_market_event(snapshot(((100_000, 5),), ((100_010, 4),)))
    return execution, recorder, task


async def stopped(execution: PaperExecution, task: asyncio.Task[None]) -> None:
    await execution.close()
    await task


async def test_order_entry_and_ack_latency_are_applied() -> None:
    config = PaperConfig(order_entry_latency_seconds=0.03, ack_latency_seconds=0.02)
    execution, recorder, task = await started(config)
    loop = asyncio.get_running_loop()
    sent = loop.time()
    placing = asyncio.create_task(execution.place(order("b1", Side.BUY, 100_000, 1)))
    await asyncio.sleep(0)  # one loop step runs place() up to its timer: now in transit
    assert await execution.open_orders("BTC/USDT") == []
    await placing
    assert loop.time() - sent >= 0.03
    assert len(await execution.open_orders("BTC/USDT")) == 1
    acked = await recorder.wait_for(OrderStatus.OPEN)
    assert acked - sent >= 0.05
    await stopped(execution, task)


async def test_cancel_latency_leaves_the_order_fillable_until_it_takes_effect() -> None:
    config = PaperConfig(
        order_entry_latency_seconds=0.0, ack_latency_seconds=0.0, cancel_latency_seconds=0.05
    )
    execution, recorder, task = await started(config)
    await execution.place(order("b1", Side.BUY, 100_000, 1))
    cancelling = asyncio.create_task(execution.cancel("BTC/USDT", "b1"))
    await asyncio.sleep(0)
    execution.on_market_event(trade(99_990, 1, Side.SELL))  # before the cancel lands
    await cancelling
    assert any(isinstance(e, Fill) for _, e in recorder.events)
    await stopped(execution, task)


async def test_an_exposed_order_is_filled_on_the_loop_timer_without_more_market_events() -> None:
    config = PaperConfig(
        order_entry_latency_seconds=0.0,
        ack_latency_seconds=0.0,
        exposure_rate_multiplier=5.0,
        exposure_size_multiplier=100.0,
        exposure_onset_window_seconds=0.0,  # exposure starts when seen: fills come later
    )
    execution, recorder, task = await started(config)
    for i in range(20):  # observed sell flow
        execution.on_market_event(
            Trade("paper", "BTC/USDT", T0 + i, T0 + i, i, 100_000, 1, Side.SELL)
        )
    await execution.place(order("b1", Side.BUY, 100_000, 3))
    # The ask drops to our bid: the mid is half a tick below it, nothing prints.
    execution.on_market_event(
        delta(bids=((100_000, 0), (99_990, 5)), asks=((100_010, 0), (100_000, 4)))
    )
    assert not any(isinstance(e, Fill) for _, e in recorder.events)
    await recorder.wait_for(OrderStatus.FILLED)
    assert [e.size_lots for _, e in recorder.events if isinstance(e, Fill)] == [3]
    await stopped(execution, task)


async def test_cancel_that_overtakes_its_order_keeps_it_off_the_book() -> None:
    config = PaperConfig(
        order_entry_latency_seconds=0.05, ack_latency_seconds=0.0, cancel_latency_seconds=0.0
    )
    execution, recorder, task = await started(config)
    placing = asyncio.create_task(execution.place(order("b1", Side.BUY, 100_000, 1)))
    await asyncio.sleep(0)
    await execution.cancel("BTC/USDT", "b1")
    await placing
    await recorder.wait_for(OrderStatus.CANCELLED)
    assert await execution.open_orders("BTC/USDT") == []
    await stopped(execution, task)


async def test_order_manager_quotes_rest_in_paper_and_shutdown_leaves_none() -> None:
    config = PaperConfig(
        order_entry_latency_seconds=0.001, ack_latency_seconds=0.001, fill_model=FillModel.QUEUE
    )
    execution, recorder, task = await started(config)
    om = OrderManager(execution, INSTRUMENT, OrderManagerSettings())
    quoter = Quoter(QuoteParams(model="fixed", order_size_base=0.002, lot_base=0.001))
    quotes = quoter.quote(MarketInputs(100_005.0, 100_000, 100_010), 0.0, 0)
    om.set_desired(quotes, fair_ticks=100_005.0)
    await om.drain()
    resting = await execution.open_orders("BTC/USDT")
    assert sorted(u.side for u in resting) == [Side.SELL, Side.BUY]
    assert await om.shutdown() == 0
    assert await execution.open_orders("BTC/USDT") == []
    await stopped(execution, task)
    assert recorder.events


# -- recorded Binance data: the queue model against the touch model ------------------------------

RECORDED = Instrument(
    "paper", "BTC/USDT", "BTCUSDT", InstrumentKind.SPOT, "BTC", "USDT", 0.01, 0.00001
)


def recorded_spot_events(seconds: float) -> list[MarketEvent]:
    """The first `seconds` of recorded BTCUSDT spot after its REST snapshot, as core events."""
    data = default_data_dir() if default_data_dir().is_dir() else None
    if data is None:
        pytest.skip("recorded Binance captures not found (set MMD_DATA_DIR)")
    events: list[MarketEvent] = []
    snapshot_id: int | None = None
    start = 0
    for ts, raw in read_capture(data / "spot" / "btcusdt_20240808.gz"):
        msg = orjson.loads(raw)
        if "lastUpdateId" in msg:
            snapshot_id, bids, asks = parse_snapshot(msg, RECORDED)
            events.append(BookSnapshot("paper", "BTC/USDT", ts, ts, snapshot_id, bids, asks))
            start = ts
            continue
        if snapshot_id is None:
            continue
        if ts - start > seconds * 1e9:
            break
        payload = msg.get("data") or {}
        if payload.get("e") == "depthUpdate" and payload["u"] > snapshot_id:
            events.append(parse_depth_event(payload, RECORDED, "paper", ts))
        elif payload.get("e") == "trade":
            events.append(parse_trade_event(payload, RECORDED, "paper", ts))
    return events


def join_the_touch(events: list[MarketEvent], touch: bool) -> int:
    """Keep a 100-lot bid at the best bid and ask at the best ask; return the lots filled."""
    m = PaperMatcher(RECORDED, touch=touch, starting_base=100.0, starting_quote=1e9)
    resting: dict[Side, str] = {}
    filled = 0
    for n, event in enumerate(events):
        now = event.ts_local_ns
        filled += sum(e.size_lots for e in m.on_market_event(event, now) if isinstance(e, Fill))
        if isinstance(event, Trade):
            continue
        live = {u.client_order_id: u.price_ticks for u in m.open_orders(now)}
        for side, best in ((Side.BUY, m.book.best_bid_ticks), (Side.SELL, m.book.best_ask_ticks)):
            current = resting.get(side)
            if best is None or (current in live and live[current] == best):
                continue
            if current in live:
                m.cancel(current, now)
            resting[side] = f"{side.name}-{n}"
            m.accept(order(resting[side], side, best, 100), now)
    return filled


@pytest.mark.data
def test_on_recorded_binance_data_the_queue_model_fills_far_less_than_the_touch_model() -> None:
    events = recorded_spot_events(seconds=120)
    queue_lots = join_the_touch(events, touch=False)
    touch_lots = join_the_touch(events, touch=True)
    # Joining the back of a real BTCUSDT touch queue fills, but far less than "fill on touch".
    assert 0 < queue_lots < touch_lots / 2


def test_a_book_shared_with_market_data_is_read_not_fed_again() -> None:
    # The adapter applies every delta to its book before the event reaches the paper venue.
    shared = Book()
    shared.apply_snapshot(snapshot(((100_000, 5),), ((100_010, 4),)))
    m = PaperMatcher(INSTRUMENT, starting_base=1.0, starting_quote=10_000.0, book=shared)
    shared.update(0, 0, -1, (), ((100_005, 3),))  # the venue's ask moved; no event fed yet
    events = m.accept(order("b1", Side.BUY, 100_005, 1), T0)
    assert statuses(events) == [OrderStatus.REJECTED]
    m.accept(order("b2", Side.BUY, 100_000, 1), T0)  # behind the 5 the shared book shows
    assert m.on_market_event(trade(100_000, 5, Side.SELL), T0) == []
    assert fills(m.on_market_event(trade(100_000, 1, Side.SELL), T0)) == [
        (100_000, 1, Liquidity.MAKER)
    ]


# -- orders an earlier run left resting (restored from the journal) ----------------------------


def test_a_restored_order_is_open_with_what_it_had_filled() -> None:
    m = matcher()
    m.restore(order("b1", Side.BUY, 100_000, 4), "17", 1, T0)
    (update,) = m.open_orders(T0)
    assert (update.client_order_id, update.exchange_order_id) == ("b1", "17")
    assert (update.status, update.filled_lots, update.size_lots) == (
        OrderStatus.PARTIALLY_FILLED,
        1,
        4,
    )


def test_a_restored_order_waits_behind_the_size_displayed_at_its_price() -> None:
    m = matcher()  # 5 lots bid at 100_000
    m.restore(order("b1", Side.BUY, 100_000, 2), "1", 0, T0)
    assert m.on_market_event(trade(100_000, 5, Side.SELL), T0) == []
    assert fills(m.on_market_event(trade(100_000, 1, Side.SELL), T0)) == [
        (100_000, 1, Liquidity.MAKER)
    ]


def test_an_order_restored_before_the_book_arrives_queues_behind_the_first_book() -> None:
    m = PaperMatcher(INSTRUMENT, starting_base=1.0, starting_quote=10_000.0)
    m.restore(order("b1", Side.BUY, 100_000, 2), "1", 0, T0)  # the book is empty yet
    m.on_market_event(snapshot(((100_000, 5),), ((100_010, 4),)), T0)
    assert m.on_market_event(trade(100_000, 5, Side.SELL), T0) == []
    assert fills(m.on_market_event(trade(100_000, 1, Side.SELL), T0)) == [
        (100_000, 1, Liquidity.MAKER)
    ]


def test_a_restored_order_cancelled_before_the_book_arrives_never_fills() -> None:
    m = PaperMatcher(INSTRUMENT, starting_base=1.0, starting_quote=10_000.0)
    m.restore(order("b1", Side.BUY, 100_000, 2), "1", 0, T0)
    assert statuses(m.cancel("b1", T0)) == [OrderStatus.CANCELLED]
    m.on_market_event(snapshot(((100_000, 5),), ((100_010, 4),)), T0)
    assert m.on_market_event(trade(99_990, 20, Side.SELL), T0) == []
    assert m.open_orders(T0) == []


def test_new_orders_after_a_restore_get_exchange_ids_after_the_restored_ones() -> None:
    m = matcher()
    m.restore(order("b1", Side.BUY, 99_990, 2), "41", 0, T0)
    (update,) = [
        e for e in m.accept(order("b2", Side.BUY, 99_980, 2), T0) if isinstance(e, OrderUpdate)
    ]
    assert int(update.exchange_order_id) > 41


def test_balances_restored_from_the_ledger_equal_the_balances_the_fills_left() -> None:
    from mm_daemon.core.inventory import Ledger  # noqa: PLC0415  only this test books a ledger

    traded = matcher()
    ledger = Ledger(INSTRUMENT)
    traded.accept(order("b1", Side.BUY, 100_000, 5), T0)
    traded.accept(order("s1", Side.SELL, 100_020, 2), T0)
    events = traded.on_market_event(trade(99_990, 5, Side.SELL), T0)
    events += traded.on_market_event(trade(100_030, 2, Side.BUY), T0)
    for event in events:
        if isinstance(event, Fill):
            ledger.on_fill(event)
    position = ledger.position(INSTRUMENT.venue, INSTRUMENT.symbol)
    assert position.lots == 3

    restarted = PaperExecution(INSTRUMENT, PaperConfig(starting_base=1.0, starting_quote=10_000.0))
    restarted.restore_balances(
        position.base, ledger.trade_cash_quote(INSTRUMENT.venue, INSTRUMENT.symbol)
    )
    base, quote = restarted.balances
    assert base == pytest.approx(traded.base_balance, abs=1e-12)
    assert quote == pytest.approx(traded.quote_balance, abs=1e-9)
