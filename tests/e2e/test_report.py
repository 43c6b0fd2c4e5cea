"""Run reports and sweep pages opened in headless Chromium, as the person reading them would.

The run is a synthetic hour of two markets (1 s snapshots, about 5,000 fills) booked by the
core's ledger; each page is written to a file, opened from file:// with every network request
refused, and inspected once every chart has drawn. Screenshots are saved beside the page.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from mm_daemon.core.summary import RunSummary
from mm_daemon.core.types import Side
from mm_daemon.report import render_run_report, render_sweep_report
from mm_daemon.report.charts import DISPLAY_POINTS
from mm_daemon.report.data import RunData, SweepResult
from mm_daemon.report.html import MARKET_CHARTS, PORTFOLIO_CHARTS
from mm_daemon.report.synthetic import synthetic_run, synthetic_sweep
from tools.chromium import Chromium, LoadedPage

pytestmark = pytest.mark.e2e

NS = 1_000_000_000


@pytest.fixture(scope="module")
def run_data() -> RunData:
    return synthetic_run(seconds=3600, fills_per_market=2500)


@pytest.fixture(scope="module")
def run_page(
    chromium: Chromium, run_data: RunData, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoadedPage]:
    folder = tmp_path_factory.mktemp("run-report")
    loaded = chromium.open_page(render_run_report(run_data, folder / "report.html"))
    loaded.screenshot(folder / "report.png")
    yield loaded
    loaded.page.close()


@pytest.fixture(scope="module")
def sweep_results() -> list[SweepResult]:
    return synthetic_sweep()


@pytest.fixture
def sweep_page(
    chromium: Chromium, sweep_results: list[SweepResult], tmp_path: Path
) -> Iterator[LoadedPage]:
    loaded = chromium.open_page(render_sweep_report(sweep_results, tmp_path / "sweep.html"))
    loaded.screenshot(tmp_path / "sweep.png")
    yield loaded
    loaded.page.close()


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


# -- the run report ---------------------------------------------------------------------------


def test_run_report_loads_with_no_console_error_and_no_network(run_page: LoadedPage) -> None:
    assert run_page.console_errors == []
    assert run_page.page_errors == []
    assert run_page.refused_requests == []


def test_run_report_draws_every_chart_of_each_market_and_the_portfolio(
    run_page: LoadedPage, run_data: RunData
) -> None:
    expected = [*PORTFOLIO_CHARTS, *(MARKET_CHARTS * len(run_data.markets))]
    assert [chart.name for chart in run_page.charts] == expected
    assert all(chart.drawn and chart.traces > 0 and chart.points > 0 for chart in run_page.charts)


def test_run_report_screenshot_is_saved_at_the_page_width(
    run_page: LoadedPage, tmp_path: Path
) -> None:
    width, height = png_size(run_page.screenshot(tmp_path / "top.png", height=1600))
    assert (width, height) == (1400, 1600)


def summary_figures(prefix: str, s: RunSummary) -> dict[str, float | None]:
    """What the page must show of one run summary, by the page's data-key."""
    figures: dict[str, float | None] = {
        "fills.quoting.buys": s.quoting_fills.buys,
        "fills.quoting.sells": s.quoting_fills.sells,
        "fills.quoting.maker": s.quoting_fills.maker,
        "fills.quoting.taker": s.quoting_fills.taker,
        "fills.hedge.buys": s.hedge_fills.buys,
        "fills.hedge.sells": s.hedge_fills.sells,
        "volume.quoting.base": s.quoting_fills.volume_base,
        "volume.quoting.quote": s.quoting_fills.volume_quote,
        "volume.hedge.base": s.hedge_fills.volume_base,
        "volume.hedge.quote": s.hedge_fills.volume_quote,
        "exposure.net_end": s.net_exposure_base,
        "exposure.max_abs": s.max_abs_net_exposure_base,
        "hedging.orders": s.hedge_orders,
        "hedging.rejects": s.hedge_rejects,
        "hedging.timeouts": s.hedge_timeouts,
        "hedging.cost": s.pnl_quote["hedge_cost"],
        "hedging.mean_slippage_bps": s.hedge_mean_slippage_bps,
        "hedging.unhedged_seconds": s.unhedged_exposure_seconds,
        "pnl.funding": s.pnl_quote.get("funding"),
    }
    for name, value in s.pnl_quote.items():
        figures[f"pnl.{name}"] = value
    for horizon, (mean, count) in s.markouts.items():
        figures[f"markouts.{horizon}.mean"] = mean
        figures[f"markouts.{horizon}.count"] = count
    return {prefix + key: value for key, value in figures.items()}


def matches_display(text: str, value: float | None) -> bool:
    """The text shows the value to its last printed digit (n/a for no value)."""
    if value is None:
        return text == "n/a"
    number = re.fullmatch(r"[+-]?[\d,]+(\.(\d+))?", text)
    if number is None:
        return False
    decimals = len(number.group(2) or "")
    return abs(float(text.replace(",", "")) - value) <= 0.5 * 10**-decimals + 1e-9


def test_run_report_header_figures_equal_the_run_summaries(
    run_page: LoadedPage, run_data: RunData
) -> None:
    shown = run_page.figures()
    expected: dict[str, float | None] = {}
    for market in run_data.markets:
        expected |= summary_figures(f"{market.market}:", market.summary)
    summaries = [m.summary for m in run_data.markets]
    expected |= {
        "card.pnl.total": sum(s.pnl_quote["total"] for s in summaries),
        "card.pnl.spread_capture": sum(s.pnl_quote["spread_capture"] for s in summaries),
        "card.volume_quote": sum(s.quoting_fills.volume_quote for s in summaries),
        "card.fills": sum(s.quoting_fills.count for s in summaries),
        "card.hedges": sum(s.hedge_orders for s in summaries),
        "portfolio.total.pnl.total": sum(s.pnl_quote["total"] for s in summaries),
        "portfolio.total.fills": sum(s.quoting_fills.count for s in summaries),
    }
    missing = sorted(set(expected) - set(shown))
    wrong = {
        key: (shown[key], value)
        for key, value in expected.items()
        if key in shown and not matches_display(shown[key], value)
    }
    assert missing == []
    assert wrong == {}


def test_run_report_header_shows_mode_and_duration(run_page: LoadedPage, run_data: RunData) -> None:
    shown = run_page.figures()
    assert shown["run.mode"] == run_data.mode
    assert "(3,600.0 s)" in shown["run.duration_seconds"]


def test_zooming_the_quotes_chart_draws_every_fill_of_the_window(
    run_page: LoadedPage, run_data: RunData
) -> None:
    # Zooms the shared page's first quotes chart; the other tests do not look at its view.
    loaded = run_page
    quotes = loaded.page.locator('div.chart[data-chart="quotes"]').first
    quotes.locator(".rangeselector .button", has_text=re.compile(r"^5m$")).click()
    window_start_ms = (run_data.ended_ns - 300 * NS) // 1_000_000
    loaded.page.wait_for_function(
        """start => {
            const d = document.querySelector('div.chart[data-chart="quotes"]');
            const fills = d.data.filter(t => t.mode === 'markers');
            return fills.every(t => t.x.length > 0 && t.x[0] >= start);
        }""",
        arg=window_start_ms,
        timeout=30_000,
    )
    drawn = loaded.page.evaluate(
        """() => {
            const d = document.querySelector('div.chart[data-chart="quotes"]');
            return d.data.filter(t => t.mode === 'markers').map(t => t.x.length);
        }"""
    )
    market = run_data.markets[0]
    in_window = [
        sum(
            1
            for f in market.fills
            if not f.is_hedge and f.side is side and f.ts_ns // 1_000_000 >= window_start_ms
        )
        for side in (Side.BUY, Side.SELL)
    ]
    assert drawn == in_window
    assert loaded.console_errors == []
    assert loaded.page_errors == []


def test_zooming_the_quotes_chart_redraws_its_lines_at_every_snapshot_of_the_window(
    run_page: LoadedPage, run_data: RunData
) -> None:
    # The hour has more snapshots than a line draws for the whole run; 15 minutes have fewer.
    snapshots = run_data.markets[0].snapshots
    assert len(snapshots) > DISPLAY_POINTS
    quotes = run_page.page.locator('div.chart[data-chart="quotes"]').first
    quotes.locator(".rangeselector .button", has_text=re.compile(r"^15m$")).click()
    window_start_ms = (run_data.ended_ns - 900 * NS) // 1_000_000
    fair_x = run_page.page.wait_for_function(
        """start => {
            const d = document.querySelector('div.chart[data-chart="quotes"]');
            const fair = d.data.find(t => t.name === 'fair value');
            return fair.x[1] >= start ? fair.x : null;
        }""",
        arg=window_start_ms,
        timeout=30_000,
    ).json_value()
    expected = [s.ts_ns // 1_000_000 for s in snapshots if s.ts_ns // 1_000_000 >= window_start_ms]
    assert fair_x[1:] == expected  # and one point before the window, so the line meets the edge
    assert fair_x[0] < window_start_ms


# -- the sweep page ---------------------------------------------------------------------------


def test_sweep_page_loads_with_no_console_error_and_draws_every_chart(
    sweep_page: LoadedPage, sweep_results: list[SweepResult]
) -> None:
    params = list(sweep_results[0].values)
    assert sweep_page.console_errors == []
    assert sweep_page.page_errors == []
    assert sweep_page.refused_requests == []
    assert [c.name for c in sweep_page.charts] == [*(f"pnl-vs-{p}" for p in params), "pnl-curves"]
    assert all(chart.drawn and chart.points > 0 for chart in sweep_page.charts)


def table_column(page: LoadedPage, key: str) -> list[str]:
    return page.page.eval_on_selector_all(
        f'table[data-table="sweep"] tbody td[data-key="{key}"]',
        "cells => cells.map(c => c.textContent)",
    )


def test_sweep_table_has_one_row_per_combination(
    sweep_page: LoadedPage, sweep_results: list[SweepResult]
) -> None:
    rows = sweep_page.page.eval_on_selector_all(
        'table[data-table="sweep"] tbody tr',
        "rows => rows.map(r => Array.from(r.querySelectorAll('td.param')).map(c => c.textContent))",
    )
    assert rows == [list(r.values.values()) for r in sweep_results]


def test_sweep_table_sorts_by_a_clicked_header_and_reverses_on_a_second_click(
    sweep_page: LoadedPage, sweep_results: list[SweepResult]
) -> None:
    totals = sorted(r.summary["pnl_quote"]["total"] for r in sweep_results)
    header = sweep_page.page.locator('table[data-table="sweep"] th', has_text="P&L total")
    header.click()
    ascending = [float(t.replace(",", "")) for t in table_column(sweep_page, "pnl.total")]
    header.click()
    descending = [float(t.replace(",", "")) for t in table_column(sweep_page, "pnl.total")]
    assert ascending == pytest.approx(totals, abs=0.005)
    assert descending == pytest.approx(totals[::-1], abs=0.005)
