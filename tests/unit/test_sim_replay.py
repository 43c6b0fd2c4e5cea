"""Specification of the replay source: recorded frames, the rebuilt book, queue-model fills."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest

from mm_daemon.binance.capture import (
    FrameKind,
    RecordedFrame,
    capture_files,
    default_data_dir,
    iter_frames,
)
from mm_daemon.binance.markets import Dialect, recorded_instrument
from mm_daemon.config import SimConfig
from mm_daemon.core.types import Instrument, InstrumentKind, Liquidity, OrderType, Side
from mm_daemon.sim.matching import ERR_WOULD_MATCH, Accounts, ExecType, OrderView, SimOrderStatus
from mm_daemon.sim.replay import (
    ReplayBook,
    ReplayClock,
    ReplayEngine,
    ReplayGapError,
    merge_feeds,
    open_replay,
)

DATA_DIR = default_data_dir()
needs_data = pytest.mark.skipif(
    not (DATA_DIR / "spot").is_dir(),
    reason=f"recorded Binance captures not found in {DATA_DIR} (set MMD_DATA_DIR)",
)

# -- hand-made frames (no data needed) ---------------------------------------------------------

PERP = recorded_instrument("usdm", "btcusdt", "sim-perp")  # tick 0.1, lot 0.001
LOT = 0.001


def frame(kind: FrameKind, data: dict[str, Any], stream: str = "btcusdt@x") -> RecordedFrame:
    if kind is FrameKind.SNAPSHOT:
        return RecordedFrame(0, orjson.dumps(data), kind, "", data)
    raw = orjson.dumps({"stream": stream, "data": data})
    return RecordedFrame(0, raw, kind, stream, data)


def snapshot(last: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> RecordedFrame:
    return frame(
        FrameKind.SNAPSHOT,
        {"lastUpdateId": last, "bids": [list(b) for b in bids], "asks": [list(a) for a in asks]},
    )


def depth(
    first: int, last: int, prev: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]]
) -> RecordedFrame:
    data = {
        "e": "depthUpdate",
        "U": first,
        "u": last,
        "pu": prev,
        "b": [list(b) for b in bids],
        "a": [list(a) for a in asks],
    }
    return frame(FrameKind.DEPTH, data, "btcusdt@depth@0ms")


_trade_ids = itertools.count(1)


def trade(price: str, qty: str, aggressor: Side) -> RecordedFrame:
    data = {
        "e": "trade",
        "t": next(_trade_ids),
        "p": price,
        "q": qty,
        "X": "MARKET",
        "m": aggressor is Side.SELL,
    }
    return frame(FrameKind.TRADE, data, "btcusdt@trade")


def lots(n: int) -> str:
    return f"{n * LOT:.3f}"


def margin() -> Accounts:
    return Accounts(InstrumentKind.PERPETUAL, {"USDT": 1_000_000.0})


def engine_with_book(share: float = 0.0) -> ReplayEngine:
    eng = ReplayEngine(PERP, margin(), dialect="usdm", size_decrease_queue_share=share)
    eng.on_frame(
        snapshot(100, [("60000.0", lots(5)), ("59999.9", lots(8))], [("60000.1", lots(4))]), 0
    )
    return eng


def fills_of(eng: ReplayEngine, f: RecordedFrame, order_id: int) -> list[int]:
    res = eng.on_frame(f, 1)
    return [r.last_lots for r in res.reports if r.order_id == order_id and r.last_lots]


def test_client_order_behind_x_lots_fills_only_after_x_lots_trade_at_its_price() -> None:
    eng = engine_with_book()
    placed = eng.submit("k", Side.BUY, OrderType.LIMIT, 3, 1, price_ticks=600_000)
    assert placed.ok
    assert fills_of(eng, trade("60000.0", lots(2), Side.SELL), placed.order_id) == []
    assert fills_of(eng, trade("60000.0", lots(2), Side.SELL), placed.order_id) == []
    # 4 of the 5 lots ahead have traded; a 3-lot print eats the last 1 and fills 2 of ours.
    assert fills_of(eng, trade("60000.0", lots(3), Side.SELL), placed.order_id) == [2]
    assert fills_of(eng, trade("60000.0", lots(1), Side.SELL), placed.order_id) == [1]
    view = eng.query("k", order_id=placed.order_id)
    assert isinstance(view, OrderView)
    assert view.status is SimOrderStatus.FILLED


def test_trades_on_the_other_side_do_not_fill_a_resting_bid() -> None:
    eng = engine_with_book()
    placed = eng.submit("k", Side.BUY, OrderType.LIMIT, 3, 1, price_ticks=600_000)
    assert fills_of(eng, trade("60000.1", lots(50), Side.BUY), placed.order_id) == []


def test_share_of_size_decreases_moves_the_order_up_the_queue() -> None:
    eng = engine_with_book(share=1.0)
    placed = eng.submit("k", Side.BUY, OrderType.LIMIT, 3, 1, price_ticks=600_000)
    eng.on_frame(depth(100, 101, 99, [("60000.0", lots(1))], []), 1)  # 4 lots cancelled
    assert fills_of(eng, trade("60000.0", lots(2), Side.SELL), placed.order_id) == [1]


def test_trade_through_the_price_fills_at_once() -> None:
    eng = engine_with_book()
    placed = eng.submit("k", Side.BUY, OrderType.LIMIT, 3, 1, price_ticks=600_000)
    assert fills_of(eng, trade("59999.9", lots(2), Side.SELL), placed.order_id) == [2]


def test_fills_are_maker_and_charged_the_maker_fee() -> None:
    inst = recorded_instrument(
        "usdm", "btcusdt", "p", maker_fee_rate=-0.0001, taker_fee_rate=0.0005
    )
    eng = ReplayEngine(inst, margin(), dialect="usdm")
    eng.on_frame(snapshot(1, [("60000.0", lots(1))], [("60000.1", lots(1))]), 0)
    placed = eng.submit("k", Side.BUY, OrderType.LIMIT, 2, 1, price_ticks=600_000)
    res = eng.on_frame(trade("60000.0", lots(3), Side.SELL), 2)
    (fill,) = [r for r in res.reports if r.exec_type is ExecType.TRADE]
    assert fill.order_id == placed.order_id
    assert fill.liquidity is Liquidity.MAKER
    assert fill.fee == pytest.approx(-0.0001 * 60_000.0 * 0.002)


def test_order_through_the_touch_fills_at_once_as_taker_against_displayed_size() -> None:
    eng = engine_with_book()
    res = eng.submit("k", Side.SELL, OrderType.LIMIT, 10, 1, price_ticks=599_999)
    trades = [(r.last_price_ticks, r.last_lots) for r in res.reports if r.last_lots]
    assert trades == [(600_000, 5), (599_999, 5)]
    assert all(r.liquidity is Liquidity.TAKER for r in res.reports if r.last_lots)
    assert res.order is not None
    assert res.order.status is SimOrderStatus.FILLED


def test_post_only_through_the_touch_is_rejected() -> None:
    eng = engine_with_book()
    res = eng.submit("k", Side.BUY, OrderType.LIMIT_MAKER, 2, 1, price_ticks=600_001)
    assert res.error == ERR_WOULD_MATCH


def test_client_orders_do_not_change_the_recorded_book() -> None:
    eng = engine_with_book()
    before = eng.depth(10)
    res = eng.submit("k", Side.BUY, OrderType.LIMIT, 3, 1, price_ticks=599_998)
    assert res.level_changes == []
    assert eng.depth(10) == before
    assert eng.update_id == 100


def test_cancelled_order_is_no_longer_filled() -> None:
    eng = engine_with_book()
    placed = eng.submit("k", Side.BUY, OrderType.LIMIT, 3, 1, price_ticks=600_000)
    assert eng.cancel("k", 2, order_id=placed.order_id).ok
    assert fills_of(eng, trade("59999.0", lots(50), Side.SELL), placed.order_id) == []


def test_usdm_update_that_breaks_pu_chain_raises_gap() -> None:
    book = ReplayBook(PERP, "usdm")
    book.apply_snapshot({"lastUpdateId": 10, "bids": [], "asks": []})
    assert book.apply_depth({"U": 9, "u": 12, "pu": 8, "b": [], "a": []}) == []
    with pytest.raises(ReplayGapError):
        book.apply_depth({"U": 14, "u": 15, "pu": 13, "b": [], "a": []})


def test_spot_updates_before_the_snapshot_are_buffered_and_applied_after_it() -> None:
    spot = recorded_instrument("spot", "btcusdt", "s")
    book = ReplayBook(spot, "spot")
    assert book.apply_depth({"U": 1, "u": 5, "b": [["100.00", "1.0"]], "a": []}) is None
    assert book.apply_depth({"U": 6, "u": 9, "b": [["100.01", "2.0"]], "a": []}) is None
    book.apply_snapshot({"lastUpdateId": 7, "bids": [["99.00", "1.0"]], "asks": []})
    assert book.last_update_id == 9
    assert book.best_bid() == (10_001, 200_000)


def test_replay_clock_maps_recorded_time_at_speed() -> None:
    clock = ReplayClock(first_local_ns=1_000, start_wall_ns=50_000, speed=10.0)
    assert clock.due_ns(1_000) == 50_000
    assert clock.due_ns(101_000) == 60_000
    assert ReplayClock(1_000, 50_000, speed=0.0).due_ns(10**12) == 50_000


# -- recorded data -----------------------------------------------------------------------------


def _ticker_levels(inst: Instrument, data: dict[str, Any]) -> tuple[tuple[int, int], ...]:
    return (
        (inst.price_to_ticks(float(data["b"])), inst.size_to_lots(float(data["B"]))),
        (inst.price_to_ticks(float(data["a"])), inst.size_to_lots(float(data["A"]))),
    )


def _book_matches_book_ticker(dialect: Dialect, frames_to_check: int) -> int:
    inst = recorded_instrument(dialect, "btcusdt", "v")
    eng = ReplayEngine(inst, dialect=dialect)
    after_update: dict[int, tuple[tuple[int, int], ...]] = {}
    tickers: dict[int, tuple[tuple[int, int], ...]] = {}
    frames = iter_frames(DATA_DIR, dialect, "btcusdt")
    for f in itertools.islice(frames, frames_to_check):
        res = eng.on_frame(f, f.local_ns)
        if res.level_changes:
            bid, ask = eng.best_bid(), eng.best_ask()
            assert bid is not None
            assert ask is not None
            assert bid[0] < ask[0]
            after_update[eng.update_id] = (bid, ask)
        if f.kind is FrameKind.BOOK_TICKER:
            tickers[int(f.data["u"])] = _ticker_levels(inst, f.data)
    shared = sorted(set(after_update) & set(tickers))
    mismatched = [u for u in shared if after_update[u] != tickers[u]]
    assert mismatched == []
    return len(shared)


@needs_data
def test_replayed_spot_book_equals_every_book_ticker_sharing_an_update_id() -> None:
    assert _book_matches_book_ticker("spot", 40_000) > 400


@needs_data
def test_replayed_usdm_book_equals_every_book_ticker_sharing_an_update_id() -> None:
    assert _book_matches_book_ticker("usdm", 40_000) > 200


@needs_data
def test_spot_captures_chain_across_files_without_a_gap() -> None:
    paths = capture_files(DATA_DIR, "spot", "btcusdt")
    assert [p.name for p in paths] == ["btcusdt_20240808.gz", "btcusdt_20240809.gz"]
    inst = recorded_instrument("spot", "btcusdt", "v")
    book = ReplayBook(inst, "spot")
    applied = 0
    for f in iter_frames(DATA_DIR, "spot", "btcusdt"):
        if f.kind is FrameKind.SNAPSHOT:
            book.apply_snapshot(f.data)
        elif f.kind is FrameKind.DEPTH and book.apply_depth(f.data):
            applied += 1
    assert applied > 6000  # both files' updates, in one unbroken chain


@needs_data
def test_frames_keep_the_raw_bytes_and_the_single_stream_payload() -> None:
    f = next(x for x in iter_frames(DATA_DIR, "usdm", "btcusdt") if x.kind is FrameKind.TRADE)
    assert f.stream == "btcusdt@trade"
    assert orjson.loads(f.raw)["data"] == f.data
    assert orjson.loads(f.payload_raw) == f.data


@needs_data
def test_passive_order_on_real_flow_fills_only_from_trades_at_or_through_its_price() -> None:
    inst = recorded_instrument("usdm", "btcusdt", "v")
    eng = ReplayEngine(inst, margin(), dialect="usdm", size_decrease_queue_share=0.0)
    frames = iter_frames(DATA_DIR, "usdm", "btcusdt")
    placed_id = -1
    price = 0
    ahead = 0
    traded_at_or_through = 0
    filled = 0
    first_fill_after_traded = -1
    for f in itertools.islice(frames, 60_000):
        res = eng.on_frame(f, f.local_ns)
        if placed_id < 0 and eng.book.synced:
            bid = eng.best_bid()
            assert bid is not None
            price, ahead = bid
            placed = eng.submit("k", Side.BUY, OrderType.LIMIT, 5, f.local_ns, price_ticks=price)
            assert placed.ok
            placed_id = placed.order_id
            continue
        for t in res.trades:
            if t.aggressor is Side.SELL and t.price_ticks <= price:
                traded_at_or_through += t.size_lots
        new = sum(r.last_lots for r in res.reports if r.order_id == placed_id)
        if new and first_fill_after_traded < 0:
            first_fill_after_traded = traded_at_or_through
        filled += new
    assert placed_id >= 0
    assert ahead > 0
    assert filled > 0
    assert first_fill_after_traded > 0
    assert filled <= traded_at_or_through


def test_missing_capture_raises_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no spot capture of btcusdt"):
        iter_frames(tmp_path, "spot", "btcusdt")


@needs_data
def test_open_replay_serves_spot_and_usdm_merged_in_receive_order() -> None:
    cfg = SimConfig(source="replay", starting_quote=5_000.0, perp_taker_fee_bps=3.0)
    feeds = open_replay(cfg, data_dir=DATA_DIR)
    assert feeds[("sim-spot", "BTCUSDT")].engine.instrument.kind is InstrumentKind.SPOT
    perp = feeds[("sim-perp", "BTCUSDT")].engine
    assert perp.instrument.taker_fee_rate == pytest.approx(3e-4)
    assert perp.accounts.get("k").balance("USDT").free == 5_000.0
    merged = list(itertools.islice(merge_feeds(feeds), 5_000))
    times = [f.local_ns for _v, f in merged]
    assert times == sorted(times)
    assert {venue for (venue, _symbol), _f in merged} == {"sim-spot", "sim-perp"}


@needs_data
def test_open_replay_opens_btc_and_eth_on_both_venues_sharing_each_venues_accounts() -> None:
    feeds = open_replay(SimConfig(source="replay"), data_dir=DATA_DIR)
    assert list(feeds) == [
        ("sim-spot", "BTCUSDT"),
        ("sim-spot", "ETHUSDT"),
        ("sim-perp", "BTCUSDT"),
        ("sim-perp", "ETHUSDT"),
    ]
    eth = feeds[("sim-spot", "ETHUSDT")].engine.instrument
    assert (eth.symbol, eth.tick_size, eth.lot_size) == ("ETH/USDT", 0.01, 0.0001)
    spot_accounts = feeds[("sim-spot", "BTCUSDT")].engine.accounts
    assert feeds[("sim-spot", "ETHUSDT")].engine.accounts is spot_accounts
    assert set(spot_accounts.get("k").balances) == {"BTC", "ETH", "USDT"}


@needs_data
def test_open_replay_of_an_asset_never_recorded_names_the_missing_capture() -> None:
    with pytest.raises(FileNotFoundError, match="no spot capture of solusdt"):
        open_replay(SimConfig(source="replay", assets=("BTC", "SOL")), data_dir=DATA_DIR)


def _replayed_books(frames: int) -> list[tuple[object, ...]]:
    """Apply the first `frames` merged frames of BTC and ETH on both venues; the book, its
    update id and touch after every frame that changed a book."""
    feeds = open_replay(SimConfig(source="replay"), data_dir=DATA_DIR)
    out: list[tuple[object, ...]] = []
    for key, frame in itertools.islice(merge_feeds(feeds), frames):
        engine = feeds[key].engine
        result = engine.on_frame(frame, frame.local_ns)
        if result.level_changes or result.trades:
            out.append(
                (key, frame.local_ns, engine.update_id, engine.best_bid(), engine.best_ask())
            )
    return out


@needs_data
def test_the_replay_of_btc_and_eth_together_is_deterministic() -> None:
    first = _replayed_books(40_000)
    assert {key for key, *_ in first} == {
        ("sim-spot", "BTCUSDT"),
        ("sim-spot", "ETHUSDT"),
        ("sim-perp", "BTCUSDT"),
        ("sim-perp", "ETHUSDT"),
    }
    assert _replayed_books(40_000) == first
