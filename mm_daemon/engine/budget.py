"""One venue account's order budget, shared by every market quoted there and by the hedges sent
there: the pure model (`core.budget.OrderBudget`) on the venue's clock, with its metrics.

The order managers of the venue's markets and the asset books hedging there ask it before each
action (`try_take`); the venue's order entry tells it what the venue says (it is the
`RateLimitObserver` of a native Binance order entry: published limits, the counts in every
answer, limit errors and their back-off, the clock offset); fills of our orders give orders back
(`on_first_fill`). Actions that cannot be paid for now are not queued: the caller wakes when the
budget allows (`ns_until`), and whoever was deferred is woken early when the venue gives orders
back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from mm_daemon.binance.limits import ORDER_COSTS, OrderCosts, default_rate_limits
from mm_daemon.binance.markets import DIALECTS
from mm_daemon.core.budget import (
    ActionCost,
    BudgetShares,
    LimitKind,
    OrderBudget,
    Priority,
    RateLimit,
    WindowUsage,
)
from mm_daemon.log import get_logger

if TYPE_CHECKING:
    from mm_daemon.config import VenueConfig
    from mm_daemon.engine.metrics import Metrics

__all__ = ["GENERIC_COSTS", "GENERIC_LIMITS", "VenueBudget"]

log = get_logger(__name__)

_NS = 1_000_000_000
GENERIC_LIMITS = (RateLimit(LimitKind.ORDERS, _NS, 10),)
"""A venue whose limits the project does not know, and the config does not give: 10 orders a
second (Bybit's per-symbol order rate at its base tier)."""
GENERIC_COSTS = OrderCosts(ActionCost(1, 1), ActionCost(1, 1), ActionCost(1, 1), ActionCost(0, 1))
"""Without the venue's rules every action counts as an order."""


class VenueBudget:
    """The order budget of one venue account (see the module docstring)."""

    def __init__(
        self,
        venue: str,
        limits: tuple[RateLimit, ...],
        costs: OrderCosts,
        *,
        shares: BudgetShares | None = None,
        pinned: bool = False,
        metrics: Metrics | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.venue = venue
        self.costs = costs
        self.model = OrderBudget(limits, shares, pinned=pinned)
        self.metrics = metrics
        self._clock = clock
        self.offset_ns = 0  # the venue's clock minus ours
        self.deferred: dict[Priority, int] = dict.fromkeys(Priority, 0)
        self.limit_errors = 0
        self._waiting: dict[int, Callable[[], None]] = {}
        if metrics is not None:
            self._m_deferred = {
                p: metrics.order_actions_deferred.labels(venue, p.label) for p in Priority
            }
            self.publish()

    @classmethod
    def for_venue(
        cls,
        venue: VenueConfig,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> VenueBudget:
        """The budget of `venue`: its configured limits, else the published limits of its
        Binance dialect (replaced by what the venue publishes once it is connected)."""
        config = venue.order_budget
        dialect = DIALECTS.get(venue.exchange)
        pinned = bool(config.rate_limits)
        if pinned:
            limits = tuple(
                RateLimit(LimitKind(r.kind), r.interval_seconds * _NS, r.limit)
                for r in config.rate_limits
            )
        elif dialect is not None:
            limits = default_rate_limits(dialect)
        else:
            limits = GENERIC_LIMITS
        return cls(
            venue.name,
            limits,
            ORDER_COSTS[dialect] if dialect is not None else GENERIC_COSTS,
            shares=BudgetShares(
                config.usable_fraction,
                config.hedge_reserve_fraction,
                config.refresh_fraction,
            ),
            pinned=pinned,
            metrics=metrics,
            clock=clock,
        )

    @classmethod
    def unlimited(cls, venue: str, clock: Callable[[], int] = time.time_ns) -> VenueBudget:
        """A budget that never runs short (tests, and replays of recorded markets)."""
        huge = RateLimit(LimitKind.ORDERS, _NS, 1 << 40)
        return cls(venue, (huge,), ORDER_COSTS["spot"], clock=clock)

    # -- spending -------------------------------------------------------------------------------

    def now_ns(self) -> int:
        """The venue's time (its windows start on its clock)."""
        return self._clock() + self.offset_ns

    def try_take(self, priority: Priority, cost: ActionCost, waiter: object = None) -> bool:
        """Spend `cost` for an action of `priority` if the budget allows it now; otherwise
        count it deferred and, with a `waiter` (an object with a `budget_freed()` method),
        wake it when the venue gives orders back."""
        if self.model.take(priority, cost, self.now_ns()):
            return True
        self.defer(priority, waiter)
        return False

    def allows(self, priority: Priority, cost: ActionCost) -> bool:
        return self.model.allows(priority, cost, self.now_ns())

    def charge(self, cost: ActionCost) -> None:
        """Count a request sent whatever the budget says (queries, shutdown cancels)."""
        self.model.charge(cost, self.now_ns())

    def defer(self, priority: Priority, waiter: object = None) -> None:
        self.deferred[priority] += 1
        if self.metrics is not None:
            self._m_deferred[priority].inc()
        callback = getattr(waiter, "budget_freed", None)
        if callback is not None:
            self._waiting[id(waiter)] = callback

    def ns_until(self, priority: Priority, cost: ActionCost) -> int:
        """How long (local ns) until `priority` may send `cost`."""
        return self.model.ns_until(priority, cost, self.now_ns())

    def on_first_fill(self) -> None:
        """One of our orders on this venue traded for the first time."""
        self.model.on_first_fill(self.now_ns())
        self._wake_waiting()

    # -- RateLimitObserver: what the venue says -----------------------------------------------

    def on_limits(self, limits: tuple[RateLimit, ...]) -> None:
        self.model.adopt_limits(limits)
        log.info(
            "venue_rate_limits",
            venue=self.venue,
            limits={u.limit.label: u.limit.limit for u in self.model.usage(self.now_ns())},
        )
        self.publish()

    def on_usage(self, usage: list[tuple[RateLimit, int]], answered_orders: int) -> None:
        if answered_orders:
            self.model.on_answered(answered_orders)
        now = self.now_ns()
        freed = False
        for limit, count in usage:
            before = self._count(limit)
            self.model.on_report(limit.kind, limit.interval_ns, count, limit.limit, now)
            after = self._count(limit)
            freed = freed or (before is not None and after is not None and after < before)
        if freed:
            self._wake_waiting()

    def on_limit_error(self, retry_after_ns: int, *, orders_only: bool) -> None:
        self.limit_errors += 1
        self.model.on_limit_error(self.now_ns(), retry_after_ns, orders_only=orders_only)
        log.warning(
            "venue_rate_limited",
            venue=self.venue,
            retry_after_seconds=round(retry_after_ns / _NS, 3),
            orders_only=orders_only,
        )

    def on_time_offset(self, offset_ns: int) -> None:
        self.offset_ns = offset_ns

    # -- reading --------------------------------------------------------------------------------

    def usage(self) -> list[WindowUsage]:
        return self.model.usage(self.now_ns())

    def publish(self) -> None:
        """The windows' used and limit gauges (from the daemon's timer)."""
        metrics = self.metrics
        if metrics is None:
            return
        for window in self.usage():
            label = window.limit.label
            metrics.order_budget_used.labels(self.venue, label).set(window.used)
            metrics.order_budget_limit.labels(self.venue, label).set(window.limit.limit)

    def _count(self, limit: RateLimit) -> int | None:
        for window in self.model.usage(self.now_ns()):
            if window.limit.kind is limit.kind and window.limit.interval_ns == limit.interval_ns:
                return window.used
        return None

    def _wake_waiting(self) -> None:
        if not self._waiting:
            return
        waiting = list(self._waiting.values())
        self._waiting.clear()
        for callback in waiting:
            callback()
