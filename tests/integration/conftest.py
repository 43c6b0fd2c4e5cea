"""Simulator fixtures for integration tests: the simulator runs in-process on free loopback
ports, and ccxt.pro clients are pointed at it exactly as at a testnet.

- `sim`: a running simulator (both venues, synthetic market, default config).
- `spot_endpoint` / `perp_endpoint`: the venues' `VenueEndpoint` (rest, ws, admin URLs).
- `make_exchange(dialect_or_venue, api_key=..., secret=...)`: a ccxt.pro exchange on the sim,
  closed after the test. By the simulator's rule the secret of a key is the key itself.
- `admin`: helpers for `/admin/faults` and `/admin/state`.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mm_daemon.config import SimConfig
from mm_daemon.core.types import BookLevels, Side
from mm_daemon.sim.matching import MatchResult
from mm_daemon.sim.runner import SimulatorHandle, VenueEndpoint, start_simulator
from mm_daemon.sim.venue import SimVenue, VenueSymbol
from mm_daemon.venues.exchanges import make_ccxt_exchange
from tests.support import eventually

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
def market_speed() -> float:
    """How much faster than the wall clock the synthetic market runs (override per module)."""
    return 1.0


@pytest.fixture
async def sim(sim_config: SimConfig, market_speed: float) -> AsyncIterator[SimulatorHandle]:
    handle = await start_simulator(sim_config, market_speed=market_speed)
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


class BookHistory:
    """The simulator's own book of one symbol (top `depth` levels as ticks and lots) after
    every update id, rebuilt from the engine's level changes as they are published, starting
    from the engine's book when recording starts (`check_engine` compares the rebuilt book
    with the engine)."""

    def __init__(self, venue: SimVenue, depth: int = 100, symbol: str = "BTCUSDT") -> None:
        self.depth = depth
        self.sym = venue.symbols[symbol]
        bids, asks, update_id = self.sym.engine.depth(1_000_000)
        self._bids = dict(bids)
        self._asks = dict(asks)
        self.books: dict[int, tuple[BookLevels, BookLevels]] = {update_id: self._top()}
        venue.book_observers.append(self._record)

    def _top(self) -> tuple[BookLevels, BookLevels]:
        bids = tuple(heapq.nlargest(self.depth, self._bids.items()))
        asks = tuple(heapq.nsmallest(self.depth, self._asks.items()))
        return bids, asks

    def _record(self, sym: VenueSymbol, result: MatchResult) -> None:
        if sym is not self.sym:
            return
        for change in result.level_changes:
            side = self._bids if change.side is Side.BUY else self._asks
            if change.size_lots:
                side[change.price_ticks] = change.size_lots
            else:
                side.pop(change.price_ticks, None)
        self.books[result.update_id] = self._top()

    def check_engine(self) -> None:
        bids, asks, update_id = self.sym.engine.depth(self.depth)
        assert self.books[update_id] == (bids, asks)


def ccxt_levels(levels: list[list[float]], tick: float, lot: float, depth: int) -> BookLevels:
    """A ccxt book side as (ticks, lots) pairs, top `depth`."""
    return tuple((round(p / tick), round(a / lot)) for p, a in levels[:depth])


@pytest.fixture
def book_history(sim: SimulatorHandle) -> Callable[..., BookHistory]:
    """Start recording a venue's own book of one symbol (BTCUSDT unless named) after every
    update id."""

    def start(venue: str, depth: int = 100, symbol: str = "BTCUSDT") -> BookHistory:
        return BookHistory(sim.venues[venue], depth, symbol)

    return start


@pytest.fixture
def to_levels() -> Callable[[list[list[float]], float, float, int], BookLevels]:
    return ccxt_levels


class Admin:
    """The simulator's admin endpoints of each venue."""

    def __init__(self, sim: SimulatorHandle, session: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.session = session

    async def fault(
        self,
        venue: str,
        kind: str,
        seconds: float = 0.0,
        count: int = 1,
        symbol: str | None = None,
    ) -> None:
        url = self.sim.endpoint(venue).admin + "/faults"
        body: dict[str, Any] = {"kind": kind, "seconds": seconds, "count": count}
        if symbol is not None:
            body["symbol"] = symbol
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


async def until_user_data_gone(sim: SimulatorHandle, venue: str, api_key: str) -> None:
    """Wait (each loop turn, with a deadline) until no user-data stream of `api_key` is
    connected to `venue`: an order filled from then on has its report dropped."""
    streams = sim.venues[venue].user_streams
    await eventually(
        lambda: not any(s.api_key == api_key for s in streams.values()),
        what="the simulator dropping the user-data stream after the disconnect",
    )
