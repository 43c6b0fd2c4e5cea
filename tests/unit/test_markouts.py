"""Markouts: the fair value move after maker fills, signed so positive is good for us."""

from __future__ import annotations

import pytest

from mm_daemon.core.markouts import MarkoutTracker
from mm_daemon.core.types import Side

S = 1_000_000_000
T0 = 1_700_000_000 * S


def test_buy_followed_by_a_rise_is_positive() -> None:
    tracker = MarkoutTracker((1,))
    tracker.on_fair_value(T0, 100.0)
    tracker.on_fill(T0, Side.BUY)
    (markout,) = tracker.on_fair_value(T0 + S, 100.1)
    assert markout.bps == pytest.approx(10.0)


def test_sell_followed_by_a_rise_is_negative() -> None:
    tracker = MarkoutTracker((1,))
    tracker.on_fair_value(T0, 100.0)
    tracker.on_fill(T0, Side.SELL)
    (markout,) = tracker.on_fair_value(T0 + S, 100.1)
    assert markout.bps == pytest.approx(-10.0)


def test_sell_followed_by_a_fall_is_positive() -> None:
    tracker = MarkoutTracker((1,))
    tracker.on_fair_value(T0, 100.0)
    tracker.on_fill(T0, Side.SELL)
    (markout,) = tracker.on_fair_value(T0 + S, 99.8)
    assert markout.bps == pytest.approx(20.0)


def test_markout_is_not_complete_before_its_horizon() -> None:
    tracker = MarkoutTracker((1,))
    tracker.on_fair_value(T0, 100.0)
    tracker.on_fill(T0, Side.BUY)
    assert tracker.on_fair_value(T0 + S - 1, 101.0) == []
    assert tracker.pending == 1


def test_markout_uses_the_last_fair_value_at_or_before_the_horizon() -> None:
    tracker = MarkoutTracker((1,))
    tracker.on_fair_value(T0, 100.0)
    tracker.on_fill(T0, Side.BUY)
    assert tracker.on_fair_value(T0 + S // 2, 100.2) == []
    (markout,) = tracker.on_fair_value(T0 + 3 * S, 105.0)  # after the horizon: not used
    assert markout.bps == pytest.approx(20.0)


def test_markout_measures_from_the_given_fair_value_at_fill() -> None:
    tracker = MarkoutTracker((1,))
    tracker.on_fair_value(T0, 100.0)
    tracker.on_fill(T0, Side.BUY, fair_value=99.0)
    (markout,) = tracker.advance(T0 + S)
    assert markout.bps == pytest.approx((100.0 - 99.0) / 99.0 * 1e4)


def test_advance_completes_markouts_without_a_new_fair_value() -> None:
    tracker = MarkoutTracker((1, 5))
    tracker.on_fair_value(T0, 100.0)
    tracker.on_fill(T0, Side.BUY)
    tracker.on_fair_value(T0 + S // 10, 100.05)
    done = tracker.advance(T0 + S)
    assert [(m.horizon, round(m.bps, 9)) for m in done] == [("1s", 5.0)]


def test_each_horizon_completes_at_its_own_time() -> None:
    tracker = MarkoutTracker()
    tracker.on_fair_value(T0, 100.0)
    tracker.on_fill(T0, Side.BUY)
    matured = [[m.horizon for m in tracker.advance(T0 + seconds * S)] for seconds in (1, 5, 30, 60)]
    assert matured == [["1s"], ["5s"], ["30s"], ["60s"]]


def test_default_horizons_are_1_5_30_and_60_seconds() -> None:
    assert MarkoutTracker().horizons == ("1s", "5s", "30s", "60s")


def test_means_per_horizon_average_completed_markouts() -> None:
    tracker = MarkoutTracker((1, 5))
    tracker.on_fair_value(T0, 100.0)
    tracker.on_fill(T0, Side.BUY)
    tracker.on_fill(T0, Side.SELL, fair_value=100.2)
    tracker.advance(T0 + S)
    means = tracker.means_bps()
    assert means["1s"] == pytest.approx((0.0 + (100.2 - 100.0) / 100.2 * 1e4) / 2)
    assert means["5s"] is None
    assert tracker.counts() == {"1s": 2, "5s": 0}


def test_fill_before_any_fair_value_is_not_tracked() -> None:
    tracker = MarkoutTracker((1,))
    tracker.on_fill(T0, Side.BUY)
    assert tracker.pending == 0


def test_horizons_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        MarkoutTracker((0,))
