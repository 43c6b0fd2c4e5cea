"""Speed of `mm-daemon replay` on the recorded captures, split by layer, side by side in one run.

Three cases over the same recorded window (BTCUSDT spot quoted, USD-M hedged, config/replay.yaml;
the replay ends where the perpetual's capture ends, 345.9 s of recorded time):
- read: the captures decompressed, split into frames and merged in receive order (no parsing);
- markets: the same frames played through the recorded markets (the live adapter's reader,
  books, events) into a sink that drops the events, on the virtual-time loop;
- daemon: the whole replay (`run_replay`): trader, quoting, order manager, paper fills,
  hedging, markouts, the summary.
Each case runs in a fresh process (cases alternate, `--runs` each); the table gives medians of
wall time, frames per second and recorded seconds per wall second.

Usage: .venv/bin/python bench/bench_replay.py [--runs N]
Writes bench/results/replay.json. Needs the recorded captures ($MMD_DATA_DIR or
../shared/data/binance); exits with a note when they are absent.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "replay.json"
CONFIG = ROOT / "config" / "replay.yaml"
CASES = ("read", "markets", "daemon")


def _data_dir() -> Path | None:
    env = os.environ.get("MMD_DATA_DIR")
    path = Path(env) if env else ROOT.parent / "shared" / "data" / "binance"
    return path if (path / "spot").is_dir() and (path / "usdm").is_dir() else None


def _case(name: str, data_dir: Path) -> dict[str, Any]:
    """Run one case in this process; return its wall time, frames and recorded span."""
    from mm_daemon.config import load_config  # noqa: PLC0415  imports timed apart from the run
    from mm_daemon.engine.entry import open_recorded, run_replay  # noqa: PLC0415

    config = load_config(CONFIG, environ={"MMD_LOGGING__LEVEL": "warning"})
    loop, markets = open_recorded(config, data_dir)
    clock = loop.clock
    first = clock.now_ns()
    started = time.perf_counter()
    frames = 0
    recorded_s: float | None = None
    if name == "read":
        for _ns, _index, kind, _raw in markets._merged():
            if kind is None:
                break
            frames += 1
    elif name == "markets":
        try:
            frames = loop.run_until_complete(markets.play_into(lambda _event: None))
        finally:
            loop.close()
        recorded_s = (clock.now_ns() - first) / 1e9
    else:
        loop.close()  # run_replay opens its own
        summary = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-replay-{os.getpid()}.json"  # noqa: S108  a scratch file of this run
        with contextlib.redirect_stdout(io.StringIO()):
            run_replay(config, data_dir, None, summary)
        recorded_s = json.loads(summary.read_text())["duration_seconds"]
        summary.unlink()
        frames = -1  # counted by the markets case; the daemon reads the same frames
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "frames": frames,
        "recorded_s": recorded_s,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    data_dir = _data_dir()
    if data_dir is None:
        print("the recorded captures are not here: set MMD_DATA_DIR (nothing measured)")
        return 0
    if args.case:
        print(json.dumps(_case(args.case, data_dir)))
        return 0
    load = round(os.getloadavg()[0], 2)
    runs: dict[str, list[dict[str, Any]]] = {case: [] for case in CASES}
    for _ in range(args.runs):
        for case in CASES:
            out = subprocess.run(
                [sys.executable, __file__, "--case", case],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "MMD_DATA_DIR": str(data_dir)},
            ).stdout
            runs[case].append(json.loads(out.strip().splitlines()[-1]))
    frames = int(statistics.median(r["frames"] for r in runs["markets"]))
    recorded = statistics.median(r["recorded_s"] for r in runs["daemon"])
    table: dict[str, dict[str, float]] = {}
    print(f"load average (1 min) at start: {load} on {os.cpu_count()} cores; {args.runs} runs")
    print(f"{frames:,} frames, {recorded:.1f} s of recorded time (medians)")
    print(f"{'case':10} {'wall s':>8} {'frames/s':>10} {'x recorded':>11} {'max RSS MB':>11}")
    for case in CASES:
        wall = statistics.median(r["wall_s"] for r in runs[case])
        rss = statistics.median(r["max_rss_mb"] for r in runs[case])
        table[case] = {
            "wall_s": round(wall, 3),
            "frames_per_s": round(frames / wall),
            "recorded_per_wall": round(recorded / wall, 1),
            "max_rss_mb": round(rss, 1),
        }
        row = table[case]
        print(
            f"{case:10} {row['wall_s']:>8.2f} {row['frames_per_s']:>10,} "
            f"{row['recorded_per_wall']:>11.1f} {row['max_rss_mb']:>11.1f}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "replay",
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "runs": args.runs,
                "load_average_1m_at_start": load,
                "frames": frames,
                "recorded_seconds": recorded,
                "medians": table,
                "runs_detail": runs,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
