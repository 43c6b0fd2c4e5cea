"""Cost of a run report built from a journal: reading it, building the page, opening it.

Cases: a 1 h paper run of two markets (BTC/USDT and ETH/USDT, each hedged: 3,600 1 s snapshots
per market and per asset, about 5,000 fills, their markouts, hedges and risk changes) and a 24 h
run of the same two markets (about 120,000 fills), each written into a journal file through the
`Journal` API as the daemon writes one (`mm_daemon.report.synthetic.write_synthetic_journal`).
What `mm-daemon report` does is then timed in its parts, each the median of several rounds:
- read: `load_run_series` (SQLite into the journal's records);
- convert: `run_data_from_series` (records into the report's data);
- build: `run_report_html` (figures, thinning, HTML);
- total: `load_run_data` and `render_run_report` to a file, one after the other;
- command: `mm-daemon report --run 1 --out FILE` in a process of its own, start to exit (the
  imports included), as a user runs it.
Opening is the median time from navigation to every chart drawn in headless Chromium, when
chromium is installed. Prints a table and writes bench/results/report.json.

    python bench/bench_report.py [--short]   # --short: the 1 h case only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tools/ (the Chromium driver)

from mm_daemon.engine.journal import load_run_series  # noqa: E402  after the path set-up
from mm_daemon.report import render_run_report, run_report_html  # noqa: E402
from mm_daemon.report.journal import load_run_data, run_data_from_series  # noqa: E402
from mm_daemon.report.page import plotly_js  # noqa: E402
from mm_daemon.report.synthetic import write_synthetic_journal  # noqa: E402

ROUNDS = 5  # 3 for the 24 h case
OPENS = 3
T = TypeVar("T")


def timed(action: Callable[[], T], rounds: int) -> tuple[float, T]:
    """The median seconds of `rounds` calls, and the last call's result."""
    times = []
    result: Any = None
    for _ in range(rounds):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def open_seconds(path: Path) -> float | None:
    try:
        from tools.chromium import Chromium, find_chromium  # noqa: PLC0415  optional
    except ImportError:
        return None
    executable = find_chromium()
    if executable is None:
        return None
    times = []
    with Chromium(executable) as browser:
        for _ in range(OPENS):
            start = time.perf_counter()
            loaded = browser.open_page(path, deadline_seconds=300)
            times.append(time.perf_counter() - start)
            if loaded.console_errors or loaded.page_errors:
                raise RuntimeError(f"{path.name}: {loaded.console_errors + loaded.page_errors}")
            loaded.page.close()
    return round(statistics.median(times), 2)


def command_seconds(journal: Path, out: Path, rounds: int) -> float:
    """The median wall time of `mm-daemon report` on the journal, as its instance's."""
    env = {
        **os.environ,
        "MMD_STATE__DIR": str(journal.parent),
        "MMD_STATE__INSTANCE_ID": journal.stem,
    }
    config = REPO / "config" / "default.yaml"
    command = [sys.executable, "-m", "mm_daemon", "report", "--config", str(config)]
    command += ["--run", "1", "--out", str(out)]
    seconds, _ = timed(
        lambda: subprocess.run(command, env=env, check=True, capture_output=True), rounds
    )
    return seconds


def measure(name: str, seconds: int, fills_per_market: int, folder: Path) -> dict[str, Any]:
    journal = folder / f"run-{seconds}s.journal"
    start = time.perf_counter()
    write_synthetic_journal(journal, seconds=seconds, fills_per_market=fills_per_market)
    write_seconds = time.perf_counter() - start
    rounds = ROUNDS if seconds <= 3_600 else 3
    read, series = timed(lambda: load_run_series(journal), rounds)
    convert, data = timed(lambda: run_data_from_series(series), rounds)
    run_report_html(data)  # plotly.js read and cached, as after the first page of a process
    build, page = timed(lambda: run_report_html(data), rounds)
    path = folder / f"{seconds}.html"
    total, _ = timed(lambda: render_run_report(load_run_data(journal), path), rounds)
    size = path.stat().st_size
    command = command_seconds(journal, folder / f"{seconds}-command.html", rounds)
    return {
        "case": name,
        "rounds": rounds,
        "snapshots": len(series.snapshots),
        "fills": len(series.fills),
        "markouts": len(series.markouts),
        "journal_bytes": journal.stat().st_size,
        "journal_write_seconds": round(write_seconds, 2),
        "read_seconds_median": round(read, 3),
        "convert_seconds_median": round(convert, 3),
        "build_seconds_median": round(build, 3),
        "total_seconds_median": round(total, 3),
        "command_seconds_median": round(command, 3),
        "page_bytes": size,
        "page_bytes_built": len(page.encode()),
        "open_seconds_median": open_seconds(path),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the 1 h case only")
    args = parser.parse_args()
    cases = [("1 h, 2 markets", 3_600, 2_500)]
    if not args.short:
        cases.append(("24 h, 2 markets", 86_400, 60_000))
    plotly_bytes = len(plotly_js().encode())
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        rows = [measure(name, s, f, Path(folder)) for name, s, f in cases]
    load_at_end = os.getloadavg()[0]
    print(
        f"load average {load_at_start:.1f} at start, {load_at_end:.1f} at end; "
        f"plotly.js inlined: {plotly_bytes:,} bytes"
    )
    print(
        f"{'case':<16} {'snapshots':>9} {'fills':>8} {'journal MB':>10} {'read s':>7} "
        f"{'convert s':>9} {'build s':>8} {'total s':>8} {'command s':>9} {'page MB':>8} "
        f"{'open s':>7}"
    )
    for row in rows:
        opened = row["open_seconds_median"]
        print(
            f"{row['case']:<16} {row['snapshots']:>9,} {row['fills']:>8,} "
            f"{row['journal_bytes'] / 1e6:>10.1f} {row['read_seconds_median']:>7.3f} "
            f"{row['convert_seconds_median']:>9.3f} {row['build_seconds_median']:>8.3f} "
            f"{row['total_seconds_median']:>8.3f} {row['command_seconds_median']:>9.3f} "
            f"{row['page_bytes'] / 1e6:>8.2f} {'n/a' if opened is None else f'{opened:.1f}':>7}"
        )
    out = REPO / "bench" / "results" / "report.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "opens": OPENS,
                "python": platform.python_version(),
                "load_average_1m_at_start": round(load_at_start, 2),
                "load_average_1m_at_end": round(load_at_end, 2),
                "plotly_js_bytes": plotly_bytes,
                "cases": rows,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
