"""Live order entry on Binance spot and USD-M over the WS-API, without ccxt on the order path.

Each action is one signed JSON request written onto the socket by the coroutine that makes it
(no queue, no task per request); its response is matched by `id` to a future. Spot uses
`/ws-api/v3` (`order.place`, `order.cancelReplace` with STOP_ON_FAILURE, `order.cancel`,
`openOrders.cancelAll`, `openOrders.status`) and takes its user data on the same connection
(`userDataStream.subscribe.signature`: `executionReport` events). USD-M uses `/ws-fapi/v1`
(`order.place`, `order.cancel`, `openOrders.status`; a replace is a cancel and a place written
back to back, because `order.modify` keeps the old client order id while the order manager gives
every replacement a new one) and takes its user data from the listenKey stream
(`ORDER_TRADE_UPDATE`), the key made once over REST and kept alive every 30 minutes.

A venue refusal (post-only would cross, a filter, the balance) becomes a REJECTED OrderUpdate
carrying the venue's message; a lost connection fails the pending requests with
`ConnectionError` and is reported as an `ExecutionStatus`, and `run` reconnects with backoff
and subscribes again; the engine then reconciles (`open_orders`, `order_status`,
`trades_since`: `order.status`, spot `myTrades`, USD-M `userTrades`).

The socket comes from a `WsConnector` (`ws_connect` by default), so tests drive the execution
through a fake connection. What the answers, reports and trades mean, read without a connection,
is `binance_ws_api_wire`'s, as is the HTTP transport of USD-M's REST calls.

Signing follows Binance's WS-API rule: every parameter except `signature`, sorted by name, joined
as `k=v&...`, HMAC-SHA256 with the secret, hex. The key and the secret are never logged. The
signer is made once from the secret (`mm_daemon.binance.signing.make_signer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson
import structlog

from mm_daemon.binance.limits import (
    BAN_CODE,
    INVALID_TIMESTAMP,
    ORDER_METHODS,
    TOO_MANY_ORDERS,
    rate_limits_from_json,
    usage_from_headers,
    usage_from_json,
)
from mm_daemon.binance.numbers import NumberFormat
from mm_daemon.binance.signing import make_signer, signed_params
from mm_daemon.core.types import (
    AccountPosition,
    ExecutionStatus,
    Fill,
    FundingFee,
    Instrument,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
)
from mm_daemon.retry import BackoffPolicy
from mm_daemon.venues.binance_ws_api_wire import (
    AiohttpTransport,
    HttpTransport,
    WsApiEndpoints,
    WsApiError,
    fill_from_report,
    fill_from_trade,
    funding_fee_from_income,
    order_update_from_order,
    order_update_from_report,
)
from mm_daemon.venues.websocket import OP_TEXT, WsConnection, WsConnector, ws_connect

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydantic import SecretStr

    from mm_daemon.core.budget import RateLimit
    from mm_daemon.venues.base import ExecutionSink, RateLimitObserver

__all__ = ["BinanceWsApiExecution"]

log = structlog.get_logger(__name__)


_MS = 1_000_000
LISTEN_KEY_KEEPALIVE_S = 30 * 60.0  # USD-M listen keys expire after 60 minutes without one
TIME_SAMPLES = 3  # server-time requests per sync; the one with the shortest round trip counts
DEFAULT_RETRY_AFTER_S = 1.0  # a limit error that says nothing of when to come back
_TRADES_PAGE = 1000  # Binance's most trades per myTrades/userTrades request
_INCOME_PAGE = 1000  # Binance's most records per /fapi/v1/income request
UNKNOWN_ORDER = -2011  # "Unknown order sent." (cancel of an order that is already gone)
ORDER_NOT_EXIST = -2013  # "Order does not exist." (status of an order the venue forgot)


@dataclass(frozen=True, slots=True)
class _Market:
    """One instrument traded on the account: its venue id and number formats."""

    instrument: Instrument
    venue_id: str
    numbers: NumberFormat


# -- the execution -------------------------------------------------------------------------------


class BinanceWsApiExecution:
    """`Execution` for Binance spot or USD-M over the WS-API (see the module docstring)."""

    def __init__(
        self,
        endpoints: WsApiEndpoints,
        api_key: SecretStr,
        api_secret: SecretStr,
        *,
        venue: str,
        usdm: bool,
        instruments: tuple[Instrument, ...] = (),
        recv_window_ms: int = 5000,
        request_timeout_s: float = 10.0,
        initial_backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
        clock_ns: Callable[[], int] = time.time_ns,
        connector: WsConnector | None = None,
        http: HttpTransport | None = None,
        listen_key_keepalive_s: float = LISTEN_KEY_KEEPALIVE_S,
    ) -> None:
        self.endpoints = endpoints
        self._venue = venue
        self._usdm = usdm
        if usdm and not (endpoints.rest and endpoints.user_ws):
            raise ValueError("USD-M needs the REST base and the user-data stream URL")
        self._markets: dict[str, _Market] = {}  # by unified symbol
        self._by_venue_id: dict[str, _Market] = {}  # by the venue's id (BTCUSDT)
        for instrument in instruments:
            self.add_instrument(instrument)
        self._api_key = api_key
        self._signer = make_signer(api_secret.get_secret_value().encode())
        self._recv_window = str(recv_window_ms)
        self._timeout_s = request_timeout_s
        self._backoff = BackoffPolicy(initial_backoff_s, max_backoff_s)
        self._clock_ns = clock_ns
        self._connect_ws = connector or ws_connect
        self._ws: WsConnection | None = None
        self._user_ws: WsConnection | None = None
        self._pending: dict[int, tuple[asyncio.Future[Any], asyncio.TimerHandle, str]] = {}
        self._observer: RateLimitObserver | None = None
        self._limits: tuple[RateLimit, ...] = ()  # the venue's, once read (REST usage headers)
        self.offset_ns = 0  # the venue's clock minus ours: what `timestamp` adds
        self._resync: asyncio.Task[None] | None = None
        self._next_id = 1
        self._sink: ExecutionSink | None = None
        self._ready = asyncio.Event()
        self._funding_event = asyncio.Event()
        self._http: HttpTransport = (
            http or AiohttpTransport()
        )  # USD-M listenKey, trades, cancel-all
        self._keepalive_s = listen_key_keepalive_s
        self.reconnects = 0
        self.requests_sent = 0

    def __repr__(self) -> str:  # never the key or the secret
        return f"BinanceWsApiExecution(venue={self._venue!r}, symbols={sorted(self._markets)!r})"

    def add_instrument(self, instrument: Instrument) -> None:
        """Trade `instrument` over this account's connection too."""
        market = _Market(
            instrument,
            instrument.exchange_symbol,
            # Quotes come back to the same few prices and sizes: their decimal text is kept.
            NumberFormat.for_instrument(
                instrument, instrument.price_decimals, instrument.size_decimals
            ),
        )
        self._markets[instrument.symbol] = market
        self._by_venue_id[instrument.exchange_symbol] = market

    def observe_rate_limits(self, observer: RateLimitObserver) -> None:
        """Tell `observer` what the venue says of the account's rate limits from now on."""
        self._observer = observer

    @property
    def instruments(self) -> tuple[Instrument, ...]:
        return tuple(m.instrument for m in self._markets.values())

    def _market(self, symbol: str) -> _Market:
        market = self._markets.get(symbol)
        if market is None:
            raise ValueError(f"{self._venue}: no instrument {symbol!r} on this order entry")
        return market

    @property
    def venue(self) -> str:
        return self._venue

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    # -- connection ------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the WS-API connection and the user-data stream (idempotent)."""
        if self._ws is not None and not self._ws.closed.done():
            return
        self._ready.clear()
        ws = await self._connect_ws(self.endpoints.ws_api, self._on_frame)
        self._ws = ws
        try:
            await self.sync_time()
            await self._read_rate_limits()
            if self._usdm:
                listen_key = await self._listen_key("POST")
                url = f"{self.endpoints.user_ws}?listenKey={listen_key}"
                self._user_ws = await self._connect_ws(url, self._on_user_frame)
            else:
                await self._call("userDataStream.subscribe.signature", {})
        except BaseException:
            ws.close()
            raise
        self._ready.set()

    async def run(self, sink: ExecutionSink) -> None:
        """Deliver order updates, fills and connection changes into `sink` until cancelled;
        reconnect on loss."""
        self._sink = sink
        backoff = self._backoff.start()
        try:
            while True:
                backoff.attempt()
                reason = "connection closed"
                try:
                    await self.connect()
                    backoff.reset()
                    sink(ExecutionStatus(self._venue, time.time_ns(), connected=True))
                    await self._until_lost()
                except asyncio.CancelledError:
                    raise
                except (OSError, ConnectionError, TimeoutError, WsApiError) as exc:
                    reason = str(exc) or type(exc).__name__
                    log.warning("ws-api connection failed", venue=self._venue, error=reason)
                self._lost(reason)
                self.reconnects += 1
                await backoff.sleep()
        finally:
            self._lost("stopped")
            self._sink = None

    async def _until_lost(self) -> None:
        ws = self._ws
        assert ws is not None  # noqa: S101  connect() set it
        waits: list[asyncio.Future[Any]] = [ws.closed]
        if self._user_ws is not None:
            waits.append(self._user_ws.closed)
        keepalive: asyncio.Task[None] | None = None
        if self._usdm:
            keepalive = asyncio.get_running_loop().create_task(self._keepalive())
            waits.append(keepalive)
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if keepalive is not None:
                keepalive.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await keepalive

    async def _keepalive(self) -> None:
        """Keep the USD-M listen key alive; a failed keepalive (the key expired: -1125) ends
        the connection, and the reconnect makes a new key."""
        while True:
            await asyncio.sleep(self._keepalive_s)
            await self._listen_key("PUT")

    def _lost(self, reason: str = "connection lost") -> None:
        """Close both sockets and fail every pending request; say so once."""
        if self._ready.is_set() and self._sink is not None:
            self._sink(ExecutionStatus(self._venue, time.time_ns(), connected=False, reason=reason))
        self._ready.clear()
        for ws in (self._ws, self._user_ws):
            if ws is not None:
                ws.close()
        self._ws = None
        self._user_ws = None
        pending = self._pending
        self._pending = {}
        for future, deadline, _ in pending.values():
            deadline.cancel()
            if not future.done():
                future.set_exception(ConnectionError("ws-api connection lost"))

    async def sync_time(self) -> None:
        """Estimate the venue's clock offset from a few server-time requests (the one with the
        shortest round trip counts; its server time is taken as of the round trip's middle).
        Signed requests carry our clock plus this offset as `timestamp`: Binance refuses one
        outside `recvWindow` of its own time (-1021)."""
        best: tuple[int, int] | None = None
        for _ in range(TIME_SAMPLES):
            sent = self._clock_ns()
            if self._usdm:
                body = await self._http_call("GET", f"{self.endpoints.rest}/time")
            else:
                body = await self._send("time", {}, signed=False)
            received = self._clock_ns()
            server_ns = int(body["serverTime"]) * _MS
            sample = (received - sent, server_ns - (sent + received) // 2)
            if best is None or sample[0] < best[0]:
                best = sample
        assert best is not None  # noqa: S101  TIME_SAMPLES > 0
        self.offset_ns = best[1]
        if self._observer is not None:
            self._observer.on_time_offset(self.offset_ns)

    async def _resync_time(self) -> None:
        """One time sync at a time, however many requests -1021 refused together."""
        if self._resync is None or self._resync.done():
            self._resync = asyncio.get_running_loop().create_task(self.sync_time())
        await asyncio.shield(self._resync)

    async def _read_rate_limits(self) -> None:
        """The venue's published limits (`exchangeInfo.rateLimits`), for the order budget."""
        try:
            if self._usdm:
                info = await self._http_call("GET", f"{self.endpoints.rest}/exchangeInfo")
            else:
                symbol = next(iter(self._by_venue_id), "")
                params = {"symbol": symbol} if symbol else {}
                info = await self._send("exchangeInfo", params, signed=False)
        except WsApiError as exc:
            log.warning("exchange info unavailable", venue=self._venue, error=str(exc))
            return
        raw = info.get("rateLimits") if isinstance(info, Mapping) else None
        limits = rate_limits_from_json(raw if isinstance(raw, list) else ())
        if limits:
            self._limits = limits
            if self._observer is not None:
                self._observer.on_limits(limits)

    def _limit_error(self, status: int, code: int, data: Any, retry_after_s: float | None) -> None:
        """A 429 or 418: tell the budget how long to wait (the venue's `retryAfter` time, its
        Retry-After seconds, or a second)."""
        observer = self._observer
        if observer is None:
            return
        wait_ns = int((DEFAULT_RETRY_AFTER_S if retry_after_s is None else retry_after_s) * 1e9)
        until_ms = data.get("retryAfter") if isinstance(data, Mapping) else None
        if isinstance(until_ms, int | float) and until_ms > 0:
            wait_ns = int(until_ms) * _MS - (self._clock_ns() + self.offset_ns)
        orders_only = code == TOO_MANY_ORDERS and status != BAN_CODE
        observer.on_limit_error(max(0, wait_ns), orders_only=orders_only)

    async def _listen_key(self, method: str) -> str:
        body = await self._http_call(method, f"{self.endpoints.rest}/listenKey")
        return str(body.get("listenKey", ""))

    async def _http_call(self, method: str, url: str) -> Any:
        headers = {"X-MBX-APIKEY": self._api_key.get_secret_value()}
        status, body, answer_headers = await self._http.request(method, url, headers)
        if self._observer is not None and self._limits:
            usage = usage_from_headers(answer_headers, self._limits)
            if usage:
                self._observer.on_usage(usage, 0)
        if status != 200:
            if not isinstance(body, Mapping):
                body = {}
            code = int(body.get("code", -1))
            if status in (429, BAN_CODE):
                retry = answer_headers.get("Retry-After") or answer_headers.get("retry-after")
                self._limit_error(status, code, None, float(retry) if retry else None)
            raise WsApiError(code, str(body.get("msg", status)), status=status)
        return body

    async def close(self) -> None:
        self._lost()
        await self._http.close()

    # -- requests ---------------------------------------------------------------------------------

    def _send(
        self, method: str, params: dict[str, str], *, signed: bool = True
    ) -> asyncio.Future[Any]:
        """Sign (unless not `signed`) and write one request now; the future gets its `result`
        or a WsApiError."""
        ws = self._ws
        if ws is None or ws.closed.done():
            raise ConnectionError("ws-api not connected")
        req_id = self._next_id
        self._next_id = req_id + 1
        if signed:
            params["apiKey"] = self._api_key.get_secret_value()
            params["timestamp"] = str((self._clock_ns() + self.offset_ns) // _MS)
            params["recvWindow"] = self._recv_window
            params = signed_params(params, self._signer)
        body = {"id": req_id, "method": method, "params": params}
        # The request leaves first; its future and deadline are bookkeeping (no answer can be
        # read before this returns to the loop).
        ws.send(OP_TEXT, orjson.dumps(body))
        self.requests_sent += 1
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        # A deadline without asyncio.timeout: the first step of a request may run outside any
        # task (the order manager starts it from a market-data callback).
        self._pending[req_id] = (
            future,
            loop.call_later(self._timeout_s, self._expire, req_id),
            method,
        )
        return future

    async def _call(self, method: str, params: dict[str, str]) -> Any:
        return await self._answer(self._send(method, dict(params)), method, params)

    async def _answer(
        self, future: asyncio.Future[Any], method: str, params: dict[str, str]
    ) -> Any:
        """The result of a request already sent; a -1021 (our timestamp outside the venue's
        recvWindow) resyncs the clock offset and sends it once more."""
        try:
            return await future
        except WsApiError as exc:
            if exc.code != INVALID_TIMESTAMP:
                raise
            log.warning("timestamp refused: resyncing the clock offset", venue=self._venue)
        await self._resync_time()
        return await self._send(method, dict(params))

    def _expire(self, req_id: int) -> None:
        entry = self._pending.pop(req_id, None)
        if entry is not None and not entry[0].done():
            entry[0].set_exception(TimeoutError("ws-api request timed out"))

    def _on_frame(self, raw: bytes, ts_ns: int) -> None:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("ws-api frame is not JSON", venue=self._venue)
            return
        event = msg.get("event")
        if event is not None:
            self._on_event(event, ts_ns)
            return
        entry = self._pending.pop(msg.get("id"), None)
        if entry is None:
            return
        future, deadline, method = entry
        deadline.cancel()
        observer = self._observer
        if observer is not None:
            usage = usage_from_json(msg.get("rateLimits"))
            answered = 1 if method in ORDER_METHODS else 0
            if usage or answered:
                observer.on_usage(usage, answered)
        if future.done():
            return
        error = msg.get("error")
        if error is not None:
            if not isinstance(error, Mapping):
                error = {}
            status = int(msg.get("status") or 400)
            code = int(error.get("code", -1))
            if status in (429, BAN_CODE):
                self._limit_error(status, code, error.get("data"), None)
            future.set_exception(
                WsApiError(code, str(error.get("msg", "")), error.get("data"), status)
            )
        else:
            future.set_result(msg.get("result"))

    def _on_user_frame(self, raw: bytes, ts_ns: int) -> None:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("user-data frame is not JSON", venue=self._venue)
            return
        if "data" in msg and "stream" in msg:
            msg = msg["data"]
        kind = msg.get("e")
        if kind == "ORDER_TRADE_UPDATE":
            self._on_report(msg["o"], ts_ns)
        elif kind == "ACCOUNT_UPDATE":
            update = msg.get("a")
            if isinstance(update, Mapping) and update.get("m") == "FUNDING_FEE":
                self._funding_event.set()  # the income history says which position paid

    async def funding_settled(self) -> None:
        """Return once an `ACCOUNT_UPDATE` with reason FUNDING_FEE (USD-M) has arrived since
        the last return."""
        await self._funding_event.wait()
        self._funding_event.clear()

    async def funding_fees(self, symbol: str, start_ms: int) -> list[FundingFee]:
        """USD-M `GET /fapi/v1/income` (incomeType FUNDING_FEE) from `start_ms`, a page of
        1000 at a time, oldest first."""
        market = self._market(symbol)
        inst = market.instrument
        fees: list[FundingFee] = []
        start = start_ms
        while True:
            page = await self._rest(
                "GET",
                "/income",
                {
                    "symbol": market.venue_id,
                    "incomeType": "FUNDING_FEE",
                    "startTime": str(start),
                    "limit": str(_INCOME_PAGE),
                },
            )
            for row in page:
                try:
                    fees.append(funding_fee_from_income(row, inst, self._venue))
                except (KeyError, TypeError, ValueError) as exc:
                    log.warning("malformed income record", venue=self._venue, error=repr(exc))
            if len(page) < _INCOME_PAGE:
                return fees
            start = max(int(row["time"]) for row in page) + 1

    def _on_event(self, event: Mapping[str, Any], ts_ns: int) -> None:
        if event.get("e") == "executionReport":
            self._on_report(event, ts_ns)

    def _on_report(self, o: Mapping[str, Any], ts_ns: int) -> None:
        market = self._by_venue_id.get(str(o.get("s", "")))
        if market is None:
            return  # a symbol this daemon does not trade on the account
        inst = market.instrument
        ts_exchange = int(o.get("T") or 0) * _MS or ts_ns
        try:
            if o.get("x") == "TRADE":
                self._emit(fill_from_report(o, inst, self._venue, ts_exchange, ts_ns))
            self._emit(order_update_from_report(o, inst, self._venue, ts_exchange, ts_ns))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("malformed order event", venue=self._venue, error=repr(exc))

    def _emit(self, event: OrderUpdate | Fill) -> None:
        sink = self._sink
        if sink is not None:
            sink(event)

    def _reject(self, request: OrderRequest, reason: str) -> None:
        self._emit(request.as_update(OrderStatus.REJECTED, time.time_ns(), reason, self._venue))

    # -- order entry ------------------------------------------------------------------------------

    def _order_params(self, request: OrderRequest) -> dict[str, str]:
        market = self._market(request.symbol)
        numbers = market.numbers
        params = {
            "symbol": market.venue_id,
            "side": "BUY" if request.side is Side.BUY else "SELL",
            "quantity": numbers.qty(request.size_lots),
            "newClientOrderId": request.client_order_id,
        }
        order_type = request.order_type
        if order_type is OrderType.MARKET:
            params["type"] = "MARKET"
        else:
            params["price"] = numbers.px(request.price_ticks)
            if order_type is OrderType.LIMIT_MAKER:
                if self._usdm:
                    params["type"] = "LIMIT"
                    params["timeInForce"] = "GTX"
                else:
                    params["type"] = "LIMIT_MAKER"
            else:
                params["type"] = "LIMIT"
                params["timeInForce"] = "IOC" if order_type is OrderType.IOC else "GTC"
        if self._usdm:
            params["newOrderRespType"] = "RESULT"
            if request.reduce_only:
                params["reduceOnly"] = "true"
        else:
            params["newOrderRespType"] = "RESULT"
        return params

    async def place(self, request: OrderRequest) -> None:
        params = self._order_params(request)
        future = self._send("order.place", params)
        try:
            result = await self._answer(future, "order.place", params)
        except WsApiError as exc:
            self._reject(request, exc.msg)
            return
        self._emit(self._update_of(result, request.symbol))

    async def replace(self, old_client_order_id: str, request: OrderRequest) -> None:
        if self._usdm:
            cancel_params = {
                "symbol": self._market(request.symbol).venue_id,
                "origClientOrderId": old_client_order_id,
            }
            cancel = self._send("order.cancel", cancel_params)
            place_params = self._order_params(request)
            place = self._send("order.place", place_params)
            await asyncio.gather(
                self._finish_cancel(cancel, request.symbol, cancel_params),
                self._finish_place(request, place, place_params),
            )
            return
        params = self._order_params(request)
        params["cancelReplaceMode"] = "STOP_ON_FAILURE"
        params["cancelOrigClientOrderId"] = old_client_order_id
        future = self._send("order.cancelReplace", params)
        try:
            result = await self._answer(future, "order.cancelReplace", params)
        except WsApiError as exc:
            data = exc.data if isinstance(exc.data, Mapping) else {}
            cancelled = data.get("cancelResponse")
            if data.get("cancelResult") == "SUCCESS" and isinstance(cancelled, Mapping):
                self._emit(self._update_of(cancelled, request.symbol))
            # STOP_ON_FAILURE: the venue's reason is the failed half's own message.
            new = data.get("newOrderResponse")
            reason = exc.msg
            if data.get("newOrderResult") == "FAILURE" and isinstance(new, Mapping):
                reason = str(new.get("msg", reason))
            elif data.get("cancelResult") == "FAILURE" and isinstance(cancelled, Mapping):
                reason = str(cancelled.get("msg", reason))
            self._reject(request, reason)
            return
        self._emit(self._update_of(result["cancelResponse"], request.symbol))
        self._emit(self._update_of(result["newOrderResponse"], request.symbol))

    async def _finish_place(
        self, request: OrderRequest, future: asyncio.Future[Any], params: dict[str, str]
    ) -> None:
        try:
            result = await self._answer(future, "order.place", params)
        except WsApiError as exc:
            self._reject(request, exc.msg)
            return
        self._emit(self._update_of(result, request.symbol))

    async def _finish_cancel(
        self, future: asyncio.Future[Any], symbol: str, params: dict[str, str]
    ) -> None:
        try:
            result = await self._answer(future, "order.cancel", params)
        except WsApiError as exc:
            if exc.code == UNKNOWN_ORDER:
                return  # already final: its last update came through the user data
            raise
        self._emit(self._update_of(result, symbol))

    async def cancel(self, symbol: str, client_order_id: str) -> None:
        params = {"symbol": self._market(symbol).venue_id, "origClientOrderId": client_order_id}
        future = self._send("order.cancel", params)
        await self._finish_cancel(future, symbol, params)

    async def cancel_all(self, symbol: str) -> None:
        venue_id = self._market(symbol).venue_id
        if not self._usdm:
            try:
                await self._call("openOrders.cancelAll", {"symbol": venue_id})
            except WsApiError as exc:
                if exc.code != UNKNOWN_ORDER:
                    raise
            return
        # The USD-M WS-API has no cancel-all: one signed REST call.
        await self._rest("DELETE", "/allOpenOrders", {"symbol": venue_id})

    async def _rest(self, method: str, path: str, params: dict[str, str]) -> Any:
        """One signed USD-M REST request (the calls the futures WS-API does not offer); a
        -1021 resyncs the clock offset and sends it once more."""
        try:
            return await self._http_call(method, self._signed_url(path, params))
        except WsApiError as exc:
            if exc.code != INVALID_TIMESTAMP:
                raise
        await self._resync_time()
        return await self._http_call(method, self._signed_url(path, params))

    def _signed_url(self, path: str, params: dict[str, str]) -> str:
        signed = dict(params)
        signed["timestamp"] = str((self._clock_ns() + self.offset_ns) // _MS)
        signed["recvWindow"] = self._recv_window
        query = urlencode(signed)
        query += "&signature=" + self._signer(query.encode())
        return f"{self.endpoints.rest}{path}?{query}"

    async def open_orders(self, symbol: str) -> list[OrderUpdate]:
        market = self._market(symbol)
        if not self._ready.is_set():
            async with asyncio.timeout(self._timeout_s):
                await self._ready.wait()
        orders = await self._call("openOrders.status", {"symbol": market.venue_id})
        now = time.time_ns()
        return [order_update_from_order(o, market.instrument, self._venue, now) for o in orders]

    def _update_of(self, order: Mapping[str, Any], symbol: str) -> OrderUpdate:
        """An order object of a response as an OrderUpdate (of `symbol`'s instrument unless
        the object names another)."""
        market = self._by_venue_id.get(str(order.get("symbol", ""))) or self._market(symbol)
        return order_update_from_order(order, market.instrument, self._venue, time.time_ns())

    async def order_status(self, symbol: str, client_order_id: str) -> OrderUpdate | None:
        market = self._market(symbol)
        try:
            order = await self._call(
                "order.status",
                {"symbol": market.venue_id, "origClientOrderId": client_order_id},
            )
        except WsApiError as exc:
            if exc.code in {UNKNOWN_ORDER, ORDER_NOT_EXIST}:
                return None
            raise
        return order_update_from_order(order, market.instrument, self._venue, time.time_ns())

    async def trades_since(
        self,
        symbol: str,
        *,
        order_id: str = "",
        client_order_id: str = "",
        after_trade_id: str = "",
    ) -> list[Fill]:
        """Spot `myTrades`, USD-M `userTrades`: by order, or from a trade id a page at a time."""
        market = self._market(symbol)
        params = {"symbol": market.venue_id, "limit": str(_TRADES_PAGE)}
        if order_id:
            params["orderId"] = order_id
        else:  # without fromId Binance answers the latest page, not the first
            params["fromId"] = str(int(after_trade_id) + 1) if after_trade_id else "0"
        trades: list[Any] = []
        while True:
            if self._usdm:
                page = await self._rest("GET", "/userTrades", dict(params))
            else:
                page = await self._call("myTrades", dict(params))
            trades.extend(page)
            if order_id or len(page) < _TRADES_PAGE:
                break
            params["fromId"] = str(max(int(t["id"]) for t in page) + 1)
        now = time.time_ns()
        fills = [
            fill_from_trade(t, market.instrument, self._venue, client_order_id, now) for t in trades
        ]
        fills.sort(key=lambda f: (f.ts_exchange_ns, int(f.trade_id)))
        return fills

    async def account_position(self, symbol: str) -> AccountPosition:
        """Spot: the base asset's balance (`account.status`); USD-M: the position
        (`account.position`); with the latest trade (`myTrades` / `userTrades`, limit 1)."""
        market = self._market(symbol)
        inst = market.instrument
        latest = {"symbol": market.venue_id, "limit": "1"}
        if self._usdm:
            rows = await self._call("account.position", {"symbol": market.venue_id})
            amount = sum(
                float(row.get("positionAmt", 0))
                for row in rows
                if row.get("symbol") == market.venue_id
            )
            trades = await self._rest("GET", "/userTrades", latest)
        else:
            account = await self._call("account.status", {})
            amount = sum(
                float(b.get("free", 0)) + float(b.get("locked", 0))
                for b in account.get("balances", ())
                if b.get("asset") == inst.base
            )
            trades = await self._call("myTrades", latest)
        last = max((int(t["id"]) for t in trades), default=None)
        return AccountPosition(
            self._venue,
            symbol,
            round(amount / inst.lot_size),
            "" if last is None else str(last),
        )
