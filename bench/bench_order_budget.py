"""The default config trading live on the embedded simulator in the volatile regime, with
Binance's rate limits enforced by the simulator: does the daemon's order budget keep every venue
answer free of limit errors, and what does it defer to do so?

The daemon runs in-process (`Daemon`, `config/default.yaml` with `mode: live` and
`sim.regime: volatile` from the environment, as a user would override them), for `--seconds`
(default 600). Every second the budget gauges are read; at the end the counters. Reported: order
actions sent, the simulator's limit errors (its own count of -1015/-1003/418 answers), the
daemon's rate-limit rejects, actions deferred by priority, and the peak use of each window
against its limit.

Usage: .venv/bin/python bench/bench_order_budget.py [--seconds S]
Writes bench/results/order_budget.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from mm_daemon.config import load_config
from mm_daemon.engine.daemon import Daemon
from mm_daemon.log import configure_logging

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "order_budget.json"


def _samples(registry: Any, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (dict(sample.labels), sample.value)
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == name
    ]


async def _run(seconds: float, state_dir: str) -> dict[str, Any]:
    environ = {
        "MMD_MODE": "live",
        "MMD_SIM__REGIME": "volatile",
        "MMD_METRICS__PORT": "0",
        "MMD_STATE__DIR": state_dir,
        "MMD_LOGGING__LEVEL": "warning",
        "MMD_LOGGING__FORMAT": "json",
    }
    config = load_config(ROOT / "config" / "default.yaml", environ)
    configure_logging("warning", "json")
    daemon = Daemon(config)
    peaks: dict[tuple[str, str], float] = {}
    limits: dict[tuple[str, str], float] = {}
    limiters: dict[str, Any] = {}

    async def watch() -> None:
        while True:
            await asyncio.sleep(1.0)
            if daemon.simulator is not None:
                for name, venue in daemon.simulator.venues.items():
                    if venue.limiter is not None:
                        limiters[name] = venue.limiter
            registry = daemon.metrics.registry
            for labels, value in _samples(registry, "mm_order_budget_used"):
                key = (labels["venue"], labels["window"])
                peaks[key] = max(peaks.get(key, 0.0), value)
            for labels, value in _samples(registry, "mm_order_budget_limit"):
                limits[(labels["venue"], labels["window"])] = value

    watcher = asyncio.get_running_loop().create_task(watch())
    started = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()):  # the run summary is not the point here
        exit_code = await daemon.run(seconds)
    elapsed = time.monotonic() - started
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    registry = daemon.metrics.registry
    orders: dict[str, float] = {}
    for labels, value in _samples(registry, "mm_orders_total"):
        orders[labels["action"]] = orders.get(labels["action"], 0.0) + value
    return {
        "exit_code": exit_code,
        "seconds": round(elapsed, 1),
        "orders_by_action": orders,
        "hedge_orders": sum(v for _, v in _samples(registry, "mm_hedge_orders_total")),
        "fills": sum(v for _, v in _samples(registry, "mm_fills_total")),
        "simulator_limit_errors": {
            name: dict(limiter.errors) for name, limiter in sorted(limiters.items())
        },
        "rate_limit_rejects": {
            labels["venue"]: value
            for labels, value in _samples(registry, "mm_order_rejects_total")
            if labels["reason"] == "rate_limit"
        },
        "deferred": {
            f"{labels['venue']} {labels['priority']}": value
            for labels, value in _samples(registry, "mm_order_actions_deferred_total")
        },
        "peak_use": {
            f"{venue} {window}": {"peak": peaks.get((venue, window), 0.0), "limit": limit}
            for (venue, window), limit in sorted(limits.items())
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="how long the daemon runs")
    args = parser.parse_args()
    load_at_start = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="mmd-budget-") as state_dir:
        result = uvloop.run(_run(args.seconds, state_dir))
    print(
        f"default config, live on the embedded simulator, volatile regime, Binance's limits "
        f"enforced: {result['seconds']} s (load average at start {load_at_start})"
    )
    print(f"{'what':40} {'value':>14}")
    for action, count in sorted(result["orders_by_action"].items()):
        print(f"{'orders: ' + action:40} {count:>14.0f}")
    print(f"{'hedge orders':40} {result['hedge_orders']:>14.0f}")
    print(f"{'fills':40} {result['fills']:>14.0f}")
    errors = sum(sum(kinds.values()) for kinds in result["simulator_limit_errors"].values())
    print(f"{'simulator limit errors (all venues)':40} {errors:>14}")
    rejects = sum(result["rate_limit_rejects"].values())
    print(f"{'daemon rate-limit rejects':40} {rejects:>14.0f}")
    for key, value in sorted(result["deferred"].items()):
        print(f"{'deferred: ' + key:40} {value:>14.0f}")
    for key, use in result["peak_use"].items():
        print(f"{'peak use: ' + key:40} {use['peak']:>7.0f} / {use['limit']:<6.0f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "order_budget",
                "command": "bench/bench_order_budget.py " + " ".join(sys.argv[1:]),
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "load_average_1m_at_start": load_at_start,
                **result,
            },
            indent=2,
        )
        + "\n"
    )
    return 0 if errors == 0 and rejects == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
