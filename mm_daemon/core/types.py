"""Domain types shared by every layer: instruments, sides, orders, and market/execution events.

Prices are integer ticks and sizes integer lots; the adapters convert at the edge with the
instrument's tick and lot. Every event carries the exchange's timestamp and ours, in ns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum, StrEnum

__all__ = [
    "AccountPosition",
    "BookDelta",
    "BookLevels",
    "BookSnapshot",
    "CancelRequest",
    "Event",
    "ExecutionEvent",
    "ExecutionStatus",
    "Fill",
    "FundingFee",
    "Instrument",
    "InstrumentKind",
    "Liquidity",
    "MarkPrice",
    "MarketEvent",
    "MarketStatus",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "OrderUpdate",
    "Side",
    "Trade",
]


class Side(IntEnum):
    """Order or aggressor side; the value is the sign of the position change."""

    BUY = 1
    SELL = -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class InstrumentKind(StrEnum):
    SPOT = "spot"
    PERPETUAL = "perpetual"


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


class OrderType(StrEnum):
    LIMIT = "limit"
    LIMIT_MAKER = "limit_maker"  # post-only: rejected if it would cross
    IOC = "ioc"
    MARKET = "market"


class OrderStatus(StrEnum):
    PENDING_NEW = "pending_new"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    PENDING_CANCEL = "pending_cancel"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_STATUSES


_TERMINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable market on one venue, with the filters an order must pass."""

    venue: str
    symbol: str  # unified ccxt symbol, e.g. "BTC/USDT" or "BTC/USDT:USDT"
    exchange_symbol: str  # the venue's own id, e.g. "BTCUSDT"
    kind: InstrumentKind
    base: str
    quote: str
    tick_size: float
    lot_size: float
    min_notional_quote: float = 0.0
    min_size_lots: int = 1
    contract_size_base: float = 1.0  # base units per contract (1 for spot and Binance linear)
    maker_fee_rate: float = 0.001  # fraction of notional; negative means a rebate
    taker_fee_rate: float = 0.001
    # The venue's other filters (`core.filters`); 0 leaves a rule out.
    min_price_ticks: int = 0  # PRICE_FILTER minPrice
    max_price_ticks: int = 0  # PRICE_FILTER maxPrice
    max_size_lots: int = 0  # LOT_SIZE maxQty
    max_notional_quote: float = 0.0  # NOTIONAL maxNotional
    # PERCENT_PRICE_BY_SIDE (spot, around the average price) or PERCENT_PRICE (USD-M, around the
    # mark price): (bid up, bid down, ask up, ask down) multipliers.
    percent_price: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    max_num_orders: int = 0  # MAX_NUM_ORDERS: open orders of the account on the symbol

    def price_to_ticks(self, price: float) -> int:
        return round(price / self.tick_size)

    def ticks_to_price(self, ticks: int) -> float:
        # Round to the tick's decimals so 65000.01 prints as such, not 65000.010000000002.
        return round(ticks * self.tick_size, self.price_decimals)

    def size_to_lots(self, size: float) -> int:
        return round(size / self.lot_size)

    def lots_to_size(self, lots: int) -> float:
        return round(lots * self.lot_size, self.size_decimals)

    def lots_to_base(self, lots: int) -> float:
        """Base-currency amount of `lots` (contracts times contract size for derivatives)."""
        return lots * self.lot_size * self.contract_size_base

    def notional_quote(self, price_ticks: int, size_lots: int) -> float:
        return self.ticks_to_price(price_ticks) * self.lots_to_base(size_lots)

    @property
    def price_decimals(self) -> int:
        return _decimals(self.tick_size)

    @property
    def size_decimals(self) -> int:
        return _decimals(self.lot_size)


def _decimals(step: float) -> int:
    if step >= 1:
        return 0
    return max(0, math.ceil(-math.log10(step) - 1e-9))


BookLevels = tuple[tuple[int, int], ...]
"""(price_ticks, size_lots) pairs; bids best first (descending), asks best first (ascending)."""


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    venue: str
    symbol: str
    ts_exchange_ns: int
    ts_local_ns: int
    update_id: int
    bids: BookLevels
    asks: BookLevels


@dataclass(frozen=True, slots=True)
class BookDelta:
    """Absolute sizes per level: 0 deletes the level.

    first_update_id/last_update_id are Binance's U/u; prev_update_id is USD-M's `pu`
    (-1 where the venue sends none).
    """

    venue: str
    symbol: str
    ts_exchange_ns: int
    ts_local_ns: int
    first_update_id: int
    last_update_id: int
    prev_update_id: int
    bids: BookLevels
    asks: BookLevels


@dataclass(frozen=True, slots=True)
class Trade:
    venue: str
    symbol: str
    ts_exchange_ns: int
    ts_local_ns: int
    trade_id: int
    price_ticks: int
    size_lots: int
    aggressor: Side


@dataclass(frozen=True, slots=True)
class MarketStatus:
    """Raised by the runtime when a market goes stale or recovers, or its book resyncs."""

    venue: str
    symbol: str
    ts_local_ns: int
    stale: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class MarkPrice:
    """A perpetual's mark price and funding (Binance's `markPriceUpdate`): the rate the next
    settlement will apply (an estimate until then) and when that settlement is."""

    venue: str
    symbol: str
    ts_exchange_ns: int
    ts_local_ns: int
    mark_price: float
    index_price: float
    funding_rate: float
    next_funding_time_ns: int


@dataclass(frozen=True, slots=True)
class FundingFee:
    """A funding payment settled on a perpetual position: received > 0, paid < 0 (quote).

    `payment_id` is the venue's (Binance's income `tranId`), or the settlement time on paper.
    `rate` and `position_base` are known on paper; a venue's income record has neither."""

    venue: str
    symbol: str
    funding_time_ns: int
    amount_quote: float
    asset: str
    payment_id: str
    rate: float | None = None
    position_base: float | None = None
    mark_price: float | None = None


@dataclass(frozen=True, slots=True)
class OrderRequest:
    venue: str
    symbol: str
    client_order_id: str
    side: Side
    price_ticks: int
    size_lots: int
    order_type: OrderType = OrderType.LIMIT_MAKER
    reduce_only: bool = False
    ts_decided_ns: int = 0  # when the core decided it (tick-to-quote starts at the event)

    def as_update(
        self, status: OrderStatus, now_ns: int, reason: str = "", venue: str = ""
    ) -> OrderUpdate:
        """This order's state before the venue said anything of it (sent, refused, lost)."""
        return OrderUpdate(
            venue or self.venue,
            self.symbol,
            now_ns,
            now_ns,
            self.client_order_id,
            "",
            status,
            self.side,
            self.price_ticks,
            self.size_lots,
            0,
            reason,
        )


@dataclass(frozen=True, slots=True)
class CancelRequest:
    venue: str
    symbol: str
    client_order_id: str


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    venue: str
    symbol: str
    ts_exchange_ns: int
    ts_local_ns: int
    client_order_id: str
    exchange_order_id: str
    status: OrderStatus
    side: Side
    price_ticks: int
    size_lots: int
    filled_lots: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Fill:
    venue: str
    symbol: str
    ts_exchange_ns: int
    ts_local_ns: int
    client_order_id: str
    exchange_order_id: str
    trade_id: str
    side: Side
    price_ticks: int
    size_lots: int
    fee_quote: float  # positive is a cost, negative a rebate, in the quote currency
    liquidity: Liquidity


@dataclass(frozen=True, slots=True)
class ExecutionStatus:
    """An order-entry connection went down or came back; the engine reconciles with the venue
    after every return (what filled while it was down never reached the private stream)."""

    venue: str
    ts_local_ns: int
    connected: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AccountPosition:
    """What an account holds of one instrument, as its venue reports it (a restart compares
    it with the journal's position)."""

    venue: str
    symbol: str
    lots: int  # spot: the base balance, free and locked; perpetual: the signed position
    last_trade_id: str  # the account's latest trade on the symbol; "" when it has none


MarketEvent = BookSnapshot | BookDelta | Trade | MarketStatus | MarkPrice
ExecutionEvent = OrderUpdate | Fill
Event = MarketEvent | ExecutionEvent
