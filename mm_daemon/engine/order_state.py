"""The order manager's vocabulary: its settings, its view of one order, and the reject reasons it
counts by."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mm_daemon.core.types import OrderStatus, Side

if TYPE_CHECKING:
    from mm_daemon.config import QuotingConfig, RiskConfig
    from mm_daemon.core.quoting import Quotes
    from mm_daemon.core.types import Instrument, OrderUpdate
    from mm_daemon.engine.metrics import Metrics

__all__ = [
    "REJECT_REASONS",
    "STATUS_RANK",
    "LiveOrder",
    "OrderManagerSettings",
    "OrderMetrics",
    "adopted_orders",
    "reject_reason_label",
]

_NS = 1_000_000_000
_LIVE = frozenset(
    {
        OrderStatus.PENDING_NEW,
        OrderStatus.OPEN,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PENDING_CANCEL,
    }
)
STATUS_RANK = {  # how far along an order's life a status is; updates never move an order backwards
    OrderStatus.PENDING_NEW: 0,
    OrderStatus.OPEN: 1,
    OrderStatus.PARTIALLY_FILLED: 2,
    OrderStatus.PENDING_CANCEL: 3,
    OrderStatus.FILLED: 4,
    OrderStatus.CANCELLED: 4,
    OrderStatus.REJECTED: 4,
    OrderStatus.EXPIRED: 4,
}


@dataclass(frozen=True, slots=True)
class OrderManagerSettings:
    """The manager's knobs in plain values (`from_config` reads them from the YAML)."""

    price_tolerance_ticks: int = 1
    price_tolerance_bps: float = 0.0
    size_tolerance_fraction: float = 0.2
    max_order_age_ns: int = 60 * _NS
    order_timeout_ns: int = 5 * _NS
    debounce_ns: int = 0
    max_open_orders_per_side: int = 5

    @classmethod
    def from_config(cls, quoting: QuotingConfig, risk: RiskConfig) -> OrderManagerSettings:
        return cls(
            price_tolerance_ticks=quoting.price_tolerance_ticks,
            price_tolerance_bps=quoting.price_tolerance_bps,
            size_tolerance_fraction=quoting.size_tolerance_fraction,
            max_order_age_ns=int(quoting.max_order_age_seconds * _NS),
            order_timeout_ns=int(quoting.order_timeout_seconds * _NS),
            debounce_ns=int(quoting.debounce_seconds * _NS),
            max_open_orders_per_side=risk.max_open_orders_per_side,
        )


@dataclass(slots=True)
class LiveOrder:
    """Our view of one order."""

    client_order_id: str
    side: Side
    level: int
    price_ticks: int
    size_lots: int
    status: OrderStatus
    created_ns: int
    status_ns: int  # when the status last changed (in-flight timeouts run from here)
    filled_lots: int = 0  # cumulative, the larger of what updates and fills say
    fills_lots: int = 0  # sum of the Fill events seen
    exchange_order_id: str = ""
    reason: str = ""

    @property
    def remaining_lots(self) -> int:
        return max(0, self.size_lots - self.filled_lots)

    @property
    def in_flight(self) -> bool:
        status = self.status
        return status is OrderStatus.PENDING_NEW or status is OrderStatus.PENDING_CANCEL

    @property
    def live(self) -> bool:
        return self.status in _LIVE


def adopted_orders(updates: Iterable[OrderUpdate], now_ns: int) -> list[LiveOrder]:
    """Our view of the open orders an earlier run left at the venue: levels by distance from
    the touch (nearest first) on each side, as the quoter numbers them."""
    open_orders = [u for u in updates if not u.status.is_terminal]
    adopted = []
    for side in (Side.BUY, Side.SELL):
        mine = sorted(
            (u for u in open_orders if u.side is side),
            key=lambda u: -u.price_ticks if side is Side.BUY else u.price_ticks,
        )
        adopted += [
            LiveOrder(
                u.client_order_id,
                side,
                level,
                u.price_ticks,
                u.size_lots,
                OrderStatus.OPEN if u.filled_lots == 0 else OrderStatus.PARTIALLY_FILLED,
                now_ns,
                now_ns,
                filled_lots=u.filled_lots,
                fills_lots=u.filled_lots,
                exchange_order_id=u.exchange_order_id,
            )
            for level, u in enumerate(mine)
        ]
    return adopted


class OrderMetrics:
    """One market's order series: actions, tick-to-quote, open orders and quoted prices (the
    gauges set only when a value changed: most events change none)."""

    def __init__(self, metrics: Metrics, market: str, instrument: Instrument) -> None:
        self.metrics = metrics
        self.market = market
        self.place = metrics.orders.labels(market, "place")
        self.replace = metrics.orders.labels(market, "replace")
        self.cancel = metrics.orders.labels(market, "cancel")
        self.tick_to_quote = metrics.tick_to_quote.labels(market)
        self._open_buy = metrics.open_orders.labels(market, "buy")
        self._open_sell = metrics.open_orders.labels(market, "sell")
        self._tick_size = instrument.tick_size
        self._price_decimals = instrument.price_decimals
        self._quote_gauges: dict[tuple[Side, int], Any] = {}
        self._published: object = None
        self._published_counts: tuple[int, int] | None = None

    def publish_quotes(self, quotes: Quotes) -> None:
        published = (quotes.bids, quotes.asks)
        if published == self._published:
            return
        self._published = published
        for quote in quotes.bids + quotes.asks:
            key = (quote.side, quote.level)
            gauge = self._quote_gauges.get(key)
            if gauge is None:
                gauge = self.metrics.quote_price.labels(
                    self.market, quote.side.name.lower(), str(quote.level)
                )
                self._quote_gauges[key] = gauge
            gauge.set(round(quote.price_ticks * self._tick_size, self._price_decimals))
        if quotes.bids and quotes.asks:
            bid = quotes.bids[0].price_ticks
            ask = quotes.asks[0].price_ticks
            mid = (bid + ask) / 2.0
            self.metrics.quoted_spread_bps.labels(self.market).set((ask - bid) / mid * 1e4)

    def publish_open_orders(self, orders: Iterable[LiveOrder]) -> None:
        bids = asks = 0
        for order in orders:
            if order.side is Side.BUY:
                bids += 1
            else:
                asks += 1
        counts = (bids, asks)
        if counts == self._published_counts:
            return
        self._published_counts = counts
        self._open_buy.set(bids)
        self._open_sell.set(asks)


REJECT_REASONS = ("post_only", "rate_limit", "balance", "filter", "other", "error")
"""Every label `reject_reason_label` gives, plus "error" for a send that failed outright."""


def reject_reason_label(reason: str) -> str:
    """A short, bounded metric label from a venue's reject text."""
    text = reason.lower()
    if "post" in text or "immediately match" in text or "would cross" in text:
        return "post_only"
    if "rate" in text or "too many" in text or "too much" in text or "banned" in text:
        return "rate_limit"
    if "balance" in text or "insufficient" in text:
        return "balance"
    if "notional" in text or "lot" in text or "filter" in text:
        return "filter"
    return "other"
