"""Fair value: mid, microprice, cross-venue reference with an EWMA basis, and MarketState."""

from __future__ import annotations

import pytest

from mm_daemon.config import MarketDataConfig
from mm_daemon.core.book import ApplyResult, Book, SequenceRule
from mm_daemon.core.fair_value import CrossVenueFairValue, EwmaBasis, microprice_ticks, mid_ticks
from mm_daemon.core.market_state import MarketState, MarketStates
from mm_daemon.core.types import (
    BookDelta,
    BookSnapshot,
    Instrument,
    InstrumentKind,
    MarketStatus,
    Side,
    Trade,
)
from mm_daemon.engine import wiring

S = 1_000_000_000
SPOT = Instrument("spot", "BTC/USDT", "BTCUSDT", InstrumentKind.SPOT, "BTC", "USDT", 0.01, 1e-5)
PERP = Instrument(
    "perp", "BTC/USDT:USDT", "BTCUSDT", InstrumentKind.PERPETUAL, "BTC", "USDT", 0.1, 0.001
)


def snapshot(
    venue: str, bid: int, ask: int, bid_sz: int = 1, ask_sz: int = 1, *, ts: int = 0
) -> BookSnapshot:
    return BookSnapshot(venue, "s", ts, ts, 1, ((bid, bid_sz),), ((ask, ask_sz),))


def test_mid_is_the_average_of_the_touch() -> None:
    book = Book()
    book.apply_snapshot(snapshot("v", 100, 104))
    assert mid_ticks(book) == 102.0


def test_microprice_equals_mid_for_equal_touch_sizes() -> None:
    book = Book()
    book.apply_snapshot(snapshot("v", 100, 104, 5, 5))
    assert microprice_ticks(book) == 102.0


def test_microprice_moves_toward_the_ask_when_bids_dominate() -> None:
    book = Book()
    book.apply_snapshot(snapshot("v", 100, 104, 9, 1))
    assert microprice_ticks(book) == pytest.approx(103.6)


def test_ewma_basis_halfway_after_one_halflife() -> None:
    ewma = EwmaBasis(halflife_ns=10 * S)
    ewma.update(0.0, 0)
    assert ewma.update(10.0, 10 * S) == pytest.approx(5.0)


def test_ewma_basis_ignores_sampling_at_the_same_instant() -> None:
    ewma = EwmaBasis(halflife_ns=10 * S)
    ewma.update(0.0, 0)
    assert ewma.update(100.0, 0) == 0.0


def test_cross_venue_is_reference_mid_plus_smoothed_basis() -> None:
    cross = CrossVenueFairValue(halflife_ns=60 * S, ref_ticks_per_own_tick=10.0)
    cross.on_ref_mid(600_000.0)  # 60000.0 at tick 0.1
    cross.on_own_mid(5_998_000.0, 0)  # 59980.00 at tick 0.01: basis -2000 ticks
    assert cross.value() == pytest.approx(5_998_000.0)
    cross.on_ref_mid(600_100.0)  # the reference moves up 10.0
    assert cross.value() == pytest.approx(6_001_000.0 - 2000.0)


def test_cross_venue_falls_back_to_own_mid_without_reference() -> None:
    cross = CrossVenueFairValue(halflife_ns=S, ref_ticks_per_own_tick=1.0)
    cross.on_own_mid(500.0, 0)
    assert cross.value() == 500.0


def test_market_state_follows_the_configured_model() -> None:
    cfg = MarketDataConfig(fair_value="mid")
    state = wiring.market_state(SPOT, cfg)
    state.on_event(snapshot("spot", 100, 104, 9, 1))
    assert state.fair_value_ticks == 102.0
    assert state.fair_value_price == pytest.approx(1.02)


def test_market_state_microprice_updates_on_delta() -> None:
    state = MarketState(SPOT, fair_value_model="microprice", rule=SequenceRule.CONSECUTIVE)
    state.on_event(snapshot("spot", 100, 104, 1, 1))
    result = state.on_event(BookDelta("spot", "s", S, S, 2, 2, -1, ((100, 3),), ()))
    assert result is ApplyResult.APPLIED
    assert state.fair_value_ticks == pytest.approx((100 * 1 + 104 * 3) / 4)


def test_market_state_reports_a_gap() -> None:
    state = MarketState(SPOT, rule=SequenceRule.CONSECUTIVE)
    state.on_event(snapshot("spot", 100, 104))
    assert state.on_event(BookDelta("spot", "s", 0, 0, 5, 5, -1, (), ())) is ApplyResult.GAP


def test_market_state_reads_a_shared_book_without_reapplying() -> None:
    shared = Book(SequenceRule.CONSECUTIVE)
    shared.apply_snapshot(snapshot("spot", 100, 104))
    state = MarketState(SPOT, fair_value_model="mid", book=shared, book_is_shared=True)
    d = BookDelta("spot", "s", S, S, 2, 2, -1, ((102, 1),), ())
    shared.apply_delta(d)  # the adapter applies it, then emits it
    assert state.on_event(d) is ApplyResult.APPLIED
    assert state.fair_value_ticks == 103.0
    assert shared.update_id == 2


def test_market_state_cross_venue_uses_the_reference_mid() -> None:
    perp = MarketState(PERP, fair_value_model="mid")
    spot = MarketState(
        SPOT, fair_value_model="cross_venue", reference=perp, basis_halflife_ns=60 * S
    )
    perp.on_event(snapshot("perp", 599_990, 600_010))  # mid 60000.0
    spot.on_event(snapshot("spot", 5_997_999, 5_998_001))  # mid 59980.00: basis -20.00
    assert spot.fair_value_ticks == pytest.approx(5_998_000.0)
    perp.on_event(snapshot("perp", 600_090, 600_110, ts=S))  # perp up 10.0
    spot.on_reference_update(S)
    assert spot.fair_value_ticks == pytest.approx(6_000_000.0 + 1000.0 - 2000.0)
    assert spot.basis_ticks == pytest.approx(-2000.0)


def test_cross_venue_without_reference_is_refused() -> None:
    with pytest.raises(ValueError, match="reference"):
        MarketState(SPOT, fair_value_model="cross_venue")


def test_market_state_tracks_stale_status_and_trade_flow() -> None:
    state = MarketState(SPOT)
    state.on_event(snapshot("spot", 100, 104))
    state.on_event(MarketStatus("spot", "s", 0, stale=True, reason="silent"))
    assert state.stale
    state.on_event(Trade("spot", "s", S, S, 1, 104, 5, Side.BUY))
    assert state.flow_imbalance == 1.0
    state.on_event(MarketStatus("spot", "s", 0, stale=False))
    assert not state.stale


def test_touch_imbalance_from_the_book() -> None:
    state = MarketState(SPOT)
    state.on_event(snapshot("spot", 100, 104, 3, 1))
    assert state.touch_imbalance == pytest.approx(0.5)


def test_market_states_route_events_by_venue_and_symbol() -> None:
    states = MarketStates()
    perp = states.add(MarketState(PERP, fair_value_model="mid"))
    spot = states.add(MarketState(SPOT, fair_value_model="mid"))
    changed = states.on_event(
        BookSnapshot("perp", "BTC/USDT:USDT", 0, 0, 1, ((599_990, 1),), ((600_010, 1),))
    )
    assert changed is perp
    assert perp.fair_value_ticks == 600_000.0
    assert spot.fair_value_ticks is None


def test_market_states_ignore_unknown_markets() -> None:
    states = MarketStates()
    assert states.on_event(MarketStatus("elsewhere", "X/Y", 0, stale=True)) is None


def test_market_states_reprice_cross_venue_markets_when_the_reference_moves() -> None:
    states = MarketStates()
    perp = states.add(MarketState(PERP, fair_value_model="mid"))
    spot = states.add(
        MarketState(SPOT, fair_value_model="cross_venue", reference=perp, basis_halflife_ns=S)
    )
    states.on_event(
        BookSnapshot("perp", "BTC/USDT:USDT", 0, 0, 1, ((599_990, 1),), ((600_010, 1),))
    )
    states.on_event(BookSnapshot("spot", "BTC/USDT", 0, 0, 1, ((5_997_999, 1),), ((5_998_001, 1),)))
    states.on_event(
        BookSnapshot("perp", "BTC/USDT:USDT", S, S, 2, ((600_090, 1),), ((600_110, 1),))
    )
    # The perp moved up 10.0 (1000 spot ticks): spot's fair value follows without a spot event.
    assert spot.fair_value_ticks == pytest.approx(5_998_000.0 + 1000.0)
