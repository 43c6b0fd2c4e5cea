"""The local L2 book: levels, queries, sequence rules and crossed-book detection."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mm_daemon.core.book import ApplyResult, Book, SequenceRule
from mm_daemon.core.types import BookDelta, BookSnapshot


def snap(update_id: int = 100, bids=((99, 5), (98, 7)), asks=((101, 3), (102, 4))) -> BookSnapshot:
    return BookSnapshot("v", "X/Y", 0, 0, update_id, tuple(bids), tuple(asks))


def delta(first: int, last: int, prev: int = -1, bids=(), asks=()) -> BookDelta:
    return BookDelta("v", "X/Y", 0, 0, first, last, prev, tuple(bids), tuple(asks))


def test_snapshot_sets_touch_and_update_id() -> None:
    book = Book()
    assert book.apply_snapshot(snap()) is ApplyResult.APPLIED
    assert book.best_bid() == (99, 5)
    assert book.best_ask() == (101, 3)
    assert book.update_id == 100
    assert book.synced


def test_delta_adds_changes_and_removes_levels() -> None:
    book = Book()
    book.apply_snapshot(snap())
    result = book.apply_delta(delta(101, 101, bids=((100, 2), (98, 0)), asks=((101, 9),)))
    assert result is ApplyResult.APPLIED
    assert book.bids() == ((100, 2), (99, 5))
    assert book.asks() == ((101, 9), (102, 4))


def test_removing_the_best_level_exposes_the_next() -> None:
    book = Book()
    book.apply_snapshot(snap())
    book.apply_delta(delta(101, 101, bids=((99, 0),), asks=((101, 0),)))
    assert book.best_bid() == (98, 7)
    assert book.best_ask() == (102, 4)


def test_deleting_an_absent_level_is_a_no_op() -> None:
    book = Book()
    book.apply_snapshot(snap())
    assert book.apply_delta(delta(101, 101, bids=((50, 0),))) is ApplyResult.APPLIED
    assert book.level_count() == (2, 2)


def test_mid_microprice_spread_and_size_queries() -> None:
    book = Book()
    book.apply_snapshot(snap(bids=((99, 1),), asks=((101, 3),)))
    assert book.mid_ticks() == 100.0
    # Microprice leans toward the thinner side: the bid has 1, the ask 3 -> closer to the bid.
    assert book.microprice_ticks() == pytest.approx((99 * 3 + 101 * 1) / 4)
    assert book.spread_ticks() == 2
    assert book.size_at(99) == 1
    assert book.size_at(101) == 3
    assert book.size_at(100) == 0


def test_depth_returns_best_first_levels() -> None:
    book = Book()
    book.apply_snapshot(snap(bids=((97, 1), (99, 2), (98, 3)), asks=((103, 1), (101, 2))))
    assert book.depth(2) == (((99, 2), (98, 3)), ((101, 2), (103, 1)))


def test_empty_side_gives_no_mid() -> None:
    book = Book()
    book.apply_snapshot(snap(asks=()))
    assert book.mid_ticks() is None
    assert book.microprice_ticks() is None
    assert book.best_ask() is None


def test_delta_before_any_snapshot_needs_resync() -> None:
    book = Book(SequenceRule.BINANCE_SPOT)
    result = book.apply_delta(delta(1, 2))
    assert result is ApplyResult.NOT_SYNCED
    assert result.needs_resync


def test_crossed_snapshot_is_reported() -> None:
    book = Book()
    assert book.apply_snapshot(snap(bids=((101, 1),), asks=((101, 1),))) is ApplyResult.CROSSED
    assert book.needs_resync


def test_crossed_delta_marks_book_out_of_sync() -> None:
    book = Book()
    book.apply_snapshot(snap())
    assert book.apply_delta(delta(101, 101, bids=((102, 1),))) is ApplyResult.CROSSED
    assert book.needs_resync
    assert book.apply_delta(delta(102, 102)) is ApplyResult.NOT_SYNCED


def test_new_snapshot_recovers_after_a_gap() -> None:
    book = Book(SequenceRule.BINANCE_SPOT)
    book.apply_snapshot(snap(100))
    book.apply_delta(delta(101, 105))
    assert book.apply_delta(delta(107, 110)) is ApplyResult.GAP
    assert book.apply_snapshot(snap(200)) is ApplyResult.APPLIED
    assert book.apply_delta(delta(195, 205)) is ApplyResult.APPLIED


class TestBinanceSpotRule:
    def test_drops_deltas_up_to_the_snapshot_id(self) -> None:
        book = Book(SequenceRule.BINANCE_SPOT)
        book.apply_snapshot(snap(100))
        assert book.apply_delta(delta(90, 100, bids=((99, 1),))) is ApplyResult.SKIPPED
        assert book.best_bid() == (99, 5)

    def test_first_delta_must_straddle_the_snapshot(self) -> None:
        book = Book(SequenceRule.BINANCE_SPOT)
        book.apply_snapshot(snap(100))
        assert book.apply_delta(delta(102, 110)) is ApplyResult.GAP

    def test_first_delta_straddling_is_applied(self) -> None:
        book = Book(SequenceRule.BINANCE_SPOT)
        book.apply_snapshot(snap(100))
        assert book.apply_delta(delta(95, 110)) is ApplyResult.APPLIED
        assert book.update_id == 110

    def test_then_each_delta_continues_the_previous(self) -> None:
        book = Book(SequenceRule.BINANCE_SPOT)
        book.apply_snapshot(snap(100))
        book.apply_delta(delta(95, 110))
        assert book.apply_delta(delta(111, 120)) is ApplyResult.APPLIED
        assert book.apply_delta(delta(122, 130)) is ApplyResult.GAP


class TestBinanceUsdmRule:
    def test_drops_deltas_before_the_snapshot_id(self) -> None:
        book = Book(SequenceRule.BINANCE_USDM)
        book.apply_snapshot(snap(100))
        assert book.apply_delta(delta(80, 99, 79)) is ApplyResult.SKIPPED

    def test_first_delta_must_contain_the_snapshot_id(self) -> None:
        book = Book(SequenceRule.BINANCE_USDM)
        book.apply_snapshot(snap(100))
        assert book.apply_delta(delta(101, 110, 99)) is ApplyResult.GAP

    def test_first_delta_with_u_equal_to_snapshot_id_is_applied(self) -> None:
        book = Book(SequenceRule.BINANCE_USDM)
        book.apply_snapshot(snap(100))
        assert book.apply_delta(delta(95, 100, 94)) is ApplyResult.APPLIED

    def test_first_delta_linked_to_the_snapshot_by_pu_is_applied(self) -> None:
        book = Book(SequenceRule.BINANCE_USDM)
        book.apply_snapshot(snap(100))
        assert book.apply_delta(delta(101, 101, 100)) is ApplyResult.APPLIED

    def test_then_pu_must_equal_previous_u(self) -> None:
        book = Book(SequenceRule.BINANCE_USDM)
        book.apply_snapshot(snap(100))
        book.apply_delta(delta(95, 110, 94))
        # USD-M ids are not contiguous across events: only pu links them.
        assert book.apply_delta(delta(150, 160, 110)) is ApplyResult.APPLIED
        assert book.apply_delta(delta(170, 180, 165)) is ApplyResult.GAP


class TestConsecutiveRule:
    def test_each_update_id_follows_the_previous(self) -> None:
        book = Book(SequenceRule.CONSECUTIVE)
        book.apply_snapshot(snap(10))
        assert book.apply_delta(delta(11, 11)) is ApplyResult.APPLIED
        assert book.apply_delta(delta(12, 12)) is ApplyResult.APPLIED

    def test_a_skipped_id_is_a_gap(self) -> None:
        book = Book(SequenceRule.CONSECUTIVE)
        book.apply_snapshot(snap(10))
        book.apply_delta(delta(11, 11))
        assert book.apply_delta(delta(13, 13)) is ApplyResult.GAP

    def test_stale_ids_are_skipped(self) -> None:
        book = Book(SequenceRule.CONSECUTIVE)
        book.apply_snapshot(snap(10))
        assert book.apply_delta(delta(9, 9)) is ApplyResult.SKIPPED


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(1, 60), st.integers(0, 5)), min_size=1, max_size=200
    )
)
def test_book_matches_a_naive_model(updates: list[tuple[bool, int, int]]) -> None:
    """Any sequence of level updates leaves the same levels as a plain dict re-sorted each time."""
    book = Book()
    book.apply_snapshot(snap(0, bids=(), asks=()))
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    for i, (is_bid, px, sz) in enumerate(updates, start=1):
        # Keep sides apart so the book never crosses: bids below 100, asks above.
        price = px if is_bid else 100 + px
        side = bids if is_bid else asks
        if sz:
            side[price] = sz
        else:
            side.pop(price, None)
        level = ((price, sz),)
        book.apply_delta(delta(i, i, bids=level if is_bid else (), asks=() if is_bid else level))
    assert book.bids() == tuple(sorted(bids.items(), reverse=True))
    assert book.asks() == tuple(sorted(asks.items()))


def test_random_walk_of_a_deep_book_keeps_sorted_keys() -> None:
    rng = random.Random(3)
    book = Book()
    book.apply_snapshot(
        snap(0, bids=[(p, 1) for p in range(900, 1000)], asks=[(p, 1) for p in range(1001, 1100)])
    )
    for i in range(1, 5000):
        bid_px = rng.randint(850, 1000)
        ask_px = rng.randint(1001, 1150)
        book.apply_delta(
            delta(i, i, bids=((bid_px, rng.randint(0, 3)),), asks=((ask_px, rng.randint(0, 3)),))
        )
    bids = book.bids()
    asks = book.asks()
    assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
    assert [p for p, _ in asks] == sorted(p for p, _ in asks)
    assert all(sz > 0 for _, sz in bids + asks)
