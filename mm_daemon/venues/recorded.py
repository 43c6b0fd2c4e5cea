"""Market data from recorded Binance captures, read through the live adapter's own code.

`RecordedMarkets` opens the captures of every configured venue (spot `binance`, USD-M
`binanceusdm`) and plays their frames, merged in recorded receive order, into one
`RecordedMarketData` per venue. Each of those is a `MarketData` whose frames go through the
same `NativeStream` as a live Binance connection: the compiled frame readers, Binance's sync
rules against the recorded REST snapshot, the sequence checks, the same events. Only the socket
is missing. Every frame is handed over at its recorded receive time on the loop's clock, so
under `VirtualTimeLoop` a replay runs as fast as the code handling it, with the timers and
latencies in between kept in order.

The replay ends where the first capture ends: past it, a venue would look silent while the
others still trade. A book that has to resync (a sequence gap; none in the shipped captures)
waits for the next snapshot the recording holds, as a live resync waits for its REST answer: a
recording made by `mm-daemon record` holds one after every reconnect; without one the market
stays stale, with its quotes pulled, for the rest of the run.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from mm_daemon.binance.capture import FrameKind, capture_files, envelope_payload, read_raw_frames
from mm_daemon.binance.markets import DIALECTS, Dialect, recorded_instrument
from mm_daemon.config import Config, ConfigError, VenueConfig
from mm_daemon.core.book import Book
from mm_daemon.core.types import Instrument, MarketStatus
from mm_daemon.log import get_logger
from mm_daemon.venues.base import MarketSink
from mm_daemon.venues.binance_stream import NativeStream

__all__ = ["RecordedMarketData", "RecordedMarkets", "config_instruments", "recorded_dialect"]

log = get_logger(__name__)


def recorded_dialect(venue: VenueConfig) -> Dialect:
    """Which captures a venue replays; a ConfigError naming the field for any other exchange."""
    dialect = DIALECTS.get(venue.exchange)
    if dialect is None:
        raise ConfigError(
            [
                f"venues.{venue.name}.exchange: {venue.exchange!r} has no recorded captures "
                f"(replay reads Binance spot 'binance' and USD-M 'binanceusdm')"
            ]
        )
    return dialect


def config_instruments(config: Config) -> list[tuple[VenueConfig, str, str]]:
    """(venue, symbol, where the config names it) of every instrument the markets use, each
    once, in the order the markets name them (quoted, then hedge)."""
    seen: dict[tuple[str, str], tuple[VenueConfig, str, str]] = {}
    for i, market in enumerate(config.markets):
        seen.setdefault(
            (market.venue, market.symbol),
            (config.venues[market.venue], market.symbol, f"markets.{i}.symbol"),
        )
        if market.hedge is not None:
            seen.setdefault(
                (market.hedge.venue, market.hedge.symbol),
                (
                    config.venues[market.hedge.venue],
                    market.hedge.symbol,
                    f"markets.{i}.hedge.symbol",
                ),
            )
    return list(seen.values())


class RecordedMarketData:
    """One venue's recorded market: a `MarketData` fed by `RecordedMarkets.play`."""

    def __init__(
        self,
        venue: VenueConfig,
        instrument: Instrument,
        dialect: Dialect,
        paths: list[Path],
        clock: Callable[[], int],
    ) -> None:
        self._config = venue
        self._instrument = instrument
        self.dialect = dialect
        self.paths = paths
        self._clock = clock
        self._book = Book()
        self._depth: NativeStream | None = None
        self._trades: NativeStream | None = None
        self._snapshot_waiter: asyncio.Future[Any] | None = None  # a fetch waiting for one
        self._unclaimed_snapshot: Any = None  # recorded while no fetch was waiting
        self.attached = asyncio.Event()

    # -- MarketData ------------------------------------------------------------------------------

    @property
    def venue(self) -> str:
        return self._config.name

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        return {self._instrument.symbol: self._instrument}

    def book(self, symbol: str) -> Book:
        del symbol  # one instrument per recorded market
        return self._book

    async def connect(self) -> None:
        return None

    async def run(self, sink: MarketSink) -> None:
        """Attach `sink`: the frames played from now on reach it. Returns when cancelled."""
        inst = self._instrument
        usdm = self.dialect == "usdm"

        def on_sync_change(synced: bool, reason: str) -> None:
            sink(MarketStatus(self.venue, inst.symbol, self._clock(), not synced, reason))

        self._depth = NativeStream(
            venue=self.venue,
            ws_url="",
            instrument=inst,
            kind="depth",
            usdm=usdm,
            sink=sink,
            fetch_snapshot=self._fetch_snapshot,
            on_sync_change=on_sync_change,
            book=self._book,
            clock=self._clock,
        )
        self._trades = NativeStream(
            venue=self.venue, ws_url="", instrument=inst, kind="trade", usdm=usdm, sink=sink
        )
        self._depth.start_offline()
        self._trades.start_offline()
        self.attached.set()
        await asyncio.Event().wait()  # frames arrive through `play`; cancelled at shutdown

    async def close(self) -> None:
        return None

    async def _fetch_snapshot(self, exchange_symbol: str) -> Any:
        """The next recorded snapshot (one recorded while nobody asked, else the next to come)."""
        del exchange_symbol
        data = self._unclaimed_snapshot
        if data is not None:
            self._unclaimed_snapshot = None
            return data
        waiter = asyncio.get_running_loop().create_future()
        self._snapshot_waiter = waiter
        return await waiter

    def on_recorded(self, kind: FrameKind, raw: bytes, local_ns: int) -> None:
        if kind is FrameKind.DEPTH and self._depth is not None:
            self._depth.on_frame(envelope_payload(raw), local_ns)
        elif kind is FrameKind.TRADE and self._trades is not None:
            self._trades.on_frame(envelope_payload(raw), local_ns)
        elif kind is FrameKind.SNAPSHOT:
            data = orjson.loads(raw)
            waiter = self._snapshot_waiter
            self._snapshot_waiter = None
            if waiter is not None and not waiter.done():
                waiter.set_result(data)
            else:
                self._unclaimed_snapshot = data


class RecordedMarkets:
    """The recorded markets of a config's venues, and the player of their frames."""

    def __init__(
        self, markets: list[RecordedMarketData], wait_until: Callable[[int], Awaitable[None]]
    ) -> None:
        self.markets = markets
        self._wait_until = wait_until

    @classmethod
    def open(
        cls,
        config: Config,
        data_dir: Path,
        *,
        clock: Callable[[], int],
        wait_until: Callable[[int], Awaitable[None]],
    ) -> RecordedMarkets:
        """One recorded market per instrument the config's markets use, read on `clock`;
        `play` waits for each frame's receive time with `wait_until(ns)`
        (`VirtualTimeLoop.wait_until`: everything due before it runs first). A ConfigError
        names what is missing."""
        markets = []
        for venue, symbol, where in config_instruments(config):
            dialect = recorded_dialect(venue)
            exchange_symbol = symbol.split(":")[0].replace("/", "")
            paths = capture_files(data_dir, dialect, exchange_symbol)
            if not paths:
                raise ConfigError(
                    [
                        f"{where}: no {dialect} capture of {exchange_symbol} "
                        f"under {data_dir} (--data-dir or MMD_DATA_DIR names the folder)"
                    ]
                )
            # Configured fees, else the simulator's (endpoint: sim), else the published ones.
            maker_bps, taker_bps = venue.fees_bps(config.sim.fees_bps(venue.exchange))
            instrument = recorded_instrument(
                dialect,
                exchange_symbol,
                venue.name,
                maker_fee_rate=maker_bps * 1e-4,
                taker_fee_rate=taker_bps * 1e-4,
            )
            if instrument.symbol != symbol:
                raise ConfigError(
                    [
                        f"{where}: {symbol!r} is not the recorded {dialect} market on "
                        f"{venue.name} (its symbol is {instrument.symbol!r})"
                    ]
                )
            markets.append(RecordedMarketData(venue, instrument, dialect, paths, clock))
        return cls(markets, wait_until)

    def first_frame_ns(self) -> int:
        """Receive time of the earliest recorded frame (where the replay's clock starts)."""
        firsts = []
        for market in self.markets:
            frames = read_raw_frames(market.paths)
            try:
                firsts.append(next(frames)[0])
            except StopIteration:
                raise ConfigError(
                    [f"venues: {market.venue}: the capture {market.paths[0]} holds no frames"]
                ) from None
            finally:
                frames.close()
        return min(firsts)

    def _merged(self) -> Iterator[tuple[int, int, FrameKind | None, bytes]]:
        """(receive ns, market index, kind, raw) across every capture in receive order; a
        market's last frame is followed by an end mark (kind None)."""

        def tagged(
            index: int, paths: list[Path]
        ) -> Iterator[tuple[int, int, FrameKind | None, bytes]]:
            last_ns = 0
            for local_ns, kind, _stream, raw in read_raw_frames(paths):
                last_ns = local_ns
                yield local_ns, index, kind, raw
            yield last_ns, index, None, b""

        streams = [tagged(i, m.paths) for i, m in enumerate(self.markets)]
        # Ties keep venue order (the collector wrote one file per market, one clock).
        return heapq.merge(*streams, key=lambda item: (item[0], item[1]))

    async def play_into(self, sink: MarketSink) -> int:
        """Attach `sink` to every market, `play`, and detach; return the frames played."""
        tasks = [asyncio.get_running_loop().create_task(m.run(sink)) for m in self.markets]
        try:
            return await self.play()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def play(self) -> int:
        """Hand every frame to its market at its recorded receive time, until the first capture
        ends; return the frames played. Frames recorded in the same nanosecond go together, as
        frames read in one socket read do; the loop runs its timers and callbacks in between."""
        markets = self.markets
        wait_until = self._wait_until
        for market in markets:
            await market.attached.wait()
        played = 0
        last_ns = 0
        for local_ns, index, kind, raw in self._merged():
            if kind is None:
                break  # the first capture to end ends the replay
            if local_ns > last_ns:
                # Everything due before this frame runs first (timers, latencies, requotes).
                await wait_until(local_ns)
                last_ns = local_ns
            markets[index].on_recorded(kind, raw, local_ns)
            played += 1
        await asyncio.sleep(0)  # the callbacks of the last frame
        return played
