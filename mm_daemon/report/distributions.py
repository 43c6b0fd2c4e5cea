"""The distribution charts of a run report: markouts by horizon and side, and histograms of
fill size, spread capture and hedge slippage (Plotly figures, plain dicts drawn by the page's
script).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from mm_daemon.core.types import Side
from mm_daemon.report.data import MarketRun, Snapshot
from mm_daemon.report.page import COMPONENT_COLORS, SIDE_COLORS, axis, base_layout, esc
from mm_daemon.report.series import bin_counts, bin_edges, quantile

__all__ = ["distributions_figure", "markouts_figure"]

Figure = dict[str, Any]

_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


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
