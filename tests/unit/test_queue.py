"""The queue-position fill model: what fills a resting maker order, and when."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mm_daemon.core.queue import QueueFillModel, QueueProbability, QueueProbabilityKind
from mm_daemon.core.types import Side

BID = Side.BUY
ASK = Side.SELL


def queue_model(share: float = 0.5) -> QueueFillModel:
    return QueueFillModel(size_decrease_queue_share=share)


def test_order_behind_five_lots_fills_only_after_five_lots_traded_at_its_price() -> None:
    model = queue_model()
    model.on_place("b1", BID, 100, 2, level_size_lots=5)
    assert model.on_trade(100, 3, aggressor=Side.SELL) == []
    assert model.on_trade(100, 2, aggressor=Side.SELL) == []
    fills = model.on_trade(100, 1, aggressor=Side.SELL)
    assert [(f.order_id, f.size_lots, f.remaining_lots) for f in fills] == [("b1", 1, 1)]


def test_trade_larger_than_queue_ahead_fills_the_remainder() -> None:
    model = queue_model()
    model.on_place("a1", ASK, 105, 4, level_size_lots=5)
    fills = model.on_trade(105, 7, aggressor=Side.BUY)
    assert [(f.size_lots, f.remaining_lots, f.through) for f in fills] == [(2, 2, False)]


def test_partial_fills_add_up_to_the_order_size_and_then_stop() -> None:
    model = queue_model()
    model.on_place("b1", BID, 100, 3, level_size_lots=0)
    first = model.on_trade(100, 1, aggressor=Side.SELL)
    second = model.on_trade(100, 5, aggressor=Side.SELL)
    third = model.on_trade(100, 5, aggressor=Side.SELL)
    assert [f.size_lots for f in first + second] == [1, 2]
    assert second[-1].remaining_lots == 0
    assert third == []
    assert model.get("b1") is None


def test_order_at_a_new_level_has_nobody_ahead() -> None:
    model = queue_model()
    order = model.on_place("b1", BID, 101, 1, level_size_lots=0)
    assert order.queue_ahead_lots == 0
    assert [f.size_lots for f in model.on_trade(101, 1, aggressor=Side.SELL)] == [1]


def test_trade_through_the_bid_fills_at_once_up_to_the_print_size() -> None:
    model = queue_model()
    model.on_place("b1", BID, 100, 10, level_size_lots=50)
    fills = model.on_trade(99, 4, aggressor=Side.SELL)
    assert [(f.price_ticks, f.size_lots, f.through) for f in fills] == [(100, 4, True)]


def test_trade_through_the_ask_fills_at_once_up_to_the_order_size() -> None:
    model = queue_model()
    model.on_place("a1", ASK, 105, 3, level_size_lots=50)
    fills = model.on_trade(106, 8, aggressor=Side.BUY)
    assert [(f.price_ticks, f.size_lots, f.remaining_lots) for f in fills] == [(105, 3, 0)]


def test_trade_on_the_wrong_side_or_away_from_the_price_fills_nothing() -> None:
    model = queue_model()
    model.on_place("b1", BID, 100, 1, level_size_lots=0)
    model.on_place("a1", ASK, 105, 1, level_size_lots=0)
    assert model.on_trade(100, 5, aggressor=Side.BUY) == []  # a buy lifts asks, not our bid
    assert model.on_trade(104, 5, aggressor=Side.BUY) == []  # below our ask
    assert model.on_trade(101, 5, aggressor=Side.SELL) == []  # above our bid
    assert len(model) == 2


def test_size_decrease_moves_the_queue_by_the_configured_share() -> None:
    model = queue_model(share=0.5)
    order = model.on_place("b1", BID, 100, 1, level_size_lots=10)
    model.on_level_change(BID, 100, 20)  # 10 lots join behind us
    model.on_level_change(BID, 100, 16)  # 4 lots cancelled, half of them ahead of us
    assert order.queue_ahead_lots == pytest.approx(8.0)


def test_size_decrease_explained_by_trades_is_not_counted_twice() -> None:
    model = queue_model(share=1.0)
    order = model.on_place("b1", BID, 100, 1, level_size_lots=10)
    model.on_trade(100, 3, aggressor=Side.SELL)
    assert order.queue_ahead_lots == pytest.approx(7.0)
    model.on_level_change(BID, 100, 7)  # the same 3 lots, now in the book
    assert order.queue_ahead_lots == pytest.approx(7.0)


def test_queue_ahead_never_exceeds_the_displayed_size() -> None:
    model = queue_model(share=0.0)
    order = model.on_place("b1", BID, 100, 1, level_size_lots=10)
    model.on_level_change(BID, 100, 2)
    assert order.queue_ahead_lots == pytest.approx(2.0)


def test_size_increase_goes_behind_us() -> None:
    model = queue_model()
    order = model.on_place("b1", BID, 100, 1, level_size_lots=4)
    model.on_level_change(BID, 100, 40)
    assert order.queue_ahead_lots == pytest.approx(4.0)


def test_two_of_our_orders_at_one_price_fill_in_time_priority() -> None:
    model = queue_model()
    model.on_place("first", BID, 100, 2, level_size_lots=0)
    model.on_place("second", BID, 100, 2, level_size_lots=0)
    fills = model.on_trade(100, 3, aggressor=Side.SELL)
    assert [(f.order_id, f.size_lots) for f in fills] == [("first", 2), ("second", 1)]


def test_sweep_fills_better_priced_orders_first_within_the_print_size() -> None:
    model = queue_model()
    model.on_place("near", BID, 100, 2, level_size_lots=0)
    model.on_place("far", BID, 98, 2, level_size_lots=0)
    fills = model.on_trade(97, 3, aggressor=Side.SELL)
    assert [(f.order_id, f.size_lots) for f in fills] == [("near", 2), ("far", 1)]


def test_cancelled_order_no_longer_fills() -> None:
    model = queue_model()
    model.on_place("b1", BID, 100, 1, level_size_lots=0)
    cancelled = model.on_cancel("b1")
    assert cancelled is not None
    assert model.on_trade(99, 5, aggressor=Side.SELL) == []
    assert model.tracked_levels() == []


def test_placing_the_same_id_twice_is_refused() -> None:
    model = queue_model()
    model.on_place("b1", BID, 100, 1, level_size_lots=0)
    with pytest.raises(ValueError, match="already resting"):
        model.on_place("b1", BID, 100, 1, level_size_lots=0)


def test_touch_model_fills_the_whole_order_on_a_print_at_its_price() -> None:
    model = QueueFillModel(touch=True)
    model.on_place("b1", BID, 100, 7, level_size_lots=500)
    fills = model.on_trade(100, 1, aggressor=Side.SELL)
    assert [(f.size_lots, f.remaining_lots) for f in fills] == [(7, 0)]


def test_touch_model_fills_when_the_opposite_touch_reaches_the_price() -> None:
    model = QueueFillModel(touch=True)
    model.on_place("b1", BID, 100, 2, level_size_lots=5)
    assert model.on_touch(99, 101) == []
    fills = model.on_touch(99, 100)
    assert [(f.order_id, f.size_lots) for f in fills] == [("b1", 2)]


def test_queue_model_ignores_touches_without_trades() -> None:
    model = queue_model()
    model.on_place("b1", BID, 100, 2, level_size_lots=5)
    assert model.on_touch(99, 100) == []


# -- properties over random event sequences ----------------------------------------------------

trade_events = st.tuples(
    st.just("trade"),
    st.integers(95, 105),  # price
    st.integers(1, 20),  # size
    st.sampled_from([Side.BUY, Side.SELL]),
)
level_events = st.tuples(
    st.just("level"),
    st.integers(95, 105),
    st.integers(0, 60),
    st.sampled_from([Side.BUY, Side.SELL]),
)


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(1, 30),
    level_size=st.integers(0, 50),
    share=st.floats(0.0, 1.0),
    events=st.lists(st.one_of(trade_events, level_events), max_size=40),
)
def test_queue_fills_never_exceed_the_order_the_prints_or_the_touch_model(
    size: int,
    level_size: int,
    share: float,
    events: list[tuple[str, int, int, Side]],
) -> None:
    queue = QueueFillModel(size_decrease_queue_share=share)
    touch = QueueFillModel(touch=True)
    queue.on_place("b", BID, 100, size, level_size)
    touch.on_place("b", BID, 100, size, level_size)
    queue_filled = touch_filled = eligible_volume = 0
    for kind, price, amount, side in events:
        if kind == "trade":
            queue_filled += sum(f.size_lots for f in queue.on_trade(price, amount, side))
            touch_filled += sum(f.size_lots for f in touch.on_trade(price, amount, side))
            if side is Side.SELL and price <= 100:
                eligible_volume += amount
        else:
            queue.on_level_change(side, price, amount)
            touch.on_level_change(side, price, amount)
        assert queue_filled <= size
        assert queue_filled <= eligible_volume
        assert queue_filled <= touch_filled


# -- queue probability: who cancelled, ahead of us or behind -------------------------------------


def cancel_four_of_forty(probability: QueueProbability) -> float:
    """10 lots ahead of us, 30 behind; 4 lots cancelled; returns the queue ahead after it."""
    model = QueueFillModel(probability=probability)
    order = model.on_place("b1", BID, 100, 1, level_size_lots=10)
    model.on_level_change(BID, 100, 40)
    model.on_level_change(BID, 100, 36)
    return order.queue_ahead_lots


def test_fixed_share_takes_the_same_share_of_a_cancel_from_ahead_whatever_the_sizes() -> None:
    assert cancel_four_of_forty(QueueProbability("fixed", fixed_share_ahead=0.25)) == (
        pytest.approx(9.0)
    )


def test_power_one_splits_a_cancel_in_proportion_to_the_sizes_ahead_and_behind() -> None:
    # 10 of the 40 lots are ahead: a quarter of the 4 cancelled lots.
    assert cancel_four_of_forty(QueueProbability("power", power_exponent=1.0)) == (
        pytest.approx(9.0)
    )


def test_power_two_leans_a_cancel_towards_the_larger_side_of_the_queue() -> None:
    # share ahead 10^2 / (10^2 + 30^2) = 0.1
    assert cancel_four_of_forty(QueueProbability("power", power_exponent=2.0)) == (
        pytest.approx(9.6)
    )


def test_log_splits_a_cancel_closer_to_even_than_the_sizes() -> None:
    share = math.log(11) / (math.log(11) + math.log(31))
    ahead = cancel_four_of_forty(QueueProbability("log"))
    assert ahead == pytest.approx(10 - 4 * share)
    assert ahead < 9.0  # more from ahead than in proportion to the sizes (a quarter)


@pytest.mark.parametrize("kind", ["power", "log"])
def test_with_nobody_behind_every_cancel_was_ahead(kind: QueueProbabilityKind) -> None:
    probability = QueueProbability(kind)
    assert probability.share_ahead(5.0, 0.0) == 1.0
    assert probability.share_ahead(0.0, 5.0) == 0.0


def test_a_cancel_larger_than_the_queue_behind_takes_the_rest_from_ahead() -> None:
    model = QueueFillModel(probability=QueueProbability("fixed", fixed_share_ahead=0.0))
    order = model.on_place("b1", BID, 100, 1, level_size_lots=10)
    model.on_level_change(BID, 100, 13)  # 3 behind us
    model.on_level_change(BID, 100, 8)  # 5 cancelled: the 3 behind and 2 ahead
    assert order.queue_ahead_lots == pytest.approx(8.0)


def test_lots_that_traded_ahead_of_us_do_not_count_as_the_queue_behind() -> None:
    model = QueueFillModel(probability=QueueProbability("power", power_exponent=1.0))
    order = model.on_place("b1", BID, 100, 1, level_size_lots=20)
    model.on_level_change(BID, 100, 40)  # 20 ahead, 20 behind
    model.on_trade(100, 10, aggressor=Side.SELL)  # 10 ahead traded: 10 ahead, 20 behind
    model.on_level_change(BID, 100, 27)  # the 10 traded and 3 cancelled
    assert order.queue_ahead_lots == pytest.approx(10 - 3 * 10 / 30)


def test_power_with_large_sizes_and_exponent_does_not_overflow() -> None:
    probability = QueueProbability("power", power_exponent=50.0)
    assert probability.share_ahead(1e9, 2e9) == pytest.approx(0.0, abs=1e-12)


def test_an_unknown_queue_probability_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown queue probability"):
        QueueProbability("linear")  # type: ignore[arg-type]  # the refusal is the point
