"""ccxt.pro binance / binanceusdm against the simulator: markets and public data."""

from __future__ import annotations

from typing import Any

import ccxt.pro as ccxtpro
import pytest

from mm_daemon.binance.markets import ccxt_test_urls

SPOT = "sim-spot"
PERP = "sim-perp"


async def test_spot_load_markets_finds_btc_usdt_with_the_simulator_filters(
    make_exchange: Any,
) -> None:
    exchange = make_exchange(SPOT)
    markets = await exchange.load_markets()
    market = markets["BTC/USDT"]
    assert market["spot"] is True
    assert market["precision"]["price"] == 0.01
    assert market["precision"]["amount"] == 0.00001
    assert market["limits"]["cost"]["min"] == 5.0


async def test_usdm_load_markets_finds_the_btc_perpetual(make_exchange: Any) -> None:
    exchange = make_exchange(PERP)
    markets = await exchange.load_markets()
    market = markets["BTC/USDT:USDT"]
    assert market["swap"] is True
    assert market["linear"] is True
    assert market["precision"]["price"] == 0.1
    assert market["precision"]["amount"] == 0.001


async def test_an_api_the_endpoint_map_leaves_out_raises_instead_of_reaching_mainnet(
    make_exchange: Any,
) -> None:
    exchange = make_exchange(SPOT)
    await exchange.load_markets()
    with pytest.raises(ccxtpro.NotSupported, match="sandbox URL for sapi"):
        await exchange.sapi_get_capital_config_getall()


def test_the_endpoint_map_points_every_rest_and_websocket_key_at_the_given_bases() -> None:
    spot = ccxt_test_urls("spot", "http://127.0.0.1:1", "ws://127.0.0.1:1")
    usdm = ccxt_test_urls("usdm", "http://127.0.0.1:2", "ws://127.0.0.1:2")
    assert spot["public"] == spot["private"] == "http://127.0.0.1:1/api/v3"
    assert spot["ws"]["spot"] == "ws://127.0.0.1:1/ws"
    assert spot["ws"]["ws-api"]["spot"] == "ws://127.0.0.1:1/ws-api/v3"
    for key in ("fapiPublic", "fapiPrivate"):
        assert usdm[key] == "http://127.0.0.1:2/fapi/v1"
    for key in ("fapiPublicV2", "fapiPrivateV2"):
        assert usdm[key] == "http://127.0.0.1:2/fapi/v2"
    for key in ("fapiPublicV3", "fapiPrivateV3"):
        assert usdm[key] == "http://127.0.0.1:2/fapi/v3"
    assert usdm["ws"]["linear"] == "ws://127.0.0.1:2/ws"
    assert usdm["ws"]["ws-api"]["linear"] == "ws://127.0.0.1:2/ws-fapi/v1"
