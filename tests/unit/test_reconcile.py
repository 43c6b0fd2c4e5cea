"""The one reconciliation path (`engine.reconcile.ReconciledExecution`) over a fake venue:
every fill delivered once, and what happened while the connection was down recovered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from mm_daemon.core.types import (
    ExecutionStatus,
    Fill,
    Liquidity,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Side,
)
from mm_daemon.engine.reconcile import ReconciledExecution
from mm_daemon.venues.base import Execution, ExecutionSink
from tests.support import ExecutionRecorder, eventually

SYMBOL = "BTC/USDT"


def update(
    client_id: str, status: OrderStatus, filled: int = 0, order_id: str = "42"
) -> OrderUpdate:
    return OrderUpdate("v", SYMBOL, 1, 1, client_id, order_id, status, Side.BUY, 100, 10, filled)


def fill(client_id: str, trade_id: str, lots: int, order_id: str = "42") -> Fill:
    return Fill("v", SYMBOL, 1, 1, client_id, order_id, trade_id, Side.BUY, 100, lots, 0.0,
                Liquidity.MAKER)  # fmt: skip


class FakeVenue:
    """An `Execution` whose venue state the test sets: open orders, order states, trades."""

    def __init__(self) -> None:
        self.open: dict[str, OrderUpdate] = {}
        self.states: dict[str, OrderUpdate] = {}
        self.trades: list[Fill] = []
        self.sink: ExecutionSink | None = None
        self.calls: list[str] = []
        self.placed: list[OrderRequest] = []

    @property
    def venue(self) -> str:
        return "v"

    async def connect(self) -> None:
        return None

    async def run(self, sink: ExecutionSink) -> None:
        self.sink = sink
        await asyncio.Event().wait()

    def send(self, event: OrderUpdate | Fill | ExecutionStatus) -> None:
        assert self.sink is not None
        self.sink(event)

    def status(self, *, connected: bool) -> None:
        self.send(ExecutionStatus("v", 1, connected))

    async def place(self, request: OrderRequest) -> None:
        self.placed.append(request)

    async def replace(self, old_client_order_id: str, request: OrderRequest) -> None:
        del old_client_order_id
        self.placed.append(request)

    async def cancel(self, symbol: str, client_order_id: str) -> None:
        del symbol, client_order_id

    async def cancel_all(self, symbol: str) -> None:
        del symbol

    async def open_orders(self, symbol: str) -> list[OrderUpdate]:
        self.calls.append(f"open_orders {symbol}")
        return list(self.open.values())

    async def order_status(self, symbol: str, client_order_id: str) -> OrderUpdate | None:
        del symbol
        self.calls.append(f"order_status {client_order_id}")
        return self.states.get(client_order_id)

    async def trades_since(
        self,
        symbol: str,
        *,
        order_id: str = "",
        client_order_id: str = "",
        after_trade_id: str = "",
    ) -> list[Fill]:
        del symbol, after_trade_id
        self.calls.append(f"trades_since {order_id}")
        return [replace(t, client_order_id=client_order_id) for t in self.trades
                if t.exchange_order_id == order_id]  # fmt: skip

    async def close(self) -> None:
        return None


Setup = tuple[ReconciledExecution, FakeVenue, ExecutionRecorder, list[ExecutionStatus]]


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    venue = FakeVenue()
    statuses: list[ExecutionStatus] = []
    reconciled = ReconciledExecution(venue, on_status=statuses.append, clock=lambda: 7)
    assert isinstance(reconciled, Execution)
    events = ExecutionRecorder()
    task = asyncio.get_running_loop().create_task(reconciled.run(events))
    await eventually(lambda: venue.sink is not None)
    venue.status(connected=True)  # the first connection: nothing to reconcile
    try:
        yield reconciled, venue, events, statuses
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_the_first_connection_is_not_reconciled(setup: Setup) -> None:
    reconciled, venue, _, statuses = setup
    assert reconciled.reconciles == 0
    assert venue.calls == []
    assert [s.connected for s in statuses] == [True]


async def test_a_fill_delivered_twice_is_delivered_once(setup: Setup) -> None:
    _, venue, events, _ = setup
    venue.send(fill("mm1-a", "7", 4))
    venue.send(fill("mm1-a", "7", 4))
    assert [type(e) for e in events.items] == [Fill]


async def test_reconnect_recovers_the_fills_of_an_order_filled_while_down(setup: Setup) -> None:
    reconciled, venue, events, _ = setup
    venue.send(update("mm1-b", OrderStatus.OPEN))
    venue.send(fill("mm1-b", "7", 4))
    venue.send(update("mm1-b", OrderStatus.PARTIALLY_FILLED, filled=4))
    events.items.clear()
    venue.status(connected=False)
    # While down the order filled: trade 8 for the 6 lots left.
    venue.states["mm1-b"] = update("mm1-b", OrderStatus.FILLED, filled=10)
    venue.trades = [fill("", "7", 4), fill("", "8", 6)]
    venue.status(connected=True)
    await eventually(lambda: any(isinstance(e, OrderUpdate) for e in events.items))
    assert [(type(e).__name__, getattr(e, "trade_id", "")) for e in events.items] == [
        ("Fill", "8"),  # trade 7 was delivered before the drop: not again
        ("OrderUpdate", ""),
    ]
    assert isinstance(events.items[0], Fill)
    assert events.items[0].client_order_id == "mm1-b"
    last = events.items[-1]
    assert isinstance(last, OrderUpdate)
    assert last.status is OrderStatus.FILLED
    assert reconciled.reconciles == 1
    # The venue's own report of trade 8 arriving after all is not delivered again.
    venue.send(fill("mm1-b", "8", 6))
    assert len([e for e in events.items if isinstance(e, Fill)]) == 1


async def test_an_order_sent_just_before_the_drop_and_filled_is_recovered(setup: Setup) -> None:
    reconciled, venue, events, _ = setup
    await reconciled.place(OrderRequest("v", SYMBOL, "mm1-lost", Side.BUY, 100, 10))
    venue.status(connected=False)  # its acknowledgement is lost with the connection
    venue.states["mm1-lost"] = update("mm1-lost", OrderStatus.FILLED, filled=10, order_id="43")
    venue.trades = [fill("", "9", 10, order_id="43")]
    venue.status(connected=True)
    await eventually(lambda: len(events.items) == 2)
    assert [(type(e).__name__, e.client_order_id) for e in events.items] == [
        ("Fill", "mm1-lost"),
        ("OrderUpdate", "mm1-lost"),
    ]


async def test_an_order_still_open_after_the_reconnect_is_reported_open(setup: Setup) -> None:
    _, venue, events, _ = setup
    venue.send(update("mm1-c", OrderStatus.OPEN))
    events.items.clear()
    venue.status(connected=False)
    venue.open["mm1-c"] = update("mm1-c", OrderStatus.OPEN)
    venue.status(connected=True)
    got = await events.update("mm1-c", OrderStatus.OPEN)
    assert got.filled_lots == 0
    assert "order_status mm1-c" not in venue.calls  # listed open: no need to ask


@pytest.mark.parametrize(
    ("acknowledged", "final"), [(True, OrderStatus.CANCELLED), (False, OrderStatus.REJECTED)]
)
async def test_an_order_the_venue_does_not_know_ends(
    setup: Setup, acknowledged: bool, final: OrderStatus
) -> None:
    reconciled, venue, events, _ = setup
    if acknowledged:
        venue.send(update("mm1-d", OrderStatus.OPEN))
    else:
        await reconciled.place(OrderRequest("v", SYMBOL, "mm1-d", Side.BUY, 100, 10))
    venue.status(connected=False)
    venue.status(connected=True)
    got = await events.update("mm1-d", final)
    assert got.reason == "not known at the venue"


async def test_every_connection_change_reaches_the_status_listener(setup: Setup) -> None:
    _, venue, _, statuses = setup
    venue.status(connected=False)
    venue.status(connected=True)
    assert [s.connected for s in statuses] == [True, False, True]
