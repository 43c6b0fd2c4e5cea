"""How many 20-level depth messages per second the simulator's wire layer feeds one client.

A simulator venue (the real `SimVenue`, spot wire app, `SymbolFeed` depth stream at rate 0)
runs in a child process; a producer there publishes level changes (10 bid + 10 ask levels per
message, every message one update id) as fast as the client drains them. The client, a bare
aiohttp websocket in this process, reads and counts messages as fast as it can. Also measured
in the same run: the producer's formatting + serialization cost alone (no socket), so the
socket share is visible.

Prints a table and writes bench/results/sim.json. Medians over REPEATS runs.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mm_daemon.core.types import Instrument, InstrumentKind  # noqa: E402
from mm_daemon.sim.binance.spot import make_spot_app  # noqa: E402
from mm_daemon.sim.binance.streams import SymbolFeed  # noqa: E402
from mm_daemon.sim.matching import Accounts, MatchingEngine  # noqa: E402
from mm_daemon.sim.venue import SimVenue  # noqa: E402

LEVELS_PER_SIDE = 10
SECONDS = 3.0
WARMUP_S = 0.5
REPEATS = 5
BACKLOG = 4_000
BATCH = 500
PATTERNS = 2_000


def _instrument() -> Instrument:
    return Instrument(
        venue="sim-spot",
        symbol="BTC/USDT",
        exchange_symbol="BTCUSDT",
        kind=InstrumentKind.SPOT,
        base="BTC",
        quote="USDT",
        tick_size=0.01,
        lot_size=0.00001,
        min_notional_quote=5.0,
    )


def _patterns(seed: int = 1) -> list[list[tuple[int, int]]]:
    """Level-change sets of 10 bid and 10 ask levels around a 60,000.00 mid, in the feed's
    form: (-price ticks for a bid / +price ticks for an ask, size lots)."""
    rng = random.Random(seed)
    mid = 6_000_000
    out = []
    for _ in range(PATTERNS):
        bids = rng.sample(range(mid - 400, mid), LEVELS_PER_SIDE)
        asks = rng.sample(range(mid + 1, mid + 401), LEVELS_PER_SIDE)
        changes = [(-p, rng.randint(0, 500_000)) for p in bids]
        changes += [(p, rng.randint(0, 500_000)) for p in asks]
        out.append(changes)
    return out


def _venue() -> SimVenue:
    inst = _instrument()
    accounts = Accounts(inst.kind, {"BTC": 1.0, "USDT": 100_000.0})
    return SimVenue.create("sim-spot", "spot", [MatchingEngine(inst, accounts)], accounts)


async def _produce(venue: SimVenue, stop: asyncio.Event, stats: dict[str, float]) -> None:
    feed = venue.symbols["BTCUSDT"].feed
    patterns = _patterns()
    update_id = feed.update_id
    i = 0
    conns = venue.streams.connections
    while not conns and not stop.is_set():  # noqa: ASYNC110  a set of connections, no event
        await asyncio.sleep(0.001)
    cpu_start = time.process_time()
    while not stop.is_set():
        if not conns or any(c.backlog > BACKLOG for c in conns):
            await asyncio.sleep(0.0005)
            continue
        now = time.time_ns()
        for _ in range(BATCH):
            update_id += 1
            feed.on_levels(patterns[i % PATTERNS], update_id)
            feed.flush_depth(now)
            i += 1
        await asyncio.sleep(0)
    stats["messages"] = i
    stats["cpu_s"] = time.process_time() - cpu_start


def _server(port_queue: Any, stop_event: Any, stats_queue: Any) -> None:
    try:
        import uvloop  # noqa: PLC0415  optional fast loop, as the daemon uses

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        from aiohttp import web  # noqa: PLC0415  child-process import

        venue = _venue()
        runner = web.AppRunner(make_spot_app(venue), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # the bound port is only here
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        stop = asyncio.Event()
        stats: dict[str, float] = {}
        task = asyncio.get_running_loop().create_task(_produce(venue, stop, stats))
        port_queue.put(port)
        while not stop_event.is_set():  # noqa: ASYNC110  a multiprocessing event, not asyncio's
            await asyncio.sleep(0.05)
        stop.set()
        await task
        await runner.cleanup()
        stats_queue.put(stats)

    asyncio.run(main())


async def _client(port: int) -> dict[str, float]:
    url = f"ws://127.0.0.1:{port}/ws/0"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@depth@0ms"],"id":1}')
        reply = await ws.receive()
        if orjson.loads(reply.data) != {"result": None, "id": 1}:
            raise RuntimeError(f"unexpected SUBSCRIBE reply: {reply.data!r}")
        end_warmup = time.perf_counter() + WARMUP_S
        while time.perf_counter() < end_warmup:
            await ws.receive()
        count = 0
        nbytes = 0
        last = None
        gaps = 0
        levels = 0
        start = time.perf_counter()
        end = start + SECONDS
        while True:
            msg = await ws.receive()
            data = msg.data
            count += 1
            nbytes += len(data)
            if count % 1000 == 1:
                frame = orjson.loads(data)
                levels = len(frame["b"]) + len(frame["a"])
                if last is not None and frame["U"] <= last:
                    gaps += 1
                last = frame["u"]
            if count % 256 == 0 and time.perf_counter() >= end:
                break
        elapsed = time.perf_counter() - start
    return {
        "msgs_per_s": count / elapsed,
        "bytes_per_msg": nbytes / count,
        "levels_per_msg": levels,
        "order_errors": gaps,
    }


def _serialize_only() -> float:
    """Messages per second of on_levels + flush into a connection-less stream (format +
    orjson only), measured in this process."""

    class _Sink:
        combined = False

        def send_stream(self, name: bytes, payload: bytes, now_ns: int) -> None:
            del name, payload, now_ns

    venue = _venue()
    feed: SymbolFeed = venue.symbols["BTCUSDT"].feed
    sink: Any = _Sink()
    feed.subscribe(sink, "depth", 0)
    patterns = _patterns()
    update_id = feed.update_id
    n = 100_000
    start = time.perf_counter()
    for i in range(n):
        update_id += 1
        feed.on_levels(patterns[i % PATTERNS], update_id)
        feed.flush_depth(0)
    return n / (time.perf_counter() - start)


def main() -> None:
    ctx = mp.get_context("spawn")
    feed_rates: list[float] = []
    sizes: list[float] = []
    levels = 0
    errors = 0
    serialize_rates: list[float] = []
    cpu_rates: list[float] = []
    for _ in range(REPEATS):
        ports = ctx.Queue()
        stats_queue = ctx.Queue()
        stop = ctx.Event()
        proc = ctx.Process(target=_server, args=(ports, stop, stats_queue))
        proc.start()
        port = ports.get(timeout=30)
        result = asyncio.run(_client(port))
        stop.set()
        stats = stats_queue.get(timeout=30)
        proc.join(timeout=30)
        cpu_rates.append(stats["messages"] / stats["cpu_s"])
        feed_rates.append(result["msgs_per_s"])
        sizes.append(result["bytes_per_msg"])
        levels = int(result["levels_per_msg"])
        errors += int(result["order_errors"])
        serialize_rates.append(_serialize_only())
    feed_median = statistics.median(feed_rates)
    serialize_median = statistics.median(serialize_rates)
    cpu_median = statistics.median(cpu_rates)
    rows = [
        ("depth msgs/s fed to one websocket client", feed_median),
        ("  same, per CPU-second of the simulator process", cpu_median),
        ("depth msgs/s formatted + serialized (no socket)", serialize_median),
    ]
    print(f"levels per message: {levels}; bytes per message: {statistics.median(sizes):.0f}")
    print(f"{'case':50} {'median':>12}")
    for name, value in rows:
        print(f"{name:50} {value:12,.0f}")
    print(f"target 50,000 msgs/s (wall clock): {'met' if feed_median >= 50_000 else 'NOT met'}")
    print(
        f"machine load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    out = {
        "levels_per_message": levels,
        "bytes_per_message_median": statistics.median(sizes),
        "fed_msgs_per_s_median": feed_median,
        "fed_msgs_per_s_runs": feed_rates,
        "fed_msgs_per_cpu_s_median": cpu_median,
        "fed_msgs_per_cpu_s_runs": cpu_rates,
        "load_average_1m": os.getloadavg()[0],
        "cores": os.cpu_count(),
        "serialize_only_msgs_per_s_median": serialize_median,
        "serialize_only_msgs_per_s_runs": serialize_rates,
        "sequence_errors": errors,
        "seconds_per_run": SECONDS,
        "runs": REPEATS,
        "python": sys.version.split()[0],
    }
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "sim.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
