"""Cost of the simulator's pure engine: matching calls, the synthetic market, replay frames.

Prints a table of medians over RUNS runs (process CPU time, so a busy shared machine
distorts it less than wall time) and writes bench/results/sim_engine.json.
"""

from __future__ import annotations

import itertools
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mm_daemon.binance.capture import default_data_dir, iter_frames
from mm_daemon.binance.markets import Dialect, recorded_instrument
from mm_daemon.config import SimConfig
from mm_daemon.core.types import OrderType, Side
from mm_daemon.sim.market import SyntheticMarket
from mm_daemon.sim.market_params import (
    SPOT_VENUE,
    build_engines,
    default_instruments,
    params_from_config,
)
from mm_daemon.sim.matching import BACKGROUND_API_KEY, MatchingEngine
from mm_daemon.sim.replay import ReplayEngine

RUNS = 7
BG = BACKGROUND_API_KEY
MID = 6_000_000


def seeded_engine(orders_per_side: int = 250) -> MatchingEngine:
    engines = build_engines(default_instruments())
    eng = engines[(SPOT_VENUE, "BTCUSDT")]
    rng = random.Random(1)
    for _ in range(orders_per_side):
        d = int(rng.expovariate(1 / 300))
        eng.submit(BG, Side.BUY, OrderType.LIMIT, 30_000, 0, price_ticks=MID - 1 - d)
        eng.submit(BG, Side.SELL, OrderType.LIMIT, 30_000, 0, price_ticks=MID + d)
    return eng


def per_call_ns(fn: Callable[[int], int], n: int) -> float:
    """Median over RUNS of ns per operation; `fn(n)` runs n operations, returns count done."""
    samples = []
    for _ in range(RUNS):
        t0 = time.process_time_ns()
        done = fn(n)
        samples.append((time.process_time_ns() - t0) / done)
    return statistics.median(samples)


def bench_add_cancel(n: int) -> int:
    eng = seeded_engine()
    rng = random.Random(2)
    for _ in range(n):
        price = MID - 1 - int(rng.expovariate(1 / 300))
        res = eng.submit(BG, Side.BUY, OrderType.LIMIT, 20_000, 0, price_ticks=price)
        eng.cancel(BG, 0, order_id=res.order_id)
    return 2 * n


def bench_client_add_cancel(n: int) -> int:
    eng = seeded_engine()
    for i in range(n):
        res = eng.submit("client", Side.BUY, OrderType.LIMIT, 1_000, 0, price_ticks=MID - 5 - i % 7)
        eng.cancel("client", 0, order_id=res.order_id)
    return 2 * n


def bench_market_orders(n: int) -> int:
    eng = seeded_engine()
    for i in range(n):
        side = Side.BUY if i % 2 else Side.SELL
        eng.submit(BG, side, OrderType.MARKET, 500, 0)
        # Put the taken size back so the book keeps its shape.
        touch = eng.best_bid() if side is Side.SELL else eng.best_ask()
        price = touch[0] if touch else MID
        eng.submit(BG, side.opposite, OrderType.LIMIT, 500, 0, price_ticks=price)
    return 2 * n


def bench_depth20(n: int) -> int:
    eng = seeded_engine()
    for _ in range(n):
        eng.depth(20)
    return n


def market_cost(assets: tuple[str, ...] = ("BTC",)) -> tuple[float, float]:
    """(ms of CPU per simulated second for `assets` on both default venues, engine calls per
    sim second)."""
    config = SimConfig(assets=assets)
    samples = []
    calls = 0
    seconds = 30
    for _ in range(RUNS):
        instruments = default_instruments(config)
        engines = build_engines(instruments)
        market = SyntheticMarket(params_from_config(config), instruments, 7)
        market.advance(engines, 0)
        t0 = time.process_time_ns()
        calls = sum(len(market.advance(engines, s * 1_000_000_000)) for s in range(1, seconds + 1))
        samples.append((time.process_time_ns() - t0) / seconds / 1e6)
    return statistics.median(samples), calls / seconds


def replay_cost(dialect: Dialect) -> float | None:
    data_dir = default_data_dir()
    if not (data_dir / dialect).is_dir():
        return None
    frames = list(itertools.islice(iter_frames(data_dir, dialect, "btcusdt"), 40_000))
    samples = []
    for _ in range(RUNS):
        eng = ReplayEngine(recorded_instrument(dialect, "btcusdt", "v"), dialect=dialect)
        t0 = time.process_time_ns()
        for f in frames:
            eng.on_frame(f, f.local_ns)
        samples.append((time.process_time_ns() - t0) / len(frames))
    return statistics.median(samples)


def main() -> None:
    rows: list[tuple[str, float, str]] = [
        ("engine: background add + cancel", per_call_ns(bench_add_cancel, 20_000), "ns/call"),
        ("engine: client add + cancel", per_call_ns(bench_client_add_cancel, 20_000), "ns/call"),
        ("engine: market order + refill", per_call_ns(bench_market_orders, 20_000), "ns/call"),
        ("engine: depth(20)", per_call_ns(bench_depth20, 20_000), "ns/call"),
    ]
    ms_per_s, calls_per_s = market_cost()
    rows.append(("market: CPU per simulated second", ms_per_s, "ms"))
    rows.append(("market: engine calls per simulated second", calls_per_s, "calls"))
    ten = ("BTC", "ETH", *(f"ALT{i}" for i in range(1, 9)))
    for assets in (ten[:2], ten[:5], ten):
        ms_per_s, _ = market_cost(assets)
        rows.append((f"market: CPU per sim second, {len(assets)} assets", ms_per_s, "ms"))
    dialects: tuple[Dialect, ...] = ("spot", "usdm")
    for dialect in dialects:
        cost = replay_cost(dialect)
        if cost is not None:
            rows.append((f"replay: {dialect} BTCUSDT on_frame", cost, "ns/frame"))
    print(f"{'case':<45}{'median':>14}  unit")
    for name, value, unit in rows:
        print(f"{name:<45}{value:>14,.1f}  {unit}")
    out = Path(__file__).resolve().parent / "results" / "sim_engine.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "python": sys.version.split()[0],
        "runs": RUNS,
        "cases": [{"case": n, "median": v, "unit": u} for n, v, u in rows],
    }
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
