"""Binance spot wire protocol: REST under /api/v3, market streams at /ws and /stream, and the
WS-API at /ws-api/v3 (user data by signature subscription, order entry)."""

from __future__ import annotations

import time
import zlib
from typing import Any

import orjson
from aiohttp import web

from mm_daemon.core.types import Side
from mm_daemon.sim.binance.common import BinanceError, malformed_params, server_time_ms
from mm_daemon.sim.binance.http import (
    VENUE_KEY,
    Params,
    PrivateHandler,
    add_stream_routes,
    depth,
    listen_key_endpoint,
    make_base_app,
    ping,
    private,
    public,
    rest,
    server_time,
    text_frames,
    user_data_sink,
    websocket,
    ws_api_params,
)
from mm_daemon.sim.binance.limits import WsApiLimits, published_rate_limits
from mm_daemon.sim.binance.orders import (
    account_trades,
    binance_type,
    cancel_order,
    check_filters,
    open_orders,
    order_ref,
    parse_order,
    place_order,
    query_order,
    side_text,
)
from mm_daemon.sim.binance.streams import Connection
from mm_daemon.sim.matching import ExecType, ExecutionReport, MatchResult, OrderView
from mm_daemon.sim.venue import SimVenue, UserSink, VenueSymbol

__all__ = ["exchange_info", "make_spot_app"]

_MS = 1_000_000


def _d8(value: float) -> str:
    return f"{value:.8f}"


def _filters(sym: VenueSymbol) -> list[dict[str, Any]]:
    inst = sym.instrument
    fmt = sym.fmt
    return [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": fmt.px(1),
            "maxPrice": _d8(1_000_000.0),
            "tickSize": fmt.px(1),
        },
        {
            "filterType": "LOT_SIZE",
            "minQty": fmt.qty(max(1, inst.min_size_lots)),
            "maxQty": _d8(9000.0),
            "stepSize": fmt.qty(1),
        },
        {"filterType": "ICEBERG_PARTS", "limit": 10},
        {
            "filterType": "MARKET_LOT_SIZE",
            "minQty": _d8(0.0),
            "maxQty": _d8(100.0),
            "stepSize": _d8(0.0),
        },
        {
            "filterType": "TRAILING_DELTA",
            "minTrailingAboveDelta": 10,
            "maxTrailingAboveDelta": 2000,
            "minTrailingBelowDelta": 10,
            "maxTrailingBelowDelta": 2000,
        },
        {
            "filterType": "PERCENT_PRICE_BY_SIDE",
            "bidMultiplierUp": "5",
            "bidMultiplierDown": "0.2",
            "askMultiplierUp": "5",
            "askMultiplierDown": "0.2",
            "avgPriceMins": 5,
        },
        {
            "filterType": "NOTIONAL",
            "minNotional": _d8(inst.min_notional_quote),
            "applyMinToMarket": True,
            "maxNotional": _d8(9000000.0),
            "applyMaxToMarket": False,
            "avgPriceMins": 5,
        },
        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
    ]


def exchange_info(venue: SimVenue, now_ms: int) -> dict[str, Any]:
    symbols = []
    for name, sym in venue.symbols.items():
        inst = sym.instrument
        symbols.append(
            {
                "symbol": name,
                "status": "BREAK" if venue.halted(sym, now_ms * _MS) else "TRADING",
                "baseAsset": inst.base,
                "baseAssetPrecision": 8,
                "quoteAsset": inst.quote,
                "quotePrecision": 8,
                "quoteAssetPrecision": 8,
                "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
                "icebergAllowed": False,
                "ocoAllowed": False,
                "otoAllowed": False,
                "quoteOrderQtyMarketAllowed": False,
                "allowTrailingStop": False,
                "cancelReplaceAllowed": True,
                "amendAllowed": False,
                "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False,
                "filters": _filters(sym),
                "permissions": [],
                "permissionSets": [["SPOT"]],
                "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_MAKER"],
            }
        )
    return {
        "timezone": "UTC",
        "serverTime": now_ms,
        "rateLimits": published_rate_limits(venue.limiter, "spot"),
        "exchangeFilters": [],
        "symbols": symbols,
    }


# -- order formatting --------------------------------------------------------------------------


def order_view(sym: VenueSymbol, view: OrderView) -> dict[str, Any]:
    """GET /api/v3/order and openOrders element."""
    fmt = sym.fmt
    order_type, tif = binance_type(view.order_type, spot=True)
    return {
        "symbol": sym.instrument.exchange_symbol,
        "orderId": view.order_id,
        "orderListId": -1,
        "clientOrderId": view.client_order_id,
        "price": fmt.px(view.price_ticks),
        "origQty": fmt.qty(view.orig_lots),
        "executedQty": fmt.qty(view.executed_lots),
        "cummulativeQuoteQty": _d8(view.cum_quote),
        "status": view.status.value,
        "timeInForce": tif,
        "type": order_type,
        "side": side_text(view.side),
        "stopPrice": _d8(0.0),
        "icebergQty": _d8(0.0),
        "time": view.ts_ns // _MS,
        "updateTime": view.update_ts_ns // _MS,
        "isWorking": True,
        "workingTime": view.ts_ns // _MS,
        "origQuoteOrderQty": _d8(0.0),
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def _order_state(sym: VenueSymbol, view: OrderView) -> dict[str, Any]:
    """The fields an order response and a cancel response both carry, in Binance's order."""
    fmt = sym.fmt
    order_type, tif = binance_type(view.order_type, spot=True)
    return {
        "price": fmt.px(view.price_ticks),
        "origQty": fmt.qty(view.orig_lots),
        "executedQty": fmt.qty(view.executed_lots),
        "origQuoteOrderQty": _d8(0.0),
        "cummulativeQuoteQty": _d8(view.cum_quote),
        "status": view.status.value,
        "timeInForce": tif,
        "type": order_type,
        "side": side_text(view.side),
    }


def new_order_response(
    sym: VenueSymbol, result: MatchResult, resp_type: str, now_ms: int
) -> dict[str, Any]:
    view = result.order
    assert view is not None  # noqa: S101  a successful client submit always carries its order
    base: dict[str, Any] = {
        "symbol": sym.instrument.exchange_symbol,
        "orderId": view.order_id,
        "orderListId": -1,
        "clientOrderId": view.client_order_id,
        "transactTime": now_ms,
    }
    if resp_type == "ACK":
        return base
    base.update(_order_state(sym, view))
    base["workingTime"] = now_ms
    base["selfTradePreventionMode"] = "EXPIRE_MAKER"
    if resp_type == "FULL":
        fmt = sym.fmt
        base["fills"] = [
            {
                "price": fmt.px(r.last_price_ticks),
                "qty": fmt.qty(r.last_lots),
                "commission": _d8(r.fee),
                "commissionAsset": r.fee_asset,
                "tradeId": r.trade_id,
            }
            for r in result.reports
            if r.exec_type is ExecType.TRADE and r.order_id == view.order_id
        ]
    return base


def cancel_response(sym: VenueSymbol, view: OrderView, orig_client_id: str) -> dict[str, Any]:
    return {
        "symbol": sym.instrument.exchange_symbol,
        "origClientOrderId": orig_client_id,
        "orderId": view.order_id,
        "orderListId": -1,
        "clientOrderId": orig_client_id,
        "transactTime": view.update_ts_ns // _MS,
        **_order_state(sym, view),
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def execution_report(sym: VenueSymbol, r: ExecutionReport, now_ms: int) -> dict[str, Any]:
    fmt = sym.fmt
    order_type, tif = binance_type(r.order_type, spot=True)
    trade = r.exec_type is ExecType.TRADE
    return {
        "e": "executionReport",
        "E": now_ms,
        "s": sym.instrument.exchange_symbol,
        "c": r.client_order_id,
        "S": side_text(r.side),
        "o": order_type,
        "f": tif,
        "q": fmt.qty(r.orig_lots),
        "p": fmt.px(r.price_ticks),
        "P": _d8(0.0),
        "F": _d8(0.0),
        "g": -1,
        "C": "",
        "x": r.exec_type.value,
        "X": r.status.value,
        "r": "NONE",
        "i": r.order_id,
        "l": fmt.qty(r.last_lots),
        "z": fmt.qty(r.cum_lots),
        "L": fmt.px(r.last_price_ticks),
        "n": _d8(r.fee),
        "N": r.fee_asset if trade else None,
        "T": r.ts_ns // _MS,
        "t": r.trade_id,
        "v": 0,
        "I": r.order_id * 2 + (1 if trade else 0),
        "w": r.status.is_open,
        "m": bool(trade and r.liquidity is not None and r.liquidity.value == "maker"),
        "M": trade,
        "O": r.order_ts_ns // _MS,
        "Z": _d8(r.cum_quote),
        "Y": _d8(r.last_price_ticks * r.last_lots * _unit(sym)),
        "Q": _d8(0.0),
        "W": r.order_ts_ns // _MS,
        "V": "EXPIRE_MAKER",
    }


def _unit(sym: VenueSymbol) -> float:
    inst = sym.instrument
    return inst.tick_size * inst.lot_size * inst.contract_size_base


def account_balances(venue: SimVenue, api_key: str) -> list[dict[str, str]]:
    account = venue.accounts.get(api_key)
    return [
        {"asset": asset, "free": _d8(bal.free), "locked": _d8(bal.locked)}
        for asset, bal in sorted(account.balances.items())
    ]


def account_position(venue: SimVenue, api_key: str, now_ms: int) -> dict[str, Any]:
    return {
        "e": "outboundAccountPosition",
        "E": now_ms,
        "u": now_ms,
        "B": [
            {"a": b["asset"], "f": b["free"], "l": b["locked"]}
            for b in account_balances(venue, api_key)
        ],
    }


# -- REST and WS-API handlers ------------------------------------------------------------------


def _exchange_info(venue: SimVenue, params: Params) -> dict[str, Any]:
    del params
    return exchange_info(venue, venue.now_ms())


def place(venue: SimVenue, params: Params, api_key: str) -> dict[str, Any]:
    sym, order, result = place_order(venue, params, api_key, spot=True)
    return new_order_response(sym, result, order.resp_type, server_time_ms())


def get_order(venue: SimVenue, params: Params, api_key: str) -> dict[str, Any]:
    sym, view = query_order(venue, params, api_key)
    return order_view(sym, view)


def cancel(venue: SimVenue, params: Params, api_key: str) -> dict[str, Any]:
    sym, view = cancel_order(venue, params, api_key)
    return cancel_response(sym, view, view.client_order_id)


def list_open_orders(venue: SimVenue, params: Params, api_key: str) -> list[dict[str, Any]]:
    return [order_view(sym, view) for sym, view in open_orders(venue, params, api_key)]


def cancel_all(venue: SimVenue, params: Params, api_key: str) -> list[dict[str, Any]]:
    sym = venue.symbol(params.get("symbol"))
    views = venue.cancel_all(sym, api_key)
    return [cancel_response(sym, v, v.client_order_id) for v in views]


def account(venue: SimVenue, params: Params, api_key: str) -> dict[str, Any]:
    del params
    maker_bps = 0
    taker_bps = 0
    for sym in venue.symbols.values():
        maker_bps = round(sym.instrument.maker_fee_rate * 10_000)
        taker_bps = round(sym.instrument.taker_fee_rate * 10_000)
    now = server_time_ms()
    return {
        "makerCommission": maker_bps,
        "takerCommission": taker_bps,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": _d8(maker_bps / 10_000),
            "taker": _d8(taker_bps / 10_000),
            "buyer": _d8(0.0),
            "seller": _d8(0.0),
        },
        "canTrade": True,
        "canWithdraw": False,
        "canDeposit": False,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": now,
        "accountType": "SPOT",
        "balances": account_balances(venue, api_key),
        "permissions": ["SPOT"],
        "uid": zlib.crc32(api_key.encode()),
    }


def my_trades(venue: SimVenue, params: Params, api_key: str) -> list[dict[str, Any]]:
    sym, trades = account_trades(venue, params, api_key)
    fmt = sym.fmt
    return [
        {
            "symbol": sym.instrument.exchange_symbol,
            "id": t.trade_id,
            "orderId": t.order_id,
            "orderListId": -1,
            "price": fmt.px(t.price_ticks),
            "qty": fmt.qty(t.size_lots),
            "quoteQty": _d8(t.quote_qty),
            "commission": _d8(t.fee),
            "commissionAsset": t.fee_asset,
            "time": t.ts_ns // _MS,
            "isBuyer": t.side is Side.BUY,
            "isMaker": t.is_maker,
            "isBestMatch": True,
        }
        for t in trades
    ]


def cancel_replace(venue: SimVenue, params: Params, api_key: str) -> dict[str, Any]:
    sym = venue.symbol(params.get("symbol"))
    mode = params.get("cancelReplaceMode", "").upper()
    if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
        raise BinanceError(
            -1102,
            "Mandatory parameter 'cancelReplaceMode' was not sent, was empty/null, or malformed.",
        )
    order = parse_order(params, sym, spot=True)
    cancel_id, cancel_client = order_ref(
        params, id_key="cancelOrderId", client_key="cancelOrigClientOrderId"
    )
    check_filters(venue, sym, api_key, order, replacing=True)
    cancelled, new = venue.cancel_replace(
        sym,
        api_key,
        side=order.side,
        order_type=order.order_type,
        size_lots=order.size_lots,
        price_ticks=order.price_ticks,
        cancel_order_id=cancel_id,
        cancel_client_order_id=cancel_client,
        client_order_id=order.client_order_id,
        allow_failure=mode == "ALLOW_FAILURE",
    )
    now = server_time_ms()
    cancel_part: dict[str, Any]
    if cancelled.error is None and cancelled.order is not None:
        cancel_part = cancel_response(sym, cancelled.order, cancelled.order.client_order_id)
        cancel_result = "SUCCESS"
    else:
        err = cancelled.error
        cancel_part = {
            "code": err.code if err else -2011,
            "msg": err.msg if err else "Unknown order sent.",
        }
        cancel_result = "FAILURE"
    if new is None:
        new_part: dict[str, Any] | None = None
        new_result = "NOT_ATTEMPTED"
    elif new.error is None:
        new_part = new_order_response(sym, new, order.resp_type, now)
        new_result = "SUCCESS"
    else:
        new_part = {"code": new.error.code, "msg": new.error.msg}
        new_result = "FAILURE"
    body = {
        "cancelResult": cancel_result,
        "newOrderResult": new_result,
        "cancelResponse": cancel_part,
        "newOrderResponse": new_part,
    }
    if cancel_result != "SUCCESS" or new_result != "SUCCESS":
        # Binance answers a partial failure with -2021 and both halves in `data`.
        code = -2021 if cancel_result == "SUCCESS" or new_result == "SUCCESS" else -2022
        msg = (
            "Order cancel-replace partially failed."
            if code == -2021
            else "Order cancel-replace failed."
        )
        raise BinanceError(code, msg, data=body)
    return body


# -- WS-API ------------------------------------------------------------------------------------


class _WsApiSession:
    """One WS-API connection: requests answered in order; user-data events pushed."""

    def __init__(self, venue: SimVenue, conn: Connection, ip: str = "") -> None:
        self.venue = venue
        self.conn = conn
        self.ws = conn.ws
        self.ip = ip
        self.user_streams: dict[int, int] = {}  # subscriptionId -> venue user stream id
        self._next_sub = 0
        self._usage: list[dict[str, Any]] = []  # the `rateLimits` of the answer being made

    def reply(self, req_id: Any, result: Any) -> None:
        self.conn.send(
            orjson.dumps(
                {"id": req_id, "status": 200, "result": result, "rateLimits": self._usage}
            ),
            time.time_ns(),
        )

    def error(self, req_id: Any, exc: BinanceError) -> None:
        self.conn.send(
            orjson.dumps(
                {
                    "id": req_id,
                    "status": exc.http_status,
                    "error": exc.body(),
                    "rateLimits": self._usage,
                }
            ),
            time.time_ns(),
        )

    def user_sink(self, sub_id: int, api_key: str) -> UserSink:
        venue = self.venue
        return user_data_sink(
            self.conn,
            execution_report,
            lambda now_ms: account_position(venue, api_key, now_ms),
            subscription_id=sub_id,
        )

    def handle(self, text: str) -> None:
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.error(None, BinanceError(-1102, "Malformed request: invalid JSON."))
            return
        if not isinstance(request, dict):
            self.error(None, BinanceError(-1102, "Malformed request."))
            return
        req_id = request.get("id")
        method = request.get("method")
        venue = self.venue
        limits = WsApiLimits(venue, self.ip, str(method), request.get("params"))
        self._usage = []
        try:
            limits.before()
            self._usage = limits.usage()
            if method == "ping":
                self.reply(req_id, {})
                return
            if method == "time":
                self.reply(req_id, server_time(venue, {}))
                return
            signed = method in _SIGNED_METHODS
            if not signed and method not in ("depth", "exchangeInfo"):
                self.error(req_id, BinanceError(-1102, f"Unknown method '{method}'."))
                return
            params, api_key = ws_api_params(venue, request.get("params", {}), signed=signed)
            if method == "depth":
                self.reply(req_id, depth(venue, params))
            elif method == "exchangeInfo":
                self.reply(req_id, _exchange_info(venue, params))
            else:
                assert api_key is not None  # noqa: S101  signed methods carry a key
                limits.before_order(api_key)
                try:
                    result = self._signed(str(method), params, api_key)
                except Exception:
                    limits.refused()
                    raise
                self._usage = limits.usage()
                self.reply(req_id, result)
        except BinanceError as exc:
            self._usage = limits.usage()
            self.error(req_id, exc)
        except (ValueError, KeyError, TypeError):
            self._usage = limits.usage()
            self.error(req_id, malformed_params())

    def _signed(self, method: str, params: Params, api_key: str) -> Any:
        venue = self.venue
        if method == "userDataStream.subscribe.signature":
            sub_id = self._next_sub
            self._next_sub += 1
            self.user_streams[sub_id] = venue.add_user_stream(
                api_key, self.user_sink(sub_id, api_key)
            )
            return {"subscriptionId": sub_id}
        if method == "userDataStream.unsubscribe":
            sub = int(params.get("subscriptionId", "-1"))
            stream_id = self.user_streams.pop(sub, None)
            if stream_id is not None:
                venue.remove_user_stream(stream_id)
            return {}
        handler = _WS_API_ORDERS.get(method)
        if handler is None:
            raise BinanceError(-1102, f"Unknown method '{method}'.")
        return handler(venue, params, api_key)

    def close(self) -> None:
        for stream_id in self.user_streams.values():
            self.venue.remove_user_stream(stream_id)
        self.user_streams.clear()


_WS_API_ORDERS: dict[str, PrivateHandler] = {
    "order.place": place,
    "order.cancel": cancel,
    "order.status": get_order,
    "order.cancelReplace": cancel_replace,
    "openOrders.status": list_open_orders,
    "openOrders.cancelAll": cancel_all,
    "account.status": account,
    "myTrades": my_trades,
}
_SIGNED_METHODS = frozenset(
    {"userDataStream.subscribe.signature", "userDataStream.unsubscribe", *_WS_API_ORDERS}
)


async def _ws_api(request: web.Request) -> web.StreamResponse:
    async with websocket(request, combined=False, kind="ws_api") as (ws, conn):
        session = _WsApiSession(request.app[VENUE_KEY], conn, request.remote or "")
        try:
            async for text in text_frames(ws):
                session.handle(text)
        finally:
            session.close()
    return ws


def make_spot_app(venue: SimVenue) -> web.Application:
    app = make_base_app(venue)
    r = app.router
    r.add_get("/api/v3/ping", rest(public(ping), signed=False))
    r.add_get("/api/v3/time", rest(public(server_time), signed=False))
    r.add_get("/api/v3/exchangeInfo", rest(public(_exchange_info), signed=False))
    r.add_get("/api/v3/depth", rest(public(depth), signed=False))
    r.add_post("/api/v3/order", rest(private(place), signed=True))
    r.add_get("/api/v3/order", rest(private(get_order), signed=True))
    r.add_delete("/api/v3/order", rest(private(cancel), signed=True))
    r.add_post("/api/v3/order/cancelReplace", rest(private(cancel_replace), signed=True))
    r.add_get("/api/v3/openOrders", rest(private(list_open_orders), signed=True))
    r.add_delete("/api/v3/openOrders", rest(private(cancel_all), signed=True))
    r.add_get("/api/v3/account", rest(private(account), signed=True))
    r.add_get("/api/v3/myTrades", rest(private(my_trades), signed=True))
    keys = listen_key_endpoint(keepalive_returns_key=False)
    for method in ("POST", "PUT", "DELETE"):
        r.add_route(method, "/api/v3/userDataStream", keys)
    r.add_get("/ws-api/v3", _ws_api)
    add_stream_routes(app, ("",))
    return app
