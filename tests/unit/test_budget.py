"""The order budget modelled on a venue's rate limits: windows, costs, priorities, what the venue
reports, back-off after a limit error."""

from __future__ import annotations

from mm_daemon.binance.limits import default_rate_limits
from mm_daemon.core.budget import (
    ActionCost,
    BudgetShares,
    LimitKind,
    OrderBudget,
    Priority,
    RateLimit,
)

NS = 1_000_000_000
T0 = 1_700_000_005 * NS  # mid-window: 2023-11-14 22:13:25 UTC
PLACE = ActionCost(orders=1, weight=1)
CANCEL = ActionCost(orders=0, weight=1)
ORDERS_10S = RateLimit(LimitKind.ORDERS, 10 * NS, 10)
WEIGHT_1M = RateLimit(LimitKind.REQUEST_WEIGHT, 60 * NS, 20)
ALL_USABLE = BudgetShares(usable_fraction=1.0, hedge_reserve_fraction=0.2, refresh_fraction=0.5)


def budget(*limits: RateLimit, shares: BudgetShares = ALL_USABLE) -> OrderBudget:
    return OrderBudget(limits or (ORDERS_10S,), shares)


def spend(b: OrderBudget, priority: Priority, cost: ActionCost, now: int) -> int:
    """How many `cost` actions `priority` gets before it is refused."""
    taken = 0
    while b.take(priority, cost, now):
        taken += 1
    return taken


def test_window_is_fixed_and_its_count_resets_when_the_next_one_starts() -> None:
    b = budget()
    start = T0 - T0 % (10 * NS)  # a 10 s window starts at :00, :10, :20...
    assert spend(b, Priority.HEDGE, PLACE, start + 9 * NS) == 10
    assert b.ns_until(Priority.HEDGE, PLACE, start + 9 * NS) == NS  # until the next window
    assert b.take(Priority.HEDGE, PLACE, start + 10 * NS)


def test_day_window_resets_at_midnight_utc() -> None:
    day = 86_400 * NS
    b = budget(RateLimit(LimitKind.ORDERS, day, 3))
    midnight = T0 - T0 % day + day
    assert spend(b, Priority.HEDGE, PLACE, midnight - NS) == 3
    assert not b.take(Priority.HEDGE, PLACE, midnight - 1)
    assert b.take(Priority.HEDGE, PLACE, midnight)


def test_a_cancel_costs_no_order_so_it_goes_when_no_order_is_left() -> None:
    b = budget(ORDERS_10S, WEIGHT_1M)
    spend(b, Priority.HEDGE, PLACE, T0)
    assert not b.allows(Priority.URGENT, PLACE, T0)
    assert b.take(Priority.URGENT, CANCEL, T0)


def test_hedges_may_use_the_reserve_quotes_may_not() -> None:
    b = budget()  # 10 usable, 2 reserved for hedges
    assert spend(b, Priority.STALE, PLACE, T0) == 8
    assert spend(b, Priority.HEDGE, PLACE, T0) == 2


def test_refreshes_stop_at_their_share_before_stale_quotes() -> None:
    b = budget()
    assert spend(b, Priority.REFRESH, PLACE, T0) == 5
    assert spend(b, Priority.STALE, PLACE, T0) == 3


def test_usable_fraction_keeps_headroom_below_the_venue_limit() -> None:
    b = budget(RateLimit(LimitKind.ORDERS, 10 * NS, 100), shares=BudgetShares())
    assert spend(b, Priority.HEDGE, PLACE, T0) == 90


def test_first_fill_of_an_order_gives_one_order_back_in_every_orders_window() -> None:
    day = RateLimit(LimitKind.ORDERS, 86_400 * NS, 1_000)
    b = budget(ORDERS_10S, day)
    spend(b, Priority.HEDGE, PLACE, T0)
    b.on_first_fill(T0)
    assert [u.used for u in b.usage(T0)] == [9, 9]
    assert b.take(Priority.HEDGE, PLACE, T0)


def test_venue_reported_order_count_replaces_ours_plus_orders_not_yet_answered() -> None:
    b = budget()
    for _ in range(3):
        b.take(Priority.STALE, PLACE, T0)
    b.on_answered(1)  # the first is answered: the venue counts it, and fills gave 2 back
    b.on_report(LimitKind.ORDERS, 10 * NS, 0, 10, T0)
    assert [u.used for u in b.usage(T0)] == [2]


def test_venue_reported_weight_never_lowers_ours() -> None:
    b = budget(WEIGHT_1M)
    for _ in range(5):
        b.take(Priority.STALE, CANCEL, T0)
    b.on_report(LimitKind.REQUEST_WEIGHT, 60 * NS, 3, 20, T0)
    assert [u.used for u in b.usage(T0)] == [5]
    b.on_report(LimitKind.REQUEST_WEIGHT, 60 * NS, 12, 20, T0)  # other programs on the IP
    assert [u.used for u in b.usage(T0)] == [12]


def test_reported_limit_replaces_the_assumed_one() -> None:
    b = budget()
    b.on_report(LimitKind.ORDERS, 10 * NS, 0, 50, T0)
    assert b.limits == (RateLimit(LimitKind.ORDERS, 10 * NS, 50),)


def test_pinned_limits_ignore_what_the_venue_publishes() -> None:
    b = OrderBudget((ORDERS_10S,), ALL_USABLE, pinned=True)
    b.adopt_limits(default_rate_limits("spot"))
    b.on_report(LimitKind.ORDERS, 10 * NS, 0, 50, T0)
    assert b.limits == (ORDERS_10S,)


def test_published_limits_replace_the_assumed_ones_and_windows_that_stay_keep_counts() -> None:
    b = budget(RateLimit(LimitKind.ORDERS, 10 * NS, 100))
    b.take(Priority.STALE, PLACE, T0)
    b.adopt_limits(default_rate_limits("usdm"))
    usage = {u.limit.label: (u.used, u.limit.limit) for u in b.usage(T0)}
    assert usage == {"weight_1m": (0, 2_400), "orders_1m": (0, 1_200), "orders_10s": (1, 300)}


def test_order_count_breach_stops_new_orders_until_retry_after_but_not_cancels() -> None:
    b = budget(ORDERS_10S, WEIGHT_1M)
    b.on_limit_error(T0, 3 * NS, orders_only=True)
    assert b.ns_until(Priority.HEDGE, PLACE, T0) == 3 * NS
    assert b.allows(Priority.URGENT, CANCEL, T0)
    assert b.allows(Priority.HEDGE, PLACE, T0 + 3 * NS)


def test_weight_breach_stops_every_request_until_retry_after() -> None:
    b = budget(ORDERS_10S, WEIGHT_1M)
    b.on_limit_error(T0, 2 * NS, orders_only=False)
    assert not b.allows(Priority.URGENT, CANCEL, T0)
    assert b.blocked_ns(T0 + NS) == NS
    assert b.allows(Priority.URGENT, CANCEL, T0 + 2 * NS)


def test_weight_window_lets_urgent_cancels_use_the_whole_limit() -> None:
    b = budget(WEIGHT_1M, shares=BudgetShares(usable_fraction=0.5))
    assert spend(b, Priority.STALE, CANCEL, T0) == 10
    assert spend(b, Priority.URGENT, CANCEL, T0) == 10


def test_window_labels_name_kind_and_interval() -> None:
    labels = [limit.label for limit in default_rate_limits("spot")]
    assert labels == ["weight_1m", "orders_10s", "orders_1d"]
