"""Make the README's picture of a run report: docs/report.png.

    python tools/report_screenshot.py [--out docs/report.png]

Builds the report of a synthetic one-hour run of one market (`mm_daemon.report.synthetic`),
opens it in headless Chromium at 1400 px wide, zooms the quotes chart to its last 15 minutes,
and saves the page from the top to the end of that chart.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mm_daemon.report import render_run_report  # noqa: E402  after the path set-up
from mm_daemon.report.synthetic import DEFAULT_MARKETS, synthetic_run  # noqa: E402
from tools.chromium import Chromium, find_chromium  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "report.png")
    args = parser.parse_args()
    executable = find_chromium()
    if executable is None:
        sys.stderr.write("chromium is not installed (.ci/system-packages.sh installs it)\n")
        return 1
    data = synthetic_run(markets=DEFAULT_MARKETS[:1])
    with tempfile.TemporaryDirectory() as folder, Chromium(executable) as browser:
        loaded = browser.open_page(render_run_report(data, Path(folder) / "report.html"))
        if loaded.console_errors or loaded.page_errors:
            sys.stderr.write(f"the page reported: {loaded.console_errors + loaded.page_errors}\n")
            return 1
        quotes = loaded.page.locator('div.chart[data-chart="quotes"]').first
        quotes.locator(".rangeselector .button", has_text=re.compile(r"^15m$")).click()
        loaded.page.wait_for_function(
            """() => {
                const d = document.querySelector('div.chart[data-chart="quotes"]');
                const fair = d.data.find(t => t.name === 'fair value');
                return fair.x.length < 1000;
            }"""
        )
        loaded.page.mouse.move(0, 0)  # no hover label or mode bar in the picture
        bottom = loaded.page.evaluate(
            """() => document.querySelector('figure[data-chart-panel="quotes"]')
                .getBoundingClientRect().bottom + window.scrollY"""
        )
        loaded.screenshot(args.out, height=round(bottom + 12))
    sys.stdout.write(f"wrote {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
