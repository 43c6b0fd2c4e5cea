"""Replay of the recorded Binance captures through the simulator, read by unmodified ccxt.pro."""

from __future__ import annotations

import asyncio
import gzip
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from mm_daemon.config import SimConfig
from mm_daemon.sim.runner import SimulatorHandle, start_simulator

SPOT = "sim-spot"
PERP = "sim-perp"
SYMBOLS = {SPOT: "BTC/USDT", PERP: "BTC/USDT:USDT"}
FILES = {SPOT: "spot/btcusdt_2024080*.gz", PERP: "usdm/btcusdt_2024080*.gz"}


def _data_dir() -> Path | None:
    env = os.environ.get("MMD_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data" / "binance"
    return path if (path / "spot").is_dir() and (path / "usdm").is_dir() else None


DATA = _data_dir()
pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(DATA is None, reason="recorded captures absent (set MMD_DATA_DIR)"),
]


@pytest.fixture
def replay_speed() -> float:
    return 10.0


@pytest.fixture
def sim_config(replay_speed: float) -> SimConfig:
    assert DATA is not None
    return SimConfig(source="replay", replay_data_dir=DATA, replay_speed=replay_speed)


def _recorded_tickers(venue: str) -> dict[int, tuple[float, float]]:
    """Best bid and ask of every recorded bookTicker frame, by update id (read from the files
    directly, not through the simulator)."""
    assert DATA is not None
    out: dict[int, tuple[float, float]] = {}
    for path in sorted(DATA.glob(FILES[venue])):
        with gzip.open(path, "rb") as fh:
            for line in fh:
                if b"@bookTicker" not in line:
                    continue
                data = orjson.loads(line[line.index(b" ") + 1 :])["data"]
                out[int(data["u"])] = (float(data["b"]), float(data["a"]))
    return out


@pytest.mark.parametrize("venue", [SPOT, PERP])
async def test_ccxt_rebuilds_the_recorded_book_whose_touch_equals_the_recorded_book_ticker(
    venue: str, make_exchange: Any, book_history: Any, to_levels: Any
) -> None:
    tickers = _recorded_tickers(venue)
    history = book_history(venue, 50)
    exchange = make_exchange(venue)
    await exchange.load_markets()
    market = exchange.market(SYMBOLS[venue])
    tick = market["precision"]["price"]
    lot = market["precision"]["amount"]
    matched = 0
    books = 0
    deadline = time.monotonic() + 40
    while matched < 5 or books < 50:
        assert time.monotonic() < deadline, f"only {matched} bookTicker matches"
        book = await exchange.watch_order_book(SYMBOLS[venue])
        nonce = book["nonce"]
        if nonce in history.books:
            bids, asks = history.books[nonce]
            assert to_levels(book["bids"], tick, lot, 50) == bids
            assert to_levels(book["asks"], tick, lot, 50) == asks
            books += 1
        if nonce in tickers:
            assert (book["bids"][0][0], book["asks"][0][0]) == tickers[nonce]
            matched += 1


async def test_an_ioc_order_fills_against_the_recorded_book_at_taker_fee(
    make_exchange: Any, sim: Any
) -> None:
    exchange = make_exchange(PERP)
    await exchange.load_markets()
    engine = sim.venues[PERP].symbols["BTCUSDT"].engine
    ask = engine.best_ask()
    assert ask is not None
    # A limit well through the touch: the book moves while the order travels.
    price = engine.instrument.ticks_to_price(ask[0] + 100)
    size = 0.005
    order = await exchange.create_order(
        SYMBOLS[PERP], "limit", "buy", size, price, {"timeInForce": "IOC"}
    )
    assert order["filled"] == pytest.approx(size)
    trades = await exchange.fetch_my_trades(SYMBOLS[PERP])
    assert {t["takerOrMaker"] for t in trades} == {"taker"}
    assert sum(t["amount"] for t in trades) == pytest.approx(size)
    notional = sum(t["cost"] for t in trades)
    assert sum(t["fee"]["cost"] for t in trades) == pytest.approx(notional * 2 / 10_000)


def _depth_update_ids(venue: str, count: int) -> list[int]:
    """Final update ids `u` of the first `count` recorded depth frames."""
    assert DATA is not None
    ids: list[int] = []
    for path in sorted(DATA.glob(FILES[venue])):
        with gzip.open(path, "rb") as fh:
            for line in fh:
                if b"@depth" in line:
                    ids.append(int(orjson.loads(line[line.index(b" ") + 1 :])["data"]["u"]))
                    if len(ids) == count:
                        return ids
    return ids


@pytest.mark.slow
@pytest.mark.parametrize("replay_speed", [0.0])
async def test_replay_as_fast_as_the_client_reads_keeps_the_client_book_exact(
    make_exchange: Any, book_history: Any, to_levels: Any
) -> None:
    # Past the first 1,500 recorded depth frames (a quarter of the capture), every book ccxt
    # returns must equal the replayed one, and the recorded ids must all be reachable.
    final = _depth_update_ids(PERP, 1500)[-1]
    history = book_history(PERP, 20)
    exchange = make_exchange(PERP)
    await exchange.load_markets()
    market = exchange.market(SYMBOLS[PERP])
    tick = market["precision"]["price"]
    lot = market["precision"]["amount"]
    nonce = 0
    deadline = time.monotonic() + 60
    while nonce < final:
        assert time.monotonic() < deadline, f"stopped at {nonce}, capture ends at {final}"
        book = await exchange.watch_order_book(SYMBOLS[PERP])
        nonce = book["nonce"]
        bids, asks = history.books[nonce]
        assert to_levels(book["bids"], tick, lot, 20) == bids
        assert to_levels(book["asks"], tick, lot, 20) == asks
    assert nonce >= final


# -- BTC and ETH together ---------------------------------------------------------------------

SPOT_STREAMS = (
    "btcusdt@depth@100ms",
    "btcusdt@trade",
    "ethusdt@depth@100ms",
    "ethusdt@trade",
)
RECORDED_WINDOW_MS = (1_723_161_240_000, 1_723_162_000_000)  # 2024-08-08 23:54 to 00:07 UTC


async def _served_frames(sim: SimulatorHandle, count: int) -> list[bytes]:
    """The first `count` frames the spot venue serves to one client of every BTC and ETH
    stream (subscribed in its URL, so the replay starts with every stream subscribed)."""
    url = sim.endpoint(SPOT).ws + "/stream?streams=" + "/".join(SPOT_STREAMS)
    frames: list[bytes] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        while len(frames) < count:
            msg = await asyncio.wait_for(ws.receive(), 20)
            frames.append(msg.data.encode())
    return frames


async def test_eth_frames_of_the_recording_reach_a_client_beside_btcs(
    sim: SimulatorHandle,
) -> None:
    frames = [orjson.loads(frame) for frame in await _served_frames(sim, 1_500)]
    streams = {frame["stream"] for frame in frames}
    assert streams == set(SPOT_STREAMS)
    eth = [frame["data"] for frame in frames if frame["stream"].startswith("eth")]
    assert {data["s"] for data in eth} == {"ETHUSDT"}
    # Recorded frames, served as they were captured (Binance's own event times).
    assert all(RECORDED_WINDOW_MS[0] <= data["E"] <= RECORDED_WINDOW_MS[1] for data in eth)


@pytest.mark.slow
async def test_the_replay_of_btc_and_eth_together_serves_the_same_frames_every_run() -> None:
    assert DATA is not None
    config = SimConfig(source="replay", replay_data_dir=DATA, replay_speed=0.0)
    runs = []
    for _ in range(2):
        handle = await start_simulator(config)
        try:
            runs.append(await _served_frames(handle, 1_000))
        finally:
            await handle.stop()
    first, second = runs
    assert {orjson.loads(frame)["stream"] for frame in first} == set(SPOT_STREAMS)
    assert second == first
