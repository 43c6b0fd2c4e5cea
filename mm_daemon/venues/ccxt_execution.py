"""Live order entry through ccxt.pro (`endpoint: sim`, a standalone simulator URL, `testnet`).

Order entry goes over the exchange's WS-API where ccxt supports it, one message per action:
`create_order_ws` (place), `edit_order_ws` (spot `order.cancelReplace`: cancel and place in one
message), `cancel_order_ws`, `cancel_all_orders_ws` (spot). REST (`create_order`, `cancel_order`,
`cancel_all_orders`) is the fallback when a WS-API call is not supported for the market or its
socket fails. USD-M has no cancel-replace (its `order.modify` keeps the old client id), so a
replace there is a cancel and a place sent together.

Order updates and fills come from `watch_orders` and `watch_my_trades`, each on its own task that
is always waiting (ccxt returns an event that arrives while no call is pending only with the next
one) and retries with backoff when the socket drops. A dropped stream is reported as an
`ExecutionStatus` (down), and again (up) as it is subscribed again and once more when it first
delivers, since ccxt does not say when a subscription is live: the engine reconciles each time
(`order_status`, `trades_since`), and what filled while the stream was down is delivered once.
A venue refusal (post-only would cross, balance, filters) is reported as a REJECTED OrderUpdate
carrying the venue's message; only transport failures raise.

Mainnet is refused unless the config says `allow_mainnet: true` and the environment has
`MMD_CONFIRM_MAINNET=yes` (`check_mainnet_allowed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from mm_daemon.aio import start_eagerly
from mm_daemon.core.types import (
    AccountPosition,
    ExecutionStatus,
    Fill,
    FundingFee,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
)
from mm_daemon.retry import BackoffPolicy

if TYPE_CHECKING:
    from mm_daemon.config import VenueConfig
    from mm_daemon.venues.base import ExecutionSink

__all__ = [
    "CONFIRM_MAINNET_ENV",
    "CcxtExecution",
    "MainnetRefusedError",
    "check_mainnet_allowed",
    "fill_from_ccxt",
    "order_update_from_ccxt",
]

log = structlog.get_logger(__name__)

_TRADES_PAGE = 1000  # Binance's most trades per myTrades/userTrades request
_INCOME_PAGE = 1000  # Binance's most records per /fapi/v1/income request


CONFIRM_MAINNET_ENV = "MMD_CONFIRM_MAINNET"
_MS_TO_NS = 1_000_000

_STATUS = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "cancelled": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
    "expired": OrderStatus.EXPIRED,
}


class MainnetRefusedError(Exception):
    """Live orders on mainnet without both confirmations."""


def check_mainnet_allowed(
    venue: VenueConfig, *, allow_mainnet: bool, environ: Mapping[str, str] | None = None
) -> None:
    """Raise MainnetRefusedError (one clear line) unless mainnet orders are confirmed twice."""
    if not venue.is_mainnet:
        return
    env = os.environ if environ is None else environ
    if not allow_mainnet:
        raise MainnetRefusedError(
            f"venues: {venue.name} points at mainnet with live orders; set allow_mainnet: true "
            f"in the config and {CONFIRM_MAINNET_ENV}=yes in the environment to trade real money"
        )
    if env.get(CONFIRM_MAINNET_ENV, "").strip().lower() != "yes":
        raise MainnetRefusedError(
            f"venues: {venue.name} points at mainnet and allow_mainnet is true, but "
            f"{CONFIRM_MAINNET_ENV}=yes is not set in the environment; set it to trade real money"
        )


def _f(value: Any) -> float:
    try:
        return float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


def _ns(ms: Any, default_ns: int) -> int:
    try:
        return int(ms) * _MS_TO_NS if ms is not None else default_ns
    except (TypeError, ValueError):
        return default_ns


def _side(value: Any) -> Side:
    return Side.BUY if str(value).lower() == "buy" else Side.SELL


def order_update_from_ccxt(
    order: Mapping[str, Any], instrument: Instrument, venue: str, now_ns: int
) -> OrderUpdate | None:
    """An OrderUpdate from a ccxt order structure; None when it names no client order id."""
    client_id = order.get("clientOrderId")
    if not client_id:
        return None
    filled = instrument.size_to_lots(_f(order.get("filled")))
    status = _STATUS.get(str(order.get("status")), OrderStatus.OPEN)
    if status is OrderStatus.OPEN and filled > 0:
        status = OrderStatus.PARTIALLY_FILLED
    info = order.get("info") or {}
    reason = ""
    if status is OrderStatus.REJECTED and isinstance(info, Mapping):
        reason = str(info.get("r") or info.get("rejectReason") or "")
    ts = order.get("lastUpdateTimestamp") or order.get("timestamp")
    return OrderUpdate(
        venue,
        instrument.symbol,
        _ns(ts, now_ns),
        now_ns,
        str(client_id),
        str(order.get("id") or ""),
        status,
        _side(order.get("side")),
        instrument.price_to_ticks(_f(order.get("price"))),
        instrument.size_to_lots(_f(order.get("amount"))),
        filled,
        reason,
    )


def fill_from_ccxt(
    trade: Mapping[str, Any],
    instrument: Instrument,
    venue: str,
    now_ns: int,
    client_order_id: str = "",
) -> Fill | None:
    """A Fill from a ccxt trade of ours (watch_my_trades, or fetch_my_trades with the order's
    `client_order_id`, which REST trade rows do not carry); None without a client order id."""
    info = trade.get("info") or {}
    client_id = ""
    if isinstance(info, Mapping):
        client_id = str(info.get("c") or info.get("clientOrderId") or "")
    client_id = client_id or str(trade.get("clientOrderId") or "") or client_order_id
    if not client_id:
        return None
    price = _f(trade.get("price"))
    amount = _f(trade.get("amount"))
    fee = trade.get("fee") or {}
    fee_cost = _f(fee.get("cost")) if isinstance(fee, Mapping) else 0.0
    fee_currency = fee.get("currency") if isinstance(fee, Mapping) else None
    liquidity = Liquidity.MAKER if trade.get("takerOrMaker") == "maker" else Liquidity.TAKER
    if fee_currency == instrument.base:
        fee_quote = fee_cost * price  # Binance spot charges a buy's fee in the base asset
    elif fee_currency in {instrument.quote, None} or not fee_cost:
        fee_quote = fee_cost
    else:  # a third currency (BNB): estimate from the instrument's rate
        rate = (
            instrument.maker_fee_rate if liquidity is Liquidity.MAKER else instrument.taker_fee_rate
        )
        fee_quote = price * amount * instrument.contract_size_base * rate
    return Fill(
        venue,
        instrument.symbol,
        _ns(trade.get("timestamp"), now_ns),
        now_ns,
        client_id,
        str(trade.get("order") or ""),
        str(trade.get("id") or ""),
        _side(trade.get("side")),
        instrument.price_to_ticks(price),
        instrument.size_to_lots(amount),
        fee_quote,
        liquidity,
    )


async def _send(client: Any, message: Any) -> None:
    try:
        await client.send(message)
    except Exception as exc:  # noqa: BLE001  as ccxt does: the client fails its pending futures
        client.on_error(exc)


_SENDING: set[asyncio.Task[None]] = set()  # keeps unfinished sends referenced


def _start_now(coro: Coroutine[Any, Any, None]) -> None:
    """Run `coro` up to its first real wait now (the bytes are written); finish it as a task."""
    start_eagerly(coro, _SENDING)


class CcxtExecution:
    """`Execution` over a ccxt.pro exchange (markets loaded by `connect`)."""

    def __init__(
        self,
        exchange: Any,
        *,
        venue: str,
        instruments: tuple[Instrument, ...] = (),
        use_ws_api: bool = True,
        initial_backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.exchange = exchange
        self._venue = venue
        self._instruments: dict[str, Instrument] = {}
        for instrument in instruments:
            self.add_instrument(instrument)
        self.use_ws_api = use_ws_api
        self._backoff = BackoffPolicy(initial_backoff_s, max_backoff_s)
        self._sink: ExecutionSink | None = None
        self._errors: Any = None
        self.ws_fallbacks = 0  # WS-API calls that fell back to REST
        self.stream_restarts = 0
        self._install_send_now()

    def _install_send_now(self) -> None:
        """Make ccxt write a WS-API request on the socket within the call that makes it.

        ccxt's `watch` sends from a done-callback that starts a new task: two turns of the event
        loop, each behind whatever the loop has queued (at 2,500 market-data messages a second,
        1-8 ms measured). On an open connection without ccxt's throttle, this `watch` registers
        the same future and subscription and writes the message at once; anything else (not
        connected yet, throttle on, no message) goes through ccxt's own `watch`.
        """
        exchange = self.exchange
        original = getattr(exchange, "watch", None)
        if original is None or not callable(getattr(exchange, "client", None)):
            return

        def watch(
            url: str,
            message_hash: Any,
            message: Any = None,
            subscribe_hash: Any = None,
            subscription: Any = None,
        ) -> Any:
            client = exchange.client(url)
            connected = client.connected
            if exchange.enableRateLimit or not message or not connected.done():
                return original(url, message_hash, message, subscribe_hash, subscription)
            if subscribe_hash is None and message_hash in client.futures:
                return client.futures[message_hash]
            future = client.future(message_hash)
            if client.subscriptions.get(subscribe_hash):
                return future  # already subscribed: ccxt sends nothing either
            client.subscriptions[subscribe_hash] = subscription or True
            _start_now(_send(client, message))
            return future

        exchange.watch = watch

    @property
    def venue(self) -> str:
        return self._venue

    def add_instrument(self, instrument: Instrument) -> None:
        """Trade `instrument` over this account too."""
        self._instruments[instrument.symbol] = instrument

    @property
    def instruments(self) -> tuple[Instrument, ...]:
        return tuple(self._instruments.values())

    def _instrument(self, symbol: str) -> Instrument:
        instrument = self._instruments.get(symbol)
        if instrument is None:
            raise ValueError(f"{self._venue}: no instrument {symbol!r} on this order entry")
        return instrument

    @property
    def _one_symbol(self) -> str | None:
        """The symbol to watch when there is one (ccxt then filters for it); None: all."""
        return next(iter(self._instruments)) if len(self._instruments) == 1 else None

    async def connect(self) -> None:
        import ccxt  # noqa: PLC0415  heavy import, only when a live venue is used

        self._errors = ccxt
        # Inventory comes from our fills: ccxt's position snapshot on the first USD-M private
        # stream (a REST fetch_positions, leverage brackets and all) is not needed.
        options = self.exchange.options
        watch_positions = options.get("watchPositions")
        if not isinstance(watch_positions, dict):
            watch_positions = {}
            options["watchPositions"] = watch_positions
        watch_positions["fetchPositionsSnapshot"] = False
        await self.exchange.load_markets()

    async def run(self, sink: ExecutionSink) -> None:
        """Stream order updates and fills into `sink` until cancelled (two always-waiting tasks)."""
        self._sink = sink
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._stream("watch_orders", self._on_orders))
                group.create_task(self._stream("watch_my_trades", self._on_trades))
        finally:
            self._sink = None

    async def _stream(self, method: str, handle: Any) -> None:
        backoff = self._backoff.start()
        watch = getattr(self.exchange, method)
        restarted = False
        while True:
            if restarted:
                self._status(connected=True, reason=f"{method} subscribing again")
            backoff.attempt()
            try:
                items = await watch(self._one_symbol)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  a stream retries forever; the loop lives on
                self.stream_restarts += 1
                log.warning(
                    "private stream failed", venue=self._venue, stream=method, error=str(exc)
                )
                self._status(connected=False, reason=f"{method} failed")
                await backoff.sleep()
                restarted = True
                continue
            backoff.reset()
            handle(items)
            if restarted:
                restarted = False
                self._status(connected=True, reason=f"{method} delivering")

    def _status(self, *, connected: bool, reason: str) -> None:
        if self._sink is not None:
            self._sink(ExecutionStatus(self._venue, time.time_ns(), connected, reason))

    def _emit(self, event: OrderUpdate | Fill | None) -> None:
        if event is not None and self._sink is not None:
            self._sink(event)

    def _on_orders(self, orders: list[Mapping[str, Any]]) -> None:
        now = time.time_ns()
        for order in orders:
            instrument = self._instruments.get(str(order.get("symbol")))
            if instrument is not None:
                self._emit(order_update_from_ccxt(order, instrument, self._venue, now))

    def _on_trades(self, trades: list[Mapping[str, Any]]) -> None:
        now = time.time_ns()
        for trade in trades:
            instrument = self._instruments.get(str(trade.get("symbol")))
            if instrument is not None:
                self._emit(fill_from_ccxt(trade, instrument, self._venue, now))

    # -- order entry ---------------------------------------------------------------------------

    def _order_args(
        self, request: OrderRequest
    ) -> tuple[str, str, float, float | None, dict[str, Any]]:
        inst = self._instrument(request.symbol)
        side = "buy" if request.side is Side.BUY else "sell"
        amount = inst.lots_to_size(request.size_lots)
        price: float | None = inst.ticks_to_price(request.price_ticks)
        params: dict[str, Any] = {"newClientOrderId": request.client_order_id}
        order_type = "limit"
        if request.order_type is OrderType.LIMIT_MAKER:
            params["postOnly"] = True
        elif request.order_type is OrderType.IOC:
            params["timeInForce"] = "IOC"
        elif request.order_type is OrderType.MARKET:
            order_type = "market"
            price = None
        if request.reduce_only and inst.kind is not InstrumentKind.SPOT:
            params["reduceOnly"] = True
        return order_type, side, amount, price, params

    def _is_refusal(self, exc: BaseException) -> bool:
        """The venue answered and said no (post-only would cross, a filter, the balance...)."""
        errors = self._errors
        if errors is None:
            return False
        return isinstance(exc, errors.ExchangeError) and not self._can_fall_back(exc)

    def _can_fall_back(self, exc: BaseException) -> bool:
        """REST may do what the WS-API call could not: the socket failed, or ccxt itself refused
        the WS-API call for this market before sending anything (no venue error code)."""
        errors = self._errors
        if errors is None:
            return False
        if isinstance(exc, errors.NetworkError | errors.NotSupported):
            return True
        text = str(exc)
        return (
            isinstance(exc, errors.ExchangeError)
            and '"code"' not in text
            and ("websocket" in text or "Ws only supports" in text)
        )

    def _reject(self, request: OrderRequest, exc: BaseException) -> None:
        now = time.time_ns()
        message = str(exc)
        # ccxt prefixes the exchange id and appends the raw JSON: keep the venue's own words.
        if '"msg"' in message:
            message = message.split('"msg":', 1)[1].strip(' "}')
        prefix = f"{getattr(self.exchange, 'id', '')} "
        if message.startswith(prefix):
            message = message[len(prefix) :]
        self._emit(request.as_update(OrderStatus.REJECTED, now, message, self._venue))

    def _ack(self, result: Any) -> None:
        if not isinstance(result, Mapping):
            return
        instrument = self._instruments.get(str(result.get("symbol")))
        if instrument is not None:
            self._emit(order_update_from_ccxt(result, instrument, self._venue, time.time_ns()))

    async def place(self, request: OrderRequest) -> None:
        order_type, side, amount, price, params = self._order_args(request)
        symbol = request.symbol
        ex = self.exchange
        try:
            if self.use_ws_api:
                try:
                    result = await ex.create_order_ws(
                        symbol, order_type, side, amount, price, params
                    )
                except Exception as exc:
                    if not self._can_fall_back(exc):
                        raise
                    self.ws_fallbacks += 1
                    result = await ex.create_order(symbol, order_type, side, amount, price, params)
            else:
                result = await ex.create_order(symbol, order_type, side, amount, price, params)
        except Exception as exc:
            if not self._is_refusal(exc):
                raise
            self._reject(request, exc)
            return
        self._ack(result)

    async def replace(self, old_client_order_id: str, request: OrderRequest) -> None:
        symbol = request.symbol
        spot = self._instrument(symbol).kind is InstrumentKind.SPOT
        if not (spot and self.use_ws_api):
            await asyncio.gather(self.cancel(symbol, old_client_order_id), self.place(request))
            return
        order_type, side, amount, price, params = self._order_args(request)
        params["cancelOrigClientOrderId"] = old_client_order_id
        try:
            result = await self.exchange.edit_order_ws(
                "", symbol, order_type, side, amount, price, params
            )
        except Exception as exc:
            if self._can_fall_back(exc):
                self.ws_fallbacks += 1
                await asyncio.gather(self.cancel(symbol, old_client_order_id), self.place(request))
                return
            if not self._is_refusal(exc):
                raise
            # cancelReplace with STOP_ON_FAILURE: a failed cancel (the old order already
            # filled or gone) means the new order was not placed either.
            self._reject(request, exc)
            return
        self._ack(result)

    async def cancel(self, symbol: str, client_order_id: str) -> None:
        ex = self.exchange
        params = {"origClientOrderId": client_order_id}
        try:
            if self.use_ws_api:
                try:
                    result = await ex.cancel_order_ws("", symbol, params)
                except Exception as exc:
                    if not self._can_fall_back(exc):
                        raise
                    self.ws_fallbacks += 1
                    result = await ex.cancel_order("", symbol, params)
            else:
                result = await ex.cancel_order("", symbol, params)
        except Exception as exc:
            if self._errors is not None and isinstance(exc, self._errors.OrderNotFound):
                return  # already finished: its final update comes through watch_orders
            raise
        self._ack(result)

    async def cancel_all(self, symbol: str) -> None:
        ex = self.exchange
        if self.use_ws_api and self._instrument(symbol).kind is InstrumentKind.SPOT:
            try:
                await ex.cancel_all_orders_ws(symbol)
            except Exception as exc:
                if self._errors is not None and isinstance(exc, self._errors.OrderNotFound):
                    return
                if not self._can_fall_back(exc):
                    raise
                self.ws_fallbacks += 1
            else:
                return
        with contextlib.suppress(Exception if self._errors is None else self._errors.OrderNotFound):
            await ex.cancel_all_orders(symbol)

    async def open_orders(self, symbol: str) -> list[OrderUpdate]:
        ex = self.exchange
        orders: list[Mapping[str, Any]]
        if self.use_ws_api:
            try:
                orders = await ex.fetch_open_orders_ws(symbol)
            except Exception as exc:
                if not self._can_fall_back(exc):
                    raise
                self.ws_fallbacks += 1
                orders = await ex.fetch_open_orders(symbol)
        else:
            orders = await ex.fetch_open_orders(symbol)
        now = time.time_ns()
        instrument = self._instrument(symbol)
        updates = [order_update_from_ccxt(o, instrument, self._venue, now) for o in orders]
        return [u for u in updates if u is not None]

    async def order_status(self, symbol: str, client_order_id: str) -> OrderUpdate | None:
        try:
            order = await self.exchange.fetch_order(
                "", symbol, {"origClientOrderId": client_order_id}
            )
        except Exception as exc:
            if self._errors is not None and isinstance(exc, self._errors.OrderNotFound):
                return None
            raise
        return order_update_from_ccxt(order, self._instrument(symbol), self._venue, time.time_ns())

    async def trades_since(
        self,
        symbol: str,
        *,
        order_id: str = "",
        client_order_id: str = "",
        after_trade_id: str = "",
    ) -> list[Fill]:
        """By order (`orderId`) or after a trade id (Binance's `fromId`, a page at a time)."""
        ex = self.exchange
        instrument = self._instrument(symbol)
        now = time.time_ns()
        if order_id:
            trades = await ex.fetch_my_trades(symbol, params={"orderId": order_id})
        else:
            trades = []
            from_id = int(after_trade_id) + 1 if after_trade_id else 0
            while True:
                page = await ex.fetch_my_trades(
                    symbol, limit=_TRADES_PAGE, params={"fromId": from_id}
                )
                trades.extend(page)
                if len(page) < _TRADES_PAGE:
                    break
                from_id = max(int(t["id"]) for t in page) + 1
        fills = [
            fill
            for t in trades
            if (fill := fill_from_ccxt(t, instrument, self._venue, now, client_order_id))
        ]
        fills.sort(key=lambda f: (f.ts_exchange_ns, int(f.trade_id or 0)))
        return fills

    async def account_position(self, symbol: str) -> AccountPosition:
        """Spot: the base balance (`fetch_balance`); a perpetual: the position
        (`fetch_positions`); with the latest trade (`fetch_my_trades`, limit 1)."""
        ex = self.exchange
        inst = self._instrument(symbol)
        if inst.kind is InstrumentKind.SPOT:
            balance = await ex.fetch_balance()
            amount = float((balance.get(inst.base) or {}).get("total") or 0.0)
        else:
            amount = 0.0
            for position in await ex.fetch_positions([symbol]):
                if position.get("symbol") != symbol:
                    continue
                contracts = float(position.get("contracts") or 0.0)
                size = contracts * float(position.get("contractSize") or 1.0)
                amount += -size if position.get("side") == "short" else size
        trades = await ex.fetch_my_trades(symbol, limit=1)
        ids = [int(t["id"]) for t in trades if str(t.get("id") or "").isdigit()]
        return AccountPosition(
            self._venue,
            symbol,
            round(amount / inst.lot_size),
            str(max(ids)) if ids else "",
        )

    async def funding_settled(self) -> None:
        """ccxt surfaces no funding event: the history is read on the poll alone."""
        await asyncio.Event().wait()

    async def funding_fees(self, symbol: str, start_ms: int) -> list[FundingFee]:
        """ccxt's `fetch_funding_history` (Binance USD-M: `/fapi/v1/income`, FUNDING_FEE) from
        `start_ms`, a page at a time, oldest first."""
        fees: list[FundingFee] = []
        since = start_ms
        while True:
            page = await self.exchange.fetch_funding_history(symbol, since, _INCOME_PAGE)
            for row in page:
                try:
                    fees.append(
                        FundingFee(
                            venue=self._venue,
                            symbol=symbol,
                            funding_time_ns=int(row["timestamp"]) * _MS_TO_NS,
                            amount_quote=float(row["amount"]),
                            asset=str(row["code"]),
                            payment_id=str(row["id"]),
                        )
                    )
                except (KeyError, TypeError, ValueError) as exc:
                    log.warning("malformed funding record", venue=self._venue, error=repr(exc))
            if len(page) < _INCOME_PAGE:
                return fees
            since = max(int(row["timestamp"]) for row in page) + 1

    async def close(self) -> None:
        await self.exchange.close()
