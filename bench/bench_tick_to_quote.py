"""In-process tick-to-quote: a book event's receipt to the order request handed to the Execution.

The real core path runs for every event: `MarketState.on_event` (book update, fair value,
volatility) -> `Quoter.quote` -> `OrderManager.set_desired` (diff against live orders, risk
gate, token bucket, metrics) -> `Execution.replace/place` called. The clock starts just before
the event is applied and stops when the first request is handed to the Execution (the
Execution records the time on entry). Events whose fair-value move stays inside the tolerance
produce no request; their cost (event to "nothing to do") is reported separately.

Two streams:
- synthetic: a seeded 1-tick-spread book whose touch steps 1-3 ticks every delta (about 10
  level changes a delta); the microprice moves on every event, so nearly every event ends in
  cancel-replaces;
- recorded: Binance BTCUSDT spot depth diffs and trades (the shared captures, when present),
  replayed in order; only the events that moved a quote by a tick or more hand requests.

The price tolerance is one tick (`price_tolerance_bps: 0`) so that book moves become requests;
with the default 0.5 bps most events end in "nothing to do", which the second row measures.

The event loop is uvloop; bookkeeping between events (acks of the new orders, confirmations of
the cancels, the loop turning over) runs outside the timed section. The token bucket is set
wide open: this measures the decision path, not the venue's limits.

The reaction seen by the simulator (the daemon over the wire against a plain ccxt.pro loop) is
bench/bench_reaction.py.

Usage: .venv/bin/python bench/bench_tick_to_quote.py [--events N] [--runs R]
Writes bench/results/tick_to_quote.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import gzip
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Coroutine, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import uvloop

from mm_daemon.core.instruments import BTC_USDT_SPOT
from mm_daemon.core.market_state import MarketState
from mm_daemon.core.quoting import MarketInputs, QuoteParams, Quoter
from mm_daemon.core.risk import RiskGate, RiskLimits
from mm_daemon.core.types import (
    BookDelta,
    BookSnapshot,
    MarketEvent,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Side,
    Trade,
)
from mm_daemon.engine.metrics import Metrics
from mm_daemon.engine.orders import OrderManager, OrderManagerSettings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "tick_to_quote.json"
TARGET_P50_US = 50.0
TARGET_P99_US = 250.0

INSTRUMENT = replace(BTC_USDT_SPOT, venue="bench")


def data_dir() -> Path | None:
    env = os.environ.get("MMD_DATA_DIR")
    path = Path(env) if env else ROOT.parent / "shared" / "data" / "binance"
    return path if (path / "spot").is_dir() else None


async def _noop() -> None:
    return None


class TimingExecution:
    """An Execution that records when a request is handed to it (on entry, before any I/O)."""

    venue = "bench"

    def __init__(self) -> None:
        self.first_request_ns = 0
        self.first_request_cpu_ns = 0
        self.requests: list[OrderRequest] = []
        self.cancels: list[str] = []

    def _mark(self) -> None:
        if not self.first_request_ns:
            self.first_request_ns = time.perf_counter_ns()
            self.first_request_cpu_ns = time.thread_time_ns()

    def place(self, request: OrderRequest) -> Coroutine[Any, Any, None]:
        self._mark()
        self.requests.append(request)
        return _noop()

    def replace(self, old_client_order_id: str, request: OrderRequest) -> Coroutine[Any, Any, None]:
        self._mark()
        self.cancels.append(old_client_order_id)
        self.requests.append(request)
        return _noop()

    def cancel(self, _symbol: str, client_order_id: str) -> Coroutine[Any, Any, None]:
        self._mark()
        self.cancels.append(client_order_id)
        return _noop()

    async def cancel_all(self, _symbol: str) -> None:
        return None

    async def open_orders(self, _symbol: str) -> list[OrderUpdate]:
        return []

    async def connect(self) -> None:
        return None

    async def run(self, _sink: Any) -> None:
        return None

    async def close(self) -> None:
        return None


def synthetic_events(n: int, seed: int = 11) -> Iterator[MarketEvent]:
    """A 1-tick-spread book whose touch steps 1-3 ticks per delta (levels leave one side and
    join the other), plus 6 size changes near the touch: about 10 level changes a delta, like
    the recorded spot diffs. The microprice moves every event."""
    rng = random.Random(seed)
    bid = 6_000_000
    depth = 50
    bids = {bid - i: rng.randint(1_000, 50_000) for i in range(depth)}
    asks = {bid + 1 + i: rng.randint(1_000, 50_000) for i in range(depth)}
    ts = 1_700_000_000_000_000_000
    yield BookSnapshot(
        "bench",
        "BTC/USDT",
        ts,
        ts,
        1,
        tuple(sorted(bids.items(), reverse=True)),
        tuple(sorted(asks.items())),
    )
    for i in range(n):
        ts += 1_000_000  # 1 ms apart in exchange time
        step = rng.choice((-3, -2, -1, 1, 2, 3))
        bid_changes: list[tuple[int, int]] = []
        ask_changes: list[tuple[int, int]] = []
        if step > 0:  # buyers lift the asks up to the new bid; new bids fill the gap
            for px in range(bid + 1, bid + step + 1):
                asks.pop(px, None)
                ask_changes.append((px, 0))
                bids[px] = rng.randint(1_000, 50_000)
                bid_changes.append((px, bids[px]))
        else:
            for px in range(bid + step + 1, bid + 1):
                bids.pop(px, None)
                bid_changes.append((px, 0))
                asks[px] = rng.randint(1_000, 50_000)
                ask_changes.append((px, asks[px]))
        bid += step
        for _ in range(3):
            px = bid - rng.randrange(0, 20)
            bids[px] = rng.randint(1_000, 50_000)
            bid_changes.append((px, bids[px]))
            px = bid + 1 + rng.randrange(0, 20)
            asks[px] = rng.randint(1_000, 50_000)
            ask_changes.append((px, asks[px]))
        yield BookDelta(
            "bench", "BTC/USDT", ts, ts, i + 2, i + 2, -1, tuple(bid_changes), tuple(ask_changes)
        )


def recorded_events(path: Path, limit: int) -> list[MarketEvent]:
    """BTCUSDT spot: the REST snapshot, then depth diffs and trades, as core events."""
    tick, lot = INSTRUMENT.tick_size, INSTRUMENT.lot_size
    events: list[MarketEvent] = []
    snapshot_id = -1
    with gzip.open(path, "rb") as fh:
        for raw in fh:
            local, _, payload = raw.partition(b" ")
            msg = orjson.loads(payload)
            ts = int(local)
            if "lastUpdateId" in msg:
                snapshot_id = msg["lastUpdateId"]
                events.append(
                    BookSnapshot(
                        "bench",
                        "BTC/USDT",
                        ts,
                        ts,
                        snapshot_id,
                        tuple(
                            (round(float(p) / tick), round(float(q) / lot)) for p, q in msg["bids"]
                        ),
                        tuple(
                            (round(float(p) / tick), round(float(q) / lot)) for p, q in msg["asks"]
                        ),
                    )
                )
                continue
            data = msg.get("data") or {}
            kind = data.get("e")
            if kind == "depthUpdate" and snapshot_id >= 0 and data["u"] > snapshot_id:
                events.append(
                    BookDelta(
                        "bench",
                        "BTC/USDT",
                        ts,
                        ts,
                        data["U"],
                        data["u"],
                        -1,
                        tuple(
                            (round(float(p) / tick), round(float(q) / lot)) for p, q in data["b"]
                        ),
                        tuple(
                            (round(float(p) / tick), round(float(q) / lot)) for p, q in data["a"]
                        ),
                    )
                )
            elif kind == "trade" and snapshot_id >= 0:
                events.append(
                    Trade(
                        "bench",
                        "BTC/USDT",
                        ts,
                        ts,
                        data["t"],
                        round(float(data["p"]) / tick),
                        round(float(data["q"]) / lot),
                        Side.SELL if data["m"] else Side.BUY,
                    )
                )
            if len(events) >= limit:
                break
    return events


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def run_stream(events: list[MarketEvent], tolerance_bps: float) -> dict[str, Any]:
    """Feed every event through the core path; returns latency samples in microseconds."""
    execution = TimingExecution()
    state = MarketState(INSTRUMENT, fair_value_model="microprice")
    quoter = Quoter(
        QuoteParams(
            model="linear_skew",
            order_size_base=0.01,
            lot_base=INSTRUMENT.lot_size,
            min_notional_quote=INSTRUMENT.min_notional_quote,
            tick_size=INSTRUMENT.tick_size,
            spread_bps=4.0,
            min_spread_bps=1.0,
            skew_bps_per_base=10.0,
            inventory_limit_base=0.1,
        )
    )
    risk = RiskGate(
        RiskLimits(
            max_open_orders_per_side=5,
            max_order_size_lots=10_000,
            price_band_bps=200.0,
            inventory_limit_base=0.1,
            max_drawdown_quote=1000.0,
        )
    )
    om = OrderManager(
        execution,  # type: ignore[arg-type]
        INSTRUMENT,
        OrderManagerSettings(
            price_tolerance_ticks=1,
            price_tolerance_bps=tolerance_bps,
            max_order_age_ns=3600 * 1_000_000_000,
        ),
        risk=risk,
        metrics=Metrics(),
        client_id_prefix="bench",
    )
    to_request: list[float] = []
    to_request_cpu: list[float] = []  # CPU time of this thread: the same path without preemption
    no_request: list[float] = []
    book_part: list[float] = []  # event applied, fair value and volatility updated
    quote_part: list[float] = []  # the quote model
    manager_part: list[float] = []  # order manager to the first request handed
    perf = time.perf_counter_ns
    wall = time.time_ns
    cpu = time.thread_time_ns
    for event in events:
        execution.first_request_ns = 0
        received_wall = wall()
        cpu0 = cpu()
        t0 = perf()
        state.on_event(event)
        t_book = perf()
        t_quote = t_book
        fv = state.fair_value_ticks
        if fv is not None and type(event) is not Trade:
            book = state.book
            market = MarketInputs(
                fv,
                book.best_bid_ticks,
                book.best_ask_ticks,
                state.volatility.value * fv,
                0.0,
                0.0,
                state.flow.value,
                state.stale,
            )
            quotes = quoter.quote(market, 0.0, received_wall)
            t_quote = perf()
            om.set_desired(quotes, fair_ticks=fv, net_exposure_base=0.0, event_ts_ns=received_wall)
        t1 = perf()
        if execution.first_request_ns:
            to_request.append((execution.first_request_ns - t0) / 1000.0)
            to_request_cpu.append((execution.first_request_cpu_ns - cpu0) / 1000.0)
            book_part.append((t_book - t0) / 1000.0)
            quote_part.append((t_quote - t_book) / 1000.0)
            manager_part.append((execution.first_request_ns - t_quote) / 1000.0)
        elif type(event) is not Trade:
            no_request.append((t1 - t0) / 1000.0)
        # Outside the timed section: the venue acknowledges and the loop turns over.
        for order in om.live_orders():
            if order.status is OrderStatus.PENDING_NEW:
                om.on_execution_event(_update(order.client_order_id, OrderStatus.OPEN, order.side))
            elif order.status is OrderStatus.PENDING_CANCEL:
                om.on_execution_event(
                    _update(order.client_order_id, OrderStatus.CANCELLED, order.side)
                )
        await om.drain()
        await asyncio.sleep(0)
    return {
        "to_request_us": to_request,
        "to_request_cpu_us": to_request_cpu,
        "no_request_us": no_request,
        "book_us": book_part,
        "quote_us": quote_part,
        "manager_us": manager_part,
    }


def _update(cid: str, status: OrderStatus, side: Side) -> OrderUpdate:
    return OrderUpdate("bench", "BTC/USDT", 0, 0, cid, "1", status, side, 1, 1, 0)


def summarize(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"count": 0, "p50_us": 0.0, "p99_us": 0.0, "mean_us": 0.0}
    return {
        "count": len(samples),
        "p50_us": round(statistics.median(samples), 2),
        "p99_us": round(_percentile(samples, 0.99), 2),
        "mean_us": round(statistics.fmean(samples), 2),
    }


def _median_of_runs(summaries: list[dict[str, float]]) -> dict[str, float]:
    return {
        key: round(statistics.median(s[key] for s in summaries), 2)
        for key in ("count", "p50_us", "p99_us", "mean_us")
    }


async def main_async(n_events: int, runs: int) -> dict[str, Any]:
    streams: dict[str, list[MarketEvent]] = {"synthetic": list(synthetic_events(n_events))}
    data = data_dir()
    if data is not None:
        streams["recorded BTCUSDT spot"] = recorded_events(
            data / "spot" / "btcusdt_20240808.gz", n_events * 4
        )
    # The event lists are the bench's own baggage (a daemon holds one event at a time): move them
    # out of the collector's way, as a daemon freezes its startup objects.
    gc.collect()
    gc.freeze()
    results: dict[str, Any] = {}
    for name, events in streams.items():
        per_run = [await run_stream(events, tolerance_bps=0.0) for _ in range(runs)]
        results[name] = {
            "events": len(events),
            # Each statistic is the median over runs of that run's statistic.
            "to_request": _median_of_runs([summarize(r["to_request_us"]) for r in per_run]),
            "to_request_cpu": _median_of_runs([summarize(r["to_request_cpu_us"]) for r in per_run]),
            "no_request": _median_of_runs([summarize(r["no_request_us"]) for r in per_run]),
            "to_request_parts_p50_us": {
                part: round(
                    statistics.median(statistics.median(r[f"{part}_us"] or [0.0]) for r in per_run),
                    2,
                )
                for part in ("book", "quote", "manager")
            },
            "runs": [
                {
                    "p50_us": summarize(r["to_request_us"])["p50_us"],
                    "p99_us": summarize(r["to_request_us"])["p99_us"],
                }
                for r in per_run
            ],
        }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    load_at_start = round(os.getloadavg()[0], 2)
    print(f"load average (1 min) at start: {load_at_start} on {os.cpu_count()} cores")
    results = uvloop.run(main_async(args.events, args.runs))
    rows = []
    for name, r in results.items():
        for label, key in (
            ("event -> request", "to_request"),
            ("  same, thread CPU", "to_request_cpu"),
            ("event -> no action", "no_request"),
        ):
            s = r[key]
            if not s["count"]:
                continue
            rows.append((name, label, s["count"], s["p50_us"], s["p99_us"], s["mean_us"]))
    print(f"{'stream':24} {'path':20} {'count':>8} {'p50 us':>8} {'p99 us':>8} {'mean us':>8}")
    for row in rows:
        print(f"{row[0]:24} {row[1]:20} {row[2]:>8} {row[3]:>8} {row[4]:>8} {row[5]:>8}")
    for name, r in results.items():
        parts = r["to_request_parts_p50_us"]
        print(
            f"{name}: p50 of the parts of event -> request: book + fair value "
            f"{parts['book']} us, quote {parts['quote']} us, order manager {parts['manager']} us"
        )
    synthetic = results["synthetic"]["to_request"]
    ok = synthetic["p50_us"] <= TARGET_P50_US and synthetic["p99_us"] <= TARGET_P99_US
    print(
        f"targets p50 <= {TARGET_P50_US:g} us, p99 <= {TARGET_P99_US:g} us (synthetic): "
        f"{'met' if ok else 'NOT met'}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "tick_to_quote",
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "events_per_stream": args.events,
                "runs": args.runs,
                "targets_us": {"p50": TARGET_P50_US, "p99": TARGET_P99_US},
                "targets_met": ok,
                "load_average_1m_at_start": load_at_start,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
