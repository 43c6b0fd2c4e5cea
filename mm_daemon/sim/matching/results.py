"""What the matching engine answers: Binance errors, order statuses, and the result objects a
wire layer builds its frames from (depth diffs, public trades, execution reports, order views,
account trades)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from mm_daemon.core.types import Liquidity, OrderType, Side

__all__ = [
    "ERR_DUPLICATE_ORDER",
    "ERR_INSUFFICIENT_BALANCE",
    "ERR_LOT_SIZE",
    "ERR_MARKET_CLOSED",
    "ERR_NOTIONAL",
    "ERR_ORDER_NOT_EXIST",
    "ERR_PRICE_FILTER",
    "ERR_REDUCE_ONLY",
    "ERR_UNKNOWN_ORDER",
    "ERR_WOULD_MATCH",
    "AccountTrade",
    "CancelReplaceResult",
    "ExecType",
    "ExecutionReport",
    "LevelChange",
    "MatchResult",
    "OrderView",
    "PublicTrade",
    "SimError",
    "SimOrderStatus",
]


@dataclass(frozen=True, slots=True)
class SimError:
    """A Binance error: `code` and `msg` as Binance sends them in its error JSON."""

    code: int
    msg: str


ERR_WOULD_MATCH = SimError(-2010, "Order would immediately match and take.")
ERR_INSUFFICIENT_BALANCE = SimError(-2010, "Account has insufficient balance for requested action.")
ERR_DUPLICATE_ORDER = SimError(-2010, "Duplicate order sent.")
ERR_MARKET_CLOSED = SimError(-2010, "Market is closed.")
ERR_PRICE_FILTER = SimError(-1013, "Filter failure: PRICE_FILTER")
ERR_LOT_SIZE = SimError(-1013, "Filter failure: LOT_SIZE")
ERR_NOTIONAL = SimError(-1013, "Filter failure: NOTIONAL")
ERR_UNKNOWN_ORDER = SimError(-2011, "Unknown order sent.")
ERR_ORDER_NOT_EXIST = SimError(-2013, "Order does not exist.")
ERR_REDUCE_ONLY = SimError(-2022, "ReduceOnly Order is rejected.")


class SimOrderStatus(StrEnum):
    """Order status, spelled as Binance spells it on the wire."""

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_open(self) -> bool:
        return self is SimOrderStatus.NEW or self is SimOrderStatus.PARTIALLY_FILLED


class ExecType(StrEnum):
    """Execution type of a report (Binance `x`)."""

    NEW = "NEW"
    TRADE = "TRADE"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    AMENDMENT = "AMENDMENT"


class LevelChange(NamedTuple):
    """A book level's new absolute size after a call; 0 means the level is gone.

    A NamedTuple rather than a frozen dataclass: one is built per changed level on the hot
    path, and a tuple is about twice as cheap to create."""

    side: Side  # BUY: a bid level, SELL: an ask level
    price_ticks: int
    size_lots: int


class PublicTrade(NamedTuple):
    """A public trade (a NamedTuple for the same reason as `LevelChange`)."""

    trade_id: int
    price_ticks: int
    size_lots: int
    aggressor: Side  # SELL means the buyer was the maker (Binance `m` = true)
    ts_ns: int
    maker_order_id: int
    taker_order_id: int

    @property
    def buyer_is_maker(self) -> bool:
        return self.aggressor is Side.SELL


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """One event on an account's order (Binance executionReport / ORDER_TRADE_UPDATE)."""

    api_key: str
    order_id: int
    client_order_id: str
    side: Side
    order_type: OrderType
    price_ticks: int  # 0 for MARKET
    orig_lots: int
    status: SimOrderStatus
    exec_type: ExecType
    last_lots: int  # 0 unless exec_type is TRADE
    last_price_ticks: int  # 0 unless exec_type is TRADE
    cum_lots: int
    cum_quote: float
    fee: float  # of this fill, in fee_asset; positive is a cost
    fee_asset: str
    liquidity: Liquidity | None  # None unless exec_type is TRADE
    trade_id: int  # -1 unless exec_type is TRADE
    ts_ns: int
    order_ts_ns: int  # when the order was created
    realized_pnl: float = 0.0  # of this fill (perpetuals)
    reduce_only: bool = False
    reject: SimError | None = None


@dataclass(frozen=True, slots=True)
class OrderView:
    """An order's state at the time of the call (REST order responses, queries)."""

    api_key: str
    order_id: int
    client_order_id: str
    side: Side
    order_type: OrderType
    price_ticks: int
    orig_lots: int
    executed_lots: int
    cum_quote: float
    status: SimOrderStatus
    ts_ns: int
    update_ts_ns: int
    reduce_only: bool


@dataclass(frozen=True, slots=True)
class AccountTrade:
    """One fill from an account's point of view (Binance myTrades / userTrades)."""

    trade_id: int
    order_id: int
    client_order_id: str
    side: Side
    price_ticks: int
    size_lots: int
    quote_qty: float
    fee: float
    fee_asset: str
    is_maker: bool
    ts_ns: int
    realized_pnl: float = 0.0


class MatchResult:
    """What one engine call did.

    `error` is set when the request itself was refused (filter failure, unknown order, post-only
    would cross, insufficient balance): then nothing changed, no order was created and there
    are no reports. Otherwise `order` is the affected order's state after the call (None for
    background orders and for cancel_all), `level_changes` the book levels it changed (absolute
    sizes, first-touched order), `trades` the public trades, `reports` the execution reports of
    the client accounts involved (in event order), `accounts_changed` the client API keys whose
    balances or positions changed, `cancelled` every order cancel_all cancelled. `update_id` is
    the engine's book update id after the call; it advanced by exactly one when
    `level_changes` is non-empty.

    A plain slots class with a hand-written __init__: one is built per engine call, and this
    is several times cheaper than a dataclass with list default factories.
    """

    __slots__ = (
        "accounts_changed",
        "cancelled",
        "error",
        "level_changes",
        "order",
        "order_id",
        "reports",
        "trades",
        "update_id",
    )

    def __init__(self, update_id: int, error: SimError | None = None) -> None:
        self.update_id = update_id
        self.error = error
        self.order: OrderView | None = None
        self.order_id = -1
        self.level_changes: list[LevelChange] = []
        self.trades: list[PublicTrade] = []
        self.reports: list[ExecutionReport] = []
        self.accounts_changed: list[str] = []
        self.cancelled: list[OrderView] = []

    def __repr__(self) -> str:
        return (
            f"MatchResult(update_id={self.update_id}, error={self.error}, "
            f"order_id={self.order_id}, level_changes={self.level_changes}, "
            f"trades={self.trades}, reports={len(self.reports)})"
        )

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class CancelReplaceResult:
    """Binance cancelReplace: the cancel's result and the new order's (None if not attempted)."""

    cancel: MatchResult
    new: MatchResult | None

    @property
    def ok(self) -> bool:
        return self.cancel.ok and self.new is not None and self.new.ok
