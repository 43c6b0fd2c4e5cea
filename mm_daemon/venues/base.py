"""The narrow boundaries between the runtime and any venue.

A real exchange (through ccxt.pro or Binance's own protocol), the embedded simulator and paper
execution all plug in behind `MarketData` and `Execution`, so the engine never knows which one
it talks to. Adapters report their own health through `MarketDataReporter` (counters, a latency
histogram, gauges), which the engine maps onto its metrics: an adapter knows no metric names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from mm_daemon.core.budget import RateLimit
from mm_daemon.core.types import (
    AccountPosition,
    ExecutionEvent,
    ExecutionStatus,
    Fill,
    FundingFee,
    Instrument,
    MarketEvent,
    OrderRequest,
    OrderUpdate,
)

__all__ = [
    "Counter",
    "Execution",
    "ExecutionSink",
    "FundingHistory",
    "Gauge",
    "Histogram",
    "MarketData",
    "MarketDataReporter",
    "MarketSink",
    "RateLimitObserver",
]

MarketSink = Callable[[MarketEvent], None]
"""Receives every market event synchronously, on the event loop, in arrival order."""

ExecutionSink = Callable[[ExecutionEvent | ExecutionStatus], None]
"""Receives order updates, fills and connection changes synchronously, on the event loop, in
arrival order."""


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
class FundingHistory(Protocol):
    """A live perpetual account's funding payments, as the venue lists them (Binance:
    `GET /fapi/v1/income` with incomeType FUNDING_FEE)."""

    async def funding_fees(self, symbol: str, start_ms: int) -> list[FundingFee]:
        """Every funding payment on `symbol` at or after `start_ms`, oldest first."""
        ...

    async def funding_settled(self) -> None:
        """Return when the venue says a settlement happened (its user-data event), so the
        history is read at once; a venue that cannot say never returns."""
        ...


@runtime_checkable
class Execution(Protocol):
    """Order entry and private order/fill events on one venue."""

    @property
    def venue(self) -> str: ...

    async def connect(self) -> None: ...

    async def run(self, sink: ExecutionSink) -> None:
        """Deliver order updates, fills and connection changes into `sink` until cancelled;
        a lost connection is reopened with backoff (`ExecutionStatus` says when)."""
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
        """The venue's view of our open orders on `symbol`."""
        ...

    async def order_status(self, symbol: str, client_order_id: str) -> OrderUpdate | None:
        """The venue's view of one of our orders, open or final; None when it knows none."""
        ...

    async def trades_since(
        self,
        symbol: str,
        *,
        order_id: str = "",
        client_order_id: str = "",
        after_trade_id: str = "",
    ) -> list[Fill]:
        """Our account's fills on `symbol`, oldest first: those of one order (`order_id`, the
        venue's id; `client_order_id` labels them), or every one after `after_trade_id`."""
        ...

    async def account_position(self, symbol: str) -> AccountPosition:
        """What the account holds of `symbol` now, and its latest trade there."""
        ...

    async def close(self) -> None: ...


class RateLimitObserver(Protocol):
    """Where an order entry reports what its venue says of the account's rate limits (the
    engine's order budget for that venue)."""

    def on_limits(self, limits: tuple[RateLimit, ...]) -> None:
        """The limits the venue publishes (its `exchangeInfo`)."""
        ...

    def on_usage(self, usage: list[tuple[RateLimit, int]], answered_orders: int) -> None:
        """The venue's counts in an answer to a request that placed `answered_orders` orders."""
        ...

    def on_limit_error(self, retry_after_ns: int, *, orders_only: bool) -> None:
        """The venue refused for a limit: wait `retry_after_ns` (new orders only, or every
        request)."""
        ...

    def on_time_offset(self, offset_ns: int) -> None:
        """The venue's clock minus ours (its windows start on its clock)."""
        ...


class Counter(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class Histogram(Protocol):
    def observe(self, amount: float) -> None: ...


class Gauge(Protocol):
    def set(self, value: float) -> None: ...


class MarketDataReporter(Protocol):
    """Where a market-data adapter reports the health of its streams, per venue and symbol."""

    def reconnects(self, venue: str, symbol: str) -> Counter: ...

    def resyncs(self, venue: str, symbol: str) -> Counter: ...

    def malformed(self, venue: str) -> Counter: ...

    def trades(self, venue: str, symbol: str) -> Counter: ...

    def book_updates(self, venue: str, symbol: str) -> Counter: ...

    def latency(self, venue: str, symbol: str) -> Histogram:
        """Seconds from the exchange's event time to our receipt."""
        ...

    def stale(self, venue: str, symbol: str) -> Gauge: ...

    def best_bid(self, venue: str, symbol: str) -> Gauge: ...

    def best_ask(self, venue: str, symbol: str) -> Gauge: ...
