"""MarketState keeps one clock: a replay's recorded exchange times never stall its estimators."""

from __future__ import annotations

from dataclasses import replace

from mm_daemon.config import MarketDataConfig
from mm_daemon.core.instruments import BTC_USDT_SPOT
from mm_daemon.core.types import BookSnapshot, Side, Trade
from mm_daemon.engine import wiring

SPOT = replace(BTC_USDT_SPOT, venue="spot")
RECORDED_NS = 1_723_161_254_000_000_000  # 2024-08-08, as the captures carry
TODAY_NS = 1_795_000_000_000_000_000
SECOND = 1_000_000_000


def _replayed_snapshot(i: int, mid: int) -> BookSnapshot:
    # Exchange time from the recording, local time from today's clock.
    return BookSnapshot(
        "spot",
        SPOT.symbol,
        RECORDED_NS + i * SECOND,
        TODAY_NS + i * SECOND,
        i,
        ((mid - 1, 100),),
        ((mid + 1, 100),),
    )


def test_volatility_moves_on_replayed_data_whose_exchange_times_are_years_old() -> None:
    state = wiring.market_state(SPOT, MarketDataConfig(fair_value="mid"))
    # A REST snapshot carries no exchange time: the adapter stamps it with today's clock.
    first = _replayed_snapshot(0, 6_000_000)
    state.on_event(BookSnapshot("spot", SPOT.symbol, TODAY_NS, TODAY_NS, 0, first.bids, first.asks))
    for i in range(1, 60):
        state.on_event(_replayed_snapshot(i, 6_000_000 + (300 if i % 2 else -300)))
    assert state.volatility.value > 0


def test_trade_intensity_fits_on_the_clock_the_caller_asks_with() -> None:
    state = wiring.market_state(SPOT, MarketDataConfig(fair_value="mid"))
    state.on_event(_replayed_snapshot(0, 6_000_000))
    for i in range(400):
        distance = i % 4
        trade = Trade(
            "spot",
            SPOT.symbol,
            RECORDED_NS + i * SECOND // 10,
            TODAY_NS + i * SECOND // 10,
            i,
            6_000_000 + 1 + distance,
            10,
            Side.BUY,
        )
        state.on_event(trade)
    assert state.intensity_fit(TODAY_NS + 40 * SECOND) is not None
