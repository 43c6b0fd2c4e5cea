"""What Binance's order entry says, read without a connection: the WS-API's error answers and
endpoints, its order reports, order objects, trades and USD-M income rows mapped to core events,
and the plain HTTP transport of USD-M's REST calls (the seam tests fill with a fake).
`binance_ws_api` is the execution that speaks it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mm_daemon.core.types import (
    Fill,
    FundingFee,
    Instrument,
    Liquidity,
    OrderStatus,
    OrderUpdate,
    Side,
)

__all__ = [
    "AiohttpTransport",
    "HttpTransport",
    "WsApiEndpoints",
    "WsApiError",
    "endpoints_from_ccxt",
    "fill_from_report",
    "fill_from_trade",
    "funding_fee_from_income",
    "order_update_from_order",
    "order_update_from_report",
]

_MS = 1_000_000

_STATUS: dict[str, OrderStatus] = {
    "NEW": OrderStatus.OPEN,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELLED,
    "PENDING_CANCEL": OrderStatus.PENDING_CANCEL,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}


class WsApiError(Exception):
    """An error answer of the WS-API (the venue said no); `code` and `msg` are Binance's."""

    def __init__(self, code: int, msg: str, data: Any = None, status: int = 400) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.data = data
        self.status = status


@dataclass(frozen=True, slots=True)
class WsApiEndpoints:
    """Where a venue's WS-API, REST (USD-M listenKey) and user-data stream live."""

    ws_api: str  # e.g. ws://127.0.0.1:8101/ws-api/v3 or .../ws-fapi/v1
    rest: str = ""  # USD-M: the fapi base, e.g. http://127.0.0.1:8102/fapi/v1
    user_ws: str = ""  # USD-M: the private stream, e.g. ws://127.0.0.1:8102/private/ws


def endpoints_from_ccxt(urls_api: Mapping[str, Any], *, usdm: bool) -> WsApiEndpoints:
    """The endpoints from a ccxt binance/binanceusdm exchange's `urls["api"]` (after sandbox
    or demo mode is chosen), so the native path reaches exactly where ccxt would."""
    ws = urls_api["ws"]
    if not usdm:
        return WsApiEndpoints(ws_api=str(ws["ws-api"]["spot"]))
    linear = str(ws["linear"]).rstrip("/")
    base = linear.removesuffix("/ws")
    return WsApiEndpoints(
        ws_api=str(ws["ws-api"]["linear"]),
        rest=str(urls_api["fapiPrivate"]).rstrip("/"),
        user_ws=f"{base}/private/ws",
    )


# -- signing and mapping (pure) ------------------------------------------------------------------


def _side(text: Any) -> Side:
    return Side.BUY if text == "BUY" else Side.SELL


def _fee_quote(
    instrument: Instrument, fee: float, asset: Any, price: float, qty: float, *, maker: bool
) -> float:
    if not fee:
        return 0.0
    if asset == instrument.quote or asset is None:
        return fee
    if asset == instrument.base:
        return fee * price  # Binance spot charges a buy's fee in the base asset
    rate = instrument.maker_fee_rate if maker else instrument.taker_fee_rate
    return price * qty * instrument.contract_size_base * rate  # a third asset (BNB): estimate


def _report_client_id(o: Mapping[str, Any]) -> str:
    # A spot cancel names the cancel request in `c` and the cancelled order in `C`.
    original = o.get("C")
    return str(original) if original else str(o["c"])


def order_update_from_report(
    o: Mapping[str, Any], instrument: Instrument, venue: str, ts_exchange_ns: int, now_ns: int
) -> OrderUpdate:
    """An OrderUpdate from an `executionReport` (spot) or the `o` of `ORDER_TRADE_UPDATE`."""
    status = _STATUS.get(str(o["X"]), OrderStatus.OPEN)
    reason = str(o.get("r") or "")
    return OrderUpdate(
        venue,
        instrument.symbol,
        ts_exchange_ns,
        now_ns,
        _report_client_id(o),
        str(o["i"]),
        status,
        _side(o["S"]),
        instrument.price_to_ticks(float(o["p"])),
        instrument.size_to_lots(float(o["q"])),
        instrument.size_to_lots(float(o["z"])),
        "" if reason == "NONE" else reason,
    )


def fill_from_report(
    o: Mapping[str, Any], instrument: Instrument, venue: str, ts_exchange_ns: int, now_ns: int
) -> Fill:
    """A Fill from a TRADE execution of `executionReport` / `ORDER_TRADE_UPDATE.o`."""
    price = float(o["L"])
    qty = float(o["l"])
    maker = bool(o.get("m"))
    return Fill(
        venue,
        instrument.symbol,
        ts_exchange_ns,
        now_ns,
        str(o["c"]),
        str(o["i"]),
        str(o["t"]),
        _side(o["S"]),
        instrument.price_to_ticks(price),
        instrument.size_to_lots(qty),
        _fee_quote(instrument, float(o.get("n") or 0.0), o.get("N"), price, qty, maker=maker),
        Liquidity.MAKER if maker else Liquidity.TAKER,
    )


def fill_from_trade(
    t: Mapping[str, Any], instrument: Instrument, venue: str, client_order_id: str, now_ns: int
) -> Fill:
    """A Fill from one row of spot `myTrades` or USD-M `userTrades` (rows carry no client id)."""
    price = float(t["price"])
    qty = float(t["qty"])
    maker = bool(t.get("isMaker", t.get("maker")))
    buyer = bool(t.get("isBuyer", t.get("buyer")))
    return Fill(
        venue,
        instrument.symbol,
        int(t["time"]) * _MS,
        now_ns,
        client_order_id,
        str(t["orderId"]),
        str(t["id"]),
        Side.BUY if buyer else Side.SELL,
        instrument.price_to_ticks(price),
        instrument.size_to_lots(qty),
        _fee_quote(
            instrument,
            float(t.get("commission") or 0.0),
            t.get("commissionAsset"),
            price,
            qty,
            maker=maker,
        ),
        Liquidity.MAKER if maker else Liquidity.TAKER,
    )


def funding_fee_from_income(
    row: Mapping[str, Any], instrument: Instrument, venue: str
) -> FundingFee:
    """A FUNDING_FEE record of `GET /fapi/v1/income` (`income`: received > 0, paid < 0)."""
    return FundingFee(
        venue=venue,
        symbol=instrument.symbol,
        funding_time_ns=int(row["time"]) * _MS,
        amount_quote=float(row["income"]),
        asset=str(row["asset"]),
        payment_id=str(row["tranId"]),
    )


def order_update_from_order(
    order: Mapping[str, Any], instrument: Instrument, venue: str, now_ns: int
) -> OrderUpdate:
    """An OrderUpdate from an order object of a response (place, cancel, openOrders)."""
    ts = order.get("updateTime") or order.get("transactTime") or order.get("time")
    return OrderUpdate(
        venue,
        instrument.symbol,
        int(ts) * _MS if ts else now_ns,
        now_ns,
        str(order.get("clientOrderId") or order.get("origClientOrderId") or ""),
        str(order.get("orderId") or ""),
        _STATUS.get(str(order.get("status")), OrderStatus.OPEN),
        _side(order.get("side")),
        instrument.price_to_ticks(float(order.get("price") or 0.0)),
        instrument.size_to_lots(float(order.get("origQty") or 0.0)),
        instrument.size_to_lots(float(order.get("executedQty") or 0.0)),
    )


# -- transports ---------------------------------------------------------------------------------


class HttpTransport(Protocol):
    """Plain HTTP requests (USD-M's REST calls): the seam that tests fill with a fake."""

    async def request(
        self, method: str, url: str, headers: Mapping[str, str]
    ) -> tuple[int, Any, Mapping[str, str]]:
        """(HTTP status, the JSON body, the response headers) of one request."""
        ...

    async def close(self) -> None: ...


class AiohttpTransport:
    """`HttpTransport` over one aiohttp session, opened on first use."""

    def __init__(self) -> None:
        self._session: Any = None

    async def request(
        self, method: str, url: str, headers: Mapping[str, str]
    ) -> tuple[int, Any, Mapping[str, str]]:
        import aiohttp  # noqa: PLC0415  only USD-M needs REST

        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.request(method, url, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None), dict(resp.headers)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
