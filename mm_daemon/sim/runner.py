"""Start the simulator: one Binance-protocol server per venue on 127.0.0.1, driven by the
synthetic market (default) or by recorded captures. Each venue lists every configured asset
(`sim.assets`, BTC and ETH by default): spot `<BASE>USDT` on sim-spot, the perpetual on sim-perp.

`start_simulator(config)` returns a handle with each venue's endpoints and `stop()`;
`serve_forever(config)` prints one JSON line per venue and `{"ready": true}`, then runs until
cancelled (the `mm-daemon sim` command and the daemon's embedded simulator use it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
import time
from collections.abc import Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from mm_daemon.binance.capture import FrameKind, RecordedFrame
from mm_daemon.binance.markets import Dialect, dialect_of
from mm_daemon.config import SimConfig, SimFault
from mm_daemon.core.types import Instrument
from mm_daemon.sim.binance.filters import VenueFilters
from mm_daemon.sim.binance.limits import rate_limiter
from mm_daemon.sim.binance.spot import make_spot_app
from mm_daemon.sim.binance.usdm import make_usdm_app
from mm_daemon.sim.faults import FaultSpec
from mm_daemon.sim.funding import FundingParams, VenueFunding
from mm_daemon.sim.market import SyntheticMarket
from mm_daemon.sim.market_params import (
    BookKey,
    build_engines,
    default_instruments,
    params_from_config,
    starting_balances,
)
from mm_daemon.sim.matching import MatchingEngine
from mm_daemon.sim.replay import ReplayClock, ReplayFeed, merge_feeds, open_replay
from mm_daemon.sim.venue import SimVenue, VenueSymbol

__all__ = [
    "SimulatorHandle",
    "VenueEndpoint",
    "serve_forever",
    "start_simulator",
]

_MAX_CATCH_UP_NS = 200_000_000
_REPLAY_BATCH = 5_000  # frames per driver turn at most
_REPLAY_BACKLOG = 2_000  # speed 0: wait while a client has this many frames unread


@dataclass(frozen=True, slots=True)
class VenueEndpoint:
    """Where one simulator venue listens."""

    venue: str
    dialect: Dialect
    rest: str  # http://127.0.0.1:PORT
    ws: str  # ws://127.0.0.1:PORT
    admin: str  # http://127.0.0.1:PORT/admin
    symbols: tuple[str, ...]  # unified ccxt symbols

    def as_json(self) -> dict[str, Any]:
        return {
            "venue": self.venue,
            "dialect": self.dialect,
            "rest": self.rest,
            "ws": self.ws,
            "admin": self.admin,
            "symbols": list(self.symbols),
        }


@dataclass(slots=True)
class SimulatorHandle:
    """A running simulator: endpoints per venue name, the venues themselves, and `stop()`."""

    endpoints: dict[str, VenueEndpoint]
    venues: dict[str, SimVenue]
    _runners: list[web.AppRunner] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def endpoint(self, venue: str) -> VenueEndpoint:
        return self.endpoints[venue]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for venue in self.venues.values():
            await venue.disconnect_all(abort=False)
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()


def _build_venues(engines: Iterable[MatchingEngine]) -> dict[str, SimVenue]:
    """One venue per instrument venue, listing its engines in order (they share accounts)."""
    by_venue: dict[str, list[MatchingEngine]] = {}
    for engine in engines:
        by_venue.setdefault(engine.instrument.venue, []).append(engine)
    return {
        name: SimVenue.create(name, dialect_of(group[0].instrument), group, group[0].accounts)
        for name, group in by_venue.items()
    }


def _configure(
    venues: dict[str, SimVenue], config: SimConfig, market: SyntheticMarket | None
) -> None:
    """Binance's venue rules: the published filters, the rate limits (unless turned off), the
    venue's own clock, and funding on the perpetual venue."""
    for venue in venues.values():
        venue.filters = VenueFilters()
        venue.time_offset_ms = config.server_time_offset_ms
        if config.limits.enabled:
            venue.limiter = rate_limiter(venue.dialect, config.limits)
        if not venue.is_spot:
            venue.funding = VenueFunding(venue, funding_params(config))
            if market is not None:
                venue.funding.index_price = functools.partial(_latent_index, market)


def funding_params(config: SimConfig) -> FundingParams:
    cfg = config.funding
    return FundingParams(
        interval_ns=round(cfg.interval_seconds * 1e9),
        interest_rate=cfg.interest_rate,
        premium_clamp=cfg.premium_clamp,
        rate_cap=cfg.rate_cap,
        fixed_rate=cfg.fixed_rate,
    )


def _latent_index(market: SyntheticMarket, sym: VenueSymbol) -> float:
    """The synthetic market's latent price of the asset: the spot index every book is built
    around."""
    return market.latent_price(sym.instrument.base)


async def _drive_funding(funding: VenueFunding) -> None:
    """Mark price updates every second and settlements on time, on the wall clock."""
    while True:
        funding.tick()
        delay_ns = funding.next_due_ns() - time.time_ns()
        await asyncio.sleep(max(delay_ns, 0) / 1e9)


async def _drive_synthetic(
    market: SyntheticMarket,
    engines: dict[BookKey, MatchingEngine],
    venues: dict[str, SimVenue],
    interval_s: float,
    speed: float,
) -> None:
    """Advance the synthetic market with the wall clock (`speed` times faster) and publish
    every engine call. One iteration covers at most `_MAX_CATCH_UP_NS` of market time, so a
    busy loop falls behind the clock instead of blocking the servers."""
    start = time.time_ns()
    market_ns = start
    while True:
        now = time.time_ns()
        market_ns = min(start + int((now - start) * speed), market_ns + _MAX_CATCH_UP_NS)
        until = market_ns
        for (venue_name, symbol), result in market.advance(engines, until):
            venues[venue_name].publish_source(symbol, result, now)
        for venue in venues.values():
            venue.flush(now)
        await asyncio.sleep(interval_s)


def _replay_kind(frame: RecordedFrame) -> str | None:
    if frame.kind is FrameKind.DEPTH:
        return "depth"
    if frame.kind is FrameKind.TRADE:
        return "trade"
    if frame.kind is FrameKind.BOOK_TICKER:
        return "bookTicker"
    return None


def _prime_replay(
    feeds: Mapping[BookKey, ReplayFeed], frames: Iterator[tuple[BookKey, RecordedFrame]]
) -> tuple[BookKey, RecordedFrame] | None:
    """Feed frames until every book holds its snapshot (nothing is served before: a client
    could not sync a book with no snapshot); returns the first frame left to serve, with its
    book, which is not applied yet."""
    start = time.time_ns()
    for key, frame in frames:
        if all(feed.engine.book.ready for feed in feeds.values()):
            return key, frame
        feeds[key].engine.on_frame(frame, start)
    return None


async def _drive_replay(
    feeds: Mapping[BookKey, ReplayFeed],
    venues: dict[str, SimVenue],
    speed: float,
    interval_s: float,
) -> None:
    """Serve the recorded frames of every book, merged in recorded receive order, at
    recorded pace times `speed` (0: as fast as the clients read, waiting for every client's
    backlog to drain), each to its stream as recorded, applying it to its replayed book
    first. The frames up to the last book's snapshot only build the books (they are not
    served), and the recording starts playing when the first client subscribes: a recording
    played to nobody would be lost to a client that is still loading its markets."""
    frames = merge_feeds(feeds)
    first = _prime_replay(feeds, frames)
    if first is None:
        return
    # Subscriptions live in plain sets: no event to wait on, so poll at a short tick.
    while not any(v.streams.has_subscribers() for v in venues.values()):  # noqa: ASYNC110
        await asyncio.sleep(interval_s)
    clock = ReplayClock(first[1].local_ns, time.time_ns(), speed)
    pending: tuple[BookKey, RecordedFrame] | None = first
    while True:
        if speed <= 0:
            # Clients' backlogs are plain deques: no event to wait on, so poll at a short tick.
            while any(  # noqa: ASYNC110
                conn.backlog > _REPLAY_BACKLOG
                for venue in venues.values()
                for conn in venue.streams.connections
            ):
                await asyncio.sleep(interval_s)
        now = time.time_ns()
        sent = 0
        while sent < _REPLAY_BATCH:
            if pending is None:
                pending = next(frames, None)
                if pending is None:
                    return
            key, frame = pending
            if clock.due_ns(frame.local_ns) > now:
                break
            pending = None
            sent += 1
            venue = venues[key[0]]
            sym = venue.symbols[key[1]]
            result = feeds[key].engine.on_frame(frame, now)
            venue.publish(sym, result, now)
            kind = _replay_kind(frame)
            if kind is not None:
                sym.feed.send_raw(kind, frame.payload_raw, now)
        await asyncio.sleep(interval_s if sent < _REPLAY_BATCH else 0)


async def _serve(venue: SimVenue, host: str, port: int) -> tuple[web.AppRunner, int]:
    app = make_spot_app(venue) if venue.is_spot else make_usdm_app(venue)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    server = site._server
    assert server is not None  # noqa: S101  started just above
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)


async def _scheduled_faults(venues: dict[str, SimVenue], faults: tuple[SimFault, ...]) -> None:
    start = time.monotonic()
    for fault in sorted(faults, key=lambda f: f.at_seconds):
        delay = fault.at_seconds - (time.monotonic() - start)
        if delay > 0:
            await asyncio.sleep(delay)
        venue = venues.get(fault.venue)
        if venue is not None:
            await venue.apply_fault(FaultSpec(fault.kind, fault.seconds, fault.count, fault.symbol))


async def start_simulator(
    config: SimConfig,
    instruments: Iterable[Instrument] | None = None,
    *,
    drive_interval_s: float = 0.005,
    market_speed: float = 1.0,
) -> SimulatorHandle:
    """Build both venues, start their servers and market drivers; returns the handle.

    `config.source` picks the synthetic market (seeded; `market_speed` runs it faster than
    the wall clock, 0 freezes it after seeding the books) or the replay of the recorded
    captures (`config.replay_speed`; data from `config.replay_data_dir` or $MMD_DATA_DIR).
    `instruments` replaces the synthetic market's books (default: every asset of
    `config.assets` on both venues).
    """
    loop = asyncio.get_running_loop()
    driver: Coroutine[Any, Any, None]
    market: SyntheticMarket | None = None
    if config.source == "replay":
        feeds = open_replay(config, data_dir=config.replay_data_dir)
        venues = _build_venues(feed.engine for feed in feeds.values())
        for venue in venues.values():
            for sym in venue.symbols.values():
                sym.feed.raw = True
        driver = _drive_replay(feeds, venues, config.replay_speed, drive_interval_s)
    else:
        insts = list(instruments) if instruments is not None else default_instruments(config)
        engines = build_engines(
            insts,
            starting_base=starting_balances(config),
            starting_quote=config.starting_quote,
        )
        venues = _build_venues(engines.values())
        market = SyntheticMarket(
            params_from_config(config), insts, config.seed, start_ns=time.time_ns()
        )
        driver = _drive_synthetic(market, engines, venues, drive_interval_s, market_speed)
    _configure(venues, config, market)
    handle = SimulatorHandle(endpoints={}, venues=venues)
    try:
        for name, venue in venues.items():
            port = config.spot_port if venue.is_spot else config.perp_port
            runner, bound = await _serve(venue, config.host, port)
            handle._runners.append(runner)
            base = f"{config.host}:{bound}"
            handle.endpoints[name] = VenueEndpoint(
                venue=name,
                dialect=venue.dialect,
                rest=f"http://{base}",
                ws=f"ws://{base}",
                admin=f"http://{base}/admin",
                symbols=tuple(s.instrument.symbol for s in venue.symbols.values()),
            )
        handle._tasks.append(loop.create_task(driver))
        for venue in venues.values():
            if venue.funding is not None:
                handle._tasks.append(loop.create_task(_drive_funding(venue.funding)))
        if config.faults:
            handle._tasks.append(loop.create_task(_scheduled_faults(venues, config.faults)))
    except BaseException:
        driver.close()
        await handle.stop()
        raise
    return handle


async def serve_forever(config: SimConfig) -> None:
    """Start the simulator, print its endpoints as JSON lines, run until cancelled."""
    handle = await start_simulator(config)
    try:
        for endpoint in handle.endpoints.values():
            sys.stdout.write(orjson.dumps(endpoint.as_json()).decode() + "\n")
        sys.stdout.write('{"ready": true}\n')
        sys.stdout.flush()
        await asyncio.Event().wait()
    finally:
        await handle.stop()
