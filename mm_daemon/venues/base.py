"""The two narrow boundaries between the runtime and any venue.

A real exchange (through ccxt.pro), the embedded simulator and paper execution all plug in
behind these, so the engine never knows which one it talks to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from mm_daemon.core.types import (
    ExecutionEvent,
    Instrument,
    MarketEvent,
    OrderRequest,
    OrderUpdate,
)

__all__ = ["Execution", "ExecutionSink", "MarketData", "MarketSink"]

MarketSink = Callable[[MarketEvent], None]
"""Receives every market event synchronously, on the event loop, in arrival order."""

ExecutionSink = Callable[[ExecutionEvent], None]
"""Receives order updates and fills synchronously, on the event loop, in arrival order."""


@runtime_checkable
class MarketData(Protocol):
    """Public market data for a set of symbols on one venue."""

    @property
    def venue(self) -> str: ...

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        """Instruments by unified symbol, available after `connect`."""
        ...

    async def connect(self) -> None:
        """Load markets and build instruments; raises on an unknown symbol."""
        ...

    async def run(self, sink: MarketSink) -> None:
        """Stream events into `sink` until cancelled; streams retry on their own."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class Execution(Protocol):
    """Order entry and private order/fill events on one venue."""

    @property
    def venue(self) -> str: ...

    async def connect(self) -> None: ...

    async def run(self, sink: ExecutionSink) -> None:
        """Deliver order updates and fills into `sink` until cancelled."""
        ...

    async def place(self, request: OrderRequest) -> None:
        """Send a new order; its outcome arrives as OrderUpdate/Fill events."""
        ...

    async def replace(self, old_client_order_id: str, request: OrderRequest) -> None:
        """Cancel `old_client_order_id` and place `request`, in one message where possible."""
        ...

    async def cancel(self, symbol: str, client_order_id: str) -> None: ...

    async def cancel_all(self, symbol: str) -> None: ...

    async def open_orders(self, symbol: str) -> list[OrderUpdate]:
        """The venue's view of our open orders, for startup reconcile."""
        ...

    async def close(self) -> None: ...
