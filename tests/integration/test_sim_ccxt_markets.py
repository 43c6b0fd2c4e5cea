"""ccxt.pro binance / binanceusdm against the simulator: markets and public data."""

from __future__ import annotations

from typing import Any

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
