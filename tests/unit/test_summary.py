"""The end-of-run summary: what it reports, as aligned text and as JSON-ready data."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mm_daemon.core.hedging import HedgeParams, Hedger
from mm_daemon.core.instruments import BTC_USDT_PERP, BTC_USDT_SPOT
from mm_daemon.core.inventory import Ledger
from mm_daemon.core.markouts import MarkoutTracker
from mm_daemon.core.pnl import COMPONENTS
from mm_daemon.core.summary import (
    AssetRecord,
    MarketRecord,
    RunSummary,
    build_portfolio_summary,
    build_run_summary,
    render_summary,
    summary_from_dict,
    summary_to_dict,
)
from mm_daemon.core.types import Fill, Instrument, Liquidity, Side

S = 1_000_000_000
T0 = 1_700_000_000 * S

SPOT = BTC_USDT_SPOT
PERP = BTC_USDT_PERP


def make_fill(
    instrument: Instrument, coid: str, side: Side, ticks: int, lots: int, *, fee: float
) -> Fill:
    return Fill(
        venue=instrument.venue,
        symbol=instrument.symbol,
        ts_exchange_ns=T0,
        ts_local_ns=T0,
        client_order_id=coid,
        exchange_order_id="1",
        trade_id="1",
        side=side,
        price_ticks=ticks,
        size_lots=lots,
        fee_quote=fee,
        liquidity=Liquidity.TAKER if coid.startswith("hdg-") else Liquidity.MAKER,
    )


def run() -> RunSummary:
    ledger = Ledger(SPOT)
    ledger.add_instrument(PERP)
    markouts = MarkoutTracker()
    hedger = Hedger(HedgeParams(threshold_base=0.02), PERP)
    hedger.on_touch(600_000, 600_001)
    ledger.on_fair_value(SPOT.venue, SPOT.symbol, 60_000.0)
    ledger.on_fair_value(PERP.venue, PERP.symbol, 60_000.05)
    hedger.on_fair_values(T0, 60_000.0, 60_000.05)
    markouts.on_fair_value(T0, 60_000.0)
    for _ in range(3):
        ledger.on_fill(make_fill(SPOT, "q-1", Side.BUY, 5_999_900, 1_000, fee=-0.06))
        markouts.on_fill(T0, Side.BUY)
    intent = hedger.decide(T0, ledger.net_exposure_base)
    assert intent is not None
    ledger.on_hedge_intent(intent)
    fill = make_fill(PERP, intent.request.client_order_id, Side.SELL, 599_990, 30, fee=0.36)
    ledger.on_fill(fill)
    hedger.on_fill(fill)
    markouts.advance(T0 + S)
    return build_run_summary(ledger, markouts, hedger, duration_seconds=60.0)


def test_summary_counts_fills_by_side_and_liquidity() -> None:
    summary = run()
    assert (summary.quoting_fills.buys, summary.quoting_fills.sells) == (3, 0)
    assert (summary.quoting_fills.maker, summary.quoting_fills.taker) == (3, 0)
    assert summary.hedge_fills.count == 1


def test_summary_reports_volume_in_base_and_quote() -> None:
    summary = run()
    assert summary.quoting_fills.volume_base == pytest.approx(0.03)
    assert summary.quoting_fills.volume_quote == pytest.approx(0.03 * 59_999.0)


def test_summary_pnl_components_add_up_to_the_total() -> None:
    pnl = run().pnl_quote
    assert sum(pnl[c] for c in COMPONENTS) == pytest.approx(pnl["total"])
    assert pnl["spread_capture"] == pytest.approx(0.03)
    assert pnl["fees"] == pytest.approx(0.18)


def test_summary_reports_hedging_and_exposure() -> None:
    summary = run()
    assert summary.hedge_orders == 1
    assert summary.max_abs_net_exposure_base == pytest.approx(0.03)
    assert summary.net_exposure_base == pytest.approx(0.0, abs=1e-12)
    assert summary.pnl_quote["hedge_cost"] == pytest.approx(-0.03 * 1.05 - 0.36)


def test_summary_reports_mean_markouts_only_for_completed_horizons() -> None:
    markouts = run().markouts
    assert markouts["1s"] == (0.0, 3)
    assert markouts["60s"] == (None, 0)


def test_rendered_table_has_aligned_columns() -> None:
    body = render_summary(run()).splitlines()[1:]
    assert len({len(line) for line in body}) == 1  # rules and rows share one width
    assert all(not line.endswith(" ") for line in body)  # values end on the right edge


def test_rendered_table_names_every_pnl_component_and_the_total() -> None:
    text = render_summary(run())
    for component in (*COMPONENTS, "total"):
        assert f" {component} " in text
    assert "mean at 1s (n=3)" in text
    assert "run summary: 60.0 s" in text


def test_dict_form_is_json_serializable_and_matches_the_summary() -> None:
    summary = run()
    data = json.loads(json.dumps(summary_to_dict(summary)))
    assert data["pnl_quote"]["total"] == pytest.approx(summary.pnl_quote["total"])
    assert data["fills"]["quoting"]["count"] == 3
    assert data["hedging"]["orders"] == 1
    assert data["markouts_bps"]["60s"] == {"mean": None, "count": 0}


def test_summary_without_hedger_or_markouts_still_renders() -> None:
    ledger = Ledger(SPOT)
    summary = build_run_summary(ledger, None, None, duration_seconds=1.0)
    text = render_summary(summary)
    assert summary.hedge_orders == 0
    assert "total" in text


def test_a_summary_read_back_from_its_json_equals_the_original() -> None:
    ledger = Ledger(SPOT)
    ledger.add_instrument(PERP)
    markouts = MarkoutTracker()
    markouts.on_fair_value(T0, 60_000.0)
    ledger.on_fair_value(SPOT.venue, SPOT.symbol, 60_000.0)
    ledger.on_fill(make_fill(SPOT, "q-1", Side.BUY, 5_999_900, 1_000, fee=-0.06))
    markouts.on_fill(T0, Side.BUY)
    markouts.advance(T0 + 2 * S)
    summary = build_portfolio_summary(
        [
            AssetRecord(
                ledger,
                None,
                (MarketRecord("BTC/USDT@sim-spot", SPOT.venue, SPOT.symbol, markouts),),
            )
        ],
        60.0,
    )
    # As a journal keeps it: JSON with its keys sorted.
    text = json.dumps(summary_to_dict(summary), sort_keys=True)
    assert summary_from_dict(json.loads(text)) == summary


def test_a_market_that_failed_to_start_is_named_with_its_reason_and_read_back() -> None:
    summary = dataclasses.replace(
        build_run_summary(Ledger(SPOT), None, None, duration_seconds=1.0),
        failed_markets=(("DOGE/XYZ@sim-spot", "venue sim-spot: unknown symbol 'DOGE/XYZ'"),),
    )
    text = render_summary(summary)
    assert text.endswith(
        "\nmarket DOGE/XYZ@sim-spot failed to start: venue sim-spot: unknown symbol 'DOGE/XYZ'"
    )
    data = json.loads(json.dumps(summary_to_dict(summary), sort_keys=True))
    assert data["failed_markets"] == {
        "DOGE/XYZ@sim-spot": "venue sim-spot: unknown symbol 'DOGE/XYZ'"
    }
    assert summary_from_dict(data) == summary
    # A summary journaled before the field existed reads back with none.
    del data["failed_markets"]
    assert summary_from_dict(data).failed_markets == ()


def test_markout_horizons_read_back_shortest_first_whatever_the_json_order() -> None:
    text = json.dumps(summary_to_dict(run()), sort_keys=True)  # "1s", "30s", "5s", "60s"
    assert list(summary_from_dict(json.loads(text)).markouts) == ["1s", "5s", "30s", "60s"]
