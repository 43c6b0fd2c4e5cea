"""Reaction at the simulator: a book update that moves fair value past the tolerance, to the
first order action of the contender arriving at the simulator, at 2,500 book messages a second,
in two scenarios run side by side:
- quiet: the book moves 3 bps 2.5 times a second and every contender quotes +/-5 bps, so no move
  reaches a quote (nothing fills);
- filling: the same moves, every contender quotes +/-1 bp, so each move carries the book
  through one quote (it fills) and leaves the other stale, as a real market does to a market
  maker. The simulator enforces Binance's limits (100 unfilled orders per 10 s, ...), and the
  daemon spends its venue budget as on Binance.

Contenders, one after the other against the same simulator process in one run:
- daemon, native: the real daemon (`Daemon`, live mode, its startup heap frozen as it does)
  with `order_entry: native` (signed WS-API requests written on the caller's stack);
- daemon, native, busy poll: the same with `runtime.busy_poll`;
- daemon, ccxt: the same daemon with `order_entry: ccxt` (ccxt.pro's WS-API calls);
- plain ccxt.pro loop: watch_order_book -> mid +/- half spread -> REST cancel_order +
  create_order for both sides (rate limiter off).

Roles run as separate processes (`--role sim|daemon|plain`), so the simulator does not share an
event loop with the contender it measures, and (unless `--no-pin`) on one core each. The
simulator's synthetic market is frozen (speed 0); a mover sends REACTION_RATE book messages a
second (deep background orders placed and cancelled) and every REACTION_MOVE_INTERVAL_S a sweep
of the touch REACTION_MOVE_TICKS away, then a sparse refill. It logs when each sweep is sent and
when its result is published (matched, frames queued: the book update the reaction starts
from), and the arrival time of every order action of a client account where its venue takes
the request; for the native daemons also the simulator's socket read and WS-API handler start
of that request. Every contender reads the same 0 ms diff-depth stream (one message per book
change) and quotes the same spread with the same tolerance.

Usage: .venv/bin/python bench/bench_reaction.py [--seconds S] [--rounds R] [--no-pin]
       [--only native,native-busy,...] [--scenarios quiet,filling] [--sim-busy-poll]
Writes bench/results/reaction.json.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import io
import itertools
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
from pathlib import Path
from typing import Any

import uvloop

from mm_daemon.core.types import Side

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "reaction.json"

REACTION_RATE = 2_500  # book messages a second (the recorded real peak)
REACTION_MOVE_INTERVAL_S = 0.4  # 2.5 moves a second
REACTION_MOVE_TICKS = 1_800  # 18 USDT = 3 bps: past the 0.5 bps tolerance
SCENARIOS = {
    "quiet": 10.0,  # quotes +/-5 bps: a 3 bps move reaches none
    "filling": 2.0,  # quotes +/-1 bp: each move sweeps through one quote
}
"""Scenario -> the spread (bps) every contender quotes."""
REACTION_TOLERANCE_BPS = 0.5
REACTION_WARMUP_S = 5.0
NATIVE_KEY = "bench-daemon-native-key"
CCXT_KEY = "bench-daemon-ccxt-key"
BUSY_KEY = "bench-daemon-native-busy-key"
PLAIN_KEY = "bench-plain-key"
TARGET_P50_US = 1_000.0
TARGET_P99_US = 5_000.0
TARGET_RATIO = 2.0
TARGET_FILLING_OVER_QUIET = 2.0  # the reaction when moves fill quotes, against when none does

CONTENDERS = (
    ("daemon, native WS-API", "native", NATIVE_KEY),
    ("daemon, native WS-API, busy poll", "native-busy", BUSY_KEY),
    ("daemon, ccxt WS-API", "ccxt", CCXT_KEY),
    ("plain ccxt.pro loop", "plain", PLAIN_KEY),
)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summarize(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"count": 0, "p50_us": 0.0, "p99_us": 0.0, "mean_us": 0.0}
    return {
        "count": len(samples),
        "p50_us": round(statistics.median(samples), 2),
        "p99_us": round(_percentile(samples, 0.99), 2),
        "mean_us": round(statistics.fmean(samples), 2),
    }


async def _sim_role(*, busy_poll: bool = False) -> dict[str, Any]:
    from collections import deque  # noqa: PLC0415  only the simulator role needs these

    from aiohttp.web_protocol import RequestHandler  # noqa: PLC0415

    from mm_daemon.config import SimConfig  # noqa: PLC0415
    from mm_daemon.core.types import OrderType  # noqa: PLC0415
    from mm_daemon.sim.binance import spot, streams  # noqa: PLC0415
    from mm_daemon.sim.matching import BACKGROUND_API_KEY  # noqa: PLC0415
    from mm_daemon.sim.runner import start_simulator  # noqa: PLC0415
    from mm_daemon.sim.venue import SimVenue  # noqa: PLC0415

    arrivals: list[tuple[str, int]] = []
    # Hops inside the simulator, for each arrival: socket data handed to aiohttp's protocol
    # (the loop's read of the request), and the WS-API handler starting on the message.
    hops: list[tuple[str, int, int, int]] = []
    last_rx: dict[int, int] = {}
    current = [0, 0]
    original_rx = RequestHandler.data_received

    def data_received(self: Any, data: bytes) -> None:
        last_rx[id(self)] = time.time_ns()
        original_rx(self, data)

    RequestHandler.data_received = data_received  # type: ignore[method-assign]
    original_handle = spot._WsApiSession.handle

    def handle(self: Any, text: str) -> None:
        current[0] = last_rx.get(id(self.ws._req.protocol), 0)
        current[1] = time.time_ns()
        original_handle(self, text)
        current[0] = current[1] = 0

    spot._WsApiSession.handle = handle  # type: ignore[method-assign]

    def log_arrivals(name: str) -> None:
        original = getattr(SimVenue, name)

        def wrapped(self: Any, sym: Any, api_key: str, *args: Any, **kwargs: Any) -> Any:
            if api_key != BACKGROUND_API_KEY:
                now = time.time_ns()
                arrivals.append((api_key, now))
                hops.append((api_key, now, current[0], current[1]))
            return original(self, sym, api_key, *args, **kwargs)

        setattr(SimVenue, name, wrapped)

    for name in ("submit", "cancel", "cancel_replace", "cancel_all", "modify"):
        log_arrivals(name)

    # When the simulator hands market-data bytes to a socket: every stream connection's
    # transport is wrapped (the transport classes take no attributes of their own).
    writes: list[int] = []

    class _StampedTransport:
        def __init__(self, transport: Any) -> None:
            self._transport = transport

        def write(self, data: bytes) -> None:
            writes.append(time.time_ns())
            self._transport.write(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._transport, name)

    original_conn_init = streams.Connection.__init__

    def conn_init(self: Any, ws: Any, transport: Any, **kwargs: Any) -> None:
        wrapped = None if transport is None else _StampedTransport(transport)
        original_conn_init(self, ws, wrapped, **kwargs)

    streams.Connection.__init__ = conn_init  # type: ignore[method-assign]
    handle = await start_simulator(
        SimConfig(seed=7, starting_base=10.0, starting_quote=1_000_000.0, assets=("BTC",)),
        market_speed=0.0,
    )
    if busy_poll:  # the simulator's loop polls instead of sleeping (`--sim-busy-poll`)
        from mm_daemon.engine.runtime import BusyPoll  # noqa: PLC0415

        BusyPoll(asyncio.get_running_loop()).start()
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
    published: list[int] = []  # the sweep matched and its frames queued: the book update
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
            published.append(time.time_ns())
            for px in range(target - 1, start_px - 1, -100):
                await asyncio.sleep(0)  # let requests in between, as a venue's gateway would
                bg(Side.BUY, OrderType.LIMIT, 20_000, px)
        else:
            start_px = bids[0][0]
            target = start_px - REACTION_MOVE_TICKS
            size = sum(sz for px, sz in bids if px > target)
            moves.append(time.time_ns())
            bg(Side.SELL, OrderType.MARKET, size, 0)
            published.append(time.time_ns())
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
        # 1 ms: uvloop's timers have millisecond resolution and round 0.5 ms down to 0, which
        # made this loop spin and hold a core of the two the contenders run on.
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - started
    await handle.stop()
    return {
        "moves": moves,
        "published": published,
        "arrivals": arrivals,
        "hops": hops,
        "writes": writes,
        "messages": sent,
        "seconds": elapsed,
    }


def _daemon_role(rest: str, seconds: float, order_entry: str, spread_bps: float) -> dict[str, Any]:
    from mm_daemon.binance import markets  # noqa: PLC0415
    from mm_daemon.config import parse_config  # noqa: PLC0415
    from mm_daemon.engine.daemon import Daemon  # noqa: PLC0415
    from mm_daemon.log import configure_logging  # noqa: PLC0415
    from mm_daemon.venues.binance_ws_api import BinanceWsApiExecution  # noqa: PLC0415
    from mm_daemon.venues.ccxt_execution import CcxtExecution  # noqa: PLC0415

    markets.DEPTH_RATE = "0ms"  # the same one-message-per-change stream as the plain loop
    from mm_daemon.venues import binance_stream, websocket  # noqa: PLC0415

    key = {
        "native": NATIVE_KEY,
        "native-busy": BUSY_KEY,
        "ccxt": CCXT_KEY,
    }[order_entry]
    busy_poll = order_entry == "native-busy"
    if busy_poll:
        order_entry = "native"
    config = parse_config(
        {
            "mode": "live",
            "venues": {
                "sim-spot": {
                    "exchange": "binance",
                    "endpoint": rest,
                    "maker_fee_bps": 0.0,
                    "taker_fee_bps": 4.0,
                    "order_entry": order_entry,
                }
            },
            "markets": [{"venue": "sim-spot", "symbol": "BTC/USDT"}],
            "market_data": {"fair_value": "mid"},
            "quoting": {
                "model": "fixed",
                "spread_bps": spread_bps,
                "min_spread_bps": 0.0,
                "order_size_base": 0.01,
                "price_tolerance_bps": REACTION_TOLERANCE_BPS,
            },
            "inventory": {"limit_base": 0.5},
            "hedging": {"mode": "off"},
            "metrics": {"port": 0},
            "logging": {"level": "warning", "format": "json"},
            "runtime": {"busy_poll": busy_poll},
            # A journal of its own (the contenders run side by side on one config).
            "state": {"dir": tempfile.mkdtemp(prefix="mmd-bench-state-")},
        },
        environ={"MMD_VENUES__SIM_SPOT__API_KEY": key, "MMD_VENUES__SIM_SPOT__API_SECRET": key},
    )
    configure_logging("warning", "json")
    # When each order action is handed to the execution (splits the reaction in two), and
    # when the socket chunk holding the frame being handled at that moment was read.
    handed: list[int] = []
    read: list[int] = []
    reading = [0]
    original_frame = binance_stream.NativeStream._handle_frame

    chunks: list[int] = []

    def on_frame(self: Any, raw: Any, ts_local_ns: int) -> None:
        reading[0] = ts_local_ns
        if not chunks or chunks[-1] != ts_local_ns:
            chunks.append(ts_local_ns)
        original_frame(self, raw, ts_local_ns)
        reading[0] = 0

    binance_stream.NativeStream._handle_frame = on_frame  # type: ignore[method-assign]
    # When each request's bytes have been handed to the kernel (the socket send returned).
    sent: list[int] = []
    original_send = websocket.WsClient.send

    def stamped_send(self: Any, opcode: int, payload: bytes) -> None:
        original_send(self, opcode, payload)
        sent.append(time.time_ns())

    websocket.WsClient.send = stamped_send  # type: ignore[method-assign]
    cls: Any = BinanceWsApiExecution if order_entry == "native" else CcxtExecution
    for name in ("place", "replace", "cancel"):
        original = getattr(cls, name)

        def timed(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            handed.append(time.time_ns())
            read.append(reading[0])
            return _original(*args, **kwargs)

        setattr(cls, name, timed)
    daemon = Daemon(config)
    with contextlib.redirect_stdout(io.StringIO()):  # the run summary is not benchmarked
        uvloop.run(daemon.run(seconds))
    return {"handed": handed, "read": read, "chunks": chunks, "sent": sent}


async def _plain_role(rest: str, ws: str, seconds: float, spread_bps: float) -> None:
    from ccxt.base import errors as ccxt_errors  # noqa: PLC0415  only the plain loop needs it

    from mm_daemon.venues.exchanges import make_ccxt_exchange  # noqa: PLC0415

    exchange = make_ccxt_exchange("spot", rest, ws, PLAIN_KEY, PLAIN_KEY)
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
            half = mid * spread_bps / 2 * 1e-4
            ids = []
            for side, price in (("buy", mid - half - 0.005), ("sell", mid + half + 0.005)):
                try:
                    order = await exchange.create_order(
                        symbol, "limit", side, 0.01, round(price, 2), {"postOnly": True}
                    )
                except ccxt_errors.InvalidOrder:
                    continue  # the book moved on (post-only would cross): the next move requotes
                ids.append(order["id"])
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


def _cpus(pin: bool) -> tuple[list[str], list[str]]:
    """`--cpu` arguments for the simulator and for the contenders: one core each when pinned.

    Unpinned, the kernel wakes the simulator on the core of the contender that just wrote to
    it (the waker's core) and the request waits there while the contender goes on reading
    market data: 0.5-0.6 ms p50 between the contender's write and the simulator's read with
    the other core idle. A venue runs on machines of its own; pinning keeps that apart.
    """
    cores = sorted(os.sched_getaffinity(0))
    if not pin or len(cores) < 2:
        return [], []
    return ["--cpu", str(cores[1])], ["--cpu", str(cores[0])]


def reaction_benchmark(
    seconds: float,
    *,
    pin: bool,
    contenders: tuple[tuple[str, str, str], ...] = CONTENDERS,
    sim_busy_poll: bool = False,
    spread_bps: float = SCENARIOS["quiet"],
) -> dict[str, Any]:
    """Run the simulator, then each contender in turn; pair moves with arrivals."""
    sim_cpu, contender_cpu = _cpus(pin)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sim.json"
        me = str(Path(__file__).resolve())
        sim = subprocess.Popen(
            [
                sys.executable,
                me,
                "--role",
                "sim",
                *sim_cpu,
                "--out",
                str(out),
                *(["--sim-busy-poll"] if sim_busy_poll else []),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        loads: dict[str, float] = {}
        try:
            assert sim.stdout is not None  # noqa: S101  stdout is a pipe
            endpoint = json.loads(sim.stdout.readline())
            windows: dict[str, tuple[int, int]] = {}
            for name, role, key in contenders:
                start = time.time_ns()
                args = ["--role", "plain" if role == "plain" else "daemon"]
                if role != "plain":
                    args += ["--order-entry", role]
                subprocess.run(
                    [
                        sys.executable,
                        me,
                        *args,
                        *contender_cpu,
                        "--rest",
                        endpoint["rest"],
                        "--ws",
                        endpoint["ws"],
                        "--seconds",
                        str(seconds),
                        "--spread-bps",
                        str(spread_bps),
                        "--out",
                        str(Path(tmp) / f"{role}.json"),
                    ],
                    check=True,
                    timeout=seconds + 60,
                )
                loads[name] = round(os.getloadavg()[0], 2)
                windows[key] = (
                    start + int(REACTION_WARMUP_S * 1e9),
                    time.time_ns() - 2_000_000_000,
                )
        finally:
            sim.send_signal(signal.SIGTERM)
            sim.wait(timeout=30)
        data = json.loads(out.read_text())
        logs = {
            role: json.loads((Path(tmp) / f"{role}.json").read_text())
            for _, role, _ in contenders
            if role != "plain"
        }
        handed = {role: log["handed"] for role, log in logs.items()}
    result: dict[str, Any] = {
        "message_rate_per_s": round(data["messages"] / data["seconds"]),
        "moves": len(data["moves"]),
        "pinned": bool(sim_cpu),
        "load_average_1m_after_each": loads,
    }
    published = data["published"]
    for name, role, key in contenders:
        samples = _reactions_us(published, data["arrivals"], key, windows[key])
        result[name] = summarize(samples)
        sent = _reactions_us(data["moves"], data["arrivals"], key, windows[key])
        result[f"{name}: from move sent"] = summarize(sent)
        if role != "plain":
            # book update -> handed to the execution (market data and the daemon's decision)
            marks = [("handed", ts) for ts in handed[role]]
            to_handed = _reactions_us(published, marks, "handed", windows[key])
            result[f"{name}: update -> handed"] = summarize(to_handed)
            for hop, samples in _daemon_hops_us(
                published, data["writes"], logs[role], windows[key]
            ).items():
                result[f"{name}: {hop}"] = summarize(samples)
        if role.startswith("native"):
            for hop, samples in _hops_us(data, logs[role], key, windows[key]).items():
                result[f"{name}: {hop}"] = summarize(samples)
    return result


_HOPS = (
    "handed -> sent",
    "sent -> sim read",
    "sim read -> handler",
    "handler -> venue",
)
_DAEMON_HOPS = (
    "  update -> sim write",
    "  sim write -> daemon read",
    "  daemon read -> handed",
    "  (sim write -> daemon's next read)",
)


def _daemon_hops_us(
    updates: list[int], writes: list[int], log: dict[str, Any], window: tuple[int, int]
) -> dict[str, list[float]]:
    """update -> handed cut where the simulator next wrote market data to a socket and where
    the daemon read the chunk holding the frame it was handling when it handed the first
    action over (hand-overs outside a frame are skipped)."""
    pairs = sorted(zip(log["handed"], log.get("read", []), strict=False))
    writes = sorted(writes)
    out: dict[str, list[float]] = {hop: [] for hop in _DAEMON_HOPS}
    j = 0
    for i, update_ns in enumerate(updates):
        if not window[0] <= update_ns <= window[1]:
            continue
        next_update = updates[i + 1] if i + 1 < len(updates) else window[1]
        while j < len(pairs) and pairs[j][0] < update_ns:
            j += 1
        if j < len(pairs) and pairs[j][0] < next_update and pairs[j][1]:
            hand, read = pairs[j]
            write = writes[bisect.bisect_left(writes, update_ns)] if writes else 0
            if not update_ns <= write <= read:
                continue
            out[_DAEMON_HOPS[0]].append((write - update_ns) / 1000.0)
            out[_DAEMON_HOPS[1]].append((read - write) / 1000.0)
            out[_DAEMON_HOPS[2]].append((hand - read) / 1000.0)
            chunks = log.get("chunks", [])
            k = bisect.bisect_left(chunks, write)
            if k < len(chunks):
                out[_DAEMON_HOPS[3]].append((chunks[k] - write) / 1000.0)
    return out


def _hops_us(
    data: dict[str, Any], log: dict[str, Any], key: str, window: tuple[int, int]
) -> dict[str, list[float]]:
    """The part of each reaction after the hand-over, cut at every hop: the daemon's first
    hand-over after the book update, then for the first request of the key arriving after it
    the daemon's socket send returning, the simulator's socket read (aiohttp's protocol given
    the bytes), its WS-API handler
    starting on the message, and its venue taking the order action."""
    updates: list[int] = data["published"]
    hops = sorted((h for h in data["hops"] if h[0] == key), key=lambda h: h[1])
    handed: list[int] = sorted(log["handed"])
    sent: list[int] = sorted(log.get("sent", []))
    out: dict[str, list[float]] = {hop: [] for hop in _HOPS}
    for i, update_ns in enumerate(updates):
        if not window[0] <= update_ns <= window[1]:
            continue
        next_update = updates[i + 1] if i + 1 < len(updates) else window[1]
        first = next((h for h in hops if update_ns <= h[1] < next_update), None)
        if first is None or not first[2] or not first[3]:
            continue
        _, arrival, read, handler = first
        hand = min((t for t in handed if update_ns <= t <= arrival), default=0)
        if not hand:
            continue
        k = bisect.bisect_left(sent, hand)
        if k >= len(sent) or sent[k] > read:
            continue
        stamps = (hand, sent[k], read, handler, arrival)
        for hop, (a, b) in zip(_HOPS, itertools.pairwise(stamps), strict=True):
            out[hop].append((b - a) / 1000.0)
    return out


def _median(rounds: list[dict[str, Any]], name: str) -> dict[str, float]:
    return {
        k: round(statistics.median(r[name][k] for r in rounds), 2)
        for k in ("count", "p50_us", "p99_us", "mean_us")
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=25.0, help="each contender's run")
    parser.add_argument("--rounds", type=int, default=1, help="whole runs; medians reported")
    parser.add_argument("--role", choices=("sim", "daemon", "plain"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--order-entry",
        choices=("native", "native-busy", "ccxt"),
        help=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="let the kernel place the simulator and the contender (default: one core each)",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated contenders to run (native, native-busy, ccxt, plain); default "
        "all. The native daemon and the plain loop are always kept.",
    )
    parser.add_argument(
        "--sim-busy-poll",
        action="store_true",
        help="the simulator's loop polls instead of sleeping: takes its wake-ups (the same "
        "for every contender) out of the reaction",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated scenarios to run (quiet, filling); default both",
    )
    parser.add_argument("--spread-bps", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--rest", help=argparse.SUPPRESS)
    parser.add_argument("--ws", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role and args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.role == "sim":
        Path(args.out).write_text(json.dumps(uvloop.run(_sim_role(busy_poll=args.sim_busy_poll))))
        return 0
    if args.role == "daemon":
        log = _daemon_role(args.rest, args.seconds, args.order_entry, args.spread_bps)
        Path(args.out).write_text(json.dumps(log))
        return 0
    if args.role == "plain":
        uvloop.run(_plain_role(args.rest, args.ws, args.seconds, args.spread_bps))
        Path(args.out).write_text(json.dumps({"handed": []}))
        return 0
    load_at_start = round(os.getloadavg()[0], 2)
    print(f"load average (1 min) at start: {load_at_start} on {os.cpu_count()} cores")
    wanted = {"native", "plain", *filter(None, args.only.split(","))} if args.only else None
    contenders = tuple(c for c in CONTENDERS if wanted is None or c[1] in wanted)
    scenarios = [name for name in args.scenarios.split(",") if name in SCENARIOS]
    # The daemons run in the opposite order every other round (a simulator that has run longer
    # is not the same for the first and the last); the plain loop stays last. Each round runs
    # every scenario, each on a simulator of its own, one after the other.
    daemons, plain_last = contenders[:-1], contenders[-1:]
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in scenarios}
    for i in range(args.rounds):
        for scenario in scenarios if i % 2 == 0 else scenarios[::-1]:
            rounds[scenario].append(
                reaction_benchmark(
                    args.seconds,
                    pin=not args.no_pin,
                    contenders=(daemons if i % 2 == 0 else daemons[::-1]) + plain_last,
                    sim_busy_poll=args.sim_busy_poll,
                    spread_bps=SCENARIOS[scenario],
                )
            )
    first = rounds[scenarios[0]][0]
    print(
        f"reaction at the simulator ({first['message_rate_per_s']} msg/s, a 3 bps move "
        f"{1 / REACTION_MOVE_INTERVAL_S:g} times a second, {first['moves']} moves a round, "
        f"{args.rounds} round(s), medians, "
        f"{'simulator and contender on one core each' if first['pinned'] else 'unpinned'}"
        f"{', simulator busy-polling' if args.sim_busy_poll else ''}, Binance's limits "
        "enforced): book update published -> first order action arriving"
    )
    print(
        f"{'scenario':9} {'contender':66} {'count':>6} {'p50 us':>9} {'p99 us':>9} {'mean us':>9}"
    )
    tables: dict[str, dict[str, dict[str, float]]] = {}
    for scenario in scenarios:
        names = [k for k, v in rounds[scenario][0].items() if isinstance(v, dict) and "p50_us" in v]
        table = tables[scenario] = {name: _median(rounds[scenario], name) for name in names}
        for name in names:
            r = table[name]
            print(
                f"{scenario:9} {name:66} {r['count']:>6} {r['p50_us']:>9} {r['p99_us']:>9} "
                f"{r['mean_us']:>9}"
            )
    met: dict[str, dict[str, dict[str, bool]]] = {}
    ratios: dict[str, dict[str, float]] = {}
    for scenario in scenarios:
        table = tables[scenario]
        plain = table[CONTENDERS[-1][0]]
        met[scenario], ratios[scenario] = {}, {}
        for name, role, _ in contenders:
            if not role.startswith("native"):
                continue
            row = table[name]
            ratio = round(plain["p50_us"] / row["p50_us"], 2) if row["p50_us"] else 0.0
            ratios[scenario][name] = ratio
            verdict = met[scenario][name] = {
                "p50": row["p50_us"] <= TARGET_P50_US,
                "p99": row["p99_us"] <= TARGET_P99_US,
                "2x_plain": ratio >= TARGET_RATIO,
            }
            print(
                f"{scenario}, {name}: plain loop p50 / its p50 {ratio}x; targets: p50 <= "
                f"{TARGET_P50_US:g} us {'met' if verdict['p50'] else 'NOT met'}, p99 <= "
                f"{TARGET_P99_US:g} us {'met' if verdict['p99'] else 'NOT met'}, >= "
                f"{TARGET_RATIO:g}x the plain loop {'met' if verdict['2x_plain'] else 'NOT met'}"
            )
    filling_over_quiet: dict[str, float] = {}
    if "quiet" in tables and "filling" in tables:
        for name, role, _ in contenders:
            quiet, filling = tables["quiet"][name], tables["filling"][name]
            ratio = round(filling["p50_us"] / quiet["p50_us"], 2) if quiet["p50_us"] else 0.0
            filling_over_quiet[name] = ratio
            if role.startswith("native"):
                print(
                    f"{name}: filling p50 / quiet p50 {ratio}x (target <= "
                    f"{TARGET_FILLING_OVER_QUIET:g}x "
                    f"{'met' if ratio <= TARGET_FILLING_OVER_QUIET else 'NOT met'}), filling "
                    f"p99 {filling['p99_us']} us (target <= {TARGET_P99_US:g} us "
                    f"{'met' if filling['p99_us'] <= TARGET_P99_US else 'NOT met'})"
                )
    results = RESULTS.with_name("reaction_sim_busy_poll.json") if args.sim_busy_poll else RESULTS
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(
        json.dumps(
            {
                "benchmark": "reaction",
                "command": "bench/bench_reaction.py " + " ".join(sys.argv[1:]),
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "seconds_per_contender": args.seconds,
                "rounds": args.rounds,
                "load_average_1m_at_start": load_at_start,
                "pinned": not args.no_pin,
                "simulator_busy_poll": args.sim_busy_poll,
                "scenarios": {name: {"spread_bps": SCENARIOS[name]} for name in scenarios},
                "medians": tables,
                "plain_over_native_p50": ratios,
                "filling_over_quiet_p50": filling_over_quiet,
                "targets_us": {"p50": TARGET_P50_US, "p99": TARGET_P99_US, "ratio": TARGET_RATIO},
                "targets_met": met,
                "rounds_detail": rounds,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
