"""Exposure: a quote the market has moved through is filled by the flow that picks it off."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mm_daemon.core.exposure import AggressiveFlow, ExposureModel, ExposureParams
from mm_daemon.core.queue import QueueFill, QueueFillModel
from mm_daemon.core.types import (
    BookDelta,
    BookSnapshot,
    Fill,
    Instrument,
    InstrumentKind,
    OrderRequest,
    Side,
    Trade,
)
from mm_daemon.venues.paper import PaperMatcher

MS = 1_000_000
S = 1_000_000_000
BID = Side.BUY
# Observed flow: 10 sell orders a second of 4 lots each for 20 s, then the book at 1000/1001.
FLOW_END = 20 * S


def params(**overrides: float) -> ExposureParams:
    values = {"rate_multiplier": 2.0, "size_multiplier": 1.0, "seed": 7, **overrides}
    return ExposureParams(**values)  # type: ignore[arg-type]  # floats and the int seed


def with_flow(p: ExposureParams) -> tuple[QueueFillModel, ExposureModel]:
    queue = QueueFillModel()
    exposure = ExposureModel(p, queue)
    for i in range(200):
        t = i * 100 * MS
        exposure.on_trade(t, 1000, 4, Side.SELL, exchange_ts_ns=t)
        exposure.on_trade(t, 1001, 4, Side.BUY, exchange_ts_ns=t + 1)
    exposure.on_book(FLOW_END, 1000, 1001)
    return queue, exposure


def rest_bid(
    queue: QueueFillModel, exposure: ExposureModel, price: int, lots: int, at: int = FLOW_END
) -> None:
    queue.on_place("b1", BID, price, lots, level_size_lots=0)
    exposure.on_place("b1", at, post_only=True)


def book(exposure: ExposureModel, now: int, bid: int, ask: int) -> list[QueueFill]:
    fills, refused = exposure.on_book(now, bid, ask)
    assert refused == []
    return fills


def filled(fills: list[QueueFill]) -> int:
    return sum(f.size_lots for f in fills)


def test_a_bid_the_market_has_moved_through_is_filled_by_the_observed_sell_flow() -> None:
    queue, exposure = with_flow(params())
    rest_bid(queue, exposure, 1000, 40)
    fills = book(exposure, FLOW_END + 100 * MS, 990, 991)  # mid 990.5: our 1000 bid is through
    fills += exposure.advance(FLOW_END + 2 * S)
    # 20 arrivals a second for the time it stayed exposed fill its 40 lots 4 lots at a time.
    assert filled(fills) == 40
    assert all(f.exposed and f.price_ticks == 1000 for f in fills)
    assert queue.get("b1") is None


def test_a_bid_behind_fair_value_is_never_filled_by_exposure() -> None:
    queue, exposure = with_flow(params())
    rest_bid(queue, exposure, 999, 40)
    fills = book(exposure, FLOW_END + 100 * MS, 1000, 1001)  # mid 1000.5, above our bid
    fills += exposure.advance(FLOW_END + 60 * S)
    assert fills == []
    assert exposure.next_due_ns() is None


def test_a_bid_at_the_best_bid_of_a_one_tick_spread_is_not_exposed() -> None:
    queue, exposure = with_flow(params())
    rest_bid(queue, exposure, 1000, 40)  # the book is 1000 / 1001: we join the best bid
    assert exposure.advance(FLOW_END + 60 * S) == []


def test_a_print_through_a_bid_exposes_it_at_once_and_the_queue_rules_leave_it_alone() -> None:
    queue, exposure = with_flow(params(size_multiplier=5.0))
    rest_bid(queue, exposure, 1000, 400)
    now = FLOW_END + 10 * MS
    fills = exposure.on_trade(now, 998, 4, Side.SELL, exchange_ts_ns=now)  # book not updated yet
    assert exposure.is_exposed("b1")
    # The aggressive order that printed through is the first arrival: 5 x a 4-lot order.
    assert [(f.size_lots, f.exposed, f.ts_ns) for f in fills] == [(20, True, now)]
    assert queue.on_trade(998, 4, Side.SELL, excluded=exposure.exposed_ids()) == []


def test_exposure_ends_when_the_book_moves_back() -> None:
    queue, exposure = with_flow(params(rate_multiplier=0.05))
    rest_bid(queue, exposure, 1000, 400)
    book(exposure, FLOW_END + 100 * MS, 990, 991)
    assert exposure.is_exposed("b1")
    book(exposure, FLOW_END + 200 * MS, 1005, 1006)
    assert not exposure.is_exposed("b1")
    assert exposure.advance(FLOW_END + 60 * S) == []


def test_exposure_starts_between_the_update_that_shows_it_and_the_one_before() -> None:
    queue, exposure = with_flow(params(rate_multiplier=50.0, onset_window_ns=10 * S))
    rest_bid(queue, exposure, 1000, 10_000)
    book(exposure, FLOW_END + 1 * S, 1000, 1001)  # still at the touch
    fills = book(exposure, FLOW_END + 3 * S, 990, 991)  # through, some time in the last 2 s
    times = [f.ts_ns for f in fills]
    assert times
    assert all(t is not None and FLOW_END + 1 * S <= t <= FLOW_END + 3 * S for t in times)


def test_exposure_starts_no_earlier_than_the_onset_window_before_the_update() -> None:
    queue, exposure = with_flow(params(rate_multiplier=50.0, onset_window_ns=100 * MS))
    rest_bid(queue, exposure, 1000, 10_000)
    book(exposure, FLOW_END + 1 * S, 1000, 1001)
    fills = book(exposure, FLOW_END + 3 * S, 990, 991)
    assert all(t is not None and t >= FLOW_END + 2900 * MS for t in (f.ts_ns for f in fills))


def test_a_post_only_bid_that_arrived_after_the_market_crossed_it_is_refused() -> None:
    queue, exposure = with_flow(params())
    arrived = FLOW_END + 99 * MS  # 1 ms before the update that shows the ask through our bid
    rest_bid(queue, exposure, 1000, 40, at=arrived)
    fills, refused = exposure.on_book(FLOW_END + 100 * MS, 990, 991)
    assert (fills, refused) == ([], ["b1"])
    assert queue.get("b1") is None


def test_a_post_only_bid_resting_before_the_previous_update_is_never_refused() -> None:
    for seed in range(20):
        queue, exposure = with_flow(params(seed=seed))
        rest_bid(queue, exposure, 1000, 40)
        book(exposure, FLOW_END + 100 * MS, 1000, 1001)
        fills = book(exposure, FLOW_END + 200 * MS, 990, 991)  # asserts none refused
        assert fills or exposure.is_exposed("b1")


def test_a_post_only_bid_halfway_through_the_window_is_refused_as_the_onset_shape_says() -> None:
    def refused_share(shape: float) -> float:
        refused = 0
        for seed in range(400):
            queue, exposure = with_flow(params(onset_shape=shape, seed=seed))
            rest_bid(queue, exposure, 1000, 40, at=FLOW_END + 50 * MS)  # half the window gone
            _, gone = exposure.on_book(FLOW_END + 100 * MS, 990, 991)
            refused += gone == ["b1"]
        return refused / 400

    # P(the crossing came in the first half) = 1 - (1 - 0.5)^shape
    assert abs(refused_share(1.0) - 0.5) < 0.08
    assert abs(refused_share(3.0) - 0.875) < 0.06
    assert abs(refused_share(0.5) - (1 - 0.5**0.5)) < 0.08


def test_a_bid_that_is_not_post_only_is_never_refused_whatever_the_shape() -> None:
    for seed in range(50):
        queue, exposure = with_flow(params(onset_shape=5.0, seed=seed))
        queue.on_place("b1", BID, 1000, 40, level_size_lots=0)
        exposure.on_place("b1", FLOW_END + 90 * MS, post_only=False)
        _, gone = exposure.on_book(FLOW_END + 100 * MS, 990, 991)
        assert gone == []


def test_deeper_through_fair_value_fills_sooner_and_in_larger_pieces() -> None:
    def first_second(depth_ticks: int) -> tuple[int, int]:
        lots = count = 0
        for seed in range(20):
            p = params(
                rate_multiplier=0.5, rate_multiplier_per_bps=2.0, size_multiplier_per_bps=0.5
            )
            queue, exposure = with_flow(replace(p, seed=seed))
            rest_bid(queue, exposure, 1000, 100_000)
            # The book moves to (1000 - depth, 1001 - depth): our bid is depth - 0.5 ticks
            # past the mid, 5 bps at depth 1 and 95 bps at depth 10 on a 1000-tick price.
            low = 1000 - depth_ticks
            fills = book(exposure, FLOW_END + 1, low, low + 1)
            fills += exposure.advance(FLOW_END + 1 * S)
            lots += filled(fills)
            count += len(fills)
        return count, lots

    shallow_count, shallow_lots = first_second(1)
    deep_count, deep_lots = first_second(10)
    assert deep_count > shallow_count
    assert deep_lots / deep_count > shallow_lots / shallow_count


def test_what_arrives_after_a_cancel_does_not_fill_and_a_later_cancel_fills_more() -> None:
    inst = Instrument("paper", "X/USDT", "XUSDT", InstrumentKind.SPOT, "X", "USDT", 0.01, 0.01)

    def run(cancel_after_ns: int) -> list[Fill]:
        m = PaperMatcher(inst, exposure=params(), starting_base=1e6, starting_quote=1e9)
        m.on_market_event(BookSnapshot("paper", "X/USDT", 0, 0, 1, ((1000, 5),), ((1001, 5),)), 0)
        for i in range(200):
            t = i * 100 * MS
            m.on_market_event(Trade("paper", "X/USDT", t, t, i, 1000, 4, Side.SELL), t)
        m.accept(OrderRequest("paper", "X/USDT", "b1", BID, 1000, 4000), FLOW_END)
        # An update after it rested: the move below happened after it arrived.
        still = BookDelta("paper", "X/USDT", FLOW_END, FLOW_END + MS, 2, 2, -1, (), ())
        m.on_market_event(still, FLOW_END + MS)
        moved = FLOW_END + 10 * MS
        through = BookDelta(
            "paper", "X/USDT", moved, moved, 2, 2, -1, ((1000, 0), (990, 5)), ((1001, 0), (991, 5))
        )
        events = m.on_market_event(through, moved)
        events += m.cancel("b1", moved + cancel_after_ns)
        events += m.advance(moved + 10 * S)
        return [e for e in events if isinstance(e, Fill)]

    quick = run(5 * MS)
    slow = run(500 * MS)
    assert all(f.ts_exchange_ns <= FLOW_END + 15 * MS for f in quick)
    assert all(f.ts_exchange_ns <= FLOW_END + 510 * MS for f in slow)
    assert sum(f.size_lots for f in slow) > sum(f.size_lots for f in quick)


def test_the_same_seed_and_events_give_the_same_fills() -> None:
    def run(seed: int) -> list[tuple[int | None, int]]:
        queue, exposure = with_flow(params(rate_multiplier=1.0, seed=seed))
        rest_bid(queue, exposure, 1000, 500)
        fills = book(exposure, FLOW_END + 100 * MS, 990, 991)
        fills += exposure.advance(FLOW_END + 3 * S)
        return [(f.ts_ns, f.size_lots) for f in fills]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_flow_rate_counts_aggressive_orders_a_second_and_a_sweep_once() -> None:
    flow = AggressiveFlow(halflife_ns=30 * S, size_samples=16)
    for i in range(600):  # 10 orders a second for 60 s, each printed against two makers
        t = i * 100 * MS
        flow.on_print(t, 3, exchange_ts_ns=t)
        flow.on_print(t, 2, exchange_ts_ns=t)
    assert flow.rate_per_second(60 * S) == pytest.approx(10.0, rel=0.05)
    assert set(flow.sizes) == {5}


def test_a_shape_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="onset_shape"):
        ExposureParams(onset_shape=0.0)


def test_negative_exposure_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="rate_multiplier"):
        ExposureParams(rate_multiplier=-1.0)
