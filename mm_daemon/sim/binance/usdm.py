"""Binance USD-M futures wire protocol: REST under /fapi/v1 (and v2/v3 account and positions),
market streams at /public/ws, /market/ws, /ws and /stream, user data at /private/ws?listenKey=,
and the WS-API at /ws-fapi/v1 (order.place, order.modify, order.cancel, order.status)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from mm_daemon.core.types import OrderType, Side
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
    open_orders,
    order_ref,
    place_order,
    query_order,
    side_text,
)
from mm_daemon.sim.binance.streams import Connection
from mm_daemon.sim.matching import ExecType, ExecutionReport, OrderView
from mm_daemon.sim.venue import SimVenue, VenueSymbol

__all__ = ["exchange_info", "make_usdm_app"]

_MS = 1_000_000


def _d(value: float, decimals: int = 8) -> str:
    return f"{value:.{decimals}f}"


def exchange_info(venue: SimVenue, now_ms: int) -> dict[str, Any]:
    symbols = []
    assets: set[str] = set()
    for name, sym in venue.symbols.items():
        inst = sym.instrument
        fmt = sym.fmt
        assets.add(inst.quote)
        lot = fmt.qty(1)
        symbols.append(
            {
                "symbol": name,
                "pair": name,
                "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000,
                "onboardDate": 1569398400000,
                "status": "TRADING",
                "maintMarginPercent": "2.5000",
                "requiredMarginPercent": "5.0000",
                "baseAsset": inst.base,
                "quoteAsset": inst.quote,
                "marginAsset": inst.quote,
                "pricePrecision": fmt.price_decimals,
                "quantityPrecision": fmt.size_decimals,
                "baseAssetPrecision": 8,
                "quotePrecision": 8,
                "underlyingType": "COIN",
                "underlyingSubType": ["PoW"],
                "triggerProtect": "0.0500",
                "liquidationFee": "0.012500",
                "marketTakeBound": "0.05",
                "maxMoveOrderLimit": 10000,
                "filters": [
                    {
                        "minPrice": fmt.px(1),
                        "maxPrice": "4529764",
                        "filterType": "PRICE_FILTER",
                        "tickSize": fmt.px(1),
                    },
                    {
                        "maxQty": "1000",
                        "minQty": fmt.qty(max(1, inst.min_size_lots)),
                        "stepSize": lot,
                        "filterType": "LOT_SIZE",
                    },
                    {
                        "maxQty": "120",
                        "minQty": lot,
                        "stepSize": lot,
                        "filterType": "MARKET_LOT_SIZE",
                    },
                    {"limit": 200, "filterType": "MAX_NUM_ORDERS"},
                    {"limit": 10, "filterType": "MAX_NUM_ALGO_ORDERS"},
                    {"notional": f"{inst.min_notional_quote:g}", "filterType": "MIN_NOTIONAL"},
                    {
                        "multiplierDown": "0.9500",
                        "multiplierUp": "1.0500",
                        "multiplierDecimal": "4",
                        "filterType": "PERCENT_PRICE",
                    },
                ],
                "orderTypes": ["LIMIT", "MARKET"],
                "timeInForce": ["GTC", "IOC", "GTX"],
                "permissionSets": ["GRID", "COPY"],
            }
        )
    return {
        "timezone": "UTC",
        "serverTime": now_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": published_rate_limits(venue.limiter, "usdm"),
        "exchangeFilters": [],
        "assets": [
            {"asset": a, "marginAvailable": True, "autoAssetExchange": "-10000"}
            for a in sorted(assets)
        ],
        "symbols": symbols,
    }


# -- orders ------------------------------------------------------------------------------------


def _avg(sym: VenueSymbol, view_cum_quote: float, lots: int) -> str:
    if not lots:
        return "0.00"
    base = lots * sym.instrument.lot_size * sym.instrument.contract_size_base
    return _d(view_cum_quote / base, max(2, sym.fmt.price_decimals))


def order_json(sym: VenueSymbol, view: OrderView) -> dict[str, Any]:
    fmt = sym.fmt
    order_type, tif = binance_type(view.order_type, spot=False)
    return {
        "orderId": view.order_id,
        "symbol": sym.instrument.exchange_symbol,
        "status": view.status.value,
        "clientOrderId": view.client_order_id,
        "price": fmt.px(view.price_ticks),
        "avgPrice": _avg(sym, view.cum_quote, view.executed_lots),
        "origQty": fmt.qty(view.orig_lots),
        "executedQty": fmt.qty(view.executed_lots),
        "cumQty": fmt.qty(view.executed_lots),
        "cumQuote": _d(view.cum_quote, 5),
        "timeInForce": tif,
        "type": order_type,
        "reduceOnly": view.reduce_only,
        "closePosition": False,
        "side": side_text(view.side),
        "positionSide": "BOTH",
        "stopPrice": "0.00",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": order_type,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "time": view.ts_ns // _MS,
        "updateTime": view.update_ts_ns // _MS,
    }


def order_trade_update(sym: VenueSymbol, r: ExecutionReport, now_ms: int) -> dict[str, Any]:
    fmt = sym.fmt
    order_type, tif = binance_type(r.order_type, spot=False)
    trade = r.exec_type is ExecType.TRADE
    exec_type = "AMENDMENT" if r.exec_type is ExecType.AMENDMENT else r.exec_type.value
    return {
        "e": "ORDER_TRADE_UPDATE",
        "E": now_ms,
        "T": r.ts_ns // _MS,
        "o": {
            "s": sym.instrument.exchange_symbol,
            "c": r.client_order_id,
            "S": side_text(r.side),
            "o": order_type,
            "f": tif,
            "q": fmt.qty(r.orig_lots),
            "p": fmt.px(r.price_ticks),
            "ap": _avg(sym, r.cum_quote, r.cum_lots),
            "sp": "0.00",
            "x": exec_type,
            "X": r.status.value,
            "i": r.order_id,
            "l": fmt.qty(r.last_lots),
            "z": fmt.qty(r.cum_lots),
            "L": fmt.px(r.last_price_ticks),
            "N": r.fee_asset,
            "n": _d(r.fee),
            "T": r.ts_ns // _MS,
            "t": r.trade_id if trade else 0,
            "b": "0",
            "a": "0",
            "m": bool(trade and r.liquidity is not None and r.liquidity.value == "maker"),
            "R": r.reduce_only,
            "wt": "CONTRACT_PRICE",
            "ot": order_type,
            "ps": "BOTH",
            "cp": False,
            "rp": _d(r.realized_pnl),
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "EXPIRE_MAKER",
            "pm": "NONE",
            "gtd": 0,
        },
    }


def _mark(sym: VenueSymbol) -> float:
    bid = sym.engine.best_bid()
    ask = sym.engine.best_ask()
    tick = sym.instrument.tick_size
    if bid and ask:
        return (bid[0] + ask[0]) * tick / 2
    if bid:
        return bid[0] * tick
    if ask:
        return ask[0] * tick
    return 0.0


def _positions(venue: SimVenue, api_key: str) -> list[tuple[VenueSymbol, int, float, float]]:
    """(symbol, signed lots, entry price, unrealized P&L) for every symbol of the venue."""
    account = venue.accounts.get(api_key)
    out = []
    for name, sym in venue.symbols.items():
        pos = account.positions.get(name)
        lots = pos.size_lots if pos else 0
        entry = pos.entry_price if pos else 0.0
        base = lots * sym.instrument.lot_size * sym.instrument.contract_size_base
        upnl = base * (_mark(sym) - entry) if lots else 0.0
        out.append((sym, lots, entry, upnl))
    return out


def account_update(venue: SimVenue, api_key: str, now_ms: int) -> dict[str, Any]:
    account = venue.accounts.get(api_key)
    balances = [
        {"a": asset, "wb": _d(bal.total), "cw": _d(bal.total), "bc": "0"}
        for asset, bal in sorted(account.balances.items())
    ]
    positions = [
        {
            "s": sym.instrument.exchange_symbol,
            "pa": sym.fmt.qty(lots) if lots >= 0 else "-" + sym.fmt.qty(-lots),
            "ep": _d(entry),
            "bep": _d(entry),
            "cr": "0",
            "up": _d(upnl),
            "mt": "cross",
            "iw": "0",
            "ps": "BOTH",
        }
        for sym, lots, entry, upnl in _positions(venue, api_key)
    ]
    return {
        "e": "ACCOUNT_UPDATE",
        "E": now_ms,
        "T": now_ms,
        "a": {"m": "ORDER", "B": balances, "P": positions},
    }


def _signed_qty(sym: VenueSymbol, lots: int) -> str:
    return sym.fmt.qty(lots) if lots >= 0 else "-" + sym.fmt.qty(-lots)


def account(venue: SimVenue, params: Params, api_key: str) -> dict[str, Any]:
    del params
    acct = venue.accounts.get(api_key)
    now = server_time_ms()
    positions = _positions(venue, api_key)
    upnl_total = sum(p[3] for p in positions)
    assets = []
    total_wallet = 0.0
    total_available = 0.0
    for asset, bal in sorted(acct.balances.items()):
        wallet = bal.total
        total_wallet += wallet
        total_available += bal.free
        assets.append(
            {
                "asset": asset,
                "walletBalance": _d(wallet),
                "unrealizedProfit": _d(upnl_total),
                "marginBalance": _d(wallet + upnl_total),
                "maintMargin": "0.00000000",
                "initialMargin": _d(bal.locked),
                "positionInitialMargin": "0.00000000",
                "openOrderInitialMargin": _d(bal.locked),
                "crossWalletBalance": _d(wallet),
                "crossUnPnl": _d(upnl_total),
                "availableBalance": _d(bal.free),
                "maxWithdrawAmount": _d(bal.free),
                "updateTime": now,
            }
        )
    return {
        "totalInitialMargin": _d(sum(b.locked for b in acct.balances.values())),
        "totalMaintMargin": "0.00000000",
        "totalWalletBalance": _d(total_wallet),
        "totalUnrealizedProfit": _d(upnl_total),
        "totalMarginBalance": _d(total_wallet + upnl_total),
        "totalPositionInitialMargin": "0.00000000",
        "totalOpenOrderInitialMargin": _d(sum(b.locked for b in acct.balances.values())),
        "totalCrossWalletBalance": _d(total_wallet),
        "totalCrossUnPnl": _d(upnl_total),
        "availableBalance": _d(total_available),
        "maxWithdrawAmount": _d(total_available),
        "assets": assets,
        "positions": [
            {
                "symbol": sym.instrument.exchange_symbol,
                "positionSide": "BOTH",
                "positionAmt": _signed_qty(sym, lots),
                "unrealizedProfit": _d(upnl),
                "isolatedMargin": "0",
                "notional": _d(lots * sym.instrument.lot_size * _mark(sym)),
                "isolatedWallet": "0",
                "initialMargin": "0",
                "maintMargin": "0",
                "updateTime": now,
            }
            for sym, lots, _entry, upnl in positions
            if lots
        ],
    }


def position_risk(venue: SimVenue, params: Params, api_key: str) -> list[dict[str, Any]]:
    wanted = params.get("symbol")
    now = server_time_ms()
    leverage = venue.accounts.leverage
    out = []
    for sym, lots, entry, upnl in _positions(venue, api_key):
        if wanted and sym.instrument.exchange_symbol != wanted.upper():
            continue
        mark = _mark(sym)
        notional = lots * sym.instrument.lot_size * mark
        out.append(
            {
                "symbol": sym.instrument.exchange_symbol,
                "positionSide": "BOTH",
                "positionAmt": _signed_qty(sym, lots),
                "entryPrice": _d(entry),
                "breakEvenPrice": _d(entry),
                "markPrice": _d(mark),
                "unRealizedProfit": _d(upnl),
                "liquidationPrice": "0",
                "leverage": str(leverage),
                "maxNotionalValue": "1000000",
                "marginType": "cross",
                "isAutoAddMargin": "false",
                "isolatedMargin": "0.00000000",
                "notional": _d(notional),
                "marginAsset": sym.instrument.quote,
                "isolatedWallet": "0",
                "initialMargin": _d(abs(notional) / leverage),
                "maintMargin": "0",
                "positionInitialMargin": _d(abs(notional) / leverage),
                "openOrderInitialMargin": "0",
                "adl": 0,
                "bidNotional": "0",
                "askNotional": "0",
                "updateTime": now,
            }
        )
    return out


def place(venue: SimVenue, params: Params, api_key: str) -> dict[str, Any]:
    sym, _order, result = place_order(venue, params, api_key, spot=False)
    assert result.order is not None  # noqa: S101  a successful client submit carries its order
    return order_json(sym, result.order)


def get_order(venue: SimVenue, params: Params, api_key: str) -> dict[str, Any]:
    sym, view = query_order(venue, params, api_key)
    return order_json(sym, view)


def cancel(venue: SimVenue, params: Params, api_key: str) -> dict[str, Any]:
    sym, view = cancel_order(venue, params, api_key)
    return order_json(sym, view)


def modify(venue: SimVenue, params: Params, api_key: str) -> dict[str, Any]:
    sym = venue.symbol(params.get("symbol"))
    order_id, client_id = order_ref(params)
    qty = sym.fmt.parse_qty(params.get("quantity", ""))
    px = sym.fmt.parse_px(params.get("price", ""))
    if qty is None or qty <= 0:
        raise BinanceError(-1013, "Filter failure: LOT_SIZE")
    if px is None or px <= 0:
        raise BinanceError(-1013, "Filter failure: PRICE_FILTER")
    if venue.filters is not None:
        venue.filters.check(
            venue,
            sym,
            api_key,
            side=Side.SELL if params.get("side", "").upper() == "SELL" else Side.BUY,
            order_type=OrderType.LIMIT,
            price_ticks=px,
            size_lots=qty,
            reduce_only=False,
            now_ns=time.time_ns(),
            replacing=True,
        )
    result = venue.modify(
        sym, api_key, price_ticks=px, size_lots=qty, order_id=order_id, client_order_id=client_id
    )
    assert result.order is not None  # noqa: S101  a successful modify carries its order
    return order_json(sym, result.order)


def list_open_orders(venue: SimVenue, params: Params, api_key: str) -> list[dict[str, Any]]:
    return [order_json(sym, view) for sym, view in open_orders(venue, params, api_key)]


def cancel_all(venue: SimVenue, params: Params, api_key: str) -> dict[str, Any]:
    sym = venue.symbol(params.get("symbol"))
    venue.cancel_all(sym, api_key)
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


def user_trades(venue: SimVenue, params: Params, api_key: str) -> list[dict[str, Any]]:
    sym, trades = account_trades(venue, params, api_key)
    fmt = sym.fmt
    return [
        {
            "buyer": t.side is Side.BUY,
            "commission": _d(t.fee),
            "commissionAsset": t.fee_asset,
            "id": t.trade_id,
            "maker": t.is_maker,
            "orderId": t.order_id,
            "price": fmt.px(t.price_ticks),
            "qty": fmt.qty(t.size_lots),
            "quoteQty": _d(t.quote_qty),
            "realizedPnl": _d(t.realized_pnl),
            "side": side_text(t.side),
            "positionSide": "BOTH",
            "symbol": sym.instrument.exchange_symbol,
            "time": t.ts_ns // _MS,
        }
        for t in trades
    ]


def _leverage(venue: SimVenue, params: Params, api_key: str) -> dict[str, Any]:
    del api_key
    sym = venue.symbol(params.get("symbol"))
    return {
        "leverage": venue.accounts.leverage,
        "maxNotionalValue": "1000000",
        "symbol": sym.instrument.exchange_symbol,
    }


def _leverage_bracket(venue: SimVenue, params: Params, api_key: str) -> list[dict[str, Any]]:
    del api_key
    wanted = params.get("symbol")
    return [
        {
            "symbol": name,
            "brackets": [
                {
                    "bracket": 1,
                    "initialLeverage": 125,
                    "notionalCap": 50_000_000,
                    "notionalFloor": 0,
                    "maintMarginRatio": 0.004,
                    "cum": 0.0,
                }
            ],
        }
        for name in venue.symbols
        if not wanted or wanted.upper() == name
    ]


def _commission(venue: SimVenue, params: Params, api_key: str) -> dict[str, Any]:
    del api_key
    sym = venue.symbol(params.get("symbol"))
    return {
        "symbol": sym.instrument.exchange_symbol,
        "makerCommissionRate": f"{sym.instrument.maker_fee_rate:.6f}",
        "takerCommissionRate": f"{sym.instrument.taker_fee_rate:.6f}",
    }


def _int_param(params: Params, name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'.") from None


def income(venue: SimVenue, params: Params, api_key: str) -> list[dict[str, Any]]:
    """`GET /fapi/v1/income`: the account's funding fees (the only income the simulator
    records), oldest first from startTime, else the latest `limit` (default 100, max 1000)."""
    funding = venue.funding
    wanted = params.get("symbol")
    if wanted:
        venue.symbol(wanted)  # an unknown symbol is refused as Binance does
    limit = _int_param(params, "limit") or 100
    if funding is None:
        return []
    rows = funding.income_records(
        api_key,
        symbol=wanted.upper() if wanted else None,
        income_type=params.get("incomeType") or None,
        start_ms=_int_param(params, "startTime"),
        end_ms=_int_param(params, "endTime"),
        limit=max(1, min(limit, 1000)),
    )
    return [row.as_json() for row in rows]


def premium_index(venue: SimVenue, params: Params) -> dict[str, Any] | list[dict[str, Any]]:
    """`GET /fapi/v1/premiumIndex`: mark and index price, last funding rate, next funding
    time; one symbol's object, or a list of every symbol without `symbol`."""
    wanted = params.get("symbol")
    syms = [venue.symbol(wanted)] if wanted else list(venue.symbols.values())
    funding = venue.funding
    now = server_time_ms()
    out = []
    for sym in syms:
        name = sym.instrument.exchange_symbol
        state = funding.marks.get(name) if funding is not None else None
        mark = state.mark_price if state is not None else _mark(sym)
        out.append(
            {
                "symbol": name,
                "markPrice": _d(mark),
                "indexPrice": _d(state.index_price if state is not None else mark),
                "estimatedSettlePrice": _d(mark),
                "lastFundingRate": _d(state.funding_rate if state is not None else 0.0),
                "interestRate": _d(funding.params.interest_rate if funding is not None else 0.0),
                "nextFundingTime": state.next_funding_time_ns // _MS if state is not None else 0,
                "time": now,
            }
        )
    return out[0] if wanted else out


def _exchange_info(venue: SimVenue, params: Params) -> dict[str, Any]:
    del params
    return exchange_info(venue, venue.now_ms())


# -- user data and WS-API ----------------------------------------------------------------------


async def _private_ws(request: web.Request) -> web.StreamResponse:
    venue = request.app[VENUE_KEY]
    listen_key = request.query.get("listenKey") or request.match_info.get("listen_key", "")
    api_key = venue.listen_keys.get(listen_key)
    if api_key is None:
        return web.json_response(
            {"code": -1125, "msg": "This listenKey does not exist."}, status=400
        )
    async with websocket(request, combined="/stream" in request.path, kind="user_data") as (
        ws,
        conn,
    ):
        sink = user_data_sink(
            conn, order_trade_update, lambda now_ms: account_update(venue, api_key, now_ms)
        )
        stream_id = venue.add_user_stream(
            api_key, sink, lambda event, now_ns: conn.send(orjson.dumps(event), now_ns)
        )
        try:
            async for _msg in ws:
                pass
        finally:
            venue.remove_user_stream(stream_id)
    return ws


_WS_SIGNED: dict[str, PrivateHandler] = {
    "order.place": place,
    "order.cancel": cancel,
    "order.modify": modify,
    "order.status": get_order,
    "openOrders.status": list_open_orders,
    "account.status": account,
    "account.position": position_risk,
}


async def _ws_api(request: web.Request) -> web.StreamResponse:
    venue = request.app[VENUE_KEY]
    ip = request.remote or ""
    async with websocket(request, combined=False, kind="ws_api") as (ws, conn):
        async for text in text_frames(ws):
            _ws_api_request(venue, conn, text, ip)
    return ws


def _ws_api_result(venue: SimVenue, request: Any, limits: WsApiLimits) -> Any:
    method = request.get("method")
    if method == "ping":
        return {}
    if method == "time":
        return {"serverTime": venue.now_ms()}
    if method == "depth":
        params, _ = ws_api_params(venue, request.get("params", {}), signed=False)
        return depth(venue, params)
    handler = _WS_SIGNED.get(str(method))
    if handler is None:
        raise BinanceError(-1102, f"Unknown method '{method}'.")
    params, api_key = ws_api_params(venue, request.get("params", {}), signed=True)
    assert api_key is not None  # noqa: S101  signed requests carry a key
    limits.before_order(api_key)
    try:
        return handler(venue, params, api_key)
    except Exception:
        limits.refused()
        raise


def _request_object(request: Any) -> dict[str, Any]:
    if not isinstance(request, dict):
        raise BinanceError(-1102, "Malformed request.")
    return request


def _ws_api_request(venue: SimVenue, conn: Connection, text: str, ip: str = "") -> None:
    now = time.time_ns()
    req_id: Any = None
    body: dict[str, Any]
    limits: WsApiLimits | None = None
    try:
        request = _request_object(orjson.loads(text))
        req_id = request.get("id")
        limits = WsApiLimits(venue, ip, str(request.get("method")), request.get("params"))
        limits.before()
        result = _ws_api_result(venue, request, limits)
        body = {"id": req_id, "status": 200, "result": result}
    except orjson.JSONDecodeError:
        body = {"id": None, "status": 400, "error": {"code": -1102, "msg": "Malformed request."}}
    except BinanceError as exc:
        body = {"id": req_id, "status": exc.http_status, "error": exc.body()}
    except (ValueError, KeyError, TypeError):
        body = {"id": req_id, "status": 400, "error": malformed_params().body()}
    body["rateLimits"] = limits.usage() if limits is not None else []
    conn.send(orjson.dumps(body), now)


def make_usdm_app(venue: SimVenue) -> web.Application:
    app = make_base_app(venue)
    r = app.router
    r.add_get("/fapi/v1/ping", rest(public(ping), signed=False))
    r.add_get("/fapi/v1/time", rest(public(server_time), signed=False))
    r.add_get("/fapi/v1/exchangeInfo", rest(public(_exchange_info), signed=False))
    r.add_get("/fapi/v1/depth", rest(public(depth), signed=False))
    r.add_get("/fapi/v1/premiumIndex", rest(public(premium_index), signed=False))
    r.add_get("/fapi/v1/income", rest(private(income), signed=True))
    r.add_post("/fapi/v1/order", rest(private(place), signed=True))
    r.add_put("/fapi/v1/order", rest(private(modify), signed=True))
    r.add_get("/fapi/v1/order", rest(private(get_order), signed=True))
    r.add_delete("/fapi/v1/order", rest(private(cancel), signed=True))
    r.add_get("/fapi/v1/openOrders", rest(private(list_open_orders), signed=True))
    r.add_delete("/fapi/v1/allOpenOrders", rest(private(cancel_all), signed=True))
    r.add_get("/fapi/v1/userTrades", rest(private(user_trades), signed=True))
    r.add_get("/fapi/v1/commissionRate", rest(private(_commission), signed=True))
    r.add_get("/fapi/v1/leverageBracket", rest(private(_leverage_bracket), signed=True))
    r.add_post("/fapi/v1/leverage", rest(private(_leverage), signed=True))
    for version in ("v2", "v3"):
        r.add_get(f"/fapi/{version}/account", rest(private(account), signed=True))
        r.add_get(f"/fapi/{version}/positionRisk", rest(private(position_risk), signed=True))
        r.add_get(f"/fapi/{version}/balance", rest(private(_balances), signed=True))
    keys = listen_key_endpoint(keepalive_returns_key=True)
    for method in ("POST", "PUT", "DELETE"):
        r.add_route(method, "/fapi/v1/listenKey", keys)
    r.add_get("/ws-fapi/v1", _ws_api)
    r.add_get("/private/ws", _private_ws)
    r.add_get("/private/stream", _private_ws)
    add_stream_routes(app, ("", "/public", "/market"))
    return app


def _balances(venue: SimVenue, params: Params, api_key: str) -> list[dict[str, Any]]:
    body = account(venue, params, api_key)
    return [
        {
            "accountAlias": "SgsR",
            "asset": a["asset"],
            "balance": a["walletBalance"],
            "crossWalletBalance": a["crossWalletBalance"],
            "crossUnPnl": a["crossUnPnl"],
            "availableBalance": a["availableBalance"],
            "maxWithdrawAmount": a["maxWithdrawAmount"],
            "marginAvailable": True,
            "updateTime": a["updateTime"],
        }
        for a in body["assets"]
    ]
