"""An account's order budget modelled on the venue's own rate limits, spent by priority.

Pure: time comes in as ns arguments (the venue's time: windows are aligned on its clock).

A venue publishes limits per window (Binance: `exchangeInfo.rateLimits`): how many new orders an
account may place per 10 s, per minute or per day (`ORDERS`), and how much request weight an IP
may spend per minute (`REQUEST_WEIGHT`). Windows are fixed, not rolling: a 10 s window starts at
:00, :10, :20... of each minute, a day at 00:00 UTC, so each window's count resets when the
next one starts. Every action has a cost in each kind (`ActionCost`): on Binance spot a new
order or a cancel-replace is one order and one weight, a cancel is no order and one weight.

The budget counts what this account spent (`take`, `charge`), gives back an order when one of
its orders first fills (`on_first_fill`: Binance spot does not count orders that trade), and
follows what the venue reports (`on_report`: the counts in every response, which also see the
orders of other programs on the account and the decrements the venue grants), plus the orders
still on their way (sent, not yet answered).

Priorities, when the budget runs short (a lower value goes first):
- URGENT: cancelling a quote the market has moved through; costs no order, so it never waits
  for the order count, and may use the whole weight limit;
- HEDGE: hedge orders, which may use the usable share of every window (`usable_fraction`);
- STALE: replacing a quote whose price is off beyond tolerance, placing a missing quote: the
  usable share less the hedges' reserve (`hedge_reserve_fraction`);
- REFRESH: replacing a quote only for its size or age: at most `refresh_fraction` of the
  usable share, so refreshes are deferred first.

After a limit error the venue says how long to wait (`on_limit_error`): an order-count breach
stops new orders until then (cancels go on); a weight breach or a ban stops every request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum, StrEnum

__all__ = [
    "ActionCost",
    "BudgetShares",
    "LimitKind",
    "OrderBudget",
    "Priority",
    "RateLimit",
    "WindowUsage",
]

_NS = 1_000_000_000
_UNITS = ((86_400, "d"), (3_600, "h"), (60, "m"), (1, "s"))


class LimitKind(StrEnum):
    ORDERS = "orders"
    REQUEST_WEIGHT = "weight"


class Priority(IntEnum):
    """The order in which actions get the budget when it is short; the name is the label."""

    URGENT = 0
    HEDGE = 1
    STALE = 2
    REFRESH = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One of the venue's limits: at most `limit` units of `kind` per fixed window."""

    kind: LimitKind
    interval_ns: int
    limit: int

    @property
    def label(self) -> str:
        """`orders_10s`, `orders_1d`, `weight_1m`: the window's metric label."""
        seconds = self.interval_ns // _NS
        for unit_s, letter in _UNITS:
            if seconds % unit_s == 0:
                return f"{self.kind.value}_{seconds // unit_s}{letter}"
        return f"{self.kind.value}_{self.interval_ns}ns"


@dataclass(frozen=True, slots=True)
class ActionCost:
    """What one request spends: new orders (`ORDERS` windows) and request weight."""

    orders: int = 0
    weight: int = 0

    def of(self, kind: LimitKind) -> int:
        return self.orders if kind is LimitKind.ORDERS else self.weight


@dataclass(frozen=True, slots=True)
class BudgetShares:
    """How much of each window the priorities may use (see the module docstring)."""

    usable_fraction: float = 0.9
    hedge_reserve_fraction: float = 0.2
    refresh_fraction: float = 0.5

    def __post_init__(self) -> None:
        for name in ("usable_fraction", "hedge_reserve_fraction", "refresh_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {value}")
        if self.usable_fraction <= 0:
            raise ValueError("usable_fraction must be positive")


@dataclass(frozen=True, slots=True)
class WindowUsage:
    """A window's state now: what it allows and what is counted in it."""

    limit: RateLimit
    used: int


class _Window:
    __slots__ = ("caps", "count", "limit", "start_ns")

    def __init__(self, limit: RateLimit, shares: BudgetShares) -> None:
        self.limit = limit
        self.start_ns = -1
        self.count = 0
        self.caps = _caps(limit, shares)

    def roll(self, now_ns: int) -> bool:
        """Start the window `now_ns` falls in if it is a new one (True then)."""
        start = now_ns - now_ns % self.limit.interval_ns
        if start == self.start_ns:
            return False
        self.start_ns = start
        self.count = 0
        return True

    def end_ns(self) -> int:
        return self.start_ns + self.limit.interval_ns


def _caps(limit: RateLimit, shares: BudgetShares) -> tuple[int, int, int, int]:
    """The most each priority may bring the window's count to (URGENT, HEDGE, STALE, REFRESH)."""
    full = limit.limit
    usable = max(1, math.floor(full * shares.usable_fraction)) if full > 0 else 0
    if limit.kind is LimitKind.REQUEST_WEIGHT:
        return full, usable, usable, usable
    stale = max(1, usable - math.ceil(usable * shares.hedge_reserve_fraction)) if usable else 0
    refresh = min(stale, max(1, math.floor(usable * shares.refresh_fraction))) if usable else 0
    return full, usable, stale, refresh


class OrderBudget:
    """The windows of one account on one venue, and the rules above (pure)."""

    __slots__ = (
        "_all_blocked_until_ns",
        "_in_flight_orders",
        "_orders_blocked_until_ns",
        "_pinned",
        "_windows",
        "shares",
    )

    def __init__(
        self,
        limits: tuple[RateLimit, ...],
        shares: BudgetShares | None = None,
        *,
        pinned: bool = False,
    ) -> None:
        """`pinned`: the limits are the user's (config); the venue's published or reported
        limits do not replace them."""
        self.shares = shares or BudgetShares()
        self._windows: list[_Window] = [_Window(limit, self.shares) for limit in limits]
        self._pinned = pinned
        self._in_flight_orders = 0
        self._orders_blocked_until_ns = 0
        self._all_blocked_until_ns = 0

    @property
    def limits(self) -> tuple[RateLimit, ...]:
        return tuple(w.limit for w in self._windows)

    # -- spending ---------------------------------------------------------------------------------

    def allows(self, priority: Priority, cost: ActionCost, now_ns: int) -> bool:
        """Whether an action of `priority` costing `cost` may be sent now."""
        return self.ns_until(priority, cost, now_ns) == 0

    def take(self, priority: Priority, cost: ActionCost, now_ns: int) -> bool:
        """Spend `cost` if `priority` may send it now; False (nothing spent) otherwise."""
        if not self.allows(priority, cost, now_ns):
            return False
        self.charge(cost, now_ns)
        return True

    def charge(self, cost: ActionCost, now_ns: int) -> None:
        """Count `cost` whatever the budget says (a request that is sent anyway)."""
        for window in self._windows:
            if window.roll(now_ns) and window.limit.kind is LimitKind.ORDERS:
                # An answer lost with its connection never comes: what is still counted as
                # on its way starts again at each new window.
                self._in_flight_orders = 0
            window.count += cost.of(window.limit.kind)
        self._in_flight_orders += cost.orders

    def ns_until(self, priority: Priority, cost: ActionCost, now_ns: int) -> int:
        """How long until `priority` may send `cost` (0: now). An action no window could ever
        take waits for the longest window to roll over."""
        wait = 0
        if now_ns < self._all_blocked_until_ns:
            wait = self._all_blocked_until_ns - now_ns
        if cost.orders and now_ns < self._orders_blocked_until_ns:
            wait = max(wait, self._orders_blocked_until_ns - now_ns)
        for window in self._windows:
            units = cost.of(window.limit.kind)
            if not units:
                continue
            window.roll(now_ns)
            if window.count + units > window.caps[priority]:
                wait = max(wait, window.end_ns() - now_ns)
        return wait

    # -- what the venue says ----------------------------------------------------------------------

    def on_first_fill(self, now_ns: int) -> None:
        """One of our orders traded for the first time: the venue stops counting it."""
        for window in self._windows:
            if window.limit.kind is LimitKind.ORDERS:
                window.roll(now_ns)
                window.count = max(0, window.count - 1)

    def on_answered(self, orders: int) -> None:
        """The venue answered a request that cost `orders` (it is in its counts from now on)."""
        self._in_flight_orders = max(0, self._in_flight_orders - orders)

    def on_report(
        self, kind: LimitKind, interval_ns: int, count: int, limit: int, now_ns: int
    ) -> None:
        """The venue's count of one window as of its latest answer. Order counts follow the
        venue (plus our orders it has not answered yet); weight never falls below ours (other
        programs on the IP spend it too, none gives it back)."""
        window = self._window(kind, interval_ns)
        if window is None:
            if self._pinned or limit <= 0:
                return
            window = _Window(RateLimit(kind, interval_ns, limit), self.shares)
            self._windows.append(window)
        elif limit > 0 and limit != window.limit.limit and not self._pinned:
            window.limit = RateLimit(kind, interval_ns, limit)
            window.caps = _caps(window.limit, self.shares)
        window.roll(now_ns)
        if kind is LimitKind.ORDERS:
            window.count = count + self._in_flight_orders
        else:
            window.count = max(window.count, count)

    def adopt_limits(self, limits: tuple[RateLimit, ...]) -> None:
        """The venue's published limits replace the assumed ones (unless pinned); counts of
        windows that stay are kept."""
        if self._pinned or not limits:
            return
        kept = {(w.limit.kind, w.limit.interval_ns): w for w in self._windows}
        windows = []
        for limit in limits:
            window = kept.get((limit.kind, limit.interval_ns)) or _Window(limit, self.shares)
            window.limit = limit
            window.caps = _caps(limit, self.shares)
            windows.append(window)
        self._windows = windows

    def on_limit_error(self, now_ns: int, retry_after_ns: int, *, orders_only: bool) -> None:
        """The venue refused for a limit: no new order (`orders_only`) or no request at all
        until `retry_after_ns` from now."""
        until = now_ns + max(0, retry_after_ns)
        if orders_only:
            self._orders_blocked_until_ns = max(self._orders_blocked_until_ns, until)
        else:
            self._all_blocked_until_ns = max(self._all_blocked_until_ns, until)

    # -- reading ----------------------------------------------------------------------------------

    def usage(self, now_ns: int) -> list[WindowUsage]:
        out = []
        for window in self._windows:
            window.roll(now_ns)
            out.append(WindowUsage(window.limit, window.count))
        return out

    def blocked_ns(self, now_ns: int) -> int:
        """How long every request must still wait after a weight breach or a ban (0: none)."""
        return max(0, self._all_blocked_until_ns - now_ns)

    def _window(self, kind: LimitKind, interval_ns: int) -> _Window | None:
        for window in self._windows:
            if window.limit.kind is kind and window.limit.interval_ns == interval_ns:
                return window
        return None
