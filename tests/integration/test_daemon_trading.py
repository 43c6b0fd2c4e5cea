"""The whole daemon in-process against the simulator: paper trading in a trending market with
hedging, and live orders resting in the simulator's own book.

Paper, trending, 60 s (one run shared by the tests below it): BTC/USDT quoted on the synthetic
spot venue, hedged on the perpetual. The fixed quote model does not lean on inventory, so in a
trend its inventory grows against the move and only the hedger (past 0.015 BTC) and the
inventory limit (0.03 BTC) hold it. One level of 0.01 BTC a side, so the inventory bound is
exact: the quoter stops quoting the side that grows |net exposure| once it reaches the limit, so
the only fills that can push it further are those of orders already resting when the limit was
crossed. With one level per side, at most one order of the growing side rests at a time (a
replace cancels before it places), so |net exposure| never exceeds the limit plus one order.

Live, short: the same daemon with `mode: live` against a simulator started here (URL endpoints),
so its orders are real orders in the simulator's matching engine. After the SIGTERM stop path,
the simulator holds no open order of the daemon's accounts.
"""

from __future__ import annotations

import asyncio
import copy
import io
import re
import tempfile
from collections.abc import AsyncIterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from mm_daemon.config import Config, SimConfig, load_config, parse_config
from mm_daemon.core.inventory import Ledger
from mm_daemon.core.summary import RunSummary
from mm_daemon.engine.asset import AssetBook
from mm_daemon.engine.daemon import EXIT_ORDERS_LEFT_OPEN, Daemon
from mm_daemon.sim.runner import SimulatorHandle, start_simulator
from tests.support import eventually

TRENDING_RUN_SECONDS = 60.0
ORDER_SIZE_BASE = 0.01
INVENTORY_LIMIT_BASE = 0.03
HEDGE_THRESHOLD_BASE = 0.015
MAKER_KEY = "daemon-live-maker"
HEDGE_KEY = "daemon-live-hedge"
LIVE_DEADLINE_SECONDS = 15.0
PNL_LINE = re.compile(
    r"\b(?P<component>spread_capture|fees|inventory|hedge_cost|basis|funding|total)"
    r"\s+(?P<value>-?\d+\.\d+)$",
    re.MULTILINE,
)


# The venues of config/default.yaml: spot quoted and the perpetual hedged, both embedded.
DEFAULT_VENUES = {
    name: venue.model_dump(mode="json", exclude_defaults=True)
    for name, venue in load_config(
        Path(__file__).resolve().parents[2] / "config" / "default.yaml", environ={}
    ).venues.items()
}
BTC_MARKET = {
    "venue": "sim-spot",
    "symbol": "BTC/USDT",
    "hedge": {"venue": "sim-perp", "symbol": "BTC/USDT:USDT"},
}


def _config_data(overrides: dict[str, Any]) -> dict[str, Any]:
    """The embedded-simulator paper config with one tight level a side (fills within seconds)."""
    data: dict[str, Any] = {
        "mode": "paper",
        "venues": copy.deepcopy(DEFAULT_VENUES),
        "markets": [copy.deepcopy(BTC_MARKET)],
        "sim": {"source": "synthetic", "regime": "trending", "seed": 7},
        "quoting": {
            "model": "fixed",
            "order_size_base": ORDER_SIZE_BASE,
            "levels": 1,
            "spread_bps": 0.5,
            "min_spread_bps": 0.0,
        },
        "inventory": {"limit_base": INVENTORY_LIMIT_BASE},
        "hedging": {"mode": "threshold", "threshold_base": HEDGE_THRESHOLD_BASE},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": "warning", "format": "json"},
        # Each daemon its own journal: a run never restores another test's book.
        "state": {"dir": tempfile.mkdtemp(prefix="mmd-state-")},
    }
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **values}
        else:
            data[section] = values
    return data


def _config(overrides: dict[str, Any]) -> Config:
    return parse_config(_config_data(overrides), environ={})


@dataclass(frozen=True, slots=True)
class PaperRun:
    config: Config
    exit_code: int
    stdout: str
    summary: RunSummary
    asset: AssetBook


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def trending_run() -> PaperRun:
    config = _config({})
    daemon = Daemon(config)
    out = io.StringIO()
    with redirect_stdout(out):
        exit_code = await daemon.run(TRENDING_RUN_SECONDS)
    assert daemon.summary is not None, "the daemon did not build its summary"
    assert daemon.portfolio is not None, "the daemon never started trading"
    (asset,) = daemon.portfolio.assets
    return PaperRun(config, exit_code, out.getvalue(), daemon.summary, asset)


def _assert_attribution_exact(ledger: Ledger) -> None:
    pnl = ledger.pnl()
    assert pnl.components_sum_atoms() == pnl.total_atoms, (
        f"components sum to {pnl.components_sum()} but the total is {pnl.total}"
    )


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
class TestPaperTradingInATrendingMarket:
    async def test_the_run_ends_with_exit_code_zero(self, trending_run: PaperRun) -> None:
        assert trending_run.exit_code == 0

    async def test_the_quotes_are_filled(self, trending_run: PaperRun) -> None:
        assert trending_run.summary.quoting_fills.count > 0

    async def test_net_exposure_never_exceeds_the_limit_plus_one_order(
        self, trending_run: PaperRun
    ) -> None:
        ledger = trending_run.asset.ledger
        # The ledger updates its maximum on every change of net exposure (each fill, each
        # hedge fill and each netting-weight change), so this is the maximum over the whole run.
        assert ledger.max_abs_net_exposure_base > 0
        assert ledger.max_abs_net_exposure_base <= INVENTORY_LIMIT_BASE + ORDER_SIZE_BASE + 1e-12

    async def test_hedge_orders_are_sent_and_their_fills_booked(
        self, trending_run: PaperRun
    ) -> None:
        hedge = trending_run.asset.hedge
        assert hedge is not None
        assert hedge.hedger.stats.orders > 0
        assert hedge.hedger.stats.fills > 0
        assert trending_run.asset.ledger.hedge_stats.count > 0
        assert trending_run.summary.hedge_fills.volume_base > 0

    async def test_pnl_attribution_sums_exactly(self, trending_run: PaperRun) -> None:
        _assert_attribution_exact(trending_run.asset.ledger)

    async def test_summary_table_is_printed_with_every_pnl_line(
        self, trending_run: PaperRun
    ) -> None:
        text = trending_run.stdout
        assert "run summary" in text
        printed = {match["component"]: float(match["value"]) for match in PNL_LINE.finditer(text)}
        assert set(printed) == set(trending_run.summary.pnl_quote), text
        for component, value in trending_run.summary.pnl_quote.items():
            assert printed[component] == pytest.approx(value, abs=1e-4), component


# -- live mode ---------------------------------------------------------------------------------


@pytest.fixture
async def simulator() -> AsyncIterator[SimulatorHandle]:
    handle = await start_simulator(SimConfig(seed=11, regime="calm"))
    try:
        yield handle
    finally:
        await handle.stop()


def _live_config(sim: SimulatorHandle) -> Config:
    environ = {
        "MMD_VENUES__SIM_SPOT__API_KEY": MAKER_KEY,
        "MMD_VENUES__SIM_SPOT__API_SECRET": MAKER_KEY,  # the simulator's secret is the key
        "MMD_VENUES__SIM_PERP__API_KEY": HEDGE_KEY,
        "MMD_VENUES__SIM_PERP__API_SECRET": HEDGE_KEY,
    }
    data = _config_data({"mode": "live"})
    data["venues"]["sim-spot"].update(
        endpoint=sim.endpoint("sim-spot").rest, maker_fee_bps=0.0, taker_fee_bps=4.0
    )
    data["venues"]["sim-perp"].update(
        endpoint=sim.endpoint("sim-perp").rest, maker_fee_bps=0.0, taker_fee_bps=2.0
    )
    return parse_config(data, environ=environ)


async def _open_orders(
    session: aiohttp.ClientSession, sim: SimulatorHandle, venue: str, api_key: str
) -> list[dict[str, Any]]:
    async with session.get(sim.endpoint(venue).admin + "/state?depth=1") as resp:
        assert resp.status == 200
        state: dict[str, Any] = await resp.json()
    orders: list[dict[str, Any]] = state["open_orders"].get(api_key, [])
    return orders


async def test_live_mode_rests_orders_in_the_simulator_and_sigterm_leaves_none(
    simulator: SimulatorHandle,
) -> None:
    daemon = Daemon(_live_config(simulator))
    out = io.StringIO()
    with redirect_stdout(out):
        running = asyncio.get_running_loop().create_task(daemon.run(LIVE_DEADLINE_SECONDS))
        async with aiohttp.ClientSession() as session:
            resting: list[dict[str, Any]] = await eventually(
                lambda: running.done() or _open_orders(session, simulator, "sim-spot", MAKER_KEY),
                timeout_s=LIVE_DEADLINE_SECONDS - 2.0,
                interval_s=0.1,
                what="an order of the daemon's account resting in the simulator's book",
            )
            assert not running.done(), "the daemon stopped before an order rested"
            assert daemon.portfolio is not None
            prefix = daemon.portfolio.markets[0].orders.client_id_prefix
            assert all(o["clientOrderId"].startswith(prefix) for o in resting), resting

            daemon.request_stop("SIGTERM")
            exit_code = await asyncio.wait_for(running, 10.0)

            assert exit_code == 0
            assert await _open_orders(session, simulator, "sim-spot", MAKER_KEY) == []
            assert await _open_orders(session, simulator, "sim-perp", HEDGE_KEY) == []
    assert "run summary" in out.getvalue()


async def test_shutdown_that_cannot_cancel_its_orders_exits_3_naming_them(
    simulator: SimulatorHandle,
) -> None:
    daemon = Daemon(_live_config(simulator))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        running = asyncio.get_running_loop().create_task(daemon.run(LIVE_DEADLINE_SECONDS))
        async with aiohttp.ClientSession() as session:
            await eventually(
                lambda: running.done() or _open_orders(session, simulator, "sim-spot", MAKER_KEY),
                timeout_s=LIVE_DEADLINE_SECONDS - 2.0,
                interval_s=0.1,
                what="an order of the daemon's account resting in the simulator's book",
            )
        assert not running.done(), "the daemon stopped before an order rested"
        await simulator.stop()  # the venue is gone: no cancel can reach it
        daemon.request_stop("SIGTERM")
        exit_code = await asyncio.wait_for(running, 15.0)
    assert exit_code == EXIT_ORDERS_LEFT_OPEN
    assert "still open after shutdown: BTC/USDT@sim-spot: cancel failed" in err.getvalue()
