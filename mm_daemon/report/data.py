"""What a run report shows, independent of where it came from (a journal, a replay, a test).

Plain frozen dataclasses: a `RunData` holds the run's header (mode, instance, start and end, the
config text that ran, the run summary as the daemon printed it), one `MarketRun` per market and
one `AssetRun` per base asset. A market has its run summary (`RunSummary`, the figures the
daemon prints at the end, which the page shows unchanged), its 1 s `Snapshot` series, its fills,
hedges, completed markouts (`Markout` of the core), and the intervals it spent reducing, halted
or paused. An asset has the 1 s series of its whole ledger: its markets and its hedge, whose P&L
belongs to the asset rather than to any one market. A sweep's comparison page takes one
`SweepResult` per combination.

Times are Unix nanoseconds (the daemon's `ts_*_ns`); money is in the market's quote currency,
sizes in base units. Names follow the core: P&L components are `pnl.COMPONENTS` (plus
`funding`), markout horizons are `horizon_label`s ("5s"), sides are `Side`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mm_daemon.core.markouts import Markout
from mm_daemon.core.pnl import COMPONENTS
from mm_daemon.core.risk import RiskState
from mm_daemon.core.summary import RunSummary
from mm_daemon.core.types import Liquidity, Side

__all__ = [
    "PNL_COMPONENTS",
    "AssetRun",
    "FillRecord",
    "HedgeRecord",
    "Interval",
    "MarketRun",
    "Markout",
    "Pnl",
    "RunData",
    "Snapshot",
    "SweepResult",
    "intervals_from_snapshots",
]

PNL_COMPONENTS: tuple[str, ...] = tuple(dict.fromkeys((*COMPONENTS, "funding")))
"""The P&L components a report shows, in display order: the core's, then funding."""

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Pnl:
    """P&L by component at one instant, quote units; `total` is their sum."""

    spread_capture: float = 0.0
    fees: float = 0.0
    inventory: float = 0.0
    hedge_cost: float = 0.0
    basis: float = 0.0
    funding: float = 0.0
    total: float = 0.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, float]) -> Pnl:
        """From `PnlBreakdown.as_floats()` or `RunSummary.pnl_quote` (funding 0 when absent)."""
        return cls(**{name: float(values.get(name, 0.0)) for name in (*PNL_COMPONENTS, "total")})

    def component(self, name: str) -> float:
        """One component by its name in `PNL_COMPONENTS`, or "total"."""
        value: float = getattr(self, name)
        return value


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state of one market at one instant (the journal keeps one a second)."""

    ts_ns: int
    fair_value: float | None
    best_bid: float | None
    best_ask: float | None
    bid_quote: float | None  # our best bid price; None while that side is not quoted
    ask_quote: float | None
    position_base: float  # this market's own position
    net_exposure_base: float  # the net exposure of the market's base asset, all venues
    pnl: Pnl
    risk_state: RiskState = RiskState.ACTIVE
    paused: bool = False


@dataclass(frozen=True, slots=True)
class FillRecord:
    """One fill, quoting or hedge."""

    ts_ns: int
    market: str
    venue: str
    symbol: str
    side: Side
    price: float
    size_base: float
    fee_quote: float  # positive a cost, negative a rebate
    liquidity: Liquidity
    is_hedge: bool
    spread_capture_quote: float  # s * x * (E - p): the fill's edge on its entry mark (pnl.py)


@dataclass(frozen=True, slots=True)
class HedgeRecord:
    """One hedge order's outcome on the hedge venue."""

    ts_ns: int
    venue: str
    symbol: str
    side: Side
    size_base: float  # filled
    slippage_bps: float | None  # positive: paid through the hedge fair value; None: no fill


@dataclass(frozen=True, slots=True)
class Interval:
    """A stretch of time spent in a non-active state: REDUCING, HALTED, or paused."""

    kind: str  # a RiskState name, or "paused"
    start_ns: int
    end_ns: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class MarketRun:
    """Everything the report shows of one market."""

    market: str  # the market's name
    venue: str
    symbol: str
    summary: RunSummary
    snapshots: tuple[Snapshot, ...]
    fills: tuple[FillRecord, ...]
    hedges: tuple[HedgeRecord, ...]
    markouts: tuple[Markout, ...]
    intervals: tuple[Interval, ...]
    inventory_limit_base: float
    hedge_threshold_base: float | None  # None: hedging off
    hedge_venue: str | None = None
    hedge_symbol: str | None = None

    @property
    def base_currency(self) -> str:
        return self.summary.base_currency

    @property
    def quote_currency(self) -> str:
        return self.summary.quote_currency


@dataclass(frozen=True, slots=True)
class AssetRun:
    """One base asset: the 1 s series of its whole ledger (every market of the asset and its
    hedge); the snapshots' fair value, touch and position are the hedge instrument's (None and
    0 without a hedge), `paused` marks the hedge venue down."""

    asset: str
    quote_currency: str
    snapshots: tuple[Snapshot, ...]
    hedge_venue: str | None = None
    hedge_symbol: str | None = None


@dataclass(frozen=True, slots=True)
class RunData:
    """One run (live, paper or replay) of one daemon instance, with all its markets.

    `summary` is the whole run's summary as the daemon printed it at the end (None when there
    is none: a killed run, a time range); the header's figures come from it when present.
    `note` says, on the page, where the figures come from when they are not the run summary's.
    """

    mode: str  # "paper", "live" or "replay"
    instance: str
    started_ns: int
    ended_ns: int
    config_text: str  # the config that ran, as written
    markets: tuple[MarketRun, ...]
    title: str = ""
    summary: RunSummary | None = None
    assets: tuple[AssetRun, ...] = ()
    note: str = ""
    # Configured markets that did not trade: name, and why (the run summary's reason when the
    # run ended with one, else that the journal holds nothing of the market).
    failed_markets: tuple[tuple[str, str], ...] = ()

    @property
    def duration_seconds(self) -> float:
        return (self.ended_ns - self.started_ns) / _NS

    @property
    def venues(self) -> tuple[str, ...]:
        """Every venue of the run, maker and hedge, in order of first mention."""
        names: list[str] = []
        for market in self.markets:
            names.append(market.venue)
            if market.hedge_venue is not None:
                names.append(market.hedge_venue)
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class SweepResult:
    """One combination of a sweep: its values by config path, summary and P&L curve."""

    values: Mapping[str, str]
    summary: Mapping[str, Any]  # `summary_to_dict` of its run summary
    pnl_series: tuple[tuple[int, float], ...] = field(default=())  # (ts_ns, total P&L)


def intervals_from_snapshots(snapshots: Iterable[Snapshot]) -> tuple[Interval, ...]:
    """Intervals of REDUCING, HALTED and paused read off a snapshot series.

    For a source that records only snapshots: each interval runs from the first snapshot in the
    state to the first one out of it (or the last snapshot), so it is exact to the sampling step.
    """
    open_since: dict[str, int] = {}
    done: list[Interval] = []
    last_ts: int | None = None
    for snap in snapshots:
        states = {snap.risk_state.name} if snap.risk_state is not RiskState.ACTIVE else set()
        if snap.paused:
            states.add("paused")
        ended = [k for k in open_since if k not in states]
        done.extend(Interval(kind, open_since.pop(kind), snap.ts_ns) for kind in ended)
        for kind in sorted(states):
            open_since.setdefault(kind, snap.ts_ns)
        last_ts = snap.ts_ns
    if last_ts is not None:
        done.extend(Interval(kind, start, last_ts) for kind, start in open_since.items())
    return tuple(sorted(done, key=lambda i: (i.start_ns, i.kind)))
