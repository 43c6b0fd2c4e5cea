"""Paper execution: orders filled from a venue's public stream, honestly.

`PaperMatcher` is the pure part (explicit times, no I/O): it keeps its own view of the displayed
book from the venue's BookSnapshot/BookDelta events, rests our orders in the queue-position fill
model (`mm_daemon.core.queue`), and fills them from public trades. With the exposure fill model
(the default) an order the market has moved through is also filled by the flow that picks off
stale quotes (`mm_daemon.core.exposure`), over time: `next_due_ns` says when its next fill is
due and `advance` delivers it. It also rejects post-only orders that would cross, fills
crossing limit/IOC/market orders against the displayed book as taker, charges the instrument's
maker and taker fees, and keeps balances.

`PaperExecution` implements the `Execution` protocol around it with the configured latencies,
applied with the event loop's timers:
- a new order reaches the matcher `order_entry_latency_seconds` after `place()`;
- a cancel takes effect `cancel_latency_seconds` after `cancel()` (fills may still happen before);
- acknowledgements (open, cancelled, rejected) reach the sink `ack_latency_seconds` after the
  matcher produced them; fills reach it when the public trade that caused them is fed in (the
  trade itself already arrived with the market-data latency), and exposure fills when they are
  due (a timer on the event loop) or when the book update that reveals them is fed in. A
  post-only order that a book update shows was crossed before it arrived is rejected then,
  reported `ack_latency_seconds` later like any reject.

The daemon feeds every market event of the venue into `on_market_event`. At a restart it gives
the paper venue back the orders the journal holds open (`restore`): they rest again at the back
of their price level's queue, and the start's reconciliation cancels or adopts them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mm_daemon.core.book import Book
from mm_daemon.core.exposure import ExposureModel, ExposureParams
from mm_daemon.core.queue import QueueFill, QueueFillModel, QueueProbability
from mm_daemon.core.types import (
    AccountPosition,
    BookDelta,
    BookSnapshot,
    ExecutionEvent,
    Fill,
    InstrumentKind,
    Liquidity,
    MarketEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    Trade,
)

if TYPE_CHECKING:
    from mm_daemon.config import PaperConfig
    from mm_daemon.core.types import Instrument
    from mm_daemon.venues.base import ExecutionSink

__all__ = ["PaperExecution", "PaperMatcher", "fill_model_from_config"]

_NS = 1_000_000_000
POST_ONLY_REJECT = "Order would immediately match and take."
INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."
DUPLICATE_ORDER = "Duplicate client order id."


@dataclass(slots=True)
class _PaperOrder:
    request: OrderRequest
    exchange_order_id: str
    filled_lots: int = 0
    status: OrderStatus = OrderStatus.OPEN


def fill_model_from_config(
    config: PaperConfig,
) -> tuple[QueueProbability, ExposureParams | None, bool]:
    """(queue probability, exposure parameters or None, touch) for the configured fill model."""
    probability = QueueProbability(
        config.queue_position.value,
        fixed_share_ahead=config.size_decrease_queue_share,
        power_exponent=config.queue_power_exponent,
    )
    kind = config.fill_model.value
    exposure = None
    if kind == "exposure":
        exposure = ExposureParams(
            rate_multiplier=config.exposure_rate_multiplier,
            rate_multiplier_per_bps=config.exposure_rate_multiplier_per_bps,
            size_multiplier=config.exposure_size_multiplier,
            size_multiplier_per_bps=config.exposure_size_multiplier_per_bps,
            flow_halflife_ns=round(config.flow_halflife_seconds * _NS),
            size_samples=config.flow_size_samples,
            onset_window_ns=round(config.exposure_onset_window_seconds * _NS),
            onset_shape=config.exposure_onset_shape,
            seed=config.seed,
        )
    return probability, exposure, kind == "touch"


class PaperMatcher:
    """The pure paper venue for one instrument; every method returns the events it caused."""

    def __init__(
        self,
        instrument: Instrument,
        *,
        size_decrease_queue_share: float = 0.5,
        touch: bool = False,
        queue_probability: QueueProbability | None = None,
        exposure: ExposureParams | None = None,
        starting_base: float = 0.0,
        starting_quote: float = 0.0,
        venue: str | None = None,
        book: Book | None = None,
    ) -> None:
        """The queue model by default (`queue_probability`, else a fixed share of
        `size_decrease_queue_share`); with `exposure` also the exposure model; with `touch`
        the touch model."""
        self.instrument = instrument
        self.venue = venue or instrument.venue
        self.symbol = instrument.symbol
        # A book shared with the market-data adapter is already up to date when an event
        # arrives; only a book of our own is fed from the events.
        self.book = book if book is not None else Book()
        self._owns_book = book is None
        self.model = QueueFillModel(
            size_decrease_queue_share=size_decrease_queue_share,
            touch=touch,
            probability=queue_probability,
        )
        self.exposure = (
            ExposureModel(exposure, self.model) if exposure is not None and not touch else None
        )
        self.base_balance = starting_base
        self.quote_balance = starting_quote
        self.fees_paid_quote = 0.0
        self._orders: dict[str, _PaperOrder] = {}
        self._unqueued: list[str] = []  # restored orders waiting for a book to queue in
        self._next_order_id = 0
        self._next_trade_id = 0
        self._spot = instrument.kind is InstrumentKind.SPOT

    @property
    def last_trade_id(self) -> int:
        """The latest paper trade's id (0: none yet)."""
        return self._next_trade_id

    def continue_trade_ids(self, last_trade_id: int) -> None:
        """Number new trades after `last_trade_id` (an earlier run's, from the journal)."""
        self._next_trade_id = max(self._next_trade_id, last_trade_id)

    # -- orders --------------------------------------------------------------------------------

    def accept(self, request: OrderRequest, now_ns: int) -> list[ExecutionEvent]:
        """The order reaches the venue at `now_ns`: reject, fill as taker, and/or rest it."""
        cid = request.client_order_id
        self._next_order_id += 1
        oid = str(self._next_order_id)
        if cid in self._orders:
            return [self._reject(request, oid, now_ns, DUPLICATE_ORDER)]
        side = request.side
        best_opposite = self.book.best_ask_ticks if side is Side.BUY else self.book.best_bid_ticks
        crosses = best_opposite is not None and (
            request.price_ticks >= best_opposite
            if side is Side.BUY
            else request.price_ticks <= best_opposite
        )
        order_type = request.order_type
        if order_type is OrderType.LIMIT_MAKER and crosses:
            return [self._reject(request, oid, now_ns, POST_ONLY_REJECT)]
        if not self._can_afford(request):
            return [self._reject(request, oid, now_ns, INSUFFICIENT_BALANCE)]
        order = _PaperOrder(request, oid)
        events: list[ExecutionEvent] = []
        if crosses or order_type is OrderType.MARKET:
            events.extend(self._take(order, now_ns))
        remaining = request.size_lots - order.filled_lots
        if remaining <= 0:
            return events
        if order_type in {OrderType.IOC, OrderType.MARKET}:
            order.status = OrderStatus.EXPIRED
            events.append(self._order_update(order, now_ns, "IOC remainder expired"))
            return events
        self._orders[cid] = order
        level = (
            self.book.bid_size_at(request.price_ticks)
            if side is Side.BUY
            else self.book.ask_size_at(request.price_ticks)
        )
        self.model.on_place(cid, side, request.price_ticks, remaining, level)
        order.status = OrderStatus.PARTIALLY_FILLED if order.filled_lots else OrderStatus.OPEN
        if not events:
            events.append(self._order_update(order, now_ns))
        if self.exposure is not None:
            post_only = order_type is OrderType.LIMIT_MAKER
            exposed = self.exposure.on_place(cid, now_ns, post_only=post_only)
            if exposed:
                events.extend(self._apply_fills(exposed, now_ns))
        return events

    def restore(
        self, request: OrderRequest, exchange_order_id: str, filled_lots: int, now_ns: int
    ) -> list[ExecutionEvent]:
        """An order an earlier run left resting (the journal's): open again with what it had
        filled, at the back of its price level's queue (its place in the queue ended with that
        run), as soon as the book shows the level. Returns the fills that already reach it."""
        cid = request.client_order_id
        if cid in self._orders or filled_lots >= request.size_lots:
            return []
        if exchange_order_id.isdigit():  # new orders are numbered after it
            self._next_order_id = max(self._next_order_id, int(exchange_order_id))
        else:
            self._next_order_id += 1
            exchange_order_id = str(self._next_order_id)
        status = OrderStatus.PARTIALLY_FILLED if filled_lots else OrderStatus.OPEN
        self._orders[cid] = _PaperOrder(request, exchange_order_id, filled_lots, status)
        self._unqueued.append(cid)
        return self._queue_restored(now_ns)

    def cancel(self, client_order_id: str, now_ns: int) -> list[ExecutionEvent]:
        """The cancel reaches the venue; nothing happens if the order already finished.

        Exposure fills due before the cancel takes effect happen first."""
        events = self.advance(now_ns)
        order = self._orders.pop(client_order_id, None)
        if order is None:
            return events
        self.model.on_cancel(client_order_id)
        if self.exposure is not None:
            self.exposure.on_cancel(client_order_id)
        order.status = OrderStatus.CANCELLED
        events.append(self._order_update(order, now_ns))
        return events

    def advance(self, now_ns: int) -> list[ExecutionEvent]:
        """Exposure fills due up to `now_ns` (none without the exposure model)."""
        exposure = self.exposure
        if exposure is None or not self._orders:
            return []
        fills = exposure.advance(now_ns)
        return self._apply_fills(fills, now_ns) if fills else []

    def next_due_ns(self) -> int | None:
        """When the next exposure fill is due, if an order is exposed."""
        return self.exposure.next_due_ns() if self.exposure is not None else None

    def cancel_all(self, now_ns: int) -> list[ExecutionEvent]:
        events: list[ExecutionEvent] = []
        for cid in list(self._orders):
            events.extend(self.cancel(cid, now_ns))
        return events

    def open_orders(self, now_ns: int) -> list[OrderUpdate]:
        return [self._order_update(o, now_ns) for o in self._orders.values()]

    # -- market events -------------------------------------------------------------------------

    def on_market_event(self, event: MarketEvent, now_ns: int) -> list[ExecutionEvent]:
        """Update the displayed book or match a public trade; returns our fills and updates."""
        if event.symbol != self.symbol:
            return []
        exposure = self.exposure
        # Exposure arrivals due before this event come first.
        events = self.advance(now_ns) if exposure is not None else []
        if isinstance(event, Trade):
            excluded: frozenset[str] = frozenset()
            if exposure is not None:
                through = exposure.on_trade(
                    now_ns,
                    event.price_ticks,
                    event.size_lots,
                    event.aggressor,
                    event.ts_exchange_ns,
                )
                if through:
                    events.extend(self._apply_fills(through, now_ns))
                excluded = exposure.exposed_ids()
            if not self._orders:
                return events
            fills = self.model.on_trade(
                event.price_ticks, event.size_lots, event.aggressor, excluded
            )
            if fills:
                events.extend(self._apply_fills(fills, now_ns))
            return events
        if isinstance(event, BookDelta):
            if self._owns_book:
                self.book.update(0, 0, -1, event.bids, event.asks)
            if self._orders:
                model = self.model
                for px, sz in event.bids:
                    model.on_level_change(Side.BUY, px, sz)
                for px, sz in event.asks:
                    model.on_level_change(Side.SELL, px, sz)
            if self._unqueued:
                events.extend(self._queue_restored(now_ns))
            events.extend(self._touch(now_ns))
            return events
        if isinstance(event, BookSnapshot):
            if self._owns_book:
                self.book.apply_snapshot(event)
            for side, px in self.model.tracked_levels():
                size = self.book.bid_size_at(px) if side is Side.BUY else self.book.ask_size_at(px)
                self.model.on_level_change(side, px, size)
            if self._unqueued:
                events.extend(self._queue_restored(now_ns))
            events.extend(self._touch(now_ns))
            return events
        return events  # MarketStatus: nothing to match

    def _touch(self, now_ns: int) -> list[ExecutionEvent]:
        """The touch after a book update: the touch model's fills, or what exposure reveals."""
        book = self.book
        if self.exposure is not None:
            fills, refused = self.exposure.on_book(now_ns, book.best_bid_ticks, book.best_ask_ticks)
            events = self._apply_fills(fills, now_ns) if fills else []
            for client_order_id in refused:
                order = self._orders.pop(client_order_id)
                order.status = OrderStatus.REJECTED
                events.append(self._order_update(order, now_ns, POST_ONLY_REJECT))
            return events
        if self.model.touch and self._orders:
            fills = self.model.on_touch(book.best_bid_ticks, book.best_ask_ticks)
        else:
            return []
        return self._apply_fills(fills, now_ns) if fills else []

    # -- internals -----------------------------------------------------------------------------

    def _queue_restored(self, now_ns: int) -> list[ExecutionEvent]:
        """Queue the restored orders behind what the book displays at their prices; not before
        the book shows either side (an empty book would put them at the front)."""
        book = self.book
        if book.best_bid_ticks is None and book.best_ask_ticks is None:
            return []
        waiting, self._unqueued = self._unqueued, []
        events: list[ExecutionEvent] = []
        for cid in waiting:
            order = self._orders.get(cid)
            if order is None:
                continue  # cancelled before the book came
            request = order.request
            price, side = request.price_ticks, request.side
            level = book.bid_size_at(price) if side is Side.BUY else book.ask_size_at(price)
            self.model.on_place(cid, side, price, request.size_lots - order.filled_lots, level)
            if self.exposure is not None:
                # It rested already: a market through its price now exposes it, never refuses.
                exposed = self.exposure.on_place(cid, now_ns, post_only=False)
                if exposed:
                    events.extend(self._apply_fills(exposed, now_ns))
        return events

    def _apply_fills(self, fills: list[QueueFill], now_ns: int) -> list[ExecutionEvent]:
        events: list[ExecutionEvent] = []
        for qf in fills:
            order = self._orders.get(qf.order_id)
            if order is None:
                continue
            at = qf.ts_ns if qf.ts_ns is not None else now_ns
            events.append(
                self._fill(order, qf.price_ticks, qf.size_lots, Liquidity.MAKER, now_ns, at_ns=at)
            )
            if order.filled_lots >= order.request.size_lots:
                order.status = OrderStatus.FILLED
                del self._orders[qf.order_id]
            else:
                order.status = OrderStatus.PARTIALLY_FILLED
            events.append(self._order_update(order, now_ns))
        return events

    def _take(self, order: _PaperOrder, now_ns: int) -> list[ExecutionEvent]:
        """Fill a crossing order against the displayed book, best level first, as taker."""
        request = order.request
        is_buy = request.side is Side.BUY
        levels = self.book.asks() if is_buy else self.book.bids()
        market = request.order_type is OrderType.MARKET
        events: list[ExecutionEvent] = []
        for px, size in levels:
            if not market and (px > request.price_ticks if is_buy else px < request.price_ticks):
                break
            qty = min(size, request.size_lots - order.filled_lots)
            if qty <= 0:
                break
            events.append(self._fill(order, px, qty, Liquidity.TAKER, now_ns))
        if events:
            done = order.filled_lots >= request.size_lots
            order.status = OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED
            events.append(self._order_update(order, now_ns))
        return events

    def _fill(
        self,
        order: _PaperOrder,
        price_ticks: int,
        qty: int,
        liquidity: Liquidity,
        now_ns: int,
        *,
        at_ns: int | None = None,
    ) -> Fill:
        """A fill reported at `now_ns` that happened at `at_ns` (default: now)."""
        inst = self.instrument
        request = order.request
        notional = inst.ticks_to_price(price_ticks) * inst.lots_to_base(qty)
        rate = inst.maker_fee_rate if liquidity is Liquidity.MAKER else inst.taker_fee_rate
        fee = notional * rate
        base = inst.lots_to_base(qty)
        if request.side is Side.BUY:
            self.base_balance += base
            self.quote_balance -= notional + fee
        else:
            self.base_balance -= base
            self.quote_balance += notional - fee
        self.fees_paid_quote += fee
        order.filled_lots += qty
        self._next_trade_id += 1
        return Fill(
            self.venue,
            self.symbol,
            now_ns if at_ns is None else at_ns,
            now_ns,
            request.client_order_id,
            order.exchange_order_id,
            str(self._next_trade_id),
            request.side,
            price_ticks,
            qty,
            fee,
            liquidity,
        )

    def _can_afford(self, request: OrderRequest) -> bool:
        if not self._spot:
            return True  # derivatives: margin is not modelled
        inst = self.instrument
        if request.side is Side.BUY:
            committed = sum(
                inst.notional_quote(o.request.price_ticks, o.request.size_lots - o.filled_lots)
                for o in self._orders.values()
                if o.request.side is Side.BUY
            )
            price = request.price_ticks
            if request.order_type is OrderType.MARKET:
                price = self.book.best_ask_ticks or request.price_ticks
            need = inst.notional_quote(price, request.size_lots) * (1 + inst.taker_fee_rate)
            return committed + need <= self.quote_balance + 1e-9
        committed_lots = sum(
            o.request.size_lots - o.filled_lots
            for o in self._orders.values()
            if o.request.side is Side.SELL
        )
        need_base = inst.lots_to_base(committed_lots + request.size_lots)
        return need_base <= self.base_balance + 1e-12

    def _order_update(self, order: _PaperOrder, now_ns: int, reason: str = "") -> OrderUpdate:
        r = order.request
        return OrderUpdate(
            self.venue,
            self.symbol,
            now_ns,
            now_ns,
            r.client_order_id,
            order.exchange_order_id,
            order.status,
            r.side,
            r.price_ticks,
            r.size_lots,
            order.filled_lots,
            reason,
        )

    def _reject(
        self, request: OrderRequest, exchange_order_id: str, now_ns: int, reason: str
    ) -> OrderUpdate:
        return OrderUpdate(
            self.venue,
            self.symbol,
            now_ns,
            now_ns,
            request.client_order_id,
            exchange_order_id,
            OrderStatus.REJECTED,
            request.side,
            request.price_ticks,
            request.size_lots,
            0,
            reason,
        )


class PaperExecution:
    """`Execution` for paper trading: the matcher behind the configured latencies."""

    def __init__(
        self,
        instrument: Instrument,
        config: PaperConfig,
        *,
        venue: str | None = None,
        clock: Callable[[], int] = time.time_ns,
        book: Book | None = None,
        last_trade_id: int = 0,
    ) -> None:
        probability, exposure, touch = fill_model_from_config(config)
        self.matcher = PaperMatcher(
            instrument,
            touch=touch,
            queue_probability=probability,
            exposure=exposure,
            starting_base=config.starting_base,
            starting_quote=config.starting_quote,
            venue=venue,
            book=book,
        )
        self.matcher.continue_trade_ids(last_trade_id)
        self._venue = self.matcher.venue
        self._symbol = instrument.symbol
        self._entry_s = config.order_entry_latency_seconds
        self._ack_s = config.ack_latency_seconds
        self._cancel_s = config.cancel_latency_seconds
        self._clock = clock
        self._sink: ExecutionSink | None = None
        self._backlog: list[ExecutionEvent] = []
        self._closed: asyncio.Event | None = None
        self._timers: dict[asyncio.TimerHandle, asyncio.Future[None]] = {}
        self._in_transit: set[str] = set()  # sent, not yet at the matcher
        self._cancelled_in_transit: set[str] = set()  # their cancel arrived first
        self._due_timer: asyncio.TimerHandle | None = None  # the next exposure fill
        self._due_ns: int | None = None

    @property
    def venue(self) -> str:
        return self._venue

    @property
    def balances(self) -> tuple[float, float]:
        """(base, quote) balances now."""
        return self.matcher.base_balance, self.matcher.quote_balance

    def restore_balances(self, position_base: float, trade_cash_quote: float) -> None:
        """At a restart, before any new fill: the balances the journaled fills left, on top of
        the configured starting ones."""
        self.matcher.base_balance += position_base
        self.matcher.quote_balance += trade_cash_quote

    async def connect(self) -> None:
        self._closed = asyncio.Event()

    async def run(self, sink: ExecutionSink) -> None:
        """Deliver events into `sink` until cancelled or closed."""
        self._sink = sink
        backlog, self._backlog = self._backlog, []
        for event in backlog:
            sink(event)
        if self._closed is None:
            self._closed = asyncio.Event()
        try:
            await self._closed.wait()
        finally:
            self._sink = None

    def on_market_event(self, event: MarketEvent) -> None:
        """Feed every market event of the venue (synchronously, from the market sink)."""
        events = self.matcher.on_market_event(event, self._clock())
        if events:
            rejects = [e for e in events if _is_reject(e)]
            if rejects:
                self._ack(rejects)
                events = [e for e in events if not _is_reject(e)]
            self._deliver(events)
        self._schedule_due()

    # Each call returns once its action has taken effect at the paper venue, as a venue's
    # response would; the acknowledgement event follows `ack_latency_seconds` later.

    def restore(self, request: OrderRequest, exchange_order_id: str, filled_lots: int) -> None:
        """Take back an order an earlier run left resting (see `PaperMatcher.restore`); before
        the daemon reconciles, so that its start cancels or adopts it like any venue's."""
        self._deliver(self.matcher.restore(request, exchange_order_id, filled_lots, self._clock()))

    async def place(self, request: OrderRequest) -> None:
        self._in_transit.add(request.client_order_id)
        await self._later(self._entry_s, self._arrive, request)

    async def replace(self, old_client_order_id: str, request: OrderRequest) -> None:
        cancelled = self._later(self._cancel_s, self._cancel_effect, old_client_order_id)
        self._in_transit.add(request.client_order_id)
        await self._later(self._entry_s, self._arrive, request)
        await cancelled

    async def cancel(self, symbol: str, client_order_id: str) -> None:
        if symbol == self._symbol:
            await self._later(self._cancel_s, self._cancel_effect, client_order_id)

    async def cancel_all(self, symbol: str) -> None:
        if symbol == self._symbol:
            await self._later(self._cancel_s, self._cancel_all_effect)

    async def open_orders(self, symbol: str) -> list[OrderUpdate]:
        if symbol != self._symbol:
            return []
        return self.matcher.open_orders(self._clock())

    async def order_status(self, symbol: str, client_order_id: str) -> OrderUpdate | None:
        """An open paper order's state (a finished one is not kept: None)."""
        for update in await self.open_orders(symbol):
            if update.client_order_id == client_order_id:
                return update
        return None

    async def trades_since(
        self,
        symbol: str,
        *,
        order_id: str = "",
        client_order_id: str = "",
        after_trade_id: str = "",
    ) -> list[Fill]:
        """Nothing to recover: a paper fill is delivered as it happens, never lost on the way."""
        del symbol, order_id, client_order_id, after_trade_id
        return []

    async def account_position(self, symbol: str) -> AccountPosition:
        """The paper account's base balance and its latest paper trade."""
        matcher = self.matcher
        last = matcher.last_trade_id
        return AccountPosition(
            self._venue,
            symbol,
            round(matcher.base_balance / matcher.instrument.lots_to_base(1)),
            str(last) if last else "",
        )

    async def close(self) -> None:
        for timer, done in self._timers.items():
            timer.cancel()
            done.cancel()
        self._timers.clear()
        if self._due_timer is not None:
            self._due_timer.cancel()
            self._due_timer = None
        if self._closed is not None:
            self._closed.set()

    # -- internals -----------------------------------------------------------------------------

    def _later(
        self, delay_s: float, callback: Callable[..., None], *args: object
    ) -> asyncio.Future[None]:
        """Run `callback(*args)` after `delay_s` on the loop's timer; the future says when."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.pop(handle, None)
            try:
                callback(*args)
            finally:
                if not done.done():
                    done.set_result(None)

        handle = loop.call_later(delay_s, fire)
        self._timers[handle] = done
        return done

    def _schedule_due(self) -> None:
        """Keep one timer on the matcher's next exposure fill."""
        due = self.matcher.next_due_ns()
        if due == self._due_ns:
            return
        if self._due_timer is not None:
            self._due_timer.cancel()
            self._due_timer = None
        self._due_ns = due
        if due is None or self._closed is None or self._closed.is_set():
            return
        loop = asyncio.get_running_loop()
        self._due_timer = loop.call_later(max(0.0, (due - self._clock()) / _NS), self._on_due)

    def _on_due(self) -> None:
        self._due_timer = None
        self._due_ns = None
        events = self.matcher.advance(self._clock())
        if events:
            self._deliver(events)
        self._schedule_due()

    def _cancel_all_effect(self) -> None:
        events = self.matcher.cancel_all(self._clock())
        self._ack(events)
        self._schedule_due()

    def _arrive(self, request: OrderRequest) -> None:
        cid = request.client_order_id
        self._in_transit.discard(cid)
        now = self._clock()
        if cid in self._cancelled_in_transit:  # its cancel overtook it: it never rests
            self._cancelled_in_transit.discard(cid)
            self._ack([_cancelled_on_arrival(self._venue, request, now)])
            return
        self._ack(self.matcher.accept(request, now))
        self._schedule_due()

    def _cancel_effect(self, client_order_id: str) -> None:
        if client_order_id in self._in_transit:
            self._cancelled_in_transit.add(client_order_id)
            return
        self._ack(self.matcher.cancel(client_order_id, self._clock()))
        self._schedule_due()

    def _ack(self, events: list[ExecutionEvent]) -> None:
        if not events:
            return
        # Taker fills happen at arrival and are reported with the acknowledgement.
        if self._ack_s > 0:
            self._later(self._ack_s, self._deliver, events)
        else:
            self._deliver(events)

    def _deliver(self, events: list[ExecutionEvent]) -> None:
        sink = self._sink
        if sink is None:
            self._backlog.extend(events)
            return
        now = self._clock()
        for event in events:
            sink(_received(event, now))


def _is_reject(event: ExecutionEvent) -> bool:
    return isinstance(event, OrderUpdate) and event.status is OrderStatus.REJECTED


def _cancelled_on_arrival(venue: str, request: OrderRequest, now_ns: int) -> OrderUpdate:
    return OrderUpdate(
        venue,
        request.symbol,
        now_ns,
        now_ns,
        request.client_order_id,
        "",
        OrderStatus.CANCELLED,
        request.side,
        request.price_ticks,
        request.size_lots,
        0,
        "cancelled before it reached the venue",
    )


def _received(event: ExecutionEvent, now_ns: int) -> ExecutionEvent:
    """The event as we receive it: our local timestamp set to `now_ns`."""
    if event.ts_local_ns == now_ns:
        return event
    if isinstance(event, Fill):
        return Fill(
            event.venue,
            event.symbol,
            event.ts_exchange_ns,
            now_ns,
            event.client_order_id,
            event.exchange_order_id,
            event.trade_id,
            event.side,
            event.price_ticks,
            event.size_lots,
            event.fee_quote,
            event.liquidity,
        )
    return OrderUpdate(
        event.venue,
        event.symbol,
        event.ts_exchange_ns,
        now_ns,
        event.client_order_id,
        event.exchange_order_id,
        event.status,
        event.side,
        event.price_ticks,
        event.size_lots,
        event.filled_lots,
        event.reason,
    )
