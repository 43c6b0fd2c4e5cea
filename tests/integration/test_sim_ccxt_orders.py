"""Order entry through unmodified ccxt.pro against the simulator: REST and WS-API, fills, fees,
balances, positions, user-data streams, and Binance's errors.

The synthetic market is frozen (speed 0) after seeding its books, so every fill here comes from
the test's own orders against known levels.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any

import aiohttp
import ccxt.pro as ccxtpro
import orjson
import pytest

from tests.support import eventually


def sign(secret: str, payload: str) -> str:
    """Binance's HMAC-SHA256 signature, computed here independently of the simulator."""
    return hmac.digest(secret.encode(), payload.encode(), "sha256").hex()


SPOT = "sim-spot"
PERP = "sim-perp"
SPOT_SYMBOL = "BTC/USDT"
PERP_SYMBOL = "BTC/USDT:USDT"
SPOT_TAKER = 4 / 10_000
PERP_TAKER = 2 / 10_000


@pytest.fixture
def market_speed() -> float:
    return 0.0


async def _until_subscribed(sim: Any, venue: str, count: int = 1, deadline_s: float = 10.0) -> None:
    """Wait until the venue has `count` user-data subscribers (a watch_* call's subscription
    has reached the simulator), checking the condition on every loop turn up to a deadline."""
    await eventually(
        lambda: len(sim.venues[venue].user_streams) >= count,
        timeout_s=deadline_s,
        what="the user-data subscription reaching the simulator",
    )


def _touch(sim: Any, venue: str) -> tuple[tuple[int, int], tuple[int, int], Any]:
    sym = sim.venues[venue].symbols["BTCUSDT"]
    bid = sym.engine.best_bid()
    ask = sym.engine.best_ask()
    assert bid is not None
    assert ask is not None
    return bid, ask, sym.instrument


async def test_spot_limit_order_is_created_fetched_listed_and_cancelled_over_rest(
    make_exchange: Any, sim: Any, admin: Any
) -> None:
    exchange = make_exchange(SPOT)
    await exchange.load_markets()
    bid, _, inst = _touch(sim, SPOT)
    price = inst.ticks_to_price(bid[0] - 100)
    order = await exchange.create_order(SPOT_SYMBOL, "limit", "buy", 0.01, price)
    assert order["status"] == "open"
    fetched = await exchange.fetch_order(order["id"], SPOT_SYMBOL)
    assert fetched["price"] == price
    assert fetched["amount"] == 0.01
    assert fetched["remaining"] == 0.01
    listed = await exchange.fetch_open_orders(SPOT_SYMBOL)
    assert [o["id"] for o in listed] == [order["id"]]
    state = await admin.state(SPOT)
    assert [o["orderId"] for o in state["open_orders"]["integration-test-key"]] == [
        int(order["id"])
    ]
    cancelled = await exchange.cancel_order(order["id"], SPOT_SYMBOL)
    assert cancelled["status"] == "canceled"
    assert await exchange.fetch_open_orders(SPOT_SYMBOL) == []


async def test_spot_post_only_order_that_would_cross_is_refused_as_immediately_fillable(
    make_exchange: Any, sim: Any
) -> None:
    exchange = make_exchange(SPOT)
    await exchange.load_markets()
    _, ask, inst = _touch(sim, SPOT)
    with pytest.raises(ccxtpro.OrderImmediatelyFillable):
        await exchange.create_order(
            SPOT_SYMBOL, "limit", "buy", 0.01, inst.ticks_to_price(ask[0]), {"postOnly": True}
        )


async def test_perp_post_only_order_that_would_cross_is_refused_with_binance_5022(
    make_exchange: Any, sim: Any
) -> None:
    exchange = make_exchange(PERP)
    await exchange.load_markets()
    _, ask, inst = _touch(sim, PERP)
    with pytest.raises(ccxtpro.InvalidOrder, match="-5022"):
        await exchange.create_order(
            PERP_SYMBOL, "limit", "buy", 0.01, inst.ticks_to_price(ask[0]), {"postOnly": True}
        )


async def test_spot_ioc_fills_at_the_touch_at_taker_fee_and_moves_balances_by_exactly_that(
    make_exchange: Any, sim: Any
) -> None:
    exchange = make_exchange(SPOT)
    await exchange.load_markets()
    before = await exchange.fetch_balance()
    _, ask, inst = _touch(sim, SPOT)
    ask_size = inst.lots_to_size(ask[1])
    amount = inst.lots_to_size(ask[1] + 1000)  # more than the best level holds
    price = inst.ticks_to_price(ask[0])
    order = await exchange.create_order(
        SPOT_SYMBOL, "limit", "buy", amount, price, {"timeInForce": "IOC"}
    )
    assert order["status"] == "expired"  # partially filled, the rest expired
    assert order["filled"] == pytest.approx(ask_size)
    notional = price * ask_size
    assert order["cost"] == pytest.approx(notional)
    assert order["fee"]["cost"] == pytest.approx(notional * SPOT_TAKER)
    after = await exchange.fetch_balance()
    assert after["BTC"]["total"] - before["BTC"]["total"] == pytest.approx(ask_size, abs=1e-9)
    spent = before["USDT"]["total"] - after["USDT"]["total"]
    assert spent == pytest.approx(notional * (1 + SPOT_TAKER), abs=1e-6)
    trades = await exchange.fetch_my_trades(SPOT_SYMBOL)
    assert {t["order"] for t in trades} == {order["id"]}
    assert {t["takerOrMaker"] for t in trades} == {"taker"}
    assert sum(t["amount"] for t in trades) == pytest.approx(ask_size)
    assert sum(t["fee"]["cost"] for t in trades) == pytest.approx(notional * SPOT_TAKER)


async def test_spot_resting_order_is_partially_filled_in_queue_and_streams_the_fill(
    make_exchange: Any, sim: Any
) -> None:
    maker = make_exchange(SPOT, api_key="maker-key")
    taker = make_exchange(SPOT, api_key="taker-key")
    await maker.load_markets()
    await taker.load_markets()
    bid, ask, inst = _touch(sim, SPOT)
    assert ask[0] > bid[0]  # a book the simulator publishes is never crossed
    # A new best ask one tick inside the spread (or at the ask when the spread is one tick).
    price_ticks = ask[0] - 1 if ask[0] - bid[0] > 1 else ask[0]
    price = inst.ticks_to_price(price_ticks)
    watch = asyncio.ensure_future(maker.watch_orders(SPOT_SYMBOL))
    trades_watch = asyncio.ensure_future(maker.watch_my_trades(SPOT_SYMBOL))
    await _until_subscribed(sim, SPOT)
    resting = await maker.create_order(SPOT_SYMBOL, "limit", "sell", 0.02, price)
    first = await asyncio.wait_for(watch, 10)
    assert first[-1]["id"] == resting["id"]
    watch = asyncio.ensure_future(maker.watch_orders(SPOT_SYMBOL))
    ahead = 0 if price_ticks < ask[0] else ask[1]
    fill_lots = ahead + inst.size_to_lots(0.005)
    await taker.create_order(
        SPOT_SYMBOL, "limit", "buy", inst.lots_to_size(fill_lots), price, {"timeInForce": "IOC"}
    )
    update = (await asyncio.wait_for(watch, 10))[-1]
    assert update["id"] == resting["id"]
    assert update["status"] == "open"
    assert update["filled"] == pytest.approx(0.005)
    assert update["remaining"] == pytest.approx(0.015)
    my_trades = await asyncio.wait_for(trades_watch, 10)
    assert my_trades[-1]["order"] == resting["id"]
    assert my_trades[-1]["amount"] == pytest.approx(0.005)
    assert my_trades[-1]["takerOrMaker"] == "maker"


async def test_spot_orders_over_the_ws_api_create_replace_and_cancel(
    make_exchange: Any, sim: Any
) -> None:
    exchange = make_exchange(SPOT)
    await exchange.load_markets()
    bid, _, inst = _touch(sim, SPOT)
    price = inst.ticks_to_price(bid[0] - 200)
    order = await exchange.create_order_ws(SPOT_SYMBOL, "limit", "buy", 0.01, price)
    assert order["status"] == "open"
    new_price = inst.ticks_to_price(bid[0] - 150)
    edited = await exchange.edit_order_ws(order["id"], SPOT_SYMBOL, "limit", "buy", 0.02, new_price)
    assert edited["id"] != order["id"]
    assert edited["price"] == new_price
    open_now = await exchange.fetch_open_orders(SPOT_SYMBOL)
    assert [o["id"] for o in open_now] == [edited["id"]]
    cancelled = await exchange.cancel_order_ws(edited["id"], SPOT_SYMBOL)
    assert cancelled["status"] == "canceled"
    second = await exchange.create_order_ws(SPOT_SYMBOL, "limit", "buy", 0.01, price)
    assert second["status"] == "open"
    await exchange.cancel_all_orders_ws(SPOT_SYMBOL)
    assert await exchange.fetch_open_orders(SPOT_SYMBOL) == []


async def test_perp_orders_over_rest_and_ws_api_create_modify_and_cancel(
    make_exchange: Any, sim: Any
) -> None:
    exchange = make_exchange(PERP)
    await exchange.load_markets()
    bid, _, inst = _touch(sim, PERP)
    price = inst.ticks_to_price(bid[0] - 50)
    order = await exchange.create_order(PERP_SYMBOL, "limit", "buy", 0.01, price)
    assert order["status"] == "open"
    fetched = await exchange.fetch_order(order["id"], PERP_SYMBOL)
    assert fetched["price"] == price
    ws_order = await exchange.create_order_ws(PERP_SYMBOL, "limit", "buy", 0.02, price)
    new_price = inst.ticks_to_price(bid[0] - 40)
    modified = await exchange.edit_order_ws(
        ws_order["id"], PERP_SYMBOL, "limit", "buy", 0.03, new_price
    )
    assert modified["id"] == ws_order["id"]
    assert modified["price"] == new_price
    assert modified["amount"] == 0.03
    cancelled = await exchange.cancel_order_ws(ws_order["id"], PERP_SYMBOL)
    assert cancelled["status"] == "canceled"
    await exchange.cancel_order(order["id"], PERP_SYMBOL)
    assert await exchange.fetch_open_orders(PERP_SYMBOL) == []


async def test_perp_ioc_fill_opens_a_position_and_charges_exactly_the_taker_fee(
    make_exchange: Any, sim: Any
) -> None:
    exchange = make_exchange(PERP)
    await exchange.load_markets()
    before = await exchange.fetch_balance()
    _, ask, inst = _touch(sim, PERP)
    size = inst.lots_to_size(min(ask[1], 10))
    price = inst.ticks_to_price(ask[0])
    watch = asyncio.ensure_future(exchange.watch_orders(PERP_SYMBOL))
    await _until_subscribed(sim, PERP)
    order = await exchange.create_order(
        PERP_SYMBOL, "limit", "buy", size, price, {"timeInForce": "IOC"}
    )
    streamed = await asyncio.wait_for(watch, 10)
    assert streamed[-1]["id"] == order["id"]
    positions = await exchange.fetch_positions([PERP_SYMBOL])
    assert positions[0]["contracts"] == pytest.approx(size)
    assert positions[0]["side"] == "long"
    assert positions[0]["entryPrice"] == pytest.approx(price)
    after = await exchange.fetch_balance()
    wallet_paid = float(before["info"]["totalWalletBalance"]) - float(
        after["info"]["totalWalletBalance"]
    )
    assert wallet_paid == pytest.approx(price * size * PERP_TAKER, abs=1e-6)
    # ccxt's total is the margin balance: the wallet plus the position's unrealized P&L
    upnl = positions[0]["unrealizedPnl"]
    paid = before["USDT"]["total"] - after["USDT"]["total"]
    assert paid == pytest.approx(price * size * PERP_TAKER - upnl, abs=1e-6)


async def test_a_wrong_signature_is_an_authentication_error(make_exchange: Any) -> None:
    exchange = make_exchange(SPOT, api_key="some-key", secret="not-its-secret")
    await exchange.load_markets()
    with pytest.raises(ccxtpro.AuthenticationError):
        await exchange.fetch_balance()


async def test_a_wrong_signature_on_the_ws_api_is_an_authentication_error(
    make_exchange: Any, sim: Any
) -> None:
    exchange = make_exchange(SPOT, api_key="some-key", secret="not-its-secret")
    await exchange.load_markets()
    bid, _, inst = _touch(sim, SPOT)
    with pytest.raises(ccxtpro.AuthenticationError):
        await exchange.create_order_ws(
            SPOT_SYMBOL, "limit", "buy", 0.01, inst.ticks_to_price(bid[0] - 100)
        )


async def test_a_malformed_order_gets_binance_error_json_and_the_venue_keeps_serving(
    spot_endpoint: Any,
) -> None:
    key = "raw-client"
    query = f"symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&price=abc&timestamp={_now_ms()}"
    body = query + "&signature=" + sign(key, query)
    async with aiohttp.ClientSession() as session:
        async with session.post(
            spot_endpoint.rest + "/api/v3/order",
            data=body,
            headers={"X-MBX-APIKEY": key, "Content-Type": "application/x-www-form-urlencoded"},
        ) as resp:
            assert resp.status == 400
            error = await resp.json()
        assert error["code"] == -1102
        assert "quantity" in error["msg"]
        async with session.get(spot_endpoint.rest + "/api/v3/depth?symbol=BTCUSDT&limit=5") as r:
            assert r.status == 200
        async with session.get(spot_endpoint.rest + "/api/v3/depth?symbol=NOPE") as r:
            assert r.status == 400
            assert (await r.json())["code"] == -1121


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def test_a_request_outside_the_recv_window_gets_binance_1021(spot_endpoint: Any) -> None:
    key = "raw-client"
    query = f"timestamp={_now_ms() - 10_000}&recvWindow=5000"
    url = f"{spot_endpoint.rest}/api/v3/account?{query}&signature={sign(key, query)}"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"X-MBX-APIKEY": key}) as resp:
            assert resp.status == 400
            assert (await resp.json())["code"] == -1021
        fresh = f"timestamp={_now_ms()}&recvWindow=5000"
        url = f"{spot_endpoint.rest}/api/v3/account?{fresh}&signature={sign(key, fresh)}"
        async with session.get(url, headers={"X-MBX-APIKEY": key}) as resp:
            assert resp.status == 200
            assert (await resp.json())["accountType"] == "SPOT"


async def test_a_malformed_ws_api_request_gets_an_error_reply_and_the_session_goes_on(
    spot_endpoint: Any,
) -> None:
    url = spot_endpoint.ws + "/ws-api/v3"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str("{not json")
        error = orjson.loads((await ws.receive()).data)
        assert error["status"] == 400
        assert error["error"]["code"] == -1102
        await ws.send_str('{"id": "7", "method": "order.place", "params": {"symbol": "BTCUSDT"}}')
        refused = orjson.loads((await ws.receive()).data)
        assert refused["id"] == "7"
        assert refused["error"]["code"] == -2014
        await ws.send_str('{"id": "8", "method": "ping"}')
        assert orjson.loads((await ws.receive()).data)["status"] == 200
