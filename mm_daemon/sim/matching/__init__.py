"""The simulator's matching engine for one instrument, with Binance-style accounts.

Every engine call returns a `MatchResult` carrying everything a wire layer needs to build its
frames (depth diffs, public trades, best bid/ask, execution reports and the accounts whose
balances changed) without reaching into the book.

- `results`: Binance errors, order statuses, the result objects.
- `accounts`: balances, positions, and how orders lock and settle funds (`Settlement`).
- `orders`: an order's state inside the engine, Binance's order filters.
- `book`: the displayed book hook (`DisplayedBook`, `Fills`) and the price-time book.
- `engine`: `MatchingEngine`.
"""

from mm_daemon.sim.matching.accounts import (
    BACKGROUND_API_KEY,
    Account,
    Accounts,
    Balance,
    Position,
    Settlement,
)
from mm_daemon.sim.matching.book import DisplayedBook, Fills, PriceTimeBook
from mm_daemon.sim.matching.engine import MatchingEngine
from mm_daemon.sim.matching.orders import Order, parse_price_ticks, parse_size_lots
from mm_daemon.sim.matching.results import (
    ERR_DUPLICATE_ORDER,
    ERR_INSUFFICIENT_BALANCE,
    ERR_LOT_SIZE,
    ERR_MARKET_CLOSED,
    ERR_NOTIONAL,
    ERR_ORDER_NOT_EXIST,
    ERR_PRICE_FILTER,
    ERR_REDUCE_ONLY,
    ERR_UNKNOWN_ORDER,
    ERR_WOULD_MATCH,
    AccountTrade,
    CancelReplaceResult,
    ExecType,
    ExecutionReport,
    LevelChange,
    MatchResult,
    OrderView,
    PublicTrade,
    SimError,
    SimOrderStatus,
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
    "DisplayedBook",
    "ExecType",
    "ExecutionReport",
    "Fills",
    "LevelChange",
    "MatchResult",
    "MatchingEngine",
    "Order",
    "OrderView",
    "Position",
    "PriceTimeBook",
    "PublicTrade",
    "Settlement",
    "SimError",
    "SimOrderStatus",
    "parse_price_ticks",
    "parse_size_lots",
]
