"""Venue factory: every shipped config validates; endpoints map to the right URLs (no network);
instruments come from ccxt's market data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mm_daemon.config import MarketDataConfig, VenueConfig, load_config
from mm_daemon.core.types import InstrumentKind
from mm_daemon.sim.runner import SimulatorHandle
from mm_daemon.venues.ccxt_venue import BybitSequenceCheck, CcxtMarketData
from mm_daemon.venues.exchanges import VenueError, build_instrument, create_exchange, http_to_ws

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))


@pytest.fixture
async def exchanges() -> AsyncIterator[list[Any]]:
    made: list[Any] = []
    yield made
    for exchange in made:
        await exchange.close()


def venue(exchange: str, symbol: str, endpoint: str) -> VenueConfig:
    del symbol  # a venue is an account at an endpoint; the symbol is the market's
    return VenueConfig(name=f"{exchange}-{endpoint}", exchange=exchange, endpoint=endpoint)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_validates(path: Path) -> None:
    load_config(path, environ={})


def test_the_user_facing_configs_exist() -> None:
    names = {p.name for p in CONFIGS}
    assert {"testnet.yaml", "external-sim.yaml", "paper-binance.yaml"} <= names


def test_testnet_config_takes_keys_from_the_environment() -> None:
    env = {
        "MMD_VENUES__BINANCE_SPOT_TESTNET__API_KEY": "k1",
        "MMD_VENUES__BINANCE_SPOT_TESTNET__API_SECRET": "s1",
        "MMD_VENUES__BINANCE_USDM_DEMO__API_KEY": "k2",
        "MMD_VENUES__BINANCE_USDM_DEMO__API_SECRET": "s2",
    }
    config = load_config(CONFIG_DIR / "testnet.yaml", environ=env)
    spot = config.venues["binance-spot-testnet"]
    assert spot.api_key is not None
    assert spot.api_key.get_secret_value() == "k1"
    assert spot.endpoint == "testnet"
    perp = config.venues["binance-usdm-demo"]
    assert perp.api_secret is not None
    assert perp.api_secret.get_secret_value() == "s2"


async def test_binance_spot_testnet_maps_to_binance_vision(exchanges: list[Any]) -> None:
    ex = create_exchange(venue("binance", "BTC/USDT", "testnet"))
    exchanges.append(ex)
    assert ex.urls["api"]["public"].startswith("https://testnet.binance.vision/")
    assert ex.urls["api"]["ws"]["spot"].startswith("wss://stream.testnet.binance.vision/")


async def test_binance_usdm_testnet_maps_to_demo_trading(exchanges: list[Any]) -> None:
    ex = create_exchange(venue("binanceusdm", "BTC/USDT:USDT", "testnet"))
    exchanges.append(ex)
    assert ex.urls["api"]["fapiPublic"].startswith("https://demo-fapi.binance.com/")


async def test_bybit_testnet_maps_to_its_sandbox(exchanges: list[Any]) -> None:
    ex = create_exchange(venue("bybit", "BTC/USDT:USDT", "testnet"))
    exchanges.append(ex)
    assert "api-testnet." in ex.urls["api"]["public"]


async def test_mainnet_maps_to_binance_production(exchanges: list[Any]) -> None:
    spot = create_exchange(venue("binance", "BTC/USDT", "mainnet"))
    perp = create_exchange(venue("binanceusdm", "BTC/USDT:USDT", "mainnet"))
    exchanges.extend((spot, perp))
    assert spot.urls["api"]["public"].startswith("https://api.binance.com/")
    assert perp.urls["api"]["fapiPublic"].startswith("https://fapi.binance.com/")
    kind = "linear"
    assert perp.get_ws_url(kind, "public") == "wss://fstream.binance.com/public/ws"


async def test_url_endpoint_points_rest_and_websocket_at_that_server(
    exchanges: list[Any],
) -> None:
    ex = create_exchange(venue("binanceusdm", "BTC/USDT:USDT", "http://127.0.0.1:8101"))
    exchanges.append(ex)
    assert ex.urls["api"]["fapiPublic"] == "http://127.0.0.1:8101/fapi/v1"
    assert ex.get_ws_url("linear", "public") == "ws://127.0.0.1:8101/public/ws"


def test_http_urls_become_websocket_urls() -> None:
    assert http_to_ws("http://h:1") == "ws://h:1"
    assert http_to_ws("https://h") == "wss://h"


def test_simulator_endpoint_refuses_an_exchange_it_does_not_speak() -> None:
    with pytest.raises(VenueError, match="bybit"):
        create_exchange(venue("bybit", "BTC/USDT:USDT", "sim"), sim_base_url="http://127.0.0.1:1")


def test_instrument_from_a_ccxt_market() -> None:
    market = {
        "id": "BTCUSDT",
        "symbol": "BTC/USDT:USDT",
        "base": "BTC",
        "quote": "USDT",
        "spot": False,
        "contractSize": 1.0,
        "precision": {"price": 0.1, "amount": 0.001},
        "limits": {"amount": {"min": 0.002}, "cost": {"min": 100.0}},
        "maker": 0.0002,
        "taker": 0.0005,
    }
    inst = build_instrument("perp", market)
    assert inst.kind is InstrumentKind.PERPETUAL
    assert (inst.tick_size, inst.lot_size, inst.min_size_lots) == (0.1, 0.001, 2)
    assert inst.min_notional_quote == 100.0
    assert (inst.maker_fee_rate, inst.taker_fee_rate) == (0.0002, 0.0005)


def test_configured_fees_override_ccxt_market_fees() -> None:
    market = {
        "id": "BTCUSDT",
        "symbol": "BTC/USDT",
        "spot": True,
        "precision": {"price": 0.01, "amount": 1e-5},
        "limits": {},
        "maker": 0.001,
        "taker": 0.001,
    }
    inst = build_instrument("spot", market, fees_bps=(-1.0, 4.0))
    assert inst.maker_fee_rate == pytest.approx(-1e-4)
    assert inst.taker_fee_rate == pytest.approx(4e-4)


async def test_instruments_are_built_from_the_simulator_markets(sim: SimulatorHandle) -> None:
    md = CcxtMarketData(
        venue("binanceusdm", "BTC/USDT:USDT", "sim"),
        MarketDataConfig(),
        symbols=["BTC/USDT:USDT"],
        sim_base_url=sim.endpoint("sim-perp").rest,
        fees_bps=(0.0, 2.0),
    )
    try:
        await md.connect()
        inst = md.instruments["BTC/USDT:USDT"]
        assert inst.exchange_symbol == "BTCUSDT"
        assert inst.kind is InstrumentKind.PERPETUAL
        assert (inst.tick_size, inst.lot_size) == (0.1, 0.001)
        assert inst.taker_fee_rate == pytest.approx(2e-4)
    finally:
        await md.close()


def bybit_book(kind: str, u: int, symbol: str = "BTCUSDT") -> dict[str, Any]:
    return {"topic": f"orderbook.50.{symbol}", "type": kind, "data": {"s": symbol, "u": u}}


def test_bybit_consecutive_deltas_are_not_a_gap() -> None:
    check = BybitSequenceCheck("BTCUSDT")
    for message in (bybit_book("snapshot", 10), bybit_book("delta", 11), bybit_book("delta", 12)):
        assert check.on_message(message)
    assert not check.gap


def test_bybit_skipped_update_id_is_a_gap() -> None:
    check = BybitSequenceCheck("BTCUSDT")
    check.on_message(bybit_book("snapshot", 10))
    check.on_message(bybit_book("delta", 12))
    assert check.gap


def test_bybit_snapshot_or_restart_starts_a_new_run() -> None:
    check = BybitSequenceCheck("BTCUSDT")
    check.on_message(bybit_book("snapshot", 10))
    check.on_message(bybit_book("snapshot", 500))
    check.on_message(bybit_book("delta", 501))
    check.on_message(bybit_book("delta", 1))  # bybit's service restart: u starts over
    check.on_message(bybit_book("delta", 2))
    assert not check.gap


def test_bybit_other_symbols_are_ignored_and_malformed_reported() -> None:
    check = BybitSequenceCheck("BTCUSDT")
    check.on_message(bybit_book("snapshot", 10))
    assert check.on_message(bybit_book("delta", 99, symbol="ETHUSDT"))
    assert not check.on_message({"data": {"s": "BTCUSDT", "u": "x"}})
    assert not check.gap
