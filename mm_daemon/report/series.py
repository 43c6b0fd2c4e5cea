"""Series arithmetic for display: downsampling that keeps spikes, quantiles, histograms.

Only what is drawn goes through here; the figures printed in a report's tables come from the
run summary and the full data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

__all__ = [
    "bin_counts",
    "bin_edges",
    "downsample_minmax",
    "latest_at",
    "quantile",
    "stride_sample",
]

T = TypeVar("T")


def downsample_minmax(
    xs: Sequence[int], ys: Sequence[float | None], max_points: int
) -> tuple[list[int], list[float | None]]:
    """At most `max_points` points: the lowest and highest point of each of max_points / 2
    equal buckets, in time order, so that a one-sample spike still shows.

    None marks a gap (no value); a bucket with no value at all stays a gap.
    """
    n = len(xs)
    if n <= max_points:
        return list(xs), list(ys)
    buckets = max(1, max_points // 2)
    out_x: list[int] = []
    out_y: list[float | None] = []
    for bucket in range(buckets):
        lo = bucket * n // buckets
        hi = (bucket + 1) * n // buckets
        present: Sequence[int]
        if None in ys[lo:hi]:
            present = [i for i in range(lo, hi) if ys[i] is not None]
            if not present:
                out_x.append(xs[lo])
                out_y.append(None)
                continue
        else:
            present = range(lo, hi)
        i_min = min(present, key=ys.__getitem__)  # type: ignore[arg-type]  # no None here
        i_max = max(present, key=ys.__getitem__)  # type: ignore[arg-type]  # no None here
        for i in (i_min,) if i_min == i_max else (min(i_min, i_max), max(i_min, i_max)):
            out_x.append(xs[i])
            out_y.append(ys[i])
    return out_x, out_y


def stride_sample(items: Sequence[T], max_items: int) -> list[T]:
    """Every k-th item so that at most `max_items` remain (markers on a chart)."""
    if len(items) <= max_items:
        return list(items)
    step = math.ceil(len(items) / max_items)
    return list(items[::step])


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of sorted values, linear between order statistics."""
    if not sorted_values:
        raise ValueError("quantile of no values")
    position = q * (len(sorted_values) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    weight = position - lower
    return sorted_values[lower] * (1 - weight) + sorted_values[upper] * weight


def bin_edges(values: Sequence[float], bins: int, tail: float = 0.005) -> list[float]:
    """`bins` equal bins over the values between their `tail` and 1 - `tail` quantiles.

    Values beyond are counted in the first or last bin (see `bin_counts`), so a few outliers
    do not squeeze the body of the distribution into one bar.
    """
    if not values:
        return []
    ordered = sorted(values)
    lo, hi = quantile(ordered, tail), quantile(ordered, 1 - tail)
    if hi <= lo:
        pad = abs(lo) * 0.01 or 1.0
        lo, hi = lo - pad, hi + pad
    width = (hi - lo) / bins
    return [lo + i * width for i in range(bins + 1)]


def bin_counts(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    """Counts per bin of `edges`; values outside go to the first or last bin."""
    bins = len(edges) - 1
    counts = [0] * max(bins, 0)
    if bins <= 0:
        return counts
    lo, width = edges[0], (edges[-1] - edges[0]) / bins
    for value in values:
        counts[min(bins - 1, max(0, int((value - lo) / width)))] += 1
    return counts


def latest_at(times: Sequence[Sequence[int]], step: int) -> tuple[list[int], list[list[int]]]:
    """Several series' timestamps on one grid of `step`: for each series and grid time, the
    index of the series' latest point at or before it (-1 before its first). The grid holds
    every step that has a point in any series; used to add markets' P&L."""
    grid = sorted({ts // step * step for series in times for ts in series})
    indexes: list[list[int]] = []
    for series in times:
        if [ts // step * step for ts in series] == grid:  # one point a step, as snapshots are
            indexes.append(list(range(len(series))))
            continue
        column: list[int] = []
        index = -1
        for t in grid:
            while index + 1 < len(series) and series[index + 1] // step * step <= t:
                index += 1
            column.append(index)
        indexes.append(column)
    return grid, indexes
