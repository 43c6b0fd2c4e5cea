"""Order parameters as Binance receives them, turned into engine calls (both dialects)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from mm_daemon.core.types import OrderType, Side
from mm_daemon.sim.binance.common import BinanceError, missing_param
from mm_daemon.sim.binance.http import Params
from mm_daemon.sim.matching import AccountTrade, MatchResult, OrderView
from mm_daemon.sim.venue import SimVenue, VenueSymbol

__all__ = [
    "ParsedOrder",
    "account_trades",
    "binance_type",
    "cancel_order",
    "check_filters",
    "open_orders",
    "order_ref",
    "parse_order",
    "place_order",
    "query_order",
    "side_text",
]


@dataclass(frozen=True, slots=True)
class ParsedOrder:
    side: Side
    order_type: OrderType
    size_lots: int
    price_ticks: int
    client_order_id: str | None
    reduce_only: bool
    resp_type: str


def side_text(side: Side) -> str:
    return "BUY" if side is Side.BUY else "SELL"


def binance_type(order_type: OrderType, *, spot: bool) -> tuple[str, str]:
    """(type, timeInForce) as Binance prints them for an engine order type."""
    if order_type is OrderType.LIMIT:
        return "LIMIT", "GTC"
    if order_type is OrderType.IOC:
        return "LIMIT", "IOC"
    if order_type is OrderType.LIMIT_MAKER:
        return ("LIMIT_MAKER", "GTC") if spot else ("LIMIT", "GTX")
    return "MARKET", "GTC"


def _required(params: Params, name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise missing_param(name)
    return value


def parse_order(params: Params, sym: VenueSymbol, *, spot: bool) -> ParsedOrder:
    side_raw = _required(params, "side").upper()
    if side_raw not in ("BUY", "SELL"):
        raise BinanceError(-1117, "Invalid side.")
    side = Side.BUY if side_raw == "BUY" else Side.SELL
    type_raw = _required(params, "type").upper()
    tif = params.get("timeInForce", "").upper()
    if type_raw == "LIMIT":
        if not tif:
            raise missing_param("timeInForce")
        if tif == "GTC":
            order_type = OrderType.LIMIT
        elif tif == "IOC":
            order_type = OrderType.IOC
        elif tif == "GTX" and not spot:
            order_type = OrderType.LIMIT_MAKER
        else:
            raise BinanceError(-1115, "Invalid timeInForce.")
    elif type_raw == "LIMIT_MAKER" and spot:
        order_type = OrderType.LIMIT_MAKER
    elif type_raw == "MARKET":
        order_type = OrderType.MARKET
    else:
        raise BinanceError(-1116, "Invalid orderType.")
    qty_text = _required(params, "quantity")
    size_lots = sym.fmt.parse_qty(qty_text)
    if size_lots is None or size_lots <= 0:
        raise BinanceError(-1013, "Filter failure: LOT_SIZE")
    price_ticks = 0
    if order_type is not OrderType.MARKET:
        parsed_px = sym.fmt.parse_px(_required(params, "price"))
        if parsed_px is None or parsed_px <= 0:
            raise BinanceError(-1013, "Filter failure: PRICE_FILTER")
        price_ticks = parsed_px
    client_id = params.get("newClientOrderId") or None
    reduce_only = params.get("reduceOnly", "false").lower() == "true"
    if spot and "reduceOnly" in params:
        raise BinanceError(-1106, "Parameter 'reduceOnly' sent when not required.")
    default_resp = "FULL" if spot and order_type in (OrderType.MARKET, OrderType.LIMIT) else "ACK"
    resp_type = params.get("newOrderRespType", default_resp if spot else "ACK").upper()
    return ParsedOrder(side, order_type, size_lots, price_ticks, client_id, reduce_only, resp_type)


def check_filters(
    venue: SimVenue, sym: VenueSymbol, api_key: str, order: ParsedOrder, *, replacing: bool = False
) -> None:
    """Refuse `order` the way the venue does if it breaks one of the symbol's filters."""
    if venue.filters is not None:
        venue.filters.check(
            venue,
            sym,
            api_key,
            side=order.side,
            order_type=order.order_type,
            price_ticks=order.price_ticks,
            size_lots=order.size_lots,
            reduce_only=order.reduce_only,
            now_ns=time.time_ns(),
            replacing=replacing,
        )


def order_ref(
    params: Params, *, id_key: str = "orderId", client_key: str = "origClientOrderId"
) -> tuple[int | None, str | None]:
    """(order id, client order id) a query or cancel names; one is required."""
    raw_id = params.get(id_key)
    client = params.get(client_key) or None
    order_id: int | None = None
    if raw_id:
        try:
            order_id = int(raw_id)
        except ValueError:
            raise BinanceError(
                -1100,
                f"Illegal characters found in parameter '{id_key}'; "
                "legal range is '^[0-9]{1,20}$'.",
            ) from None
    if order_id is None and client is None:
        raise BinanceError(
            -1102, f"Param '{client_key}' or '{id_key}' must be sent, but both were empty/null!"
        )
    return order_id, client


def place_order(
    venue: SimVenue, params: Params, api_key: str, *, spot: bool
) -> tuple[VenueSymbol, ParsedOrder, MatchResult]:
    """Parse a new-order request and submit it (REST and WS-API, both dialects)."""
    sym = venue.symbol(params.get("symbol"))
    order = parse_order(params, sym, spot=spot)
    check_filters(venue, sym, api_key, order)
    result = venue.submit(
        sym,
        api_key,
        side=order.side,
        order_type=order.order_type,
        size_lots=order.size_lots,
        price_ticks=order.price_ticks,
        client_order_id=order.client_order_id,
        reduce_only=order.reduce_only,
    )
    return sym, order, result


def query_order(venue: SimVenue, params: Params, api_key: str) -> tuple[VenueSymbol, OrderView]:
    """The order a query names (GET order, WS-API order.status); -2013 when unknown."""
    sym = venue.symbol(params.get("symbol"))
    order_id, client_id = order_ref(params)
    view = sym.engine.query(api_key, order_id=order_id, client_order_id=client_id)
    if not isinstance(view, OrderView):
        raise BinanceError(view.code, view.msg)
    return sym, view


def cancel_order(venue: SimVenue, params: Params, api_key: str) -> tuple[VenueSymbol, OrderView]:
    """Cancel the order a request names; its state after the cancel."""
    sym = venue.symbol(params.get("symbol"))
    order_id, client_id = order_ref(params)
    result = venue.cancel(sym, api_key, order_id, client_id)
    assert result.order is not None  # noqa: S101  a successful client cancel carries its order
    return sym, result.order


def open_orders(
    venue: SimVenue, params: Params, api_key: str
) -> list[tuple[VenueSymbol, OrderView]]:
    """The account's open orders on the named symbol, or on every symbol when none is named."""
    names = [params["symbol"]] if params.get("symbol") else list(venue.symbols)
    out: list[tuple[VenueSymbol, OrderView]] = []
    for name in names:
        sym = venue.symbol(name)
        out.extend((sym, view) for view in sym.engine.open_orders(api_key))
    return out


def account_trades(
    venue: SimVenue, params: Params, api_key: str
) -> tuple[VenueSymbol, list[AccountTrade]]:
    """The fills a myTrades / userTrades request asks for (limit 1-1000, default 500;
    optional fromId and orderId)."""
    sym = venue.symbol(params.get("symbol"))
    limit = max(1, min(int(params.get("limit", "500")), 1000))
    from_id = int(params["fromId"]) if params.get("fromId") else None
    order_id = int(params["orderId"]) if params.get("orderId") else None
    trades = sym.engine.account_trades(api_key, from_id=from_id, order_id=order_id, limit=limit)
    return sym, trades
