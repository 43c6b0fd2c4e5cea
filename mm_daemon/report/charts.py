"""The charts of a run report, as Plotly figures (plain dicts drawn by the page's script).

Per market: P&L by component, net exposure against its limits with the hedges, quotes against
fair value and the touch with the fills, markouts, distributions, risk state and pauses; and for a
run with several markets the portfolio's P&L, components and exposure per asset. Time axes take
Unix milliseconds and show UTC. Lines are thinned to `DISPLAY_POINTS` (each bucket's extremes
kept, so spikes stay visible); the quotes chart draws at most `MARKERS_IN_VIEW` fills per side at
once and the page's script re-picks them for the window in view.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
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
    bin_counts,
    bin_edges,
    downsample_minmax,
    latest_at,
    quantile,
    stride_sample,
)

__all__ = [
    "DISPLAY_FILLS",
    "DISPLAY_POINTS",
    "MARKERS_IN_VIEW",
    "distributions_figure",
    "exposure_figure",
    "markouts_figure",
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
_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
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


def _mean_half_spread_bps(snaps: Sequence[Snapshot]) -> float | None:
    total, count = 0.0, 0
    for s in snaps:
        if s.bid_quote is not None and s.ask_quote is not None and s.fair_value:
            total += (s.ask_quote - s.bid_quote) / 2 / s.fair_value * 1e4
            count += 1
    return total / count if count else None


def markouts_figure(market: MarketRun) -> tuple[dict[str, Any], str]:
    horizons = list(market.summary.markouts) or list(
        dict.fromkeys(m.horizon for m in market.markouts)
    )
    samples: dict[tuple[str, Side], list[float]] = {}
    for markout in market.markouts:
        samples.setdefault((markout.horizon, markout.side), []).append(markout.bps)
    traces = []
    for side in (Side.BUY, Side.SELL):
        label = side.name.lower()
        stats: dict[str, list[float]] = {k: [] for k in ("q1", "median", "q3", "lo", "hi", "mean")}
        xs: list[str] = []
        counts: list[int] = []
        for horizon in horizons:
            values = sorted(samples.get((horizon, side), []))
            if not values:
                continue
            xs.append(horizon)
            counts.append(len(values))
            p05, p25, p50, p75, p95 = (quantile(values, q) for q in _QUANTILES)
            stats["lo"].append(p05)
            stats["q1"].append(p25)
            stats["median"].append(p50)
            stats["q3"].append(p75)
            stats["hi"].append(p95)
            stats["mean"].append(sum(values) / len(values))
        traces.append(
            {
                "type": "box",
                "name": f"{label} fills",
                "x": xs,
                "q1": stats["q1"],
                "median": stats["median"],
                "q3": stats["q3"],
                "lowerfence": stats["lo"],
                "upperfence": stats["hi"],
                "mean": stats["mean"],
                "boxmean": True,
                "boxpoints": False,
                "offsetgroup": label,
                "marker": {"color": SIDE_COLORS[label]},
                "line": {"width": 1.5},
                "fillcolor": "rgba(22,163,74,0.18)" if side is Side.BUY else "rgba(220,38,38,0.18)",
                "customdata": counts,
                "hovertemplate": "%{x}: n=%{customdata}<extra>" + label + "</extra>",
            }
        )
    half = _mean_half_spread_bps(market.snapshots)
    shapes = []
    annotations = []
    if half is not None:
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "yref": "y",
                "y0": -half,
                "y1": -half,
                "line": {"color": COMPONENT_COLORS["spread_capture"], "dash": "dash", "width": 1.5},
            }
        )
        annotations.append(
            {
                "xref": "paper",
                "x": 1,
                "xanchor": "right",
                "yref": "paper",
                "y": 1.02,
                "yanchor": "bottom",
                "text": "- - - break-even before fees: minus half the quoted spread "
                f"({-half:.2f} bps)",
                "showarrow": False,
                "font": {"color": COMPONENT_COLORS["spread_capture"], "size": 12},
            }
        )
    layout = base_layout(
        380,
        boxmode="group",
        hovermode="closest",
        xaxis=axis("horizon after the fill", type="category"),
        yaxis=axis("markout (bps, + is good for us)", zeroline=True, zerolinewidth=1.5),
        shapes=shapes,
        annotations=annotations,
    )
    caption = (
        "Fair value move after each maker fill, signed for our side: boxes span the 25th-75th "
        "percentile, whiskers the 5th-95th, the line is the median and the dashed line the "
        "mean. A fill earns about half the quoted spread against fair value, so a markout below "
        "the dashed break-even line loses money."
    )
    return {"data": traces, "layout": layout}, caption


def _histogram_traces(
    groups: Sequence[tuple[str, Sequence[float], str]],
    *,
    xaxis: str,
    yaxis: str,
    unit: str,
    bins: int = 40,
) -> list[Figure]:
    """Pre-binned histogram bars, one trace per group on shared bins (stacked by the layout).

    Values that take few distinct levels (order sizes) get a bar per level instead of bins.
    """
    values_all = [v for _, values, _ in groups for v in values]
    levels = sorted(set(values_all))
    if not levels:
        return []
    if len(levels) <= 24:
        centers = levels
        gaps = [b - a for a, b in itertools.pairwise(levels)]
        width = min(gaps) * 0.8 if gaps else abs(levels[0]) * 0.1 or 1.0
        count = _level_counts
    else:
        edges = bin_edges(values_all, bins)
        centers = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
        width = (edges[1] - edges[0]) * 0.95
        count = bin_counts
        levels = edges
    return [
        {
            "type": "bar",
            "name": name,
            "legendgroup": name,
            "x": centers,
            "y": count(values, levels),
            "width": width,
            "xaxis": xaxis,
            "yaxis": yaxis,
            "marker": {"color": color, "opacity": 0.85},
            "hovertemplate": f"%{{x:,.4g}} {unit}: %{{y:,}}<extra>{esc(name)}</extra>",
        }
        for name, values, color in groups
    ]


def _level_counts(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    """Counts per distinct level (`edges` here holds the levels themselves)."""
    index = {level: i for i, level in enumerate(edges)}
    counts = [0] * len(edges)
    for value in values:
        counts[index[value]] += 1
    return counts


def _count_axis(title: str, traces: Sequence[Figure], **extra: Any) -> dict[str, Any]:
    """A y axis of counts: whole-number ticks when the counts are small."""
    highest = max((sum(col) for col in zip(*(t["y"] for t in traces), strict=True)), default=0)
    if highest <= 8:
        extra["dtick"] = 1
    return axis(title, rangemode="tozero", **extra)


def distributions_figure(market: MarketRun) -> dict[str, Any]:
    quoting = [f for f in market.fills if not f.is_hedge]
    base = market.base_currency
    size_groups = []
    capture_groups = []
    for side in (Side.BUY, Side.SELL):
        label = side.name.lower()
        fills = [f for f in quoting if f.side is side]
        size_groups.append((f"{label} fills", [f.size_base for f in fills], SIDE_COLORS[label]))
        capture_groups.append(
            (
                f"{label} fills",
                [
                    f.spread_capture_quote / (f.price * f.size_base) * 1e4
                    for f in fills
                    if f.price > 0 and f.size_base > 0
                ],
                SIDE_COLORS[label],
            )
        )
    slippage = [h.slippage_bps for h in market.hedges if h.slippage_bps is not None]
    sizes = _histogram_traces(size_groups, xaxis="x", yaxis="y", unit=base)
    captures = _histogram_traces(capture_groups, xaxis="x2", yaxis="y2", unit="bps")
    for trace in captures:
        trace["showlegend"] = False
    slippages = _histogram_traces(
        [("hedges", slippage, COMPONENT_COLORS["hedge_cost"])],
        xaxis="x3",
        yaxis="y3",
        unit="bps",
        bins=25,
    )
    titles = (
        (0.14, f"fill size ({base})"),
        (0.5, "spread capture per fill (bps of notional)"),
        (0.86, f"hedge slippage (bps, {len(slippage):,} hedges)"),
    )
    layout = base_layout(
        330,
        barmode="stack",
        bargap=0.02,
        hovermode="closest",
        xaxis=axis(f"size ({base})", domain=[0.0, 0.28]),
        yaxis=_count_axis("fills", sizes),
        xaxis2=axis("bps", domain=[0.36, 0.64]),
        yaxis2=_count_axis("", captures, anchor="x2"),
        xaxis3=axis("bps", domain=[0.72, 1.0]),
        yaxis3=_count_axis("hedges", slippages, anchor="x3"),
        annotations=[
            {
                "text": f"<b>{esc(text)}</b>",
                "xref": "paper",
                "yref": "paper",
                "x": x,
                "y": 1.0,
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 12},
            }
            for x, text in titles
        ],
    )
    layout["margin"] = {"l": 72, "r": 24, "t": 60, "b": 48}
    layout["legend"] = {"orientation": "h", "x": 0, "y": 1.18, "yanchor": "bottom"}
    return {"data": [*sizes, *captures, *slippages], "layout": layout}


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


class _MarketGrid:
    """The markets' snapshots on one 1 s grid: at each step, each market's latest snapshot."""

    def __init__(self, data: RunData) -> None:
        self.markets = data.markets
        grid, self.indexes = latest_at([[s.ts_ns for s in m.snapshots] for m in data.markets], _NS)
        self.xs = [_ms(t) for t in grid]

    def columns(self, value: Callable[[Snapshot], float]) -> list[list[float | None]]:
        columns: list[list[float | None]] = []
        for market, index in zip(self.markets, self.indexes, strict=True):
            values = [value(s) for s in market.snapshots]
            columns.append([values[i] if i >= 0 else None for i in index])
        return columns

    @staticmethod
    def summed(columns: list[list[float | None]]) -> list[float | None]:
        """Per step, the sum over markets; None until every market has a value."""
        return [None if None in row else sum(row) for row in zip(*columns, strict=True)]


def portfolio_pnl_figure(data: RunData, quote: str | None) -> Figure:
    """Total P&L per market, and their sum when they share a quote currency."""
    grid = _MarketGrid(data)
    columns = grid.columns(lambda s: s.pnl.total)
    traces = [
        _line(grid.xs, column, name=m.market, color=PALETTE[i % len(PALETTE)], hover="%{y:,.2f}")
        for i, (m, column) in enumerate(zip(data.markets, columns, strict=True))
    ]
    if quote is not None:
        traces.append(
            _line(
                grid.xs,
                grid.summed(columns),
                name="portfolio",
                color=COMPONENT_COLORS["total"],
                width=2.8,
                hover="%{y:,.2f}",
            )
        )
    return {"data": traces, "layout": _time_layout(data, 380, f"P&L ({quote or 'quote'})")}


def portfolio_components_figure(data: RunData, quote: str) -> Figure:
    """Every market's P&L components added up (markets of one quote currency)."""
    grid = _MarketGrid(data)
    traces = []
    for name in (*tracked_components(m.summary for m in data.markets), "total"):
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
