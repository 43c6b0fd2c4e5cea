"""Generate the Grafana dashboards of deploy/grafana/dashboards/ from Python.

    python tools/gen_dashboards.py          # write the JSON files
    python tools/gen_dashboards.py --check  # exit 1 if a checked-in file differs

The dashboards are built with grafana-foundation-sdk (the build for Grafana 11.6, pinned in
pyproject.toml) and checked in, so Grafana's file provisioning loads them as they are: stable uids,
a fixed datasource uid (the one deploy/grafana/provisioning/datasources/ declares), and no
`__inputs` placeholders.

Every panel query filters on the dashboard's variables: `$instance` (one daemon, i.e. one market
shard), `$venue` and `$symbol`. Metrics without a venue label (quotes, tick-to-quote, net
exposure) belong to one daemon and are filtered by `$instance` only.
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
IV = f'{I}, venue=~"$venue"'
IVS = f'{IV}, symbol=~"$symbol"'
RATE = "$__rate_interval"


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
    width: int = 4,
) -> stat_b.Panel:
    thresholds = (
        dash_b.ThresholdsConfig()
        .mode(dash_m.ThresholdsMode.ABSOLUTE)
        .steps([dash_m.Threshold(value=value, color=color) for value, color in steps])
    )
    return (
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
    """The overview of one market shard: P&L, inventory, quoting, fills, hedging, health."""
    builder = (
        dash_b.Dashboard("mm-daemon: market overview")
        .uid(OVERVIEW_UID)
        .description(
            "One market-maker shard: P&L by component, inventory against limits, quotes against "
            "fair value and the touch, fills and markouts, hedging, latency and data health."
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
            "0 ACTIVE, 1 REDUCING (only orders that shrink exposure), 2 HALTED.",
            Query(f"max(mm_risk_state{{{I}}})", "risk state"),
            steps=((None, "green"), (1, "orange"), (2, "red")),
        )
    )
    builder.with_panel(
        stat(
            "Quoting paused",
            "1 while quoting is paused by risk or stale data.",
            Query(f"max(mm_quoting_paused{{{I}}})", "paused"),
            steps=((None, "green"), (1, "orange")),
        )
    )
    builder.with_panel(
        stat(
            "Stale markets",
            "Markets whose data is stale right now (their quotes are pulled).",
            Query(f"sum(mm_market_stale{{{IVS}}})", "stale"),
            steps=((None, "green"), (1, "red")),
        )
    )
    builder.with_panel(
        stat(
            "Total P&L",
            "Total P&L in quote units (the sum of every component).",
            Query(f'sum(mm_pnl_quote{{{I}, component="total"}})', "total"),
            steps=((None, "red"), (0, "green")),
        )
    )
    builder.with_panel(
        stat(
            "Net exposure",
            "Net exposure across venues in base units.",
            Query(f"sum(mm_net_exposure_base{{{I}}})", "net exposure"),
            steps=((None, "blue"),),
        )
    )

    builder.with_row(dash_b.Row("P&L and inventory"))
    builder.with_panel(
        timeseries(
            "P&L by component",
            "Spread capture, inventory, hedging, fees and basis P&L; they sum to the total.",
            (Query(f"mm_pnl_quote{{{I}}}", "{{component}}"),),
        )
    )
    builder.with_panel(
        timeseries(
            "Net exposure against its limit",
            "Net exposure across venues (spot plus perp times the hedge ratio) and the "
            "configured +/- limit.",
            (
                Query(f"mm_net_exposure_base{{{I}}}", "net exposure"),
                Query(f"mm_inventory_limit_base{{{I}}}", "+limit"),
                Query(f"-mm_inventory_limit_base{{{I}}}", "-limit"),
            ),
        )
    )
    builder.with_panel(
        timeseries(
            "Inventory by venue",
            "Position in base units per venue.",
            (Query(f"mm_inventory_base{{{IV}}}", "{{venue}}"),),
        )
    )
    builder.with_panel(
        timeseries(
            "Drawdown from peak",
            "Total P&L below its running peak over the dashboard's range, against the drawdown "
            "that halts quoting.",
            (
                Query(
                    f'max_over_time(mm_pnl_quote{{{I}, component="total"}}[$__range]) '
                    f'- mm_pnl_quote{{{I}, component="total"}}',
                    "drawdown",
                ),
                Query(f"mm_max_drawdown_quote{{{I}}}", "halt at"),
            ),
        )
    )

    builder.with_row(dash_b.Row("Quoting"))
    builder.with_panel(
        timeseries(
            "Quotes against fair value and the touch",
            "Our desired quote prices per side and level, the fair value, and the venue's best "
            "bid and ask.",
            (
                Query(f"mm_quote_price{{{I}}}", "quote {{side}} L{{level}}"),
                Query(f"mm_fair_value{{{IVS}}}", "fair {{venue}}"),
                Query(f"mm_book_best_bid{{{IVS}}}", "best bid {{venue}}"),
                Query(f"mm_book_best_ask{{{IVS}}}", "best ask {{venue}}"),
            ),
            width=24,
            height=10,
        )
    )
    builder.with_panel(
        timeseries(
            "Quoted spread",
            "Spread between our best bid and ask quotes.",
            (Query(f"mm_quoted_spread_bps{{{I}}}", "quoted spread"),),
            unit="bps",
            width=8,
        )
    )
    builder.with_panel(
        timeseries(
            "Open orders",
            "Live orders on each venue by side.",
            (Query(f"mm_open_orders{{{IV}}}", "{{venue}} {{side}}"),),
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

    builder.with_row(dash_b.Row("Fills and markouts"))
    builder.with_panel(
        timeseries(
            "Fills by side and liquidity",
            "Fills per second by venue, side and liquidity (maker or taker).",
            (
                Query(
                    f"sum by (venue, side, liquidity) (rate(mm_fills_total{{{IV}}}[{RATE}]))",
                    "{{venue}} {{side}} {{liquidity}}",
                ),
            ),
            unit="ops",
            width=8,
        )
    )
    builder.with_panel(
        timeseries(
            "Fill volume",
            "Filled size per second in base units, by venue and side.",
            (
                Query(
                    f"sum by (venue, side) (rate(mm_fill_volume_base_total{{{IV}}}[{RATE}]))",
                    "{{venue}} {{side}}",
                ),
            ),
            width=8,
        )
    )
    builder.with_panel(
        timeseries(
            "Markouts by horizon",
            "Fair-value move after maker fills by horizon, signed so that positive is good for "
            "us: median and interquartile range. (A histogram with negative buckets exports no "
            "_sum, so there is no mean.)",
            tuple(
                Query(
                    f"histogram_quantile({q}, sum by (horizon, le) "
                    f"(rate(mm_markout_bps_bucket{{{I}}}[{RATE}])))",
                    f"{name} {{{{horizon}}}}",
                )
                for q, name in (("0.25", "p25"), ("0.5", "median"), ("0.75", "p75"))
            ),
            unit="bps",
            width=8,
        )
    )

    builder.with_row(dash_b.Row("Hedging"))
    builder.with_panel(
        timeseries(
            "Hedge orders",
            "Hedge orders sent per second, by venue.",
            (
                Query(
                    f"sum by (venue) (rate(mm_hedge_orders_total{{{IV}}}[{RATE}]))",
                    "{{venue}}",
                ),
            ),
            unit="ops",
            width=8,
        )
    )
    builder.with_panel(
        timeseries(
            "Hedge slippage",
            "Hedge fill price against the hedge fair value at decision.",
            _quantiles("mm_hedge_slippage_bps", I, "", ""),
            unit="bps",
            width=8,
        )
    )
    builder.with_panel(
        timeseries(
            "Unhedged share of time",
            "Share of time spent with |net exposure| above the hedge threshold.",
            (
                Query(
                    f"rate(mm_unhedged_exposure_seconds_total{{{I}}}[{RATE}])",
                    "unhedged",
                ),
            ),
            unit="percentunit",
            width=8,
        )
    )

    builder.with_row(dash_b.Row("Latency"))
    builder.with_panel(
        timeseries(
            "Tick to quote",
            "Market event receipt to order request sent: p50, p90, p99.",
            _quantiles("mm_tick_to_quote_seconds", I, "", ""),
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
            "Stale markets",
            "1 while a market's data is stale (its quotes are pulled).",
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

    builder.with_row(dash_b.Row("Orders"))
    builder.with_panel(
        timeseries(
            "Order actions",
            "Order actions sent per second by venue and action.",
            (
                Query(
                    f"sum by (venue, action) (rate(mm_orders_total{{{IV}}}[{RATE}]))",
                    "{{venue}} {{action}}",
                ),
            ),
            unit="ops",
            width=8,
        )
    )
    builder.with_panel(
        timeseries(
            "Rejects",
            "Orders rejected per second by venue and reason.",
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
            "Rate limited",
            "Order actions delayed by the rate limiter per second.",
            (
                Query(
                    f"sum by (venue) (rate(mm_rate_limited_total{{{IV}}}[{RATE}]))",
                    "{{venue}}",
                ),
            ),
            unit="ops",
            width=8,
        )
    )

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
    return builder


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
