"""One simulator venue: its instruments and matching engines, accounts, streams, user-data
subscribers and faults, tied to a market source and served over Binance's wire protocol.

A venue lists several symbols (BTCUSDT, ETHUSDT, ...), one engine each, sharing the venue's
accounts; every call names its symbol, and an unknown one is answered as Binance does (-1121).
The venue counts its websockets by kind (market data, WS-API, user data) and its user-data
streams, for `GET /admin/connections`.

The wire layers (`sim.binance.spot`, `sim.binance.usdm`) call the order methods here; every
engine result goes through `publish`, which feeds the depth/trade/ticker streams and the
account's user-data subscribers, so REST, WS-API and background flow all look the same on the
wire. Time is read here (the engine and market are pure and take it as an argument).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from mm_daemon.binance.markets import Dialect
from mm_daemon.binance.numbers import NumberFormat
from mm_daemon.core.types import Instrument, InstrumentKind, OrderType, Side
from mm_daemon.sim.binance.common import BinanceError
from mm_daemon.sim.binance.streams import Connection, MarketStreams, SymbolFeed
from mm_daemon.sim.faults import FaultSpec, FaultState
from mm_daemon.sim.funding import VenueFunding
from mm_daemon.sim.matching import (
    Accounts,
    ExecutionReport,
    MatchingEngine,
    MatchResult,
    OrderView,
    SimError,
)

if TYPE_CHECKING:
    from mm_daemon.sim.binance.filters import VenueFilters
    from mm_daemon.sim.binance.limits import RateLimiter

__all__ = ["ConnectionKind", "SimVenue", "UserSink", "VenueSymbol"]

UserSink = Callable[["VenueSymbol", list[ExecutionReport], list[str], int], None]
"""Receives (symbol, execution reports of one account, accounts changed, now_ns)."""

ConnectionKind = Literal["market_data", "ws_api", "user_data"]
"""A websocket's role: market streams, WS-API requests, or a listenKey user-data stream."""
CONNECTION_KINDS: tuple[ConnectionKind, ...] = ("market_data", "ws_api", "user_data")


@dataclass(slots=True)
class VenueSymbol:
    instrument: Instrument
    engine: MatchingEngine
    fmt: NumberFormat
    feed: SymbolFeed
    faults: FaultState  # the faults that touch this symbol only (its streams, its orders)


@dataclass(slots=True)
class _UserStream:
    api_key: str
    sink: UserSink
    send_event: Callable[[dict[str, Any], int], None] | None = None  # an event as it is


@dataclass(slots=True)
class SimVenue:
    """A simulator venue. Build with `SimVenue.create`, then serve with the wire app."""

    name: str
    dialect: Dialect
    accounts: Accounts
    symbols: dict[str, VenueSymbol] = field(default_factory=dict)
    faults: FaultState = field(default_factory=FaultState)
    streams: MarketStreams = field(init=False)
    user_streams: dict[int, _UserStream] = field(default_factory=dict)
    listen_keys: dict[str, str] = field(default_factory=dict)
    book_observers: list[Callable[[VenueSymbol, MatchResult], None]] = field(default_factory=list)
    funding: VenueFunding | None = None  # USD-M: mark prices, funding settlements, income
    """Called with every engine result that changed a book, in update-id order."""
    _next_user_id: int = 0
    limiter: RateLimiter | None = None  # Binance's rate limits (None: none enforced)
    filters: VenueFilters | None = None  # the published symbol filters (None: not enforced)
    time_offset_ms: int = 0  # the venue's clock minus the host's
    started_ns: int = field(default_factory=time.time_ns)
    _connection_kinds: dict[Connection, ConnectionKind] = field(default_factory=dict)
    _connections_opened: Counter[ConnectionKind] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.streams = MarketStreams(self.dialect)

    @classmethod
    def create(
        cls,
        name: str,
        dialect: Dialect,
        engines: Iterable[MatchingEngine],
        accounts: Accounts,
    ) -> SimVenue:
        venue = cls(name=name, dialect=dialect, accounts=accounts)
        for engine in engines:
            venue.add_engine(engine)
        return venue

    def add_engine(self, engine: MatchingEngine) -> None:
        inst = engine.instrument
        if self.dialect == "spot":
            fmt = NumberFormat.for_instrument(inst, 8, 8)
        else:
            fmt = NumberFormat.for_instrument(inst, max(2, inst.price_decimals), inst.size_decimals)

        def book(
            engine: MatchingEngine = engine,
        ) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
            bid = engine.best_bid()
            ask = engine.best_ask()
            return engine.update_id, [bid] if bid else [], [ask] if ask else []

        faults = FaultState()
        feed = SymbolFeed(self.dialect, inst, fmt, book, faults)
        self.streams.add_feed(feed)
        self.symbols[inst.exchange_symbol] = VenueSymbol(inst, engine, fmt, feed, faults)

    @property
    def is_spot(self) -> bool:
        return self.dialect == "spot"

    # -- lookup ----------------------------------------------------------------------------
    def symbol(self, exchange_symbol: str | None) -> VenueSymbol:
        if not exchange_symbol:
            raise BinanceError(
                -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        sym = self.symbols.get(exchange_symbol.upper())
        if sym is None:
            raise BinanceError(-1121, "Invalid symbol.")
        return sym

    # -- publishing ------------------------------------------------------------------------
    def publish(self, sym: VenueSymbol, result: MatchResult, now_ns: int) -> None:
        """Feed one engine result to the streams and the user-data subscribers."""
        feed = sym.feed
        if result.level_changes:
            feed.on_levels(
                [
                    (-c.price_ticks if c.side is Side.BUY else c.price_ticks, c.size_lots)
                    for c in result.level_changes
                ],
                result.update_id,
            )
            for observer in self.book_observers:
                observer(sym, result)
        for trade in result.trades:
            feed.on_trade(
                trade.trade_id, trade.price_ticks, trade.size_lots, trade.buyer_is_maker, now_ns
            )
        if result.reports or result.accounts_changed:
            self._publish_user(sym, result.reports, result.accounts_changed, now_ns)
        if self.limiter is not None and result.reports:
            self.limiter.on_reports(result.reports, now_ns // 1_000_000 + self.time_offset_ms)
        if self.filters is not None and result.trades:
            self.filters.on_trades(sym, result.trades, now_ns)

    def _publish_user(
        self, sym: VenueSymbol, reports: list[ExecutionReport], changed: list[str], now_ns: int
    ) -> None:
        if not self.user_streams:
            return
        by_key: dict[str, list[ExecutionReport]] = {}
        for report in reports:
            by_key.setdefault(report.api_key, []).append(report)
        for stream in list(self.user_streams.values()):
            mine = by_key.get(stream.api_key, [])
            if mine or stream.api_key in changed:
                stream.sink(
                    sym, mine, [stream.api_key] if stream.api_key in changed else [], now_ns
                )

    def flush(self, now_ns: int) -> None:
        self.streams.flush(now_ns)

    def add_user_stream(
        self,
        api_key: str,
        sink: UserSink,
        send_event: Callable[[dict[str, Any], int], None] | None = None,
    ) -> int:
        """Subscribe a user-data stream of `api_key`: `sink` gets its execution reports and
        account changes, `send_event` (if given) the account events that no order caused."""
        self._next_user_id += 1
        self.user_streams[self._next_user_id] = _UserStream(api_key, sink, send_event)
        return self._next_user_id

    def send_user_event(self, api_key: str, event: dict[str, Any], now_ns: int) -> None:
        """Push an account event (a funding settlement) to `api_key`'s user-data streams."""
        for stream in list(self.user_streams.values()):
            if stream.api_key == api_key and stream.send_event is not None:
                stream.send_event(event, now_ns)

    def remove_user_stream(self, stream_id: int) -> None:
        self.user_streams.pop(stream_id, None)

    def new_listen_key(self, api_key: str) -> str:
        for key, owner in self.listen_keys.items():
            if owner == api_key:
                return key
        key = secrets.token_urlsafe(48)[:64]
        self.listen_keys[key] = api_key
        return key

    # -- orders ----------------------------------------------------------------------------
    def now_ms(self) -> int:
        """The venue's clock in ms (what it stamps and checks `timestamp` against)."""
        return time.time_ns() // 1_000_000 + self.time_offset_ms

    def halted(self, sym: VenueSymbol, now_ns: int) -> bool:
        """Whether trading in `sym` is halted (a halt of the venue or of the symbol)."""
        return self.faults.halted(now_ns) or sym.faults.halted(now_ns)

    def _check_trading(self, sym: VenueSymbol, now_ns: int, api_key: str) -> None:
        del api_key
        if self.halted(sym, now_ns):
            raise BinanceError(-1013, "Market is closed.")
        if sym.faults.take_reject() or self.faults.take_reject():
            raise BinanceError(-2010, "NEW_ORDER_REJECTED: order rejected by the venue.")

    def raise_error(self, error: SimError) -> None:
        code, msg = error.code, error.msg
        if not self.is_spot and msg == "Order would immediately match and take.":
            code = -5022
            msg = (
                "Due to the order could not be executed as maker, the Post Only order will be "
                "rejected."
            )
        elif not self.is_spot and msg == "Account has insufficient balance for requested action.":
            code, msg = -2019, "Margin is insufficient."
        raise BinanceError(code, msg)

    def _answer(self, sym: VenueSymbol, result: MatchResult, now_ns: int) -> MatchResult:
        """Raise the engine's refusal the Binance way, or publish what the call did."""
        if result.error is not None:
            self.raise_error(result.error)
        self.publish(sym, result, now_ns)
        self.flush_realtime(sym, now_ns)
        return result

    def submit(
        self,
        sym: VenueSymbol,
        api_key: str,
        *,
        side: Side,
        order_type: OrderType,
        size_lots: int,
        price_ticks: int,
        client_order_id: str | None,
        reduce_only: bool,
    ) -> MatchResult:
        now = time.time_ns()
        self._check_trading(sym, now, api_key)
        result = sym.engine.submit(
            api_key,
            side,
            order_type,
            size_lots,
            now,
            price_ticks=price_ticks,
            client_order_id=client_order_id,
            reduce_only=reduce_only,
        )
        return self._answer(sym, result, now)

    def cancel(
        self,
        sym: VenueSymbol,
        api_key: str,
        order_id: int | None,
        client_order_id: str | None,
    ) -> MatchResult:
        now = time.time_ns()
        result = sym.engine.cancel(api_key, now, order_id=order_id, client_order_id=client_order_id)
        return self._answer(sym, result, now)

    def cancel_all(self, sym: VenueSymbol, api_key: str) -> list[OrderView]:
        now = time.time_ns()
        result = sym.engine.cancel_all(api_key, now)
        if result.error is not None:
            return []
        self.publish(sym, result, now)
        self.flush_realtime(sym, now)
        return result.cancelled

    def cancel_replace(
        self,
        sym: VenueSymbol,
        api_key: str,
        *,
        side: Side,
        order_type: OrderType,
        size_lots: int,
        price_ticks: int,
        cancel_order_id: int | None,
        cancel_client_order_id: str | None,
        client_order_id: str | None,
        allow_failure: bool,
    ) -> tuple[MatchResult, MatchResult | None]:
        now = time.time_ns()
        self._check_trading(sym, now, api_key)
        both = sym.engine.cancel_replace(
            api_key,
            now,
            side=side,
            order_type=order_type,
            size_lots=size_lots,
            price_ticks=price_ticks,
            cancel_order_id=cancel_order_id,
            cancel_client_order_id=cancel_client_order_id,
            client_order_id=client_order_id,
            allow_failure=allow_failure,
        )
        for part in (both.cancel, both.new):
            if part is not None and part.error is None:
                self.publish(sym, part, now)
        self.flush_realtime(sym, now)
        return both.cancel, both.new

    def modify(
        self,
        sym: VenueSymbol,
        api_key: str,
        *,
        price_ticks: int,
        size_lots: int,
        order_id: int | None,
        client_order_id: str | None,
    ) -> MatchResult:
        now = time.time_ns()
        self._check_trading(sym, now, api_key)
        result = sym.engine.modify(
            api_key,
            now,
            price_ticks=price_ticks,
            size_lots=size_lots,
            order_id=order_id,
            client_order_id=client_order_id,
        )
        return self._answer(sym, result, now)

    def flush_realtime(self, sym: VenueSymbol, now_ns: int) -> None:
        sym.feed.flush(now_ns)

    # -- driving ---------------------------------------------------------------------------
    def publish_source(self, exchange_symbol: str, result: MatchResult, now_ns: int) -> None:
        """Publish a market-source engine call of one symbol's engine (rate-0 depth streams
        get one message per call)."""
        sym = self.symbols[exchange_symbol]
        self.publish(sym, result, now_ns)
        sym.feed.flush_depth(now_ns)

    # -- faults ----------------------------------------------------------------------------
    async def apply_fault(self, spec: FaultSpec) -> None:
        """Apply a fault to the venue, or to the one symbol it names (see `sim.faults`);
        raises BinanceError -1121 for a symbol the venue does not list."""
        now = time.time_ns()
        if spec.symbol is not None:
            targets = [self.symbol(spec.symbol)]
        elif spec.kind in ("gap", "stall", "halt", "resume"):
            targets = list(self.symbols.values())
        else:
            targets = []
            self.faults.apply(spec, now)
        for sym in targets:
            sym.faults.apply(spec, now)
        for sym in self.symbols.values():
            sym.engine.halted = self.halted(sym, now)
        if spec.kind == "disconnect":
            await self.disconnect_all()

    async def disconnect_all(self, *, abort: bool = True) -> None:
        """Drop every websocket: abruptly (a network failure) or with a close handshake."""
        conns = list(self.streams.connections)
        for conn in conns:
            self.unregister(conn)
        for conn in conns:
            if abort:
                conn.abort()
            else:
                with contextlib.suppress(Exception):
                    await conn.close()

    # -- connections -----------------------------------------------------------------------
    def register(self, conn: Connection, kind: ConnectionKind) -> None:
        self.streams.connections.add(conn)
        self._connection_kinds[conn] = kind
        self._connections_opened[kind] += 1

    def unregister(self, conn: Connection) -> None:
        """Forget a websocket (closed, or dropped by a fault): its subscriptions go with it."""
        self.streams.drop(conn)
        self._connection_kinds.pop(conn, None)

    def connections(self) -> dict[str, Any]:
        """Websockets open now and opened since start, by kind; the streams each open
        market-data connection carries; user-data streams (listenKey websockets on USD-M,
        WS-API subscriptions on spot) open and opened."""
        out: dict[str, Any] = {"venue": self.name}
        for kind in CONNECTION_KINDS:
            conns = [c for c, k in self._connection_kinds.items() if k == kind]
            entry: dict[str, Any] = {"open": len(conns), "opened": self._connections_opened[kind]}
            if kind == "market_data":
                entry["streams"] = sorted(sorted(c.streams) for c in conns)
            out[kind] = entry
        out["user_data_streams"] = {"open": len(self.user_streams), "opened": self._next_user_id}
        return out

    # -- admin view ------------------------------------------------------------------------
    def state(self, depth: int = 1000) -> dict[str, Any]:
        now = time.time_ns()
        books: dict[str, Any] = {}
        for name, sym in self.symbols.items():
            bids, asks, update_id = sym.engine.depth(depth)
            books[name] = {
                "update_id": update_id,
                "bids": [[sym.fmt.px(p), sym.fmt.qty(s)] for p, s in bids],
                "asks": [[sym.fmt.px(p), sym.fmt.qty(s)] for p, s in asks],
                "bids_ticks": [list(level) for level in bids],
                "asks_ticks": [list(level) for level in asks],
                "last_trade_id": sym.engine.last_trade_id,
            }
        orders: dict[str, list[dict[str, Any]]] = {}
        for account in self.accounts:
            mine: list[dict[str, Any]] = []
            for name, sym in self.symbols.items():
                mine.extend(
                    {
                        "symbol": name,
                        "orderId": view.order_id,
                        "clientOrderId": view.client_order_id,
                        "side": "BUY" if view.side is Side.BUY else "SELL",
                        "price": sym.fmt.px(view.price_ticks),
                        "origQty": sym.fmt.qty(view.orig_lots),
                        "executedQty": sym.fmt.qty(view.executed_lots),
                    }
                    for view in sym.engine.open_orders(account.api_key)
                )
            orders[account.api_key] = mine
        balances = {
            acct.api_key: {a: [b.free, b.locked] for a, b in acct.balances.items()}
            for acct in self.accounts
        }
        positions = {
            acct.api_key: {s: [p.size_lots, p.entry_price] for s, p in acct.positions.items()}
            for acct in self.accounts
            if acct.kind is InstrumentKind.PERPETUAL
        }
        return {
            "venue": self.name,
            "dialect": self.dialect,
            "books": books,
            "open_orders": orders,
            "balances": balances,
            "positions": positions,
            "faults": {
                **self.faults.snapshot(now),
                "symbols": {name: sym.faults.snapshot(now) for name, sym in self.symbols.items()},
            },
            "connections": len(self.streams.connections),
        }
