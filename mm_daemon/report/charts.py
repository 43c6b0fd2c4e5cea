"""The charts of a run report, as Plotly figures (plain dicts drawn by the page's script).

Per market: P&L by component, net exposure against its limits with the hedges, quotes against
fair value and the touch with the fills, risk state and pauses (the markouts and distributions
are in `distributions`); and for a run with several markets the portfolio's P&L, components and
exposure per asset. Time axes take Unix milliseconds and show UTC. Lines are thinned to
`DISPLAY_POINTS` (each bucket's extremes kept, so spikes stay visible); the quotes chart draws at
most `MARKERS_IN_VIEW` fills per side at once and the page's script re-picks them for the window
in view.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from mm_daemon.core.summary import RunSummary
from mm_daemon.core.types import Liquidity, Side
from mm_daemon.report.data import PNL_COMPONENTS, FillRecord, MarketRun, RunData, Snapshot
from mm_daemon.report.page import (
    COMPONENT_COLORS,
    COMPONENT_LABELS,
    PALETTE,
    SIDE_COLORS,
    axis,
    base_layout,
    date_axis,
    esc,
)
from mm_daemon.report.series import (
    downsample_minmax,
    latest_at,
    stride_sample,
)

__all__ = [
    "DISPLAY_FILLS",
    "DISPLAY_POINTS",
    "MARKERS_IN_VIEW",
    "exposure_figure",
    "pnl_figure",
    "portfolio_components_figure",
    "portfolio_exposure_figure",
    "portfolio_pnl_figure",
    "quotes_figure",
    "risk_figure",
    "tracked_components",
    "utc",
]

Figure = dict[str, Any]

DISPLAY_POINTS = 2400
"""Points drawn per line of a time chart (about one bucket a pixel across a 1400 px page);
longer series keep each bucket's low and high."""
MARKERS_IN_VIEW = 500
"""Fill markers drawn per side at once on the quotes chart, thinned evenly over the window."""
DISPLAY_FILLS = 50_000
"""Fills per side the quotes chart carries for zooming; a longer run's are thinned evenly."""

_NS = 1_000_000_000
_MS = 1_000_000
_RISK_LANES = ("HALTED", "REDUCING", "paused")
_RISK_COLORS = {"HALTED": "#991b1b", "REDUCING": "#d97706", "paused": "#64748b"}
_FAIR_COLOR = "#111827"
_TOUCH_COLOR = "#94a3b8"
_LIMIT_COLOR = "#991b1b"
_THRESHOLD_COLOR = "#d97706"
_EXPOSURE_COLOR = "#2563eb"


def utc(ts_ns: int) -> str:
    moment = dt.datetime.fromtimestamp(ts_ns / _NS, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


# -- helpers for the charts --------------------------------------------------------------------


def _ms(ts_ns: int) -> int:
    return ts_ns // _MS


def _line(
    xs: Sequence[int],
    ys: Sequence[float | None],
    *,
    name: str,
    color: str,
    width: float = 1.6,
    dash: str = "solid",
    shape: str = "linear",
    yaxis: str = "y",
    hover: str = "%{y:,.4f}",
    digits: int | None = 4,
    **extra: Any,
) -> dict[str, Any]:
    """A time series line, thinned to DISPLAY_POINTS and rounded to `digits` decimals (None:
    the values are short already)."""
    x, thinned = downsample_minmax(xs, ys, DISPLAY_POINTS)
    y = thinned if digits is None else _rounded(thinned, digits)
    return {
        "type": "scatter",
        "mode": "lines",
        "name": name,
        "x": x,
        "y": y,
        "yaxis": yaxis,
        "line": {"color": color, "width": width, "dash": dash, "shape": shape},
        "hovertemplate": f"{hover}<extra>{esc(name)}</extra>",
        **extra,
    }


def _rounded(values: Sequence[float | None], digits: int) -> list[float | None]:
    """Values to `digits` decimals for display (shorter JSON): n / 10**digits is the double
    nearest that decimal, so it prints as the short decimal. NaN and infinities become gaps."""
    scale = 10.0**digits
    try:
        return [None if v is None else round(v * scale) / scale for v in values]
    except (ValueError, OverflowError):
        return [
            round(v * scale) / scale if v is not None and math.isfinite(v) else None for v in values
        ]


def _run_span_ms(data: RunData) -> list[int]:
    return [_ms(data.started_ns), _ms(data.ended_ns)]


def _level(
    span: list[int], value: float, *, name: str, color: str, dash: str, show: bool
) -> dict[str, Any]:
    """A horizontal reference line across the run."""
    return {
        "type": "scatter",
        "mode": "lines",
        "name": name,
        "legendgroup": name,
        "showlegend": show,
        "x": span,
        "y": [value, value],
        "line": {"color": color, "width": 1.3, "dash": dash},
        "hoverinfo": "skip",
    }


def _time_layout(data: RunData, height: int, y_title: str, **extra: Any) -> dict[str, Any]:
    return base_layout(
        height,
        xaxis=date_axis(range=_run_span_ms(data)),
        yaxis=axis(y_title),
        **extra,
    )


# -- per market charts -------------------------------------------------------------------------


def tracked_components(summaries: Iterable[RunSummary]) -> tuple[str, ...]:
    """The components to draw: funding only where the run tracked it."""
    funding = any("funding" in s.pnl_quote for s in summaries)
    return tuple(c for c in PNL_COMPONENTS if c != "funding" or funding)


def pnl_figure(data: RunData, market: MarketRun) -> dict[str, Any]:
    snaps = market.snapshots
    xs = [_ms(s.ts_ns) for s in snaps]
    traces = [
        _line(
            xs,
            list(map(operator.attrgetter(f"pnl.{name}"), snaps)),
            name=COMPONENT_LABELS[name],
            color=COMPONENT_COLORS[name],
            width=1.5,
            hover="%{y:,.2f}",
        )
        for name in tracked_components([market.summary])
    ]
    traces.append(
        _line(
            xs,
            [s.pnl.total for s in snaps],
            name="total",
            color=COMPONENT_COLORS["total"],
            width=2.8,
            hover="%{y:,.2f}",
        )
    )
    return {
        "data": traces,
        "layout": _time_layout(data, 400, f"P&L ({market.quote_currency})"),
    }


def _snapshot_at(snaps: Sequence[Snapshot], times: Sequence[int], ts_ns: int) -> Snapshot | None:
    """The latest snapshot at or before ts_ns."""
    index = bisect.bisect_right(times, ts_ns) - 1
    return snaps[index] if index >= 0 else None


def exposure_figure(data: RunData, market: MarketRun) -> dict[str, Any]:
    snaps = market.snapshots
    times = [s.ts_ns for s in snaps]
    xs = [_ms(t) for t in times]
    base = market.base_currency
    span = _run_span_ms(data)
    traces: list[dict[str, Any]] = [
        _line(
            xs,
            [s.position_base for s in snaps],
            name=f"position on {market.venue}",
            color="#94a3b8",
            width=1.2,
            dash="dot",
            shape="hv",
            hover="%{y:,.6f}",
            digits=8,
        ),
        _line(
            xs,
            [s.net_exposure_base for s in snaps],
            name="net exposure",
            color=_EXPOSURE_COLOR,
            width=2.2,
            shape="hv",
            hover="%{y:,.6f}",
            digits=8,
        ),
    ]
    limit = market.inventory_limit_base
    traces += [
        _level(span, limit, name="inventory limit", color=_LIMIT_COLOR, dash="dashdot", show=True),
        _level(
            span, -limit, name="inventory limit", color=_LIMIT_COLOR, dash="dashdot", show=False
        ),
    ]
    threshold = market.hedge_threshold_base
    if threshold is not None:
        traces += [
            _level(
                span,
                threshold,
                name="hedge threshold",
                color=_THRESHOLD_COLOR,
                dash="dash",
                show=True,
            ),
            _level(
                span,
                -threshold,
                name="hedge threshold",
                color=_THRESHOLD_COLOR,
                dash="dash",
                show=False,
            ),
        ]
    for side in (Side.BUY, Side.SELL):
        hedges = [h for h in market.hedges if h.side is side and h.slippage_bps is not None]
        label = side.name.lower()
        points = []
        for hedge in hedges:
            snap = _snapshot_at(snaps, times, hedge.ts_ns)
            points.append((hedge, snap.net_exposure_base if snap is not None else 0.0))
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"hedge {label}",
                "x": [_ms(h.ts_ns) for h, _ in points],
                "y": [y for _, y in points],
                "customdata": [[h.size_base, h.slippage_bps] for h, _ in points],
                "marker": {
                    "symbol": "triangle-up" if side is Side.BUY else "triangle-down",
                    "size": 11,
                    "color": SIDE_COLORS[label],
                    "line": {"color": "#ffffff", "width": 1},
                },
                "hovertemplate": f"hedge {label} %{{customdata[0]:,.6f}} {esc(base)}, "
                "slippage %{customdata[1]:+.2f} bps<extra></extra>",
            }
        )
    failed = [h for h in market.hedges if h.slippage_bps is None]
    if failed:
        ys = []
        for hedge in failed:
            snap = _snapshot_at(snaps, times, hedge.ts_ns)
            ys.append(snap.net_exposure_base if snap is not None else 0.0)
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "hedge not filled",
                "x": [_ms(h.ts_ns) for h in failed],
                "y": ys,
                "marker": {"symbol": "x-thin", "size": 9, "line": {"color": "#4b5563", "width": 2}},
                "hovertemplate": "hedge not filled<extra></extra>",
            }
        )
    layout = _time_layout(data, 380, f"net exposure ({base})")
    layout["hovermode"] = "closest"
    return {"data": traces, "layout": layout}


def quotes_figure(data: RunData, market: MarketRun) -> tuple[dict[str, Any], str]:
    snaps = market.snapshots
    xs = [_ms(s.ts_ns) for s in snaps]
    quote = market.quote_currency
    reference = next((s.fair_value for s in snaps if s.fair_value), 1.0)
    decimals = max(2, 5 - math.floor(math.log10(abs(reference))))  # 64000 -> 2, 0.5 -> 6
    price_hover = f"%{{y:,.{decimals}f}}"
    # Touch and quote prices are tick prices, short as they are; the fair value and the
    # distances in bps are rounded for display once, for both the drawn and the full series.
    best_bid = [s.best_bid for s in snaps]
    best_ask = [s.best_ask for s in snaps]
    bid_quote = [s.bid_quote for s in snaps]
    ask_quote = [s.ask_quote for s in snaps]
    fair = [s.fair_value for s in snaps]

    def from_fair(prices: list[float | None]) -> list[float | None]:
        return _rounded(
            [
                (p - f) / f * 1e4 if p is not None and f else None
                for p, f in zip(prices, fair, strict=True)
            ],
            3,
        )

    price = {"hover": price_hover, "digits": None, "shape": "hv"}
    bps = {
        "hover": "%{y:+.2f} bps",
        "digits": None,
        "shape": "hv",
        "yaxis": "y2",
        "showlegend": False,
        "width": 1.2,
    }
    touch = {"color": _TOUCH_COLOR, "width": 1, "legendgroup": "touch"}
    lines: list[tuple[list[float | None], dict[str, Any]]] = [
        (best_bid, {"name": "touch", **touch, **price}),
        (
            best_ask,
            {
                "name": "touch",
                "showlegend": False,
                "fill": "tonexty",
                "fillcolor": "rgba(148,163,184,0.18)",
                **touch,
                **price,
            },
        ),
        (bid_quote, {"name": "our bid", "color": SIDE_COLORS["buy"], "width": 1.4, **price}),
        (ask_quote, {"name": "our ask", "color": SIDE_COLORS["sell"], "width": 1.4, **price}),
        (
            _rounded(fair, decimals + 2),
            {"name": "fair value", "color": _FAIR_COLOR, "width": 1.4, **price, "shape": "linear"},
        ),
        (from_fair(bid_quote), {"name": "our bid from fair", "color": SIDE_COLORS["buy"], **bps}),
        (from_fair(ask_quote), {"name": "our ask from fair", "color": SIDE_COLORS["sell"], **bps}),
        (from_fair(best_bid), {"name": "best bid from fair", "color": _TOUCH_COLOR, **bps}),
        (from_fair(best_ask), {"name": "best ask from fair", "color": _TOUCH_COLOR, **bps}),
    ]
    traces: list[dict[str, Any]] = [_line(xs, values, **style) for values, style in lines]
    # Lines thinned for the whole run carry their full series so that a zoom redraws them in
    # full detail (the page's script re-thins the window in view).
    windowed: list[dict[str, Any]] = [
        {"trace": index, "kind": "line", "max": DISPLAY_POINTS, "x": xs, "y": values}
        for index, (values, _) in enumerate(lines)
        if len(xs) > DISPLAY_POINTS
    ]
    quoting = [f for f in market.fills if not f.is_hedge]
    for side in (Side.BUY, Side.SELL):
        label = side.name.lower()
        fills = stride_sample(
            sorted((f for f in quoting if f.side is side), key=lambda f: f.ts_ns), DISPLAY_FILLS
        )
        points = _fill_points(fills, side)
        windowed.append({"trace": len(traces), "kind": "markers", "max": MARKERS_IN_VIEW, **points})
        shown = {k: stride_sample(v, MARKERS_IN_VIEW) for k, v in points.items()}
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"{label} fills",
                "x": shown["x"],
                "y": shown["y"],
                "customdata": shown["customdata"],
                "text": shown["text"],
                "marker": {
                    "symbol": shown["symbol"],
                    "size": 7,
                    "color": SIDE_COLORS[label],
                    "line": {"color": SIDE_COLORS[label], "width": 1},
                    "opacity": 0.85,
                },
                "hovertemplate": f"{label} %{{customdata:,.6f}} {esc(market.base_currency)} "
                f"@ {price_hover} (%{{text}})<extra></extra>",
            }
        )
    layout = base_layout(
        560,
        xaxis=date_axis(
            range=_run_span_ms(data),
            anchor="y2",
            rangeselector={
                "buttons": [
                    {"count": 1, "label": "1m", "step": "minute", "stepmode": "backward"},
                    {"count": 5, "label": "5m", "step": "minute", "stepmode": "backward"},
                    {"count": 15, "label": "15m", "step": "minute", "stepmode": "backward"},
                    {"count": 1, "label": "1h", "step": "hour", "stepmode": "backward"},
                    {"step": "all", "label": "all"},
                ],
                "x": 1,
                "xanchor": "right",
                "y": 1.02,
                "yanchor": "bottom",
                "bgcolor": "#f3f4f6",
                "activecolor": "#dbeafe",
            },
        ),
        yaxis=axis(f"price ({quote})", domain=[0.36, 1.0]),
        yaxis2=axis("from fair (bps)", domain=[0.0, 0.28], zeroline=True),
        hovermode="closest",
    )
    caption = (
        f"{len(quoting):,} quoting fills; filled triangles are maker fills, open ones taker. At "
        f"most {MARKERS_IN_VIEW:,} fills per side are drawn at once, thinned evenly: zoom in "
        "(buttons, or drag across the chart; double-click to reset) to see every fill of a "
        "window, the price axis follows. The lower panel shows our quotes and the touch in bps "
        "from fair value."
    )
    figure = {"data": traces, "layout": layout, "windowed": windowed}
    return figure, caption


def _fill_points(fills: Sequence[FillRecord], side: Side) -> dict[str, list[Any]]:
    """Fill markers as columns: time, price, size, liquidity and the marker symbol."""
    shape = "triangle-up" if side is Side.BUY else "triangle-down"
    maker = Liquidity.MAKER  # compared by identity: hashing an enum member runs Python code
    makers = [f.liquidity is maker for f in fills]
    return {
        "x": [f.ts_ns // _MS for f in fills],
        "y": [f.price for f in fills],
        "customdata": [f.size_base for f in fills],
        "text": ["maker" if m else "taker" for m in makers],
        "symbol": [shape if m else f"{shape}-open" for m in makers],
    }


def risk_figure(data: RunData, market: MarketRun) -> tuple[dict[str, Any], str]:
    run_ns = max(1, data.ended_ns - data.started_ns)
    min_width_ms = run_ns / _MS / 400  # a one-second pause stays visible on a long run
    lanes = {  # invisible points that keep every lane on the axis, empty or not
        "type": "scatter",
        "mode": "markers",
        "x": [_ms(data.started_ns)] * len(_RISK_LANES),
        "y": list(_RISK_LANES),
        "marker": {"opacity": 0},
        "hoverinfo": "skip",
        "showlegend": False,
    }
    traces: list[Figure] = [lanes]
    for kind in _RISK_LANES:
        intervals = [i for i in market.intervals if i.kind == kind]
        traces.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": kind,
                "y": [kind] * len(intervals),
                "base": [_ms(i.start_ns) for i in intervals],
                "x": [max((i.end_ns - i.start_ns) / _MS, min_width_ms) for i in intervals],
                "customdata": [
                    [utc(i.start_ns), (i.end_ns - i.start_ns) / _NS, i.reason or "-"]
                    for i in intervals
                ],
                "marker": {"color": _RISK_COLORS[kind]},
                "width": 0.6,
                "hovertemplate": "%{customdata[0]}, %{customdata[1]:,.0f} s: "
                "%{customdata[2]}<extra>" + kind + "</extra>",
                "showlegend": False,
            }
        )
    layout = base_layout(
        210,
        hovermode="closest",
        xaxis=date_axis(range=_run_span_ms(data)),
        yaxis=axis("", type="category", categoryorder="array", categoryarray=list(_RISK_LANES)),
        margin={"l": 90, "r": 24, "t": 16, "b": 48},
    )
    totals = {
        kind: sum(i.end_ns - i.start_ns for i in market.intervals if i.kind == kind) / _NS
        for kind in _RISK_LANES
    }
    if not market.intervals:
        caption = "Active and quoting throughout the run."
    else:
        caption = (
            "Time outside ACTIVE quoting: "
            + ", ".join(f"{kind} {seconds:,.0f} s" for kind, seconds in totals.items())
            + " (REDUCING quotes only the side that brings exposure back; HALTED quotes nothing)."
        )
    return {"data": traces, "layout": layout}, caption


# -- portfolio ---------------------------------------------------------------------------------


class _Grid:
    """Several 1 s series on one grid: at each step, each series' latest snapshot."""

    def __init__(self, series: Sequence[Sequence[Snapshot]]) -> None:
        self.series = series
        grid, self.indexes = latest_at([[s.ts_ns for s in snaps] for snaps in series], _NS)
        self.xs = [_ms(t) for t in grid]

    def columns(self, value: Callable[[Snapshot], float]) -> list[list[float | None]]:
        columns: list[list[float | None]] = []
        for snaps, index in zip(self.series, self.indexes, strict=True):
            values = [value(s) for s in snaps]
            columns.append([values[i] if i >= 0 else None for i in index])
        return columns

    @staticmethod
    def summed(columns: Sequence[list[float | None]]) -> list[float | None]:
        """Per step, the sum over series; None until every series has a value."""
        return [None if None in row else sum(row) for row in zip(*columns, strict=True)]


def _total(snap: Snapshot) -> float:
    return snap.pnl.total


def portfolio_pnl_figure(data: RunData, quote: str | None) -> Figure:
    """Total P&L per market, each asset's hedge, and their sum when they share a quote
    currency (the assets' whole ledgers when the run has them, else the markets')."""
    markets = [m.snapshots for m in data.markets]
    assets = [a.snapshots for a in data.assets]
    grid = _Grid([*markets, *assets])
    columns = grid.columns(_total)
    market_columns, asset_columns = columns[: len(markets)], columns[len(markets) :]
    traces = [
        _line(grid.xs, column, name=m.market, color=PALETTE[i % len(PALETTE)], hover="%{y:,.2f}")
        for i, (m, column) in enumerate(zip(data.markets, market_columns, strict=True))
    ]
    for asset, column in zip(data.assets, asset_columns, strict=True):
        if asset.hedge_symbol is None:
            continue
        own = [
            column_of
            for m, column_of in zip(data.markets, market_columns, strict=True)
            if m.base_currency == asset.asset
        ]
        hedge = [
            None if whole is None or ours is None else whole - ours
            for whole, ours in zip(column, grid.summed(own), strict=True)
        ]
        traces.append(
            _line(
                grid.xs,
                hedge,
                name=f"{asset.asset} hedge ({asset.hedge_symbol})",
                color=PALETTE[len(traces) % len(PALETTE)],
                dash="dot",
                hover="%{y:,.2f}",
            )
        )
    if quote is not None:
        traces.append(
            _line(
                grid.xs,
                grid.summed(asset_columns if assets else market_columns),
                name="portfolio",
                color=COMPONENT_COLORS["total"],
                width=2.8,
                hover="%{y:,.2f}",
            )
        )
    return {"data": traces, "layout": _time_layout(data, 380, f"P&L ({quote or 'quote'})")}


def portfolio_components_figure(data: RunData, quote: str) -> Figure:
    """The P&L components of every asset's whole ledger added up (of every market's, for a run
    without asset series); markets of one quote currency."""
    series = [a.snapshots for a in data.assets] or [m.snapshots for m in data.markets]
    grid = _Grid(series)
    summaries = [m.summary for m in data.markets] + ([data.summary] if data.summary else [])
    traces = []
    for name in (*tracked_components(summaries), "total"):
        read = operator.attrgetter(f"pnl.{name}")
        traces.append(
            _line(
                grid.xs,
                grid.summed(grid.columns(read)),
                name=COMPONENT_LABELS[name],
                color=COMPONENT_COLORS[name],
                width=2.8 if name == "total" else 1.5,
                hover="%{y:,.2f}",
            )
        )
    return {"data": traces, "layout": _time_layout(data, 380, f"P&L ({quote})")}


def portfolio_exposure_figure(data: RunData, quote: str | None) -> Figure:
    """Net exposure per base asset, valued at fair value so that assets compare."""
    assets: dict[str, MarketRun] = {}
    for market in data.markets:
        assets.setdefault(market.base_currency, market)  # every market of an asset has its net
    traces = []
    for i, (asset, market) in enumerate(assets.items()):
        snaps = market.snapshots
        traces.append(
            _line(
                [_ms(s.ts_ns) for s in snaps],
                [
                    None if s.fair_value is None else round(s.net_exposure_base * s.fair_value, 2)
                    for s in snaps
                ],
                name=asset,
                color=PALETTE[i % len(PALETTE)],
                width=1.8,
                shape="hv",
                hover="%{y:,.2f}",
            )
        )
    unit = quote or "quote"
    return {"data": traces, "layout": _time_layout(data, 340, f"net exposure ({unit})")}
