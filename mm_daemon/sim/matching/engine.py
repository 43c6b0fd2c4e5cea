"""The matching engine of one instrument: orders, their lifecycle and reports.

Pure and deterministic: no I/O, no clock reads; every call takes the time as `ts_ns`. Prices
are integer ticks and sizes integer lots (see `Instrument`).

The engine validates and owns orders (ids, client ids, statuses, open and finished indexes),
charges accounts through `Settlement`, and writes execution reports and account trades. The
liquidity itself (what the market sees and what takers match against) is a `DisplayedBook`:
the engine's own price-time book by default, the recorded book in a replay.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator

from mm_daemon.core.types import BookLevels, Instrument, InstrumentKind, Liquidity, OrderType, Side
from mm_daemon.sim.matching.accounts import BACKGROUND_API_KEY, Account, Accounts, Settlement
from mm_daemon.sim.matching.book import DisplayedBook, PriceTimeBook
from mm_daemon.sim.matching.orders import Order, check_filters
from mm_daemon.sim.matching.results import (
    ERR_DUPLICATE_ORDER,
    ERR_LOT_SIZE,
    ERR_MARKET_CLOSED,
    ERR_ORDER_NOT_EXIST,
    ERR_REDUCE_ONLY,
    ERR_UNKNOWN_ORDER,
    ERR_WOULD_MATCH,
    AccountTrade,
    CancelReplaceResult,
    ExecType,
    ExecutionReport,
    MatchResult,
    OrderView,
    SimError,
    SimOrderStatus,
)

__all__ = ["MatchingEngine"]


class MatchingEngine:
    """Matching for one instrument, Binance semantics.

    `accounts` holds the client accounts (created on first use with the starting balances);
    the background account (`BACKGROUND_API_KEY`) is never balance-checked and never reported.
    Self-trades are allowed. `done_orders_kept` bounds how many finished orders stay queryable.
    Background orders are addressed by exchange id only: they are not listed by `open_orders`,
    `cancel_all` or client id, and are not kept once done.

    `displayed` is the book the orders match against and rest in; by default a
    `PriceTimeBook` starting at `first_update_id` and `first_trade_id`. The engine is the
    book's `Fills`: `apply_fill` and `drop_filled` are for the displayed book to call.
    """

    def __init__(
        self,
        instrument: Instrument,
        accounts: Accounts | None = None,
        *,
        displayed: DisplayedBook | None = None,
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
        if displayed is None:
            displayed = PriceTimeBook(
                first_update_id=first_update_id, first_trade_id=first_trade_id
            )
        self.displayed = displayed
        self._settlement = Settlement(instrument)
        self._next_order_id = first_order_id
        self._open: dict[int, Order] = {}
        self._open_by_client: dict[tuple[str, str], Order] = {}
        self._done: OrderedDict[int, Order] = OrderedDict()
        self._done_by_client: dict[tuple[str, str], Order] = {}
        self._done_kept = done_orders_kept
        self._trades_kept = account_trades_kept
        self._account_trades: dict[str, deque[AccountTrade]] = {}
        self._open_per_account: dict[str, dict[int, Order]] = {}
        self._is_spot = instrument.kind is InstrumentKind.SPOT
        # Quote per (tick x lot): notional of p ticks and q lots is p * q * _unit.
        self._unit = self._settlement.unit
        self._min_notional_units = instrument.min_notional_quote / self._unit
        self.halted = False

    # -- public queries --------------------------------------------------------------------

    @property
    def update_id(self) -> int:
        """Book update id: advanced by one by every call that changed the book."""
        return self.displayed.update_id

    @property
    def last_trade_id(self) -> int:
        """Id of the last public trade (first_trade_id - 1 before any)."""
        return self.displayed.last_trade_id

    def best_bid(self) -> tuple[int, int] | None:
        """(price_ticks, size_lots) of the best bid, or None."""
        return self.displayed.best_bid()

    def best_ask(self) -> tuple[int, int] | None:
        return self.displayed.best_ask()

    def depth(self, n: int) -> tuple[BookLevels, BookLevels, int]:
        """Top `n` levels per side (bids descending, asks ascending) and the update id."""
        return self.displayed.depth(n)

    def level_size(self, side: Side, price_ticks: int) -> int:
        """Total resting size at a price on one side (0 when there is no level)."""
        return self.displayed.level_size(side, price_ticks)

    def iter_levels(self, side: Side) -> Iterator[tuple[int, int]]:
        """(price_ticks, size_lots) of one side's levels, best first; do not mutate meanwhile."""
        return self.displayed.iter_levels(side)

    def level_count(self, side: Side) -> int:
        return self.displayed.level_count(side)

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
        displayed = self.displayed
        result = MatchResult(update_id=displayed.update_id)
        is_market = order_type is OrderType.MARKET
        error = check_filters(
            self.instrument, self._min_notional_units, order_type, price_ticks, size_lots
        )
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
        if order_type is OrderType.LIMIT_MAKER and displayed.would_cross(side, price_ticks):
            result.error = ERR_WOULD_MATCH
            return result
        if account is not None and not self._is_spot and reduce_only:
            pos = account.position(self.instrument.exchange_symbol).size_lots
            if pos == 0 or (pos > 0) == (side is Side.BUY):
                result.error = ERR_REDUCE_ONLY
                return result
            size_lots = min(size_lots, abs(pos))
        order_id = self._next_order_id
        order = Order(
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
        if not background:
            self._report(result, order, ExecType.NEW, ts_ns)
        displayed.take(order, ts_ns, result, self)
        if order.remaining > 0:
            if order_type is OrderType.LIMIT or order_type is OrderType.LIMIT_MAKER:
                self._rest(order)
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
        displayed.close(result)
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
        result = MatchResult(update_id=self.displayed.update_id)
        order = self._find(api_key, order_id, client_order_id, include_done=False)
        if order is None:
            result.error = ERR_UNKNOWN_ORDER
            return result
        self._cancel_order(order, ts_ns, result)
        self.displayed.close(result)
        if api_key != BACKGROUND_API_KEY:
            result.order = order.view()
        return result

    def cancel_all(self, api_key: str, ts_ns: int) -> MatchResult:
        """Cancel every open order of the account; `cancelled` lists them (-2011 if none)."""
        result = MatchResult(update_id=self.displayed.update_id)
        orders = self._open_per_account.get(api_key)
        if not orders:
            result.error = ERR_UNKNOWN_ORDER
            return result
        for order in list(orders.values()):
            self._cancel_order(order, ts_ns, result)
            result.cancelled.append(order.view())
        self.displayed.close(result)
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
        filt = check_filters(
            self.instrument, self._min_notional_units, order_type, price_ticks, size_lots
        )
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
        displayed = self.displayed
        result = MatchResult(update_id=displayed.update_id)
        order = self._find(api_key, order_id, client_order_id, include_done=False)
        if order is None:
            result.error = ERR_UNKNOWN_ORDER
            return result
        error = check_filters(
            self.instrument, self._min_notional_units, order.order_type, price_ticks, size_lots
        )
        if error is None and size_lots <= order.filled:
            error = ERR_LOT_SIZE
        if error is not None:
            result.error = error
            return result
        if order.order_type is OrderType.LIMIT_MAKER and displayed.would_cross(
            order.side, price_ticks
        ):
            result.error = ERR_WOULD_MATCH
            return result
        account = order.account
        self._unrest(order)
        old_price, old_orig, old_locked = order.price, order.orig, order.locked
        settlement = self._settlement
        if account is not None:
            settlement.unlock(account, order)
        order.price = price_ticks
        order.orig = size_lots
        if account is not None:
            lock_error = self._lock(account, order)
            if lock_error is not None:
                order.price, order.orig = old_price, old_orig
                settlement.relock(account, order, old_locked)
                self._rest(order)
                # Restoring the order at the back of its queue is the closest Binance analog.
                result.error = lock_error
                displayed.close(result)
                return result
        order.update_ts_ns = ts_ns
        if api_key != BACKGROUND_API_KEY:
            self._report(result, order, ExecType.AMENDMENT, ts_ns)
        displayed.take(order, ts_ns, result, self)
        if order.remaining > 0:
            self._rest(order)
        else:
            self._finish(order)
        if account is not None:
            self._mark_changed(result, api_key)
        displayed.close(result)
        if api_key != BACKGROUND_API_KEY:
            result.order = order.view()
        return result

    # -- the displayed book's Fills --------------------------------------------------------

    def apply_fill(  # noqa: PLR0917  positional: called per fill on the matching path
        self,
        order: Order,
        price: int,
        qty: int,
        trade_id: int,
        ts_ns: int,
        liquidity: Liquidity,
        result: MatchResult,
    ) -> None:
        """Fill `qty` of `order` at `price` (for the displayed book to call; see `Fills`)."""
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
        realized = self._settlement.settle_fill(
            account, order, price=price, qty=qty, notional=notional, fee=fee
        )
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
        self._report(
            result,
            order,
            ExecType.TRADE,
            ts_ns,
            last_lots=qty,
            last_price_ticks=price,
            fee=fee,
            liquidity=liquidity,
            trade_id=trade_id,
            realized_pnl=realized,
        )

    def drop_filled(self, order: Order) -> None:
        """Forget a completely filled resting order (for the displayed book; see `Fills`)."""
        self._unindex(order)
        self._finish(order)

    # -- internals -------------------------------------------------------------------------

    def _find(
        self,
        api_key: str,
        order_id: int | None,
        client_order_id: str | None,
        *,
        include_done: bool,
    ) -> Order | None:
        order: Order | None = None
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

    def _lock(self, account: Account, order: Order) -> SimError | None:
        if order.order_type is OrderType.MARKET:
            units = self.displayed.market_units(order.side, order.remaining)
        else:
            units = order.price * order.remaining
        return self._settlement.lock(account, order, units)

    def _rest(self, order: Order) -> None:
        self._open[order.order_id] = order
        if order.account is not None:
            # Client orders only: background orders are found by id, never listed.
            self._open_by_client[(order.api_key, order.client_order_id)] = order
            per_account = self._open_per_account.get(order.api_key)
            if per_account is None:
                per_account = self._open_per_account[order.api_key] = {}
            per_account[order.order_id] = order
        self.displayed.rest(order)

    def _unindex(self, order: Order) -> None:
        """Remove an order from the open-order indexes."""
        del self._open[order.order_id]
        if order.account is None:
            return
        del self._open_by_client[(order.api_key, order.client_order_id)]
        per_account = self._open_per_account[order.api_key]
        del per_account[order.order_id]
        if not per_account:
            del self._open_per_account[order.api_key]

    def _unrest(self, order: Order) -> None:
        """Take an open order out of the displayed book and out of the open indexes."""
        self.displayed.unrest(order)
        self._unindex(order)

    def _cancel_order(self, order: Order, ts_ns: int, result: MatchResult) -> None:
        self._unrest(order)
        order.status = SimOrderStatus.CANCELED
        order.update_ts_ns = ts_ns
        if order.account is not None:
            self._settlement.unlock(order.account, order)
            self._mark_changed(result, order.api_key)
            self._report(result, order, ExecType.CANCELED, ts_ns)
        self._finish(order)

    def _finish(self, order: Order) -> None:
        """Remember a finished order for queries (bounded; background orders are not kept)."""
        if order.account is not None:
            self._settlement.unlock(order.account, order)
        if order.api_key == BACKGROUND_API_KEY:
            return
        self._done[order.order_id] = order
        self._done_by_client[(order.api_key, order.client_order_id)] = order
        while len(self._done) > self._done_kept:
            _, old = self._done.popitem(last=False)
            key = (old.api_key, old.client_order_id)
            if self._done_by_client.get(key) is old:
                del self._done_by_client[key]

    def _report(
        self,
        result: MatchResult,
        order: Order,
        exec_type: ExecType,
        ts_ns: int,
        *,
        last_lots: int = 0,
        last_price_ticks: int = 0,
        fee: float = 0.0,
        liquidity: Liquidity | None = None,
        trade_id: int = -1,
        realized_pnl: float = 0.0,
    ) -> None:
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
                last_lots=last_lots,
                last_price_ticks=last_price_ticks,
                cum_lots=order.filled,
                cum_quote=order.cum_quote,
                fee=fee,
                fee_asset=self.instrument.quote,
                liquidity=liquidity,
                trade_id=trade_id,
                ts_ns=ts_ns,
                order_ts_ns=order.ts_ns,
                realized_pnl=realized_pnl,
                reduce_only=order.reduce_only,
            )
        )

    @staticmethod
    def _mark_changed(result: MatchResult, api_key: str) -> None:
        if api_key != BACKGROUND_API_KEY and api_key not in result.accounts_changed:
            result.accounts_changed.append(api_key)
