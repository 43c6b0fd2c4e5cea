"""Funding on the perpetual, booked by the whole daemon against the simulator: settlements every
2 s at a fixed 0.1 % while the hedge holds a position on the perpetual.

Live: the daemon's `funding` component equals the funding income the simulator's account lists
(`GET /fapi/v1/income`), exactly. Paper: it books, at each settlement, -position x mark price x
rate with the mark price and rate the simulator published last before the funding time (read
here from the simulator's own `markPrice` stream)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hmac
import io
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import redirect_stdout
from fractions import Fraction
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest
import pytest_asyncio

from mm_daemon.config import Config, SimConfig, parse_config
from mm_daemon.core.funding import funding_amount
from mm_daemon.engine.daemon import Daemon
from mm_daemon.sim.runner import SimulatorHandle, start_simulator
from tests.integration.test_daemon_trading import DEFAULT_VENUES
from tests.support import eventually

RATE = 0.001
INTERVAL_S = 2.0
SETTLEMENTS = 3
DEADLINE_S = 90.0
MAKER_KEY = "funding-maker"
HEDGE_KEY = "funding-hedge"
PERP = ("sim-perp", "BTC/USDT:USDT")

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module")
async def simulator() -> AsyncIterator[SimulatorHandle]:
    config = SimConfig.model_validate(
        {
            "seed": 11,
            "regime": "trending",
            "assets": ["BTC"],
            "funding": {"interval_seconds": INTERVAL_S, "fixed_rate": RATE},
        }
    )
    handle = await start_simulator(config)
    try:
        yield handle
    finally:
        await handle.stop()


def _config(sim: SimulatorHandle, mode: str) -> Config:
    venues = copy.deepcopy(DEFAULT_VENUES)
    venues["sim-spot"].update(
        endpoint=sim.endpoint("sim-spot").rest, maker_fee_bps=0.0, taker_fee_bps=4.0
    )
    venues["sim-perp"].update(
        endpoint=sim.endpoint("sim-perp").rest, maker_fee_bps=0.0, taker_fee_bps=2.0
    )
    data: dict[str, Any] = {
        "mode": mode,
        "venues": venues,
        "markets": [
            {
                "venue": "sim-spot",
                "symbol": "BTC/USDT",
                "hedge": {"venue": "sim-perp", "symbol": "BTC/USDT:USDT"},
            }
        ],
        "quoting": {
            "model": "fixed",
            "order_size_base": 0.01,
            "levels": 1,
            "spread_bps": 0.5,
            "min_spread_bps": 0.0,
        },
        "inventory": {"limit_base": 0.05},
        "hedging": {"mode": "threshold", "threshold_base": 0.005},
        "funding": {"income_poll_seconds": 5.0},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": "warning", "format": "json"},
        "state": {"dir": tempfile.mkdtemp(prefix="mmd-state-")},
    }
    environ = {
        "MMD_VENUES__SIM_SPOT__API_KEY": MAKER_KEY,
        "MMD_VENUES__SIM_SPOT__API_SECRET": MAKER_KEY,  # the simulator's secret is the key
        "MMD_VENUES__SIM_PERP__API_KEY": HEDGE_KEY,
        "MMD_VENUES__SIM_PERP__API_SECRET": HEDGE_KEY,
    }
    return parse_config(data, environ=environ if mode == "live" else {})


async def _income(sim: SimulatorHandle) -> list[dict[str, Any]]:
    query = urlencode(
        {
            "incomeType": "FUNDING_FEE",
            "startTime": 0,
            "limit": 1000,
            "timestamp": int(time.time() * 1000),
        }
    )
    query += "&signature=" + hmac.digest(HEDGE_KEY.encode(), query.encode(), "sha256").hex()
    async with (
        aiohttp.ClientSession(headers={"X-MBX-APIKEY": HEDGE_KEY}) as session,
        session.get(f"{sim.endpoint('sim-perp').rest}/fapi/v1/income?{query}") as response,
    ):
        body: list[dict[str, Any]] = await response.json()
    return body


def _booked_funding(daemon: Daemon) -> Fraction:
    assert daemon.portfolio is not None
    asset = daemon.portfolio.asset_of(*PERP)
    assert asset is not None
    return asset.ledger.pnl().funding


async def test_live_funding_component_equals_the_accounts_funding_income(
    simulator: SimulatorHandle,
) -> None:
    daemon = Daemon(_config(simulator, "live"))
    with redirect_stdout(io.StringIO()):
        running = asyncio.get_running_loop().create_task(daemon.run())
        try:
            await eventually(
                lambda: running.done() or len(_sim_income(simulator)) >= SETTLEMENTS,
                timeout_s=DEADLINE_S,
                interval_s=0.2,
                what=f"{SETTLEMENTS} settlements on the daemon's perpetual position",
            )
            assert not running.done(), "the daemon stopped early"

            async def settled() -> bool:
                income = await _income(simulator)
                listed = sum((Fraction(row["income"]) for row in income), Fraction(0))
                return len(income) >= SETTLEMENTS and _booked_funding(daemon) == listed

            await eventually(settled, timeout_s=15, interval_s=0.2, what="funding booked")
        finally:
            daemon.request_stop("test over")
            await asyncio.wait_for(running, 20)
    assert daemon.summary is not None
    income = await _income(simulator)
    listed = sum((Fraction(row["income"]) for row in income), Fraction(0))
    assert round(daemon.summary.pnl_quote["funding"], 2) == round(float(listed), 2)
    assert listed != 0


def _sim_income(sim: SimulatorHandle) -> list[Any]:
    funding = sim.venues["sim-perp"].funding
    assert funding is not None
    return funding.income.get(HEDGE_KEY, [])


async def _record_marks(sim: SimulatorHandle, frames: list[dict[str, Any]]) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{sim.endpoint('sim-perp').ws}/market/ws") as ws,
    ):
        request = {"method": "SUBSCRIBE", "params": ["btcusdt@markPrice@1s"], "id": 1}
        await ws.send_str(orjson.dumps(request).decode())
        async for msg in ws:
            data = orjson.loads(msg.data)
            if data.get("e") == "markPriceUpdate":
                frames.append(data)


def _journaled_funding(config: Config) -> list[tuple[int, float, float, float]]:
    path = config.state.dir / f"{config.instance_id}.journal"
    if not path.exists():
        return []  # the daemon has not opened it yet
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return list(
            conn.execute(
                "SELECT funding_time_ns, amount, rate, position_base FROM funding "
                "WHERE amount != 0 ORDER BY funding_time_ns"
            )
        )


async def test_paper_funding_is_position_times_the_published_mark_and_rate(
    simulator: SimulatorHandle,
) -> None:
    frames: list[dict[str, Any]] = []
    recorder = asyncio.get_running_loop().create_task(_record_marks(simulator, frames))
    await eventually(lambda: frames, timeout_s=10, what="the mark price stream")
    config = _config(simulator, "paper")
    daemon = Daemon(config)
    with redirect_stdout(io.StringIO()):
        running = asyncio.get_running_loop().create_task(daemon.run())
        try:
            await eventually(
                lambda: running.done() or len(_journaled_funding(config)) >= SETTLEMENTS,
                timeout_s=DEADLINE_S,
                interval_s=0.2,
                what=f"{SETTLEMENTS} paper settlements on a non-zero position",
            )
            assert not running.done(), "the daemon stopped early"
            booked = _booked_funding(daemon)
        finally:
            daemon.request_stop("test over")
            await asyncio.wait_for(running, 20)
            recorder.cancel()
    settlements = _journaled_funding(config)
    expected = []
    for funding_time_ns, _amount, _rate, position_base in settlements:
        last = max(
            (f for f in frames if f["E"] * 1_000_000 < funding_time_ns),
            key=lambda f: f["E"],
        )
        assert last["T"] * 1_000_000 == funding_time_ns
        expected.append(funding_amount(position_base, float(last["p"]), float(last["r"])))
    assert [amount for _, amount, _, _ in settlements] == expected
    assert booked == sum((Fraction(repr(a)) for a in expected), Fraction(0))
