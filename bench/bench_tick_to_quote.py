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

A second part measures the reaction seen by the simulator (see the section further down): the
real daemon against a plain ccxt.pro loop at 2,500 book messages a second.

Usage: .venv/bin/python bench/bench_tick_to_quote.py [--events N] [--runs R]
       [--reaction-seconds S (0: skip the reaction part)] [--gc-freeze]
Writes bench/results/tick_to_quote.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import gzip
import io
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import orjson
import uvloop

from mm_daemon.core.market_state import MarketState
from mm_daemon.core.quoting import MarketInputs, QuoteParams, Quoter
from mm_daemon.core.risk import RiskGate, RiskLimits
from mm_daemon.core.types import (
    BookDelta,
    BookSnapshot,
    Instrument,
    InstrumentKind,
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

INSTRUMENT = Instrument(
    "bench",
    "BTC/USDT",
    "BTCUSDT",
    InstrumentKind.SPOT,
    "BTC",
    "USDT",
    tick_size=0.01,
    lot_size=0.00001,
    min_notional_quote=5.0,
    maker_fee_rate=0.0,
    taker_fee_rate=0.0004,
)


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
            rate_limit_orders_per_second=1e9,
            rate_limit_burst_orders=1_000_000,
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


# -- reaction at the simulator: the daemon against a plain ccxt.pro loop -----------------------
#
# Three roles, each its own process (`--role sim|daemon|plain`), so the simulator does not share
# a core's event loop with the contender it measures:
# - sim: the simulator with its synthetic market frozen (speed 0) and a mover that sends
#   REACTION_RATE book messages a second: deep background orders placed and cancelled, and every
#   REACTION_MOVE_INTERVAL_S a move: a market order sweeping the touch REACTION_MOVE_TICKS away
#   (fair value jumps past the contenders' tolerance), then a sparse refill of the gap. It logs
#   each move's time and the arrival time of every order action of a client account.
# - daemon: the real daemon (`Daemon`, live mode) pointed at the simulator's URL.
# - plain: a plain ccxt.pro loop: watch_order_book, mid +/- half spread, and on a move past the
#   tolerance REST cancel_order + create_order for both sides (rate limiter off).
# Both read the same 0 ms diff-depth stream (`@depth@0ms`: one message per book change), quote
# the same spread with the same tolerance, and run one after the other against the same mover.
# Reaction = a move's time to the first order action of that contender arriving at the simulator.

REACTION_RATE = 2_500  # book messages a second (the recorded real peak)
REACTION_MOVE_INTERVAL_S = 0.2
REACTION_MOVE_TICKS = 1_200  # 12 USDT = 2 bps: past the 0.5 bps tolerance, inside 5 bps quotes
REACTION_SPREAD_BPS = 10.0
REACTION_TOLERANCE_BPS = 0.5
REACTION_WARMUP_S = 5.0
DAEMON_KEY = "bench-daemon-key"
PLAIN_KEY = "bench-plain-key"


async def _sim_role() -> dict[str, Any]:
    from collections import deque  # noqa: PLC0415  only the simulator role needs these

    from mm_daemon.config import SimConfig  # noqa: PLC0415
    from mm_daemon.core.types import OrderType  # noqa: PLC0415
    from mm_daemon.sim.matching import BACKGROUND_API_KEY  # noqa: PLC0415
    from mm_daemon.sim.runner import start_simulator  # noqa: PLC0415
    from mm_daemon.sim.venue import SimVenue  # noqa: PLC0415

    arrivals: list[tuple[str, int]] = []

    def log_arrivals(name: str) -> None:
        original = getattr(SimVenue, name)

        def wrapped(self: Any, sym: Any, api_key: str, *args: Any, **kwargs: Any) -> Any:
            if api_key != BACKGROUND_API_KEY:
                arrivals.append((api_key, time.time_ns()))
            return original(self, sym, api_key, *args, **kwargs)

        setattr(SimVenue, name, wrapped)

    for name in ("submit", "cancel", "cancel_replace", "cancel_all", "modify"):
        log_arrivals(name)
    handle = await start_simulator(
        SimConfig(seed=7, starting_base=10.0, starting_quote=1_000_000.0), market_speed=0.0
    )
    venue = handle.venues["sim-spot"]
    sym = venue.symbols["BTCUSDT"]
    engine = sym.engine
    endpoint = handle.endpoint("sim-spot")
    print(json.dumps({"rest": endpoint.rest, "ws": endpoint.ws}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    rng = random.Random(3)
    moves: list[int] = []
    noise: deque[int] = deque()
    sent = 0

    def bg(side: Side, order_type: OrderType, size: int, price: int) -> Any:
        nonlocal sent
        sent += 1
        return venue.submit(
            sym,
            BACKGROUND_API_KEY,
            side=side,
            order_type=order_type,
            size_lots=size,
            price_ticks=price,
            client_order_id=None,
            reduce_only=False,
        )

    async def move(up: bool) -> None:
        bids, asks, _ = engine.depth(100_000)
        if up:
            start_px = asks[0][0]
            target = start_px + REACTION_MOVE_TICKS
            size = sum(sz for px, sz in asks if px < target)
            moves.append(time.time_ns())
            bg(Side.BUY, OrderType.MARKET, size, 0)
            for px in range(target - 1, start_px - 1, -100):
                await asyncio.sleep(0)  # let requests in between, as a venue's gateway would
                bg(Side.BUY, OrderType.LIMIT, 20_000, px)
        else:
            start_px = bids[0][0]
            target = start_px - REACTION_MOVE_TICKS
            size = sum(sz for px, sz in bids if px > target)
            moves.append(time.time_ns())
            bg(Side.SELL, OrderType.MARKET, size, 0)
            for px in range(target + 1, start_px + 1, 100):
                await asyncio.sleep(0)
                bg(Side.SELL, OrderType.LIMIT, 20_000, px)

    def noise_message() -> None:
        nonlocal sent
        if len(noise) > 200 and rng.random() < 0.5:
            order_id = noise.popleft()
            sent += 1
            venue.cancel(sym, BACKGROUND_API_KEY, order_id, None)
            return
        best = engine.best_bid()
        anchor = best[0] if best else 6_000_000
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        offset = rng.randint(5_000, 8_000)
        price = anchor - offset if side is Side.BUY else anchor + offset
        result = bg(side, OrderType.LIMIT, rng.randint(1_000, 30_000), price)
        if result.order_id is not None:
            noise.append(result.order_id)

    started = time.perf_counter()
    next_move = started + REACTION_MOVE_INTERVAL_S
    up = True
    while not stop.is_set():
        now = time.perf_counter()
        if now >= next_move:
            await move(up)
            up = not up
            next_move += REACTION_MOVE_INTERVAL_S
        due = int((now - started) * REACTION_RATE) - sent
        for _ in range(max(0, min(due, 100))):
            noise_message()
            await asyncio.sleep(0)
        await asyncio.sleep(0.0005)
    elapsed = time.perf_counter() - started
    await handle.stop()
    return {"moves": moves, "arrivals": arrivals, "messages": sent, "seconds": elapsed}


def _daemon_role(rest: str, seconds: float, *, gc_freeze: bool = False) -> dict[str, Any]:
    import mm_daemon.venues.binance_native as native  # noqa: PLC0415
    from mm_daemon.config import parse_config  # noqa: PLC0415
    from mm_daemon.engine.daemon import Daemon  # noqa: PLC0415
    from mm_daemon.log import configure_logging  # noqa: PLC0415

    native.DEPTH_RATE = "0ms"  # the same one-message-per-change stream as the plain loop
    config = parse_config(
        {
            "mode": "live",
            "venues": {
                "maker": {
                    "name": "sim-spot",
                    "exchange": "binance",
                    "symbol": "BTC/USDT",
                    "endpoint": rest,
                    "maker_fee_bps": 0.0,
                    "taker_fee_bps": 4.0,
                    "rate_limit_orders_per_second": 200.0,
                    "rate_limit_burst_orders": 100,
                }
            },
            "market_data": {"fair_value": "mid"},
            "quoting": {
                "model": "fixed",
                "spread_bps": REACTION_SPREAD_BPS,
                "order_size_base": 0.01,
                "price_tolerance_bps": REACTION_TOLERANCE_BPS,
            },
            "inventory": {"limit_base": 0.5},
            "hedging": {"mode": "off"},
            "metrics": {"port": 0},
            "logging": {"level": "warning", "format": "json"},
        },
        environ={
            "MMD_VENUES__MAKER__API_KEY": DAEMON_KEY,
            "MMD_VENUES__MAKER__API_SECRET": DAEMON_KEY,
        },
    )
    configure_logging("warning", "json")
    if gc_freeze:
        import ccxt.pro  # noqa: F401, PLC0415  loaded now so that the freeze covers it

        gc.collect()
        gc.freeze()
    # When each order action is handed to the execution (splits the reaction in two).
    from mm_daemon.venues.ccxt_execution import CcxtExecution  # noqa: PLC0415

    handed: list[int] = []
    for name in ("place", "replace", "cancel"):
        original = getattr(CcxtExecution, name)

        def timed(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            handed.append(time.time_ns())
            return _original(*args, **kwargs)

        setattr(CcxtExecution, name, timed)
    daemon = Daemon(config)
    with contextlib.redirect_stdout(io.StringIO()):  # the run summary is not benchmarked
        uvloop.run(daemon.run(seconds))
    # The daemon's own tick-to-quote histogram: event receipt to request handed to ccxt.
    registry = daemon.metrics.registry
    histogram = {
        sample.labels["le"]: sample.value
        for metric in registry.collect()
        if metric.name == "mm_tick_to_quote_seconds"
        for sample in metric.samples
        if sample.name.endswith("_bucket")
    }
    return {"tick_to_quote_histogram": histogram, "handed": handed}


async def _plain_role(rest: str, ws: str, seconds: float) -> None:
    from mm_daemon.venues.endpoints import make_ccxt_exchange  # noqa: PLC0415

    exchange = make_ccxt_exchange("binance-spot", rest, ws, PLAIN_KEY, PLAIN_KEY)
    exchange.options["watchOrderBookRate"] = "0"  # `@depth@0ms`, as the daemon reads
    symbol = "BTC/USDT"
    try:
        await exchange.load_markets()
        ids: list[str] = []
        quoted_mid: float | None = None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            book = await exchange.watch_order_book(symbol)
            if not book["bids"] or not book["asks"]:
                continue
            mid = (book["bids"][0][0] + book["asks"][0][0]) / 2
            if (
                quoted_mid is not None
                and abs(mid - quoted_mid) < mid * REACTION_TOLERANCE_BPS * 1e-4
            ):
                continue
            for order_id in ids:
                try:
                    await exchange.cancel_order(order_id, symbol)
                except Exception:  # noqa: BLE001, S112  already filled or gone: quote anyway
                    continue
            half = mid * REACTION_SPREAD_BPS / 2 * 1e-4
            bid = await exchange.create_order(
                symbol, "limit", "buy", 0.01, round(mid - half - 0.005, 2), {"postOnly": True}
            )
            ask = await exchange.create_order(
                symbol, "limit", "sell", 0.01, round(mid + half + 0.005, 2), {"postOnly": True}
            )
            ids = [bid["id"], ask["id"]]
            quoted_mid = mid
        for order_id in ids:
            with contextlib.suppress(Exception):
                await exchange.cancel_order(order_id, symbol)
    finally:
        await exchange.close()


def _reactions_us(
    moves: list[int], arrivals: list[tuple[str, int]], key: str, window: tuple[int, int]
) -> list[float]:
    """For each move inside `window`, the time to the key's first order action after it."""
    times = sorted(ts for k, ts in arrivals if k == key)
    out: list[float] = []
    j = 0
    for i, move_ns in enumerate(moves):
        if not window[0] <= move_ns <= window[1]:
            continue
        next_move = moves[i + 1] if i + 1 < len(moves) else window[1]
        while j < len(times) and times[j] < move_ns:
            j += 1
        if j < len(times) and times[j] < next_move:
            out.append((times[j] - move_ns) / 1000.0)
    return out


def reaction_benchmark(seconds: float, *, gc_freeze: bool = False) -> dict[str, Any]:
    """Run the simulator, then the daemon, then the plain loop; pair moves with arrivals."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sim.json"
        me = str(Path(__file__).resolve())
        sim = subprocess.Popen(
            [sys.executable, me, "--role", "sim", "--out", str(out)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert sim.stdout is not None  # noqa: S101  stdout is a pipe
            endpoint = json.loads(sim.stdout.readline())
            windows: dict[str, tuple[int, int]] = {}
            for role, key in (("daemon", DAEMON_KEY), ("plain", PLAIN_KEY)):
                start = time.time_ns()
                subprocess.run(
                    [
                        sys.executable,
                        me,
                        "--role",
                        role,
                        "--rest",
                        endpoint["rest"],
                        "--ws",
                        endpoint["ws"],
                        "--seconds",
                        str(seconds),
                        "--out",
                        str(Path(tmp) / f"{role}.json"),
                        *(["--gc-freeze"] if gc_freeze else []),
                    ],
                    check=True,
                    timeout=seconds + 60,
                )
                windows[key] = (
                    start + int(REACTION_WARMUP_S * 1e9),
                    time.time_ns() - 2_000_000_000,
                )
        finally:
            sim.send_signal(signal.SIGTERM)
            sim.wait(timeout=30)
        data = json.loads(out.read_text())
        daemon_log = json.loads((Path(tmp) / "daemon.json").read_text())
    result: dict[str, Any] = {
        "message_rate_per_s": round(data["messages"] / data["seconds"]),
        "moves": len(data["moves"]),
    }
    for name, key in (("daemon", DAEMON_KEY), ("plain ccxt.pro loop", PLAIN_KEY)):
        samples = _reactions_us(data["moves"], data["arrivals"], key, windows[key])
        result[name] = summarize(samples)
    result["daemon_tick_to_quote_histogram"] = daemon_log["tick_to_quote_histogram"]
    # The daemon's reaction in two: move -> action handed to ccxt (market data delivery and
    # the daemon's decision), handed -> arrival (ccxt's WS-API send and the simulator's intake).
    handed = [("handed", ts) for ts in daemon_log["handed"]]
    to_handed = _reactions_us(data["moves"], handed, "handed", windows[DAEMON_KEY])
    result["daemon move -> handed to ccxt"] = summarize(to_handed)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--reaction-seconds",
        type=float,
        default=25.0,
        help="length of each contender's run at the simulator (0 skips the reaction part)",
    )
    parser.add_argument("--role", choices=("sim", "daemon", "plain"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--rest", help=argparse.SUPPRESS)
    parser.add_argument("--ws", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="reaction part: freeze the daemon's startup heap out of the collector's way",
    )
    args = parser.parse_args()
    if args.role == "sim":
        Path(args.out).write_text(json.dumps(uvloop.run(_sim_role())))
        return 0
    if args.role == "daemon":
        daemon_log = _daemon_role(args.rest, args.seconds, gc_freeze=args.gc_freeze)
        if args.out:
            Path(args.out).write_text(json.dumps(daemon_log))
        return 0
    if args.role == "plain":
        uvloop.run(_plain_role(args.rest, args.ws, args.seconds))
        return 0
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
    reaction: dict[str, Any] | None = None
    if args.reaction_seconds > 0:
        reaction = reaction_benchmark(args.reaction_seconds, gc_freeze=args.gc_freeze)
        print(
            f"reaction at the simulator ({reaction['message_rate_per_s']} msg/s, "
            f"{reaction['moves']} moves): move sent -> first order action arriving"
        )
        print(f"{'contender':30} {'count':>8} {'p50 us':>9} {'p99 us':>9} {'mean us':>9}")
        for name in ("daemon", "daemon move -> handed to ccxt", "plain ccxt.pro loop"):
            r = reaction[name]
            print(f"{name:30} {r['count']:>8} {r['p50_us']:>9} {r['p99_us']:>9} {r['mean_us']:>9}")
        daemon_p50 = reaction["daemon"]["p50_us"]
        plain_p50 = reaction["plain ccxt.pro loop"]["p50_us"]
        if daemon_p50 > 0:
            reaction["plain_over_daemon_p50"] = round(plain_p50 / daemon_p50, 2)
            print(f"plain loop p50 / daemon p50: {reaction['plain_over_daemon_p50']}x")
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
                "reaction_at_simulator": reaction,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
