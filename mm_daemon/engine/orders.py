"""The order manager: keeps the venue's live orders close to the desired quotes, with little churn.

`set_desired(quotes, ...)` is called synchronously on every requote (from the market or fill
sink); it diffs the desired quotes against our live orders at once and hands the resulting
actions to the `Execution` (each call runs as its own task, so a slow acknowledgement never
blocks the next decision). What it does per side and level:

- no live order at a desired level: place one (never more live orders per side than
  `max_open_orders_per_side`; an order being cancelled still counts);
- a live order at a desired level: left alone unless its price is off by at least the price
  tolerance (the larger of `price_tolerance_ticks` and `price_tolerance_bps` of the price, and
  at least one tick), its remaining size is off by more than `size_tolerance_fraction`, or it is
  older than `max_order_age_seconds`; then replaced with one cancel-replace;
- a live order with no desired level: cancelled;
- an order in flight (pending new or pending cancel) is left alone until the venue answers or
  `order_timeout_seconds` passes; then the venue's open orders are fetched and our view is
  reconciled with them.

Rate limits: a token bucket per venue. Cancels go first, then replaces, then new orders, nearest
level first. Actions the bucket cannot pay for now are not queued: the manager wakes when a token
is due and diffs again against the latest desired quotes, so a burst of events collapses into the
latest desired state.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from mm_daemon.aio import start_eagerly
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
from mm_daemon.engine.ratelimit import TokenBucket

if TYPE_CHECKING:
    from mm_daemon.config import QuotingConfig, RiskConfig, VenueConfig
    from mm_daemon.core.quoting import Quote, Quotes
    from mm_daemon.core.risk import RiskGate
    from mm_daemon.core.types import Instrument
    from mm_daemon.engine.journal import Journal
    from mm_daemon.engine.metrics import Metrics
    from mm_daemon.venues.base import Execution

__all__ = [
    "REJECT_REASONS",
    "LiveOrder",
    "OrderManager",
    "OrderManagerSettings",
    "hedge_prefix",
    "instance_root",
    "new_client_id_prefix",
    "quote_prefix",
    "reject_reason_label",
    "run_prefix",
]

log = structlog.get_logger(__name__)

_NS = 1_000_000_000
_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_LIVE = frozenset(
    {
        OrderStatus.PENDING_NEW,
        OrderStatus.OPEN,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PENDING_CANCEL,
    }
)
_RANK = {  # how far along an order's life a status is; updates never move an order backwards
    OrderStatus.PENDING_NEW: 0,
    OrderStatus.OPEN: 1,
    OrderStatus.PARTIALLY_FILLED: 2,
    OrderStatus.PENDING_CANCEL: 3,
    OrderStatus.FILLED: 4,
    OrderStatus.CANCELLED: 4,
    OrderStatus.REJECTED: 4,
    OrderStatus.EXPIRED: 4,
}
_RECENT_TERMINAL_KEPT = 256  # finished orders remembered for late fills and updates


def new_client_id_prefix() -> str:
    """A short random prefix naming this run's orders (venue-legal: [a-z0-9])."""
    raw = int.from_bytes(os.urandom(4), "big")
    return "mm" + _base36(raw)[:6]


# Client order ids of a daemon with a journal: `<root><run>_q<market>-<n>` for quotes and
# `<root><run>_h<asset>-<n>` for hedges. The root (6 characters, from the instance id) is the
# same at every start, so a restart knows the orders of each earlier run as its own; the run
# (the journal's run id) tells this run's from theirs. At most about 24 characters: Binance
# takes 36 of [.A-Z:/a-z0-9_-].


def instance_root(instance_id: str) -> str:
    """The part every client order id of every run of `instance_id` starts with."""
    digest = int.from_bytes(hashlib.sha256(instance_id.encode()).digest()[:8], "big")
    return "m" + _base36(digest)[-5:].rjust(5, "0")


def run_prefix(root: str, run_id: int) -> str:
    return f"{root}{_base36(run_id)}_"


def quote_prefix(run: str, market_index: int) -> str:
    """The order manager's prefix of market `market_index` (its ids add `-<n>`)."""
    return f"{run}q{_base36(market_index)}"


def hedge_prefix(run: str, asset_index: int) -> str:
    """The hedger's prefix of asset book `asset_index` (its ids add `<n>`)."""
    return f"{run}h{_base36(asset_index)}-"


def _base36(value: int) -> str:
    if value == 0:
        return "0"
    digits = []
    while value:
        value, rem = divmod(value, 36)
        digits.append(_ID_ALPHABET[rem])
    return "".join(reversed(digits))


@dataclass(frozen=True, slots=True)
class OrderManagerSettings:
    """The manager's knobs in plain values (`from_config` reads them from the YAML)."""

    price_tolerance_ticks: int = 1
    price_tolerance_bps: float = 0.0
    size_tolerance_fraction: float = 0.2
    max_order_age_ns: int = 60 * _NS
    order_timeout_ns: int = 5 * _NS
    debounce_ns: int = 0
    max_open_orders_per_side: int = 5
    rate_limit_orders_per_second: float = 10.0
    rate_limit_burst_orders: int = 20

    @classmethod
    def from_config(
        cls, quoting: QuotingConfig, risk: RiskConfig, venue: VenueConfig
    ) -> OrderManagerSettings:
        return cls(
            price_tolerance_ticks=quoting.price_tolerance_ticks,
            price_tolerance_bps=quoting.price_tolerance_bps,
            size_tolerance_fraction=quoting.size_tolerance_fraction,
            max_order_age_ns=int(quoting.max_order_age_seconds * _NS),
            order_timeout_ns=int(quoting.order_timeout_seconds * _NS),
            debounce_ns=int(quoting.debounce_seconds * _NS),
            max_open_orders_per_side=risk.max_open_orders_per_side,
            rate_limit_orders_per_second=venue.rate_limit_orders_per_second,
            rate_limit_burst_orders=venue.rate_limit_burst_orders,
        )


@dataclass(slots=True)
class LiveOrder:
    """Our view of one order."""

    client_order_id: str
    side: Side
    level: int
    price_ticks: int
    size_lots: int
    status: OrderStatus
    created_ns: int
    status_ns: int  # when the status last changed (in-flight timeouts run from here)
    filled_lots: int = 0  # cumulative, the larger of what updates and fills say
    fills_lots: int = 0  # sum of the Fill events seen
    exchange_order_id: str = ""
    reason: str = ""

    @property
    def remaining_lots(self) -> int:
        return max(0, self.size_lots - self.filled_lots)

    @property
    def in_flight(self) -> bool:
        status = self.status
        return status is OrderStatus.PENDING_NEW or status is OrderStatus.PENDING_CANCEL

    @property
    def live(self) -> bool:
        return self.status in _LIVE


Spawn = Callable[[Coroutine[Any, Any, None]], object]


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
        self._bucket = TokenBucket(
            settings.rate_limit_orders_per_second, settings.rate_limit_burst_orders, clock()
        )
        self._orders: dict[str, LiveOrder] = {}
        self._finished: dict[str, LiveOrder] = {}
        self._stray_cancelled: set[str] = set()  # our ids found live after we gave them up
        self._desired: Quotes | None = None
        self._fair_ticks = 0.0
        self._net_exposure_base = 0.0
        self._event_ts_ns = 0  # receipt time of the event behind the pending desired state
        self._last_sync_ns = -(1 << 62)
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at_ns = 0
        self._reconciling = False
        self._post_only_blocked: set[Side] = set()
        self._stopped = False
        self.left_open: list[str] = []  # client ids still open at the venue after shutdown
        self.rate_limited_count = 0
        self._quote_gauges: dict[tuple[Side, int], Any] = {}
        self._published: object = None
        self._synced_key: object = None  # (bids, asks) as last diffed
        self._dirty = True  # something besides the quotes changed since the last diff
        self._published_counts: tuple[int, int] | None = None
        self._tick_size = instrument.tick_size
        self._price_decimals = instrument.price_decimals
        if metrics is not None:
            self._m_place = metrics.orders.labels(self.market, "place")
            self._m_replace = metrics.orders.labels(self.market, "replace")
            self._m_cancel = metrics.orders.labels(self.market, "cancel")
            self._m_t2q = metrics.tick_to_quote.labels(self.market)
            self._m_rate_limited = metrics.rate_limited.labels(self.venue)
            self._m_open_buy = metrics.open_orders.labels(self.market, "buy")
            self._m_open_sell = metrics.open_orders.labels(self.market, "sell")

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
    ) -> None:
        """Take the latest desired quotes and act on them now (or when debounce/limits allow).

        `event_ts_ns` is the local receipt time of the event that caused this requote (for the
        tick-to-quote histogram); 0 skips the measurement.
        """
        if self._post_only_blocked:
            self._post_only_blocked.clear()  # a new market event: the view may have caught up
            self._dirty = True
        self._desired = quotes
        self._fair_ticks = fair_ticks
        self._net_exposure_base = net_exposure_base
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
        if self.metrics is not None:  # after the requests: off the tick-to-quote path
            self._publish_quotes(quotes)

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
        replaces.sort(key=lambda pair: pair[1].level)
        places.sort(key=lambda q: q.level)
        sent = 0
        blocked = False
        first_sent_ns = 0
        for order in cancels:
            if not self._bucket.try_take(now):
                blocked = True
                break
            self._send_cancel(order, now)
            sent += 1
            first_sent_ns = first_sent_ns or self.clock()
        if not blocked:
            for order, quote in replaces:
                if not self._bucket.try_take(now):
                    blocked = True
                    break
                if self._send_replace(order, quote, now):
                    sent += 1
                    first_sent_ns = first_sent_ns or self.clock()
        if not blocked:
            for quote in places:
                if not self._bucket.try_take(now):
                    blocked = True
                    break
                if self._send_place(quote, now):
                    sent += 1
                    first_sent_ns = first_sent_ns or self.clock()
        if sent and self._event_ts_ns:
            # Tick-to-quote: the event's receipt to the first request handed to the venue.
            if self.metrics is not None:
                self._m_t2q.observe(max(0, first_sent_ns - self._event_ts_ns) / _NS)
            self._event_ts_ns = 0
        elif not (cancels or replaces or places):
            self._event_ts_ns = 0  # nothing to do for that event
        if blocked:
            self._dirty = True  # the rest waits for tokens
            self.rate_limited_count += 1
            if self.metrics is not None:
                self._m_rate_limited.inc()
            self._wake_at(now + self._bucket.ns_until(now))
        # After the requests: looking for in-flight orders past their timeout is bookkeeping,
        # not on the way from the event to the venue.
        self._check_timeouts(now)
        self._schedule_deadlines(now)
        if self.metrics is not None:
            self._publish_open_orders()

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
        if side in self._post_only_blocked:
            return
        room = self.settings.max_open_orders_per_side - live_count
        room += len(cancels) - cancels_before
        for quote in quotes:
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

    def _risk_ok(self, request: OrderRequest, replacing: LiveOrder | None) -> bool:
        if self.risk is None:
            return True
        same_side = sum(
            1
            for o in self._orders.values()
            if o.side is request.side
            and o is not replacing
            and o.status is not OrderStatus.PENDING_CANCEL
        )
        reason = self.risk.check(
            request, self._fair_ticks, same_side, net_exposure_base=self._net_exposure_base
        )
        if reason is None:
            return True
        if self.metrics is not None:
            self.metrics.order_rejects.labels(self.venue, f"risk_{reason}").inc()
        return False

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
        if not self._risk_ok(request, None):
            return False
        self._track(request, quote.level, now)  # first: the send below may answer at once
        self._spawn(self._call(self.execution.place(request), request.client_order_id))
        if self.metrics is not None:
            self._m_place.inc()
        if self.journal is not None:  # buffered, after the send: off the reaction path
            self.journal.record_order(self.market, request, now)
        return True

    def _send_replace(self, order: LiveOrder, quote: Quote, now: int) -> bool:
        request = self._request(quote, now)
        if not self._risk_ok(request, order):
            # The old order no longer matches what we want: take it off the book.
            self._send_cancel(order, now)
            return True
        order.status = OrderStatus.PENDING_CANCEL
        order.status_ns = now
        self._track(request, quote.level, now)  # first: the send below may answer at once
        coro = self.execution.replace(order.client_order_id, request)
        self._spawn(self._call(coro, request.client_order_id))
        if self.metrics is not None:
            self._m_replace.inc()
        if self.journal is not None:
            self.journal.record_cancel(self.market, self._cancel_of(order), now, reason="replace")
            self.journal.record_order(self.market, request, now, action="replace")
        return True

    def _send_cancel(self, order: LiveOrder, now: int) -> None:
        order.status = OrderStatus.PENDING_CANCEL
        order.status_ns = now
        if self.metrics is not None:
            self._m_cancel.inc()
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
            # Our book is behind the venue's: sending the same price again from the same view
            # would be refused again. That side waits for the next market event.
            self._post_only_blocked.add(order.side)

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
        elif _RANK[status] >= _RANK[order.status]:
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
        if self.metrics is not None:
            self._m_cancel.inc()
        self._spawn(self._call(self.execution.cancel(self.symbol, client_order_id), None))

    def _on_fill(self, fill: Fill) -> None:
        order = self._orders.get(fill.client_order_id)
        if order is None:
            return  # finished already (a late fill changes no order state), or not ours
        # Fills and cumulative order updates may arrive in either order: take the larger.
        order.fills_lots += fill.size_lots
        order.filled_lots = max(order.filled_lots, order.fills_lots)
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
                        self._send_cancel(order, now)  # the cancel was lost: send it again
                else:
                    order.status = OrderStatus.OPEN
                    order.status_ns = now
        for client_id in listed:
            if client_id.startswith(self._prefix) and client_id not in self._orders:
                with contextlib.suppress(Exception):
                    await self.execution.cancel(self.symbol, client_id)

    def adopt(self, orders: list[OrderUpdate]) -> None:
        """Manage orders an earlier run of this instance left open: tracked as live, levels by
        distance from the touch (nearest first), so the next diff moves or cancels them as the
        quotes say."""
        now = self.clock()
        for side in (Side.BUY, Side.SELL):
            mine = sorted(
                (u for u in orders if u.side is side and not u.status.is_terminal),
                key=lambda u: -u.price_ticks if side is Side.BUY else u.price_ticks,
            )
            for level, update in enumerate(mine):
                self._orders[update.client_order_id] = LiveOrder(
                    update.client_order_id,
                    side,
                    level,
                    update.price_ticks,
                    update.size_lots,
                    OrderStatus.OPEN if update.filled_lots == 0 else OrderStatus.PARTIALLY_FILLED,
                    now,
                    now,
                    filled_lots=update.filled_lots,
                    fills_lots=update.filled_lots,
                    exchange_order_id=update.exchange_order_id,
                )
                if self.journal is not None:
                    request = OrderRequest(
                        self.venue,
                        self.symbol,
                        update.client_order_id,
                        side,
                        update.price_ticks,
                        update.size_lots,
                        OrderType.LIMIT_MAKER,
                    )
                    self.journal.record_order(self.market, request, now, action="adopt")
                    self.journal.record_order_update(self.market, update)
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
            await self.execution.cancel_all(self.symbol)
            if self.metrics is not None:
                self.metrics.orders.labels(self.market, "cancel_all").inc()
            remaining = await self.execution.open_orders(self.symbol)
            for update in remaining:
                with contextlib.suppress(Exception):
                    await self.execution.cancel(self.symbol, update.client_order_id)
            remaining = await self.execution.open_orders(self.symbol)
        now = self.clock()
        listed = {u.client_order_id for u in remaining}
        self.left_open = sorted(listed)
        for order in list(self._orders.values()):
            if order.client_order_id not in listed:
                self._finish(order, OrderStatus.CANCELLED, now, "shutdown")
        if self.metrics is not None:
            self._publish_open_orders()
        return len(remaining)

    # -- metrics -------------------------------------------------------------------------------

    def _publish_quotes(self, quotes: Quotes) -> None:
        """Quote gauges, set only when a quoted price changed (most events change none)."""
        assert self.metrics is not None  # noqa: S101  only called when metrics are set
        published = (quotes.bids, quotes.asks)
        if published == self._published:
            return
        self._published = published
        for quote in quotes.bids + quotes.asks:
            key = (quote.side, quote.level)
            gauge = self._quote_gauges.get(key)
            if gauge is None:
                gauge = self.metrics.quote_price.labels(
                    self.market, quote.side.name.lower(), str(quote.level)
                )
                self._quote_gauges[key] = gauge
            gauge.set(round(quote.price_ticks * self._tick_size, self._price_decimals))
        if quotes.bids and quotes.asks:
            bid = quotes.bids[0].price_ticks
            ask = quotes.asks[0].price_ticks
            mid = (bid + ask) / 2.0
            self.metrics.quoted_spread_bps.labels(self.market).set((ask - bid) / mid * 1e4)

    def _publish_open_orders(self) -> None:
        """Open-order gauges, set only when a count changed."""
        assert self.metrics is not None  # noqa: S101  only called when metrics are set
        bids = sum(1 for o in self._orders.values() if o.side is Side.BUY)
        counts = (bids, len(self._orders) - bids)
        if counts == self._published_counts:
            return
        self._published_counts = counts
        self._m_open_buy.set(counts[0])
        self._m_open_sell.set(counts[1])


REJECT_REASONS = ("post_only", "rate_limit", "balance", "filter", "other", "error")
"""Every label `reject_reason_label` gives, plus "error" for a send that failed outright."""


def reject_reason_label(reason: str) -> str:
    """A short, bounded metric label from a venue's reject text."""
    text = reason.lower()
    if "post" in text or "immediately match" in text or "would cross" in text:
        return "post_only"
    if "rate" in text or "too many" in text:
        return "rate_limit"
    if "balance" in text or "insufficient" in text:
        return "balance"
    if "notional" in text or "lot" in text or "filter" in text:
        return "filter"
    return "other"
