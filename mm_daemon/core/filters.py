"""The venue's symbol filters, checked before an order is sent (pure).

Binance refuses an order that breaks one of its symbol's `exchangeInfo` filters (spot
`filters.md`; USD-M "Filters"): PRICE_FILTER (min and max price, a whole number of ticks),
LOT_SIZE (min and max quantity, whole steps), NOTIONAL (spot: price x quantity within min and max)
or MIN_NOTIONAL (USD-M), PERCENT_PRICE_BY_SIDE (spot: the price within multipliers of the
average price, by side) or PERCENT_PRICE (USD-M: of the mark price), and MAX_NUM_ORDERS (open
orders of the account on the symbol). Prices are whole ticks and sizes whole lots here, so the
tick and step rules hold by construction; the rest is checked against the instrument's filters
(`Instrument.min_price_ticks` and the fields after it; 0 leaves a rule out), with our fair value
standing for the venue's reference price.
"""

from __future__ import annotations

from mm_daemon.core.types import Instrument, InstrumentKind, OrderRequest, OrderType, Side

__all__ = ["check_filters"]

_EPSILON = 1e-9


def check_filters(
    instrument: Instrument,
    request: OrderRequest,
    reference_ticks: float,
    *,
    open_orders: int = 0,
) -> str | None:
    """The name of the first filter `request` breaks (as the venue names it), else None.

    `reference_ticks` stands for the venue's reference price (0: unknown, its rules are
    skipped); `open_orders` counts the account's other open orders on the symbol.
    """
    spot = instrument.kind is InstrumentKind.SPOT
    price = request.price_ticks
    priced = request.order_type is not OrderType.MARKET
    if priced:
        if price <= 0:
            return "PRICE_FILTER"
        if instrument.min_price_ticks and price < instrument.min_price_ticks:
            return "PRICE_FILTER"
        if instrument.max_price_ticks and price > instrument.max_price_ticks:
            return "PRICE_FILTER"
    lots = request.size_lots
    if lots < max(1, instrument.min_size_lots) or (
        instrument.max_size_lots and lots > instrument.max_size_lots
    ):
        return "LOT_SIZE"
    notional_price = price if priced else reference_ticks
    if notional_price > 0:
        notional = instrument.tick_size * notional_price * instrument.lots_to_base(lots)
        if notional + _EPSILON < instrument.min_notional_quote:
            return "NOTIONAL" if spot else "MIN_NOTIONAL"
        if instrument.max_notional_quote and notional > instrument.max_notional_quote:
            return "NOTIONAL"
    if (
        priced
        and reference_ticks > 0
        and _outside_band(instrument, request.side, price, reference_ticks)
    ):
        return "PERCENT_PRICE_BY_SIDE" if spot else "PERCENT_PRICE"
    if instrument.max_num_orders and open_orders + 1 > instrument.max_num_orders:
        return "MAX_NUM_ORDERS"
    return None


def _outside_band(instrument: Instrument, side: Side, price: int, reference: float) -> bool:
    bid_up, bid_down, ask_up, ask_down = instrument.percent_price
    up, down = (bid_up, bid_down) if side is Side.BUY else (ask_up, ask_down)
    if up and price > reference * up:
        return True
    return bool(down and price < reference * down)
