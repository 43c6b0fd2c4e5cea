"""Several markets in one daemon against as many single-market daemons: memory, CPU and
tick-to-quote, side by side in one run.

One standalone simulator process (`mm-daemon sim`, synthetic, calm regime, fixed seed) lists 10
assets on its spot and perpetual venues: BTC, ETH and 8 synthetic ones. For N in 2, 5 and 10
the script runs, one after the other against that simulator:
- one daemon quoting the first N assets' spot markets, each hedged on its perpetual;
- N daemons, each quoting one of those markets (the same settings);
and, as the reference for tick-to-quote, one daemon quoting BTC/USDT alone.

Every daemon is a real `mm-daemon run` process in paper mode (quotes and hedges filled by the
daemon's paper venues against the simulator's public flow; the simulator sees the market-data
connections only), JSON logs at warning, its own journal in a temporary folder, its /metrics on
a free loopback port. After every daemon answers /ready, a warm-up, then a window in which:
- RSS: VmRSS of /proc/<pid>/status (and PSS of /proc/<pid>/smaps_rollup, which splits the
  pages that processes share), summed over the run's daemons, sampled every second, median;
- CPU: utime + stime of /proc/<pid>/stat over the window, summed, as % of one core;
- tick-to-quote: the daemons' `mm_tick_to_quote_seconds` histograms (every market, merged),
  bucket counts at the end of the window minus those at its start; percentiles are estimated by
  linear interpolation inside the histogram's bucket (its bounds are 10, 25, 50, 100, 250 us...),
  so they are coarse;
- order actions sent (`mm_orders_total`) and actions the spot account's order budget deferred
  (`mm_order_actions_deferred_total`): every market of one daemon shares one budget per venue
  account (Binance spot: 100 orders per 10 s), N daemons have one each.

Quoting, per market: linear skew, 2 levels, 1 bp spread, requote past 1.5 bps
(config/default.yaml's tolerance for two markets on one account), order size about 600 USDT,
inventory limit 10 orders, hedge past 3 orders, skew 1 bp at the limit (BTC: 0.01, 0.1, 0.03,
10 bps per BTC, as the default config). Paper base balances are 10,000 units so that the sell
side of a low-priced asset is not refused for balance. No portfolio limits.

Rounds (`--rounds`) repeat every configuration, in reverse order every other round; the table
shows medians over rounds, and tick-to-quote percentiles of every round's histograms added
together (one calm market requotes a few dozen times in 30 s).

Usage: .venv/bin/python bench/bench_markets.py [--seconds S] [--warmup S] [--rounds R]
       [--markets 2,5,10]
Writes bench/results/markets.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from mm_daemon.sim.market import asset_instruments

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "markets.json"
SEED = 7
BTC_PRICE = 60_000.0
# BTC and ETH as the simulator starts them (ETH at the recorded 1/23 of BTC), then 8 synthetic
# assets at round prices from 600 down to 0.8 USDT (their filters sized the way Binance sizes
# them, see `asset_instruments`).
ASSETS: tuple[tuple[str, float], ...] = (
    ("BTC", BTC_PRICE),
    ("ETH", BTC_PRICE / 23),
    ("SOL", 150.0),
    ("BNB", 600.0),
    ("XRP", 2.5),
    ("LTC", 80.0),
    ("LINK", 15.0),
    ("AVAX", 30.0),
    ("DOT", 6.0),
    ("ADA", 0.8),
)
ORDER_NOTIONAL_QUOTE = 600.0  # BTC's 0.01 at 60,000
QUOTING = {
    "model": "linear_skew",
    "levels": 2,
    "spread_bps": 1.0,
    "min_spread_bps": 0.5,
    "price_tolerance_bps": 1.5,
}
PAPER = {"starting_base": 10_000.0, "starting_quote": 10_000_000.0}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT_S = 120.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _order_size(base: str, price: float) -> float:
    """About ORDER_NOTIONAL_QUOTE of `base`, a whole number of spot and perpetual lots."""
    spot, perp = asset_instruments(base, price)
    lot = max(spot.lot_size, perp.lot_size)
    lots = max(1, round(ORDER_NOTIONAL_QUOTE / price / lot))
    decimals = max(0, -math.floor(math.log10(lot)))
    return round(lots * lot, decimals)


def market_entry(base: str, price: float) -> dict[str, Any]:
    size = _order_size(base, price)
    limit = round(10 * size, 10)
    return {
        "venue": "sim-spot",
        "symbol": f"{base}/USDT",
        "hedge": {"venue": "sim-perp", "symbol": f"{base}/USDT:USDT"},
        "quoting": {"order_size_base": size, "skew_bps_per_base": round(1.0 / limit, 10)},
        "inventory": {"limit_base": limit},
        "hedging": {"mode": "threshold", "threshold_base": round(3 * size, 10)},
    }


def daemon_config(
    endpoints: dict[str, str],
    assets: list[tuple[str, float]],
    port: int,
    state_dir: Path,
    spot_orders_per_10_seconds: int | None = None,
) -> dict[str, Any]:
    spot: dict[str, Any] = {
        "exchange": "binance",
        "endpoint": endpoints["sim-spot"],
        "maker_fee_bps": 0.0,
        "taker_fee_bps": 4.0,
    }
    if spot_orders_per_10_seconds is not None:  # pinned instead of Binance's base tier
        spot["order_budget"] = {
            "rate_limits": [
                {"kind": "orders", "interval_seconds": 10, "limit": spot_orders_per_10_seconds},
                {"kind": "orders", "interval_seconds": 86_400, "limit": 200_000},
                {"kind": "weight", "interval_seconds": 60, "limit": 6_000},
            ]
        }
    return {
        "mode": "paper",
        "venues": {
            "sim-spot": spot,
            "sim-perp": {
                "exchange": "binanceusdm",
                "endpoint": endpoints["sim-perp"],
                "maker_fee_bps": 0.0,
                "taker_fee_bps": 2.0,
            },
        },
        "markets": [market_entry(base, price) for base, price in assets],
        "quoting": QUOTING,
        "paper": PAPER,
        "metrics": {"host": "127.0.0.1", "port": port},
        "logging": {"level": "warning", "format": "json"},
        "state": {"dir": str(state_dir)},
    }


@dataclass
class Simulator:
    proc: subprocess.Popen[str]
    endpoints: dict[str, str]

    @classmethod
    def start(cls, folder: Path) -> Simulator:
        assets: list[Any] = ["BTC", "ETH"]
        assets += [{"base": base, "start_price_quote": price} for base, price in ASSETS[2:]]
        config = folder / "sim.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "venues": {"sim-spot": {"exchange": "binance"}},
                    "markets": [{"venue": "sim-spot", "symbol": "BTC/USDT"}],
                    "hedging": {"mode": "off"},
                    "sim": {
                        "regime": "calm",
                        "seed": SEED,
                        "start_price_quote": BTC_PRICE,
                        "assets": assets,
                    },
                    "logging": {"format": "json", "level": "warning"},
                }
            )
        )
        log = (folder / "sim.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "mm_daemon", "sim", "--config", str(config)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        log.close()
        endpoints: dict[str, str] = {}
        for line in proc.stdout or ():  # one line per venue, then {"ready": true}
            message = json.loads(line)
            if message.get("ready"):
                return cls(proc, endpoints)
            endpoints[message["venue"]] = message["rest"]
        proc.wait()
        raise SystemExit(f"the simulator exited before it was ready:\n{_tail(folder / 'sim.log')}")

    def stop(self) -> None:
        _terminate(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@dataclass
class DaemonProc:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _tail(path: Path, lines: int = 5) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text().splitlines()[-lines:])
    return ""


def _terminate(*procs: subprocess.Popen[Any]) -> None:
    """SIGTERM to all of them at once (each cancels its orders and closes its journal), then
    wait; SIGKILL for one still running after 20 s."""
    running = [proc for proc in procs if proc.poll() is None]
    for proc in running:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20.0
    for proc in running:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_daemon(
    endpoints: dict[str, str],
    assets: list[tuple[str, float]],
    folder: Path,
    spot_orders_per_10_seconds: int | None,
) -> DaemonProc:
    folder.mkdir()
    port = _free_port()
    config = folder / "daemon.yaml"
    data = daemon_config(endpoints, assets, port, folder / "state", spot_orders_per_10_seconds)
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    log = folder / "daemon.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mm_daemon", "run", "--config", str(config)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    return DaemonProc(proc, port, log)


def _is_ready(daemon: DaemonProc) -> bool:
    try:
        with urllib.request.urlopen(f"{daemon.url}/ready", timeout=2) as response:  # noqa: S310  loopback
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(daemons: list[DaemonProc]) -> float:
    """Seconds until every daemon answers /ready (polled), or exit naming the one that did not."""
    started = time.monotonic()
    waiting = list(daemons)
    while waiting:
        for daemon in waiting:
            if daemon.proc.poll() is not None:
                raise SystemExit(f"a daemon exited at start:\n{_tail(daemon.log)}")
        waiting = [d for d in waiting if not _is_ready(d)]
        if waiting and time.monotonic() - started > READY_TIMEOUT_S:
            raise SystemExit(
                f"a daemon not ready in {READY_TIMEOUT_S:g} s:\n{_tail(waiting[0].log)}"
            )
        if waiting:
            time.sleep(0.2)
    return time.monotonic() - started


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process so far."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text.rsplit(")", 1)[1].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _kib(path: str, key: str) -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} in {path}")


def memory_mib(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of the process in MiB."""
    rss = _kib(f"/proc/{pid}/status", "VmRSS:")
    pss = _kib(f"/proc/{pid}/smaps_rollup", "Pss:")
    return rss / 1024, pss / 1024


def scrape(daemon: DaemonProc) -> dict[str, Any]:
    """The counters this benchmark reads from the daemon's /metrics."""
    with urllib.request.urlopen(f"{daemon.url}/metrics", timeout=5) as response:  # noqa: S310  loopback
        text = response.read().decode()
    buckets: dict[float, float] = {}
    totals = {"orders": 0.0, "deferred": 0.0, "open_orders": 0.0, "fills": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "mm_tick_to_quote_seconds_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name == "mm_orders_total":
                totals["orders"] += sample.value
            elif sample.name == "mm_order_actions_deferred_total":
                totals["deferred"] += sample.value
            elif sample.name == "mm_open_orders":
                totals["open_orders"] += sample.value
            elif sample.name == "mm_fills_total":
                totals["fills"] += sample.value
    return {"buckets": buckets, **totals}


def _merge(scrapes: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {"buckets": {}}
    for one in scrapes:
        for bound, count in one["buckets"].items():
            merged["buckets"][bound] = merged["buckets"].get(bound, 0.0) + count
        for key, value in one.items():
            if key != "buckets":
                merged[key] = merged.get(key, 0.0) + value
    return merged


def histogram_quantile(buckets: dict[float, float], q: float) -> float | None:
    """The q-quantile of cumulative `buckets` (upper bound -> count), interpolated linearly
    inside its bucket (from 0 for the first); the last finite bound when it lies beyond it."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def measure(
    config: Configuration, sim: Simulator, folder: Path, warmup_s: float, window_s: float
) -> dict[str, Any]:
    """Start one daemon per group of assets, warm up, measure over the window, stop them."""
    groups = config.groups
    daemons = [
        start_daemon(
            sim.endpoints, group, folder / f"daemon-{i}", config.spot_orders_per_10_seconds
        )
        for i, group in enumerate(groups)
    ]
    try:
        ready_s = wait_ready(daemons)
        time.sleep(warmup_s)  # the run itself: quoting on the simulator's flow
        pids = [d.proc.pid for d in daemons]
        first = _merge([scrape(d) for d in daemons])
        cpu_start = sum(cpu_seconds(pid) for pid in pids)
        sim_cpu_start = cpu_seconds(sim.proc.pid)
        started = time.monotonic()
        rss: list[float] = []
        pss: list[float] = []
        while (left := window_s - (time.monotonic() - started)) > 0:
            time.sleep(min(1.0, left))
            sizes = [memory_mib(pid) for pid in pids]
            rss.append(sum(r for r, _ in sizes))
            pss.append(sum(p for _, p in sizes))
        cpu_end = sum(cpu_seconds(pid) for pid in pids)
        sim_cpu_end = cpu_seconds(sim.proc.pid)
        elapsed = time.monotonic() - started
        last = _merge([scrape(d) for d in daemons])
        for daemon in daemons:
            if daemon.proc.poll() is not None:
                raise SystemExit(f"a daemon died during the window:\n{_tail(daemon.log)}")
    finally:
        _terminate(*(daemon.proc for daemon in daemons))
    window = {b: last["buckets"][b] - first["buckets"].get(b, 0.0) for b in last["buckets"]}
    count = window.get(math.inf, 0.0)
    quantiles = {
        f"p{round(q * 100)}_us": (None if (v := histogram_quantile(window, q)) is None else v * 1e6)
        for q in (0.5, 0.9, 0.99)
    }
    return {
        "config": config.label,
        "processes": len(groups),
        "markets": sum(len(g) for g in groups),
        "ready_seconds": round(ready_s, 1),
        "window_seconds": round(elapsed, 1),
        "rss_mib": statistics.median(rss),
        "pss_mib": statistics.median(pss),
        "cpu_percent": 100.0 * (cpu_end - cpu_start) / elapsed,
        "sim_cpu_percent": 100.0 * (sim_cpu_end - sim_cpu_start) / elapsed,
        "orders_per_second": (last["orders"] - first["orders"]) / elapsed,
        "deferred_per_second": (last["deferred"] - first["deferred"]) / elapsed,
        "fills": last["fills"] - first["fills"],
        "open_orders_at_end": last["open_orders"],
        "tick_to_quote_count": count,
        "tick_to_quote_buckets": {str(b): c for b, c in sorted(window.items())},
        **quantiles,
    }


@dataclass(frozen=True)
class Configuration:
    label: str
    groups: list[list[tuple[str, float]]]  # the assets of each daemon
    spot_orders_per_10_seconds: int | None = None  # None: Binance's published base tier


def configurations(sizes: list[int]) -> list[Configuration]:
    configs = [Configuration("1 market", [[ASSETS[0]]])]
    for n in sizes:
        assets = list(ASSETS[:n])
        configs.append(Configuration(f"{n} markets, 1 daemon", [assets]))
        configs.append(Configuration(f"{n} daemons x 1 market", [[a] for a in assets]))
    # The most markets again with ten times the spot order limit (a higher tier's), so that the
    # shared budget does not bind: tick-to-quote without the waits for it.
    n = max(sizes)
    configs.append(Configuration(f"{n} markets, 10x limit", [list(ASSETS[:n])], 1_000))
    return configs


NUMERIC = (
    "rss_mib",
    "pss_mib",
    "cpu_percent",
    "sim_cpu_percent",
    "orders_per_second",
    "deferred_per_second",
    "fills",
    "open_orders_at_end",
)


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {k: runs[0][k] for k in ("config", "processes", "markets")}
    for key in NUMERIC:
        values = [run[key] for run in runs if run[key] is not None]
        summary[key] = statistics.median(values) if values else None
    # Tick-to-quote from the rounds' histograms added together: a 30 s window of one calm
    # market holds a few dozen requotes, too few for a p99 of its own.
    merged: dict[float, float] = {}
    for run in runs:
        for bound, count in run["tick_to_quote_buckets"].items():
            merged[float(bound)] = merged.get(float(bound), 0.0) + count
    summary["tick_to_quote_count"] = merged.get(math.inf, 0.0)
    for q in (0.5, 0.9, 0.99):
        value = histogram_quantile(merged, q)
        summary[f"p{round(q * 100)}_us"] = None if value is None else value * 1e6
    summary["rss_mib_per_market"] = summary["rss_mib"] / summary["markets"]
    summary["pss_mib_per_market"] = summary["pss_mib"] / summary["markets"]
    summary["cpu_percent_per_market"] = summary["cpu_percent"] / summary["markets"]
    return summary


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'configuration':24} {'proc':>4} {'RSS MiB':>8} {'/mkt':>6} {'PSS MiB':>8} {'/mkt':>6} "
        f"{'CPU %':>6} {'/mkt':>5} {'sim %':>6} {'ord/s':>6} {'defer/s':>7} "
        f"{'t2q p50':>8} {'p90':>6} {'p99':>6} {'events':>7}"
    )
    print(header)
    for row in rows:
        print(
            f"{row['config']:24} {row['processes']:>4} {_fmt(row['rss_mib']):>8} "
            f"{_fmt(row['rss_mib_per_market']):>6} {_fmt(row['pss_mib']):>8} "
            f"{_fmt(row['pss_mib_per_market']):>6} {_fmt(row['cpu_percent'], 1):>6} "
            f"{_fmt(row['cpu_percent_per_market'], 1):>5} {_fmt(row['sim_cpu_percent'], 1):>6} "
            f"{_fmt(row['orders_per_second'], 1):>6} {_fmt(row['deferred_per_second'], 1):>7} "
            f"{_fmt(row['p50_us']):>8} {_fmt(row['p90_us']):>6} {_fmt(row['p99_us']):>6} "
            f"{_fmt(row['tick_to_quote_count']):>7}"
        )


def host_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "memory_mib": _kib("/proc/meminfo", "MemTotal:") // 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window per run")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds after /ready")
    parser.add_argument("--rounds", type=int, default=2, help="repeats of every configuration")
    parser.add_argument("--markets", default="2,5,10", help="market counts (at most 10)")
    args = parser.parse_args()
    sizes = [int(n) for n in args.markets.split(",")]
    if not all(1 <= n <= len(ASSETS) for n in sizes):
        parser.error(f"--markets: each count between 1 and {len(ASSETS)}")
    configs = configurations(sizes)
    load_start = os.getloadavg()
    started = time.monotonic()
    runs: dict[str, list[dict[str, Any]]] = {config.label: [] for config in configs}
    with tempfile.TemporaryDirectory(prefix="mmd-bench-markets-") as tmp:
        folder = Path(tmp)
        sim = Simulator.start(folder)
        try:
            for round_no in range(args.rounds):
                order = configs if round_no % 2 == 0 else configs[::-1]
                for number, config in enumerate(order):
                    run_folder = folder / f"round{round_no}-{number}"
                    run_folder.mkdir()
                    run = measure(config, sim, run_folder, args.warmup, args.seconds)
                    run["round"] = round_no
                    runs[config.label].append(run)
                    print(
                        f"round {round_no + 1}/{args.rounds} {config.label}: "
                        f"RSS {run['rss_mib']:.0f} "
                        f"MiB, CPU {run['cpu_percent']:.1f} %, load {os.getloadavg()[0]:.2f}",
                        flush=True,
                    )
        finally:
            sim.stop()
    load_end = os.getloadavg()
    rows = [medians(runs[config.label]) for config in configs]
    print()
    print(
        f"paper mode on a standalone simulator (calm, seed {SEED}), {args.seconds:g} s windows "
        f"after {args.warmup:g} s warm-up, medians of {args.rounds} round(s); load average "
        f"{load_start[0]:.2f} at start, {load_end[0]:.2f} at end"
    )
    print_table(rows)
    print(
        "RSS and PSS summed over the configuration's daemons; CPU % of one core over the window "
        "(sim %: the simulator's); ord/s order actions sent, defer/s actions the order budget "
        "deferred; t2q tick-to-quote in us from every round's window together, interpolated "
        "inside histogram buckets; events: requotes it counts"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "markets",
                "command": "bench/bench_markets.py " + " ".join(sys.argv[1:]),
                "host": host_info(),
                "load_average_at_start": [round(x, 2) for x in load_start],
                "load_average_at_end": [round(x, 2) for x in load_end],
                "total_seconds": round(time.monotonic() - started, 1),
                "settings": {
                    "mode": "paper",
                    "sim": {"regime": "calm", "seed": SEED, "assets": [a for a, _ in ASSETS]},
                    "seconds": args.seconds,
                    "warmup_seconds": args.warmup,
                    "rounds": args.rounds,
                    "quoting": QUOTING,
                    "paper": PAPER,
                    "markets": [market_entry(base, price) for base, price in ASSETS],
                },
                "summary": rows,
                "runs": [run for config in configs for run in runs[config.label]],
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
