"""Price-time priority matching engine for one instrument, with Binance-style accounts.

Pure and deterministic: no I/O, no clock reads; every call takes the time as `ts_ns`.
Prices are integer ticks and sizes integer lots (see `Instrument`); balances are quote and
base amounts as floats, charged with the exact notional of each fill.

Every call returns a `MatchResult` carrying everything a wire layer needs to build its frames
(depth diffs, public trades, best bid/ask, execution reports and the accounts whose balances
changed) without reaching into the book.

Book layout, per side: a dict price -> `_Level` (a FIFO deque of orders and their total size)
and a sorted list of keys (`price` for bids, `-price` for asks), so the best level is always
the last key. Finding a level is a dict lookup, the best price is O(1), and a new price level
is a bisect insert. Cancelled orders stay in their level's deque, marked dead, and are skipped
by matching; a level compacts itself when its dead orders outnumber its live ones.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import NamedTuple

from mm_daemon.core.types import (
    BookLevels,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderType,
    Side,
)

__all__ = [
    "BACKGROUND_API_KEY",
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
    "Account",
    "AccountTrade",
    "Accounts",
    "Balance",
    "CancelReplaceResult",
    "ExecType",
    "ExecutionReport",
    "LevelChange",
    "MatchResult",
    "MatchingEngine",
    "OrderView",
    "Position",
    "PublicTrade",
    "SimError",
    "SimOrderStatus",
    "parse_price_ticks",
    "parse_size_lots",
]

BACKGROUND_API_KEY = "__background__"
"""The account of synthetic liquidity and flow: never balance-checked, never reported."""


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


# -- result objects ----------------------------------------------------------------------------


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

    @property
    def buyer_order_id(self) -> int:
        return self.taker_order_id if self.aggressor is Side.BUY else self.maker_order_id

    @property
    def seller_order_id(self) -> int:
        return self.maker_order_id if self.aggressor is Side.BUY else self.taker_order_id


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

    @property
    def book_changed(self) -> bool:
        return bool(self.level_changes)


@dataclass(slots=True)
class CancelReplaceResult:
    """Binance cancelReplace: the cancel's result and the new order's (None if not attempted)."""

    cancel: MatchResult
    new: MatchResult | None

    @property
    def ok(self) -> bool:
        return self.cancel.ok and self.new is not None and self.new.ok


# -- accounts ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Balance:
    free: float = 0.0
    locked: float = 0.0

    @property
    def total(self) -> float:
        return self.free + self.locked


@dataclass(slots=True)
class Position:
    """A perpetual position: signed lots, average entry price (quote per base), realized P&L."""

    size_lots: int = 0
    entry_price: float = 0.0
    realized_pnl: float = 0.0


@dataclass(slots=True)
class Account:
    """Balances by asset and, on perpetual venues, positions by exchange symbol.

    On a perpetual venue the quote balance is the margin wallet: `locked` holds the initial
    margin of open orders (notional / leverage); realized P&L and fees settle into `free`.
    """

    api_key: str
    kind: InstrumentKind
    leverage: int
    balances: dict[str, Balance] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)

    def balance(self, asset: str) -> Balance:
        bal = self.balances.get(asset)
        if bal is None:
            bal = self.balances[asset] = Balance()
        return bal

    def position(self, exchange_symbol: str) -> Position:
        pos = self.positions.get(exchange_symbol)
        if pos is None:
            pos = self.positions[exchange_symbol] = Position()
        return pos

    def wallet_balance(self, asset: str) -> float:
        return self.balance(asset).total


class Accounts:
    """Accounts of one venue, keyed by API key; any new key gets the starting balances.

    One `Accounts` may be shared by several engines of the same venue (e.g. BTC/USDT and
    ETH/USDT share the USDT balance).
    """

    __slots__ = ("_accounts", "kind", "leverage", "starting_balances")

    def __init__(
        self,
        kind: InstrumentKind,
        starting_balances: Mapping[str, float],
        *,
        leverage: int = 10,
    ) -> None:
        if leverage < 1:
            raise ValueError("leverage must be at least 1")
        self.kind = kind
        self.starting_balances = dict(starting_balances)
        self.leverage = leverage
        self._accounts: dict[str, Account] = {}

    def get(self, api_key: str) -> Account:
        """The account of `api_key`, created with the starting balances on first use."""
        acct = self._accounts.get(api_key)
        if acct is None:
            acct = Account(api_key=api_key, kind=self.kind, leverage=self.leverage)
            for asset, amount in self.starting_balances.items():
                acct.balances[asset] = Balance(free=float(amount))
            self._accounts[api_key] = acct
        return acct

    def __contains__(self, api_key: object) -> bool:
        return api_key in self._accounts

    def __iter__(self) -> Iterator[Account]:
        return iter(self._accounts.values())

    def __len__(self) -> int:
        return len(self._accounts)


# -- filters at the wire edge ------------------------------------------------------------------


def _parse_steps(text: str | float, step: float) -> int | None:
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    steps = value / Decimal(str(step))
    if steps != steps.to_integral_value():
        return None
    return int(steps)


def parse_price_ticks(instrument: Instrument, text: str | float) -> int | SimError:
    """Exact price -> ticks, or PRICE_FILTER when it is not a positive multiple of the tick."""
    ticks = _parse_steps(text, instrument.tick_size)
    if ticks is None or ticks <= 0:
        return ERR_PRICE_FILTER
    return ticks


def parse_size_lots(instrument: Instrument, text: str | float) -> int | SimError:
    """Exact quantity -> lots, or LOT_SIZE when it is not a positive multiple of the lot."""
    lots = _parse_steps(text, instrument.lot_size)
    if lots is None or lots <= 0:
        return ERR_LOT_SIZE
    return lots


# -- book internals ----------------------------------------------------------------------------


class _Order:
    __slots__ = (
        "account",
        "api_key",
        "client_order_id",
        "cum_quote",
        "dead",
        "filled",
        "locked",
        "order_id",
        "order_type",
        "orig",
        "price",
        "reduce_only",
        "side",
        "status",
        "ts_ns",
        "update_ts_ns",
    )

    def __init__(
        self,
        *,
        order_id: int,
        api_key: str,
        account: Account | None,
        client_order_id: str,
        side: Side,
        order_type: OrderType,
        price: int,
        orig: int,
        ts_ns: int,
        reduce_only: bool,
    ) -> None:
        self.order_id = order_id
        self.api_key = api_key
        self.account = account
        self.client_order_id = client_order_id
        self.side = side
        self.order_type = order_type
        self.price = price
        self.orig = orig
        self.filled = 0
        self.cum_quote = 0.0
        self.locked = 0.0  # balance still locked by this order (quote or base)
        self.status = SimOrderStatus.NEW
        self.ts_ns = ts_ns
        self.update_ts_ns = ts_ns
        self.reduce_only = reduce_only
        self.dead = False

    @property
    def remaining(self) -> int:
        return self.orig - self.filled

    def view(self) -> OrderView:
        return OrderView(
            api_key=self.api_key,
            order_id=self.order_id,
            client_order_id=self.client_order_id,
            side=self.side,
            order_type=self.order_type,
            price_ticks=self.price,
            orig_lots=self.orig,
            executed_lots=self.filled,
            cum_quote=self.cum_quote,
            status=self.status,
            ts_ns=self.ts_ns,
            update_ts_ns=self.update_ts_ns,
            reduce_only=self.reduce_only,
        )


class _Level:
    __slots__ = ("dead", "orders", "price", "total")

    def __init__(self, price: int) -> None:
        self.price = price
        self.total = 0
        self.dead = 0
        self.orders: deque[_Order] = deque()

    def compact(self) -> None:
        self.orders = deque(o for o in self.orders if not o.dead)
        self.dead = 0


class _BookSide:
    """One side of the book; keys are `sign * price` so the best level is always keys[-1]."""

    __slots__ = ("keys", "levels", "sign")

    def __init__(self, side: Side) -> None:
        self.sign = int(side)
        self.levels: dict[int, _Level] = {}
        self.keys: list[int] = []

    def best(self) -> _Level | None:
        if not self.keys:
            return None
        return self.levels[self.keys[-1] * self.sign]

    def level_for_insert(self, price: int) -> _Level:
        level = self.levels.get(price)
        if level is None:
            level = self.levels[price] = _Level(price)
            bisect.insort(self.keys, price * self.sign)
        return level

    def remove_level(self, price: int) -> None:
        del self.levels[price]
        key = price * self.sign
        if self.keys[-1] == key:
            self.keys.pop()
        else:
            del self.keys[bisect.bisect_left(self.keys, key)]

    def top(self, n: int) -> BookLevels:
        sign = self.sign
        levels = self.levels
        keys = self.keys
        stop = max(len(keys) - n, 0) if n > 0 else 0
        return tuple(
            (keys[i] * sign, levels[keys[i] * sign].total)
            for i in range(len(keys) - 1, stop - 1, -1)
        )

    def crosses(self, key_limit: int) -> bool:
        """Whether the best level of this (resting) side is at or through a taker limit."""
        return bool(self.keys) and self.keys[-1] >= key_limit


# -- engine ------------------------------------------------------------------------------------


class MatchingEngine:
    """Price-time priority matching for one instrument.

    `accounts` holds the client accounts (created on first use with the starting balances);
    the background account (`BACKGROUND_API_KEY`) is never balance-checked and never reported.
    Self-trades are allowed. `done_orders_kept` bounds how many finished orders stay queryable.
    Background orders are addressed by exchange id only: they are not listed by `open_orders`,
    `cancel_all` or client id, and are not kept once done.
    """

    def __init__(
        self,
        instrument: Instrument,
        accounts: Accounts | None = None,
        *,
        first_update_id: int = 1,
        first_trade_id: int = 1,
        first_order_id: int = 1,
        done_orders_kept: int = 10_000,
        account_trades_kept: int = 10_000,
    ) -> None:
        self.instrument = instrument
        if accounts is None:
            accounts = Accounts(
                instrument.kind,
                {instrument.base: 0.0, instrument.quote: 0.0}
                if instrument.kind is InstrumentKind.SPOT
                else {instrument.quote: 0.0},
            )
        self.accounts = accounts
        self._update_id = first_update_id - 1
        self._next_trade_id = first_trade_id
        self._next_order_id = first_order_id
        self._bids = _BookSide(Side.BUY)
        self._asks = _BookSide(Side.SELL)
        self._open: dict[int, _Order] = {}
        self._open_by_client: dict[tuple[str, str], _Order] = {}
        self._done: OrderedDict[int, _Order] = OrderedDict()
        self._done_by_client: dict[tuple[str, str], _Order] = {}
        self._done_kept = done_orders_kept
        self._trades_kept = account_trades_kept
        self._account_trades: dict[str, deque[AccountTrade]] = {}
        self._open_per_account: dict[str, dict[int, _Order]] = {}
        self._is_spot = instrument.kind is InstrumentKind.SPOT
        # Quote per (tick x lot): notional of p ticks and q lots is p * q * _unit.
        self._unit = instrument.tick_size * instrument.lot_size * instrument.contract_size_base
        self._min_notional_units = instrument.min_notional_quote / self._unit
        self.halted = False

    # -- public queries --------------------------------------------------------------------

    @property
    def update_id(self) -> int:
        """Book update id: advanced by one by every call that changed the book."""
        return self._update_id

    @property
    def last_trade_id(self) -> int:
        """Id of the last public trade (first_trade_id - 1 before any)."""
        return self._next_trade_id - 1

    def best_bid(self) -> tuple[int, int] | None:
        """(price_ticks, size_lots) of the best bid, or None."""
        level = self._bids.best()
        return None if level is None else (level.price, level.total)

    def best_ask(self) -> tuple[int, int] | None:
        level = self._asks.best()
        return None if level is None else (level.price, level.total)

    def depth(self, n: int) -> tuple[BookLevels, BookLevels, int]:
        """Top `n` levels per side (bids descending, asks ascending) and the update id."""
        return self._bids.top(n), self._asks.top(n), self.update_id

    def level_size(self, side: Side, price_ticks: int) -> int:
        """Total resting size at a price on one side (0 when there is no level)."""
        book = self._bids if side is Side.BUY else self._asks
        level = book.levels.get(price_ticks)
        return 0 if level is None else level.total

    def iter_levels(self, side: Side) -> Iterator[tuple[int, int]]:
        """(price_ticks, size_lots) of one side's levels, best first; do not mutate meanwhile."""
        book = self._bids if side is Side.BUY else self._asks
        keys = book.keys
        levels = book.levels
        sign = book.sign
        for i in range(len(keys) - 1, -1, -1):
            price = keys[i] * sign
            yield price, levels[price].total

    def level_count(self, side: Side) -> int:
        return len((self._bids if side is Side.BUY else self._asks).keys)

    def is_open(self, order_id: int) -> bool:
        return order_id in self._open

    def open_orders(self, api_key: str) -> list[OrderView]:
        """The account's open orders, oldest first."""
        orders = self._open_per_account.get(api_key)
        if not orders:
            return []
        return [o.view() for o in orders.values()]

    def query(
        self, api_key: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> OrderView | SimError:
        """An open or recently finished order of the account, or -2013."""
        order = self._find(api_key, order_id, client_order_id, include_done=True)
        return ERR_ORDER_NOT_EXIST if order is None else order.view()

    def account_trades(
        self,
        api_key: str,
        *,
        from_id: int | None = None,
        order_id: int | None = None,
        limit: int = 500,
    ) -> list[AccountTrade]:
        """The account's fills, oldest first; of one order when `order_id` is given, from trade
        id `from_id` on when given (Binance's myTrades / userTrades: the order filter comes
        before the limit)."""
        trades: Iterable[AccountTrade] = self._account_trades.get(api_key, ())
        if order_id is not None:
            trades = [t for t in trades if t.order_id == order_id]
        if from_id is not None:
            trades = (t for t in trades if t.trade_id >= from_id)
            out: list[AccountTrade] = []
            for t in trades:
                out.append(t)
                if len(out) >= limit:
                    break
            return out
        listed = list(trades)
        return listed[-limit:] if limit > 0 else []

    # -- mutations -------------------------------------------------------------------------

    def submit(
        self,
        api_key: str,
        side: Side,
        order_type: OrderType,
        size_lots: int,
        ts_ns: int,
        *,
        price_ticks: int = 0,
        client_order_id: str | None = None,
        reduce_only: bool = False,
    ) -> MatchResult:
        """Place an order. LIMIT rests (GTC); LIMIT_MAKER is refused (-2010) if it would
        cross; IOC matches what it can at its limit and expires the rest; MARKET ignores
        `price_ticks` and expires what the book cannot fill."""
        result = MatchResult(update_id=self.update_id)
        is_market = order_type is OrderType.MARKET
        error = self._check_filters(side, order_type, price_ticks, size_lots)
        if error is None and self.halted:
            error = ERR_MARKET_CLOSED
        if error is not None:
            result.error = error
            return result
        background = api_key == BACKGROUND_API_KEY
        account = None if background else self.accounts.get(api_key)
        if client_order_id is not None and (api_key, client_order_id) in self._open_by_client:
            result.error = ERR_DUPLICATE_ORDER
            return result
        if order_type is OrderType.LIMIT_MAKER and self._would_cross(side, price_ticks):
            result.error = ERR_WOULD_MATCH
            return result
        if account is not None and not self._is_spot and reduce_only:
            pos = account.position(self.instrument.exchange_symbol).size_lots
            if pos == 0 or (pos > 0) == (side is Side.BUY):
                result.error = ERR_REDUCE_ONLY
                return result
            size_lots = min(size_lots, abs(pos))
        order_id = self._next_order_id
        order = _Order(
            order_id=order_id,
            api_key=api_key,
            account=account,
            client_order_id=client_order_id
            if client_order_id is not None
            else ("" if background else f"sim{order_id}"),
            side=side,
            order_type=order_type,
            price=0 if is_market else price_ticks,
            orig=size_lots,
            ts_ns=ts_ns,
            reduce_only=reduce_only,
        )
        if account is not None:
            lock_error = self._lock(account, order)
            if lock_error is not None:
                result.error = lock_error
                return result
        self._next_order_id += 1
        result.order_id = order_id
        touched: dict[tuple[Side, int], None] = {}
        if not background:
            self._report(result, order, ExecType.NEW, ts_ns)
        self._take(order, ts_ns, result, touched)
        if order.remaining > 0:
            if order_type is OrderType.LIMIT or order_type is OrderType.LIMIT_MAKER:
                self._rest(order, touched)
            else:
                order.status = SimOrderStatus.EXPIRED
                order.update_ts_ns = ts_ns
                self._finish(order)
                if not background:
                    self._report(result, order, ExecType.EXPIRED, ts_ns)
        else:
            self._finish(order)
        if account is not None:
            self._mark_changed(result, api_key)
        self._close(result, touched)
        if not background:
            result.order = order.view()
        return result

    def cancel(
        self,
        api_key: str,
        ts_ns: int,
        *,
        order_id: int | None = None,
        client_order_id: str | None = None,
    ) -> MatchResult:
        """Cancel an open order by exchange id or client id; -2011 when it is not open."""
        result = MatchResult(update_id=self.update_id)
        order = self._find(api_key, order_id, client_order_id, include_done=False)
        if order is None:
            result.error = ERR_UNKNOWN_ORDER
            return result
        touched: dict[tuple[Side, int], None] = {}
        self._cancel_order(order, ts_ns, result, touched)
        self._close(result, touched)
        if api_key != BACKGROUND_API_KEY:
            result.order = order.view()
        return result

    def cancel_all(self, api_key: str, ts_ns: int) -> MatchResult:
        """Cancel every open order of the account; `cancelled` lists them (-2011 if none)."""
        result = MatchResult(update_id=self.update_id)
        orders = self._open_per_account.get(api_key)
        if not orders:
            result.error = ERR_UNKNOWN_ORDER
            return result
        touched: dict[tuple[Side, int], None] = {}
        for order in list(orders.values()):
            self._cancel_order(order, ts_ns, result, touched)
            result.cancelled.append(order.view())
        self._close(result, touched)
        return result

    def cancel_replace(
        self,
        api_key: str,
        ts_ns: int,
        *,
        side: Side,
        order_type: OrderType,
        size_lots: int,
        price_ticks: int = 0,
        cancel_order_id: int | None = None,
        cancel_client_order_id: str | None = None,
        client_order_id: str | None = None,
        allow_failure: bool = False,
    ) -> CancelReplaceResult:
        """Binance cancelReplace: cancel, then place the new order.

        STOP_ON_FAILURE (default): if the cancel fails the new order is not attempted.
        ALLOW_FAILURE (`allow_failure=True`): the new order is placed even if the cancel failed.
        The new order is checked against the filters before anything is cancelled, as Binance
        does, so a filter failure leaves the old order in place.
        """
        filt = self._check_filters(side, order_type, price_ticks, size_lots)
        if filt is not None:
            return CancelReplaceResult(
                cancel=MatchResult(update_id=self.update_id, error=filt),
                new=MatchResult(update_id=self.update_id, error=filt),
            )
        cancelled = self.cancel(
            api_key, ts_ns, order_id=cancel_order_id, client_order_id=cancel_client_order_id
        )
        if not cancelled.ok and not allow_failure:
            return CancelReplaceResult(cancel=cancelled, new=None)
        new = self.submit(
            api_key,
            side,
            order_type,
            size_lots,
            ts_ns,
            price_ticks=price_ticks,
            client_order_id=client_order_id,
        )
        return CancelReplaceResult(cancel=cancelled, new=new)

    def modify(
        self,
        api_key: str,
        ts_ns: int,
        *,
        price_ticks: int,
        size_lots: int,
        order_id: int | None = None,
        client_order_id: str | None = None,
    ) -> MatchResult:
        """USD-M order.modify: new price and quantity for an open LIMIT order, same ids.

        The order loses its queue position (it moves to the back of its new level) and
        matches if it now crosses. A quantity at or below the filled size is refused with
        LOT_SIZE; the report's exec type is AMENDMENT.
        """
        result = MatchResult(update_id=self.update_id)
        order = self._find(api_key, order_id, client_order_id, include_done=False)
        if order is None:
            result.error = ERR_UNKNOWN_ORDER
            return result
        error = self._check_filters(order.side, order.order_type, price_ticks, size_lots)
        if error is None and size_lots <= order.filled:
            error = ERR_LOT_SIZE
        if error is not None:
            result.error = error
            return result
        if order.order_type is OrderType.LIMIT_MAKER and self._would_cross(order.side, price_ticks):
            result.error = ERR_WOULD_MATCH
            return result
        account = order.account
        touched: dict[tuple[Side, int], None] = {}
        self._unrest(order, touched)
        old_price, old_orig, old_locked = order.price, order.orig, order.locked
        if account is not None:
            self._unlock(account, order)
        order.price = price_ticks
        order.orig = size_lots
        if account is not None:
            lock_error = self._lock(account, order)
            if lock_error is not None:
                order.price, order.orig = old_price, old_orig
                self._relock(account, order, old_locked)
                self._rest(order, touched)
                # Restoring the order at the back of its queue is the closest Binance analog.
                result.error = lock_error
                self._close(result, touched)
                return result
        order.update_ts_ns = ts_ns
        if api_key != BACKGROUND_API_KEY:
            self._report(result, order, ExecType.AMENDMENT, ts_ns)
        self._take(order, ts_ns, result, touched)
        if order.remaining > 0:
            self._rest(order, touched)
        else:
            self._finish(order)
        if account is not None:
            self._mark_changed(result, api_key)
        self._close(result, touched)
        if api_key != BACKGROUND_API_KEY:
            result.order = order.view()
        return result

    # -- hooks (the replay engine overrides these) ------------------------------------------

    def _would_cross(self, side: Side, price_ticks: int) -> bool:
        """Whether a limit order at this price would take liquidity."""
        opposite = self._asks if side is Side.BUY else self._bids
        return opposite.crosses(price_ticks * opposite.sign)

    def _market_units(self, side: Side, lots: int) -> int:
        """Price x lots a market order of `lots` would pay sweeping the book."""
        return self._sweep_units(self._asks if side is Side.BUY else self._bids, -(1 << 62), lots)

    def _take(
        self,
        order: _Order,
        ts_ns: int,
        result: MatchResult,
        touched: dict[tuple[Side, int], None],
    ) -> None:
        """Match an incoming order against the resting book as far as its limit allows."""
        opposite = self._asks if order.side is Side.BUY else self._bids
        if order.order_type is OrderType.MARKET:
            limit_key = -(1 << 62)
        else:
            limit_key = order.price * opposite.sign
        if opposite.crosses(limit_key):
            self._match(
                order,
                opposite=opposite,
                limit_key=limit_key,
                ts_ns=ts_ns,
                result=result,
                touched=touched,
            )

    def _on_rest(self, order: _Order) -> None:
        """Called when an order starts resting."""

    def _on_unrest(self, order: _Order) -> None:
        """Called when a resting order leaves the book other than by a complete fill."""

    # -- internals -------------------------------------------------------------------------

    def _check_filters(
        self, side: Side, order_type: OrderType, price_ticks: int, size_lots: int
    ) -> SimError | None:
        del side
        if order_type is not OrderType.MARKET and price_ticks <= 0:
            return ERR_PRICE_FILTER
        if size_lots <= 0 or size_lots < self.instrument.min_size_lots:
            return ERR_LOT_SIZE
        if order_type is OrderType.MARKET:
            return None
        if price_ticks * size_lots < self._min_notional_units - 1e-9:
            return ERR_NOTIONAL
        return None

    def _find(
        self,
        api_key: str,
        order_id: int | None,
        client_order_id: str | None,
        *,
        include_done: bool,
    ) -> _Order | None:
        order: _Order | None = None
        if order_id is not None:
            order = self._open.get(order_id)
            if order is None and include_done:
                order = self._done.get(order_id)
        elif client_order_id is not None:
            key = (api_key, client_order_id)
            order = self._open_by_client.get(key)
            if order is None and include_done:
                order = self._done_by_client.get(key)
        if order is None or order.api_key != api_key:
            return None
        if client_order_id is not None and order.client_order_id != client_order_id:
            return None
        return order

    def _lock(self, account: Account, order: _Order) -> SimError | None:
        """Reserve what the order may spend; returns the refusal if the account cannot."""
        inst = self.instrument
        fee_rate = max(inst.maker_fee_rate, inst.taker_fee_rate, 0.0)
        if self._is_spot:
            if order.side is Side.SELL:
                bal = account.balance(inst.base)
                need = inst.lots_to_base(order.remaining)
            else:
                bal = account.balance(inst.quote)
                if order.order_type is OrderType.MARKET:
                    units = self._market_units(order.side, order.remaining)
                else:
                    units = order.price * order.remaining
                need = units * self._unit * (1.0 + fee_rate)
        else:
            bal = account.balance(inst.quote)
            if self._reduces_position(account, order):
                return None
            if order.order_type is OrderType.MARKET:
                units = self._market_units(order.side, order.remaining)
            else:
                units = order.price * order.remaining
            need = units * self._unit / account.leverage
            if bal.free - self._position_margin(account) + 1e-9 < need:
                return ERR_INSUFFICIENT_BALANCE
            bal.free -= need
            bal.locked += need
            order.locked = need
            return None
        if bal.free + 1e-9 < need:
            return ERR_INSUFFICIENT_BALANCE
        bal.free -= need
        bal.locked += need
        order.locked = need
        return None

    def _relock(self, account: Account, order: _Order, amount: float) -> None:
        inst = self.instrument
        asset = inst.base if (self._is_spot and order.side is Side.SELL) else inst.quote
        bal = account.balance(asset)
        bal.free -= amount
        bal.locked += amount
        order.locked = amount

    def _unlock(self, account: Account, order: _Order) -> None:
        if order.locked == 0.0:
            return
        inst = self.instrument
        asset = inst.base if (self._is_spot and order.side is Side.SELL) else inst.quote
        bal = account.balance(asset)
        bal.locked -= order.locked
        bal.free += order.locked
        if abs(bal.locked) < 1e-9:
            # Float residue from many partial releases must not show as a locked balance.
            bal.free += bal.locked
            bal.locked = 0.0
        order.locked = 0.0

    def _reduces_position(self, account: Account, order: _Order) -> bool:
        pos = account.position(self.instrument.exchange_symbol).size_lots
        return pos != 0 and (pos > 0) != (order.side is Side.BUY) and order.remaining <= abs(pos)

    def _position_margin(self, account: Account) -> float:
        pos = account.position(self.instrument.exchange_symbol)
        return (
            abs(pos.size_lots)
            * self.instrument.lot_size
            * self.instrument.contract_size_base
            * pos.entry_price
            / account.leverage
        )

    @staticmethod
    def _sweep_units(opposite: _BookSide, limit_key: int, lots: int) -> int:
        """Price x lots a taker of `lots` would pay walking the book up to its limit."""
        units = 0
        left = lots
        sign = opposite.sign
        for i in range(len(opposite.keys) - 1, -1, -1):
            key = opposite.keys[i]
            if key < limit_key:
                break
            level = opposite.levels[key * sign]
            take = min(left, level.total)
            units += take * level.price
            left -= take
            if left == 0:
                break
        return units

    def _rest(self, order: _Order, touched: dict[tuple[Side, int], None]) -> None:
        book = self._bids if order.side is Side.BUY else self._asks
        level = book.level_for_insert(order.price)
        level.orders.append(order)
        level.total += order.remaining
        order.dead = False
        self._open[order.order_id] = order
        if order.account is not None:
            # Client orders only: background orders are found by id, never listed.
            self._open_by_client[(order.api_key, order.client_order_id)] = order
            per_account = self._open_per_account.get(order.api_key)
            if per_account is None:
                per_account = self._open_per_account[order.api_key] = {}
            per_account[order.order_id] = order
        touched[(order.side, order.price)] = None
        self._on_rest(order)

    def _unindex(self, order: _Order) -> None:
        """Remove an order from the open-order indexes."""
        del self._open[order.order_id]
        if order.account is None:
            return
        del self._open_by_client[(order.api_key, order.client_order_id)]
        per_account = self._open_per_account[order.api_key]
        del per_account[order.order_id]
        if not per_account:
            del self._open_per_account[order.api_key]

    def _unrest(self, order: _Order, touched: dict[tuple[Side, int], None]) -> None:
        """Take an open order out of its level (lazily) and out of the open indexes."""
        self._on_unrest(order)
        book = self._bids if order.side is Side.BUY else self._asks
        level = book.levels[order.price]
        level.total -= order.remaining
        order.dead = True
        level.dead += 1
        if level.total == 0:
            book.remove_level(order.price)
        elif level.dead > 16 and level.dead * 2 > len(level.orders):
            level.compact()
        touched[(order.side, order.price)] = None
        self._unindex(order)

    def _cancel_order(
        self,
        order: _Order,
        ts_ns: int,
        result: MatchResult,
        touched: dict[tuple[Side, int], None],
    ) -> None:
        self._unrest(order, touched)
        order.status = SimOrderStatus.CANCELED
        order.update_ts_ns = ts_ns
        if order.account is not None:
            self._unlock(order.account, order)
            self._mark_changed(result, order.api_key)
            self._report(result, order, ExecType.CANCELED, ts_ns)
        self._finish(order)

    def _finish(self, order: _Order) -> None:
        """Remember a finished order for queries (bounded; background orders are not kept)."""
        if order.account is not None:
            self._unlock(order.account, order)
        if order.api_key == BACKGROUND_API_KEY:
            return
        self._done[order.order_id] = order
        self._done_by_client[(order.api_key, order.client_order_id)] = order
        while len(self._done) > self._done_kept:
            _, old = self._done.popitem(last=False)
            key = (old.api_key, old.client_order_id)
            if self._done_by_client.get(key) is old:
                del self._done_by_client[key]

    def _match(
        self,
        taker: _Order,
        *,
        opposite: _BookSide,
        limit_key: int,
        ts_ns: int,
        result: MatchResult,
        touched: dict[tuple[Side, int], None],
    ) -> None:
        keys = opposite.keys
        levels = opposite.levels
        sign = opposite.sign
        maker_side = taker.side.opposite
        while taker.remaining > 0 and keys and keys[-1] >= limit_key:
            price = keys[-1] * sign
            level = levels[price]
            orders = level.orders
            while taker.remaining > 0 and orders:
                maker = orders[0]
                if maker.dead:
                    orders.popleft()
                    level.dead -= 1
                    continue
                qty = min(taker.remaining, maker.remaining)
                level.total -= qty
                trade_id = self._next_trade_id
                self._next_trade_id += 1
                result.trades.append(
                    PublicTrade(
                        trade_id, price, qty, taker.side, ts_ns, maker.order_id, taker.order_id
                    )
                )
                self._fill(
                    maker,
                    price=price,
                    qty=qty,
                    trade_id=trade_id,
                    ts_ns=ts_ns,
                    liquidity=Liquidity.MAKER,
                    result=result,
                )
                self._fill(
                    taker,
                    price=price,
                    qty=qty,
                    trade_id=trade_id,
                    ts_ns=ts_ns,
                    liquidity=Liquidity.TAKER,
                    result=result,
                )
                if maker.remaining == 0:
                    orders.popleft()
                    maker.dead = True
                    self._drop_filled(maker)
            touched[(maker_side, price)] = None
            if level.total == 0:
                del levels[price]
                keys.pop()

    def _drop_filled(self, order: _Order) -> None:
        """Forget a completely filled resting order (already out of its level's queue)."""
        self._unindex(order)
        self._finish(order)

    def _fill(
        self,
        order: _Order,
        *,
        price: int,
        qty: int,
        trade_id: int,
        ts_ns: int,
        liquidity: Liquidity,
        result: MatchResult,
    ) -> None:
        order.filled += qty
        notional = price * qty * self._unit
        order.cum_quote += notional
        order.status = (
            SimOrderStatus.FILLED if order.filled == order.orig else SimOrderStatus.PARTIALLY_FILLED
        )
        order.update_ts_ns = ts_ns
        account = order.account
        if account is None:
            return
        inst = self.instrument
        rate = inst.maker_fee_rate if liquidity is Liquidity.MAKER else inst.taker_fee_rate
        fee = notional * rate
        realized = 0.0
        if self._is_spot:
            base = account.balance(inst.base)
            quote = account.balance(inst.quote)
            if order.side is Side.BUY:
                # Release the part of the lock that covered this fill, then pay for it.
                share = order.locked * qty / (order.remaining + qty)
                order.locked -= share
                quote.locked -= share
                quote.free += share - notional - fee
                base.free += inst.lots_to_base(qty)
            else:
                amount = inst.lots_to_base(qty)
                share = min(order.locked, amount)
                order.locked -= share
                base.locked -= share
                quote.free += notional - fee
        else:
            quote = account.balance(inst.quote)
            if order.locked:
                share = order.locked * qty / (order.remaining + qty)
                order.locked -= share
                quote.locked -= share
                quote.free += share
            realized = self._apply_position(account, order.side, price, qty)
            quote.free += realized - fee
        trade = AccountTrade(
            trade_id=trade_id,
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            side=order.side,
            price_ticks=price,
            size_lots=qty,
            quote_qty=notional,
            fee=fee,
            fee_asset=inst.quote,
            is_maker=liquidity is Liquidity.MAKER,
            ts_ns=ts_ns,
            realized_pnl=realized,
        )
        trades = self._account_trades.get(order.api_key)
        if trades is None:
            trades = self._account_trades[order.api_key] = deque(maxlen=self._trades_kept)
        trades.append(trade)
        self._mark_changed(result, order.api_key)
        result.reports.append(
            ExecutionReport(
                api_key=order.api_key,
                order_id=order.order_id,
                client_order_id=order.client_order_id,
                side=order.side,
                order_type=order.order_type,
                price_ticks=order.price,
                orig_lots=order.orig,
                status=order.status,
                exec_type=ExecType.TRADE,
                last_lots=qty,
                last_price_ticks=price,
                cum_lots=order.filled,
                cum_quote=order.cum_quote,
                fee=fee,
                fee_asset=inst.quote,
                liquidity=liquidity,
                trade_id=trade_id,
                ts_ns=ts_ns,
                order_ts_ns=order.ts_ns,
                realized_pnl=realized,
                reduce_only=order.reduce_only,
            )
        )

    def _apply_position(self, account: Account, side: Side, price: int, qty: int) -> float:
        """Update the perpetual position by a fill; returns the realized P&L in quote."""
        inst = self.instrument
        pos = account.position(inst.exchange_symbol)
        px = inst.ticks_to_price(price)
        signed = qty * int(side)
        base_per_lot = inst.lot_size * inst.contract_size_base
        realized = 0.0
        old = pos.size_lots
        if old == 0 or (old > 0) == (signed > 0):
            total = abs(old) + qty
            pos.entry_price = (pos.entry_price * abs(old) + px * qty) / total
            pos.size_lots = old + signed
        else:
            closing = min(qty, abs(old))
            direction = 1 if old > 0 else -1
            realized = closing * base_per_lot * (px - pos.entry_price) * direction
            pos.size_lots = old + signed
            if pos.size_lots == 0:
                pos.entry_price = 0.0
            elif (pos.size_lots > 0) != (old > 0):
                pos.entry_price = px
        pos.realized_pnl += realized
        return realized

    def _report(self, result: MatchResult, order: _Order, exec_type: ExecType, ts_ns: int) -> None:
        result.reports.append(
            ExecutionReport(
                api_key=order.api_key,
                order_id=order.order_id,
                client_order_id=order.client_order_id,
                side=order.side,
                order_type=order.order_type,
                price_ticks=order.price,
                orig_lots=order.orig,
                status=order.status,
                exec_type=exec_type,
                last_lots=0,
                last_price_ticks=0,
                cum_lots=order.filled,
                cum_quote=order.cum_quote,
                fee=0.0,
                fee_asset=self.instrument.quote,
                liquidity=None,
                trade_id=-1,
                ts_ns=ts_ns,
                order_ts_ns=order.ts_ns,
                reduce_only=order.reduce_only,
            )
        )

    @staticmethod
    def _mark_changed(result: MatchResult, api_key: str) -> None:
        if api_key != BACKGROUND_API_KEY and api_key not in result.accounts_changed:
            result.accounts_changed.append(api_key)

    def _close(self, result: MatchResult, touched: dict[tuple[Side, int], None]) -> None:
        if touched:
            bids = self._bids.levels
            asks = self._asks.levels
            changes = result.level_changes
            for side, price in touched:
                level = (bids if side is Side.BUY else asks).get(price)
                changes.append(LevelChange(side, price, 0 if level is None else level.total))
            self._update_id += 1
        result.update_id = self._update_id
