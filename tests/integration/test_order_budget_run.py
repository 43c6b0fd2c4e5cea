"""The default config trading live for a minute on the embedded simulator in the volatile regime,
Binance's rate limits enforced: the order budget keeps every venue answer free of limit errors.

(`bench/bench_order_budget.py` runs the same for ten minutes and reports what was deferred.)
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from pathlib import Path
from typing import Any

from mm_daemon.config import load_config
from mm_daemon.engine.daemon import Daemon

ROOT = Path(__file__).resolve().parents[2]
RUN_SECONDS = 60.0


async def test_a_minute_of_the_default_config_live_in_a_volatile_market_draws_no_limit_error(
    tmp_path: Path,
) -> None:
    environ = {
        "MMD_MODE": "live",
        "MMD_SIM__REGIME": "volatile",
        "MMD_METRICS__PORT": "0",
        "MMD_STATE__DIR": str(tmp_path),
        "MMD_LOGGING__LEVEL": "warning",
        "MMD_LOGGING__FORMAT": "json",
    }
    daemon = Daemon(load_config(ROOT / "config" / "default.yaml", environ))
    limiters: dict[str, Any] = {}

    async def keep_limiters() -> None:
        while True:
            if daemon.simulator is not None:
                limiters.update(
                    (name, venue.limiter) for name, venue in daemon.simulator.venues.items()
                )
            await asyncio.sleep(0.5)

    keeper = asyncio.get_running_loop().create_task(keep_limiters())
    with contextlib.redirect_stdout(io.StringIO()):
        exit_code = await daemon.run(RUN_SECONDS)
    keeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await keeper
    assert exit_code == 0
    assert set(limiters) == {"sim-spot", "sim-perp"}
    assert all(limiter is not None for limiter in limiters.values()), "limits are on by default"
    assert {name: dict(limiter.errors) for name, limiter in limiters.items()} == {
        "sim-spot": {},
        "sim-perp": {},
    }
    registry = daemon.metrics.registry
    rate_limited = [
        sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == "mm_order_rejects_total" and sample.labels["reason"] == "rate_limit"
    ]
    assert rate_limited
    assert sum(rate_limited) == 0
    sent = sum(
        sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == "mm_orders_total" and sample.labels["action"] in {"place", "replace"}
    )
    assert sent > 100, "the daemon hardly traded: the run says nothing of the limits"
