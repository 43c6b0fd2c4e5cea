"""Run reports without a browser: what is drawn, what is thinned, what the page holds."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest

from mm_daemon.core.risk import RiskState
from mm_daemon.report import run_report_html, sweep_report_html
from mm_daemon.report.data import Pnl, RunData, Snapshot, intervals_from_snapshots
from mm_daemon.report.series import (
    bin_counts,
    bin_edges,
    downsample_minmax,
    latest_at,
    quantile,
)
from mm_daemon.report.synthetic import synthetic_run, synthetic_sweep

NS = 1_000_000_000


@pytest.fixture(scope="module")
def short_run() -> RunData:
    return synthetic_run(seconds=300, fills_per_market=200)


def snapshot(second: int, *, state: RiskState = RiskState.ACTIVE, paused: bool = False) -> Snapshot:
    return Snapshot(
        ts_ns=second * NS,
        fair_value=100.0,
        best_bid=99.99,
        best_ask=100.01,
        bid_quote=99.98,
        ask_quote=100.02,
        position_base=0.0,
        net_exposure_base=0.0,
        pnl=Pnl(),
        risk_state=state,
        paused=paused,
    )


def figures_of(page: str) -> list[dict[str, Any]]:
    blocks = re.findall(r'<script type="application/json" id="figure-\d+">(.*?)</script>', page)
    return [json.loads(block) for block in blocks]


# -- series ------------------------------------------------------------------------------------


def test_downsampling_keeps_a_one_sample_spike() -> None:
    xs = list(range(100_000))
    ys: list[float | None] = [0.0] * 100_000
    ys[61_234] = 50.0
    ys[7_000] = -20.0
    out_x, out_y = downsample_minmax(xs, ys, 1_000)
    assert len(out_x) <= 1_000
    assert (61_234, 50.0) in zip(out_x, out_y, strict=True)
    assert (7_000, -20.0) in zip(out_x, out_y, strict=True)
    assert out_x == sorted(out_x)


def test_downsampling_leaves_a_short_series_as_it_is() -> None:
    ys: list[float | None] = [1.0, None, 3.0]
    assert downsample_minmax([1, 2, 3], ys, 10) == ([1, 2, 3], [1.0, None, 3.0])


def test_downsampling_keeps_a_gap_where_a_bucket_has_no_value() -> None:
    ys: list[float | None] = [1.0] * 50 + [None] * 50 + [2.0] * 50
    _, out_y = downsample_minmax(list(range(150)), ys, 30)
    assert None in out_y


def test_quantile_interpolates_between_order_statistics() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert quantile(values, 0.0) == 1.0
    assert quantile(values, 0.5) == 2.5
    assert quantile(values, 1.0) == 4.0


def test_histogram_counts_tails_in_the_edge_bins() -> None:
    values = [float(v) for v in range(1000)] + [1e9]
    edges = bin_edges(values, 10)
    counts = bin_counts(values, edges)
    assert sum(counts) == len(values)
    assert edges[-1] < 1e9


def test_latest_at_puts_series_on_one_grid_of_their_latest_points() -> None:
    grid, (a, b) = latest_at([[0, 2 * NS], [NS + 5]], NS)
    assert grid == [0, NS, 2 * NS]
    assert a == [0, 0, 1]
    assert b == [-1, 0, 0]


# -- data --------------------------------------------------------------------------------------


def test_intervals_from_snapshots_span_each_stretch_out_of_active() -> None:
    snaps = [
        snapshot(0),
        snapshot(1, state=RiskState.REDUCING),
        snapshot(2, state=RiskState.REDUCING, paused=True),
        snapshot(3, paused=True),
        snapshot(4),
        snapshot(5, state=RiskState.HALTED),
    ]
    intervals = {
        (i.kind, i.start_ns // NS, i.end_ns // NS) for i in intervals_from_snapshots(snaps)
    }
    assert intervals == {("REDUCING", 1, 3), ("paused", 2, 4), ("HALTED", 5, 5)}


def test_pnl_from_a_summary_without_funding_reads_zero_funding() -> None:
    pnl = Pnl.from_mapping({"spread_capture": 2.0, "fees": -0.5, "total": 1.5})
    assert (pnl.funding, pnl.component("total")) == (0.0, 1.5)


def test_synthetic_run_snapshots_end_at_the_summary_pnl(short_run: RunData) -> None:
    for market in short_run.markets:
        assert market.snapshots[-1].pnl.total == pytest.approx(market.summary.pnl_quote["total"])


# -- the run page ------------------------------------------------------------------------------


def test_run_page_loads_nothing_from_elsewhere(short_run: RunData) -> None:
    page = run_report_html(short_run)
    assert re.search(r"<(script|img|iframe)[^>]*\bsrc=", page) is None
    assert re.search(r"<link[^>]*\bhref=", page) is None


def test_run_page_shows_the_config_text_escaped(short_run: RunData) -> None:
    data = dataclasses.replace(short_run, config_text="quoting: {}\n# </script><b>x</b>\n")
    page = run_report_html(data)
    assert "# &lt;/script&gt;&lt;b&gt;x&lt;/b&gt;" in page
    assert "<b>x</b>" not in page


def test_run_page_market_name_cannot_end_a_figure_block(short_run: RunData) -> None:
    market = dataclasses.replace(short_run.markets[0], market="X</script><script>alert(1)")
    page = run_report_html(dataclasses.replace(short_run, markets=(market,)))
    assert "</script><script>alert(1)" not in page
    assert len(figures_of(page)) == 6  # every figure block still parses


def test_run_page_of_one_market_has_no_portfolio_section(short_run: RunData) -> None:
    page = run_report_html(dataclasses.replace(short_run, markets=short_run.markets[:1]))
    assert 'id="portfolio"' not in page
    assert page.count('class="chart"') == 6


def test_run_page_draws_funding_only_when_the_run_tracked_it(short_run: RunData) -> None:
    def drawn_components(data: RunData) -> list[str]:
        pnl = next(f for f in figures_of(run_report_html(data)) if "P&L (" in json.dumps(f))
        return [str(trace["name"]) for trace in pnl["data"]]

    tracked = short_run.markets[0]
    # A run journaled before funding was booked: its summary has no funding line.
    untracked = {k: v for k, v in tracked.summary.pnl_quote.items() if k != "funding"}
    market = dataclasses.replace(
        tracked, summary=dataclasses.replace(tracked.summary, pnl_quote=untracked)
    )
    with_funding = dataclasses.replace(
        market,
        summary=dataclasses.replace(market.summary, pnl_quote={**untracked, "funding": -1.25}),
    )
    single = dataclasses.replace(short_run, markets=(market,))
    assert "funding" not in drawn_components(single)
    assert "funding" in drawn_components(dataclasses.replace(single, markets=(with_funding,)))


# -- the sweep page ----------------------------------------------------------------------------


def test_sweep_page_needs_a_combination() -> None:
    with pytest.raises(ValueError, match="at least one combination"):
        sweep_report_html([])


def test_sweep_page_rows_carry_sortable_values() -> None:
    results = synthetic_sweep(
        half_spreads_bps=(1.0, 2.0), hedge_thresholds_base=(0.05,), seconds=120
    )
    page = sweep_report_html(results)
    sorts = re.findall(r'data-key="pnl.total" data-sort="([^"]*)"', page)
    assert [float(v) for v in sorts] == [r.summary["pnl_quote"]["total"] for r in results]
