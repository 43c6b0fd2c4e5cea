"""Reconciliation with the venue, written once for every venue and every order-entry path.

`ReconciledExecution` wraps an `Execution` (Binance's WS-API, ccxt, paper) and is what the
order manager and the hedger talk to. It keeps what the venue has delivered (`Delivered`: the
orders known as live, the recent fills' trade ids) and, every time the venue's private
connection comes back (an `ExecutionStatus` saying connected, after the first), asks the venue
about each order it knew as live, the ones whose acknowledgement was lost included:

1. `open_orders`, then `order_status` of each known order no longer open (an order the venue
   does not know any more is final: REJECTED if it was never acknowledged, else CANCELLED);
2. for each order that filled more than was delivered, its fills (`trades_since` the order),
   delivered before its state;
3. every fill is delivered once, by trade id, whichever way it arrives (the stream replaying
   it after a reconnect, or the reconcile finding it).

A failed pass (the venue dropped again) is retried at the next reconnect.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace

import structlog

from mm_daemon.core.types import (
    AccountPosition,
    ExecutionStatus,
    Fill,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
)
from mm_daemon.venues.base import Execution, ExecutionSink

__all__ = ["Delivered", "ReconciledExecution"]

log = structlog.get_logger(__name__)

TRADE_IDS_KEPT = 4_096  # fills remembered: one replayed after a reconnect is dropped


class Delivered:
    """Orders known as live by client id (their last update) and the recent fills' trade ids."""

    __slots__ = ("_trade_ids", "live")

    def __init__(self) -> None:
        self.live: dict[str, OrderUpdate] = {}
        self._trade_ids: dict[str, None] = {}  # oldest first

    def admit(self, event: OrderUpdate | Fill) -> bool:
        """Record `event`; False for a fill already delivered (drop it)."""
        if isinstance(event, OrderUpdate):
            if event.status.is_terminal:
                self.live.pop(event.client_order_id, None)
            elif event.client_order_id:
                self.live[event.client_order_id] = event
            return True
        if not event.trade_id:
            return True
        trade_ids = self._trade_ids
        if event.trade_id in trade_ids:
            return False
        trade_ids[event.trade_id] = None
        if len(trade_ids) > TRADE_IDS_KEPT:
            del trade_ids[next(iter(trade_ids))]
        return True

    def sent(self, request: OrderRequest, now_ns: int) -> None:
        """An order whose acknowledgement may be lost with the connection: after a reconnect
        the venue is asked for its state (it may rest, or have filled, meanwhile)."""
        self.live.setdefault(
            request.client_order_id, request.as_update(OrderStatus.PENDING_NEW, now_ns)
        )


class ReconciledExecution:
    """An `Execution` that delivers each fill once and reconciles after every reconnect."""

    def __init__(
        self,
        inner: Execution,
        *,
        on_status: Callable[[ExecutionStatus], None] | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.inner = inner
        self.delivered = Delivered()
        self._on_status = on_status
        self._clock = clock
        self._sink: ExecutionSink | None = None
        self._connected_once = False
        self._reconciling: asyncio.Task[None] | None = None
        self.reconciles = 0

    @property
    def venue(self) -> str:
        return self.inner.venue

    # -- events ------------------------------------------------------------------------------

    async def run(self, sink: ExecutionSink) -> None:
        self._sink = sink
        try:
            await self.inner.run(self._deliver)
        finally:
            if self._reconciling is not None:
                self._reconciling.cancel()
            self._sink = None

    def _deliver(self, event: OrderUpdate | Fill | ExecutionStatus) -> None:
        if type(event) is ExecutionStatus:
            self._status(event)
            return
        assert not isinstance(event, ExecutionStatus)  # noqa: S101  narrowed for the checker
        if self.delivered.admit(event) and self._sink is not None:
            self._sink(event)

    def _status(self, status: ExecutionStatus) -> None:
        if self._on_status is not None:
            self._on_status(status)
        if not status.connected:
            return
        if not self._connected_once:
            self._connected_once = True  # nothing can have been missed before the first one
            return
        if self._reconciling is None or self._reconciling.done():
            self._reconciling = asyncio.get_running_loop().create_task(self._reconcile_task())

    async def _reconcile_task(self) -> None:
        try:
            await self.reconcile()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001  reconciled again at the next reconnect
            log.warning("reconcile failed", venue=self.venue, error=repr(exc))

    async def reconcile(self, symbols: tuple[str, ...] | None = None) -> None:
        """Bring every order known as live up to the venue's view (see the module doc)."""
        self.reconciles += 1
        known = dict(self.delivered.live)
        if symbols is None:
            symbols = tuple(sorted({u.symbol for u in known.values()}))
        current: dict[str, OrderUpdate] = {}
        for symbol in symbols:
            current.update({u.client_order_id: u for u in await self.inner.open_orders(symbol)})
        for client_id, last in known.items():
            if client_id in current:
                continue
            status = await self.inner.order_status(last.symbol, client_id)
            if status is not None:
                update = status
            else:
                acknowledged = last.status is not OrderStatus.PENDING_NEW
                now = self._clock()
                update = replace(
                    last,
                    ts_exchange_ns=now,
                    ts_local_ns=now,
                    status=OrderStatus.CANCELLED if acknowledged else OrderStatus.REJECTED,
                    reason="not known at the venue",
                )
            current[client_id] = update
        for client_id, venue_view in current.items():
            seen = known.get(client_id)
            if seen is not None and venue_view.filled_lots > seen.filled_lots:
                fills = await self.inner.trades_since(
                    venue_view.symbol,
                    order_id=venue_view.exchange_order_id,
                    client_order_id=client_id,
                )
                for fill in fills:
                    self._deliver(fill)
            self._deliver(venue_view)

    # -- order entry --------------------------------------------------------------------------

    async def connect(self) -> None:
        await self.inner.connect()

    async def place(self, request: OrderRequest) -> None:
        self.delivered.sent(request, self._clock())
        await self.inner.place(request)

    async def replace(self, old_client_order_id: str, request: OrderRequest) -> None:
        self.delivered.sent(request, self._clock())
        await self.inner.replace(old_client_order_id, request)

    async def cancel(self, symbol: str, client_order_id: str) -> None:
        await self.inner.cancel(symbol, client_order_id)

    async def cancel_all(self, symbol: str) -> None:
        await self.inner.cancel_all(symbol)

    async def open_orders(self, symbol: str) -> list[OrderUpdate]:
        return await self.inner.open_orders(symbol)

    async def order_status(self, symbol: str, client_order_id: str) -> OrderUpdate | None:
        return await self.inner.order_status(symbol, client_order_id)

    async def trades_since(
        self,
        symbol: str,
        *,
        order_id: str = "",
        client_order_id: str = "",
        after_trade_id: str = "",
    ) -> list[Fill]:
        return await self.inner.trades_since(
            symbol,
            order_id=order_id,
            client_order_id=client_order_id,
            after_trade_id=after_trade_id,
        )

    async def account_position(self, symbol: str) -> AccountPosition:
        return await self.inner.account_position(symbol)

    async def close(self) -> None:
        await self.inner.close()
