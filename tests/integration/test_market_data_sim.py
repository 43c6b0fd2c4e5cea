"""The market-data adapter against the simulator: book equality, gaps, drops, stalls."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from mm_daemon.config import MarketDataConfig, VenueConfig
from mm_daemon.core.types import (
    BookDelta,
    BookLevels,
    BookSnapshot,
    MarketEvent,
    MarketStatus,
    Trade,
)
from mm_daemon.engine.metrics import MarketDataMetrics, Metrics
from mm_daemon.sim.runner import SimulatorHandle
from mm_daemon.venues.ccxt_venue import CcxtMarketData
from mm_daemon.venues.exchanges import VenueError

SPOT = "sim-spot"
PERP = "sim-perp"
SYMBOLS = {SPOT: "BTC/USDT", PERP: "BTC/USDT:USDT"}
EXCHANGES = {SPOT: "binance", PERP: "binanceusdm"}
DEPTH = 100


@pytest.fixture
def market_speed() -> float:
    return 20.0


class Events:
    """Collects sink events; `wait_for` waits (with a deadline) until a predicate holds."""

    def __init__(self) -> None:
        self.items: list[tuple[float, MarketEvent]] = []
        self._changed = asyncio.Event()
        self.hooks: list[Callable[[MarketEvent], None]] = []

    def __call__(self, event: MarketEvent) -> None:
        self.items.append((time.monotonic(), event))
        for hook in self.hooks:
            hook(event)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def statuses(self) -> list[tuple[float, MarketStatus]]:
        return [(t, e) for t, e in self.items if isinstance(e, MarketStatus)]

    def count(self, kind: type) -> int:
        return sum(1 for _, e in self.items if isinstance(e, kind))


@dataclass
class Running:
    md: CcxtMarketData
    events: Events
    metrics: Metrics
    symbol: str
    task: asyncio.Task[None] | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def counter(self, name: str) -> float:
        value = self.metrics.registry.get_sample_value(
            name, {"venue": self.md.venue, "symbol": self.symbol}
        )
        return value or 0.0


@contextlib.asynccontextmanager
async def running_md(
    sim: SimulatorHandle,
    venue: str,
    md_config: MarketDataConfig | None = None,
    redial_after_silence_s: float | None = None,
) -> AsyncIterator[Running]:
    endpoint = sim.endpoint(venue)
    config = VenueConfig(name=venue, exchange=EXCHANGES[venue])
    metrics = Metrics()
    md = CcxtMarketData(
        config,
        md_config or MarketDataConfig(),
        symbols=[SYMBOLS[venue]],
        sim_base_url=endpoint.rest,
        reporter=MarketDataMetrics(metrics),
        redial_after_silence_s=redial_after_silence_s,
    )
    events = Events()
    await md.connect()
    running = Running(md, events, metrics, SYMBOLS[venue])
    running.task = asyncio.get_running_loop().create_task(md.run(events))
    try:
        await md.wait_synced(SYMBOLS[venue], 10.0)
        yield running
    finally:
        running.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running.task
        await md.close()


@pytest.mark.slow
@pytest.mark.parametrize("venue", [SPOT, PERP])
async def test_local_book_equals_simulator_book_at_every_shared_update_id(
    sim: SimulatorHandle, book_history: Callable[..., Any], venue: str
) -> None:
    history = book_history(venue, DEPTH)
    local: dict[int, tuple[BookLevels, BookLevels]] = {}
    async with running_md(sim, venue) as run:
        book = run.md.book(SYMBOLS[venue])

        def snap_local(event: MarketEvent) -> None:
            if isinstance(event, BookDelta | BookSnapshot):
                local[book.update_id] = book.depth(DEPTH)

        run.events.hooks.append(snap_local)
        # 100 ms diffs: 60 of them carry thousands of update ids at this market speed.
        await run.events.wait_for(lambda: run.events.count(BookDelta) >= 60, 30.0)
    shared = set(history.books) & set(local)
    assert len(shared) >= 50
    assert max(shared) - min(shared) >= 2000  # thousands of update ids
    mismatched = [u for u in shared if history.books[u] != local[u]]
    assert mismatched == []
    assert run.md.resyncs == 0


@pytest.mark.parametrize("venue", [SPOT, PERP])
async def test_injected_gap_gives_a_counted_resync(
    sim: SimulatorHandle, admin: object, venue: str
) -> None:
    async with running_md(sim, venue) as run:
        await admin.fault(venue, "gap")  # type: ignore[attr-defined]
        await run.events.wait_for(lambda: run.md.resyncs >= 1, 10.0)
        assert run.counter("mm_book_resyncs_total") >= 1
        # The book comes back in sync by itself (a fresh MarketStatus after the resync).
        await run.events.wait_for(
            lambda: any(not e.stale and e.reason == "synced" for _, e in run.events.statuses()[1:]),
            10.0,
        )
        assert run.md.book(SYMBOLS[venue]).synced


@pytest.mark.parametrize("venue", [SPOT, PERP])
@pytest.mark.timing
async def test_dropped_connection_is_back_within_two_seconds(
    sim: SimulatorHandle, admin: object, venue: str
) -> None:
    async with running_md(sim, venue) as run:
        before = len(run.events.items)
        dropped_at = time.monotonic()
        await admin.fault(venue, "disconnect")  # type: ignore[attr-defined]

        def resynced_with_data() -> bool:
            after = [e for _, e in run.events.items[before:]]
            went_down = any(isinstance(e, MarketStatus) and e.stale for e in after)
            back = [
                i
                for i, e in enumerate(after)
                if isinstance(e, MarketStatus) and not e.stale and e.reason == "synced"
            ]
            return (
                went_down and bool(back) and any(isinstance(e, BookDelta) for e in after[back[0] :])
            )

        await run.events.wait_for(resynced_with_data, 5.0)
        assert time.monotonic() - dropped_at < 2.0
        assert run.counter("mm_ws_reconnects_total") >= 1


async def test_stall_marks_the_market_stale_within_its_limit_and_recovers(
    sim: SimulatorHandle, admin: object
) -> None:
    limit_s = 0.8
    md_config = MarketDataConfig(stale_after_seconds=limit_s)
    async with running_md(sim, PERP, md_config) as run:
        before = len(run.events.items)
        await admin.fault(PERP, "stall", seconds=2.5)  # type: ignore[attr-defined]

        def status_after(*, stale: bool) -> float | None:
            for t, e in run.events.items[before:]:
                if isinstance(e, MarketStatus) and e.stale is stale:
                    return t
            return None

        await run.events.wait_for(lambda: status_after(stale=True) is not None, 5.0)
        stale_at = status_after(stale=True)
        assert stale_at is not None
        data_times = [
            t for t, e in run.events.items[before:] if isinstance(e, BookDelta) and t < stale_at
        ]
        last_data = data_times[-1] if data_times else run.events.items[before - 1][0]
        # Declared no later than the limit plus one watchdog tick after the last data.
        assert stale_at - last_data <= limit_s + 0.2
        assert (
            run.metrics.registry.get_sample_value(
                "mm_market_stale", {"venue": PERP, "symbol": SYMBOLS[PERP]}
            )
            == 1.0
        )
        await run.events.wait_for(lambda: status_after(stale=False) is not None, 10.0)
        assert not run.md.is_stale(SYMBOLS[PERP])


@pytest.mark.parametrize("venue", [SPOT, PERP])
async def test_trades_reach_the_sink_as_core_trades(sim: SimulatorHandle, venue: str) -> None:
    async with running_md(sim, venue) as run:
        await run.events.wait_for(lambda: run.events.count(Trade) >= 5, 30.0)
        trade = next(e for _, e in run.events.items if isinstance(e, Trade))
        assert trade.venue == venue
        assert trade.price_ticks > 0
        assert trade.size_lots > 0


async def test_unknown_symbol_is_a_clear_error(sim: SimulatorHandle) -> None:
    config = VenueConfig(name=SPOT, exchange="binance")
    md = CcxtMarketData(
        config, MarketDataConfig(), symbols=["DOGE/USDT"], sim_base_url=sim.endpoint(SPOT).rest
    )
    try:
        with pytest.raises(VenueError, match=r"sim-spot .*unknown symbol 'DOGE/USDT'"):
            await md.connect()
    finally:
        await md.close()


async def test_ccxt_path_emits_book_snapshots_and_trades(sim: SimulatorHandle) -> None:
    """The path other exchanges take (ccxt's watch_order_book / watch_trades)."""
    config = VenueConfig(name=PERP, exchange="binanceusdm")
    md = CcxtMarketData(
        config,
        MarketDataConfig(),
        symbols=[SYMBOLS[PERP]],
        sim_base_url=sim.endpoint(PERP).rest,
        native=False,
    )
    events = Events()
    await md.connect()
    task = asyncio.get_running_loop().create_task(md.run(events))
    try:
        await events.wait_for(
            lambda: events.count(BookSnapshot) >= 5 and events.count(Trade) >= 1, 30.0
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await md.close()
    snapshot = next(e for _, e in reversed(events.items) if isinstance(e, BookSnapshot))
    assert snapshot.bids[0][0] < snapshot.asks[0][0]
    assert all(isinstance(px, int) and sz > 0 for px, sz in snapshot.bids + snapshot.asks)
    assert any(not e.stale for _, e in events.statuses())
    assert md.book(SYMBOLS[PERP]).best_bid() == snapshot.bids[0]


async def test_a_stream_silent_too_long_is_redialled(sim: SimulatorHandle, admin: object) -> None:
    md_config = MarketDataConfig(stale_after_seconds=0.3)
    async with running_md(sim, SPOT, md_config, redial_after_silence_s=1.0) as run:
        await admin.fault(SPOT, "stall", seconds=2.5)  # type: ignore[attr-defined]
        await run.events.wait_for(lambda: run.md.reconnects >= 1, 5.0)
        assert run.counter("mm_ws_reconnects_total") >= 1
        # After the stall the new connection syncs the book again.
        await run.events.wait_for(lambda: run.md.book(SYMBOLS[SPOT]).synced, 10.0)
        await run.events.wait_for(lambda: not run.md.is_stale(SYMBOLS[SPOT]), 10.0)
