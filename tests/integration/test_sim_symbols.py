"""Several symbols per simulator venue: BTC/USDT and ETH/USDT on spot and as USD-M perpetuals,
listed, streamed, traded and faulted each on its own, read by unmodified ccxt.pro and plain
websockets over loopback."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import ccxt.pro as ccxtpro
import orjson
import pytest

from mm_daemon.sim.runner import SimulatorHandle
from tests.support import eventually

SPOT = "sim-spot"
PERP = "sim-perp"
DEPTH_PATHS = {SPOT: "/api/v3/depth", PERP: "/fapi/v1/depth"}
ETH_DEPTH = "ethusdt@depth@100ms"
BTC_DEPTH = "btcusdt@depth@100ms"


async def _get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.json()


async def _post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        return resp.status, await resp.json()


async def test_spot_load_markets_lists_btc_and_eth_with_binances_filters(
    make_exchange: Any,
) -> None:
    markets = await make_exchange(SPOT).load_markets()
    assert sorted(markets) == ["BTC/USDT", "ETH/USDT"]
    eth = markets["ETH/USDT"]
    assert (eth["id"], eth["base"], eth["quote"]) == ("ETHUSDT", "ETH", "USDT")
    assert eth["precision"]["price"] == 0.01
    assert eth["precision"]["amount"] == 0.0001
    assert eth["limits"]["cost"]["min"] == 5.0


async def test_usdm_load_markets_lists_both_perpetuals_with_binances_filters(
    make_exchange: Any,
) -> None:
    markets = await make_exchange(PERP).load_markets()
    assert sorted(markets) == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    eth = markets["ETH/USDT:USDT"]
    assert eth["swap"] is True
    assert eth["precision"]["price"] == 0.01
    assert eth["precision"]["amount"] == 0.001
    assert eth["limits"]["cost"]["min"] == 20.0


@pytest.mark.parametrize(("venue", "symbol"), [(SPOT, "ETH/USDT"), (PERP, "ETH/USDT:USDT")])
async def test_eths_depth_snapshot_is_its_own_book_near_a_twenty_third_of_btc(
    make_exchange: Any, venue: str, symbol: str
) -> None:
    exchange = make_exchange(venue)
    await exchange.load_markets()
    eth = await exchange.fetch_order_book(symbol, 100)
    btc = await exchange.fetch_order_book(symbol.replace("ETH", "BTC"), 100)
    eth_mid = (eth["bids"][0][0] + eth["asks"][0][0]) / 2
    btc_mid = (btc["bids"][0][0] + btc["asks"][0][0]) / 2
    assert eth["asks"][0][0] > eth["bids"][0][0]
    assert min(len(eth["bids"]), len(eth["asks"])) >= 20
    assert btc_mid / eth_mid == pytest.approx(23.0, rel=0.02)


@pytest.mark.parametrize("venue", [SPOT, PERP])
async def test_an_unlisted_symbol_is_answered_with_binances_invalid_symbol(
    sim: SimulatorHandle, venue: str
) -> None:
    status, body = await _get(sim.endpoint(venue).rest + DEPTH_PATHS[venue] + "?symbol=SOLUSDT")
    assert status == 400
    assert body == {"code": -1121, "msg": "Invalid symbol."}


async def test_an_order_for_an_unlisted_symbol_is_refused_with_invalid_symbol(
    make_exchange: Any,
) -> None:
    exchange = make_exchange(SPOT)
    await exchange.load_markets()
    with pytest.raises(ccxtpro.BadSymbol, match="-1121"):
        await exchange.private_post_order(
            {"symbol": "SOLUSDT", "side": "BUY", "type": "MARKET", "quantity": "1"}
        )


async def _stream_names(ws: aiohttp.ClientWebSocketResponse, wanted: set[str]) -> set[str]:
    """Read combined-stream frames until every stream in `wanted` has sent one."""
    seen: set[str] = set()
    while not wanted <= seen:
        frame = orjson.loads((await asyncio.wait_for(ws.receive(), 10)).data)
        if "stream" in frame:
            seen.add(frame["stream"])
    return seen


async def test_one_combined_stream_url_carries_both_symbols_depth_and_trades(
    sim: SimulatorHandle,
) -> None:
    streams = {BTC_DEPTH, ETH_DEPTH, "btcusdt@trade", "ethusdt@trade"}
    url = sim.endpoint(SPOT).ws + "/stream?streams=" + "/".join(sorted(streams))
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        assert await _stream_names(ws, streams) == streams


async def test_one_subscribe_with_a_list_carries_both_perpetuals_streams(
    sim: SimulatorHandle,
) -> None:
    streams = ["btcusdt@depth@0ms", "ethusdt@depth@0ms"]
    url = sim.endpoint(PERP).ws + "/public/stream"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str(
            orjson.dumps({"method": "SUBSCRIBE", "params": streams, "id": 7}).decode()
        )
        answer = orjson.loads((await asyncio.wait_for(ws.receive(), 10)).data)
        assert answer == {"result": None, "id": 7}
        assert await _stream_names(ws, set(streams)) == set(streams)


@pytest.mark.parametrize("market_speed", [0.0])  # a still market: no flow fills the order
async def test_an_eth_order_rests_in_the_eth_book_and_is_reported_as_ethusdt(
    make_exchange: Any, sim: SimulatorHandle
) -> None:
    exchange = make_exchange(SPOT)
    await exchange.load_markets()
    eth = sim.venues[SPOT].symbols["ETHUSDT"]
    bid = eth.engine.best_bid()
    assert bid is not None
    watch = asyncio.ensure_future(exchange.watch_orders("ETH/USDT"))
    await eventually(lambda: sim.venues[SPOT].user_streams, what="the user-data subscription")
    order = await exchange.create_order(
        "ETH/USDT", "limit", "buy", 0.05, eth.instrument.ticks_to_price(bid[0] - 20)
    )
    reported = (await asyncio.wait_for(watch, 10))[-1]
    assert (reported["id"], reported["symbol"]) == (order["id"], "ETH/USDT")
    assert [v.order_id for v in eth.engine.open_orders("integration-test-key")] == [
        int(order["id"])
    ]
    assert sim.venues[SPOT].symbols["BTCUSDT"].engine.open_orders("integration-test-key") == []


@pytest.mark.parametrize("market_speed", [0.0])  # a still market: no flow fills the order
async def test_a_spot_account_holds_every_asset_and_one_quote_balance_for_both_symbols(
    make_exchange: Any, sim: SimulatorHandle
) -> None:
    exchange = make_exchange(SPOT)
    await exchange.load_markets()
    before = await exchange.fetch_balance()
    assert before["free"]["BTC"] == 1.0
    assert before["free"]["ETH"] == pytest.approx(23.0)
    price = {}
    for name in ("BTCUSDT", "ETHUSDT"):
        sym = sim.venues[SPOT].symbols[name]
        bid = sym.engine.best_bid()
        assert bid is not None
        price[name] = sym.instrument.ticks_to_price(bid[0] - 50)
    await exchange.create_order("BTC/USDT", "limit", "buy", 0.01, price["BTCUSDT"])
    await exchange.create_order("ETH/USDT", "limit", "buy", 0.1, price["ETHUSDT"])
    after = await exchange.fetch_balance()
    locked = 0.01 * price["BTCUSDT"] * 1.0004 + 0.1 * price["ETHUSDT"] * 1.0004
    assert after["used"]["USDT"] == pytest.approx(locked, rel=1e-9)


async def _read_depth(
    ws: aiohttp.ClientWebSocketResponse, frames: dict[str, list[tuple[int, int]]]
) -> str:
    """Read one depth frame: record its (U, u) under its stream; returns the stream."""
    frame = orjson.loads((await asyncio.wait_for(ws.receive(), 10)).data)
    frames.setdefault(frame["stream"], []).append((frame["data"]["U"], frame["data"]["u"]))
    return str(frame["stream"])


def _gaps(ids: list[tuple[int, int]]) -> int:
    return sum(1 for (_, u), (first, _) in itertools.pairwise(ids) if first != u + 1)


async def test_a_gap_fault_naming_eth_skips_only_eths_depth_messages(
    sim: SimulatorHandle, admin: Any
) -> None:
    url = sim.endpoint(SPOT).ws + f"/stream?streams={BTC_DEPTH}/{ETH_DEPTH}"
    frames: dict[str, list[tuple[int, int]]] = {}
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        while len(frames) < 2:
            await _read_depth(ws, frames)
        await admin.fault(SPOT, "gap", count=1, symbol="ETHUSDT")
        eth_after_fault = 0
        while eth_after_fault < 10:
            eth_after_fault += await _read_depth(ws, frames) == ETH_DEPTH
    assert _gaps(frames[ETH_DEPTH]) == 1
    assert len(frames[BTC_DEPTH]) > 5
    assert _gaps(frames[BTC_DEPTH]) == 0


@pytest.mark.parametrize("market_speed", [0.0])  # a still market: no flow fills the order
async def test_a_halt_of_eth_closes_its_market_and_leaves_btc_trading(
    make_exchange: Any, sim: SimulatorHandle, admin: Any
) -> None:
    exchange = make_exchange(SPOT)
    await exchange.load_markets()
    await admin.fault(SPOT, "halt", symbol="ETHUSDT")
    status, info = await _get(sim.endpoint(SPOT).rest + "/api/v3/exchangeInfo")
    assert status == 200
    assert {s["symbol"]: s["status"] for s in info["symbols"]} == {
        "BTCUSDT": "TRADING",
        "ETHUSDT": "BREAK",
    }
    price = {}
    for name in ("BTCUSDT", "ETHUSDT"):
        sym = sim.venues[SPOT].symbols[name]
        bid = sym.engine.best_bid()
        assert bid is not None
        price[name] = sym.instrument.ticks_to_price(bid[0] - 50)
    with pytest.raises(ccxtpro.ExchangeError, match="Market is closed"):
        await exchange.create_order("ETH/USDT", "limit", "buy", 0.1, price["ETHUSDT"])
    order = await exchange.create_order("BTC/USDT", "limit", "buy", 0.01, price["BTCUSDT"])
    assert order["status"] == "open"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"kind": "gap", "symbol": "SOLUSDT"}, {"code": -1121, "msg": "Invalid symbol."}),
        (
            {"kind": "disconnect", "symbol": "ETHUSDT"},
            {"error": "disconnect acts on the whole venue: it takes no symbol"},
        ),
    ],
)
async def test_a_fault_naming_a_symbol_it_cannot_touch_is_refused(
    sim: SimulatorHandle, body: dict[str, Any], error: dict[str, Any]
) -> None:
    status, answer = await _post(sim.endpoint(SPOT).admin + "/faults", body)
    assert (status, answer) == (400, error)


async def test_admin_connections_counts_the_venues_websockets_by_kind(
    sim: SimulatorHandle,
) -> None:
    endpoint = sim.endpoint(PERP)
    async with aiohttp.ClientSession() as session:
        market = await session.ws_connect(endpoint.ws + f"/public/stream?streams={ETH_DEPTH}")
        ws_api = await session.ws_connect(endpoint.ws + "/ws-fapi/v1")
        status, during = await _get(endpoint.admin + "/connections")
        assert status == 200
        await market.close()
        await ws_api.close()
        after = await eventually(
            lambda: _closed(endpoint.admin + "/connections"), what="both websockets gone"
        )
    assert during["market_data"] == {"open": 1, "opened": 1, "streams": [[ETH_DEPTH]]}
    assert during["ws_api"] == {"open": 1, "opened": 1}
    assert during["user_data"] == {"open": 0, "opened": 0}
    assert after["market_data"] == {"open": 0, "opened": 1, "streams": []}
    assert after["ws_api"] == {"open": 0, "opened": 1}


async def _closed(url: str) -> dict[str, Any] | None:
    _, body = await _get(url)
    return body if body["market_data"]["open"] == body["ws_api"]["open"] == 0 else None
