"""The commands' entry points: `mm-daemon run`, `replay`, `record` and `sim`, each setting up
logging and its event loop (uvloop, or the virtual-time loop of a replay) around the daemon,
the recorder or the simulator."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from contextlib import suppress
from pathlib import Path

import uvloop

from mm_daemon.binance.capture import CaptureRecorder, CaptureWriter, default_data_dir
from mm_daemon.binance.markets import DIALECTS
from mm_daemon.config import Config, ConfigError, Mode
from mm_daemon.core.summary import RunSummary, summary_to_dict
from mm_daemon.engine.assembly import simulator_url
from mm_daemon.engine.daemon import Daemon
from mm_daemon.engine.runtime import apply_cpu_affinity
from mm_daemon.engine.virtual_time import VirtualClock, VirtualTimeLoop
from mm_daemon.log import configure_logging, get_logger, register_secret
from mm_daemon.sim.runner import serve_forever, start_simulator
from mm_daemon.venues.ccxt_execution import MainnetRefusedError, check_mainnet_allowed
from mm_daemon.venues.ccxt_venue import CcxtMarketData
from mm_daemon.venues.exchanges import VenueError
from mm_daemon.venues.recorded import RecordedMarkets, config_instruments

__all__ = [
    "open_recorded",
    "record",
    "replay_summary",
    "run_daemon",
    "run_record",
    "run_replay",
    "run_simulator",
]

log = get_logger(__name__)


def _register_config_secrets(config: Config) -> None:
    for venue in config.venues.values():
        for secret in (venue.api_key, venue.api_secret):
            if secret is not None:
                register_secret(secret.get_secret_value())
    if config.control.token is not None:
        register_secret(config.control.token.get_secret_value())


def run_daemon(
    config: Config,
    duration_seconds: float | None = None,
    *,
    fresh: bool = False,
    config_path: Path | None = None,
) -> int:
    """Entry point of `mm-daemon run`: logging, safety checks, then the event loop.
    `config_path` is the file a reload (POST /reload, SIGHUP) reads again."""
    configure_logging(
        config.logging.level.value,
        config.logging.format,
        fill_lines_on_terminal=config.logging.console_fill_lines,
    )
    _register_config_secrets(config)
    if config.mode is Mode.LIVE:
        for venue in config.used_venues():
            try:
                check_mainnet_allowed(venue, allow_mainnet=config.allow_mainnet)
            except MainnetRefusedError as exc:
                raise ConfigError([str(exc)]) from None
    # ccxt.pro takes ~0.6 s to import; done here, before the loop runs, it cannot hold up a
    # SIGTERM that arrives during startup.
    import ccxt.pro  # noqa: F401, PLC0415  imported for its side effect of loading now

    apply_cpu_affinity(config.runtime)
    return uvloop.run(Daemon(config, fresh=fresh, config_path=config_path).run(duration_seconds))


def open_recorded(config: Config, data_dir: Path) -> tuple[VirtualTimeLoop, RecordedMarkets]:
    """The recorded markets of `config`'s venues and the virtual-time loop that plays them,
    its clock set to the first recorded frame. Raises ConfigError naming what is missing."""
    clock = VirtualClock(0)
    loop = VirtualTimeLoop(clock)
    try:
        markets = RecordedMarkets.open(
            config, data_dir, clock=clock.now_ns, wait_until=loop.wait_until
        )
        clock.start_at(markets.first_frame_ns())
    except BaseException:
        loop.close()
        raise
    return loop, markets


def replay_summary(
    config: Config,
    data_dir: Path | None = None,
    duration_seconds: float | None = None,
    journal_path: Path | None = None,
) -> RunSummary:
    """Replay the recorded markets of `config`'s venues in virtual time; the run summary.

    Fills are paper fills whatever `mode` says. The summary is also printed and logged, as at the
    end of every run. With `journal_path` the replay journals as a run does (in recorded time),
    into that file: what a report of the replay reads.
    """
    configured_mode = config.mode
    config = config.model_copy(update={"mode": Mode.PAPER})
    folder = data_dir or config.sim.replay_data_dir or default_data_dir()
    loop, markets = open_recorded(config, folder)
    # Log lines carry the recorded time the replay is at.
    configure_logging(config.logging.level.value, config.logging.format, clock=loop.clock.now_ns)
    if configured_mode is not Mode.PAPER:
        log.info("replay_on_paper", configured_mode=configured_mode.value)
    daemon = Daemon(config, clock=loop.clock.now_ns, recorded=markets, journal_path=journal_path)
    try:
        loop.run_until_complete(daemon.run(duration_seconds))
    finally:
        loop.close()
    if daemon.summary is None:  # the run ended before trading started
        raise ConfigError(["replay: the run ended before the daemon started trading"])
    return daemon.summary


def run_replay(
    config: Config,
    data_dir: Path | None = None,
    duration_seconds: float | None = None,
    summary_path: Path | None = None,
    journal_path: Path | None = None,
) -> int:
    """Entry point of `mm-daemon replay` (one run): `replay_summary`, optionally saved."""
    summary = replay_summary(config, data_dir, duration_seconds, journal_path)
    if summary_path is not None:
        summary_path.write_text(json.dumps(summary_to_dict(summary), indent=2) + "\n")
    return 0


async def record(
    config: Config,
    folder: Path,
    duration_seconds: float | None = None,
    recorder: CaptureRecorder | None = None,
) -> list[CaptureWriter]:
    """Record the configured venues' Binance market data into `folder` (through `recorder` when
    given) until SIGINT/SIGTERM or `duration_seconds`; the capture files written (see
    `mm_daemon.binance.capture`)."""
    venues = config.used_venues()
    for venue in venues:
        if venue.exchange not in DIALECTS:
            raise ConfigError(
                [
                    f"venues.{venue.name}.exchange: {venue.exchange!r} cannot be recorded "
                    "(recording reads Binance spot 'binance' and USD-M 'binanceusdm')"
                ]
            )
    symbols: dict[str, list[str]] = {}
    for venue, symbol, _ in config_instruments(config):
        symbols.setdefault(venue.name, []).append(symbol)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if duration_seconds is not None:
        loop.call_later(duration_seconds, stop.set)
    simulator = None
    if any(venue.endpoint == "sim" for venue in venues):
        simulator = await start_simulator(config.sim)
    recorder = recorder or CaptureRecorder(folder)
    feeds: list[CcxtMarketData] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        for venue in venues:
            sim_url = (
                simulator_url(simulator, venue) if simulator and venue.endpoint == "sim" else None
            )
            md = CcxtMarketData(
                venue,
                config.market_data,
                symbols=symbols[venue.name],
                sim_base_url=sim_url,
                rate_limit=False if sim_url else None,
                recorder=recorder,
            )
            feeds.append(md)
            try:
                await md.connect()
            except VenueError as exc:
                raise ConfigError([f"venues: {exc}"]) from None
        tasks.extend(loop.create_task(md.run(lambda _event: None)) for md in feeds)
        log.info("recording", folder=str(folder), venues=[v.name for v in venues])
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(md.close() for md in feeds), return_exceptions=True)
        recorder.close()
        if simulator is not None:
            await simulator.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    writers = list(recorder.writers.values())
    for writer in writers:
        log.info(
            "recorded",
            path=str(writer.path),
            frames=writer.frames,
            snapshots=writer.snapshots,
        )
    return writers


def run_record(config: Config, folder: Path, duration_seconds: float | None = None) -> int:
    """Entry point of `mm-daemon record`: one line per capture file written, on stdout."""
    configure_logging(config.logging.level.value, config.logging.format)
    _register_config_secrets(config)
    import ccxt.pro  # noqa: F401, PLC0415  loaded before the loop runs, as for `run`

    writers = uvloop.run(record(config, folder, duration_seconds))
    for writer in writers:
        sys.stdout.write(f"{writer.path}: {writer.frames} frames, {writer.snapshots} snapshot(s)\n")
    sys.stdout.flush()
    return 0


def run_simulator(config: Config) -> int:
    """Entry point of `mm-daemon sim`: the standalone simulator until SIGINT/SIGTERM."""
    configure_logging(config.logging.level.value, config.logging.format)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        serving = loop.create_task(serve_forever(config.sim))
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, serving.cancel)
        with suppress(asyncio.CancelledError):
            await serving
        log.info("simulator_stopped")

    uvloop.run(main())
    return 0
