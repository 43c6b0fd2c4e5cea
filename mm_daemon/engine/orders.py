"""The order manager: keeps the venue's live orders close to the desired quotes, with little churn.

`set_desired(quotes, ...)`, called on every requote, diffs the desired quotes against our live
orders at once and hands the actions to the `Execution` (each call its own task, so a slow
acknowledgement never blocks the next decision). What it does per side and level:

- no live order at a desired level: place one (at most `max_open_orders_per_side` per side,
  counting orders being cancelled);
- a live order at a desired level: left alone unless its price is off by at least the price
  tolerance (the larger of `price_tolerance_ticks` and `price_tolerance_bps` of the price, and
  at least one tick), its remaining size is off by more than `size_tolerance_fraction`, or it is
  older than `max_order_age_seconds`; then replaced with one cancel-replace;
- a live order with no desired level: cancelled;
- an order in flight is left alone until the venue answers or `order_timeout_seconds` passes;
  then our view is reconciled with the venue's open orders.

Rate limits: the venue account's order budget (`engine.budget.VenueBudget`, shared by every
market and hedge on the venue), spent by priority. First a live order the market has moved through
(a bid at or above fair value, an ask at or below it): replaced if the budget allows, else
cancelled at once (a cancel is no order on Binance, so it never waits for the order count). Then
orders no longer wanted (cancelled), quotes whose price is off beyond the tolerance (replaced, or
cancelled now and placed when the budget allows), missing quotes (placed), and last the replaces
for size or age alone, which are deferred first. Each group goes nearest level first. Actions the
budget cannot pay for now are not queued: the manager wakes when the budget allows (or when the
venue gives orders back) and diffs again against the latest desired quotes, so a burst of events
collapses into the latest desired state. Every order is checked against the risk gate and the
venue's filters before it is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import structlog

from mm_daemon.aio import start_eagerly
from mm_daemon.core.budget import ActionCost, Priority
from mm_daemon.core.filters import check_filters
from mm_daemon.core.types import (
    CancelRequest,
    ExecutionEvent,
    Fill,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
)
from mm_daemon.engine.budget import VenueBudget
from mm_daemon.engine.client_ids import new_client_id_prefix
from mm_daemon.engine.order_state import (
    STATUS_RANK,
    LiveOrder,
    OrderManagerSettings,
    OrderMetrics,
    adopted_orders,
    reject_reason_label,
)

if TYPE_CHECKING:
    from mm_daemon.core.quoting import Quote, Quotes
    from mm_daemon.core.risk import RiskGate
    from mm_daemon.core.types import Instrument
    from mm_daemon.engine.journal import Journal
    from mm_daemon.engine.metrics import Metrics
    from mm_daemon.venues.base import Execution

__all__ = ["LiveOrder", "OrderManager", "OrderManagerSettings"]

log = structlog.get_logger(__name__)

_NS = 1_000_000_000
_RECENT_TERMINAL_KEPT = 256  # finished orders remembered for late fills and updates


class OrderManager:
    """Desired quotes in, order actions out; order events in, live-order state kept."""

    def __init__(
        self,
        execution: Execution,
        instrument: Instrument,
        settings: OrderManagerSettings,
        *,
        risk: RiskGate | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], int] = time.time_ns,
        client_id_prefix: str | None = None,
        market: str = "",
        journal: Journal | None = None,
        budget: VenueBudget | None = None,
    ) -> None:
        self.execution = execution
        self.instrument = instrument
        self.settings = settings
        self.risk = risk
        self.metrics = metrics
        self.clock = clock
        self.venue = instrument.venue
        self.symbol = instrument.symbol
        self.market = market or f"{instrument.symbol}@{instrument.venue}"
        self._prefix = client_id_prefix or new_client_id_prefix()
        self.journal = journal
        self._next_id = 0
        self.budget = budget or VenueBudget.unlimited(instrument.venue, clock)
        self._costs = self.budget.costs
        self._wait_ns = -1  # the soonest a deferred action may go in this sync (-1: none)
        self._orders: dict[str, LiveOrder] = {}
        self._finished: dict[str, LiveOrder] = {}
        self._stray_cancelled: set[str] = set()  # our ids found live after we gave them up
        self._desired: Quotes | None = None
        self._fair_ticks = 0.0
        self._net_exposure_base = 0.0
        self._position_base = 0.0
        self._event_ts_ns = 0  # receipt time of the event behind the pending desired state
        self._last_sync_ns = -(1 << 62)
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at_ns = 0
        self._reconciling = False
        # Per side, the price the market reached (a fill, a refusal), until the next book update.
        self._reached: dict[Side, int] = {}
        self._stopped = False
        self.left_open: list[str] = []  # client ids still open at the venue after shutdown
        self.deferred_count = 0  # syncs that left an action for the budget to allow
        self._synced_key: object = None  # (bids, asks) as last diffed
        self._dirty = True  # something besides the quotes changed since the last diff
        self._om = OrderMetrics(metrics, self.market, instrument) if metrics is not None else None

    # -- queries ----------------------------------------------------------------------------

    @property
    def client_id_prefix(self) -> str:
        return self._prefix

    def live_orders(self, side: Side | None = None) -> list[LiveOrder]:
        """Orders not yet finished (pending new, open, partially filled, pending cancel)."""
        return [o for o in self._orders.values() if side is None or o.side is side]

    def best_prices(self) -> tuple[int | None, int | None]:
        """Our best bid and ask in ticks among the orders resting or on their way (None: no
        order on that side)."""
        bid: int | None = None
        ask: int | None = None
        for order in self._orders.values():
            if order.status is OrderStatus.PENDING_CANCEL:
                continue
            if order.side is Side.BUY:
                bid = order.price_ticks if bid is None else max(bid, order.price_ticks)
            else:
                ask = order.price_ticks if ask is None else min(ask, order.price_ticks)
        return bid, ask

    def get(self, client_order_id: str) -> LiveOrder | None:
        return self._orders.get(client_order_id) or self._finished.get(client_order_id)

    # -- desired state -------------------------------------------------------------------------

    def set_desired(
        self,
        quotes: Quotes,
        *,
        fair_ticks: float,
        net_exposure_base: float = 0.0,
        event_ts_ns: int = 0,
        position_base: float = 0.0,
    ) -> None:
        """Take the latest desired quotes and act on them now (or when debounce/limits allow).

        `event_ts_ns` is the local receipt time of the event that caused this requote (for the
        tick-to-quote histogram); 0 skips the measurement. `position_base` is this market's own
        position (the risk gate's position-notional limit), `net_exposure_base` its asset's.
        """
        self._desired = quotes
        self._fair_ticks = fair_ticks
        self._net_exposure_base = net_exposure_base
        self._position_base = position_base
        key = (quotes.bids, quotes.asks)
        if key == self._synced_key and not self._dirty:
            return  # the same quotes as last time and nothing happened since: nothing to do
        if event_ts_ns and not self._event_ts_ns:
            self._event_ts_ns = event_ts_ns  # the oldest event still waiting for an action
        now = self.clock()
        debounce = self.settings.debounce_ns
        if debounce and now - self._last_sync_ns < debounce:
            self._wake_at(self._last_sync_ns + debounce)
        else:
            self.sync(now)
        if self._om is not None:  # after the requests: off the tick-to-quote path
            self._om.publish_quotes(quotes)

    def on_book_update(self) -> None:
        """The venue published its book: the prices held since the last one may go again."""
        if self._reached:
            self._reached.clear()
            self._dirty = True

    def sync(self, now_ns: int | None = None) -> None:
        """Diff the desired quotes against live orders and send what the rate limit allows."""
        if self._stopped:
            return
        now = self.clock() if now_ns is None else now_ns
        self._last_sync_ns = now
        desired = self._desired
        if desired is None:
            self._check_timeouts(now)
            return
        self._synced_key = (desired.bids, desired.asks)
        self._dirty = False
        cancels: list[LiveOrder] = []
        replaces: list[tuple[LiveOrder, Quote]] = []
        places: list[Quote] = []
        self._diff_side(
            Side.BUY, desired.bids, now=now, cancels=cancels, replaces=replaces, places=places
        )
        self._diff_side(
            Side.SELL, desired.asks, now=now, cancels=cancels, replaces=replaces, places=places
        )
        fair = self._fair_ticks
        at_risk: list[tuple[LiveOrder, Quote]] = []
        stale: list[tuple[LiveOrder, Quote]] = []
        refresh: list[tuple[LiveOrder, Quote]] = []
        for order, quote in replaces:
            if self._moved_through(order, fair):
                at_risk.append((order, quote))
            elif self._price_off(order, quote):
                stale.append((order, quote))
            else:
                refresh.append((order, quote))
        for group in (at_risk, stale, refresh):
            group.sort(key=lambda pair: pair[1].level)
        places.sort(key=lambda q: q.level)
        self._wait_ns = -1
        sent = 0
        first_sent_ns = 0
        # The quotes the market moved through first, then unwanted orders, then stale prices
        # and missing quotes; refreshes for size or age last (the budget defers them first).
        for order, quote in at_risk:
            if self._send_replace(order, quote, now, Priority.STALE):
                sent += 1
                first_sent_ns = first_sent_ns or self.clock()
        for order in cancels:
            if self._cancel_now(order, now):
                sent += 1
                first_sent_ns = first_sent_ns or self.clock()
        for order, quote in stale:
            if self._send_replace(order, quote, now, Priority.STALE):
                sent += 1
                first_sent_ns = first_sent_ns or self.clock()
        for quote in places:
            if self._send_place(quote, now):
                sent += 1
                first_sent_ns = first_sent_ns or self.clock()
        for order, quote in refresh:
            if self._send_replace(order, quote, now, Priority.REFRESH):
                sent += 1
                first_sent_ns = first_sent_ns or self.clock()
        if sent and self._event_ts_ns:
            # Tick-to-quote: the event's receipt to the first request handed to the venue.
            if self._om is not None:
                self._om.tick_to_quote.observe(max(0, first_sent_ns - self._event_ts_ns) / _NS)
            self._event_ts_ns = 0
        elif not (cancels or replaces or places):
            self._event_ts_ns = 0  # nothing to do for that event
        if self._wait_ns >= 0:
            self._dirty = True  # the rest waits for the budget
            self.deferred_count += 1
            self._wake_at(now + self._wait_ns)
        # After the requests: looking for in-flight orders past their timeout is bookkeeping,
        # not on the way from the event to the venue.
        self._check_timeouts(now)
        self._schedule_deadlines(now)
        if self._om is not None:
            self._om.publish_open_orders(self._orders.values())

    def _diff_side(
        self,
        side: Side,
        quotes: tuple[Quote, ...],
        *,
        now: int,
        cancels: list[LiveOrder],
        replaces: list[tuple[LiveOrder, Quote]],
        places: list[Quote],
    ) -> None:
        pending_new = OrderStatus.PENDING_NEW
        pending_cancel = OrderStatus.PENDING_CANCEL
        by_level: dict[int, LiveOrder] = {}
        live_count = 0
        cancels_before = len(cancels)
        for order in self._orders.values():
            if order.side is not side:
                continue
            live_count += 1  # an order being cancelled still counts against the cap
            if order.status is pending_cancel:
                continue
            other = by_level.get(order.level)
            if other is None:
                by_level[order.level] = order
                continue
            # Two orders on one level (a replace raced an ack): keep the newer one.
            keep, drop = (order, other) if other.created_ns <= order.created_ns else (other, order)
            by_level[order.level] = keep
            if drop.status is not pending_new:
                cancels.append(drop)
        n_quotes = len(quotes)
        for level, order in by_level.items():
            # The quoter numbers levels 0..n-1 and may skip one (a size rounded to zero).
            if order.status is pending_new or (level < n_quotes and quotes[level].level == level):
                continue
            if not any(q.level == level for q in quotes):
                cancels.append(order)
        reached = self._reached.get(side)
        room = self.settings.max_open_orders_per_side - live_count
        room += len(cancels) - cancels_before
        for quote in quotes:
            if reached is not None and (quote.price_ticks - reached) * int(side) >= 0:
                continue  # at or through where the market just was: wait for the book
            current = by_level.get(quote.level)
            if current is None:
                if room > 0:
                    places.append(quote)
                    room -= 1
            elif current.status is not pending_new and self._needs_replace(current, quote, now):
                replaces.append((current, quote))

    def price_tolerance_ticks(self, price_ticks: float) -> float:
        """How far a live order's price may be from its quote before it is replaced."""
        s = self.settings
        return max(s.price_tolerance_ticks, s.price_tolerance_bps * 1e-4 * price_ticks, 1)

    @staticmethod
    def _moved_through(order: LiveOrder, fair_ticks: float) -> bool:
        """Fair value has reached or passed the order: it is about to be picked off."""
        if fair_ticks <= 0:
            return False
        if order.side is Side.BUY:
            return order.price_ticks >= fair_ticks
        return order.price_ticks <= fair_ticks

    def _price_off(self, order: LiveOrder, quote: Quote) -> bool:
        return abs(order.price_ticks - quote.price_ticks) >= self.price_tolerance_ticks(
            quote.price_ticks
        )

    def _needs_replace(self, order: LiveOrder, quote: Quote, now: int) -> bool:
        s = self.settings
        if abs(order.price_ticks - quote.price_ticks) >= self.price_tolerance_ticks(
            quote.price_ticks
        ):
            return True
        remaining = order.remaining_lots
        if abs(remaining - quote.size_lots) > s.size_tolerance_fraction * quote.size_lots:
            return True
        return now - order.created_ns >= s.max_order_age_ns

    # -- sending -------------------------------------------------------------------------------

    def _new_id(self) -> str:
        self._next_id += 1
        return f"{self._prefix}-{self._next_id:x}"

    def _request(self, quote: Quote, now: int) -> OrderRequest:
        return OrderRequest(
            self.venue,
            self.symbol,
            self._new_id(),
            quote.side,
            quote.price_ticks,
            quote.size_lots,
            OrderType.LIMIT_MAKER,
            reduce_only=False,
            ts_decided_ns=now,
        )

    def _allowed(self, request: OrderRequest, replacing: LiveOrder | None) -> bool:
        """The risk gate and the venue's filters both pass `request`; a refusal is counted
        (`risk_<reason>`, `filter`)."""
        others = [o for o in self._orders.values() if o is not replacing]
        filtered = check_filters(
            self.instrument, request, self._fair_ticks, open_orders=len(others)
        )
        if filtered is not None:
            if self.metrics is not None:
                self.metrics.order_rejects.labels(self.venue, "filter").inc()
            log.warning("order_refused_by_filter", market=self.market, filter=filtered)
            return False
        if self.risk is None:
            return True
        same_side = sum(
            1
            for o in others
            if o.side is request.side and o.status is not OrderStatus.PENDING_CANCEL
        )
        reason = self.risk.check(
            request,
            self._fair_ticks,
            same_side,
            net_exposure_base=self._net_exposure_base,
            position_base=self._position_base,
        )
        if reason is None:
            return True
        if self.metrics is not None:
            self.metrics.order_rejects.labels(self.venue, f"risk_{reason}").inc()
        return False

    def _take(self, priority: Priority, cost: ActionCost) -> bool:
        """Spend `cost` from the venue's budget, or note how long until it allows it."""
        if self.budget.try_take(priority, cost, self):
            return True
        wait = self.budget.ns_until(priority, cost)
        if self._wait_ns < 0 or wait < self._wait_ns:
            self._wait_ns = wait
        return False

    def budget_freed(self) -> None:
        """The venue gave orders back while an action of ours waited: diff again now."""
        self._poke()

    def _track(self, request: OrderRequest, level: int, now: int) -> None:
        self._orders[request.client_order_id] = LiveOrder(
            request.client_order_id,
            request.side,
            level,
            request.price_ticks,
            request.size_lots,
            OrderStatus.PENDING_NEW,
            now,
            now,
        )

    def _send_place(self, quote: Quote, now: int) -> bool:
        request = self._request(quote, now)
        if not self._allowed(request, None):
            return False
        if not self._take(Priority.STALE, self._costs.place):
            return False
        self._track(request, quote.level, now)  # first: the send below may answer at once
        self._spawn(self._call(self.execution.place(request), request.client_order_id))
        if self._om is not None:
            self._om.place.inc()
        if self.journal is not None:  # buffered, after the send: off the reaction path
            self.journal.record_order(self.market, request, now)
        return True

    def _send_replace(self, order: LiveOrder, quote: Quote, now: int, priority: Priority) -> bool:
        """Replace `order` with `quote`; True when a request went out.

        An order the checks refuse to replace is cancelled instead. A stale quote the budget
        cannot replace now is cancelled now (a cancel costs no order) and placed again when
        the budget allows; a refresh for size or age just waits.
        """
        request = self._request(quote, now)
        if not self._allowed(request, order):
            return self._cancel_now(order, now)  # it no longer matches what we want
        if not self._take(priority, self._costs.replace):
            return priority is not Priority.REFRESH and self._cancel_now(order, now)
        order.status = OrderStatus.PENDING_CANCEL
        order.status_ns = now
        self._track(request, quote.level, now)  # first: the send below may answer at once
        coro = self.execution.replace(order.client_order_id, request)
        self._spawn(self._call(coro, request.client_order_id))
        if self._om is not None:
            self._om.replace.inc()
        if self.journal is not None:
            self.journal.record_cancel(self.market, self._cancel_of(order), now, reason="replace")
            self.journal.record_order(self.market, request, now, action="replace")
        return True

    def _cancel_now(self, order: LiveOrder, now: int) -> bool:
        """Cancel `order` if the budget allows it now (only a weight breach or a ban stops a
        cancel); True when sent."""
        if not self._take(Priority.URGENT, self._costs.cancel):
            return False
        self._send_cancel(order, now)
        return True

    def _send_cancel(self, order: LiveOrder, now: int) -> None:
        order.status = OrderStatus.PENDING_CANCEL
        order.status_ns = now
        if self._om is not None:
            self._om.cancel.inc()
        self._spawn(self._call(self.execution.cancel(self.symbol, order.client_order_id), None))
        if self.journal is not None:
            self.journal.record_cancel(self.market, self._cancel_of(order), now)

    def _cancel_of(self, order: LiveOrder) -> CancelRequest:
        return CancelRequest(self.venue, self.symbol, order.client_order_id)

    async def _call(self, coro: Coroutine[Any, Any, None], new_id: str | None) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001  any venue error rejects the order, never the loop
            log.warning("order action failed", venue=self.venue, error=str(exc))
            if new_id is not None:
                order = self._orders.get(new_id)
                if order is not None and order.status is OrderStatus.PENDING_NEW:
                    self._rejected(order, str(exc))
                    self._finish(order, OrderStatus.REJECTED, self.clock(), type(exc).__name__)
            self._poke()

    def _rejected(self, order: LiveOrder, reason: str) -> None:
        label = reject_reason_label(reason)
        if self.metrics is not None:
            self.metrics.order_rejects.labels(self.venue, label).inc()
        if label == "post_only":
            self._hold(order.side, order.price_ticks)

    def _hold(self, side: Side, price_ticks: int) -> None:
        """The market reached `price_ticks` (it filled us there, or a post-only order there
        was refused as crossing) and our book may not show it yet: until the venue publishes
        its book again, quotes of `side` at that price or through it wait. Sent from the same
        view, they would be refused again (an order spent from the budget) or be picked off by
        the flow that just reached the price. Trades do not lift the hold: between two book
        updates they arrive faster than the view changes."""
        held = self._reached.get(side)
        if held is None or (price_ticks - held) * int(side) < 0:
            self._reached[side] = price_ticks

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Start an order action now, not on the loop's next turn.

        The coroutine runs synchronously up to its first real wait, so a WS-API request is on
        the wire before this returns, even when the loop has a backlog of market-data
        callbacks queued (as an eager task does in Python 3.12); the rest runs as a task.
        """
        start_eagerly(coro, self._tasks)

    async def drain(self) -> None:
        """Wait until every action handed to the Execution so far has returned."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- events from the venue -------------------------------------------------------------------

    def on_execution_event(self, event: ExecutionEvent) -> None:
        """Feed every OrderUpdate and Fill of this symbol; unknown client ids are ignored."""
        if event.symbol != self.symbol:
            return
        if isinstance(event, Fill):
            self._on_fill(event)
        else:
            self._on_update(event)

    def _on_update(self, update: OrderUpdate) -> None:
        order = self._orders.get(update.client_order_id)
        if order is None:
            if not update.status.is_terminal:
                self._cancel_if_stray(update.client_order_id)
            return  # finished already, or not ours
        if self.journal is not None:
            self.journal.record_order_update(self.market, update)
        now = self.clock()
        if update.exchange_order_id:
            order.exchange_order_id = update.exchange_order_id
        order.filled_lots = max(order.filled_lots, update.filled_lots)
        status = update.status
        if status.is_terminal:
            if status is OrderStatus.REJECTED:
                self._rejected(order, update.reason or "rejected")
            self._finish(order, status, now, update.reason, journaled=True)
        elif STATUS_RANK[status] >= STATUS_RANK[order.status]:
            # Never backwards: an ack overtaken by our cancel leaves the order pending cancel.
            order.status = status
            order.status_ns = now
        self._poke()

    def _cancel_if_stray(self, client_order_id: str) -> None:
        """Cancel an order of ours that the venue reports live although we gave it up: its
        request failed with the connection (so it was counted rejected) but the venue had taken
        it. Left alone it would rest, unmanaged, until shutdown."""
        if not client_order_id.startswith(self._prefix + "-"):
            return  # not this manager's
        if client_order_id in self._stray_cancelled or self._stopped:
            return
        finished = self._finished.get(client_order_id)
        if finished is not None and finished.status is not OrderStatus.REJECTED:
            return  # filled or cancelled here: a late update, not a live order
        self._stray_cancelled.add(client_order_id)
        log.warning("stray order cancelled", venue=self.venue, client_order_id=client_order_id)
        if self._om is not None:
            self._om.cancel.inc()
        self.budget.charge(self._costs.cancel)
        self._spawn(self._call(self.execution.cancel(self.symbol, client_order_id), None))

    def _on_fill(self, fill: Fill) -> None:
        order = self._orders.get(fill.client_order_id)
        if order is None:
            return  # finished already (a late fill changes no order state), or not ours
        if order.fills_lots == 0:
            self.budget.on_first_fill()  # the venue stops counting an order that trades
        # Fills and cumulative order updates may arrive in either order: take the larger.
        order.fills_lots += fill.size_lots
        order.filled_lots = max(order.filled_lots, order.fills_lots)
        self._hold(order.side, fill.price_ticks)
        now = self.clock()
        if order.filled_lots >= order.size_lots:
            self._finish(order, OrderStatus.FILLED, now, "")
        elif order.status in {OrderStatus.PENDING_NEW, OrderStatus.OPEN}:
            order.status = OrderStatus.PARTIALLY_FILLED
            order.status_ns = now
        self._poke()

    def _finish(
        self,
        order: LiveOrder,
        status: OrderStatus,
        now: int,
        reason: str,
        *,
        journaled: bool = False,
    ) -> None:
        order.status = status
        order.status_ns = now
        order.reason = reason
        if self.journal is not None and not journaled:
            # Finished here, not by a venue update (filled by its fills, given up on a failed
            # request, gone from the venue's list): the journal's open orders must know.
            self.journal.record_order_update(
                self.market,
                OrderUpdate(
                    self.venue,
                    self.symbol,
                    now,
                    now,
                    order.client_order_id,
                    order.exchange_order_id,
                    status,
                    order.side,
                    order.price_ticks,
                    order.size_lots,
                    order.filled_lots,
                    reason,
                ),
            )
        self._orders.pop(order.client_order_id, None)
        self._finished[order.client_order_id] = order
        if len(self._finished) > _RECENT_TERMINAL_KEPT:
            del self._finished[next(iter(self._finished))]

    def _poke(self) -> None:
        """Something changed on the venue: diff again (a filled level gets a new order)."""
        self._dirty = True
        if not self._stopped and self._desired is not None:
            self._wake_at(self.clock())

    # -- timers, timeouts and reconciliation ---------------------------------------------------

    def _wake_at(self, at_ns: int) -> None:
        if self._timer is not None:
            if self._timer_at_ns <= at_ns:
                return
            self._timer.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        delay = max(0.0, (at_ns - self.clock()) / _NS)
        self._timer_at_ns = at_ns
        self._timer = loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._dirty = True
        self.sync()

    def _schedule_deadlines(self, now: int) -> None:
        """Wake for the next order that ages out or whose in-flight state times out."""
        s = self.settings
        soonest = math.inf
        for order in self._orders.values():
            if order.in_flight:
                soonest = min(soonest, order.status_ns + s.order_timeout_ns)
            else:
                soonest = min(soonest, order.created_ns + s.max_order_age_ns)
        if soonest < math.inf:
            self._wake_at(max(now, int(soonest)))

    def _check_timeouts(self, now: int) -> None:
        if self._reconciling:
            return
        timeout = self.settings.order_timeout_ns
        if any(o.in_flight and now - o.status_ns >= timeout for o in self._orders.values()):
            self._reconciling = True
            self._spawn(self._reconcile_task())

    async def _reconcile_task(self) -> None:
        try:
            await self.reconcile()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001  a failed reconcile is retried at the next timeout
            log.warning("reconcile failed", venue=self.venue, error=str(exc))
            now = self.clock()
            for order in self._orders.values():
                if order.in_flight:
                    order.status_ns = now  # wait another timeout before asking again
        finally:
            self._reconciling = False
            self._poke()

    async def reconcile(self) -> None:
        """Align our view with the venue's open orders (startup, and after in-flight timeouts).

        Our orders the venue does not list are gone (cancelled, or never arrived); open orders
        with our prefix that we do not track are cancelled; orders the venue lists are open.
        """
        self.budget.charge(self._costs.query)
        venue_orders = await self.execution.open_orders(self.symbol)
        now = self.clock()
        listed = {u.client_order_id: u for u in venue_orders}
        for order in list(self._orders.values()):
            update = listed.get(order.client_order_id)
            if update is None:
                if order.status is not OrderStatus.PENDING_NEW or (
                    now - order.status_ns >= self.settings.order_timeout_ns
                ):
                    self._finish(order, OrderStatus.CANCELLED, now, "not open at the venue")
            else:
                order.filled_lots = max(order.filled_lots, update.filled_lots)
                if order.status is OrderStatus.PENDING_CANCEL:
                    if now - order.status_ns >= self.settings.order_timeout_ns:
                        self.budget.charge(self._costs.cancel)
                        self._send_cancel(order, now)  # the cancel was lost: send it again
                else:
                    order.status = OrderStatus.OPEN
                    order.status_ns = now
        for client_id in listed:
            if client_id.startswith(self._prefix) and client_id not in self._orders:
                self.budget.charge(self._costs.cancel)
                with contextlib.suppress(Exception):
                    await self.execution.cancel(self.symbol, client_id)

    def adopt(self, orders: list[OrderUpdate]) -> None:
        """Manage orders an earlier run of this instance left open: tracked as live, levels by
        distance from the touch (nearest first), so the next diff moves or cancels them as the
        quotes say."""
        now = self.clock()
        updates = {u.client_order_id: u for u in orders}
        for order in adopted_orders(orders, now):
            self._orders[order.client_order_id] = order
            if self.journal is not None:
                request = OrderRequest(
                    self.venue,
                    self.symbol,
                    order.client_order_id,
                    order.side,
                    order.price_ticks,
                    order.size_lots,
                    OrderType.LIMIT_MAKER,
                )
                self.journal.record_order(self.market, request, now, action="adopt")
                self.journal.record_order_update(self.market, updates[order.client_order_id])
        self._dirty = True

    # -- shutdown ------------------------------------------------------------------------------

    async def shutdown(self, timeout_s: float = 5.0) -> int:
        """Stop acting, cancel every open order of the symbol, and return how many stay open.

        Cancels all at the venue (one message where supported), then asks the venue what is
        still open; whatever is listed is cancelled one by one.
        """
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        async with asyncio.timeout(timeout_s):
            await self.drain()
            # Sent whatever the budget says: nothing must stay open.
            costs = self._costs
            self.budget.charge(costs.cancel)
            await self.execution.cancel_all(self.symbol)
            if self.metrics is not None:
                self.metrics.orders.labels(self.market, "cancel_all").inc()
            self.budget.charge(costs.query)
            remaining = await self.execution.open_orders(self.symbol)
            for update in remaining:
                self.budget.charge(costs.cancel)
                with contextlib.suppress(Exception):
                    await self.execution.cancel(self.symbol, update.client_order_id)
            self.budget.charge(costs.query)
            remaining = await self.execution.open_orders(self.symbol)
        now = self.clock()
        listed = {u.client_order_id for u in remaining}
        self.left_open = sorted(listed)
        for order in list(self._orders.values()):
            if order.client_order_id not in listed:
                self._finish(order, OrderStatus.CANCELLED, now, "shutdown")
        if self._om is not None:
            self._om.publish_open_orders(self._orders.values())
        return len(remaining)
