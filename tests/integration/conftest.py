"""Simulator fixtures for integration tests: the simulator runs in-process on free loopback
ports, and ccxt.pro clients are pointed at it exactly as at a testnet.

- `sim`: a running simulator (both venues, synthetic market, default config).
- `spot_endpoint` / `perp_endpoint`: the venues' `VenueEndpoint` (rest, ws, admin URLs).
- `make_exchange(dialect_or_venue, api_key=..., secret=...)`: a ccxt.pro exchange on the sim,
  closed after the test. By the simulator's rule the secret of a key is the key itself.
- `admin`: helpers for `/admin/faults` and `/admin/state`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mm_daemon.config import SimConfig
from mm_daemon.sim.runner import SimulatorHandle, VenueEndpoint, start_simulator
from mm_daemon.venues.endpoints import make_ccxt_exchange

SPOT = "sim-spot"
PERP = "sim-perp"
TEST_KEY = "integration-test-key"


def data_dir() -> Path | None:
    """The recorded Binance captures: $MMD_DATA_DIR, else shared/data/binance beside the repo."""
    env = os.environ.get("MMD_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data" / "binance"
    return path if (path / "spot").is_dir() and (path / "usdm").is_dir() else None


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(seed=7)


@pytest.fixture
async def sim(sim_config: SimConfig) -> AsyncIterator[SimulatorHandle]:
    handle = await start_simulator(sim_config)
    try:
        yield handle
    finally:
        await handle.stop()


@pytest.fixture
def spot_endpoint(sim: SimulatorHandle) -> VenueEndpoint:
    return sim.endpoint(SPOT)


@pytest.fixture
def perp_endpoint(sim: SimulatorHandle) -> VenueEndpoint:
    return sim.endpoint(PERP)


ExchangeFactory = Callable[..., Any]


@pytest.fixture
async def make_exchange(sim: SimulatorHandle) -> AsyncIterator[ExchangeFactory]:
    made: list[Any] = []

    def factory(
        venue: str = SPOT, api_key: str | None = TEST_KEY, secret: str | None = None
    ) -> Any:
        endpoint = sim.endpoint(venue)
        exchange = make_ccxt_exchange(
            endpoint.dialect,
            endpoint.rest,
            endpoint.ws,
            api_key=api_key,
            secret=secret if secret is not None else api_key,
        )
        made.append(exchange)
        return exchange

    try:
        yield factory
    finally:
        for exchange in made:
            await exchange.close()


class Admin:
    """The simulator's admin endpoints of each venue."""

    def __init__(self, sim: SimulatorHandle, session: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.session = session

    async def fault(self, venue: str, kind: str, seconds: float = 0.0, count: int = 1) -> None:
        url = self.sim.endpoint(venue).admin + "/faults"
        body = {"kind": kind, "seconds": seconds, "count": count}
        async with self.session.post(url, json=body) as resp:
            assert resp.status == 200, await resp.text()

    async def state(self, venue: str, depth: int = 1000) -> dict[str, Any]:
        url = self.sim.endpoint(venue).admin + f"/state?depth={depth}"
        async with self.session.get(url) as resp:
            assert resp.status == 200
            data: dict[str, Any] = await resp.json()
            return data


@pytest.fixture
async def admin(sim: SimulatorHandle) -> AsyncIterator[Admin]:
    async with aiohttp.ClientSession() as session:
        yield Admin(sim, session)
