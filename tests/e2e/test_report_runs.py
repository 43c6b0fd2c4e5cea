"""Reports of real runs, opened in headless Chromium as the person reading them would.

- a paper daemon process on the embedded simulator for 25 s, then `mm-daemon report` on its
  journal;
- `mm-daemon replay --report` on the recorded Binance captures;
- a sweep of two parameters over the recorded captures with `--report`.

Each page is opened from file:// with every network request refused; the figures on it are
compared with the run summary the daemon printed (its `run_summary` log line, or the replay's
`--summary-json`), and a screenshot is saved beside it. The replay and the sweep skip, saying
why, where the captures are absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mm_daemon.core.summary import RunSummary, summary_from_dict
from mm_daemon.report.html import MARKET_CHARTS
from mm_daemon.report.journal import load_run_data
from tests.e2e.report_pages import figure_mismatches, png_size, run_summary_figures
from tests.integration.conftest import data_dir
from tests.procs import DaemonProcess, paper_config, running
from tools.chromium import Chromium, LoadedPage

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
RUN_SECONDS = 25
MARKET = "BTC/USDT@sim-spot"
REPLAY_CONFIG = REPO / "config" / "replay.yaml"
SWEEP_SETS = ("quoting.spread_bps=1,2", "hedging.threshold_base=0.02,0.05")


def mm_daemon(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run the command line; its stdout (the test fails with its stderr on a non-zero exit)."""
    result = subprocess.run(
        [sys.executable, "-m", "mm_daemon", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def recorded() -> Path:
    folder = data_dir()
    if folder is None:
        pytest.skip("the recorded Binance captures are absent (set MMD_DATA_DIR)")
    return folder


def open_and_screenshot(chromium: Chromium, page: Path) -> LoadedPage:
    loaded = chromium.open_page(page)
    loaded.screenshot(page.with_suffix(".png"))
    return loaded


# -- a paper run on the embedded simulator, then `mm-daemon report` ----------------------------


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, RunSummary]:
    """(the config, the report written from its journal, the run summary it printed)."""
    folder = tmp_path_factory.mktemp("paper-run")
    config = paper_config(folder / "state", folder)  # a trending market: fills within seconds
    daemon = DaemonProcess.start(config, None, "--duration", str(RUN_SECONDS))
    with running(daemon):
        assert daemon.wait_exit(timeout_s=RUN_SECONDS + 90) == 0
    summary = summary_from_dict(daemon.wait_for("run_summary"))
    page = folder / "report.html"
    printed = mm_daemon("report", "--config", str(config), "--out", str(page), cwd=folder)
    assert printed.startswith(f"wrote {page}: restart-test run 1 (paper, ")
    return config, page, summary


@pytest.fixture(scope="module")
def paper_page(
    chromium: Chromium, paper_run: tuple[Path, Path, RunSummary]
) -> Iterator[LoadedPage]:
    loaded = open_and_screenshot(chromium, paper_run[1])
    yield loaded
    loaded.page.close()


def test_a_paper_runs_report_loads_with_no_console_error_and_no_network(
    paper_page: LoadedPage,
) -> None:
    assert paper_page.console_errors == []
    assert paper_page.page_errors == []
    assert paper_page.refused_requests == []


def test_a_paper_runs_report_draws_every_chart_of_its_market(paper_page: LoadedPage) -> None:
    assert [chart.name for chart in paper_page.charts] == list(MARKET_CHARTS)
    assert all(c.drawn and c.traces > 0 and c.points > 0 for c in paper_page.charts)


def test_a_paper_runs_report_shows_the_figures_of_the_run_summary_it_printed(
    paper_page: LoadedPage, paper_run: tuple[Path, Path, RunSummary]
) -> None:
    summary = paper_run[2]
    assert summary.quoting_fills.count > 0  # a run that traded
    missing, wrong = figure_mismatches(paper_page.figures(), run_summary_figures(summary, [MARKET]))
    assert missing == []
    assert wrong == {}


def test_a_paper_runs_report_has_its_screenshot_at_the_page_width(
    paper_page: LoadedPage, paper_run: tuple[Path, Path, RunSummary]
) -> None:
    width, height = png_size(paper_run[1].with_suffix(".png"))
    assert width == 1400
    assert height > 2000  # the whole page: header, summary and six charts


def test_a_paper_runs_journal_holds_every_markout_its_summary_averages(
    paper_run: tuple[Path, Path, RunSummary],
) -> None:
    config, _, summary = paper_run
    data = load_run_data(config.parent / "state" / "restart-test.journal")
    (market,) = data.markets
    journaled: dict[str, int] = {}
    for markout in market.markouts:
        journaled[markout.horizon] = journaled.get(markout.horizon, 0) + 1
    assert journaled == {h: n for h, (_, n) in summary.markouts.items() if n}


# -- a replay of the recorded captures with --report ------------------------------------------


@pytest.fixture(scope="module")
def replay_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunSummary]:
    captures = recorded()
    folder = tmp_path_factory.mktemp("replay")
    page, summary = folder / "replay.html", folder / "summary.json"
    mm_daemon(
        "replay",
        "--config",
        str(REPLAY_CONFIG),
        "--data-dir",
        str(captures),
        "--duration",
        "120",
        "--summary-json",
        str(summary),
        "--report",
        str(page),
        cwd=folder,
        env={"MMD_LOGGING__LEVEL": "warning"},
    )
    return page, summary_from_dict(json.loads(summary.read_text()))


@pytest.fixture(scope="module")
def replay_page(chromium: Chromium, replay_run: tuple[Path, RunSummary]) -> Iterator[LoadedPage]:
    loaded = open_and_screenshot(chromium, replay_run[0])
    yield loaded
    loaded.page.close()


def test_a_replays_report_loads_with_no_console_error_and_draws_every_chart(
    replay_page: LoadedPage,
) -> None:
    assert replay_page.console_errors == []
    assert replay_page.page_errors == []
    assert replay_page.refused_requests == []
    assert [chart.name for chart in replay_page.charts] == list(MARKET_CHARTS)
    assert all(c.drawn and c.traces > 0 and c.points > 0 for c in replay_page.charts)


def test_a_replays_report_shows_the_figures_of_its_run_summary(
    replay_page: LoadedPage, replay_run: tuple[Path, RunSummary]
) -> None:
    summary = replay_run[1]
    assert summary.hedge_orders > 0  # the window hedges: hedge figures are compared too
    missing, wrong = figure_mismatches(
        replay_page.figures(), run_summary_figures(summary, ["BTC/USDT@binance-spot"])
    )
    assert missing == []
    assert wrong == {}
    assert replay_page.figures()["run.mode"] == "replay"


def test_a_replays_report_has_its_screenshot(
    replay_page: LoadedPage, replay_run: tuple[Path, RunSummary]
) -> None:
    assert png_size(replay_run[0].with_suffix(".png"))[0] == 1400


# -- a sweep of two parameters with --report ---------------------------------------------------


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    captures = recorded()
    folder = tmp_path_factory.mktemp("sweep")
    page, summaries = folder / "sweep.html", folder / "sweep.json"
    sets = [arg for item in SWEEP_SETS for arg in ("--set", item)]
    printed = mm_daemon(
        "replay",
        "--config",
        str(REPLAY_CONFIG),
        "--data-dir",
        str(captures),
        "--duration",
        "60",
        "--jobs",
        "2",
        *sets,
        "--summary-json",
        str(summaries),
        "--report",
        str(page),
        cwd=folder,
    )
    assert printed.rstrip().endswith(f"wrote {page}: 4 combinations")
    return page, json.loads(summaries.read_text())


@pytest.fixture(scope="module")
def sweep_page(
    chromium: Chromium, sweep_run: tuple[Path, list[dict[str, Any]]]
) -> Iterator[LoadedPage]:
    loaded = open_and_screenshot(chromium, sweep_run[0])
    yield loaded
    loaded.page.close()


def test_a_sweeps_page_loads_with_no_console_error_and_draws_every_chart(
    sweep_page: LoadedPage,
) -> None:
    assert sweep_page.console_errors == []
    assert sweep_page.page_errors == []
    assert sweep_page.refused_requests == []
    assert [c.name for c in sweep_page.charts] == [
        "pnl-vs-quoting.spread_bps",
        "pnl-vs-hedging.threshold_base",
        "pnl-curves",
    ]
    assert all(c.drawn and c.points > 0 for c in sweep_page.charts)


def test_a_sweeps_page_has_a_row_per_combination_with_its_pnl(
    sweep_page: LoadedPage, sweep_run: tuple[Path, list[dict[str, Any]]]
) -> None:
    rows = sweep_page.page.eval_on_selector_all(
        'table[data-table="sweep"] tbody tr',
        """rows => rows.map(r => [
            ...Array.from(r.querySelectorAll('td.param')).map(c => c.textContent),
            r.querySelector('td[data-key="pnl.total"]').textContent])""",
    )
    expected = [
        [*run["set"].values(), f"{run['summary']['pnl_quote']['total']:,.2f}"]
        for run in sweep_run[1]
    ]
    assert rows == expected


def test_a_sweeps_page_overlays_each_combinations_pnl_curve(sweep_page: LoadedPage) -> None:
    curves = sweep_page.page.evaluate(
        """() => document.querySelector('div.chart[data-chart="pnl-curves"]').data
            .map(t => [t.name, t.x.length])"""
    )
    assert [name for name, _ in curves] == [
        "quoting.spread_bps=1 hedging.threshold_base=0.02",
        "quoting.spread_bps=1 hedging.threshold_base=0.05",
        "quoting.spread_bps=2 hedging.threshold_base=0.02",
        "quoting.spread_bps=2 hedging.threshold_base=0.05",
    ]
    assert all(points >= 50 for _, points in curves)  # a point a second of the 60 s replayed
