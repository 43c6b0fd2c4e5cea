"""The simulator enforces Binance's rate limits and symbol filters, with Binance's answers: the
counts and their windows, what counts (orders, not cancels; filled orders given back), -1015 and
-1003 with 429 and Retry-After, 418 bans, usage reported back (WS-API `rateLimits`, REST
headers), published in exchangeInfo; its clock may run off the host's.

The synthetic market is frozen (speed 0): only the tests' own orders move the books.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import ccxt.pro as ccxtpro
import orjson
import pytest
from pydantic import SecretStr

from mm_daemon.config import SimConfig, SimLimitsConfig
from mm_daemon.core.types import OrderRequest, OrderStatus, Side
from mm_daemon.sim.runner import SimulatorHandle, start_simulator
from mm_daemon.venues.binance_ws_api import BinanceWsApiExecution
from mm_daemon.venues.binance_ws_api_wire import WsApiEndpoints
from mm_daemon.venues.exchanges import build_instrument, make_ccxt_exchange
from tests.support import ExecutionRecorder, eventually

SPOT = "sim-spot"
PERP = "sim-perp"
FORM = "application/x-www-form-urlencoded"


def sign(secret: str, payload: str) -> str:
    return hmac.digest(secret.encode(), payload.encode(), "sha256").hex()


def now_ms(offset_ms: int = 0) -> int:
    return time.time_ns() // 1_000_000 + offset_ms


async def simulator(**config: Any) -> SimulatorHandle:
    """A frozen simulator with these `limits` (and other settings), its books seeded."""
    settings = {k: config.pop(k) for k in list(config) if k in SimConfig.model_fields}
    handle = await start_simulator(
        SimConfig(seed=7, limits=SimLimitsConfig(**config), **settings), market_speed=0.0
    )
    engine = handle.venues[SPOT].symbols["BTCUSDT"].engine
    await eventually(lambda: engine.best_bid() is not None, what="the seeded book")
    return handle


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorHandle]:
    # The day window (resetting at 00:00 UTC) holds the counts still for the whole test.
    handle = await simulator(spot_orders_per_10_seconds=1_000, spot_orders_per_day=3)
    try:
        yield handle
    finally:
        await handle.stop()


def below_bid(sim: SimulatorHandle, ticks: int = 500) -> int:
    engine = sim.venues[SPOT].symbols["BTCUSDT"].engine
    bid = engine.best_bid()
    assert bid is not None
    return bid[0] - ticks


def px(ticks: int) -> str:
    return f"{ticks / 100:.2f}"


async def rest_order(
    session: aiohttp.ClientSession,
    sim: SimulatorHandle,
    key: str,
    *,
    price_ticks: int,
    quantity: str = "0.00100",
    side: str = "BUY",
    order_type: str = "LIMIT",
) -> aiohttp.ClientResponse:
    query = f"symbol=BTCUSDT&side={side}&type={order_type}&quantity={quantity}&timestamp={now_ms()}"
    if order_type == "LIMIT":
        query += f"&timeInForce=GTC&price={px(price_ticks)}"
    body = query + "&signature=" + sign(key, query)
    resp = await session.post(
        sim.endpoint(SPOT).rest + "/api/v3/order",
        data=body,
        headers={"X-MBX-APIKEY": key, "Content-Type": FORM},
    )
    await resp.read()
    return resp


# -- order counts -------------------------------------------------------------------------------


async def test_order_past_the_count_answers_1015_with_429_and_retry_after(
    sim: SimulatorHandle,
) -> None:
    exchange = make_ccxt_exchange("spot", sim.endpoint(SPOT).rest, sim.endpoint(SPOT).ws, "k", "k")
    try:
        await exchange.load_markets()
        price = px(below_bid(sim))
        for _ in range(3):
            await exchange.create_order("BTC/USDT", "limit", "buy", 0.001, float(price))
        with pytest.raises(ccxtpro.DDoSProtection, match="-1015"):
            await exchange.create_order("BTC/USDT", "limit", "buy", 0.001, float(price))
        with pytest.raises(ccxtpro.RateLimitExceeded):
            await exchange.create_order_ws("BTC/USDT", "limit", "buy", 0.001, float(price))
    finally:
        await exchange.close()
    assert sim.venues[SPOT].limiter is not None
    assert sim.venues[SPOT].limiter.errors["orders"] == 2


async def test_rest_order_answers_carry_the_order_counts_and_the_used_weight(
    sim: SimulatorHandle,
) -> None:
    async with aiohttp.ClientSession() as session:
        resp = await rest_order(session, sim, "h", price_ticks=below_bid(sim))
        assert resp.status == 200
        assert resp.headers["X-MBX-ORDER-COUNT-1D"] == "1"
        assert resp.headers["X-MBX-ORDER-COUNT-10S"] == "1"
        assert int(resp.headers["X-MBX-USED-WEIGHT-1M"]) >= 1


async def test_refused_order_answers_retry_after_until_the_window_ends(
    sim: SimulatorHandle,
) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            assert (await rest_order(session, sim, "r", price_ticks=below_bid(sim))).status == 200
        resp = await rest_order(session, sim, "r", price_ticks=below_bid(sim))
        body = orjson.loads(await resp.read())
    assert resp.status == 429
    assert body == {
        "code": -1015,
        "msg": "Too many new orders; current limit is 3 orders per 1 DAY.",
    }
    seconds_to_midnight = 86_400 - (now_ms() // 1000) % 86_400
    assert abs(int(resp.headers["Retry-After"]) - seconds_to_midnight) <= 2


async def test_a_cancel_is_not_an_order(sim: SimulatorHandle) -> None:
    key = "c"
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            resp = await rest_order(session, sim, key, price_ticks=below_bid(sim))
            order_id = orjson.loads(await resp.read())["orderId"]
            query = f"symbol=BTCUSDT&orderId={order_id}&timestamp={now_ms()}"
            url = f"{sim.endpoint(SPOT).rest}/api/v3/order?{query}&signature={sign(key, query)}"
            async with session.delete(url, headers={"X-MBX-APIKEY": key}) as cancel:
                assert cancel.status == 200
                assert "X-MBX-ORDER-COUNT-1D" not in cancel.headers
        refused = await rest_order(session, sim, key, price_ticks=below_bid(sim))
    assert refused.status == 429  # three orders, whatever their cancels


async def test_a_filled_order_is_given_back_to_the_unfilled_order_count(
    sim: SimulatorHandle,
) -> None:
    engine = sim.venues[SPOT].symbols["BTCUSDT"].engine
    ask = engine.best_ask()
    assert ask is not None
    async with aiohttp.ClientSession() as session:
        resp = await rest_order(session, sim, "f", price_ticks=ask[0])  # crosses: fills at once
        assert resp.status == 200
        placed = await rest_order(session, sim, "f", price_ticks=below_bid(sim))
    assert placed.headers["X-MBX-ORDER-COUNT-1D"] == "1"


async def test_ws_api_order_answer_carries_order_and_weight_counts(sim: SimulatorHandle) -> None:
    key = "w"
    params = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.00100",
        "price": px(below_bid(sim)),
        "apiKey": key,
        "timestamp": now_ms(),
    }
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
    params["signature"] = sign(key, payload)
    url = sim.endpoint(SPOT).ws + "/ws-api/v3"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str(
            orjson.dumps({"id": 1, "method": "order.place", "params": params}).decode()
        )
        answer = orjson.loads((await ws.receive()).data)
    counts = {
        (r["rateLimitType"], r["interval"], r["intervalNum"]): (r["count"], r["limit"])
        for r in answer["rateLimits"]
    }
    assert counts[("ORDERS", "SECOND", 10)] == (1, 1_000)
    assert counts[("ORDERS", "DAY", 1)] == (1, 3)
    assert counts[("REQUEST_WEIGHT", "MINUTE", 1)][1] == 6_000


async def test_exchange_info_publishes_the_limits_the_venue_enforces(sim: SimulatorHandle) -> None:
    url = sim.endpoint(SPOT).rest + "/api/v3/exchangeInfo"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        info = await resp.json()
    assert info["rateLimits"] == [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 1000},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 3},
    ]


# -- request weight and bans ----------------------------------------------------------------------


async def test_weight_past_the_limit_answers_1003_and_ignoring_it_ends_in_a_418_ban() -> None:
    handle = await simulator(spot_request_weight_per_minute=30)
    try:
        url = handle.endpoint(SPOT).rest + "/api/v3/exchangeInfo"  # weight 20
        statuses = []
        async with aiohttp.ClientSession() as session:
            for _ in range(8):
                async with session.get(url) as resp:
                    statuses.append(resp.status)
                    body = await resp.json()
                    if resp.status == 429:
                        assert body["code"] == -1003
                        assert int(resp.headers["Retry-After"]) >= 1
        # 20 weight fits, 40 does not; five ignored 429s ban the IP.
        assert statuses[:2] == [200, 429]
        assert statuses[-1] == 418
        assert body["code"] == -1003
        assert "banned until" in body["msg"]
    finally:
        await handle.stop()


async def test_limits_turned_off_let_every_order_through() -> None:
    handle = await simulator(enabled=False)
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(120):
                resp = await rest_order(session, handle, "off", price_ticks=below_bid(handle))
                assert resp.status == 200
                assert "X-MBX-USED-WEIGHT-1M" not in resp.headers
    finally:
        await handle.stop()


# -- the venue's clock ------------------------------------------------------------------------


async def test_a_venue_clock_ahead_refuses_host_timestamps_and_order_entry_keeps_up() -> None:
    handle = await simulator(server_time_offset_ms=7_000)
    try:
        rest = handle.endpoint(SPOT).rest
        async with aiohttp.ClientSession() as session:
            async with session.get(rest + "/api/v3/time") as resp:
                assert abs((await resp.json())["serverTime"] - now_ms(7_000)) < 1_000
            query = f"timestamp={now_ms()}&recvWindow=5000"  # the host's clock: 7 s late
            url = f"{rest}/api/v3/account?{query}&signature={sign('t', query)}"
            async with session.get(url, headers={"X-MBX-APIKEY": "t"}) as resp:
                assert (await resp.json())["code"] == -1021
        inst = build_instrument(
            SPOT,
            {
                "symbol": "BTC/USDT",
                "id": "BTCUSDT",
                "spot": True,
                "base": "BTC",
                "quote": "USDT",
                "precision": {"price": 0.01, "amount": 0.00001},
            },
        )
        execution = BinanceWsApiExecution(
            WsApiEndpoints(handle.endpoint(SPOT).ws + "/ws-api/v3"),
            SecretStr("t"),
            SecretStr("t"),
            venue=SPOT,
            usdm=False,
            instruments=(inst,),
        )
        events = ExecutionRecorder()
        try:
            await execution.connect()
            assert abs(execution.offset_ns - 7_000_000_000) < 500_000_000
            execution._sink = events  # the answers, without running the reconnect loop
            request = OrderRequest(SPOT, "BTC/USDT", "clk-1", Side.BUY, below_bid(handle), 100)
            await execution.place(request)
            await eventually(lambda: events.items, what="the order's answer")
            # The answer and the user-data report both say it rests.
            assert {(u.client_order_id, u.status) for u in events.items} == {
                ("clk-1", OrderStatus.OPEN)
            }
        finally:
            await execution.close()
    finally:
        await handle.stop()


# -- symbol filters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "quantity", "side", "message"),
    [
        ("1000000.01", "0.00100", "BUY", "Filter failure: PRICE_FILTER"),
        ("50000.00", "9000.00001", "BUY", "Filter failure: LOT_SIZE"),
        ("50000.00", "0.00001", "BUY", "Filter failure: NOTIONAL"),
        ("50000.00", "200.00000", "BUY", "Filter failure: NOTIONAL"),  # 10M USDT: over the max
        ("400000.00", "0.00100", "BUY", "Filter failure: PERCENT_PRICE_BY_SIDE"),
        ("10000.00", "0.00100", "SELL", "Filter failure: PERCENT_PRICE_BY_SIDE"),
    ],
)
async def test_spot_order_breaking_a_filter_gets_1013_with_its_name(
    sim: SimulatorHandle, price: str, quantity: str, side: str, message: str
) -> None:
    key = "filters"
    query = (
        f"symbol=BTCUSDT&side={side}&type=LIMIT&timeInForce=GTC&quantity={quantity}"
        f"&price={price}&timestamp={now_ms()}"
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            sim.endpoint(SPOT).rest + "/api/v3/order",
            data=query + "&signature=" + sign(key, query),
            headers={"X-MBX-APIKEY": key, "Content-Type": FORM},
        ) as resp,
    ):
        body = await resp.json()
    assert (resp.status, body) == (400, {"code": -1013, "msg": message})


async def test_spot_order_past_max_num_orders_gets_2010() -> None:
    handle = await simulator(spot_orders_per_10_seconds=1_000)
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                resp = await rest_order(session, handle, "many", price_ticks=below_bid(handle))
                assert resp.status == 200
            resp = await rest_order(session, handle, "many", price_ticks=below_bid(handle))
            body = orjson.loads(await resp.read())
        assert body == {"code": -2010, "msg": "Filter failure: MAX_NUM_ORDERS"}
    finally:
        await handle.stop()


@pytest.mark.parametrize(
    ("price", "quantity", "side", "code"),
    [
        ("4529764.1", "0.010", "BUY", -4002),  # above maxPrice
        ("60000.0", "1000.001", "BUY", -4005),  # above maxQty
        ("60000.0", "0.001", "BUY", -4164),  # 60 USDT: below the 100 USDT minimum
        ("70000.0", "0.010", "BUY", -4016),  # more than 5 % above the mark price
        ("50000.0", "0.010", "SELL", -4024),  # more than 5 % below it
    ],
)
async def test_usdm_order_breaking_a_filter_gets_binance_usdm_code(
    sim: SimulatorHandle, price: str, quantity: str, side: str, code: int
) -> None:
    key = "usdm-filters"
    query = (
        f"symbol=BTCUSDT&side={side}&type=LIMIT&timeInForce=GTC&quantity={quantity}"
        f"&price={price}&timestamp={now_ms()}"
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            sim.endpoint(PERP).rest + "/fapi/v1/order",
            data=query + "&signature=" + sign(key, query),
            headers={"X-MBX-APIKEY": key, "Content-Type": FORM},
        ) as resp,
    ):
        body = await resp.json()
    assert resp.status == 400
    assert body["code"] == code
