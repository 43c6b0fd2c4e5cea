"""Cost of a run report: building the page, its size, and opening it in Chromium.

Cases: a 1 h run of two markets (3,600 1 s snapshots each, about 5,000 fills) and a 24 h run of
the same two markets (86,400 snapshots each, about 120,000 fills), both synthetic runs booked by
the core's ledger (`mm_daemon.report.synthetic`). Build time is the median over several builds
of `run_report_html` (the figures, thinning and HTML; the run data already in memory), written
out once for its size. Opening is the median time from navigation to every chart drawn in
headless Chromium, when chromium is installed. Prints a table and writes bench/results/report.json.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tools/ (the Chromium driver)

from mm_daemon.report import run_report_html  # noqa: E402  after the path set-up
from mm_daemon.report.data import RunData  # noqa: E402
from mm_daemon.report.page import plotly_js  # noqa: E402
from mm_daemon.report.synthetic import synthetic_run  # noqa: E402

BUILDS = 5
OPENS = 3


def build_seconds(data: RunData) -> tuple[float, str]:
    run_report_html(data)  # plotly.js read and cached, as in a long-lived process
    times = []
    page = ""
    for _ in range(BUILDS):
        start = time.perf_counter()
        page = run_report_html(data)
        times.append(time.perf_counter() - start)
    return statistics.median(times), page


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


def main() -> None:
    cases = {
        "1 h, 2 markets": {"seconds": 3_600, "fills_per_market": 2_500},
        "24 h, 2 markets": {"seconds": 86_400, "fills_per_market": 60_000},
    }
    plotly_bytes = len(plotly_js().encode())
    load_at_start = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, params in cases.items():
            data = synthetic_run(**params)
            snapshots = sum(len(m.snapshots) for m in data.markets)
            fills = sum(len(m.fills) for m in data.markets)
            seconds, page = build_seconds(data)
            path = Path(folder) / "report.html"
            path.write_text(page, encoding="utf-8")
            size = path.stat().st_size
            rows.append(
                {
                    "case": name,
                    "snapshots": snapshots,
                    "fills": fills,
                    "build_seconds_median": round(seconds, 3),
                    "page_bytes": size,
                    "data_bytes": size - plotly_bytes,
                    "open_seconds_median": open_seconds(path),
                }
            )
    print(f"load average at start {load_at_start:.1f}; plotly.js inlined: {plotly_bytes:,} bytes")
    print(
        f"{'case':<16} {'snapshots':>9} {'fills':>8} {'build s':>8} {'page MB':>8} "
        f"{'data MB':>8} {'open s':>7}"
    )
    for row in rows:
        opened = row["open_seconds_median"]
        print(
            f"{row['case']:<16} {row['snapshots']:>9,} {row['fills']:>8,} "
            f"{row['build_seconds_median']:>8.3f} {row['page_bytes'] / 1e6:>8.2f} "
            f"{row['data_bytes'] / 1e6:>8.2f} {'n/a' if opened is None else f'{opened:.1f}':>7}"
        )
    out = REPO / "bench" / "results" / "report.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "builds": BUILDS,
                "opens": OPENS,
                "python": platform.python_version(),
                "load_average_1m_at_start": round(load_at_start, 2),
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
