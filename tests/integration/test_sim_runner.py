"""The simulator as a program: its startup lines, its configs, its determinism, its faults."""

from __future__ import annotations

import asyncio
import io
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.pro as ccxtpro
import orjson
import pytest

from mm_daemon.config import SimConfig, SimFault, load_config
from mm_daemon.sim.runner import serve_forever, start_simulator
from tests.support import eventually

SPOT = "sim-spot"
PERP = "sim-perp"
REPO = Path(__file__).resolve().parents[2]


class _Lines(io.StringIO):
    """A stdout that wakes a waiter when the ready line has been written."""

    def __init__(self) -> None:
        super().__init__()
        self.ready = asyncio.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if '"ready"' in self.getvalue():
            self.ready.set()
        return written


async def test_serve_forever_prints_each_venue_then_ready_and_serves_until_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = _Lines()
    monkeypatch.setattr(sys, "stdout", out)
    task = asyncio.get_running_loop().create_task(serve_forever(SimConfig()))
    await asyncio.wait_for(out.ready.wait(), 10)
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert lines[-1] == {"ready": True}
    venues = {line["venue"]: line for line in lines[:-1]}
    assert venues[SPOT]["dialect"] == "spot"
    assert venues[PERP]["dialect"] == "usdm"
    assert venues[SPOT]["symbols"] == ["BTC/USDT", "ETH/USDT"]
    assert venues[PERP]["symbols"] == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    async with aiohttp.ClientSession() as session:
        async with session.get(venues[PERP]["rest"] + "/fapi/v1/ping") as resp:
            assert resp.status == 200
        async with session.get(venues[SPOT]["admin"] + "/state?depth=5") as resp:
            assert (await resp.json())["venue"] == SPOT
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("name", ["sim.yaml", "sim-replay.yaml"])
def test_shipped_simulator_configs_validate(name: str) -> None:
    config = load_config(REPO / "config" / name)
    (market,) = config.markets
    assert market.venue == SPOT
    assert market.hedge is not None
    assert market.hedge.venue == PERP
    assert config.sim.spot_port == 8100
    assert config.sim.perp_port == 8101


async def _depth_frames(endpoint: Any, seconds: float) -> dict[int, bytes]:
    """Realtime depth messages by final update id, without their timestamps."""
    frames: dict[int, bytes] = {}
    url = endpoint.ws + "/ws/0"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@depth@0ms"],"id":1}')
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            msg = await asyncio.wait_for(ws.receive(), 5)
            data = orjson.loads(msg.data)
            if "u" in data:
                del data["E"], data["T"]
                frames[data["u"]] = orjson.dumps(data)
    return frames


async def _stream_of(seed: int) -> dict[int, bytes]:
    handle = await start_simulator(SimConfig(seed=seed), market_speed=5.0)
    try:
        return await _depth_frames(handle.endpoint(PERP), 2.0)
    finally:
        await handle.stop()


async def test_the_same_seed_gives_the_same_stream_and_another_seed_another() -> None:
    first = await _stream_of(11)
    second = await _stream_of(11)
    common = sorted(set(first) & set(second))
    assert len(common) >= 50
    assert [first[u] for u in common] == [second[u] for u in common]
    other = await _stream_of(12)
    common_other = sorted(set(first) & set(other))
    assert [first[u] for u in common_other] != [other[u] for u in common_other]


@pytest.fixture
def market_speed() -> float:
    return 0.0


async def test_http_error_fault_answers_429_with_retry_after_then_recovers(
    spot_endpoint: Any, admin: Any, make_exchange: Any
) -> None:
    exchange = make_exchange(SPOT)
    await exchange.load_markets()
    await admin.fault(SPOT, "http_error", seconds=1.0, count=429)
    url = spot_endpoint.rest + "/api/v3/time"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) >= 1
        assert (await resp.json())["code"] == -1003
    with pytest.raises(ccxtpro.DDoSProtection):
        await exchange.fetch_order_book("BTC/USDT")
    await admin.fault(SPOT, "http_error", seconds=0.0)
    assert (await exchange.fetch_order_book("BTC/USDT"))["bids"]


async def test_http_error_fault_can_answer_5xx(make_exchange: Any, admin: Any) -> None:
    exchange = make_exchange(PERP)
    await exchange.load_markets()
    await admin.fault(PERP, "http_error", seconds=5.0, count=503)
    with pytest.raises(ccxtpro.ExchangeNotAvailable, match="503"):
        await exchange.fetch_order_book("BTC/USDT:USDT")


async def test_reject_orders_fault_rejects_exactly_the_next_n_orders(
    make_exchange: Any, admin: Any, sim: Any
) -> None:
    exchange = make_exchange(SPOT)
    await exchange.load_markets()
    engine = sim.venues[SPOT].symbols["BTCUSDT"].engine
    bid = engine.best_bid()
    price = engine.instrument.ticks_to_price(bid[0] - 500)
    await admin.fault(SPOT, "reject_orders", count=2)
    for _ in range(2):
        with pytest.raises(ccxtpro.InvalidOrder):
            await exchange.create_order("BTC/USDT", "limit", "buy", 0.001, price)
    order = await exchange.create_order("BTC/USDT", "limit", "buy", 0.001, price)
    assert order["status"] == "open"


async def test_halt_fault_stops_trading_until_resumed(
    make_exchange: Any, admin: Any, sim: Any
) -> None:
    exchange = make_exchange(PERP)
    await exchange.load_markets()
    engine = sim.venues[PERP].symbols["BTCUSDT"].engine
    price = engine.instrument.ticks_to_price(engine.best_bid()[0] - 50)
    await admin.fault(PERP, "halt")
    with pytest.raises(ccxtpro.ExchangeError, match="Market is closed"):
        await exchange.create_order("BTC/USDT:USDT", "limit", "buy", 0.01, price)
    await admin.fault(PERP, "resume")
    order = await exchange.create_order("BTC/USDT:USDT", "limit", "buy", 0.01, price)
    assert order["status"] == "open"


async def test_scheduled_faults_from_the_config_are_applied() -> None:
    config = SimConfig(
        faults=(SimFault(at_seconds=0.0, venue=SPOT, kind="reject_orders", count=3),)
    )
    handle = await start_simulator(config, market_speed=0.0)
    try:
        venue = handle.venues[SPOT]
        await eventually(lambda: venue.faults.rejects_pending == 3, timeout_s=5, what="faults")
    finally:
        await handle.stop()


async def test_a_scheduled_fault_naming_a_symbol_touches_only_that_symbol() -> None:
    config = SimConfig(
        faults=(SimFault(at_seconds=0.0, venue=SPOT, kind="gap", count=2, symbol="ETHUSDT"),)
    )
    handle = await start_simulator(config, market_speed=0.0)
    try:
        symbols = handle.venues[SPOT].symbols
        await eventually(
            lambda: symbols["ETHUSDT"].faults.gaps_pending == 2, timeout_s=5, what="the gap"
        )
        assert symbols["BTCUSDT"].faults.gaps_pending == 0
    finally:
        await handle.stop()


async def _frames_after_fault(kind: str, seconds: float) -> tuple[float, float]:
    """Apply a fault to a moving market and return, for the first depth frame produced after
    it, (seconds from the fault to its arrival, seconds from its exchange time to arrival)."""
    handle = await start_simulator(SimConfig(), market_speed=3.0)
    try:
        endpoint = handle.endpoint(PERP)
        venue = handle.venues[PERP]
        url = endpoint.ws + "/ws/0"
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@depth@0ms"],"id":1}')
            await ws.receive()
            await ws.receive()  # frames flow
            async with session.post(
                endpoint.admin + "/faults", json={"kind": kind, "seconds": seconds}
            ) as resp:
                assert resp.status == 200
            fault_at = time.time()
            after = venue.symbols["BTCUSDT"].engine.update_id
            while True:
                msg = await asyncio.wait_for(ws.receive(), seconds + 5)
                data = orjson.loads(msg.data)
                if data["U"] > after:
                    now = time.time()
                    return now - fault_at, now - data["E"] / 1000
    finally:
        await handle.stop()


async def test_stall_fault_stops_the_streams_for_its_duration() -> None:
    since_fault, _ = await _frames_after_fault("stall", 0.6)
    assert since_fault >= 0.55


async def test_delay_fault_holds_frames_for_its_duration() -> None:
    _, latency = await _frames_after_fault("delay", 0.4)
    assert latency >= 0.35
