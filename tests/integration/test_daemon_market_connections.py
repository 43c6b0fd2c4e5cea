"""Two markets on one venue share its connections, counted at the simulator.

The markets of config/default.yaml (BTC/USDT and ETH/USDT quoted on the spot venue, each hedged
on the perpetual) traded live by one daemon against a simulator started here (URL endpoints,
real ccxt and the daemon's native Binance clients over loopback). Once both markets have orders
resting in the simulator's books, the simulator's own count of websockets per venue
(`GET /admin/connections`) is read, then the daemon is stopped.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml

from mm_daemon.config import Config, SimConfig, parse_config
from mm_daemon.engine.daemon import Daemon
from mm_daemon.sim.runner import SimulatorHandle, start_simulator
from tests.support import eventually

DEFAULT = Path(__file__).resolve().parents[2] / "config" / "default.yaml"
MAKER_KEY = "two-markets-maker"
HEDGE_KEY = "two-markets-hedge"
RUN_DEADLINE_SECONDS = 40.0
STREAMS = ["btcusdt@depth@100ms", "btcusdt@trade", "ethusdt@depth@100ms", "ethusdt@trade"]


def _live_config(sim: SimulatorHandle) -> Config:
    data: dict[str, Any] = yaml.safe_load(DEFAULT.read_text())
    data["mode"] = "live"
    data.pop("sim", None)
    sim_config = SimConfig()
    for name, venue in data["venues"].items():
        maker_bps, taker_bps = sim_config.fees_bps(venue["exchange"])
        venue.update(
            endpoint=sim.endpoint(name).rest, maker_fee_bps=maker_bps, taker_fee_bps=taker_bps
        )
    data["metrics"] = {"host": "127.0.0.1", "port": 0}
    data["logging"] = {"level": "warning", "format": "json"}
    environ = {
        "MMD_VENUES__SIM_SPOT__API_KEY": MAKER_KEY,
        "MMD_VENUES__SIM_SPOT__API_SECRET": MAKER_KEY,  # the simulator's secret is the key
        "MMD_VENUES__SIM_PERP__API_KEY": HEDGE_KEY,
        "MMD_VENUES__SIM_PERP__API_SECRET": HEDGE_KEY,
    }
    return parse_config(data, environ=environ)


async def _get(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url) as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


@dataclass(frozen=True, slots=True)
class TwoMarketRun:
    markets: list[str]
    resting_symbols: set[str]
    connections: dict[str, dict[str, Any]]  # by venue, while both markets quoted
    exit_code: int


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def two_market_run() -> AsyncIterator[TwoMarketRun]:
    sim = await start_simulator(SimConfig(seed=11, regime="calm"))
    try:
        daemon = Daemon(_live_config(sim))
        spot = sim.endpoint("sim-spot").admin

        async def both_markets_resting(session: aiohttp.ClientSession) -> set[str] | None:
            if running.done():
                return {"daemon stopped"}
            state = await _get(session, f"{spot}/state?depth=1")
            symbols = {order["symbol"] for order in state["open_orders"].get(MAKER_KEY, [])}
            return symbols if symbols >= {"BTCUSDT", "ETHUSDT"} else None

        with redirect_stdout(io.StringIO()):
            running = asyncio.get_running_loop().create_task(daemon.run(RUN_DEADLINE_SECONDS))
            async with aiohttp.ClientSession() as session:
                resting = await eventually(
                    lambda: both_markets_resting(session),
                    timeout_s=RUN_DEADLINE_SECONDS - 10.0,
                    interval_s=0.1,
                    what="orders of both markets resting in the simulator's spot books",
                )
                connections = {
                    name: await _get(session, endpoint.admin + "/connections")
                    for name, endpoint in sim.endpoints.items()
                }
            assert daemon.portfolio is not None
            markets = [m.name for m in daemon.portfolio.markets]
            daemon.request_stop("SIGTERM")
            exit_code = await asyncio.wait_for(running, 15.0)
        yield TwoMarketRun(markets, resting, connections, exit_code)
    finally:
        await sim.stop()


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
class TestTwoMarketsOnOneVenue:
    async def test_both_markets_quote_at_the_simulator(self, two_market_run: TwoMarketRun) -> None:
        assert two_market_run.markets == ["BTC/USDT@sim-spot", "ETH/USDT@sim-spot"]
        assert two_market_run.resting_symbols == {"BTCUSDT", "ETHUSDT"}
        assert two_market_run.exit_code == 0

    async def test_they_share_one_market_data_connection_carrying_both_symbols(
        self, two_market_run: TwoMarketRun
    ) -> None:
        market_data = two_market_run.connections["sim-spot"]["market_data"]
        assert (market_data["open"], market_data["opened"]) == (1, 1)
        assert market_data["streams"] == [STREAMS]

    async def test_they_share_one_order_entry_connection_and_one_user_data_stream(
        self, two_market_run: TwoMarketRun
    ) -> None:
        spot = two_market_run.connections["sim-spot"]
        assert (spot["ws_api"]["open"], spot["ws_api"]["opened"]) == (1, 1)
        assert spot["user_data_streams"]["open"] == 1

    async def test_their_hedges_share_the_perpetual_venues_connections(
        self, two_market_run: TwoMarketRun
    ) -> None:
        perp = two_market_run.connections["sim-perp"]
        opened = {kind: perp[kind]["opened"] for kind in ("market_data", "ws_api", "user_data")}
        assert opened == {"market_data": 1, "ws_api": 1, "user_data": 1}
        assert perp["market_data"]["streams"] == [STREAMS]
