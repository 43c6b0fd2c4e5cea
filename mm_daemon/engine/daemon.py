"""The daemon's runtime: wiring, task supervision, and a clean shutdown on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import uvloop
from pydantic import SecretStr

from mm_daemon.binance.capture import CaptureRecorder, CaptureWriter, default_data_dir
from mm_daemon.binance.markets import DIALECTS
from mm_daemon.config import Config, ConfigError, FairValueModel, Mode, VenueConfig
from mm_daemon.core.hedging import Hedger
from mm_daemon.core.inventory import Ledger
from mm_daemon.core.market_state import MarketState
from mm_daemon.core.markouts import MarkoutTracker
from mm_daemon.core.quoting import Quoter
from mm_daemon.core.risk import RiskGate
from mm_daemon.core.summary import RunSummary, build_run_summary, render_summary, summary_to_dict
from mm_daemon.core.types import ExecutionStatus, Instrument, MarketEvent
from mm_daemon.engine import wiring
from mm_daemon.engine.metrics import MarketDataMetrics, Metrics, MetricsServer
from mm_daemon.engine.orders import OrderManager, OrderManagerSettings
from mm_daemon.engine.reconcile import ReconciledExecution
from mm_daemon.engine.runtime import BusyPoll, apply_cpu_affinity
from mm_daemon.engine.trader import HedgeLeg, Trader
from mm_daemon.engine.virtual_time import VirtualClock, VirtualTimeLoop
from mm_daemon.log import configure_logging, get_logger, register_secret
from mm_daemon.retry import BackoffPolicy
from mm_daemon.sim.runner import SimulatorHandle, serve_forever, start_simulator
from mm_daemon.venues.base import Execution
from mm_daemon.venues.binance_ws_api import BinanceWsApiExecution, endpoints_from_ccxt
from mm_daemon.venues.ccxt_execution import (
    CcxtExecution,
    MainnetRefusedError,
    check_mainnet_allowed,
)
from mm_daemon.venues.ccxt_venue import CcxtMarketData
from mm_daemon.venues.exchanges import VenueError, create_exchange
from mm_daemon.venues.paper import PaperExecution
from mm_daemon.venues.recorded import RecordedMarketData, RecordedMarkets

__all__ = [
    "Daemon",
    "open_recorded",
    "record",
    "replay_summary",
    "run_daemon",
    "run_record",
    "run_replay",
    "run_simulator",
]

log = get_logger(__name__)

TIMER_INTERVAL_SECONDS = 0.2  # markouts, hedge slices and timeouts, risk, gauges
SHUTDOWN_CANCEL_SECONDS = 1.0  # with CLOSE_SECONDS, leaves room to exit within 2 s of SIGTERM
CLOSE_SECONDS = 0.5


def _register_config_secrets(config: Config) -> None:
    for _, venue in config.venues.by_role():
        for secret in (venue.api_key, venue.api_secret):
            if secret is not None:
                register_secret(secret.get_secret_value())


class Daemon:
    """Owns every task of a run; `run` returns the process exit code.

    With `recorded`, the markets are recorded captures instead of exchanges (`mm-daemon
    replay`): paper fills, no simulator, no signal handlers and no /metrics server, and `clock`
    is the replay loop's virtual clock, which every component reads.
    """

    def __init__(
        self,
        config: Config,
        metrics: Metrics | None = None,
        *,
        clock: Callable[[], int] = time.time_ns,
        recorded: RecordedMarkets | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self._clock = clock
        self._recorded = recorded
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._metrics_server: MetricsServer | None = None
        self.metrics_url: str | None = None
        self.simulator: SimulatorHandle | None = None
        self.trader: Trader | None = None
        self.summary: RunSummary | None = None
        self._market_data: list[CcxtMarketData | RecordedMarketData] = []
        self._executions: list[Execution] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._started_ns = 0

    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()

    async def run(self, duration_seconds: float | None = None) -> int:
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM) if self._recorded is None else ()
        for sig in signals:
            loop.add_signal_handler(sig, self.request_stop, signal.Signals(sig).name)
        started = time.monotonic()
        self._started_ns = self._clock()
        busy_poll = BusyPoll(loop)
        try:
            if self._recorded is None:
                self._start_metrics()
            if self.config.runtime.busy_poll:
                busy_poll.start()
            if duration_seconds is not None:
                loop.call_later(duration_seconds, self.request_stop, "duration")
            starting = loop.create_task(self._start())
            stopping = loop.create_task(self._stop.wait())
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                starting.cancel()
                with suppress(asyncio.CancelledError):
                    await starting
            else:
                starting.result()  # a user error (unknown symbol, keys) ends the run here
                log.info(
                    "daemon_started",
                    mode=self.config.mode.value,
                    maker=self.config.venues.maker.name,
                    symbol=self.config.venues.maker.symbol,
                    busy_poll=busy_poll.running,
                    cpus=sorted(os.sched_getaffinity(0)),
                )
                self.metrics.up.set(1)
                await self._stop.wait()
            stopping.cancel()
            log.info("shutdown_started", reason=self._stop_reason)
        finally:
            self.metrics.up.set(0)
            busy_poll.stop()
            await self._shutdown()
            for sig in signals:
                with suppress(Exception):
                    loop.remove_signal_handler(sig)
            if self._metrics_server is not None:
                self._metrics_server.stop()
        log.info("shutdown_complete", uptime_seconds=round(time.monotonic() - started, 3))
        return 0

    # -- start ----------------------------------------------------------------------------------

    async def _start(self) -> None:
        if self._recorded is not None:
            await self._start_recorded(self._recorded)
            return
        cfg = self.config
        venues = [venue for _, venue in cfg.venues.by_role()]
        if any(v.endpoint == "sim" for v in venues):
            self.simulator = await start_simulator(cfg.sim)
            for endpoint in self.simulator.endpoints.values():
                log.info("simulator_started", **endpoint.as_json())
        feeds: list[tuple[VenueConfig, CcxtMarketData | RecordedMarketData, str | None]] = []
        for venue in venues:
            sim_url = self._sim_url(venue) if venue.endpoint == "sim" else None
            fees = venue.fees_bps(cfg.sim.fees_bps(venue.exchange))
            md = CcxtMarketData(
                venue,
                cfg.market_data,
                sim_base_url=sim_url,
                reporter=MarketDataMetrics(self.metrics),
                fees_bps=fees,
                rate_limit=False if sim_url else None,
                # Live: the book before a burst of trades read in the same turn (requote
                # latency); paper fills need each trade before the book change it explains.
                trades_after_book=cfg.mode is Mode.LIVE,
            )
            self._market_data.append(md)
            self.metrics.ws_reconnects.labels(venue.name, venue.symbol)
            try:
                await self._retry(f"{venue.name}:connect", md.connect)
            except VenueError as exc:
                raise ConfigError([f"venues: {exc}"]) from None
            feeds.append((venue, md, sim_url))
        await self._start_trading(feeds)

    async def _start_recorded(self, recorded: RecordedMarkets) -> None:
        cfg = self.config
        feeds: list[tuple[VenueConfig, CcxtMarketData | RecordedMarketData, str | None]] = []
        for (_, venue), md in zip(cfg.venues.by_role(), recorded.markets, strict=True):
            self._market_data.append(md)
            feeds.append((venue, md, None))
        await self._start_trading(feeds)
        self._tasks.append(asyncio.get_running_loop().create_task(self._play(recorded)))

    async def _play(self, recorded: RecordedMarkets) -> None:
        frames = await recorded.play()
        log.info("replay_finished", frames=frames)
        self.request_stop("replay_finished")

    async def _start_trading(
        self, feeds: list[tuple[VenueConfig, CcxtMarketData | RecordedMarketData, str | None]]
    ) -> None:
        cfg = self.config
        self.trader = self._build_trader(feeds)
        _freeze_heap()
        trader = self.trader
        loop = asyncio.get_running_loop()
        # Order entry first (connections open, private streams listening, our leftovers
        # reconciled), then market data: the first quote must find a venue ready to take it.
        for execution in self._executions:
            await self._retry(f"{execution.venue}:execution_connect", execution.connect)
        sinks = [trader.on_maker_execution, trader.on_hedge_execution]
        for execution, sink in zip(self._executions, sinks, strict=False):
            self._tasks.append(
                loop.create_task(
                    self._supervise(f"{execution.venue}:execution", execution.run, sink)
                )
            )
        if cfg.mode is Mode.LIVE:
            await trader.orders.reconcile()
        for md in self._market_data:
            self._tasks.append(
                loop.create_task(
                    self._supervise(f"{md.venue}:market_data", md.run, trader.on_market_event)
                )
            )
        self._tasks.append(loop.create_task(self._timer(trader)))

    def _sim_url(self, venue: VenueConfig) -> str:
        assert self.simulator is not None  # noqa: S101  started before any sim venue is built
        return simulator_url(self.simulator, venue)

    def _build_trader(
        self, feeds: list[tuple[VenueConfig, CcxtMarketData | RecordedMarketData, str | None]]
    ) -> Trader:
        cfg = self.config
        maker_cfg, maker_md, maker_url = feeds[0]
        maker_inst = maker_md.instruments[maker_cfg.symbol]
        hedge_state: MarketState | None = None
        hedge_leg: HedgeLeg | None = None
        paper_feeds: dict[str, Callable[[MarketEvent], None]] = {}
        if len(feeds) > 1:
            hedge_cfg, hedge_md, hedge_url = feeds[1]
            hedge_inst = hedge_md.instruments[hedge_cfg.symbol]
            hedge_state = wiring.market_state(
                hedge_inst,
                cfg.market_data.model_copy(update={"fair_value": FairValueModel.MID}),
                book=hedge_md.book(hedge_cfg.symbol),
                book_is_shared=True,
            )
        cross = cfg.market_data.fair_value is FairValueModel.CROSS_VENUE
        if cross and hedge_state is None:
            raise ConfigError(["market_data.fair_value: cross_venue needs venues.hedge"])
        maker_state = wiring.market_state(
            maker_inst,
            cfg.market_data,
            # The adapter keeps the sequence-checked book; the state reads it, never re-applies.
            book=maker_md.book(maker_cfg.symbol),
            book_is_shared=True,
            reference=hedge_state if cross else None,
        )
        maker_exec = self._execution(maker_cfg, maker_md, maker_url, paper_feeds)
        risk = RiskGate(wiring.risk_limits(cfg.risk, cfg.inventory, cfg.quoting, maker_inst))
        orders = OrderManager(
            maker_exec,
            maker_inst,
            OrderManagerSettings.from_config(cfg.quoting, cfg.risk, maker_cfg),
            risk=risk,
            metrics=self.metrics,
            clock=self._clock,
        )
        ledger = Ledger(maker_inst, {maker_cfg.name: maker_cfg.hedge_ratio})
        if len(feeds) > 1 and hedge_state is not None:
            hedge_cfg, hedge_md, hedge_url = feeds[1]
            hedge_inst = hedge_state.instrument
            hedger = Hedger(wiring.hedge_params(cfg.hedging), hedge_inst)
            ledger.add_instrument(hedge_inst)
            ledger.set_netting_weight(hedge_cfg.name, hedger.netting_weight)
            hedge_exec = self._execution(hedge_cfg, hedge_md, hedge_url, paper_feeds)
            hedge_leg = HedgeLeg(hedge_state, hedge_exec, hedger)
        quoter = Quoter(wiring.quote_params(cfg.quoting, cfg.inventory, maker_inst))
        log.info(
            "instruments",
            maker=_describe(maker_inst),
            hedge=_describe(hedge_state.instrument) if hedge_state else None,
        )
        return Trader(
            maker_state=maker_state,
            quoter=quoter,
            orders=orders,
            ledger=ledger,
            markouts=MarkoutTracker(),
            risk=risk,
            metrics=self.metrics,
            hedge=hedge_leg,
            paper_feeds=paper_feeds,
            clock=self._clock,
        )

    def _execution(
        self,
        venue: VenueConfig,
        md: CcxtMarketData | RecordedMarketData,
        sim_url: str | None,
        paper_feeds: dict[str, Callable[[MarketEvent], None]],
    ) -> Execution:
        instrument = md.instruments[venue.symbol]
        execution: Execution
        if self.config.mode is Mode.PAPER:
            paper = PaperExecution(
                instrument,
                self.config.paper,
                venue=venue.name,
                book=md.book(venue.symbol),
                clock=self._clock,
            )
            paper_feeds[venue.name] = paper.on_market_event
            execution = paper
        else:
            if not isinstance(md, CcxtMarketData):
                raise ConfigError(["mode: a replay of recorded markets trades on paper only"])
            if sim_url is not None and venue.api_key is None:
                # The simulator opens an account for any key; it signs with the key itself as
                # the secret, and still checks every signature.
                key = SecretStr(f"mmd-{venue.name}")
                venue = venue.model_copy(update={"api_key": key, "api_secret": key})
            if venue.api_key is None or venue.api_secret is None:
                raise ConfigError(
                    [
                        f"venues: {venue.name}: live mode needs an API key and secret "
                        f"(MMD_VENUES__<ROLE>__API_KEY / __API_SECRET or api_*_file)"
                    ]
                )
            if venue.order_entry == "native" and venue.exchange in DIALECTS:
                # Signed WS-API requests of our own, to the URLs ccxt resolved for this endpoint
                # (the market-data adapter's exchange already holds them).
                endpoints = endpoints_from_ccxt(
                    md.exchange.urls["api"], usdm=venue.exchange == "binanceusdm"
                )
                execution = BinanceWsApiExecution(
                    instrument, endpoints, venue.api_key, venue.api_secret, venue=venue.name
                )
            else:
                exchange = create_exchange(
                    venue, sim_base_url=sim_url, rate_limit=False if sim_url else None
                )
                execution = CcxtExecution(exchange, instrument, venue=venue.name)
        reconciled = ReconciledExecution(
            execution, on_status=self._execution_status, clock=self._clock
        )
        self._executions.append(reconciled)
        return reconciled

    def _execution_status(self, status: ExecutionStatus) -> None:
        """An order-entry connection went down or came back (the reconcile is the wrapper's);
        a hedge venue that cannot take orders counts as down."""
        log.log(
            20 if status.connected else 30,
            "order_entry_connected" if status.connected else "order_entry_lost",
            venue=status.venue,
            reason=status.reason,
        )
        leg = self.trader.hedge if self.trader is not None else None
        if leg is not None and status.venue == leg.execution.venue:
            leg.hedger.on_venue_status(
                not status.connected, status.reason or "order entry down", source="orders"
            )

    # -- supervision ----------------------------------------------------------------------------

    def _backoff(self) -> BackoffPolicy:
        md = self.config.market_data
        return BackoffPolicy(md.reconnect_initial_backoff_seconds, md.reconnect_max_backoff_seconds)

    async def _retry(self, name: str, action: Callable[[], Awaitable[None]]) -> None:
        """Run `action` until it succeeds; a user error (config, keys, symbols) ends the run."""
        backoff = self._backoff().start()
        while True:
            try:
                await action()
            except (VenueError, ConfigError):
                raise
            except Exception as exc:  # noqa: BLE001  any other failure is retried with backoff
                delay = backoff.next_delay()
                log.warning("retrying", task=name, error=repr(exc), in_seconds=round(delay, 3))
                await asyncio.sleep(delay)
            else:
                return

    async def _supervise(
        self,
        name: str,
        run: Callable[[Callable[[Any], None]], Awaitable[None]],
        sink: Callable[[Any], None],
    ) -> None:
        """Run a stream for the whole run; if it ever ends or fails, log and start it again."""
        backoff = self._backoff().start()
        while True:
            backoff.attempt()
            try:
                await run(sink)
                log.warning("task_ended", task=name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("task_failed", task=name, error=repr(exc))
            await backoff.sleep()

    async def _timer(self, trader: Trader) -> None:
        interval = TIMER_INTERVAL_SECONDS
        while True:
            await asyncio.sleep(interval)
            try:
                trader.on_timer()
            except Exception as exc:
                log.exception("timer_failed", error=repr(exc))

    # -- stop -----------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        trader = self.trader
        if trader is not None:
            try:
                left = await asyncio.wait_for(
                    trader.orders.shutdown(timeout_s=SHUTDOWN_CANCEL_SECONDS),
                    SHUTDOWN_CANCEL_SECONDS + 0.5,
                )
                log.info("orders_cancelled", still_open=left)
            except Exception as exc:  # noqa: BLE001  shutdown goes on whatever the venue says
                log.warning("cancel_all_failed", error=repr(exc))
            if trader.hedge is not None and self.config.mode is Mode.LIVE:
                with suppress(Exception):
                    await asyncio.wait_for(
                        trader.hedge.execution.cancel_all(trader.hedge.state.instrument.symbol),
                        SHUTDOWN_CANCEL_SECONDS,
                    )
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        closers = [*(e.close() for e in self._executions), *(m.close() for m in self._market_data)]
        if closers:
            # Closing is best effort and runs in parallel under one deadline.
            closing = [asyncio.ensure_future(c) for c in closers]
            _, pending = await asyncio.wait(closing, timeout=CLOSE_SECONDS)
            for task in pending:
                task.cancel()
            for task in closing:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    log.debug("close_failed", error=repr(task.exception()))
        if self.simulator is not None:
            await self.simulator.stop()
            self.simulator = None
        if trader is not None:
            trader.on_timer()  # mark P&L at the latest fair values
            elapsed = (self._clock() - self._started_ns) / 1e9
            self.summary = build_run_summary(
                trader.ledger,
                trader.markouts,
                trader.hedge.hedger if trader.hedge else None,
                elapsed,
            )
            log.info("run_summary", **summary_to_dict(self.summary))
            sys.stdout.write(render_summary(self.summary) + "\n")
            sys.stdout.flush()

    def _start_metrics(self) -> None:
        cfg = self.config.metrics
        if not cfg.enabled:
            return
        self._metrics_server = MetricsServer(self.metrics.registry, cfg.host, cfg.port)
        try:
            self.metrics_url = self._metrics_server.start()
        except OSError as exc:
            raise ConfigError(
                [f"metrics.port: cannot serve on {cfg.host}:{cfg.port}: {exc.strerror}"]
            ) from None
        self.metrics.inventory_limit_base.set(self.config.inventory.limit_base)
        self.metrics.max_drawdown_quote.set(self.config.risk.max_drawdown_quote)
        log.info("metrics_serving", url=self.metrics_url)


def simulator_url(simulator: SimulatorHandle, venue: VenueConfig) -> str:
    """The REST base of the embedded simulator's venue for `venue`'s exchange."""
    dialect = DIALECTS.get(venue.exchange)
    for endpoint in simulator.endpoints.values():
        if endpoint.dialect == dialect:
            return endpoint.rest
    raise ConfigError([f"venues: {venue.name}: the simulator has no {venue.exchange} venue"])


def _freeze_heap() -> None:
    """Move everything alive now (modules, ccxt's markets) out of the collector's reach.

    A full collection walks the whole heap, and ccxt's is large: measured here, gen-2 pauses of
    0.1-0.4 s set the reaction time's tail; with the startup heap frozen, p99 fell from ~100 ms
    to ~9 ms (bench/README.md, reaction at the simulator).
    """
    gc.collect()
    gc.freeze()


def _describe(instrument: Instrument) -> dict[str, object]:
    return {
        "venue": instrument.venue,
        "symbol": instrument.symbol,
        "tick": instrument.tick_size,
        "lot": instrument.lot_size,
        "min_notional": instrument.min_notional_quote,
        "maker_fee_bps": round(instrument.maker_fee_rate * 1e4, 4),
        "taker_fee_bps": round(instrument.taker_fee_rate * 1e4, 4),
    }


def run_daemon(config: Config, duration_seconds: float | None = None) -> int:
    """Entry point of `mm-daemon run`: logging, safety checks, then the event loop."""
    configure_logging(config.logging.level.value, config.logging.format)
    _register_config_secrets(config)
    if config.mode is Mode.LIVE:
        for venue in (config.venues.maker, config.venues.hedge):
            if venue is not None:
                try:
                    check_mainnet_allowed(venue, allow_mainnet=config.allow_mainnet)
                except MainnetRefusedError as exc:
                    raise ConfigError([str(exc)]) from None
    # ccxt.pro takes ~0.6 s to import; done here, before the loop runs, it cannot hold up a
    # SIGTERM that arrives during startup.
    import ccxt.pro  # noqa: F401, PLC0415  imported for its side effect of loading now

    apply_cpu_affinity(config.runtime)
    return uvloop.run(Daemon(config).run(duration_seconds))


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
    config: Config, data_dir: Path | None = None, duration_seconds: float | None = None
) -> RunSummary:
    """Replay the recorded markets of `config`'s venues in virtual time; the run summary.

    Fills are paper fills whatever `mode` says. The summary is also printed and logged, as at the
    end of every run.
    """
    configured_mode = config.mode
    config = config.model_copy(update={"mode": Mode.PAPER})
    folder = data_dir or config.sim.replay_data_dir or default_data_dir()
    loop, markets = open_recorded(config, folder)
    # Log lines carry the recorded time the replay is at.
    configure_logging(config.logging.level.value, config.logging.format, clock=loop.clock.now_ns)
    if configured_mode is not Mode.PAPER:
        log.info("replay_on_paper", configured_mode=configured_mode.value)
    daemon = Daemon(config, clock=loop.clock.now_ns, recorded=markets)
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
) -> int:
    """Entry point of `mm-daemon replay` (one run): `replay_summary`, optionally saved."""
    summary = replay_summary(config, data_dir, duration_seconds)
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
    roles = config.venues.by_role()
    for role, venue in roles:
        if venue.exchange not in DIALECTS:
            raise ConfigError(
                [
                    f"venues.{role}.exchange: {venue.exchange!r} cannot be recorded "
                    "(recording reads Binance spot 'binance' and USD-M 'binanceusdm')"
                ]
            )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if duration_seconds is not None:
        loop.call_later(duration_seconds, stop.set)
    simulator = None
    if any(venue.endpoint == "sim" for _, venue in roles):
        simulator = await start_simulator(config.sim)
    recorder = recorder or CaptureRecorder(folder)
    feeds: list[CcxtMarketData] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        for _, venue in roles:
            sim_url = (
                simulator_url(simulator, venue) if simulator and venue.endpoint == "sim" else None
            )
            md = CcxtMarketData(
                venue,
                config.market_data,
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
        log.info("recording", folder=str(folder), venues=[v.name for _, v in roles])
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
