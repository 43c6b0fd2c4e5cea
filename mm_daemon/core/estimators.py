"""Online estimators the quote engine needs; pure, with time passed in as ns.

- `EwmaVolatility`: volatility of fair-value log returns per sqrt(second). Time-aware: it keeps
  exponentially decayed sums of squared returns and of elapsed time and reports
  sqrt(sum r^2 / sum dt), so a diffusion sampled at irregular intervals gives the same answer as
  one sampled regularly.
- `TradeIntensity`: trade-arrival intensity lambda(delta) = A * exp(-k * delta), delta the
  distance of a trade's price from mid in ticks, lambda per second. Over a rolling window it
  counts trades per 1-tick distance bin; lambda(d) is the rate of trades printing at least d
  ticks from mid, and (log A, -k) is the weighted least-squares line through log lambda(d).
- `TradeFlowImbalance`: signed trade volume over total volume, both time-decayed EWMAs, in
  [-1, 1] (positive: buyers lift the offer); `touch_imbalance` gives the book's
  (bid size - ask size) / (bid size + ask size) at the touch.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = [
    "EwmaVolatility",
    "IntensityFit",
    "TradeFlowImbalance",
    "TradeIntensity",
    "touch_imbalance",
]

_LN2 = math.log(2.0)
_NS = 1_000_000_000


class EwmaVolatility:
    """EWMA volatility of log returns of a price series, per sqrt(second).

    `min_interval_ns` samples the series no more often than that (returns between samples are
    measured from the last sampled price), which damps bid/ask bounce on very busy books.
    """

    __slots__ = (
        "_decay_per_ns",
        "_last_log_price",
        "_last_ns",
        "_min_interval_ns",
        "_n",
        "_sum_dt",
        "_sum_r2",
    )

    def __init__(self, halflife_ns: int, min_interval_ns: int = 0) -> None:
        if halflife_ns <= 0:
            raise ValueError("halflife_ns must be positive")
        self._decay_per_ns = _LN2 / halflife_ns
        self._min_interval_ns = min_interval_ns
        self._last_log_price: float | None = None
        self._last_ns = 0
        self._sum_r2 = 0.0
        self._sum_dt = 0.0
        self._n = 0

    def update(self, price: float, ts_ns: int) -> None:
        """Add an observation of the price (any positive unit, e.g. fractional ticks)."""
        if price <= 0.0:
            return
        last = self._last_log_price
        if last is None:
            self._last_log_price = math.log(price)
            self._last_ns = ts_ns
            return
        dt = ts_ns - self._last_ns
        if dt <= 0 or dt < self._min_interval_ns:
            return
        lp = math.log(price)
        r = lp - last
        w = math.exp(-self._decay_per_ns * dt)
        self._sum_r2 = self._sum_r2 * w + r * r
        self._sum_dt = self._sum_dt * w + dt / _NS
        self._last_log_price = lp
        self._last_ns = ts_ns
        self._n += 1

    @property
    def samples(self) -> int:
        return self._n

    @property
    def value(self) -> float:
        """Volatility as a fraction per sqrt(second) (0 until a return has been seen)."""
        if self._sum_dt <= 0.0:
            return 0.0
        return math.sqrt(self._sum_r2 / self._sum_dt)

    @property
    def value_bps(self) -> float:
        """Volatility in bps per sqrt(second)."""
        return self.value * 1e4


class IntensityFit:
    """Result of a trade-intensity fit: lambda(delta) = a_per_second * exp(-k_per_tick * delta)."""

    __slots__ = ("a_per_second", "k_per_tick", "points", "trades")

    def __init__(self, a_per_second: float, k_per_tick: float, points: int, trades: int) -> None:
        self.a_per_second = a_per_second
        self.k_per_tick = k_per_tick
        self.points = points  # distance bins used in the fit
        self.trades = trades  # trades in the window

    def intensity(self, delta_ticks: float) -> float:
        return self.a_per_second * math.exp(-self.k_per_tick * delta_ticks)

    def __repr__(self) -> str:
        return (
            f"IntensityFit(A={self.a_per_second:.4g}/s, k={self.k_per_tick:.4g}/tick, "
            f"points={self.points}, trades={self.trades})"
        )


class TradeIntensity:
    """Rolling-window fit of A and k from how far trades print from mid.

    O(1) per trade (a deque and a histogram of 1-tick bins); `fit` costs O(bins) and is cached
    until the next trade or window move.
    """

    __slots__ = (
        "_cache",
        "_counts",
        "_first_ns",
        "_max_bins",
        "_min_count",
        "_trades",
        "_window_ns",
    )

    def __init__(self, window_ns: int, max_bins: int = 200, min_count: int = 5) -> None:
        if window_ns <= 0:
            raise ValueError("window_ns must be positive")
        self._window_ns = window_ns
        self._max_bins = max_bins
        self._min_count = min_count
        self._counts = [0] * (max_bins + 1)  # last bin holds everything beyond max_bins ticks
        self._trades: deque[tuple[int, int]] = deque()
        self._first_ns: int | None = None
        self._cache: IntensityFit | None = None

    def on_trade(self, price_ticks: float, mid_ticks: float, ts_ns: int) -> None:
        """Record a trade at `price_ticks` while the mid was `mid_ticks`."""
        delta = abs(price_ticks - mid_ticks)
        b = int(delta)
        b = min(b, self._max_bins)
        self._counts[b] += 1
        self._trades.append((ts_ns, b))
        if self._first_ns is None:
            self._first_ns = ts_ns
        self._expire(ts_ns)
        self._cache = None

    def advance(self, now_ns: int) -> None:
        """Drop trades that left the window (the fit does this itself for its `now_ns`)."""
        self._expire(now_ns)

    def _expire(self, now_ns: int) -> None:
        horizon = now_ns - self._window_ns
        trades = self._trades
        counts = self._counts
        while trades and trades[0][0] <= horizon:
            counts[trades.popleft()[1]] -= 1
            self._cache = None

    def fit(self, now_ns: int) -> IntensityFit | None:
        """A and k over the window ending at `now_ns`; None until two bins have enough trades."""
        self._expire(now_ns)
        if self._cache is not None:
            return self._cache
        if self._first_ns is None:
            return None
        span_s = min(self._window_ns, now_ns - self._first_ns) / _NS
        if span_s <= 0.0:
            return None
        # Exceedance counts: trades at least d ticks from mid, d = 0, 1, ..., max_bins - 1.
        counts = self._counts
        xs: list[float] = []
        ys: list[float] = []
        ws: list[float] = []
        tail = 0
        for d in range(self._max_bins, -1, -1):
            tail += counts[d]
            if d < self._max_bins and tail >= self._min_count:
                xs.append(float(d))
                ys.append(math.log(tail / span_s))
                ws.append(float(tail))  # Poisson: var(log count) ~ 1 / count
        if len(xs) < 2:
            return None
        sw = sum(ws)
        mx = sum(w * x for w, x in zip(ws, xs, strict=True)) / sw
        my = sum(w * y for w, y in zip(ws, ys, strict=True)) / sw
        sxx = sum(w * (x - mx) ** 2 for w, x in zip(ws, xs, strict=True))
        sxy = sum(w * (x - mx) * (y - my) for w, x, y in zip(ws, xs, ys, strict=True))
        if sxx <= 0.0:
            return None
        slope = sxy / sxx
        intercept = my - slope * mx
        self._cache = IntensityFit(math.exp(intercept), -slope, len(xs), len(self._trades))
        return self._cache


class TradeFlowImbalance:
    """EWMA of signed trade volume over EWMA of volume: in [-1, 1], time-decayed."""

    __slots__ = ("_decay_per_ns", "_last_ns", "_signed", "_total")

    def __init__(self, halflife_ns: int) -> None:
        if halflife_ns <= 0:
            raise ValueError("halflife_ns must be positive")
        self._decay_per_ns = _LN2 / halflife_ns
        self._signed = 0.0
        self._total = 0.0
        self._last_ns: int | None = None

    def on_trade(self, size: float, aggressor_sign: int, ts_ns: int) -> None:
        """`aggressor_sign` is +1 for a buyer-initiated trade, -1 for a seller-initiated one."""
        last = self._last_ns
        if last is not None and ts_ns > last:
            w = math.exp(-self._decay_per_ns * (ts_ns - last))
            self._signed *= w
            self._total *= w
        self._signed += aggressor_sign * size
        self._total += size
        if last is None or ts_ns > last:
            self._last_ns = ts_ns

    @property
    def value(self) -> float:
        """Signed share of recent volume; 0 with no trades."""
        if self._total <= 0.0:
            return 0.0
        return self._signed / self._total


def touch_imbalance(bid_size: int, ask_size: int) -> float:
    """(bid - ask) / (bid + ask) of the touch sizes, in [-1, 1]; 0 for an empty touch."""
    total = bid_size + ask_size
    if total <= 0:
        return 0.0
    return (bid_size - ask_size) / total
