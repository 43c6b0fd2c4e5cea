"""Markouts: how the fair value moved after each maker fill.

For a fill at time t0 with fair value F0 at that moment, the markout at horizon h is
side * (F(t0 + h) - F0) / F0 in bps, where F(t) is the last fair value observed at or before t.
Positive means the fill was good for us (we bought before a rise or sold before a fall);
adverse selection shows as negative. Measured against the fair value at the fill, not the fill
price, so it isolates the move after the fill from the spread captured on it.

A markout is complete once the tracker has seen time pass t0 + h: through a later fair value
update or `advance(now_ns)`. The tracker follows one instrument; feed it that instrument's fair
values and fills in time order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from mm_daemon.core.types import Side

__all__ = [
    "DEFAULT_HORIZONS_SECONDS",
    "Markout",
    "MarkoutTracker",
    "horizon_label",
    "horizon_seconds",
]

DEFAULT_HORIZONS_SECONDS = (1, 5, 30, 60)
_NS = 1_000_000_000


def horizon_label(seconds: float) -> str:
    """Label of a horizon for metrics and tables: 1 -> "1s", 0.5 -> "0.5s"."""
    return f"{seconds:g}s"


def horizon_seconds(label: str) -> float:
    """The seconds of a horizon label ("5s" -> 5.0); infinity for a label of another form, so
    that sorting by it puts those last."""
    try:
        return float(label.removesuffix("s"))
    except ValueError:
        return float("inf")


@dataclass(frozen=True, slots=True)
class Markout:
    horizon: str  # e.g. "5s"
    bps: float  # positive: good for us
    fill_ts_ns: int
    side: Side


@dataclass(slots=True)
class _Pending:
    due_ns: int
    fill_ts_ns: int
    side: Side
    fair_at_fill: float


class _HorizonStats:
    __slots__ = ("count", "label", "pending", "sum_bps", "window_ns")

    def __init__(self, seconds: float) -> None:
        self.label = horizon_label(seconds)
        self.window_ns = round(seconds * _NS)
        self.pending: deque[_Pending] = deque()
        self.count = 0
        self.sum_bps = 0.0


class MarkoutTracker:
    """Tracks maker fills of one instrument and completes their markouts as time passes."""

    __slots__ = ("_fair", "_horizons")

    def __init__(self, horizons_seconds: tuple[float, ...] = DEFAULT_HORIZONS_SECONDS) -> None:
        if not horizons_seconds or any(h <= 0 for h in horizons_seconds):
            raise ValueError("markout horizons must be positive seconds")
        self._horizons = tuple(_HorizonStats(h) for h in horizons_seconds)
        self._fair: float | None = None

    @property
    def horizons(self) -> tuple[str, ...]:
        return tuple(h.label for h in self._horizons)

    @property
    def pending(self) -> int:
        """Markouts waiting for their horizon, over all horizons."""
        return sum(len(h.pending) for h in self._horizons)

    def on_fill(self, ts_ns: int, side: Side, fair_value: float | None = None) -> None:
        """A maker fill at `ts_ns`, measured from `fair_value` (default: the latest seen).

        A fill before any fair value is known, or with a non-positive one, is not tracked.
        """
        fair = self._fair if fair_value is None else fair_value
        if fair is None or fair <= 0:
            return
        for horizon in self._horizons:
            horizon.pending.append(_Pending(ts_ns + horizon.window_ns, ts_ns, side, fair))

    def on_fair_value(self, ts_ns: int, fair_value: float) -> list[Markout]:
        """A new fair value at `ts_ns`; return the markouts it completes."""
        done: list[Markout] = []
        if self._fair is not None:
            self._complete(ts_ns - 1, self._fair, done)  # due before now: the previous value
        self._fair = fair_value
        self._complete(ts_ns, fair_value, done)
        return done

    def advance(self, now_ns: int) -> list[Markout]:
        """Time has reached `now_ns` with no new fair value; return the markouts completed."""
        done: list[Markout] = []
        if self._fair is not None:
            self._complete(now_ns, self._fair, done)
        return done

    def means_bps(self) -> dict[str, float | None]:
        """Mean completed markout per horizon label (None before the first one)."""
        return {h.label: (h.sum_bps / h.count if h.count else None) for h in self._horizons}

    def counts(self) -> dict[str, int]:
        return {h.label: h.count for h in self._horizons}

    def _complete(self, up_to_ns: int, fair_value: float, done: list[Markout]) -> None:
        for horizon in self._horizons:
            pending = horizon.pending
            while pending and pending[0].due_ns <= up_to_ns:
                item = pending.popleft()
                bps = item.side * (fair_value - item.fair_at_fill) / item.fair_at_fill * 1e4
                horizon.count += 1
                horizon.sum_bps += bps
                done.append(Markout(horizon.label, bps, item.fill_ts_ns, item.side))
