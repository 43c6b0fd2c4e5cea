"""Quote-model study: the whole daemon, in-process, for each model x hedging x market cell.

Each cell starts the simulator (synthetic regime or replay of the recorded BTC captures) on
loopback, points a `Daemon` at it through URL endpoints (the same ccxt.pro code path as a
testnet), runs it for a fixed time in paper mode, samples the exact total P&L every second, and
keeps the run summary. Cells run in separate processes (`--jobs`), each with its own event loop.

The `recorded` market is the recorded BTC captures again, replayed in virtual time
(`mm-daemon replay`'s path: no simulator, no sockets, recorded seconds): each cell covers the
whole 345.9 s overlap in a second or two of wall clock, and its samples and markouts are in
recorded seconds. `--seconds` does not apply to it.

    .venv/bin/python bench/study.py                 # the full grid, writes bench/results/study.json
    .venv/bin/python bench/study.py --markets calm --models fixed,glft --seconds 20

Reported per cell: final P&L and its components, the standard deviation of the 1 s changes of
total P&L (marked to fair value) over the run, max |net exposure|, quote and hedge fills, and
mean markouts at 1 s, 5 s and 30 s. One seed per market: every model sees the same synthetic
market path (paper orders do not change the simulator's market).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import math
import multiprocessing
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from contextlib import redirect_stdout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import uvloop
from prometheus_client import CollectorRegistry

from mm_daemon.binance.capture import default_data_dir
from mm_daemon.config import SimConfig, parse_config
from mm_daemon.core.pnl import ATOMS_PER_QUOTE
from mm_daemon.engine.daemon import Daemon
from mm_daemon.engine.entry import open_recorded
from mm_daemon.log import configure_logging
from mm_daemon.sim.runner import SimulatorHandle, start_simulator

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = ("fixed", "linear_skew", "avellaneda_stoikov", "glft")
SYNTHETIC = ("calm", "trending", "volatile")
MARKETS = (*SYNTHETIC, "replay", "recorded")
SEED = 7
# The queue model as its cells were measured: half of each unexplained size decrease ahead of us
# (the default then), kept so that they reproduce; bench/paper_vs_live.py's old queue model.
OLD_QUEUE_MODEL = {
    "fill_model": "queue",
    "queue_position": "fixed",
    "size_decrease_queue_share": 0.5,
}
ORDER_SIZE_BASE = 0.01
INVENTORY_LIMIT_BASE = 0.05
HEDGE_THRESHOLD_BASE = 0.02
SIM_FEES_BPS = {"spot": (0.0, 4.0), "perp": (0.0, 2.0)}  # the simulator's defaults

# Model parameters, chosen so that every model quotes about 0.25 bps from fair value when flat
# and leans by about half its spread per 0.01 BTC of inventory (see docs/study.md):
# - fixed / linear_skew: 0.5 bps total spread; skew 25 bps per BTC = 0.25 bps per 0.01 BTC.
# - avellaneda_stoikov / glft: gamma is given per USDT per BTC (the config's units); the models
#   run in ticks and lots (0.01 USDT, 1e-5 BTC), where gamma 0.05 is 5e-9 per tick per lot. AS:
#   r - s = q gamma sigma^2 tau, at sigma ~ 700 ticks/sqrt(s) and tau = 60 s that is ~0.15 tick
#   per lot (150 ticks = 0.25 bps per 0.01 BTC); the half spread is then about 1/k (k ~ 0.007
#   per tick from the trade-intensity fit). GLFT at gamma 0.02 gives a similar skew per order
#   (sigma c2 D) and half spread c1 + D/2 sigma c2.
MODEL_PARAMS: dict[str, dict[str, Any]] = {
    "fixed": {"spread_bps": 0.5},
    "linear_skew": {"spread_bps": 0.5, "skew_bps_per_base": 25.0},
    "avellaneda_stoikov": {"gamma": 0.05, "horizon_seconds": 60.0},
    "glft": {"gamma": 0.02, "xi": 0.0},
}


@dataclass(frozen=True, slots=True)
class CellSpec:
    market: str  # calm | trending | volatile | replay | recorded
    model: str
    hedging: bool
    seconds: float
    mode: str = "paper"
    fill_model: str = "queue"
    seed: int = SEED
    replay_speed: float = 6.0
    extra: dict[str, Any] = field(default_factory=dict)  # config overrides, section -> values

    @property
    def name(self) -> str:
        hedge = "hedged" if self.hedging else "unhedged"
        return f"{self.market}/{self.model}/{hedge}/{self.mode}-{self.fill_model}"


def sim_config(spec: CellSpec) -> SimConfig:
    # BTC alone: every cell quotes BTC, and another asset's books would only share the CPU.
    if spec.market == "replay":
        return SimConfig(
            source="replay", replay_speed=spec.replay_speed, seed=spec.seed, assets=("BTC",)
        )
    return SimConfig.model_validate(
        {"source": "synthetic", "regime": spec.market, "seed": spec.seed, "assets": ["BTC"]}
    )


def daemon_config_data(spec: CellSpec, sim: SimulatorHandle | None) -> dict[str, Any]:
    """The cell's daemon config; without a simulator the venues name the recorded markets."""
    spot_fees, perp_fees = SIM_FEES_BPS["spot"], SIM_FEES_BPS["perp"]
    data: dict[str, Any] = {
        "mode": spec.mode,
        "venues": {
            "sim-spot": {
                "exchange": "binance",
                "endpoint": sim.endpoint("sim-spot").rest if sim else "mainnet",
                "maker_fee_bps": spot_fees[0],
                "taker_fee_bps": spot_fees[1],
            },
            "sim-perp": {
                "exchange": "binanceusdm",
                "endpoint": sim.endpoint("sim-perp").rest if sim else "mainnet",
                "maker_fee_bps": perp_fees[0],
                "taker_fee_bps": perp_fees[1],
            },
        },
        "markets": [
            {
                "venue": "sim-spot",
                "symbol": "BTC/USDT",
                "hedge": {"venue": "sim-perp", "symbol": "BTC/USDT:USDT"},
            }
        ],
        "quoting": {
            "model": spec.model,
            "order_size_base": ORDER_SIZE_BASE,
            "levels": 1,
            "min_spread_bps": 0.0,
            **MODEL_PARAMS[spec.model],
        },
        "inventory": {"limit_base": INVENTORY_LIMIT_BASE},
        "hedging": (
            {"mode": "threshold", "threshold_base": HEDGE_THRESHOLD_BASE}
            if spec.hedging
            else {"mode": "off"}
        ),
        "paper": (
            dict(OLD_QUEUE_MODEL) if spec.fill_model == "queue" else {"fill_model": spec.fill_model}
        ),
        "metrics": {"enabled": False},
        "logging": {"level": "error", "format": "json"},
        "state": {"dir": tempfile.mkdtemp(prefix="mmd-study-state-")},  # every run a new book
    }
    for section, values in spec.extra.items():
        data[section] = {**data.get(section, {}), **values}
    return data


def live_environ(spec: CellSpec) -> dict[str, str]:
    """API keys for live cells; the simulator's secret for a key is the key itself."""
    if spec.mode != "live":
        return {}
    env: dict[str, str] = {}
    for name in ("SIM_SPOT", "SIM_PERP"):
        key = f"study-{name.lower()}-{spec.seed}"
        env[f"MMD_VENUES__{name}__API_KEY"] = key
        env[f"MMD_VENUES__{name}__API_SECRET"] = key
    return env


async def run_cell(spec: CellSpec) -> dict[str, Any]:
    """Start the simulator, run the daemon for `spec.seconds`, return the cell's figures."""
    sim = await start_simulator(sim_config(spec))
    try:
        config = parse_config(daemon_config_data(spec, sim), environ=live_environ(spec))
        daemon = Daemon(config)
        samples: list[float] = []
        nets: list[float] = []

        async def sample() -> None:
            while True:
                await asyncio.sleep(1.0)  # a 1 s P&L sample, not a synchronisation
                portfolio = daemon.portfolio
                if portfolio is not None:
                    ledger = portfolio.assets[0].ledger
                    samples.append(ledger.pnl().total_atoms / ATOMS_PER_QUOTE)
                    nets.append(ledger.net_exposure_base)

        sampler = asyncio.get_running_loop().create_task(sample())
        out = io.StringIO()
        started = time.monotonic()
        with redirect_stdout(out):
            exit_code = await daemon.run(spec.seconds)
        wall = time.monotonic() - started
        sampler.cancel()
        replay_engines = [
            type(sym.engine).__name__
            for venue in sim.venues.values()
            for sym in venue.symbols.values()
        ]
    finally:
        await sim.stop()
    return cell_result(
        spec, daemon, samples=samples, exit_code=exit_code, wall=wall, engines=replay_engines
    )


def run_recorded_cell(spec: CellSpec) -> dict[str, Any]:
    """The daemon on the recorded captures in virtual time, P&L sampled every recorded second."""
    config = parse_config(daemon_config_data(spec, None), environ={})
    loop, markets = open_recorded(config, default_data_dir())
    daemon = Daemon(config, clock=loop.clock.now_ns, recorded=markets)
    samples: list[float] = []

    async def main() -> int:
        async def sample() -> None:
            while True:
                await asyncio.sleep(1.0)  # one recorded second: the loop's clock is virtual
                portfolio = daemon.portfolio
                if portfolio is not None:
                    ledger = portfolio.assets[0].ledger
                    samples.append(ledger.pnl().total_atoms / ATOMS_PER_QUOTE)

        sampler = asyncio.get_running_loop().create_task(sample())
        try:
            return await daemon.run()
        finally:
            sampler.cancel()

    started = time.monotonic()
    try:
        with redirect_stdout(io.StringIO()):
            exit_code = loop.run_until_complete(main())
    finally:
        loop.close()
    wall = time.monotonic() - started
    return cell_result(
        spec, daemon, samples=samples, exit_code=exit_code, wall=wall, engines=["recorded"]
    )


def cell_result(
    spec: CellSpec,
    daemon: Daemon,
    *,
    samples: list[float],
    exit_code: int,
    wall: float,
    engines: list[str],
) -> dict[str, Any]:
    summary, portfolio = daemon.summary, daemon.portfolio
    if summary is None or portfolio is None:
        return {"cell": spec.name, "spec": _spec_dict(spec), "error": "the daemon did not trade"}
    (asset,) = portfolio.assets
    pnl = asset.ledger.pnl()
    steps = [b - a for a, b in itertools.pairwise(samples)]
    hedge = asset.hedge
    return {
        "cell": spec.name,
        "spec": _spec_dict(spec),
        "exit_code": exit_code,
        "wall_seconds": round(wall, 2),
        "engines": sorted(set(engines)),
        "duration_seconds": summary.duration_seconds,
        "pnl_quote": summary.pnl_quote,
        "attribution_exact": pnl.components_sum_atoms() == pnl.total_atoms,
        "pnl_step_std_quote": statistics.pstdev(steps) if len(steps) > 1 else math.nan,
        "pnl_samples": len(samples),
        "max_abs_net_exposure_base": summary.max_abs_net_exposure_base,
        "net_exposure_end_base": summary.net_exposure_base,
        "quote_fills": summary.quoting_fills.count,
        "quote_volume_base": summary.quoting_fills.volume_base,
        "hedge_orders": summary.hedge_orders,
        "hedge_fills": summary.hedge_fills.count,
        "hedge_rejects": summary.hedge_rejects,
        "markouts_bps": {h: {"mean": m, "count": n} for h, (m, n) in summary.markouts.items()},
        "hedger_fills": hedge.hedger.stats.fills if hedge is not None else 0,
        "order_actions": counter_totals(daemon.metrics.registry, "mm_orders_total", "action"),
        "order_rejects": counter_totals(
            daemon.metrics.registry, "mm_order_rejects_total", "reason"
        ),
    }


def counter_totals(registry: CollectorRegistry, sample_name: str, label: str) -> dict[str, float]:
    """A counter's values summed per value of one label."""
    totals: dict[str, float] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == sample_name:
                key = sample.labels.get(label, "")
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def _spec_dict(spec: CellSpec) -> dict[str, Any]:
    return asdict(spec)


def run_cell_process(spec: CellSpec) -> dict[str, Any]:
    configure_logging("error", "json")
    try:
        if spec.market == "recorded":
            return run_recorded_cell(spec)
        return uvloop.run(run_cell(spec))
    except Exception as exc:  # noqa: BLE001  one failed cell is reported, the study goes on
        return {"cell": spec.name, "spec": _spec_dict(spec), "error": repr(exc)}


def run_cells(specs: Sequence[CellSpec], jobs: int) -> list[dict[str, Any]]:
    if jobs <= 1:
        return [run_cell_process(s) for s in specs]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(jobs, maxtasksperchild=1) as pool:
        return pool.map(run_cell_process, specs, chunksize=1)


def replay_available() -> bool:
    """Whether the simulator serves recorded captures (`sim.source: replay`)."""

    async def probe() -> bool:
        try:
            sim = await start_simulator(SimConfig(source="replay", replay_speed=1.0))
        except Exception:  # noqa: BLE001  no data dir, or no replay source
            return False
        try:
            return any(
                type(sym.engine).__name__ == "ReplayEngine"
                for venue in sim.venues.values()
                for sym in venue.symbols.values()
            )
        finally:
            await sim.stop()

    return uvloop.run(probe())


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def table(rows: Sequence[dict[str, Any]]) -> str:
    head = (
        f"{'market':<9} {'model':<19} {'hedge':<6} {'P&L':>8} {'sd 1s':>6} {'spread':>8} "
        f"{'inv':>8} {'h.cost':>7} {'max|q|':>7} {'fills':>6} {'hedges':>6} "
        f"{'mk 1s':>6} {'mk 5s':>6} {'mk 30s':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        spec = r["spec"]
        if "error" in r:
            lines.append(f"{spec['market']:<9} {spec['model']:<19} error: {r['error']}")
            continue
        p, mk = r["pnl_quote"], r["markouts_bps"]
        lines.append(
            f"{spec['market']:<9} {spec['model']:<19} {'yes' if spec['hedging'] else 'no':<6} "
            f"{_fmt(p['total']):>8} {_fmt(r['pnl_step_std_quote']):>6} "
            f"{_fmt(p['spread_capture']):>8} {_fmt(p['inventory']):>8} "
            f"{_fmt(p['hedge_cost']):>7} {_fmt(r['max_abs_net_exposure_base'], 3):>7} "
            f"{r['quote_fills']:>6} {r['hedge_fills']:>6} "
            f"{_fmt(mk['1s']['mean']):>6} {_fmt(mk['5s']['mean']):>6} {_fmt(mk['30s']['mean']):>6}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--markets", default=",".join(MARKETS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seconds", type=float, default=60.0, help="run time of each cell")
    parser.add_argument("--replay-speed", type=float, default=6.0)
    parser.add_argument("--jobs", type=int, default=3, help="cells run at once (processes)")
    parser.add_argument("--out", type=Path, default=RESULTS / "study.json")
    args = parser.parse_args()
    markets = [m for m in args.markets.split(",") if m]
    if "replay" in markets and not replay_available():
        print("replay: the simulator has no replay source here (or no data); skipped")
        markets.remove("replay")
    if "recorded" in markets and not (default_data_dir() / "usdm").is_dir():
        print("recorded: no recorded captures here (MMD_DATA_DIR); skipped")
        markets.remove("recorded")
    specs = [
        CellSpec(market, model, hedging, args.seconds, replay_speed=args.replay_speed)
        for market in markets
        for model in args.models.split(",")
        for hedging in (False, True)
    ]
    started = time.monotonic()
    rows = run_cells(specs, args.jobs)
    elapsed = time.monotonic() - started
    print(table(rows))
    print(f"\n{len(rows)} cells in {elapsed:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "python": platform.python_version(),
                "seconds_per_cell": args.seconds,
                "replay_speed": args.replay_speed,
                "seed": SEED,
                "model_params": MODEL_PARAMS,
                "elapsed_seconds": round(elapsed, 1),
                "cells": rows,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
