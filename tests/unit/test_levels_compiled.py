"""The compiled level loop (`mm_daemon._levels.apply_side`) against the Python one it replaces."""

from __future__ import annotations

from heapq import heappush

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mm_daemon.binance import frames as binance_frames

apply_side = binance_frames.compiled_apply_side
pytestmark = pytest.mark.skipif(apply_side is None, reason="mm_daemon._levels is not built here")

TICK, LOT = 0.01, 0.00001  # Binance spot BTCUSDT
BIDS, ASKS = True, False  # negate the heap keys: bids are a max-heap of negated prices


def python_side(
    levels: list[list[str]], book: dict[int, int], heap: list[int], *, negate: bool
) -> tuple[tuple[int, int], ...]:
    """The loop of `NativeStream._depth_fused`, without the memo: what the C must equal."""
    out = []
    for p, q in levels:
        px = round(float(p) / TICK)
        sz = round(float(q) / LOT)
        out.append((px, sz))
        if sz:
            if px not in book:
                heappush(heap, -px if negate else px)
            book[px] = sz
        else:
            book.pop(px, None)
    return tuple(out)


# Prices and sizes on the grid, written as Binance writes them (8 decimals) and in shorter forms.
ticks = st.integers(min_value=1, max_value=10_000_000)
lots = st.integers(min_value=0, max_value=50_000_000)
decimals = st.sampled_from([2, 5, 8])


@st.composite
def level_lists(draw: st.DrawFn) -> list[list[str]]:
    n = draw(st.integers(min_value=0, max_value=25))
    out = []
    for _ in range(n):
        px = draw(ticks)
        sz = draw(lots)
        price = f"{px * TICK:.{max(2, draw(decimals))}f}"
        out.append([price, f"{sz * LOT:.{draw(decimals) + 3}f}"])
    return out


@settings(max_examples=300, deadline=None)
@given(batches=st.lists(level_lists(), min_size=1, max_size=6), negate=st.booleans())
def test_compiled_levels_equal_the_python_loop(
    batches: list[list[list[str]]], *, negate: bool
) -> None:
    assert apply_side is not None
    book_c: dict[int, int] = {}
    heap_c: list[int] = []
    book_py: dict[int, int] = {}
    heap_py: list[int] = []
    for levels in batches:
        got = apply_side(levels, book_c, heap_c, negate, TICK, LOT)
        want = python_side(levels, book_py, heap_py, negate=negate)
        assert got == want
        assert book_c == book_py
        assert heap_c == heap_py


def test_recorded_style_text_becomes_ticks_and_lots() -> None:
    assert apply_side is not None
    book: dict[int, int] = {}
    heap: list[int] = []
    got = apply_side(
        [["59996.66000000", "0.20000000"], ["59996.67000000", "0.00000000"], ["0.01", "1"]],
        book,
        heap,
        BIDS,
        TICK,
        LOT,
    )
    assert got == ((5_999_666, 20_000), (5_999_667, 0), (1, 100_000))
    assert book == {5_999_666: 20_000, 1: 100_000}
    assert sorted(heap) == [-5_999_666, -1]


@pytest.mark.parametrize(
    "levels",
    [
        [["abc", "1"]],
        [["1.0", ""]],
        [["1.0.0", "1"]],
        [["nan", "1"]],
        [["inf", "1"]],
        [["1.0"]],
        [["1.0", "1", "2"]],
        [None],
        [[1.0, None]],
    ],
)
def test_malformed_levels_raise_the_errors_the_frame_handler_counts(levels: list[object]) -> None:
    assert apply_side is not None
    with pytest.raises((ValueError, TypeError)):
        apply_side(levels, {}, [], ASKS, TICK, LOT)


def test_levels_before_a_bad_one_are_applied_as_in_the_python_loop() -> None:
    assert apply_side is not None
    book: dict[int, int] = {}
    with pytest.raises(ValueError, match="could not convert"):
        apply_side([["1.00", "1"], ["x", "1"]], book, [], ASKS, TICK, LOT)
    assert book == {100: 100_000}
