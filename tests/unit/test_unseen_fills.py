"""Live fills the public stream does not explain, read from a calibration recording."""

from __future__ import annotations

from mm_daemon.core.instruments import BTC_USDT_SPOT
from mm_daemon.core.types import Side, Trade
from mm_daemon.venues.paper_calibration import CounterfactualOrder, Recording, unseen_fills

MS = 1_000_000


def order(
    oid: str, side: Side, price: int, depth_bps: float, fill_ms: int | None
) -> CounterfactualOrder:
    fills = ((fill_ms * MS, 10),) if fill_ms is not None else ()
    return CounterfactualOrder(
        oid, side, price, 10, 0, 400 * MS, len(fills), 10 * len(fills), depth_bps, fills
    )


def trade(ms: int, price: int, aggressor: Side) -> tuple[int, Trade]:
    t = ms * MS
    inst = BTC_USDT_SPOT
    return t, Trade(inst.venue, inst.symbol, t, t, ms, price, 5, aggressor)


def test_each_never_exposed_fill_is_sorted_by_what_printed_in_its_window() -> None:
    market = (
        trade(30, 999, Side.SELL),  # through the bid at 1000 (window 0-100)
        trade(120, 1000, Side.SELL),  # at the bid at 1000 (window 100-200)
        trade(230, 1005, Side.BUY),  # short of the ask at 1010 (window 200-300) ...
        trade(350, 1012, Side.BUY),  # ... and through it, but in the next window
    )
    orders = (
        order("through", Side.BUY, 1000, -0.1, 50),
        order("through too", Side.BUY, 1001, -0.1, 70),
        order("at", Side.BUY, 1000, 0.0, 150),
        order("unseen", Side.SELL, 1010, -0.2, 250),
        order("exposed", Side.BUY, 995, 0.5, 60),  # three bids filled in window 0-100
        order("resting", Side.SELL, 1020, -1.0, None),
    )
    recording = Recording(
        "synthetic",
        BTC_USDT_SPOT,
        market,
        orders,
        0,
        0,
        0,
        0,
        0,
        0,
        mid_times=(0, 100 * MS, 200 * MS, 300 * MS),
        mids=(1005.0, 1005.0, 1005.0, 1005.0),
    )
    got = unseen_fills(recording)
    assert (got.fills, got.print_through, got.print_at, got.no_print) == (4, 2, 1, 1)
    assert (got.filled_orders, got.repeat_orders) == (5, 2)
