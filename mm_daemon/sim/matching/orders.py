"""An order's mutable state inside the matching engine, and Binance's order filters.

`Order` is shared by the engine (which owns it: ids, status, fills, locks), the displayed book
it rests in, and the account settlement; wire layers see it only as an `OrderView`.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from mm_daemon.core.types import Instrument, OrderType, Side
from mm_daemon.sim.matching.accounts import Account
from mm_daemon.sim.matching.results import (
    ERR_LOT_SIZE,
    ERR_NOTIONAL,
    ERR_PRICE_FILTER,
    OrderView,
    SimError,
    SimOrderStatus,
)

if TYPE_CHECKING:
    from mm_daemon.sim.matching.book import Level

__all__ = ["Order", "check_filters", "parse_price_ticks", "parse_size_lots"]


class Order:
    """One order: client (with its `account`) or background (`account` None).

    `dead` and `level` belong to the price-time book: `level` is the level whose queue holds
    the order, `dead` marks an order that has left that level but may still sit in its queue
    (the book removes orders lazily)."""

    __slots__ = (
        "account",
        "api_key",
        "client_order_id",
        "cum_quote",
        "dead",
        "filled",
        "level",
        "locked",
        "order_id",
        "order_type",
        "orig",
        "price",
        "reduce_only",
        "side",
        "status",
        "ts_ns",
        "update_ts_ns",
    )

    def __init__(
        self,
        *,
        order_id: int,
        api_key: str,
        account: Account | None,
        client_order_id: str,
        side: Side,
        order_type: OrderType,
        price: int,
        orig: int,
        ts_ns: int,
        reduce_only: bool,
    ) -> None:
        self.order_id = order_id
        self.api_key = api_key
        self.account = account
        self.client_order_id = client_order_id
        self.side = side
        self.order_type = order_type
        self.price = price
        self.orig = orig
        self.filled = 0
        self.cum_quote = 0.0
        self.locked = 0.0  # balance still locked by this order (quote or base)
        self.status = SimOrderStatus.NEW
        self.ts_ns = ts_ns
        self.update_ts_ns = ts_ns
        self.reduce_only = reduce_only
        self.dead = False
        self.level: Level | None = None

    @property
    def remaining(self) -> int:
        return self.orig - self.filled

    def view(self) -> OrderView:
        return OrderView(
            api_key=self.api_key,
            order_id=self.order_id,
            client_order_id=self.client_order_id,
            side=self.side,
            order_type=self.order_type,
            price_ticks=self.price,
            orig_lots=self.orig,
            executed_lots=self.filled,
            cum_quote=self.cum_quote,
            status=self.status,
            ts_ns=self.ts_ns,
            update_ts_ns=self.update_ts_ns,
            reduce_only=self.reduce_only,
        )


# -- filters -----------------------------------------------------------------------------------


def check_filters(
    instrument: Instrument,
    min_notional_units: float,
    order_type: OrderType,
    price_ticks: int,
    size_lots: int,
) -> SimError | None:
    """PRICE_FILTER, LOT_SIZE and NOTIONAL for an order in ticks and lots (`min_notional_units`
    is the minimum notional in price x lots units)."""
    if order_type is not OrderType.MARKET and price_ticks <= 0:
        return ERR_PRICE_FILTER
    if size_lots <= 0 or size_lots < instrument.min_size_lots:
        return ERR_LOT_SIZE
    if order_type is OrderType.MARKET:
        return None
    if price_ticks * size_lots < min_notional_units - 1e-9:
        return ERR_NOTIONAL
    return None


def _parse_steps(text: str | float, step: float) -> int | None:
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    steps = value / Decimal(str(step))
    if steps != steps.to_integral_value():
        return None
    return int(steps)


def parse_price_ticks(instrument: Instrument, text: str | float) -> int | SimError:
    """Exact price -> ticks, or PRICE_FILTER when it is not a positive multiple of the tick."""
    ticks = _parse_steps(text, instrument.tick_size)
    if ticks is None or ticks <= 0:
        return ERR_PRICE_FILTER
    return ticks


def parse_size_lots(instrument: Instrument, text: str | float) -> int | SimError:
    """Exact quantity -> lots, or LOT_SIZE when it is not a positive multiple of the lot."""
    lots = _parse_steps(text, instrument.lot_size)
    if lots is None or lots <= 0:
        return ERR_LOT_SIZE
    return lots
