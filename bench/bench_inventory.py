"""Per-call cost of the inventory, attribution, markout and hedging core.

Prints a table of median ns per call over several runs and writes bench/results/inventory.json.
The exact (Fraction) fill booking is measured side by side with a float-only average-cost
update, in the same run, to show what exactness costs.
"""

from __future__ import annotations

import json
import platform
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from mm_daemon.config import HedgeRatioMode
from mm_daemon.core.hedging import HedgeParams, Hedger
from mm_daemon.core.instruments import BTC_USDT_PERP, BTC_USDT_SPOT
from mm_daemon.core.inventory import Ledger
from mm_daemon.core.markouts import MarkoutTracker
from mm_daemon.core.types import Fill, Liquidity, Side

RUNS = 7
S = 1_000_000_000

SPOT = BTC_USDT_SPOT
PERP = BTC_USDT_PERP


def fills(n: int) -> list[Fill]:
    rng = random.Random(1)
    out = []
    for i in range(n):
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        out.append(
            Fill(
                venue=SPOT.venue,
                symbol=SPOT.symbol,
                ts_exchange_ns=i,
                ts_local_ns=i,
                client_order_id="q-1",
                exchange_order_id=str(i),
                trade_id=str(i),
                side=side,
                price_ticks=6_000_000 + rng.randint(-500, 500),
                size_lots=rng.randint(100, 2_000),
                fee_quote=-0.0012,
                liquidity=Liquidity.MAKER,
            )
        )
    return out


def per_call_ns(setup: Callable[[], Callable[[], int]]) -> float:
    """Median over RUNS of ns per call; `setup` returns a runner that returns its call count."""
    results = []
    for _ in range(RUNS):
        runner = setup()
        start = time.perf_counter_ns()
        calls = runner()
        results.append((time.perf_counter_ns() - start) / calls)
    return statistics.median(results)


def bench_fill_exact() -> Callable[[], int]:
    events = fills(20_000)
    ledger = Ledger(SPOT)
    ledger.on_fair_value(SPOT.venue, SPOT.symbol, 60_000.015)

    def run() -> int:
        for event in events:
            ledger.on_fill(event)
        return len(events)

    return run


def bench_fill_float_baseline() -> Callable[[], int]:
    events = fills(20_000)
    tick, lot = SPOT.tick_size, SPOT.lot_size
    state = [0.0, 0.0, 0.0, 0.0]  # position, cost basis, realized, spread capture
    fair = 60_000.015

    def run() -> int:
        for event in events:
            price = event.price_ticks * tick
            delta = event.side * event.size_lots * lot
            held, cost = state[0], state[1]
            state[3] += delta * (fair - price)
            if held == 0 or (held > 0) == (delta > 0):
                state[1] = cost + delta * price
            elif abs(delta) <= abs(held):
                avg = cost / held
                state[2] -= delta * (price - avg)
                state[1] = cost + delta * avg
            else:
                avg = cost / held
                state[2] += held * (price - avg)
                state[1] = (held + delta) * price
            state[0] = held + delta
        return len(events)

    return run


def bench_fair_value_update() -> Callable[[], int]:
    ledger = Ledger(SPOT)
    values = [60_000.0 + i * 0.01 for i in range(50_000)]

    def run() -> int:
        for value in values:
            ledger.on_fair_value("sim-spot", "BTC/USDT", value)
        return len(values)

    return run


def bench_pnl_read() -> Callable[[], int]:
    ledger = Ledger(SPOT)
    ledger.add_instrument(PERP)
    for event in fills(1_000):
        ledger.on_fill(event)
    ledger.on_fair_value(SPOT.venue, SPOT.symbol, 60_010.123)
    ledger.on_fair_value(PERP.venue, PERP.symbol, 60_011.2)

    def run() -> int:
        for _ in range(2_000):
            ledger.pnl()
        return 2_000

    return run


def bench_markout_update() -> Callable[[], int]:
    tracker = MarkoutTracker()
    tracker.on_fair_value(0, 60_000.0)
    n = 50_000
    updates = [(i * S // 100, 60_000.0 + (i % 7) * 0.01) for i in range(1, n + 1)]

    def run() -> int:
        for i, (ts, value) in enumerate(updates):
            if i % 100 == 0:  # one maker fill a second at 100 fair values a second
                tracker.on_fill(ts, Side.BUY)
            tracker.on_fair_value(ts, value)
        return n

    return run


def bench_hedger_decide_idle() -> Callable[[], int]:
    hedger = Hedger(HedgeParams(threshold_base=0.02), PERP)
    hedger.on_touch(600_000, 600_001)

    def run() -> int:
        for i in range(50_000):
            hedger.decide(i, 0.01)
        return 50_000

    return run


def bench_hedger_beta_update() -> Callable[[], int]:
    hedger = Hedger(HedgeParams(ratio_mode=HedgeRatioMode.BETA), PERP)
    rng = random.Random(2)
    n = 50_000
    prices = [(i * S // 100, 60_000 + rng.random(), 60_010 + rng.random()) for i in range(n)]

    def run() -> int:
        for ts, maker, hedge in prices:
            hedger.on_fair_values(ts, maker, hedge)
        return n

    return run


def main() -> None:
    cases = {
        "ledger.on_fill (exact)": bench_fill_exact,
        "float average-cost baseline": bench_fill_float_baseline,
        "ledger.on_fair_value": bench_fair_value_update,
        "ledger.pnl() (2 instruments)": bench_pnl_read,
        "markouts.on_fair_value": bench_markout_update,
        "hedger.decide (below threshold)": bench_hedger_decide_idle,
        "hedger.on_fair_values (beta)": bench_hedger_beta_update,
    }
    results = {name: per_call_ns(setup) for name, setup in cases.items()}
    ratio = results["ledger.on_fill (exact)"] / results["float average-cost baseline"]
    width = max(len(name) for name in results)
    print(f"{'case':<{width}}  {'median ns/call':>14}")
    for name, value in results.items():
        print(f"{name:<{width}}  {value:>14,.0f}")
    print(f"exact fill booking / float baseline: {ratio:.1f}x")
    out = Path(__file__).parent / "results" / "inventory.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "runs": RUNS,
                "python": platform.python_version(),
                "median_ns_per_call": results,
                "exact_over_float_fill_ratio": ratio,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
