"""What the journal keeps, as plain frozen dataclasses (written by the daemon, read by recovery
and the run reports)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from mm_daemon.core.inventory import FillMarks
from mm_daemon.core.types import Fill, OrderStatus, OrderType, Side

__all__ = [
    "Baseline",
    "Checkpoint",
    "ControlAction",
    "FillOutcome",
    "FundingPayment",
    "HedgeDecision",
    "HedgeOutcome",
    "InstrumentInfo",
    "JournalObserver",
    "JournaledFill",
    "JournaledMarkout",
    "OpenOrder",
    "RiskChange",
    "RunInfo",
    "Snapshot",
    "TradeMark",
]


class FillOutcome(Enum):
    """What `Journal.record_fill` did; the caller counts the fill unless it is DUPLICATE."""

    BOOKED = "booked"  # new, and committed before the call returned
    BUFFERED = "buffered"  # new, the venue keeps it: committed by the writer thread shortly
    DUPLICATE = "duplicate"  # this trade id is journaled already: it must not count again
    UNJOURNALED = "unjournaled"  # new, but the journal has failed: count it, nothing is durable


class JournalObserver(Protocol):
    """Told of every commit (from the thread that made it: the writer's or the caller's)."""

    def journal_committed(self, records: int, seconds: float) -> None: ...


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_id: int
    instance_id: str
    mode: str
    started_ns: int
    ended_ns: int | None
    end_reason: str | None  # "unclean": killed or crashed, closed by the next start
    config_yaml: str
    summary: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class InstrumentInfo:
    """An instrument a run traded: what converts its journaled ticks and lots."""

    run_id: int
    venue: str
    symbol: str
    exchange_symbol: str
    kind: str
    base: str
    quote: str
    tick_size: float
    lot_size: float
    contract_size_base: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One market once a second: what the run reports plot.

    Each asset has a series of its own too, under the asset's name ("BTC"), as its other
    records (fills, hedges, ledger checkpoints) have: the P&L of its whole ledger (its markets
    and its hedge), its net exposure, and its hedge instrument's fair value, touch and
    position (no quotes; paused while the hedge venue is down).
    """

    market: str
    ts_ns: int
    fair_value: float | None
    best_bid: float | None
    best_ask: float | None
    quote_bid: float | None  # our best quote, None when not quoting that side
    quote_ask: float | None
    position_base: float
    net_exposure_base: float  # of the market's base asset, netted across markets and venues
    pnl_total: float
    pnl_spread_capture: float
    pnl_fees: float
    pnl_inventory: float
    pnl_hedge_cost: float
    pnl_basis: float
    pnl_funding: float
    drawdown_peak: float | None
    risk_state: str
    paused: bool
    pause_reason: str = ""  # why quoting (or, for an asset, hedging) is paused


@dataclass(frozen=True, slots=True)
class JournaledFill:
    seq: int
    run_id: int
    market: str
    fill: Fill
    marks: FillMarks
    price: float
    size: float
    fee_asset: str
    recovered: bool  # booked from the venue's trade history at a start, not from the stream


@dataclass(frozen=True, slots=True)
class JournaledMarkout:
    """A maker fill's markout at one horizon, journaled when it completed (`ts_ns`)."""

    seq: int
    run_id: int
    market: str
    ts_ns: int
    fill_ts_ns: int
    side: Side
    horizon: str  # a horizon label of core.markouts ("5s")
    bps: float  # positive: good for us


@dataclass(frozen=True, slots=True)
class HedgeDecision:
    seq: int
    run_id: int
    market: str
    ts_ns: int
    venue: str
    symbol: str
    client_order_id: str
    side: Side
    size_lots: int
    price_ticks: int
    fair_value: float
    reference_fair_value: float
    exposure_change_base: float


@dataclass(frozen=True, slots=True)
class HedgeOutcome:
    seq: int
    run_id: int
    market: str
    ts_ns: int
    venue: str
    symbol: str
    client_order_id: str
    status: str
    filled_lots: int
    avg_price: float | None
    slippage_bps: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class RiskChange:
    seq: int
    run_id: int
    market: str | None  # None: portfolio-wide
    ts_ns: int
    state: str  # a RiskState name
    reason: str
    source: str  # drawdown, inventory, operator, portfolio, ...


@dataclass(frozen=True, slots=True)
class ControlAction:
    seq: int
    run_id: int
    ts_ns: int
    action: str
    caller: str
    result: str
    detail: str


@dataclass(frozen=True, slots=True)
class FundingPayment:
    seq: int
    run_id: int
    market: str
    venue: str
    symbol: str
    funding_time_ns: int
    amount: float  # received > 0, paid < 0
    asset: str
    rate: float | None
    position_base: float | None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int  # records up to this sequence number are counted in it
    run_id: int
    market: str | None  # None: portfolio-wide
    ts_ns: int
    ledger: dict[str, Any] | None  # Ledger.export_state(hedge_decisions=False)
    risk: dict[str, Any] | None  # RiskGate.export_state()


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """The last known state of an order not known to be finished."""

    market: str
    run_id: int
    mode: str  # of the run that last wrote it: paper orders are restored from here
    venue: str
    symbol: str
    client_order_id: str
    exchange_order_id: str
    side: Side
    order_type: OrderType
    price_ticks: int
    size_lots: int
    filled_lots: int  # the larger of the last status and the journaled fills
    status: OrderStatus
    ts_ns: int


@dataclass(frozen=True, slots=True)
class TradeMark:
    """The latest journaled trade of one venue and symbol (where `trades_since` starts)."""

    trade_id: str
    ts_exchange_ns: int


@dataclass(frozen=True, slots=True)
class Baseline:
    """What the account held of an instrument when this journal first traded it (another
    program's holdings, or the account's before this instance): the venue's position should
    be the baseline plus the journal's."""

    venue: str
    symbol: str
    run_id: int
    ts_ns: int
    lots: int
    last_trade_id: str  # the account's latest trade then ("" : none); recovery reads after it
