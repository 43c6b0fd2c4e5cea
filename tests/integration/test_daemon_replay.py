"""The whole daemon in paper mode on recorded real Binance data: BTC/USDT spot quoted, the BTC
USD-M perpetual hedged, both replayed through the embedded simulator (`sim.source: replay`).

The recorded spot and perpetual overlap for 345 s (2024-08-08 23:54:17 -> 00:00:01 UTC); the
replay runs 12 times faster than recorded, so the run covers most of the overlap in under 30 s.
One run is shared by the tests below. They skip when the captures are absent or the simulator
has no replay source.
"""

from __future__ import annotations

import copy
import io
import os
import re
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from mm_daemon.config import Config, SimConfig, load_config, parse_config
from mm_daemon.core.summary import RunSummary
from mm_daemon.engine.daemon import Daemon
from mm_daemon.engine.portfolio import Portfolio
from mm_daemon.sim.runner import start_simulator

REPLAY_SPEED = 12.0
RUN_SECONDS = 26.0  # 312 s of recorded time at 12x
# The recorded window's BTC prices (spot and perpetual bookTicker stay inside this band).
RECORDED_PRICE_BAND_QUOTE = (61_000.0, 62_500.0)
PNL_LINE = re.compile(
    r"\b(?P<component>spread_capture|fees|inventory|hedge_cost|basis|funding|total)\s+"
    r"(?P<value>-?\d+\.\d+)$",
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


def _data_dir() -> Path | None:
    env = os.environ.get("MMD_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data" / "binance"
    return path if (path / "spot").is_dir() and (path / "usdm").is_dir() else None


def _sim_section(data_dir: Path) -> dict[str, Any]:
    return {"source": "replay", "replay_data_dir": str(data_dir), "replay_speed": REPLAY_SPEED}


async def _replay_served(sim_config: SimConfig) -> bool:
    """Whether the simulator serves the captures (its engines replay the recorded book)."""
    handle = await start_simulator(sim_config)
    try:
        return any(
            type(sym.engine).__name__ == "ReplayEngine"
            for venue in handle.venues.values()
            for sym in venue.symbols.values()
        )
    finally:
        await handle.stop()


def _config(data_dir: Path, state_dir: Path) -> Config:
    data: dict[str, Any] = {
        "mode": "paper",
        "venues": copy.deepcopy(DEFAULT_VENUES),
        "markets": [copy.deepcopy(BTC_MARKET)],
        "sim": _sim_section(data_dir),
        "quoting": {
            "model": "linear_skew",
            "order_size_base": 0.01,
            "levels": 1,
            "spread_bps": 0.5,
            "min_spread_bps": 0.0,
            "skew_bps_per_base": 25.0,
        },
        "inventory": {"limit_base": 0.05},
        "hedging": {"mode": "threshold", "threshold_base": 0.02},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": "warning", "format": "json"},
        "state": {"dir": str(state_dir)},  # a new book, not the working directory's
    }
    return parse_config(data, environ={})


@dataclass(frozen=True, slots=True)
class ReplayRun:
    exit_code: int
    stdout: str
    summary: RunSummary
    portfolio: Portfolio


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def replay_run(tmp_path_factory: pytest.TempPathFactory) -> ReplayRun:
    data_dir = _data_dir()
    if data_dir is None:
        pytest.skip("recorded Binance captures not found (set MMD_DATA_DIR)")
    config = _config(data_dir, tmp_path_factory.mktemp("state"))
    try:
        served = await _replay_served(config.sim)
    except (OSError, ValueError) as exc:
        pytest.skip(f"the simulator cannot replay the captures: {exc!r}")
    if not served:
        pytest.skip("the simulator does not serve sim.source: replay yet")
    daemon = Daemon(config)
    out = io.StringIO()
    with redirect_stdout(out):
        exit_code = await daemon.run(RUN_SECONDS)
    assert daemon.summary is not None, "the daemon did not build its summary"
    assert daemon.portfolio is not None, "the daemon never started trading"
    return ReplayRun(exit_code, out.getvalue(), daemon.summary, daemon.portfolio)


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
class TestPaperTradingOnRecordedBtc:
    async def test_the_run_completes_with_exit_code_zero(self, replay_run: ReplayRun) -> None:
        assert replay_run.exit_code == 0
        assert replay_run.summary.duration_seconds >= RUN_SECONDS

    async def test_both_markets_are_priced_from_the_recorded_data(
        self, replay_run: ReplayRun
    ) -> None:
        low, high = RECORDED_PRICE_BAND_QUOTE
        (market,) = replay_run.portfolio.markets
        assert market.asset.hedge is not None
        maker_fair = market.state.fair_value_price
        hedge_fair = market.asset.hedge.state.fair_value_price
        assert maker_fair is not None
        assert hedge_fair is not None
        assert low < maker_fair < high
        assert low < hedge_fair < high

    async def test_pnl_attribution_sums_exactly(self, replay_run: ReplayRun) -> None:
        pnl = replay_run.portfolio.assets[0].ledger.pnl()
        assert pnl.components_sum_atoms() == pnl.total_atoms, (
            f"components sum to {pnl.components_sum()} but the total is {pnl.total}"
        )

    async def test_summary_table_is_printed_with_every_pnl_line(
        self, replay_run: ReplayRun
    ) -> None:
        text = replay_run.stdout
        assert "run summary" in text
        printed = {m["component"]: float(m["value"]) for m in PNL_LINE.finditer(text)}
        assert set(printed) == set(replay_run.summary.pnl_quote), text
        for component, value in replay_run.summary.pnl_quote.items():
            assert printed[component] == pytest.approx(value, abs=1e-4), component
