"""Native Binance frames: parsing into ticks and lots, Binance's book sync, malformed frames.

The recorded-data tests rebuild real Binance books from the captures and compare the touch with
every recorded bookTicker that shares an update id.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from mm_daemon.binance.capture import default_data_dir, read_capture
from mm_daemon.binance.depth import BinanceDepthSync
from mm_daemon.binance.frames import (
    new_book_delta,
    new_trade,
    parse_depth_event,
    parse_levels,
    parse_trade_event,
)
from mm_daemon.core.book import ApplyResult
from mm_daemon.core.types import BookDelta, BookSnapshot, Instrument, InstrumentKind, Side, Trade
from mm_daemon.venues import binance_stream
from mm_daemon.venues.binance_stream import NativeStream

SPOT_BTC = Instrument("spot", "BTC/USDT", "BTCUSDT", InstrumentKind.SPOT, "BTC", "USDT", 0.01, 1e-5)
SPOT_ETH = Instrument("spot", "ETH/USDT", "ETHUSDT", InstrumentKind.SPOT, "ETH", "USDT", 0.01, 1e-4)
USDM_BTC = Instrument(
    "perp", "BTC/USDT:USDT", "BTCUSDT", InstrumentKind.PERPETUAL, "BTC", "USDT", 0.1, 0.001
)
USDM_ETH = Instrument(
    "perp", "ETH/USDT:USDT", "ETHUSDT", InstrumentKind.PERPETUAL, "ETH", "USDT", 0.01, 0.001
)

DATA = default_data_dir() if default_data_dir().is_dir() else None
needs_data = pytest.mark.skipif(
    DATA is None, reason="recorded Binance captures absent (set MMD_DATA_DIR)"
)


def depth_frame(first: int, last: int, prev: int | None = None, bids=(), asks=()) -> bytes:
    data: dict[str, object] = {
        "e": "depthUpdate",
        "E": 1_723_161_256_299,
        "s": "BTCUSDT",
        "U": first,
        "u": last,
        "b": [list(x) for x in bids],
        "a": [list(x) for x in asks],
    }
    if prev is not None:
        data["pu"] = prev
    return orjson.dumps({"stream": "btcusdt@depth@100ms", "data": data})


def test_levels_become_integer_ticks_and_lots() -> None:
    levels = parse_levels([["61800.30", "3.330"], ["61804.60", "0.000"]], 0.1, 0.001)
    assert levels == ((618003, 3330), (618046, 0))


def test_levels_round_exactly_at_small_lot_sizes() -> None:
    assert parse_levels([["58000.01", "0.00007"]], 0.01, 1e-5) == ((5800001, 7),)


def test_depth_event_keeps_ids_and_exchange_time() -> None:
    data = orjson.loads(depth_frame(10, 20, 9, bids=[("1.0", "2")]))["data"]
    delta = parse_depth_event(data, USDM_BTC, "perp", 5)
    assert (delta.first_update_id, delta.last_update_id, delta.prev_update_id) == (10, 20, 9)
    assert delta.ts_exchange_ns == 1_723_161_256_299_000_000
    assert delta.ts_local_ns == 5
    assert delta.bids == ((10, 2000),)


def test_spot_depth_event_has_no_previous_id() -> None:
    data = orjson.loads(depth_frame(10, 20))["data"]
    assert parse_depth_event(data, SPOT_BTC, "spot", 0).prev_update_id == -1


def test_trade_with_buyer_as_maker_is_a_sell() -> None:
    data = {"e": "trade", "T": 1000, "s": "BTCUSDT", "t": 7, "p": "61800.30", "q": "0.5", "m": True}
    trade = parse_trade_event(data, USDM_BTC, "perp", 0)
    assert trade.aggressor is Side.SELL
    assert (trade.price_ticks, trade.size_lots, trade.trade_id) == (618003, 500, 7)
    assert trade.ts_exchange_ns == 1000 * 1_000_000


class TestDepthSync:
    def test_buffers_until_the_snapshot(self) -> None:
        sync = BinanceDepthSync(SPOT_BTC, "spot", usdm=False)
        d = parse_depth_event(orjson.loads(depth_frame(5, 9))["data"], SPOT_BTC, "spot", 0)
        assert sync.on_delta(d) is ApplyResult.SKIPPED
        assert sync.buffered == 1

    def test_snapshot_replays_the_buffer_by_spot_rules(self) -> None:
        sync = BinanceDepthSync(SPOT_BTC, "spot", usdm=False)
        for first, last, bid in ((5, 9, 100), (10, 12, 101), (13, 15, 102)):
            frame = depth_frame(first, last, bids=[(f"{bid / 100:.2f}", "1")])
            sync.on_delta(parse_depth_event(orjson.loads(frame)["data"], SPOT_BTC, "spot", 0))
        # Snapshot at 11: the first event (u=9) is dropped, the second straddles 12.
        assert sync.on_snapshot(11, ((50, 1),), ((200, 1),)) is ApplyResult.APPLIED
        assert sync.book.bids() == ((102, 100000), (101, 100000), (50, 1))
        assert sync.book.update_id == 15
        assert not sync.awaiting_snapshot

    def test_snapshot_older_than_the_buffer_does_not_join(self) -> None:
        sync = BinanceDepthSync(SPOT_BTC, "spot", usdm=False)
        sync.on_delta(
            parse_depth_event(orjson.loads(depth_frame(20, 25))["data"], SPOT_BTC, "s", 0)
        )
        assert sync.on_snapshot(10, ((50, 1),), ((200, 1),)) is ApplyResult.GAP
        assert sync.awaiting_snapshot

    def test_gap_after_sync_restarts_buffering_with_the_offending_diff(self) -> None:
        sync = BinanceDepthSync(USDM_BTC, "perp", usdm=True)
        sync.on_snapshot(100, ((50, 1),), ((200, 1),))
        ok = parse_depth_event(orjson.loads(depth_frame(90, 105, 89))["data"], USDM_BTC, "p", 0)
        bad = parse_depth_event(orjson.loads(depth_frame(110, 120, 108))["data"], USDM_BTC, "p", 0)
        assert sync.on_delta(ok) is ApplyResult.APPLIED
        assert sync.on_delta(bad) is ApplyResult.GAP
        assert sync.awaiting_snapshot
        assert sync.first_buffered_id() == 110

    def test_snapshot_event_is_the_synced_book(self) -> None:
        sync = BinanceDepthSync(SPOT_BTC, "spot", usdm=False)
        sync.on_snapshot(7, ((50, 1), (49, 2)), ((60, 3),))
        snap = sync.snapshot_event(1, 2)
        assert isinstance(snap, BookSnapshot)
        assert (snap.update_id, snap.bids, snap.asks) == (7, ((50, 1), (49, 2)), ((60, 3),))


@pytest.fixture(autouse=True, params=["compiled frames", "compiled levels", "python"])
def level_loop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test of this module runs three ways: compiled frame readers (orjson only for what
    they leave alone), orjson with the compiled level loop, and pure Python."""
    if request.param != "python" and binance_stream.compiled_apply_side is None:
        pytest.skip("mm_daemon._levels is not built here")
    if request.param != "compiled frames":
        monkeypatch.setattr(binance_stream, "compiled_frame_parser", None)
    if request.param == "python":
        monkeypatch.setattr(binance_stream, "compiled_apply_side", None)
    return str(request.param)


def make_stream(kind: str, events: list[object]) -> NativeStream:
    async def never(_symbol: str) -> object:
        raise AssertionError("no snapshot expected")

    return NativeStream(
        venue="perp",
        ws_url="ws://127.0.0.1:1/ws/0",
        instrument=USDM_BTC,
        kind=kind,  # type: ignore[arg-type]
        usdm=True,
        sink=events.append,
        fetch_snapshot=never,
    )


@pytest.mark.parametrize(
    "frame",
    [
        b"not json",
        b"[1, 2]",
        b'{"stream": "btcusdt@depth@100ms"}',
        b'{"e": "depthUpdate", "s": "BTCUSDT", "U": 1}',
        b'{"e": "depthUpdate", "s": "BTCUSDT", "E": 1, "U": 1, "u": 2, "b": [["x", "1"]], "a": []}',
        b'{"foo": 1}',
    ],
)
def test_malformed_frames_are_counted_not_raised(frame: bytes) -> None:
    events: list[object] = []
    stream = make_stream("depth", events)
    stream.on_frame(frame, 0)
    assert stream.stats.malformed == 1
    assert events == []


def test_frame_for_another_symbol_is_counted_and_ignored() -> None:
    events: list[object] = []
    stream = make_stream("trade", events)
    frame = b'{"e":"trade","s":"ETHUSDT","T":1,"t":1,"p":"1","q":"1","m":false}'
    stream.on_frame(frame, 0)
    assert stream.stats.unknown_symbol == 1
    assert events == []


def test_subscription_ack_is_not_malformed() -> None:
    events: list[object] = []
    stream = make_stream("depth", events)
    stream.on_frame(b'{"result": null, "id": 1}', 0)
    assert stream.stats.malformed == 0


def test_trade_frame_reaches_the_sink() -> None:
    events: list[object] = []
    stream = make_stream("trade", events)
    frame = b'{"e":"trade","s":"BTCUSDT","T":1,"t":9,"p":"100.0","q":"2","m":false,"X":"MARKET"}'
    stream.on_frame(frame, 0)
    assert len(events) == 1
    assert isinstance(events[0], Trade)
    assert events[0].aggressor is Side.BUY


def test_fast_delta_equals_the_constructed_one() -> None:
    args = ("perp", "BTC/USDT:USDT", 1, 2, 3, 4, 5, ((10, 1),), ((11, 2),))
    fast = new_book_delta(*args)
    assert type(fast) is BookDelta
    assert fast == BookDelta(*args)


def test_fast_trade_equals_the_constructed_one() -> None:
    args = ("spot", "BTC/USDT", 1, 2, 9, 1_000_000, 2_000, Side.SELL)
    fast = new_trade(*args)
    assert type(fast) is Trade
    assert fast == Trade(*args)
    assert hash(fast) == hash(Trade(*args))


def test_in_sync_frames_apply_levels_in_order_and_emit_them_as_parsed() -> None:
    events: list[object] = []
    stream = make_stream("depth", events)
    stream.sync.on_snapshot(100, ((618000, 1000),), ((618010, 1000),))
    frame = depth_frame(
        95,
        105,
        99,
        bids=[("61800.10", "1.500"), ("61800.00", "0.000"), ("61799.00", "2.000")],
        asks=[("61802.00", "0.250")],
    )
    stream.on_frame(frame, 7)
    assert stream.book.bids() == ((618001, 1500), (617990, 2000))
    assert stream.book.asks() == ((618010, 1000), (618020, 250))
    assert events == [parse_depth_event(orjson.loads(frame)["data"], USDM_BTC, "perp", 7)]


# -- recorded data -------------------------------------------------------------------------


def replay_touch_checks(instrument: Instrument, *paths: Path) -> tuple[int, int, int]:
    """Rebuild the book from a capture; (bookTickers sharing an update id, matches, resyncs)."""
    sync = BinanceDepthSync(instrument, "rec", usdm=instrument.kind is InstrumentKind.PERPETUAL)
    tick, lot = instrument.tick_size, instrument.lot_size
    tickers: dict[int, tuple[int, int, int, int]] = {}
    book_touch: dict[int, tuple[int, int, int, int]] = {}
    resyncs = 0
    for ts, raw in read_capture(*paths):
        msg = orjson.loads(raw)
        if "lastUpdateId" in msg:
            last, bids, asks = msg["lastUpdateId"], msg["bids"], msg["asks"]
            result = sync.on_snapshot(
                last, parse_levels(bids, tick, lot), parse_levels(asks, tick, lot)
            )
            assert result is ApplyResult.APPLIED
            continue
        data = msg["data"]
        stream = msg["stream"]
        if "@depth" in stream:
            result = sync.on_delta(parse_depth_event(data, instrument, "rec", ts))
            if result.needs_resync:
                resyncs += 1
            elif result is ApplyResult.APPLIED:
                bid, ask = sync.book.best_bid(), sync.book.best_ask()
                assert bid is not None
                assert ask is not None
                book_touch[sync.book.update_id] = (*bid, *ask)
        elif stream.endswith("@bookTicker"):
            tickers[data["u"]] = (
                round(float(data["b"]) / tick),
                round(float(data["B"]) / lot),
                round(float(data["a"]) / tick),
                round(float(data["A"]) / lot),
            )
    shared = set(tickers) & set(book_touch)
    matches = sum(1 for u in shared if tickers[u] == book_touch[u])
    return len(shared), matches, resyncs


@needs_data
@pytest.mark.data
@pytest.mark.parametrize(
    ("instrument", "files"),
    [
        (SPOT_BTC, ("spot/btcusdt_20240808.gz", "spot/btcusdt_20240809.gz")),
        (SPOT_ETH, ("spot/ethusdt_20240808.gz", "spot/ethusdt_20240809.gz")),
        (USDM_BTC, ("usdm/btcusdt_20240808.gz",)),
        (USDM_ETH, ("usdm/ethusdt_20240808.gz",)),
    ],
    ids=["spot-btc", "spot-eth", "usdm-btc", "usdm-eth"],
)
def test_rebuilt_touch_equals_every_recorded_book_ticker(
    instrument: Instrument, files: tuple[str, ...]
) -> None:
    assert DATA is not None
    shared, matches, resyncs = replay_touch_checks(instrument, *(DATA / f for f in files))
    assert resyncs == 0
    assert shared >= 500
    assert matches == shared


@needs_data
@pytest.mark.data
def test_recorded_frames_through_the_reader_give_the_reference_deltas_and_book() -> None:
    assert DATA is not None
    tick, lot = USDM_BTC.tick_size, USDM_BTC.lot_size
    reference = BinanceDepthSync(USDM_BTC, "perp", usdm=True)
    expected: list[BookDelta] = []
    events: list[object] = []
    stream = make_stream("depth", events)
    for ts, raw in read_capture(DATA / "usdm/btcusdt_20240808.gz"):
        msg = orjson.loads(raw)
        if "lastUpdateId" in msg:
            levels = (parse_levels(msg["bids"], tick, lot), parse_levels(msg["asks"], tick, lot))
            assert reference.on_snapshot(msg["lastUpdateId"], *levels) is ApplyResult.APPLIED
            assert stream.sync.on_snapshot(msg["lastUpdateId"], *levels) is ApplyResult.APPLIED
        elif "@depth" in msg["stream"]:
            delta = parse_depth_event(msg["data"], USDM_BTC, "perp", ts)
            if reference.on_delta(delta) is ApplyResult.APPLIED:
                expected.append(delta)
            stream.on_frame(raw, ts)
    assert len(expected) > 1000
    assert events == expected
    assert stream.stats.resyncs == 0
    assert stream.book.bids() == reference.book.bids()
    assert stream.book.asks() == reference.book.asks()


@needs_data
@pytest.mark.data
def test_recorded_delta_carries_usdm_previous_id() -> None:
    assert DATA is not None
    for _, raw in read_capture(DATA / "usdm/btcusdt_20240808.gz"):
        msg = orjson.loads(raw)
        if msg.get("stream", "").endswith("@depth@0ms"):
            delta = parse_depth_event(msg["data"], USDM_BTC, "rec", 0)
            assert isinstance(delta, BookDelta)
            assert delta.prev_update_id > 0
            assert all(px > 0 for px, _ in delta.bids + delta.asks)
            break
    else:
        pytest.fail("no USD-M depth frame in the capture")


def _trade_frame(trade_id: int) -> bytes:
    return (
        b'{"e":"trade","s":"BTCUSDT","T":1,"t":%d,"p":"100.0","q":"2","m":false,"X":"MARKET"}'
        % trade_id
    )


def _held_trade_stream(events: list[object]) -> NativeStream:
    return NativeStream(
        venue="perp",
        ws_url="ws://127.0.0.1:1/ws/0",
        instrument=USDM_BTC,
        kind="trade",
        usdm=True,
        sink=events.append,
        trades_after_book=True,
    )


async def test_trades_after_book_are_handled_once_the_turn_has_read_everything() -> None:
    events: list[object] = []
    stream = _held_trade_stream(events)
    for trade_id, ts in ((7, 100), (8, 100), (9, 250)):
        stream.on_frame(_trade_frame(trade_id), ts)
    assert events == []  # held: a book diff read in this turn goes first
    await asyncio.sleep(0)
    trades = [e for e in events if isinstance(e, Trade)]
    assert [(t.trade_id, t.ts_local_ns) for t in trades] == [(7, 100), (8, 100), (9, 250)]
    assert stream.stats.frames == 3


def test_trades_after_book_without_a_running_loop_are_handled_at_once() -> None:
    events: list[object] = []
    stream = _held_trade_stream(events)
    stream.on_frame(_trade_frame(7), 100)
    assert [e.trade_id for e in events if isinstance(e, Trade)] == [7]
