"""Signing, request building and the mapping of WS-API responses and user-data events to core
events, on frames shaped like Binance's."""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from mm_daemon.aio import start_eagerly
from mm_daemon.binance.signing import make_signer
from mm_daemon.core.types import (
    ExecutionEvent,
    Fill,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Side,
)
from mm_daemon.venues.binance_ws_api import (
    BinanceWsApiExecution,
    WsApiEndpoints,
    endpoints_from_ccxt,
    fill_from_report,
    fill_from_trade,
    order_update_from_order,
    order_update_from_report,
    signed_params,
)

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


# -- the request path, with a socket that records what it is given ----------------------------


class FakeSocket:
    """Stands in for the websocket: records frames; `closed` stays pending."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.wrote = asyncio.Event()

    def send(self, opcode: int, payload: bytes) -> None:
        assert opcode == 1
        self.sent.append(orjson.loads(payload))
        self.wrote.set()

    def close(self) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def execution(instrument: Instrument = SPOT) -> tuple[BinanceWsApiExecution, FakeSocket]:
    endpoints = WsApiEndpoints("ws://127.0.0.1:1/ws-api/v3", "http://127.0.0.1:1", "ws://x")
    ex = BinanceWsApiExecution(
        instrument,
        endpoints,
        SecretStr("key"),
        SecretStr("secret"),
        clock_ns=lambda: 1_700_000_000_000_000_000,
    )
    socket = FakeSocket()
    ex._ws = socket  # type: ignore[assignment]
    return ex, socket


def answer(ex: BinanceWsApiExecution, body: dict[str, Any]) -> None:
    ex._on_frame(orjson.dumps(body), 1)


async def test_place_writes_one_signed_order_place_before_the_first_await() -> None:
    ex, socket = execution()
    coro = ex.place(OrderRequest("v", "BTC/USDT", "mm1-q", Side.BUY, 6_000_001, 100))
    coro.send(None)  # the first step: runs up to waiting on the response
    assert len(socket.sent) == 1
    request = socket.sent[0]
    params = request["params"]
    assert request["method"] == "order.place"
    assert params["price"] == "60000.01"
    assert params["quantity"] == "0.00100"
    assert params["type"] == "LIMIT_MAKER"
    assert params["newClientOrderId"] == "mm1-q"
    unsigned = {k: v for k, v in params.items() if k != "signature"}
    assert params["signature"] == signed_params(unsigned, make_signer(b"secret"))["signature"]
    answer(ex, {"id": request["id"], "status": 200, "result": {"clientOrderId": "mm1-q"}})
    with pytest.raises(StopIteration):
        coro.send(None)


async def test_error_response_becomes_a_rejected_update_with_the_venue_message() -> None:
    ex, socket = execution()
    events: list[ExecutionEvent] = []
    ex._sink = events.append
    task = asyncio.get_running_loop().create_task(
        ex.place(OrderRequest("v", "BTC/USDT", "mm1-r", Side.BUY, 1, 100))
    )
    await asyncio.sleep(0)
    msg = "Order would immediately match and take."
    answer(ex, {"id": socket.sent[0]["id"], "status": 400, "error": {"code": -2010, "msg": msg}})
    await task
    assert len(events) == 1
    assert isinstance(events[0], OrderUpdate)
    assert (events[0].status, events[0].reason) == (OrderStatus.REJECTED, msg)


async def test_spot_replace_is_one_cancel_replace_with_stop_on_failure() -> None:
    ex, socket = execution()
    task = asyncio.get_running_loop().create_task(
        ex.replace("mm1-old", OrderRequest("v", "BTC/USDT", "mm1-new", Side.SELL, 7, 100))
    )
    await asyncio.sleep(0)
    assert [r["method"] for r in socket.sent] == ["order.cancelReplace"]
    params = socket.sent[0]["params"]
    assert (params["cancelReplaceMode"], params["cancelOrigClientOrderId"]) == (
        "STOP_ON_FAILURE",
        "mm1-old",
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_usdm_replace_writes_a_cancel_and_a_gtx_place_together() -> None:
    ex, socket = execution(PERP)
    task = asyncio.get_running_loop().create_task(
        ex.replace("h-old", OrderRequest("p", "BTC/USDT:USDT", "h-new", Side.BUY, 600_000, 5))
    )
    await asyncio.sleep(0)
    assert [r["method"] for r in socket.sent] == ["order.cancel", "order.place"]
    assert (socket.sent[1]["params"]["type"], socket.sent[1]["params"]["timeInForce"]) == (
        "LIMIT",
        "GTX",
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_lost_connection_fails_pending_requests() -> None:
    ex, _ = execution()
    task = asyncio.get_running_loop().create_task(
        ex.place(OrderRequest("v", "BTC/USDT", "mm1-l", Side.BUY, 1, 100))
    )
    await asyncio.sleep(0)
    ex._lost()
    with pytest.raises(ConnectionError):
        await task


async def test_user_data_event_reaches_the_sink_as_fill_then_update() -> None:
    ex, _ = execution()
    events: list[ExecutionEvent] = []
    ex._sink = events.append
    answer(ex, {"subscriptionId": 0, "event": EXECUTION_REPORT_TRADE})
    assert [type(e) for e in events] == [Fill, OrderUpdate]
    assert events[0].ts_exchange_ns == 1_700_000_000_099_000_000


def test_repr_holds_neither_key_nor_secret() -> None:
    endpoints = WsApiEndpoints("ws://127.0.0.1:1/ws-api/v3")
    ex = BinanceWsApiExecution(SPOT, endpoints, SecretStr("the-key"), SecretStr("the-secret"))
    assert "the-key" not in repr(ex)
    assert "the-secret" not in repr(ex)


async def test_request_started_eagerly_from_a_callback_outside_any_task_completes() -> None:
    ex, socket = execution()
    events: list[ExecutionEvent] = []
    ex._sink = events.append
    tasks: set[asyncio.Task[None]] = set()
    request = OrderRequest("v", "BTC/USDT", "mm1-e", Side.BUY, 6_000_001, 100)
    started = asyncio.Event()

    def on_market_data() -> None:  # as the order manager starts an action from a frame
        start_eagerly(ex.place(request), tasks)
        started.set()

    asyncio.get_running_loop().call_soon(on_market_data)
    await started.wait()
    assert len(socket.sent) == 1  # written within the callback
    result = {"clientOrderId": "mm1-e", "orderId": 5, "status": "NEW", "side": "BUY"}
    answer(ex, {"id": socket.sent[0]["id"], "status": 200, "result": result})
    await asyncio.gather(*tasks)
    assert [e.status for e in events if isinstance(e, OrderUpdate)] == [OrderStatus.OPEN]


# -- fills and orders across a reconnect --------------------------------------------------------


async def answer_next(
    ex: BinanceWsApiExecution, socket: FakeSocket, method: str, result: Any
) -> None:
    """Wait for the next request of `method` and answer it with `result`."""
    async with asyncio.timeout(5):
        while (
            request := next(
                (r for r in socket.sent if r["method"] == method and "answered" not in r), None
            )
        ) is None:
            socket.wrote.clear()
            await socket.wrote.wait()
    request["answered"] = True
    answer(ex, {"id": request["id"], "status": 200, "result": result})


MY_TRADE = {
    "symbol": "BTCUSDT", "id": 7, "orderId": 42, "price": "60000.01", "qty": "0.00040000",
    "commission": "0.00000004", "commissionAsset": "BTC", "time": 1_700_000_000_099,
    "isBuyer": True, "isMaker": True,
}  # fmt: skip


def test_trade_row_becomes_the_same_fill_as_its_execution_report() -> None:
    from_report = fill_from_report(EXECUTION_REPORT_TRADE, SPOT, "v", 1_700_000_000_099_000_000, 2)
    from_row = fill_from_trade(MY_TRADE, SPOT, "v", "mm1-b1", 2)
    assert from_row == from_report


async def test_a_fill_delivered_twice_is_booked_once() -> None:
    ex, _ = execution()
    events: list[ExecutionEvent] = []
    ex._sink = events.append
    answer(ex, {"subscriptionId": 0, "event": EXECUTION_REPORT_TRADE})
    answer(ex, {"subscriptionId": 0, "event": EXECUTION_REPORT_TRADE})
    assert [type(e) for e in events] == [Fill, OrderUpdate, OrderUpdate]


async def test_reconnect_recovers_the_fills_of_an_order_filled_while_down() -> None:
    ex, socket = execution()
    events: list[ExecutionEvent] = []
    ex._sink = events.append
    ex._ready.set()
    answer(ex, {"subscriptionId": 0, "event": {**EXECUTION_REPORT_TRADE, "x": "NEW", "X": "NEW",
                                                "l": "0", "z": "0", "t": -1}})  # fmt: skip
    events.clear()
    # Down, then up: the order filled meanwhile (first the known 0.0004, then 0.0006 more).
    task = asyncio.get_running_loop().create_task(ex._reconcile())
    await answer_next(ex, socket, "openOrders.status", [])
    order = {"symbol": "BTCUSDT", "orderId": 42, "clientOrderId": "mm1-b1", "price": "60000.01",
             "origQty": "0.00100000", "executedQty": "0.00100000", "status": "FILLED",
             "side": "BUY", "updateTime": 1_700_000_000_200}  # fmt: skip
    await answer_next(ex, socket, "order.status", order)
    second = {**MY_TRADE, "id": 8, "qty": "0.00060000", "time": 1_700_000_000_150}
    await answer_next(ex, socket, "myTrades", [second, MY_TRADE])
    await task
    fills = [e for e in events if isinstance(e, Fill)]
    assert [(f.trade_id, f.size_lots) for f in fills] == [("7", 40), ("8", 60)]
    assert isinstance(events[-1], OrderUpdate)
    assert events[-1].status is OrderStatus.FILLED
    # The venue's own event for a recovered fill arriving after all is not booked again.
    answer(ex, {"subscriptionId": 0, "event": EXECUTION_REPORT_TRADE})
    assert len([e for e in events if isinstance(e, Fill)]) == 2


async def test_order_sent_just_before_the_connection_dropped_and_filled_is_recovered() -> None:
    ex, socket = execution()
    events: list[ExecutionEvent] = []
    ex._sink = events.append
    placing = asyncio.get_running_loop().create_task(
        ex.place(OrderRequest("v", "BTC/USDT", "mm1-lost", Side.BUY, 6_000_001, 100))
    )
    await asyncio.sleep(0)
    ex._lost()  # the answer never comes
    with pytest.raises(ConnectionError):
        await placing
    socket = FakeSocket()  # the new connection
    ex._ws = socket  # type: ignore[assignment]
    ex._ready.set()
    task = asyncio.get_running_loop().create_task(ex._reconcile())
    await answer_next(ex, socket, "openOrders.status", [])
    order = {"symbol": "BTCUSDT", "orderId": 43, "clientOrderId": "mm1-lost",
             "price": "60000.01", "origQty": "0.00100000", "executedQty": "0.00100000",
             "status": "FILLED", "side": "BUY", "updateTime": 1_700_000_000_300}  # fmt: skip
    await answer_next(ex, socket, "order.status", order)
    trade = {**MY_TRADE, "id": 9, "orderId": 43, "qty": "0.00100000"}
    await answer_next(ex, socket, "myTrades", [trade])
    await task
    assert [(type(e), e.client_order_id) for e in events] == [
        (Fill, "mm1-lost"),
        (OrderUpdate, "mm1-lost"),
    ]
    assert isinstance(events[0], Fill)
    assert events[0].size_lots == 100
