"""The compiled frame readers (`mm_daemon._levels.parse_depth`, `parse_trade`, `apply_levels`)
against orjson and the Python parsers they stand in for.

The contract: whenever a reader accepts a frame, it says exactly what orjson plus the Python
parser says of it; for anything else it returns None and the stream takes its general path.
"""

from __future__ import annotations

import json
from heapq import heappop
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mm_daemon.binance import frames as binance_frames
from mm_daemon.binance.frames import parse_levels
from mm_daemon.core.book import ApplyResult, Book, SequenceRule

frames = binance_frames.compiled_frame_parser
pytestmark = pytest.mark.skipif(frames is None, reason="mm_daemon._levels is not built here")

TICK, LOT = 0.01, 0.00001  # Binance spot BTCUSDT
SYMBOL = b"BTCUSDT"


def parse_depth(raw: bytes, symbol: bytes = SYMBOL) -> Any:
    assert frames is not None
    return frames.parse_depth(raw, symbol, TICK, LOT)


def parse_trade(raw: bytes, symbol: bytes = SYMBOL) -> Any:
    assert frames is not None
    return frames.parse_trade(raw, symbol, TICK, LOT)


def python_depth(raw: bytes) -> tuple[int, int, int, int, Any, Any]:
    """What the general path reads from a depthUpdate frame."""
    msg = orjson.loads(raw)
    data = msg["data"] if "stream" in msg else msg
    return (
        data["E"],
        data["U"],
        data["u"],
        data.get("pu", -1),
        parse_levels(data["b"], TICK, LOT),
        parse_levels(data["a"], TICK, LOT),
    )


# -- depth -----------------------------------------------------------------------------------

prices = st.integers(min_value=1, max_value=10_000_000)
sizes = st.integers(min_value=0, max_value=50_000_000)


@st.composite
def level_texts(draw: st.DrawFn) -> list[list[str]]:
    out = []
    for _ in range(draw(st.integers(min_value=0, max_value=30))):
        price = f"{draw(prices) * TICK:.{draw(st.sampled_from([2, 5, 8]))}f}"
        size = f"{draw(sizes) * LOT:.{draw(st.sampled_from([5, 8]))}f}"
        out.append([price, size])
    return out


@st.composite
def depth_frames(draw: st.DrawFn) -> bytes:
    ids = draw(st.integers(min_value=1, max_value=10**17))  # the reader takes up to 18 digits
    data: dict[str, Any] = {
        "e": "depthUpdate",
        "E": draw(st.integers(min_value=0, max_value=2**45)),
        "s": "BTCUSDT",
        "U": ids,
        "u": ids + draw(st.integers(min_value=0, max_value=1000)),
        "b": draw(level_texts()),
        "a": draw(level_texts()),
    }
    if draw(st.booleans()):  # USD-M
        data["T"] = data["E"]
        data["pu"] = ids - 1
    keys = draw(st.permutations(list(data)))
    data = {k: data[k] for k in keys}
    if draw(st.booleans()):
        data = {"stream": "btcusdt@depth@100ms", "data": data}
    if draw(st.booleans()):
        return json.dumps(data, indent=draw(st.sampled_from([None, 1]))).encode()
    return orjson.dumps(data)


@settings(max_examples=300, deadline=None)
@given(raw=depth_frames())
def test_depth_frames_read_as_orjson_and_the_python_parser_read_them(raw: bytes) -> None:
    assert parse_depth(raw) == python_depth(raw)


@settings(max_examples=500, deadline=None)
@given(raw=depth_frames(), data=st.data())
def test_a_damaged_frame_is_refused_or_read_exactly_as_orjson_reads_it(
    raw: bytes, data: st.DataObject
) -> None:
    """Bytes cut, dropped or replaced anywhere: the reader never raises, and whatever it still
    accepts must be a frame orjson reads the same way."""
    where = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    how = data.draw(st.sampled_from(["cut", "drop", "replace"]))
    if how == "cut":
        damaged = raw[:where]
    elif how == "drop":
        damaged = raw[:where] + raw[where + 1 :]
    else:
        byte = data.draw(st.sampled_from(list(b'"\\[]{},:.-+e0123456789 xn\x00\xff')))
        damaged = raw[:where] + bytes([byte]) + raw[where + 1 :]
    got = parse_depth(damaged)
    if got is not None:
        assert got == python_depth(damaged)


DEPTH = (
    b'{"e":"depthUpdate","E":1700000000000,"T":1700000000000,"s":"BTCUSDT","U":10,"u":12,'
    b'"pu":9,"b":[["59996.66000000","0.20000000"],["59996.00","0"]],"a":[["60000.01","1.5"]]}'
)


def test_a_recorded_style_depth_frame_becomes_ticks_and_lots() -> None:
    assert parse_depth(DEPTH) == (
        1_700_000_000_000,
        10,
        12,
        9,
        ((5_999_666, 20_000), (5_999_600, 0)),
        ((6_000_001, 150_000),),
    )


def test_spot_depth_without_pu_reads_pu_as_minus_one() -> None:
    raw = b'{"e":"depthUpdate","E":5,"s":"BTCUSDT","U":1,"u":2,"b":[],"a":[]}'
    assert parse_depth(raw) == (5, 1, 2, -1, (), ())


@pytest.mark.parametrize(
    ("why", "raw"),
    [
        ("another symbol", DEPTH.replace(b"BTCUSDT", b"ETHUSDT")),
        ("another event", DEPTH.replace(b"depthUpdate", b"depthUpdatE")),
        ("an escape in a string", DEPTH.replace(b'"BTCUSDT"', b'"BTC\\u0055SDT"')),
        ("a float id", DEPTH.replace(b'"U":10', b'"U":10.0')),
        ("an exponent id", DEPTH.replace(b'"U":10', b'"U":1e1')),
        ("a level in exponent form", DEPTH.replace(b'"1.5"', b'"1.5e0"')),
        ("a negative size", DEPTH.replace(b'"1.5"', b'"-1.5"')),
        ("a number for a price", DEPTH.replace(b'"60000.01"', b"60000.01")),
        ("a level of three", DEPTH.replace(b'"1.5"]', b'"1.5","1"]')),
        ("twenty digits", DEPTH.replace(b'"1.5"', b'"1.0000000000000000001"')),
        ("a nested object", DEPTH.replace(b'"pu":9', b'"x":{"y":1},"pu":9')),
        ("two b arrays", DEPTH.replace(b'"a":', b'"b":[],"a":')),
        ("no E", DEPTH.replace(b'"E":1700000000000,', b"")),
        ("no asks", DEPTH.replace(b',"a":[["60000.01","1.5"]]', b"")),
        ("trailing bytes", DEPTH + b"x"),
        ("truncated", DEPTH[:-3]),
        ("an array frame", b"[" + DEPTH + b"]"),
        ("empty", b""),
        ("a subscription answer", b'{"result":null,"id":1}'),
    ],
)
def test_frames_off_the_common_form_are_left_to_the_general_path(why: str, raw: bytes) -> None:
    assert parse_depth(raw) is None, why


def test_text_frames_are_left_to_the_general_path() -> None:
    assert frames is not None
    assert frames.parse_depth(DEPTH.decode(), SYMBOL, TICK, LOT) is None  # type: ignore[arg-type]


def test_a_bad_tick_is_an_error_not_a_refusal() -> None:
    assert frames is not None
    with pytest.raises(ValueError, match="positive"):
        frames.parse_depth(DEPTH, SYMBOL, 0.0, LOT)


# -- trades ----------------------------------------------------------------------------------

SPOT_TRADE = (
    b'{"e":"trade","E":1700000000001,"s":"BTCUSDT","t":12345,"p":"59996.66000000",'
    b'"q":"0.00120000","b":88,"a":50,"T":1700000000000,"m":true,"M":true}'
)
USDM_TRADE = (
    b'{"e":"trade","E":1700000000001,"T":1700000000000,"s":"BTCUSDT","t":12345,'
    b'"p":"59996.60","q":"0.012","X":"MARKET","m":false}'
)


def test_trades_read_as_the_python_parser_reads_them() -> None:
    assert parse_trade(SPOT_TRADE) == (1_700_000_000_000, 12345, 5_999_666, 120, True)
    assert parse_trade(USDM_TRADE) == (1_700_000_000_000, 12345, 5_999_660, 1_200, False)
    assert parse_trade(b'{"stream":"btcusdt@trade","data":' + USDM_TRADE + b"}") == parse_trade(
        USDM_TRADE
    )


@pytest.mark.parametrize(
    ("why", "raw"),
    [
        ("an insurance fund print", USDM_TRADE.replace(b'"MARKET"', b'"INSURANCE_FUND"')),
        ("another symbol", USDM_TRADE.replace(b"BTCUSDT", b"ETHUSDT")),
        ("a depth frame", DEPTH),
        ("m not a bool", USDM_TRADE.replace(b'"m":false', b'"m":0')),
        ("no trade id", USDM_TRADE.replace(b'"t":12345,', b"")),
        ("no price", USDM_TRADE.replace(b'"p":"59996.60",', b"")),
        ("a price in exponent form", USDM_TRADE.replace(b'"59996.60"', b'"5.999660e4"')),
    ],
)
def test_trades_off_the_common_form_are_left_to_the_general_path(why: str, raw: bytes) -> None:
    assert parse_trade(raw) is None, why


# -- applying levels -------------------------------------------------------------------------


def int_levels(low: int, high: int) -> st.SearchStrategy[tuple[tuple[int, int], ...]]:
    level = st.tuples(
        st.integers(min_value=low, max_value=high), st.integers(min_value=0, max_value=5)
    )
    return st.lists(level, max_size=25).map(tuple)


@settings(max_examples=300, deadline=None)
@given(batches=st.lists(st.tuples(int_levels(1, 60), int_levels(61, 120)), min_size=1, max_size=12))
def test_applied_levels_leave_the_book_as_book_update_leaves_it(
    batches: list[tuple[Any, Any]],
) -> None:
    """New, changed and deleted levels, deletes of absent prices, repeats within a diff, heaps
    full of stale entries: the sides, and the touch read from the heaps, match the pure-Python
    Book (bids and asks apart, so the book never crosses)."""
    assert frames is not None
    ours, reference = Book(SequenceRule.NONE), Book(SequenceRule.NONE)
    ours.load(0, (), ())
    reference.load(0, (), ())
    for n, (bids, asks) in enumerate(batches, start=1):
        assert ours.begin_update(n, n, n - 1) == ApplyResult.APPLIED
        touch = frames.apply_levels(bids, asks, *ours.sides())
        assert ours.set_touch(*touch) == ApplyResult.APPLIED
        reference.update(n, n, n - 1, bids, asks)
        assert ours.bids() == reference.bids()
        assert ours.asks() == reference.asks()
        assert (ours.best_bid_ticks, ours.best_ask_ticks) == (
            reference.best_bid_ticks,
            reference.best_ask_ticks,
        )
    _, bid_heap, _, ask_heap = ours.sides()
    for heap in (list(bid_heap), list(ask_heap)):  # still heaps: they pop in order
        popped = [heappop(heap) for _ in range(len(heap))]
        assert popped == sorted(popped)


def test_apply_levels_refuses_what_is_not_a_book() -> None:
    assert frames is not None
    with pytest.raises(TypeError):
        frames.apply_levels((), (), {}, [], [], [])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pair"):
        frames.apply_levels(((1, 2, 3),), (), {}, [], {}, [])  # type: ignore[arg-type]


def test_heaps_full_of_stale_prices_are_rebuilt_and_the_touch_still_found() -> None:
    """Levels added above the touch and removed again, round after round: the stale heap
    entries are dropped or the heaps rebuilt (as Book.finish_update does), and the touch is
    always the book's."""
    assert frames is not None
    book = Book(SequenceRule.NONE)
    book.load(0, ((1_000, 1),), ((2_000, 1),))
    bids_book, bid_heap, asks_book, ask_heap = book.sides()
    for n in range(400):
        bids = tuple((1_001 + (n * 10 + k) % 900, 1) for k in range(10))
        asks = tuple((1_999 - (n * 10 + k) % 900, 1) for k in range(10))
        touch = frames.apply_levels(bids, asks, bids_book, bid_heap, asks_book, ask_heap)
        assert touch == (max(bids_book), min(asks_book))
        gone = tuple((px, 0) for px, _ in bids), tuple((px, 0) for px, _ in asks)
        touch = frames.apply_levels(*gone, bids_book, bid_heap, asks_book, ask_heap)
        assert touch == (1_000, 2_000)
        assert len(bid_heap) <= 2 * len(bids_book) + 256 + 10
        assert len(ask_heap) <= 2 * len(asks_book) + 256 + 10
    assert frames.apply_levels(((1_000, 0),), ((2_000, 0),), *book.sides()) == (None, None)


# -- slotted instances -----------------------------------------------------------------------


def test_the_compiled_builders_make_the_objects_the_constructors_make() -> None:
    from mm_daemon._levels import SlotBuilder  # noqa: PLC0415
    from mm_daemon.core.types import BookDelta, Side, Trade  # noqa: PLC0415

    delta_args = ("v", "BTC/USDT", 1, 2, 3, 4, 2, ((1, 2),), ())
    trade_args = ("v", "BTC/USDT", 1, 2, 77, 100, 5, Side.SELL)
    for build_delta, build_trade in (
        (binance_frames.new_book_delta, binance_frames.new_trade),
        (binance_frames._delta_constructor(), binance_frames._trade_constructor()),
    ):
        delta = build_delta(*delta_args)
        assert type(delta) is BookDelta
        assert delta == BookDelta(*delta_args)
        assert hash(delta) == hash(BookDelta(*delta_args))
        trade = build_trade(*trade_args)
        assert trade == Trade(*trade_args)
        with pytest.raises(AttributeError):
            trade.price_ticks = 1  # type: ignore[misc]  still frozen
    with pytest.raises(TypeError, match="positional"):
        SlotBuilder(Trade, ("venue",) * 0 + tuple(Trade.__slots__))("too", "few")


@pytest.mark.parametrize(
    ("names", "why"),
    [
        (("venue", "symbol"), "slots; 2 names"),
        (("venue",) * 8, "named twice"),
        (
            (
                "venue",
                "symbol",
                "ts_exchange_ns",
                "ts_local_ns",
                "trade_id",
                "price_ticks",
                "size_lots",
                "nope",
            ),
            "not a slot",
        ),
    ],
)
def test_a_builder_must_name_every_slot_once(names: tuple[str, ...], why: str) -> None:
    from mm_daemon._levels import SlotBuilder  # noqa: PLC0415
    from mm_daemon.core.types import Trade  # noqa: PLC0415

    with pytest.raises(TypeError, match=why):
        SlotBuilder(Trade, names)


def test_a_builder_refuses_a_class_with_a_dict() -> None:
    from mm_daemon._levels import SlotBuilder  # noqa: PLC0415

    class Plain:
        pass

    with pytest.raises(TypeError, match="__slots__"):
        SlotBuilder(Plain, ())


def test_a_size_half_way_between_two_lots_is_left_to_the_general_path() -> None:
    """Off the lot grid (never from Binance; a damaged frame) the compiled reader refuses
    rather than rounding the half lot its own way: the general path then decides."""
    raw = DEPTH.replace(b'"1.5"', b'"0.00001500"')
    assert parse_depth(raw) is None
    trade = (
        b'{"e":"trade","E":1,"s":"BTCUSDT","t":7,"p":"60000.01","q":"0.00001500",'
        b'"T":1,"m":true,"M":true}'
    )
    assert parse_trade(trade) is None
    assert parse_trade(trade.replace(b'"0.00001500"', b'"0.00002000"')) is not None
