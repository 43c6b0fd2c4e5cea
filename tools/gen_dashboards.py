"""Generate the Grafana dashboards of deploy/grafana/dashboards/ from Python.

    python tools/gen_dashboards.py          # write the JSON files
    python tools/gen_dashboards.py --check  # exit 1 if a checked-in file differs

The dashboards are built with grafana-foundation-sdk (the build for Grafana 11.6, pinned in
pyproject.toml) and checked in, so Grafana's file provisioning loads them as they are: stable uids,
a fixed datasource uid (the one deploy/grafana/provisioning/datasources/ declares), and no
`__inputs` placeholders.

The overview's variables: `$instance` (one daemon), `$market` (its markets, from the `market`
label), `$venue` and `$symbol` (market data). Every panel query filters on them where its metric
has the label: per-market series (quotes, orders, a market's P&L, risk and limits) on `$market`,
instrument series (books, fills, inventory) on `$venue` and `$symbol`, per-asset series (net
exposure, hedging) and the portfolio's on `$instance` only (the markets' rows show the net
exposure of the selected markets' assets).

A market's instrument and asset are read from its name (SYMBOL@VENUE unless the config names the
market otherwise; the asset is the text before the first "/"): no series ties a market to them.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import prometheus as prom_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import timeseries as ts_b
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dash_m

__all__ = [
    "DASHBOARDS_DIR",
    "DATASOURCE_UID",
    "OVERVIEW_UID",
    "build_dashboards",
    "main",
    "render",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS_DIR = REPO_ROOT / "deploy" / "grafana" / "dashboards"
DATASOURCE_UID = "mm-prometheus"
OVERVIEW_UID = "mm-daemon-overview"

DATASOURCE = dash_m.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)

# Label matchers shared by every query.
I = 'instance=~"$instance"'  # noqa: E741  one-letter names keep the PromQL below readable
IM = f'{I}, market=~"$market"'
IV = f'{I}, venue=~"$venue"'
IVS = f'{IV}, symbol=~"$symbol"'
RATE = "$__rate_interval"

# The selected markets with their instrument (venue, symbol) or their asset as labels, read from
# the market's name, to keep only the instrument or asset series of the selected markets.
_MARKETS = f"mm_quoting_paused{{{IM}}}"
MARKET_INSTRUMENTS = (
    f'label_replace(label_replace({_MARKETS}, "venue", "$2", "market", "(.+)@([^@]+)"), '
    '"symbol", "$1", "market", "(.+)@([^@]+)")'
)
MARKET_ASSETS = f'label_replace({_MARKETS}, "asset", "$1", "market", "([^/]+)/.*")'


@dataclass(frozen=True, slots=True)
class Query:
    expr: str
    legend: str


def _target(ref: str, query: Query) -> prom_b.Dataquery:
    return (
        prom_b.Dataquery()
        .ref_id(ref)
        .expr(query.expr)
        .legend_format(query.legend)
        .range()
        .datasource(DATASOURCE)
    )


def _refs(queries: tuple[Query, ...]) -> list[tuple[str, Query]]:
    return [(chr(ord("A") + i), q) for i, q in enumerate(queries)]


def timeseries(
    title: str,
    description: str,
    queries: tuple[Query, ...],
    *,
    unit: str = "short",
    width: int = 12,
    height: int = 8,
    repeat_per: str | None = None,
) -> ts_b.Panel:
    panel = (
        ts_b.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(height)
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .legend(
            common_b.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)  # noqa: FBT003  the SDK setter takes a positional bool
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(common_b.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI))
    )
    if repeat_per is not None:
        # One panel per selected value, side by side, two to a row.
        panel.repeat(repeat_per).repeat_direction("h").max_per_row(2)
    for ref, query in _refs(queries):
        panel.with_target(_target(ref, query))
    return panel


def stat(
    title: str,
    description: str,
    query: Query,
    *,
    unit: str = "short",
    steps: tuple[tuple[float | None, str], ...] = ((None, "green"),),
    texts: tuple[tuple[int, str], ...] = (),
    width: int = 4,
) -> stat_b.Panel:
    thresholds = (
        dash_b.ThresholdsConfig()
        .mode(dash_m.ThresholdsMode.ABSOLUTE)
        .steps([dash_m.Threshold(value=value, color=color) for value, color in steps])
    )
    panel = (
        stat_b.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(4)
        .thresholds(thresholds)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.AREA)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(_target("A", query))
    )
    if texts:
        # Words for coded values (risk states, up/failed); the thresholds keep the colours.
        panel.mappings(
            [
                dash_m.ValueMap(
                    {str(value): dash_m.ValueMappingResult(text=text) for value, text in texts}
                )
            ]
        )
    return panel


def _variable(name: str, label: str, query: str) -> dash_b.QueryVariable:
    return (
        dash_b.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dash_m.VariableSort.ALPHABETICAL_ASC)
        .multi(True)  # noqa: FBT003  the SDK setter takes a positional bool
        .include_all(True)  # noqa: FBT003  the SDK setter takes a positional bool
        .all_value(".*")
        .current(dash_m.VariableOption(selected=True, text="All", value="$__all"))
    )


def _quantiles(metric: str, matchers: str, by: str, label: str) -> tuple[Query, ...]:
    grouping = f"{by}, le" if by else "le"
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by ({grouping}) "
            f"(rate({metric}_bucket{{{matchers}}}[{RATE}])))",
            f"p{name} {label}".strip(),
        )
        for q, name in (("0.5", "50"), ("0.9", "90"), ("0.99", "99"))
    )


def overview() -> dash_b.Dashboard:
    """The overview of one daemon: its portfolio, then its markets, hedging, health."""
    builder = (
        dash_b.Dashboard("mm-daemon: market overview")
        .uid(OVERVIEW_UID)
        .description(
            "One market-maker daemon and the markets it quotes: the portfolio (P&L by "
            "component, gross and net notional, exposure per asset), each market's P&L, risk, "
            "quotes against fair value and the touch, fills and markouts, hedging per asset, "
            "latency and data health."
        )
        .tags(["mm-daemon", "trading"])
        .editable()
        .tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
        .time("now-1h", "now")
        .refresh("10s")
        .timezone("utc")
        .with_variable(_variable("instance", "Daemon", "label_values(mm_build_info, instance)"))
        .with_variable(
            _variable(
                "market",
                "Market",
                'label_values(mm_quoting_paused{instance=~"$instance"}, market)',
            )
        )
        .with_variable(
            _variable(
                "venue",
                "Venue",
                'label_values(mm_book_updates_total{instance=~"$instance"}, venue)',
            )
        )
        .with_variable(
            _variable(
                "symbol",
                "Symbol",
                'label_values(mm_book_updates_total{instance=~"$instance", venue=~"$venue"}, '
                "symbol)",
            )
        )
    )
    _status_row(builder)
    _control_row(builder)
    _portfolio_row(builder)
    _market_risk_row(builder)
    _quoting_row(builder)
    _fills_row(builder)
    _hedging_row(builder)
    _latency_row(builder)
    _market_data_row(builder)
    _orders_row(builder)
    _process_row(builder)
    return builder


_RISK_STATES = ((0, "ACTIVE"), (1, "REDUCING"), (2, "HALTED"))


def _status_row(builder: dash_b.Dashboard) -> None:
    builder.with_row(dash_b.Row("Status"))
    builder.with_panel(
        stat(
            "Trading loop",
            "1 while the daemon runs its trading loop.",
            Query(f"min(mm_daemon_running{{{I}}})", "running"),
            steps=((None, "red"), (1, "green")),
        )
    )
    builder.with_panel(
        stat(
            "Risk state",
            "Each selected market's risk gate: ACTIVE, REDUCING (only orders that shrink its "
            "asset's exposure) or HALTED.",
            Query(f"mm_risk_state{{{IM}}}", "{{market}}"),
            steps=((None, "green"), (1, "orange"), (2, "red")),
            texts=_RISK_STATES,
        )
    )
    builder.with_panel(
        stat(
            "Quoting paused",
            "1 while a market quotes nothing on purpose (risk, stale data, hedge venue down).",
            Query(f"mm_quoting_paused{{{IM}}}", "{{market}}"),
            steps=((None, "green"), (1, "orange")),
        )
    )
    builder.with_panel(
        stat(
            "Stale instruments",
            "Instruments whose data is stale right now (their markets' quotes are pulled).",
            Query(f"sum(mm_market_stale{{{IVS}}})", "stale"),
            steps=((None, "green"), (1, "red")),
        )
    )
    builder.with_panel(
        stat(
            "Total P&L",
            "The portfolio's total P&L in quote units: every market and every hedge.",
            Query(f'sum(mm_pnl_quote{{{I}, component="total"}})', "total"),
            steps=((None, "red"), (0, "green")),
        )
    )
    builder.with_panel(
        stat(
            "Gross notional",
            "Sum of |position| x fair value over every instrument (portfolio.max_gross_notional"
            "_quote limits it).",
            Query(f"sum(mm_gross_notional_quote{{{I}}})", "gross"),
            steps=((None, "blue"),),
        )
    )


def _control_row(builder: dash_b.Dashboard) -> None:
    builder.with_row(dash_b.Row("Operator control"))
    builder.with_panel(
        stat(
            "Paused by an operator",
            "1 while an operator's pause holds the market's quotes (POST /pause, "
            "`mm-daemon ctl pause`) until resume.",
            Query(f"mm_operator_paused{{{IM}}}", "{{market}}"),
            steps=((None, "green"), (1, "orange")),
            texts=((0, "quoting"), (1, "paused")),
            width=6,
        )
    )
    builder.with_panel(
        stat(
            "Halted by an operator",
            "1 while the market is HALTED by an operator's kill (POST /kill, `mm-daemon ctl "
            "kill`): no quotes, no hedges, until reset. It survives restarts.",
            Query(f"mm_operator_halted{{{IM}}}", "{{market}}"),
            steps=((None, "green"), (1, "red")),
            texts=((0, "no"), (1, "killed")),
            width=6,
        )
    )
    builder.with_panel(
        timeseries(
            "Control actions",
            "Control API requests by action and result (refused: the daemon said no; "
            "unauthorized: a missing or wrong token).",
            (
                Query(
                    f"sum by (action, result) (increase(mm_control_requests_total{{{I}}}[{RATE}]))",
                    "{{action}} {{result}}",
                ),
            ),
            width=6,
            height=4,
        )
    )
    builder.with_panel(
        timeseries(
            "Config reloads",
            "Live reloads (POST /reload, SIGHUP) by result: ok, unchanged, invalid (the file "
            "did not validate), refused (a field that cannot change while running).",
            (
                Query(
                    f"sum by (result) (increase(mm_config_reloads_total{{{I}}}[{RATE}]))",
                    "{{result}}",
                ),
            ),
            width=6,
            height=4,
        )
    )


def _portfolio_row(builder: dash_b.Dashboard) -> None:
    builder.with_row(dash_b.Row("Portfolio"))
    builder.with_panel(
        stat(
            "Markets",
            "Every configured market: up (trading) or failed (did not start).",
            Query(f"mm_market_up{{{I}}}", "{{market}}"),
            steps=((None, "red"), (1, "green")),
            texts=((0, "failed"), (1, "up")),
            width=8,
        )
    )
    builder.with_panel(
        stat(
            "Markets failed",
            "Markets that could not start (venue down, unknown symbol) and are not quoted.",
            Query(f"sum(1 - mm_market_up{{{I}}})", "failed"),
            steps=((None, "green"), (1, "red")),
        )
    )
    builder.with_panel(
        stat(
            "Net exposure by asset",
            "Net exposure of each asset across its markets and hedges, base units.",
            Query(f"mm_net_exposure_base{{{I}}}", "{{asset}}"),
            steps=((None, "blue"),),
            width=6,
        )
    )
    builder.with_panel(
        stat(
            "Net notional by asset",
            "|Net exposure| x fair value of each asset (portfolio.max_net_notional_quote limits "
            "it).",
            Query(f"mm_net_notional_quote{{{I}}}", "{{asset}}"),
            steps=((None, "blue"),),
            width=6,
        )
    )
    builder.with_panel(
        timeseries(
            "Portfolio P&L by component",
            "Spread capture, inventory, hedging, fees, basis and funding P&L of every market and "
            "hedge; they sum to the total.",
            (Query(f"mm_pnl_quote{{{I}}}", "{{component}}"),),
            width=8,
        )
    )
    builder.with_panel(
        timeseries(
            "Portfolio drawdown from peak",
            "Total P&L below its running peak over the dashboard's range, against the sum of "
            "the markets' halting drawdowns (what MmPortfolioDrawdown compares with).",
            (
                Query(
                    f'max_over_time(mm_pnl_quote{{{I}, component="total"}}[$__range]) '
                    f'- mm_pnl_quote{{{I}, component="total"}}',
                    "drawdown",
                ),
                Query(f"sum(mm_max_drawdown_quote{{{I}}})", "sum of the markets' halts"),
            ),
            width=8,
        )
    )
    builder.with_panel(
        timeseries(
            "Gross and net notional",
            "Gross notional of the portfolio and net notional of each asset, quote units (the "
            "portfolio limits max_gross_notional_quote and max_net_notional_quote apply to "
            "them).",
            (
                Query(f"mm_gross_notional_quote{{{I}}}", "gross"),
                Query(f"mm_net_notional_quote{{{I}}}", "net {{asset}}"),
            ),
            width=8,
        )
    )


def _market_risk_row(builder: dash_b.Dashboard) -> None:
    builder.with_row(dash_b.Row("Markets: P&L and inventory"))
    builder.with_panel(
        timeseries(
            "Market P&L by component",
            "Each selected market's own P&L (its quoting fills; hedges belong to the asset).",
            (Query(f"mm_market_pnl_quote{{{IM}}}", "{{market}} {{component}}"),),
        )
    )
    builder.with_panel(
        timeseries(
            "Market drawdown from peak",
            "Each market's total P&L below its running peak over the dashboard's range, "
            "against the drawdown that halts it.",
            (
                Query(
                    f'max_over_time(mm_market_pnl_quote{{{IM}, component="total"}}[$__range]) '
                    f'- mm_market_pnl_quote{{{IM}, component="total"}}',
                    "{{market}}",
                ),
                Query(f"mm_max_drawdown_quote{{{IM}}}", "halt {{market}}"),
            ),
        )
    )
    builder.with_panel(
        timeseries(
            "Net exposure against the markets' limits",
            "Net exposure of the selected markets' assets, and each market's +/- inventory "
            "limit (a market turns REDUCING when its asset's exposure reaches its limit).",
            (
                Query(
                    f"mm_net_exposure_base{{{I}}} and on (instance, asset) {MARKET_ASSETS}",
                    "{{asset}}",
                ),
                Query(f"mm_inventory_limit_base{{{IM}}}", "+limit {{market}}"),
                Query(f"-mm_inventory_limit_base{{{IM}}}", "-limit {{market}}"),
            ),
        )
    )
    builder.with_panel(
        timeseries(
            "Inventory by instrument",
            "Position in base units per venue and symbol (quoted and hedge instruments).",
            (Query(f"mm_inventory_base{{{IVS}}}", "{{venue}} {{symbol}}"),),
        )
    )


def _quoting_row(builder: dash_b.Dashboard) -> None:
    builder.with_row(dash_b.Row("Quoting"))
    builder.with_panel(
        timeseries(
            "Quotes of $market against fair value and the touch",
            "The market's desired quote prices per side and level, its fair value, and its "
            "venue's best bid and ask (one panel per selected market).",
            (
                Query(f"mm_quote_price{{{IM}}}", "quote {{side}} L{{level}}"),
                Query(
                    f"mm_fair_value{{{I}}} and on (instance, venue, symbol) {MARKET_INSTRUMENTS}",
                    "fair value",
                ),
                Query(
                    f"mm_book_best_bid{{{I}}} and on (instance, venue, symbol) "
                    f"{MARKET_INSTRUMENTS}",
                    "best bid",
                ),
                Query(
                    f"mm_book_best_ask{{{I}}} and on (instance, venue, symbol) "
                    f"{MARKET_INSTRUMENTS}",
                    "best ask",
                ),
            ),
            width=24,
            height=10,
            repeat_per="market",
        )
    )
    builder.with_panel(
        timeseries(
            "Quoted spread",
            "Spread between each market's best bid and ask quotes.",
            (Query(f"mm_quoted_spread_bps{{{IM}}}", "{{market}}"),),
            unit="bps",
            width=8,
        )
    )
    builder.with_panel(
        timeseries(
            "Open orders",
            "Live quote orders of each market by side.",
            (Query(f"mm_open_orders{{{IM}}}", "{{market}} {{side}}"),),
            width=8,
        )
    )
    builder.with_panel(
        timeseries(
            "Volatility",
            "EWMA volatility of fair-value returns, fraction per sqrt(second).",
            (Query(f"mm_volatility{{{IVS}}}", "{{venue}} {{symbol}}"),),
            unit="percentunit",
            width=8,
        )
    )


def _fills_row(builder: dash_b.Dashboard) -> None:
    builder.with_row(dash_b.Row("Fills and markouts"))
    builder.with_panel(
        timeseries(
            "Fills by side and liquidity",
            "Fills per second by instrument, side and liquidity (maker or taker).",
            (
                Query(
                    "sum by (venue, symbol, side, liquidity) "
                    f"(rate(mm_fills_total{{{IVS}}}[{RATE}]))",
                    "{{venue}} {{symbol}} {{side}} {{liquidity}}",
                ),
            ),
            unit="ops",
            width=8,
        )
    )
    builder.with_panel(
        timeseries(
            "Fill volume",
            "Filled size per second in base units, by instrument and side.",
            (
                Query(
                    "sum by (venue, symbol, side) "
                    f"(rate(mm_fill_volume_base_total{{{IVS}}}[{RATE}]))",
                    "{{venue}} {{symbol}} {{side}}",
                ),
            ),
            width=8,
        )
    )
    builder.with_panel(
        timeseries(
            "Markouts by market and horizon",
            "Fair-value move after each market's maker fills by horizon, signed so that "
            "positive is good for us: median and interquartile range. (A histogram with "
            "negative buckets exports no _sum, so there is no mean.)",
            tuple(
                Query(
                    f"histogram_quantile({q}, sum by (market, horizon, le) "
                    f"(rate(mm_markout_bps_bucket{{{IM}}}[{RATE}])))",
                    f"{name} {{{{market}}}} {{{{horizon}}}}",
                )
                for q, name in (("0.25", "p25"), ("0.5", "median"), ("0.75", "p75"))
            ),
            unit="bps",
            width=8,
        )
    )


def _hedging_row(builder: dash_b.Dashboard) -> None:
    builder.with_row(dash_b.Row("Hedging (per asset)"))
    builder.with_panel(
        timeseries(
            "Hedge orders",
            "Hedge orders sent per second, by asset and hedge venue.",
            (
                Query(
                    f"sum by (asset, venue) (rate(mm_hedge_orders_total{{{IV}}}[{RATE}]))",
                    "{{asset}} {{venue}}",
                ),
            ),
            unit="ops",
            width=8,
        )
    )
    builder.with_panel(
        timeseries(
            "Hedge slippage",
            "Hedge fill price against the hedge fair value at decision, by asset.",
            _quantiles("mm_hedge_slippage_bps", I, "asset", "{{asset}}"),
            unit="bps",
            width=8,
        )
    )
    builder.with_panel(
        timeseries(
            "Unhedged share of time",
            "Share of time each asset spent with |net exposure| above its hedge threshold.",
            (
                Query(
                    f"rate(mm_unhedged_exposure_seconds_total{{{I}}}[{RATE}])",
                    "{{asset}}",
                ),
            ),
            unit="percentunit",
            width=8,
        )
    )


def _latency_row(builder: dash_b.Dashboard) -> None:
    builder.with_row(dash_b.Row("Latency"))
    builder.with_panel(
        timeseries(
            "Tick to quote",
            "Market event receipt to order request sent, by market: p50, p90, p99.",
            _quantiles("mm_tick_to_quote_seconds", IM, "market", "{{market}}"),
            unit="s",
        )
    )
    builder.with_panel(
        timeseries(
            "Market data latency",
            "Local receipt time minus exchange time of market data events, by venue.",
            _quantiles("mm_md_latency_seconds", IVS, "venue", "{{venue}}"),
            unit="s",
        )
    )


def _market_data_row(builder: dash_b.Dashboard) -> None:
    builder.with_row(dash_b.Row("Market data health"))
    builder.with_panel(
        timeseries(
            "Websocket reconnects",
            "Stream reconnects per venue and symbol over the rate window.",
            (
                Query(
                    f"sum by (venue, symbol) (increase(mm_ws_reconnects_total{{{IVS}}}[{RATE}]))",
                    "{{venue}} {{symbol}}",
                ),
            ),
            width=6,
        )
    )
    builder.with_panel(
        timeseries(
            "Book resyncs",
            "Local book rebuilds (sequence gap, crossed book) over the rate window.",
            (
                Query(
                    f"sum by (venue, symbol) (increase(mm_book_resyncs_total{{{IVS}}}[{RATE}]))",
                    "{{venue}} {{symbol}}",
                ),
            ),
            width=6,
        )
    )
    builder.with_panel(
        timeseries(
            "Stale instruments",
            "1 while an instrument's data is stale (its markets' quotes are pulled).",
            (Query(f"mm_market_stale{{{IVS}}}", "{{venue}} {{symbol}}"),),
            width=6,
        )
    )
    builder.with_panel(
        timeseries(
            "Book updates and trades",
            "Book snapshots and deltas applied, and public trades seen, per second.",
            (
                Query(
                    f"sum by (venue, symbol) (rate(mm_book_updates_total{{{IVS}}}[{RATE}]))",
                    "updates {{venue}} {{symbol}}",
                ),
                Query(
                    f"sum by (venue, symbol) (rate(mm_trades_total{{{IVS}}}[{RATE}]))",
                    "trades {{venue}} {{symbol}}",
                ),
            ),
            unit="ops",
            width=6,
        )
    )


def _orders_row(builder: dash_b.Dashboard) -> None:
    builder.with_row(dash_b.Row("Orders"))
    builder.with_panel(
        timeseries(
            "Order actions",
            "Quote order actions sent per second by market and action.",
            (
                Query(
                    f"sum by (market, action) (rate(mm_orders_total{{{IM}}}[{RATE}]))",
                    "{{market}} {{action}}",
                ),
            ),
            unit="ops",
            width=8,
        )
    )
    builder.with_panel(
        timeseries(
            "Rejects",
            "Orders rejected per second by venue and reason (quotes and hedges).",
            (
                Query(
                    f"sum by (venue, reason) (rate(mm_order_rejects_total{{{IV}}}[{RATE}]))",
                    "{{venue}} {{reason}}",
                ),
            ),
            unit="ops",
            width=8,
        )
    )
    builder.with_panel(
        timeseries(
            "Order budget deferrals",
            "Order actions the venue's order budget deferred per second, by priority "
            "(refresh first, then stale quotes; hedges and urgent cancels rarely).",
            (
                Query(
                    f"sum by (venue, priority) "
                    f"(rate(mm_order_actions_deferred_total{{{IV}}}[{RATE}]))",
                    "{{venue}} {{priority}}",
                ),
            ),
            unit="ops",
            width=8,
        )
    )
    builder.with_panel(
        timeseries(
            "Order budget used",
            "Share of each of the venue's rate-limit windows used (orders, request weight).",
            (
                Query(
                    f"max by (venue, window) (mm_order_budget_used{{{IV}}} "
                    f"/ mm_order_budget_limit{{{IV}}})",
                    "{{venue}} {{window}}",
                ),
            ),
            unit="percentunit",
            width=8,
        )
    )


def _process_row(builder: dash_b.Dashboard) -> None:
    builder.with_row(dash_b.Row("Process"))
    builder.with_panel(
        timeseries(
            "CPU",
            "CPU time used by the daemon per second (1 is one full core).",
            (Query(f"rate(process_cpu_seconds_total{{{I}}}[{RATE}])", "{{instance}}"),),
            unit="percentunit",
        )
    )
    builder.with_panel(
        timeseries(
            "Resident memory",
            "Resident memory of the daemon process.",
            (Query(f"process_resident_memory_bytes{{{I}}}", "{{instance}}"),),
            unit="bytes",
        )
    )


def build_dashboards() -> dict[str, dash_m.Dashboard]:
    """Every dashboard by file name."""
    dashboards = {f"{OVERVIEW_UID}.json": overview().build()}
    for model in dashboards.values():
        # Stable panel ids in layout order (links and alerts refer to panels by id).
        for number, panel in enumerate(model.panels or [], start=1):
            panel.id_val = number
    return dashboards


def render(model: dash_m.Dashboard) -> str:
    """The dashboard's JSON as checked in: sorted keys, two-space indent, final newline."""
    return json.dumps(model, cls=JSONEncoder, sort_keys=True, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--out", type=Path, default=DASHBOARDS_DIR, help="output folder")
    args = parser.parse_args(argv)
    out: Path = args.out
    stale: list[str] = []
    for name, model in build_dashboards().items():
        path = out / name
        text = render(model)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
            continue
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if stale:
        sys.stderr.write(
            "out of date (run python tools/gen_dashboards.py): " + ", ".join(stale) + "\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
