"""A run's report read from its journal: the records a run wrote through the Journal API become
what the page shows, and the page's figures are the run summary's."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from mm_daemon.core.markouts import horizon_seconds
from mm_daemon.core.summary import RunSummary, summary_to_dict
from mm_daemon.engine.journal import Journal, JournalError, load_run_series
from mm_daemon.report import run_report_html
from mm_daemon.report.data import RunData
from mm_daemon.report.journal import load_run_data, parse_time, pnl_curve, runs_table
from mm_daemon.report.page import esc
from mm_daemon.report.synthetic import DEFAULT_MARKETS, write_synthetic_journal

NS = 1_000_000_000
START_NS = 1_767_261_600 * NS  # the synthetic run's start: 2026-01-01 10:00 UTC
SECONDS = 300


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunSummary]:
    """A 5-minute paper run of two markets (BTC, ETH), each hedged on its perpetual."""
    path = tmp_path_factory.mktemp("journal") / "run.journal"
    summary = write_synthetic_journal(path, seconds=SECONDS, fills_per_market=250)
    return path, summary


@pytest.fixture(scope="module")
def data(journal: tuple[Path, RunSummary]) -> RunData:
    return load_run_data(journal[0])


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunData, RunSummary]:
    """A run of one market, BTC, hedged."""
    path = tmp_path_factory.mktemp("single") / "run.journal"
    summary = write_synthetic_journal(
        path, seconds=SECONDS, fills_per_market=250, markets=DEFAULT_MARKETS[:1]
    )
    return load_run_data(path), summary


def test_the_run_summary_is_read_back_as_the_daemon_ended_with_it(
    data: RunData, journal: tuple[Path, RunSummary]
) -> None:
    assert data.summary == journal[1]
    assert data.note == ""


def test_each_market_shows_its_own_summary_of_the_run(
    data: RunData, journal: tuple[Path, RunSummary]
) -> None:
    assert [(m.market, m.summary) for m in data.markets] == list(journal[1].markets)


def test_markets_come_in_the_order_of_the_config_with_their_limits(data: RunData) -> None:
    assert [(m.market, m.inventory_limit_base, m.hedge_threshold_base) for m in data.markets] == [
        ("BTC/USDT@sim-spot", 0.1, 0.04),
        ("ETH/USDT@sim-spot", 2.0, 0.8),
    ]


def test_quoting_fills_go_to_their_market_and_hedge_fills_to_every_market_of_the_asset(
    data: RunData,
) -> None:
    for market in data.markets:
        quoting = [f for f in market.fills if not f.is_hedge]
        hedges = [f for f in market.fills if f.is_hedge]
        assert {(f.venue, f.symbol) for f in quoting} == {(market.venue, market.symbol)}
        assert {(f.venue, f.symbol) for f in hedges} == {(market.hedge_venue, market.hedge_symbol)}
        assert len(quoting) == market.summary.quoting_fills.count
        assert len(hedges) == market.summary.hedge_fills.count


def test_spread_capture_per_fill_adds_up_to_the_markets_spread_capture(data: RunData) -> None:
    for market in data.markets:
        total = sum(f.spread_capture_quote for f in market.fills if not f.is_hedge)
        assert total == pytest.approx(market.summary.pnl_quote["spread_capture"], abs=1e-6)


def test_the_markouts_are_exactly_those_the_run_summary_averages(data: RunData) -> None:
    for market in data.markets:
        by_horizon: dict[str, list[float]] = {}
        for markout in market.markouts:
            by_horizon.setdefault(markout.horizon, []).append(markout.bps)
        expected = {h: (mean, n) for h, (mean, n) in market.summary.markouts.items() if n}
        assert {
            h: (pytest.approx(sum(v) / len(v), abs=1e-12), len(v)) for h, v in by_horizon.items()
        } == expected


def test_the_assets_whole_ledgers_end_at_the_run_summarys_pnl(data: RunData) -> None:
    assert data.summary is not None
    for name, value in data.summary.pnl_quote.items():
        at_end = sum(asset.snapshots[-1].pnl.component(name) for asset in data.assets)
        assert at_end == pytest.approx(value, abs=1e-9), name


def test_with_several_markets_a_markets_pnl_is_its_own_fills(data: RunData) -> None:
    for market in data.markets:
        assert market.snapshots[-1].pnl.total == pytest.approx(
            market.summary.pnl_quote["total"], abs=1e-9
        )
        assert market.snapshots[-1].pnl.hedge_cost == 0.0


def test_a_single_market_shows_its_whole_ledger_as_the_run_summary_does(
    single: tuple[RunData, RunSummary],
) -> None:
    data, summary = single
    (market,) = data.markets
    assert market.summary == summary
    assert market.snapshots[-1].pnl.total == pytest.approx(summary.pnl_quote["total"], abs=1e-9)
    assert market.snapshots[-1].pnl.hedge_cost == pytest.approx(
        summary.pnl_quote["hedge_cost"], abs=1e-9
    )
    assert summary.pnl_quote["hedge_cost"] != 0.0


def test_hedges_that_were_rejected_show_as_not_filled(data: RunData) -> None:
    eth = data.markets[1]  # its hedge venue is down for a while: hedges are refused
    refused = [h for h in eth.hedges if h.slippage_bps is None]
    assert len(refused) == eth.summary.hedge_rejects > 0
    assert all(h.size_base == 0.0 for h in refused)


def test_reducing_spans_come_from_the_risk_changes_with_their_reason(data: RunData) -> None:
    eth = data.markets[1]
    reducing = [i for i in eth.intervals if i.kind == "REDUCING"]
    assert reducing
    assert {i.reason for i in reducing} == {"inventory limit"}
    assert all(i.end_ns > i.start_ns for i in reducing)


def test_a_pause_spans_its_snapshots_with_the_quoters_reason(data: RunData) -> None:
    btc = data.markets[0]
    (pause,) = [i for i in btc.intervals if i.kind == "paused"]
    assert pause.reason == "stale"
    assert (pause.start_ns - START_NS) // NS == SECONDS * 2 // 3
    assert (pause.end_ns - pause.start_ns) // NS == 60


def test_the_pnl_curve_of_a_sweep_is_the_sum_of_the_assets(
    journal: tuple[Path, RunSummary],
) -> None:
    path, summary = journal
    curve = pnl_curve(load_run_series(path))
    assert len(curve) == SECONDS
    assert curve[-1][1] == pytest.approx(summary.pnl_quote["total"], abs=1e-9)


def test_a_killed_run_has_no_summary_and_its_figures_are_rebuilt_from_the_journal(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run.journal"
    ended = write_synthetic_journal(path, seconds=SECONDS, fills_per_market=250, end_run=False)
    with Journal.open(path) as journal:  # the next start closes the killed run as unclean
        journal.start_run(mode="paper", instance_id="synthetic", config_yaml="", ts_ns=START_NS)
    data = load_run_data(path, 1)
    assert data.summary is None
    assert "did not end cleanly" in data.note
    for market, (_, summary) in zip(data.markets, ended.markets, strict=True):
        rebuilt = market.summary
        assert rebuilt.quoting_fills == summary.quoting_fills
        assert {h: n for h, (_, n) in rebuilt.markouts.items()} == {
            h: n for h, (_, n) in summary.markouts.items()
        }
        for horizon, (mean, _) in rebuilt.markouts.items():
            assert mean == pytest.approx(summary.markouts[horizon][0], abs=1e-12)
        assert rebuilt.pnl_quote["total"] == pytest.approx(summary.pnl_quote["total"], abs=1e-9)
        assert rebuilt.hedge_orders == summary.hedge_orders


def test_a_time_range_holds_only_its_records_and_says_it_is_no_whole_run(
    journal: tuple[Path, RunSummary],
) -> None:
    start, end = START_NS + 60 * NS, START_NS + 120 * NS
    data = load_run_data(journal[0], start_ns=start, end_ns=end)
    assert data.summary is None
    assert "time range" in data.note
    assert (data.started_ns, data.ended_ns) == (start, end)
    for market in data.markets:
        assert all(start <= f.ts_ns <= end for f in market.fills)
        assert all(start <= s.ts_ns <= end for s in market.snapshots)
        assert len(market.snapshots) == 61


def test_the_page_of_a_journaled_run_shows_the_hedges_row_and_the_run_summarys_total(
    data: RunData,
) -> None:
    page = run_report_html(data)
    assert data.summary is not None
    total = f"{data.summary.pnl_quote['total']:,.4f}"
    assert 'data-key="portfolio.total.pnl.total" class="' in page
    assert f">{total}</td>" in page
    assert 'data-key="portfolio.hedges.pnl.hedge_cost"' in page


def test_a_configured_market_without_records_is_named_on_the_page(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    write_synthetic_journal(path, seconds=60, fills_per_market=20, end_run=False)
    config = yaml.safe_load(load_run_series(path, 1).runs[0].config_yaml)
    config["markets"].append(
        {"name": "DOGE/USDT@sim-spot", "venue": "sim-spot", "symbol": "DOGE/USDT"}
    )
    # The run's config named a third market that never started (a killed run: no summary).
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE runs SET config_yaml = ? WHERE run_id = 1", (yaml.safe_dump(config),))
    data = load_run_data(path, 1)
    assert data.summary is None
    assert [m.market for m in data.markets] == ["BTC/USDT@sim-spot", "ETH/USDT@sim-spot"]
    assert data.failed_markets == (
        ("DOGE/USDT@sim-spot", "no records of it in the journal (it did not start or trade)"),
    )
    page = run_report_html(data)
    assert (
        'data-key="run.failed.DOGE/USDT@sim-spot">Market DOGE/USDT@sim-spot did not trade: '
        "no records of it in the journal (it did not start or trade)</p>"
    ) in page


def test_a_market_that_failed_to_start_is_named_with_the_run_summarys_reason(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run.journal"
    summary = write_synthetic_journal(path, seconds=60, fills_per_market=20)
    why = "venue sim-spot (binance, sim): unknown symbol 'DOGE/XYZ'"
    failed = dataclasses.replace(summary, failed_markets=(("DOGE/XYZ@sim-spot", why),))
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE runs SET summary_json = ? WHERE run_id = 1",
            (json.dumps(summary_to_dict(failed), sort_keys=True),),
        )
    data = load_run_data(path, 1)
    assert data.summary == failed
    assert data.failed_markets == (("DOGE/XYZ@sim-spot", why),)
    assert f"Market DOGE/XYZ@sim-spot did not trade: {esc(why)}</p>" in run_report_html(data)


def test_an_unknown_run_is_a_one_line_error(journal: tuple[Path, RunSummary]) -> None:
    with pytest.raises(JournalError, match="has no run 9"):
        load_run_data(journal[0], 9)


def test_the_runs_table_lists_each_run_with_its_fills_and_pnl(
    journal: tuple[Path, RunSummary],
) -> None:
    from mm_daemon.engine.journal import list_runs  # noqa: PLC0415  beside its use

    path, summary = journal
    head, row = runs_table(list_runs(path)).splitlines()
    assert head.split()[:3] == ["run", "mode", "started"]
    assert row.split()[:2] == ["1", "paper"]
    assert f"{summary.quoting_fills.count:,}" in row.split()
    assert f"{summary.pnl_quote['total']:,.2f}" in row


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T10:00", dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)),
        ("2026-01-01 10:00:30", dt.datetime(2026, 1, 1, 10, 0, 30, tzinfo=dt.UTC)),
        ("2026-01-01T12:00+02:00", dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)),
        ("1767261600", dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)),
    ],
)
def test_times_on_the_command_line_are_iso_in_utc_or_unix_seconds(
    text: str, expected: dt.datetime
) -> None:
    assert parse_time(text) == round(expected.timestamp()) * NS


def test_a_time_that_is_no_time_is_refused_saying_what_is_expected() -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time("yesterday")


def test_markout_horizons_sort_by_their_seconds() -> None:
    assert sorted(["60s", "1s", "30s", "5s", "0.5s"], key=horizon_seconds) == [
        "0.5s",
        "1s",
        "5s",
        "30s",
        "60s",
    ]
