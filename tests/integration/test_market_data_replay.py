"""The recorded Binance captures replayed through the simulator: the adapter's local touch equals
every recorded bookTicker that shares an update id, BTC and ETH, spot and USD-M."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import orjson
import pytest

from mm_daemon.binance.capture import default_data_dir, read_capture
from mm_daemon.config import MarketDataConfig, SimConfig, VenueConfig
from mm_daemon.core.types import BookDelta, BookSnapshot, Instrument, MarketEvent
from mm_daemon.sim.runner import SimulatorHandle
from mm_daemon.venues.ccxt_venue import CcxtMarketData

DATA = default_data_dir() if default_data_dir().is_dir() else None
pytestmark = [
    pytest.mark.data,
    pytest.mark.slow,
    pytest.mark.skipif(DATA is None, reason="recorded Binance captures absent (set MMD_DATA_DIR)"),
]

VENUES = {
    "sim-spot": ("binance", "spot", ("{s}_20240808.gz", "{s}_20240809.gz")),
    "sim-perp": ("binanceusdm", "usdm", ("{s}_20240808.gz",)),
}
UNIFIED = {
    ("btcusdt", "sim-spot"): "BTC/USDT",
    ("btcusdt", "sim-perp"): "BTC/USDT:USDT",
    ("ethusdt", "sim-spot"): "ETH/USDT",
    ("ethusdt", "sim-perp"): "ETH/USDT:USDT",
}
Touch = tuple[int, int, int, int]
REPLAY_SPEED = 40.0  # recorded pace times this


@pytest.fixture(params=["btcusdt", "ethusdt"])
def replay_symbol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sim_config(replay_symbol: str) -> SimConfig:
    # One asset replayed at a time: the other's frames would only slow the fast replay down.
    return SimConfig(
        source="replay",
        replay_speed=REPLAY_SPEED,
        replay_data_dir=DATA,
        assets=(replay_symbol.removesuffix("usdt").upper(),),
    )


def capture_paths(symbol: str, venue: str) -> list[Path]:
    assert DATA is not None
    _, folder, files = VENUES[venue]
    return [DATA / folder / f.format(s=symbol) for f in files]


RawTouch = tuple[float, float, float, float]


def recorded_tickers(paths: list[Path]) -> tuple[dict[int, RawTouch], int]:
    """bookTicker touches (as recorded) by update id, and the capture's last depth update id."""
    tickers: dict[int, RawTouch] = {}
    last_depth = 0
    for _, raw in read_capture(*paths):
        msg = orjson.loads(raw)
        stream = msg.get("stream", "")
        if stream.endswith("@bookTicker"):
            d = msg["data"]
            tickers[d["u"]] = (float(d["b"]), float(d["B"]), float(d["a"]), float(d["A"]))
        elif "@depth" in stream:
            last_depth = max(last_depth, msg["data"]["u"])
    return tickers, last_depth


@pytest.fixture
def recorded(replay_symbol: str) -> dict[str, tuple[dict[int, RawTouch], int]]:
    """Read before the simulator starts (the test names it first): reading takes seconds."""
    return {venue: recorded_tickers(capture_paths(replay_symbol, venue)) for venue in VENUES}


def as_ticks(touch: RawTouch, inst: Instrument) -> Touch:
    bid, bid_size, ask, ask_size = touch
    return (
        inst.price_to_ticks(bid),
        inst.size_to_lots(bid_size),
        inst.price_to_ticks(ask),
        inst.size_to_lots(ask_size),
    )


async def test_local_touch_equals_every_recorded_book_ticker(
    recorded: dict[str, tuple[dict[int, RawTouch], int]],
    sim: SimulatorHandle,
    replay_symbol: str,
) -> None:
    mds: dict[str, CcxtMarketData] = {}
    touches: dict[str, dict[int, Touch]] = {}
    reached: dict[str, asyncio.Event] = {}
    finals = {venue: final for venue, (_, final) in recorded.items()}
    tasks: list[asyncio.Task[None]] = []

    async def start(venue: str, exchange: str) -> None:
        symbol = UNIFIED[(replay_symbol, venue)]
        md = CcxtMarketData(
            VenueConfig(name=venue, exchange=exchange),
            MarketDataConfig(stale_after_seconds=30.0),
            symbols=[symbol],
            sim_base_url=sim.endpoint(venue).rest,
        )
        mds[venue] = md
        await md.connect()
        touches[venue] = {}
        reached[venue] = asyncio.Event()
        book = md.book(symbol)

        def sink(event: MarketEvent) -> None:
            if isinstance(event, BookDelta | BookSnapshot):
                bid, ask = book.best_bid(), book.best_ask()
                if bid is not None and ask is not None:
                    touches[venue][event_update_id(event)] = (*bid, *ask)
                if event_update_id(event) >= finals[venue]:
                    reached[venue].set()

        tasks.append(asyncio.get_running_loop().create_task(md.run(sink)))

    try:
        await asyncio.gather(*(start(venue, spec[0]) for venue, spec in VENUES.items()))
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in reached.values())), 100.0)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for md in mds.values():
            await md.close()
    for venue in VENUES:
        inst = next(iter(mds[venue].instruments.values()))
        tickers = {u: as_ticks(t, inst) for u, t in recorded[venue][0].items()}
        shared = set(tickers) & set(touches[venue])
        # The replay starts with the first subscription (REPLAY_SPEED x recorded pace); the
        # other adapter joins a little later, then hundreds of bookTickers share an update id
        # with a diff.
        assert len(shared) >= 150, (venue, len(shared))
        mismatched = [u for u in sorted(shared) if tickers[u] != touches[venue][u]]
        assert mismatched == [], (venue, mismatched[:5])
        assert mds[venue].resyncs == 0


def event_update_id(event: BookDelta | BookSnapshot) -> int:
    return event.last_update_id if isinstance(event, BookDelta) else event.update_id
