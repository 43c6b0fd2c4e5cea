"""Signing, request building and the mapping of WS-API responses and user-data events to core
events, on frames shaped like Binance's."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from mm_daemon.aio import start_eagerly
from mm_daemon.binance.limits import DEFAULT_RATE_LIMITS, rate_limits_from_json
from mm_daemon.binance.signing import make_signer
from mm_daemon.core.budget import RateLimit
from mm_daemon.core.types import (
    ExecutionStatus,
    Fill,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Side,
)
from mm_daemon.engine.order_state import reject_reason_label
from mm_daemon.venues.binance_ws_api import BinanceWsApiExecution, signed_params
from mm_daemon.venues.binance_ws_api_wire import (
    WsApiEndpoints,
    endpoints_from_ccxt,
    fill_from_report,
    fill_from_trade,
    order_update_from_order,
    order_update_from_report,
)
from mm_daemon.venues.websocket import WebSocketError
from tests.support import ExecutionRecorder, eventually

NOW_NS = 1_700_000_000_000_000_000
SPOT = Instrument("v", "BTC/USDT", "BTCUSDT", InstrumentKind.SPOT, "BTC", "USDT", 0.01, 1e-5)
PERP = Instrument(
    "p", "BTC/USDT:USDT", "BTCUSDT", InstrumentKind.PERPETUAL, "BTC", "USDT", 0.1, 0.001
)

# Binance's API documentation example (HMAC-SHA256 signed request).
DOC_SECRET = b"NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_PAYLOAD = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    "&recvWindow=5000&timestamp=1499827319559"
)
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_signature_matches_binance_documented_example() -> None:
    assert make_signer(DOC_SECRET)(DOC_PAYLOAD.encode()) == DOC_SIGNATURE


def test_signed_params_sort_by_name_and_sign_the_sorted_payload() -> None:
    params = {"symbol": "BTCUSDT", "apiKey": "k", "timestamp": "1", "side": "BUY"}
    out = signed_params(params, make_signer(b"s"))
    assert list(out) == ["apiKey", "side", "symbol", "timestamp", "signature"]
    assert (
        out["signature"]
        == hmac.digest(b"s", b"apiKey=k&side=BUY&symbol=BTCUSDT&timestamp=1", "sha256").hex()
    )


def test_endpoints_of_usdm_come_from_ccxt_urls() -> None:
    urls = {
        "ws": {"linear": "ws://h:1/ws", "ws-api": {"linear": "ws://h:1/ws-fapi/v1"}},
        "fapiPrivate": "http://h:1/fapi/v1",
    }
    assert endpoints_from_ccxt(urls, usdm=True) == WsApiEndpoints(
        "ws://h:1/ws-fapi/v1", "http://h:1/fapi/v1", "ws://h:1/private/ws"
    )


def test_endpoints_of_spot_are_the_ws_api_url() -> None:
    urls = {"ws": {"ws-api": {"spot": "ws://h:1/ws-api/v3"}}}
    assert endpoints_from_ccxt(urls, usdm=False) == WsApiEndpoints("ws://h:1/ws-api/v3")


EXECUTION_REPORT_TRADE: dict[str, Any] = {
    "e": "executionReport",
    "E": 1_700_000_000_100,
    "s": "BTCUSDT",
    "c": "mm1-b1",
    "S": "BUY",
    "o": "LIMIT_MAKER",
    "f": "GTC",
    "q": "0.00100000",
    "p": "60000.01000000",
    "x": "TRADE",
    "X": "PARTIALLY_FILLED",
    "r": "NONE",
    "i": 42,
    "l": "0.00040000",
    "z": "0.00040000",
    "L": "60000.01000000",
    "n": "0.00000004",
    "N": "BTC",
    "T": 1_700_000_000_099,
    "t": 7,
    "m": True,
    "C": "",
}


def test_execution_report_maps_to_an_order_update_in_ticks_and_lots() -> None:
    update = order_update_from_report(EXECUTION_REPORT_TRADE, SPOT, "v", 5, 9)
    assert update == OrderUpdate(
        "v", "BTC/USDT", 5, 9, "mm1-b1", "42", OrderStatus.PARTIALLY_FILLED, Side.BUY,
        6_000_001, 100, 40, "",
    )  # fmt: skip


def test_trade_execution_maps_to_a_fill_with_the_base_fee_in_quote() -> None:
    fill = fill_from_report(EXECUTION_REPORT_TRADE, SPOT, "v", 5, 9)
    assert (fill.client_order_id, fill.trade_id, fill.price_ticks, fill.size_lots) == (
        "mm1-b1",
        "7",
        6_000_001,
        40,
    )
    assert fill.liquidity is Liquidity.MAKER
    assert fill.fee_quote == pytest.approx(0.00000004 * 60000.01)


def test_spot_cancel_report_names_the_cancelled_order_not_the_cancel_request() -> None:
    report = {**EXECUTION_REPORT_TRADE, "x": "CANCELED", "X": "CANCELED", "c": "x9", "C": "mm1-b1"}
    update = order_update_from_report(report, SPOT, "v", 5, 9)
    assert (update.client_order_id, update.status) == ("mm1-b1", OrderStatus.CANCELLED)


def test_usdm_order_trade_update_fee_in_usdt_is_taken_as_is() -> None:
    o = {
        "s": "BTCUSDT", "c": "h1", "S": "SELL", "q": "0.005", "p": "0", "x": "TRADE",
        "X": "FILLED", "i": 3, "l": "0.005", "z": "0.005", "L": "60000.0", "N": "USDT",
        "n": "0.12", "T": 1, "t": 11, "m": False,
    }  # fmt: skip
    fill = fill_from_report(o, PERP, "p", 1_000_000, 2)
    assert (fill.side, fill.size_lots, fill.liquidity) == (Side.SELL, 5, Liquidity.TAKER)
    assert fill.fee_quote == pytest.approx(0.12)


def test_order_object_of_a_response_maps_status_and_sizes() -> None:
    order = {
        "symbol": "BTCUSDT", "orderId": 9, "clientOrderId": "mm1-a", "price": "59999.99",
        "origQty": "0.00200000", "executedQty": "0.00000000", "status": "NEW", "side": "SELL",
        "transactTime": 1_700_000_000_000,
    }  # fmt: skip
    update = order_update_from_order(order, SPOT, "v", 3)
    assert (update.status, update.side, update.price_ticks, update.size_lots) == (
        OrderStatus.OPEN,
        Side.SELL,
        5_999_999,
        200,
    )
    assert update.ts_exchange_ns == 1_700_000_000_000_000_000


# -- the request path, through fake transports -------------------------------------------------


class FakeSocket:
    """One fake WS-API connection: records each request written to it, answers the user-data
    subscription by itself, and lets the test answer the rest or push events."""

    def __init__(self, on_message: Callable[[bytes, int], None]) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.wrote = asyncio.Event()
        self._on_message = on_message
        self.server_ms = NOW_NS // 1_000_000

    def send(self, opcode: int, payload: bytes) -> None:
        assert opcode == 1
        request = orjson.loads(payload)
        self.sent.append(request)
        self.wrote.set()
        # The requests of a connect are answered by the venue itself, after the request is
        # registered, as a real answer comes later.
        auto = {
            "userDataStream.subscribe.signature": {"subscriptionId": 0},
            "time": {"serverTime": self.server_ms},
            "exchangeInfo": {"rateLimits": list(DEFAULT_RATE_LIMITS["spot"]), "symbols": []},
        }.get(request["method"])
        if auto is not None:
            asyncio.get_running_loop().call_soon(self.answer, request["id"], auto)

    def answer(self, req_id: int, result: Any = None, error: dict[str, Any] | None = None) -> None:
        body: dict[str, Any] = {"id": req_id, "status": 200 if error is None else 400}
        body["result" if error is None else "error"] = result if error is None else error
        self._on_message(orjson.dumps(body), 1)

    def push(self, message: dict[str, Any]) -> None:
        self._on_message(orjson.dumps(message), 1)

    def drop(self) -> None:
        """The connection breaks (as the server going away)."""
        if not self.closed.done():
            self.closed.set_exception(WebSocketError("connection lost"))

    def close(self) -> None:
        if not self.closed.done():
            self.closed.set_exception(WebSocketError("closed"))


class FakeVenue:
    """The connector and HTTP transport an execution is given: every websocket it opens is a
    `FakeSocket`; HTTP answers a listen key."""

    def __init__(self) -> None:
        self.sockets: list[FakeSocket] = []
        self.urls: list[str] = []
        self.http_requests: list[tuple[str, str]] = []

    @property
    def socket(self) -> FakeSocket:
        """The latest WS-API connection (USD-M's user data has a connection of its own)."""
        pairs = zip(self.sockets, self.urls, strict=True)
        return [sock for sock, url in pairs if "ws-api" in url][-1]

    async def connect(self, url: str, on_message: Callable[[bytes, int], None]) -> FakeSocket:
        sock = FakeSocket(on_message)
        self.sockets.append(sock)
        self.urls.append(url)
        return sock

    async def request(
        self, method: str, url: str, headers: Mapping[str, str]
    ) -> tuple[int, Any, Mapping[str, str]]:
        del headers
        self.http_requests.append((method, url))
        if url.endswith("/time"):
            return 200, {"serverTime": NOW_NS // 1_000_000}, {}
        if url.endswith("/exchangeInfo"):
            return 200, {"rateLimits": list(DEFAULT_RATE_LIMITS["usdm"]), "symbols": []}, {}
        return 200, {"listenKey": "lk"}, {}

    async def close(self) -> None:
        return None


Running = tuple[BinanceWsApiExecution, FakeVenue, ExecutionRecorder]


async def start(
    venue: FakeVenue, instrument: Instrument, **kwargs: Any
) -> tuple[BinanceWsApiExecution, asyncio.Task[None], ExecutionRecorder]:
    """An execution run against `venue`, connected, its events recorded."""
    endpoints = WsApiEndpoints("ws://127.0.0.1:1/ws-api/v3", "http://127.0.0.1:1", "ws://x")
    ex = BinanceWsApiExecution(
        endpoints,
        SecretStr("key"),
        SecretStr("secret"),
        venue=instrument.venue,
        usdm=instrument is PERP,
        instruments=(instrument,),
        clock_ns=lambda: NOW_NS,
        connector=venue.connect,
        http=venue,
        initial_backoff_s=0.001,
        **kwargs,
    )
    events = ExecutionRecorder()
    task = asyncio.get_running_loop().create_task(ex.run(events))
    await eventually(lambda: ex.connected, timeout_s=5, what="connected to the fake venue")
    events.items.clear()  # the first ExecutionStatus
    return ex, task, events


async def stop(ex: BinanceWsApiExecution, task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await ex.close()


@pytest.fixture
async def running(request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    """An execution run against a `FakeVenue` (spot, or USD-M with `indirect` "usdm"),
    connected, its events recorded."""
    instrument = PERP if getattr(request, "param", "spot") == "usdm" else SPOT
    venue = FakeVenue()
    ex, task, events = await start(venue, instrument)
    try:
        yield ex, venue, events
    finally:
        await stop(ex, task)


CONNECT_METHODS = frozenset({"userDataStream.subscribe.signature", "time", "exchangeInfo"})


def orders_sent(venue: FakeVenue) -> list[dict[str, Any]]:
    return [r for r in venue.socket.sent if r["method"] not in CONNECT_METHODS]


async def test_place_writes_one_signed_order_place_before_the_first_await(
    running: Running,
) -> None:
    ex, venue, _ = running
    coro = ex.place(OrderRequest("v", "BTC/USDT", "mm1-q", Side.BUY, 6_000_001, 100))
    coro.send(None)  # the first step: runs up to waiting on the response
    sent = orders_sent(venue)
    assert len(sent) == 1
    request = sent[0]
    params = request["params"]
    assert request["method"] == "order.place"
    assert params["price"] == "60000.01"
    assert params["quantity"] == "0.00100"
    assert params["type"] == "LIMIT_MAKER"
    assert params["newClientOrderId"] == "mm1-q"
    unsigned = {k: v for k, v in params.items() if k != "signature"}
    assert params["signature"] == signed_params(unsigned, make_signer(b"secret"))["signature"]
    venue.socket.answer(request["id"], {"clientOrderId": "mm1-q"})
    with pytest.raises(StopIteration):
        coro.send(None)


async def test_error_response_becomes_a_rejected_update_with_the_venue_message(
    running: Running,
) -> None:
    ex, venue, events = running
    task = asyncio.get_running_loop().create_task(
        ex.place(OrderRequest("v", "BTC/USDT", "mm1-r", Side.BUY, 1, 100))
    )
    await eventually(lambda: orders_sent(venue), what="the order request")
    msg = "Order would immediately match and take."
    venue.socket.answer(orders_sent(venue)[0]["id"], error={"code": -2010, "msg": msg})
    await task
    assert len(events.items) == 1
    update = events.items[0]
    assert isinstance(update, OrderUpdate)
    assert (update.status, update.reason) == (OrderStatus.REJECTED, msg)


async def test_spot_replace_is_one_cancel_replace_with_stop_on_failure(running: Running) -> None:
    ex, venue, _ = running
    task = asyncio.get_running_loop().create_task(
        ex.replace("mm1-old", OrderRequest("v", "BTC/USDT", "mm1-new", Side.SELL, 7, 100))
    )
    await eventually(lambda: orders_sent(venue), what="the replace request")
    assert [r["method"] for r in orders_sent(venue)] == ["order.cancelReplace"]
    params = orders_sent(venue)[0]["params"]
    assert (params["cancelReplaceMode"], params["cancelOrigClientOrderId"]) == (
        "STOP_ON_FAILURE",
        "mm1-old",
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("running", ["usdm"], indirect=True)
async def test_usdm_replace_writes_a_cancel_and_a_gtx_place_together(running: Running) -> None:
    ex, venue, _ = running
    task = asyncio.get_running_loop().create_task(
        ex.replace("h-old", OrderRequest("p", "BTC/USDT:USDT", "h-new", Side.BUY, 600_000, 5))
    )
    await eventually(lambda: len(orders_sent(venue)) >= 2, what="cancel and place")
    sent = orders_sent(venue)
    assert [r["method"] for r in sent] == ["order.cancel", "order.place"]
    assert (sent[1]["params"]["type"], sent[1]["params"]["timeInForce"]) == ("LIMIT", "GTX")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("running", ["usdm"], indirect=True)
async def test_usdm_user_data_comes_from_a_listen_key_made_over_rest(running: Running) -> None:
    _, venue, _ = running
    keys = [r for r in venue.http_requests if "listenKey" in r[1]]
    assert keys == [("POST", "http://127.0.0.1:1/listenKey")]
    assert len(venue.sockets) == 2  # the WS-API and the listen-key stream


async def test_lost_connection_fails_pending_requests_and_is_reported(running: Running) -> None:
    ex, venue, events = running
    task = asyncio.get_running_loop().create_task(
        ex.place(OrderRequest("v", "BTC/USDT", "mm1-l", Side.BUY, 1, 100))
    )
    await eventually(lambda: orders_sent(venue), what="the order request")
    venue.socket.drop()
    with pytest.raises(ConnectionError):
        await task
    status = await events.wait_for(lambda e: isinstance(e, ExecutionStatus))
    assert isinstance(status, ExecutionStatus)
    assert not status.connected


async def test_a_dropped_connection_is_reopened_and_reported_up(running: Running) -> None:
    ex, venue, events = running
    venue.socket.drop()
    await eventually(lambda: len(venue.sockets) == 2 and ex.connected, what="reconnected")
    statuses = [e.connected for e in events.items if isinstance(e, ExecutionStatus)]
    assert statuses == [False, True]
    assert ex.reconnects == 1


async def test_user_data_event_reaches_the_sink_as_fill_then_update(running: Running) -> None:
    _, venue, events = running
    venue.socket.push({"subscriptionId": 0, "event": EXECUTION_REPORT_TRADE})
    assert [type(e) for e in events.items] == [Fill, OrderUpdate]
    assert events.items[0].ts_exchange_ns == 1_700_000_000_099_000_000


def test_repr_holds_neither_key_nor_secret() -> None:
    endpoints = WsApiEndpoints("ws://127.0.0.1:1/ws-api/v3")
    ex = BinanceWsApiExecution(
        endpoints,
        SecretStr("the-key"),
        SecretStr("the-secret"),
        venue="v",
        usdm=False,
        instruments=(SPOT,),
    )
    assert "the-key" not in repr(ex)
    assert "the-secret" not in repr(ex)


async def test_request_started_eagerly_from_a_callback_outside_any_task_completes(
    running: Running,
) -> None:
    ex, venue, events = running
    tasks: set[asyncio.Task[None]] = set()
    request = OrderRequest("v", "BTC/USDT", "mm1-e", Side.BUY, 6_000_001, 100)
    started = asyncio.Event()

    def on_market_data() -> None:  # as the order manager starts an action from a frame
        start_eagerly(ex.place(request), tasks)
        started.set()

    asyncio.get_running_loop().call_soon(on_market_data)
    await started.wait()
    assert len(orders_sent(venue)) == 1  # written within the callback
    result = {"clientOrderId": "mm1-e", "orderId": 5, "status": "NEW", "side": "BUY"}
    venue.socket.answer(orders_sent(venue)[0]["id"], result)
    await asyncio.gather(*tasks)
    assert [e.status for e in events.items if isinstance(e, OrderUpdate)] == [OrderStatus.OPEN]


# -- what the engine's reconcile asks of the venue ----------------------------------------------


async def answer_next(venue: FakeVenue, method: str, result: Any) -> None:
    """Wait for the next request of `method` and answer it with `result`."""
    sock = venue.socket
    request = await eventually(
        lambda: next((r for r in sock.sent if r["method"] == method and "answered" not in r), None),
        timeout_s=5,
        what=f"a {method} request",
    )
    request["answered"] = True
    sock.answer(request["id"], result)


MY_TRADE = {
    "symbol": "BTCUSDT", "id": 7, "orderId": 42, "price": "60000.01", "qty": "0.00040000",
    "commission": "0.00000004", "commissionAsset": "BTC", "time": 1_700_000_000_099,
    "isBuyer": True, "isMaker": True,
}  # fmt: skip


def test_trade_row_becomes_the_same_fill_as_its_execution_report() -> None:
    from_report = fill_from_report(EXECUTION_REPORT_TRADE, SPOT, "v", 1_700_000_000_099_000_000, 2)
    from_row = fill_from_trade(MY_TRADE, SPOT, "v", "mm1-b1", 2)
    assert from_row == from_report


async def test_order_status_of_an_order_the_venue_forgot_is_none(running: Running) -> None:
    ex, venue, _ = running
    task = asyncio.get_running_loop().create_task(ex.order_status("BTC/USDT", "mm1-gone"))
    request = await eventually(lambda: orders_sent(venue), what="order.status")
    assert request[0]["params"]["origClientOrderId"] == "mm1-gone"
    venue.socket.answer(request[0]["id"], error={"code": -2013, "msg": "Order does not exist."})
    assert await task is None


async def test_trades_of_an_order_come_oldest_first_labelled_with_its_client_id(
    running: Running,
) -> None:
    ex, venue, _ = running
    task = asyncio.get_running_loop().create_task(
        ex.trades_since("BTC/USDT", order_id="42", client_order_id="mm1-b1")
    )
    second = {**MY_TRADE, "id": 8, "qty": "0.00060000", "time": 1_700_000_000_150}
    await answer_next(venue, "myTrades", [second, MY_TRADE])
    fills = await task
    assert [(f.trade_id, f.size_lots, f.client_order_id) for f in fills] == [
        ("7", 40, "mm1-b1"),
        ("8", 60, "mm1-b1"),
    ]
    assert orders_sent(venue)[0]["params"]["orderId"] == "42"


async def test_trades_after_a_trade_id_are_read_a_page_at_a_time(running: Running) -> None:
    ex, venue, _ = running
    task = asyncio.get_running_loop().create_task(ex.trades_since("BTC/USDT", after_trade_id="6"))
    page = [{**MY_TRADE, "id": 7 + i, "time": 1_700_000_000_000 + i} for i in range(1000)]
    await answer_next(venue, "myTrades", page)
    await answer_next(venue, "myTrades", [{**MY_TRADE, "id": 1007, "time": 1_700_000_002_000}])
    fills = await task
    assert len(fills) == 1001
    sent = orders_sent(venue)
    assert [r["params"]["fromId"] for r in sent] == ["7", "1007"]


# -- venue rules: clock offset, rate limits reported and enforced, listen key ---------------------


class Observer:
    """Records what the execution reports of the venue's rate limits."""

    def __init__(self) -> None:
        self.limits: list[tuple[RateLimit, ...]] = []
        self.usage: list[tuple[list[tuple[RateLimit, int]], int]] = []
        self.errors: list[tuple[int, bool]] = []
        self.offsets: list[int] = []

    def on_limits(self, limits: tuple[RateLimit, ...]) -> None:
        self.limits.append(limits)

    def on_usage(self, usage: list[tuple[RateLimit, int]], answered_orders: int) -> None:
        self.usage.append((usage, answered_orders))

    def on_limit_error(self, retry_after_ns: int, *, orders_only: bool) -> None:
        self.errors.append((retry_after_ns, orders_only))

    def on_time_offset(self, offset_ns: int) -> None:
        self.offsets.append(offset_ns)


class AheadVenue(FakeVenue):
    """A venue whose clock runs `ahead_ms` ahead of ours."""

    def __init__(self, ahead_ms: int) -> None:
        super().__init__()
        self.ahead_ms = ahead_ms

    async def connect(self, url: str, on_message: Callable[[bytes, int], None]) -> FakeSocket:
        sock = await super().connect(url, on_message)
        sock.server_ms = NOW_NS // 1_000_000 + self.ahead_ms
        return sock


async def place_task(ex: BinanceWsApiExecution, client_id: str) -> asyncio.Task[None]:
    request = OrderRequest("v", "BTC/USDT", client_id, Side.BUY, 6_000_001, 100)
    return asyncio.get_running_loop().create_task(ex.place(request))


async def test_signed_timestamp_carries_the_venue_clock_offset() -> None:
    venue = AheadVenue(ahead_ms=2_500)
    ex, task, _ = await start(venue, SPOT)
    try:
        assert ex.offset_ns == 2_500_000_000
        placing = await place_task(ex, "mm1-t")
        await eventually(lambda: orders_sent(venue), what="the order request")
        assert orders_sent(venue)[0]["params"]["timestamp"] == str(NOW_NS // 1_000_000 + 2_500)
        placing.cancel()
    finally:
        await stop(ex, task)


async def test_timestamp_refused_resyncs_the_offset_and_sends_the_order_again(
    running: Running,
) -> None:
    ex, venue, events = running
    placing = await place_task(ex, "mm1-r")
    await eventually(lambda: orders_sent(venue), what="the order request")
    venue.socket.server_ms += 3_000  # the venue's clock moved on: our timestamps are late
    first = orders_sent(venue)[0]
    venue.socket.answer(first["id"], error={"code": -1021, "msg": "Timestamp outside recvWindow"})
    await eventually(lambda: len(orders_sent(venue)) == 2, what="the order sent again")
    again = orders_sent(venue)[1]
    assert again["params"]["newClientOrderId"] == "mm1-r"
    assert int(again["params"]["timestamp"]) == int(first["params"]["timestamp"]) + 3_000
    venue.socket.answer(again["id"], {"clientOrderId": "mm1-r", "status": "NEW"})
    await placing
    assert [e.status for e in events.items if isinstance(e, OrderUpdate)] == [OrderStatus.OPEN]


async def test_published_rate_limits_reach_the_observer_at_connect() -> None:
    venue = FakeVenue()
    observer = Observer()
    endpoints = WsApiEndpoints("ws://127.0.0.1:1/ws-api/v3")
    ex = BinanceWsApiExecution(
        endpoints,
        SecretStr("key"),
        SecretStr("secret"),
        venue="v",
        usdm=False,
        instruments=(SPOT,),
        clock_ns=lambda: NOW_NS,
        connector=venue.connect,
    )
    ex.observe_rate_limits(observer)
    await ex.connect()
    try:
        assert observer.limits == [rate_limits_from_json(DEFAULT_RATE_LIMITS["spot"])]
        assert observer.offsets == [0]
    finally:
        await ex.close()


async def test_counts_in_an_order_answer_reach_the_observer_with_the_order_answered(
    running: Running,
) -> None:
    ex, venue, _ = running
    observer = Observer()
    ex.observe_rate_limits(observer)
    placing = await place_task(ex, "mm1-u")
    await eventually(lambda: orders_sent(venue), what="the order request")
    orders = {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100}
    weight = {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1}
    counts = [{**orders, "count": 7}, {**weight, "limit": 6000, "count": 33}]
    venue.socket.push(
        {"id": orders_sent(venue)[0]["id"], "status": 200, "result": {}, "rateLimits": counts}
    )
    await placing
    ((usage, answered),) = observer.usage
    assert answered == 1
    assert [(limit.label, count) for limit, count in usage] == [
        ("orders_10s", 7),
        ("weight_1m", 33),
    ]


async def test_order_count_breach_backs_off_until_retry_after_and_rejects_the_order(
    running: Running,
) -> None:
    ex, venue, events = running
    observer = Observer()
    ex.observe_rate_limits(observer)
    placing = await place_task(ex, "mm1-x")
    await eventually(lambda: orders_sent(venue), what="the order request")
    msg = "Too many new orders; current limit is 100 orders per 10 SECOND."
    retry_at_ms = NOW_NS // 1_000_000 + 4_000
    venue.socket.push(
        {
            "id": orders_sent(venue)[0]["id"],
            "status": 429,
            "error": {"code": -1015, "msg": msg, "data": {"retryAfter": retry_at_ms}},
        }
    )
    await placing
    assert observer.errors == [(4_000_000_000, True)]
    (update,) = events.items
    assert isinstance(update, OrderUpdate)
    assert (update.status, reject_reason_label(update.reason)) == (
        OrderStatus.REJECTED,
        "rate_limit",
    )


async def test_ban_backs_off_every_request(running: Running) -> None:
    ex, venue, _ = running
    observer = Observer()
    ex.observe_rate_limits(observer)
    placing = await place_task(ex, "mm1-b")
    await eventually(lambda: orders_sent(venue), what="the order request")
    banned_until_ms = NOW_NS // 1_000_000 + 120_000
    venue.socket.push(
        {
            "id": orders_sent(venue)[0]["id"],
            "status": 418,
            "error": {
                "code": -1003,
                "msg": f"Way too much request weight used; IP banned until {banned_until_ms}.",
                "data": {"retryAfter": banned_until_ms},
            },
        }
    )
    await placing
    assert observer.errors == [(120_000_000_000, False)]


async def test_usdm_listen_key_is_kept_alive_over_rest() -> None:
    venue = FakeVenue()
    ex, task, _ = await start(venue, PERP, listen_key_keepalive_s=0.01)
    try:
        await eventually(
            lambda: ("PUT", "http://127.0.0.1:1/listenKey") in venue.http_requests,
            what="a listen-key keepalive",
        )
    finally:
        await stop(ex, task)


class ExpiringKeyVenue(FakeVenue):
    """A USD-M venue that forgot the listen key: its keepalive answers -1125."""

    async def request(
        self, method: str, url: str, headers: Mapping[str, str]
    ) -> tuple[int, Any, Mapping[str, str]]:
        if method == "PUT":
            self.http_requests.append((method, url))
            return 400, {"code": -1125, "msg": "This listenKey does not exist."}, {}
        return await super().request(method, url, headers)


async def test_usdm_listen_key_that_expired_is_made_again_on_a_new_connection() -> None:
    venue = ExpiringKeyVenue()
    ex, task, _ = await start(venue, PERP, listen_key_keepalive_s=0.01)
    try:
        await eventually(
            lambda: venue.http_requests.count(("POST", "http://127.0.0.1:1/listenKey")) >= 2,
            what="a new listen key",
        )
        assert ex.reconnects >= 1
    finally:
        await stop(ex, task)


async def test_usdm_rest_usage_headers_reach_the_observer() -> None:
    class Headers(FakeVenue):
        async def request(
            self, method: str, url: str, headers: Mapping[str, str]
        ) -> tuple[int, Any, Mapping[str, str]]:
            status, body, _ = await super().request(method, url, headers)
            return status, body, {"X-MBX-USED-WEIGHT-1M": "17"}

    venue = Headers()
    observer = Observer()
    endpoints = WsApiEndpoints("ws://127.0.0.1:1/ws-fapi/v1", "http://127.0.0.1:1", "ws://x")
    ex = BinanceWsApiExecution(
        endpoints,
        SecretStr("key"),
        SecretStr("secret"),
        venue="p",
        usdm=True,
        instruments=(PERP,),
        clock_ns=lambda: NOW_NS,
        connector=venue.connect,
        http=venue,
    )
    ex.observe_rate_limits(observer)
    await ex.connect()
    try:
        weights = [count for usage, _ in observer.usage for _, count in usage]
        assert weights
        assert set(weights) == {17}
    finally:
        await ex.close()


# -- funding (USD-M) ---------------------------------------------------------------------------


class IncomeHttp:
    """Answers `/income` with the pages it is given, one per request, recording the URLs."""

    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        self.pages = pages
        self.urls: list[str] = []

    async def request(
        self, method: str, url: str, headers: Mapping[str, str]
    ) -> tuple[int, Any, Mapping[str, str]]:
        del method, headers
        self.urls.append(url)
        return 200, self.pages.pop(0), {}

    async def close(self) -> None:
        return None


def income_row(tran_id: int, time_ms: int, income: str) -> dict[str, Any]:
    return {
        "symbol": "BTCUSDT", "incomeType": "FUNDING_FEE", "income": income, "asset": "USDT",
        "info": "FUNDING_FEE", "time": time_ms, "tranId": tran_id, "tradeId": "",
    }  # fmt: skip


def usdm_execution(http: IncomeHttp) -> BinanceWsApiExecution:
    endpoints = WsApiEndpoints("ws://127.0.0.1:1/ws-fapi/v1", "http://127.0.0.1:1", "ws://x")
    return BinanceWsApiExecution(
        endpoints,
        SecretStr("key"),
        SecretStr("secret"),
        venue=PERP.venue,
        usdm=True,
        instruments=(PERP,),
        http=http,
    )


async def test_funding_fees_are_read_from_the_income_history_from_the_start_time() -> None:
    http = IncomeHttp([[income_row(7, 1_700_006_400_000, "-0.01234567")]])
    fees = await usdm_execution(http).funding_fees(PERP.symbol, 1_700_000_000_000)
    assert [(f.payment_id, f.funding_time_ns, f.amount_quote, f.asset) for f in fees] == [
        ("7", 1_700_006_400_000 * 10**6, -0.01234567, "USDT")
    ]
    assert "incomeType=FUNDING_FEE" in http.urls[0]
    assert "startTime=1700000000000" in http.urls[0]


async def test_a_full_income_page_is_followed_by_the_next_from_after_its_last_record() -> None:
    first = [income_row(i, 1_000 + i, "0.1") for i in range(1000)]
    http = IncomeHttp([first, [income_row(1000, 5_000, "0.2")]])
    fees = await usdm_execution(http).funding_fees(PERP.symbol, 0)
    assert len(fees) == 1001
    assert "startTime=2000" in http.urls[1]


async def test_a_funding_fee_account_event_wakes_the_funding_reader() -> None:
    execution = usdm_execution(IncomeHttp([]))
    waiting = asyncio.ensure_future(execution.funding_settled())
    event = {"e": "ACCOUNT_UPDATE", "E": 1, "T": 1, "a": {"m": "FUNDING_FEE", "B": [], "P": []}}
    execution._on_user_frame(orjson.dumps(event), 1)
    await asyncio.wait_for(waiting, 1.0)


async def test_an_order_account_event_does_not_wake_the_funding_reader() -> None:
    execution = usdm_execution(IncomeHttp([]))
    event = {"e": "ACCOUNT_UPDATE", "E": 1, "T": 1, "a": {"m": "ORDER", "B": [], "P": []}}
    execution._on_user_frame(orjson.dumps(event), 1)
    execution._on_user_frame(b'{"e":"ACCOUNT_UPDATE","a":["not","a","mapping"]}', 2)
    waiting = asyncio.ensure_future(execution.funding_settled())
    await asyncio.sleep(0)  # one loop turn: a set event would have let it finish in it
    finished = waiting.done()
    waiting.cancel()
    assert not finished
