"""The daemon's runtime: wiring, task supervision, and a clean shutdown on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import functools
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
import yaml
from pydantic import SecretStr

from mm_daemon.binance.capture import CaptureRecorder, CaptureWriter, default_data_dir
from mm_daemon.binance.markets import DIALECTS
from mm_daemon.config import Config, ConfigError, FairValueModel, Mode, VenueConfig, env_key
from mm_daemon.core.book import Book
from mm_daemon.core.funding import FundingSettler
from mm_daemon.core.hedging import Hedger
from mm_daemon.core.inventory import Ledger
from mm_daemon.core.markouts import MarkoutTracker
from mm_daemon.core.quoting import Quoter
from mm_daemon.core.risk import RiskGate
from mm_daemon.core.summary import (
    AssetRecord,
    MarketRecord,
    RunSummary,
    build_portfolio_summary,
    render_summary,
    summary_to_dict,
)
from mm_daemon.core.types import (
    ExecutionStatus,
    Instrument,
    InstrumentKind,
    MarketEvent,
    OrderRequest,
)
from mm_daemon.engine import wiring
from mm_daemon.engine.asset import AssetBook, HedgeLeg
from mm_daemon.engine.budget import VenueBudget
from mm_daemon.engine.client_ids import (
    hedge_prefix,
    instance_root,
    new_client_id_prefix,
    quote_prefix,
    run_prefix,
)
from mm_daemon.engine.control import Controller
from mm_daemon.engine.journal import Journal, JournalError, Recovery
from mm_daemon.engine.metrics import JournalMetrics, MarketDataMetrics, Metrics
from mm_daemon.engine.orders import OrderManager, OrderManagerSettings
from mm_daemon.engine.portfolio import Portfolio, PortfolioLimits
from mm_daemon.engine.reconcile import ReconciledExecution
from mm_daemon.engine.restart import RestartPolicy, StartRecovery
from mm_daemon.engine.runtime import BusyPoll, apply_cpu_affinity
from mm_daemon.engine.trader import MarketTrader
from mm_daemon.engine.virtual_time import VirtualClock, VirtualTimeLoop
from mm_daemon.log import configure_logging, get_logger, register_secret
from mm_daemon.retry import BackoffPolicy
from mm_daemon.sim.runner import SimulatorHandle, serve_forever, start_simulator
from mm_daemon.venues.base import Execution, FundingHistory
from mm_daemon.venues.binance_ws_api import BinanceWsApiExecution, endpoints_from_ccxt
from mm_daemon.venues.ccxt_execution import (
    CcxtExecution,
    MainnetRefusedError,
    check_mainnet_allowed,
)
from mm_daemon.venues.ccxt_venue import CcxtMarketData
from mm_daemon.venues.exchanges import VenueError, create_exchange
from mm_daemon.venues.paper import PaperExecution
from mm_daemon.venues.recorded import RecordedMarketData, RecordedMarkets, config_instruments

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
SNAPSHOT_EVERY_TICKS = 5  # the journal's snapshot series: once a second
SHUTDOWN_CANCEL_SECONDS = 1.0  # with CLOSE_SECONDS, leaves room to exit within 2 s of SIGTERM
CLOSE_SECONDS = 0.5
EXIT_ORDERS_LEFT_OPEN = 3  # the exit code when cancels left orders resting at a venue


def _register_config_secrets(config: Config) -> None:
    for venue in config.venues.values():
        for secret in (venue.api_key, venue.api_secret):
            if secret is not None:
                register_secret(secret.get_secret_value())
    if config.control.token is not None:
        register_secret(config.control.token.get_secret_value())


class Daemon:
    """Owns every task of a run; `run` returns the process exit code.

    With `recorded`, the markets are recorded captures instead of exchanges (`mm-daemon
    replay`): paper fills, no simulator, no signal handlers and no /metrics server, and `clock`
    is the replay loop's virtual clock, which every component reads. A replay keeps no journal
    unless given `journal_path` (a new file: what its report is built from).
    """

    def __init__(
        self,
        config: Config,
        metrics: Metrics | None = None,
        *,
        clock: Callable[[], int] = time.time_ns,
        recorded: RecordedMarkets | None = None,
        fresh: bool = False,
        journal_path: Path | None = None,
        config_path: Path | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self._clock = clock
        self._recorded = recorded
        self._fresh = fresh
        self._journal_path = journal_path
        self.journal: Journal | None = None
        self._recovery: Recovery | None = None
        self._start_recovery: StartRecovery | None = None
        self._run_prefix = f"{new_client_id_prefix()}_"
        self._executions_by_key: dict[tuple[str, str], ReconciledExecution] = {}
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self.control = Controller(self, config_path)  # the HTTP server, SIGHUP, status line
        self.metrics_url: str | None = None
        self.simulator: SimulatorHandle | None = None
        self.portfolio: Portfolio | None = None
        self.summary: RunSummary | None = None
        self.failed_markets: dict[str, str] = {}  # name -> why it did not start
        self._market_data: list[CcxtMarketData | RecordedMarketData] = []
        self._sources: dict[tuple[str, str], CcxtMarketData | RecordedMarketData] = {}
        self._executions: list[ReconciledExecution] = []
        self._live_executions: dict[str, ReconciledExecution] = {}
        self._hedge_venues: dict[str, list[AssetBook]] = {}
        self.budgets: dict[str, VenueBudget] = {}  # one order budget per venue account
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
                await self.control.start()
                self.metrics_url = f"{self.control.url}/metrics" if self.control.url else None
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
                    markets=[m.name for m in self.portfolio.markets] if self.portfolio else [],
                    failed_markets=sorted(self.failed_markets),
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
            left_open = await self._shutdown()
            for sig in signals:
                with suppress(Exception):
                    loop.remove_signal_handler(sig)
            await self.control.stop()
        if left_open:
            # Loud: orders resting unmanaged are the one outcome an operator must act on.
            log.error("orders_left_open", orders=left_open)
            sys.stderr.write(
                f"error: {len(left_open)} order(s) still open after shutdown: "
                f"{', '.join(left_open)}\n"
            )
            return EXIT_ORDERS_LEFT_OPEN
        log.info("shutdown_complete", uptime_seconds=round(time.monotonic() - started, 3))
        return 0

    # -- start ----------------------------------------------------------------------------------

    async def _start(self) -> None:
        if self._recorded is not None:
            if self._journal_path is not None:
                self._open_journal()
            await self._start_recorded(self._recorded)
            return
        cfg = self.config
        self._open_journal()  # first: a second daemon on this journal stops here
        venues = cfg.used_venues()
        if any(v.endpoint == "sim" for v in venues):
            self.simulator = await start_simulator(cfg.sim)
            for endpoint in self.simulator.endpoints.values():
                log.info("simulator_started", **endpoint.as_json())
        symbols: dict[str, list[str]] = {}
        for venue, symbol, _ in config_instruments(cfg):
            symbols.setdefault(venue.name, []).append(symbol)
        connecting: dict[str, asyncio.Task[None]] = {}
        loop = asyncio.get_running_loop()
        for venue in venues:
            sim_url = self._sim_url(venue) if venue.endpoint == "sim" else None
            fees = venue.fees_bps(cfg.sim.fees_bps(venue.exchange))
            md = CcxtMarketData(
                venue,
                cfg.market_data,
                symbols=symbols[venue.name],
                sim_base_url=sim_url,
                reporter=MarketDataMetrics(self.metrics),
                fees_bps=fees,
                rate_limit=False if sim_url else None,
                # Live: the book before a burst of trades read in the same turn (requote
                # latency); paper fills need each trade before the book change it explains.
                trades_after_book=cfg.mode is Mode.LIVE,
                # Paper settles funding from the public mark price and rate.
                mark_prices=cfg.mode is Mode.PAPER,
            )
            self._market_data.append(md)
            for symbol in symbols[venue.name]:
                self.metrics.ws_reconnects.labels(venue.name, symbol)
            connecting[venue.name] = loop.create_task(
                self._retry(
                    f"{venue.name}:connect",
                    functools.partial(md.connect, tolerate_unknown=True),
                )
            )
        # Every venue connects at once; one that is down (or slow) past the deadline leaves
        # its markets out, the others start.
        _, pending = await asyncio.wait(
            connecting.values(), timeout=cfg.market_data.startup_timeout_seconds
        )
        down: dict[str, str] = {}
        for name, task in connecting.items():
            if task in pending:
                task.cancel()
                down[name] = (
                    f"venue {name} did not connect within "
                    f"{cfg.market_data.startup_timeout_seconds:g} s"
                )
            elif (exc := task.exception()) is not None:
                if not isinstance(exc, VenueError):
                    raise exc  # a ConfigError: the run cannot start
                down[name] = str(exc)
        await asyncio.gather(*pending, return_exceptions=True)
        for source in self._market_data:
            if source.venue not in down:
                for symbol in source.instruments:
                    self._sources[(source.venue, symbol)] = source
        unknown = {
            (md.venue, symbol): problem
            for md in self._market_data
            if isinstance(md, CcxtMarketData)
            for symbol, problem in md.unknown.items()
        }
        self._check_markets(down, unknown)
        await self._start_trading()

    def _open_journal(self) -> None:
        """Lock and read the journal; a locked, corrupt or newer one ends the start (exit 2,
        the file untouched)."""
        cfg = self.config
        if not cfg.state.enabled and self._journal_path is None:
            return
        fresh = self._fresh or self._recorded is not None  # a replay starts from nothing
        embedded = [v.name for v in cfg.used_venues() if v.endpoint == "sim"]
        if cfg.mode is Mode.LIVE and embedded:
            # The embedded simulator's accounts start empty at every start: a journal of
            # positions held there would only disagree with them.
            fresh = True
            log.info("journal_fresh", reason="the embedded simulator starts empty", venues=embedded)
        path = self._journal_path or cfg.journal_path
        loop = asyncio.get_running_loop()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError([f"state.dir: cannot create {path.parent}: {exc.strerror}"]) from None
        try:
            journal = Journal.open(
                path,
                fresh=fresh,
                retention_s=cfg.state.retention_days * 86_400.0,
                max_bytes=cfg.state.max_bytes,
                observer=JournalMetrics(self.metrics),
                on_failure=functools.partial(_call_soon, loop, self._journal_failed),
                clock=self._clock,
                fsync_each_commit=cfg.state.fsync_each_commit,
            )
            self._recovery = journal.recover()
        except JournalError as exc:
            raise ConfigError([f"state: {exc}"]) from None
        self.journal = journal
        last = self._recovery.last_run
        log.info(
            "journal_opened",
            path=str(path),
            moved_aside=str(journal.moved_to) if journal.moved_to else None,
            last_run=last.run_id if last else None,
            last_run_end=(last.end_reason or "running") if last else None,
        )

    def _journal_failed(self, reason: str) -> None:
        """A journal write failed (disk full): nothing more is durable, so nothing more may
        count on it. Quoting halts; the process stays up and alerting."""
        self.metrics.journal_failed.set(1)
        log.error("journal_failed", reason=reason, action="quoting halted until a restart")
        if self.portfolio is not None:
            self.portfolio.halt("journal", source="journal")

    def _begin_run(self) -> None:
        """Open this run in the journal: its id roots this run's client order ids."""
        journal = self.journal
        if journal is None:
            return
        cfg = self.config
        config_yaml = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
        run_id = journal.start_run(
            mode=cfg.mode.value,
            instance_id=cfg.instance_id,
            config_yaml=config_yaml,
            ts_ns=self._clock(),
        )
        self._run_prefix = run_prefix(instance_root(cfg.instance_id), run_id)
        log.info("run_started", run_id=run_id, client_id_prefix=self._run_prefix)

    def _check_markets(self, down: dict[str, str], unknown: dict[tuple[str, str], str]) -> None:
        """Leave out the markets whose venue is down or symbol unknown (a required one ends
        the start), and say which."""
        for i, market in enumerate(self.config.markets):
            legs = [(market.venue, market.symbol)]
            if market.hedge is not None:
                legs.append((market.hedge.venue, market.hedge.symbol))
            problem = next(
                (down[venue] for venue, _ in legs if venue in down),
                next((unknown[leg] for leg in legs if leg in unknown), None),
            )
            if problem is None:
                continue
            if market.required:
                raise ConfigError([f"markets.{i} ({market.name}): {problem}"])
            self.failed_markets[market.name] = problem
            self.metrics.market_up.labels(market.name).set(0)
            log.error("market_failed", market=market.name, reason=problem)
        if len(self.failed_markets) == len(self.config.markets):
            raise ConfigError(
                [
                    f"markets: no market could start ({name}: {why})"
                    for name, why in self.failed_markets.items()
                ]
            )

    async def _start_recorded(self, recorded: RecordedMarkets) -> None:
        for md in recorded.markets:
            self._market_data.append(md)
            for symbol in md.instruments:
                self._sources[(md.venue, symbol)] = md
        await self._start_trading()
        self._tasks.append(asyncio.get_running_loop().create_task(self._play(recorded)))

    async def _play(self, recorded: RecordedMarkets) -> None:
        frames = await recorded.play()
        log.info("replay_finished", frames=frames)
        self.request_stop("replay_finished")

    async def _start_trading(self) -> None:
        cfg = self.config
        self._begin_run()
        self.portfolio = portfolio = self._build_portfolio()
        recovery = self._restore(portfolio)
        _freeze_heap()
        loop = asyncio.get_running_loop()
        # Order entry first (connections open, private streams listening), then market data,
        # then the venues aligned with the journal; only then quotes: the first quote must find
        # a venue ready to take it and a book that knows what the account holds.
        for execution in self._executions:
            await self._retry(f"{execution.venue}:execution_connect", execution.connect)
        for execution in self._executions:
            self._tasks.append(
                loop.create_task(
                    self._supervise(
                        f"{execution.venue}:execution",
                        execution.run,
                        portfolio.on_execution_event,
                    )
                )
            )
        for md in self._market_data:
            if any(source is md for source in self._sources.values()):
                self._tasks.append(
                    loop.create_task(
                        self._supervise(
                            f"{md.venue}:market_data", md.run, portfolio.on_market_event
                        )
                    )
                )
        if recovery is not None:
            executions = self._executions_by_key
            await self._retry("recovery", functools.partial(recovery.align, executions))
            log.info(
                "recovered",
                fills_booked=recovery.recovered_fills,
                orders_cancelled=len(recovery.cancelled),
                orders_adopted=len(recovery.adopted),
                foreign_orders=len(recovery.foreign),
                position_mismatches=len(recovery.mismatches),
            )
        elif cfg.mode is Mode.LIVE:
            for market in portfolio.markets:
                await market.orders.reconcile()
        portfolio.start_trading()
        self.control.on_trading_started()
        self._tasks.append(loop.create_task(self._timer(portfolio)))
        if cfg.mode is Mode.LIVE:
            for venue, execution in self._live_executions.items():
                history = execution.inner
                perpetuals = [
                    i.symbol
                    for i in getattr(history, "instruments", ())
                    if i.kind is InstrumentKind.PERPETUAL
                ]
                if perpetuals and isinstance(history, FundingHistory):
                    self._tasks.append(
                        loop.create_task(
                            self._poll_funding(history, venue, perpetuals, portfolio),
                            name=f"{venue}:funding",
                        )
                    )

    def _restore(self, portfolio: Portfolio) -> StartRecovery | None:
        """Step 1 of the start's recovery (the journal's books); quoting waits for the rest."""
        journal, recovery = self.journal, self._recovery
        if journal is None or recovery is None:
            return None
        cfg = self.config
        start = StartRecovery(
            portfolio,
            journal,
            recovery,
            RestartPolicy(
                instance_root(cfg.instance_id),
                on_start=cfg.state.on_start,
                position_mismatch=cfg.state.position_mismatch,
                compare_positions=cfg.mode is Mode.LIVE,
            ),
            metrics=self.metrics,
            clock=self._clock,
        )
        try:
            start.restore()
        except JournalError as exc:
            raise ConfigError([f"state: {exc}"]) from None
        portfolio.stop_trading()
        self._start_recovery = start
        return start

    def _sim_url(self, venue: VenueConfig) -> str:
        assert self.simulator is not None  # noqa: S101  started before any sim venue is built
        return simulator_url(self.simulator, venue)

    def _instrument(self, venue: str, symbol: str) -> tuple[Instrument, Book]:
        source = self._sources[(venue, symbol)]
        return source.instruments[symbol], source.book(symbol)

    def _build_portfolio(self) -> Portfolio:
        """One asset book per base asset (its ledger and hedge), one market trader per
        market that could start."""
        cfg = self.config
        paper_feeds: dict[tuple[str, str], Callable[[MarketEvent], None]] = {}
        assets: dict[str, AssetBook] = {}
        hedge_md = cfg.market_data.model_copy(update={"fair_value": FairValueModel.MID})
        journal = self.journal
        for index, market in enumerate(cfg.markets):
            if market.name in self.failed_markets:
                continue
            maker_inst, maker_book = self._instrument(market.venue, market.symbol)
            asset = assets.get(maker_inst.base)
            if asset is None:
                hedges_as = hedge_prefix(self._run_prefix, len(assets))
                ledger = Ledger(maker_inst, hedge_client_id_prefix=hedges_as)
                leg: HedgeLeg | None = None
                if market.hedge is not None:
                    hedge_inst, hedge_book = self._instrument(
                        market.hedge.venue, market.hedge.symbol
                    )
                    hedger = Hedger(
                        wiring.hedge_params(market.hedging), hedge_inst, client_id_prefix=hedges_as
                    )
                    ledger.add_instrument(hedge_inst)
                    ledger.set_netting_weight(hedge_inst.venue, hedger.netting_weight)
                    leg = HedgeLeg(
                        wiring.market_state(
                            hedge_inst, hedge_md, book=hedge_book, book_is_shared=True
                        ),
                        self._execution(hedge_inst, hedge_book, paper_feeds),
                        hedger,
                        budget=self._budget(hedge_inst.venue),
                        risk=RiskGate(
                            wiring.hedge_risk_limits(
                                market.risk, market.inventory.limit_base, market.hedging, hedge_inst
                            )
                        ),
                    )
                    log.info("hedge_instrument", asset=maker_inst.base, **_describe(hedge_inst))
                asset = assets[maker_inst.base] = AssetBook(
                    maker_inst.base,
                    ledger,
                    self.metrics,
                    hedge=leg,
                    clock=self._clock,
                    journal=journal,
                )
            else:
                asset.ledger.add_instrument(maker_inst)
            cross = cfg.market_data.fair_value is FairValueModel.CROSS_VENUE
            state = wiring.market_state(
                maker_inst,
                cfg.market_data,
                # The adapter keeps the sequence-checked book; the state reads it, never
                # re-applies.
                book=maker_book,
                book_is_shared=True,
                reference=asset.hedge.state if cross and asset.hedge is not None else None,
            )
            risk = RiskGate(
                wiring.risk_limits(market.risk, market.inventory, market.quoting, maker_inst)
            )
            orders = OrderManager(
                self._execution(maker_inst, maker_book, paper_feeds),
                maker_inst,
                OrderManagerSettings.from_config(market.quoting, market.risk),
                risk=risk,
                metrics=self.metrics,
                clock=self._clock,
                client_id_prefix=quote_prefix(self._run_prefix, index),
                market=market.name,
                journal=journal,
                budget=self._budget(market.venue),
            )
            MarketTrader(
                name=market.name,
                state=state,
                quoter=Quoter(wiring.quote_params(market.quoting, market.inventory, maker_inst)),
                orders=orders,
                markouts=MarkoutTracker(),
                risk=risk,
                asset=asset,
                metrics=self.metrics,
                clock=self._clock,
                journal=journal,
            )
            self.metrics.inventory_limit_base.labels(market.name).set(market.inventory.limit_base)
            self.metrics.max_drawdown_quote.labels(market.name).set(market.risk.max_drawdown_quote)
            log.info("market", market=market.name, **_describe(maker_inst))
        for asset in assets.values():
            if asset.hedge is not None:
                self._hedge_venues.setdefault(asset.hedge.execution.venue, []).append(asset)
            if cfg.mode is Mode.PAPER:
                self._settle_paper_funding(asset)
        limits = cfg.portfolio
        return Portfolio(
            list(assets.values()),
            self.metrics,
            limits=PortfolioLimits(
                limits.max_gross_notional_quote,
                limits.max_net_notional_quote,
                limits.max_drawdown_quote,
            ),
            paper_feeds=paper_feeds,
            clock=self._clock,
            journal=journal,
        )

    def _budget(self, venue_name: str) -> VenueBudget:
        """The order budget of `venue_name`'s account, shared by its markets and hedges."""
        budget = self.budgets.get(venue_name)
        if budget is None:
            budget = VenueBudget.for_venue(
                self.config.venues[venue_name], metrics=self.metrics, clock=self._clock
            )
            self.budgets[venue_name] = budget
        return budget

    def _settle_paper_funding(self, asset: AssetBook) -> None:
        """Paper: each perpetual of the asset settles funding from its mark price stream,
        from after the last settlement the journal holds."""
        recovered = self._recovery.last_funding_ns if self._recovery is not None else {}
        for position in asset.ledger.positions():
            inst = position.instrument
            if inst.kind is InstrumentKind.PERPETUAL:
                asset.add_funding_settler(
                    FundingSettler(
                        inst.venue,
                        inst.symbol,
                        inst.quote,
                        settled_through_ns=recovered.get((inst.venue, inst.symbol), 0),
                    )
                )

    def _execution(
        self,
        instrument: Instrument,
        book: Book,
        paper_feeds: dict[tuple[str, str], Callable[[MarketEvent], None]],
    ) -> ReconciledExecution:
        """Paper: one paper venue per instrument, fed by its public flow. Live: one order
        entry per venue (one connection, one account) for all of its instruments."""
        venue = self.config.venues[instrument.venue]
        key = (instrument.venue, instrument.symbol)
        if self.journal is not None:
            self.journal.register_instrument(instrument)
        if self.config.mode is Mode.PAPER:
            last = self._recovery.last_trades.get(key) if self._recovery is not None else None
            paper = PaperExecution(
                instrument,
                self.config.paper,
                venue=venue.name,
                book=book,
                clock=self._clock,
                # Paper trade ids go on from the journal's: a new fill never looks booked.
                last_trade_id=int(last.trade_id) if last and last.trade_id.isdigit() else 0,
            )
            self._restore_paper_orders(paper, key)
            paper_feeds[key] = paper.on_market_event
            self._executions_by_key[key] = self._reconciled(paper)
            return self._executions_by_key[key]
        live = self._live_executions.get(venue.name)
        if live is None:
            live = self._reconciled(self._live_execution(venue))
            self._live_executions[venue.name] = live
            observe = getattr(live.inner, "observe_rate_limits", None)
            if observe is not None:
                observe(self._budget(venue.name))
        add = getattr(live.inner, "add_instrument", None)
        if add is not None:
            add(instrument)
        self._executions_by_key[key] = live
        return live

    def _restore_paper_orders(self, paper: PaperExecution, key: tuple[str, str]) -> None:
        """The paper venue is this process: the orders an earlier paper run left resting are
        the journal's, given back to it here so that the start recovery finds them open and
        cancels or adopts them (`state.on_start`) as it does a venue's."""
        if self._recovery is None:
            return
        for order in self._recovery.open_orders:
            if order.mode != Mode.PAPER.value or (order.venue, order.symbol) != key:
                continue
            request = OrderRequest(
                order.venue,
                order.symbol,
                order.client_order_id,
                order.side,
                order.price_ticks,
                order.size_lots,
                order.order_type,
            )
            paper.restore(request, order.exchange_order_id, order.filled_lots)

    def _reconciled(self, execution: Execution) -> ReconciledExecution:
        reconciled = ReconciledExecution(
            execution, on_status=self._execution_status, clock=self._clock
        )
        self._executions.append(reconciled)
        return reconciled

    def _live_execution(self, venue: VenueConfig) -> Execution:
        md = next(
            (
                m
                for m in self._market_data
                if isinstance(m, CcxtMarketData) and m.venue == venue.name
            ),
            None,
        )
        if md is None:
            raise ConfigError(["mode: a replay of recorded markets trades on paper only"])
        sim_url = self._sim_url(venue) if venue.endpoint == "sim" else None
        if sim_url is not None and venue.api_key is None:
            # The simulator opens an account for any key; it signs with the key itself as the
            # secret, and still checks every signature.
            key = SecretStr(f"mmd-{venue.name}")
            venue = venue.model_copy(update={"api_key": key, "api_secret": key})
        if venue.api_key is None or venue.api_secret is None:
            env = f"MMD_VENUES__{env_key(venue.name).upper()}"
            raise ConfigError(
                [
                    f"venues.{venue.name}: live mode needs an API key and secret "
                    f"({env}__API_KEY / {env}__API_SECRET or api_key_file / api_secret_file)"
                ]
            )
        if venue.order_entry == "native" and venue.exchange in DIALECTS:
            # Signed WS-API requests of our own, to the URLs ccxt resolved for this endpoint
            # (the market-data adapter's exchange already holds them).
            endpoints = endpoints_from_ccxt(
                md.exchange.urls["api"], usdm=venue.exchange == "binanceusdm"
            )
            return BinanceWsApiExecution(
                endpoints,
                venue.api_key,
                venue.api_secret,
                venue=venue.name,
                usdm=venue.exchange == "binanceusdm",
            )
        exchange = create_exchange(
            venue, sim_base_url=sim_url, rate_limit=False if sim_url else None
        )
        return CcxtExecution(exchange, venue=venue.name)

    def _execution_status(self, status: ExecutionStatus) -> None:
        """An order-entry connection went down or came back (the reconcile is the wrapper's);
        a hedge venue that cannot take orders counts as down."""
        self.control.on_execution_status(status)
        log.log(
            20 if status.connected else 30,
            "order_entry_connected" if status.connected else "order_entry_lost",
            venue=status.venue,
            reason=status.reason,
        )
        for asset in self._hedge_venues.get(status.venue, ()):
            if asset.hedge is not None:
                asset.hedge.hedger.on_venue_status(
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

    async def _poll_funding(
        self, history: FundingHistory, venue: str, symbols: list[str], portfolio: Portfolio
    ) -> None:
        """Live: book the venue's funding payments on our perpetual positions, read from its
        income history every `funding.income_poll_seconds` and at once when the user-data
        stream says a settlement happened. The journal keeps each settlement once (a restart
        reads from the last one it holds, or from this run's start)."""
        recovered = self._recovery.last_funding_ns if self._recovery is not None else {}
        start_ms = {
            symbol: (
                recovered[(venue, symbol)] // 1_000_000 + 1
                if (venue, symbol) in recovered
                else self._started_ns // 1_000_000
            )
            for symbol in symbols
        }
        poll_s = self.config.funding.income_poll_seconds
        while True:
            for symbol in symbols:
                asset = portfolio.asset_of(venue, symbol)
                if asset is None:
                    continue
                try:
                    fees = await history.funding_fees(symbol, start_ms[symbol])
                except Exception as exc:  # noqa: BLE001  read again on the next poll
                    log.warning("funding_read_failed", venue=venue, symbol=symbol, error=repr(exc))
                    continue
                for fee in fees:
                    asset.book_funding(fee)
                    start_ms[symbol] = max(start_ms[symbol], fee.funding_time_ns // 1_000_000 + 1)
            settled = asyncio.ensure_future(history.funding_settled())
            try:
                await asyncio.wait({settled}, timeout=poll_s)
            finally:
                settled.cancel()

    async def _timer(self, portfolio: Portfolio) -> None:
        interval = TIMER_INTERVAL_SECONDS
        ticks = 0
        while True:
            await asyncio.sleep(interval)
            ticks += 1
            try:
                portfolio.on_timer()
                for budget in self.budgets.values():
                    budget.publish()
                if ticks % SNAPSHOT_EVERY_TICKS == 0:
                    portfolio.persist(self._clock())
            except Exception as exc:
                log.exception("timer_failed", error=repr(exc))

    # -- stop -----------------------------------------------------------------------------------

    async def _shutdown(self) -> list[str]:
        """Cancel every order (each market's, then the live hedges'), stop every task, close
        the venues, print the summary. Returns the orders still open at the venues."""
        portfolio = self.portfolio
        left: list[str] = []
        if portfolio is not None:
            cancels = [self._cancel_market(market) for market in portfolio.markets]
            if self.config.mode is Mode.LIVE:
                cancels += [self._cancel_hedges(asset) for asset in portfolio.assets if asset.hedge]
            for result in await asyncio.gather(*cancels):
                left.extend(result)
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
        if portfolio is not None:
            portfolio.on_timer()  # mark P&L at the latest fair values
            elapsed = (self._clock() - self._started_ns) / 1e9
            self.summary = build_portfolio_summary(
                [
                    AssetRecord(
                        asset.ledger,
                        asset.hedge.hedger if asset.hedge else None,
                        tuple(
                            MarketRecord(
                                m.name, m.instrument.venue, m.instrument.symbol, m.markouts
                            )
                            for m in asset.markets
                        ),
                    )
                    for asset in portfolio.assets
                ],
                elapsed,
            )
            log.info("run_summary", **summary_to_dict(self.summary))
            sys.stdout.write(render_summary(self.summary) + "\n")
            sys.stdout.flush()
        self._close_journal(portfolio, left)
        return left

    def _close_journal(self, portfolio: Portfolio | None, left_open: list[str]) -> None:
        journal = self.journal
        if journal is None:
            return
        self.journal = None
        try:
            if journal.run_id is not None:
                now = self._clock()
                if portfolio is not None:
                    portfolio.checkpoint(now)
                journal.end_run(
                    reason=("orders_left_open" if left_open else self._stop_reason) or "stopped",
                    summary=summary_to_dict(self.summary) if self.summary is not None else None,
                    ts_ns=now,
                )
        finally:
            journal.close()

    async def _cancel_market(self, market: MarketTrader) -> list[str]:
        try:
            await asyncio.wait_for(
                market.orders.shutdown(timeout_s=SHUTDOWN_CANCEL_SECONDS),
                SHUTDOWN_CANCEL_SECONDS + 0.5,
            )
        except Exception as exc:  # noqa: BLE001  shutdown goes on whatever the venue says
            # The reason is enough: a traceback would only repeat it.
            log.error("cancel_all_failed", market=market.name, error=repr(exc))  # noqa: TRY400
            return [f"{market.name}: cancel failed ({type(exc).__name__})"]
        left = market.orders.left_open
        log.info("orders_cancelled", market=market.name, still_open=len(left))
        return [f"{market.name}: {cid}" for cid in left]

    async def _cancel_hedges(self, asset: AssetBook) -> list[str]:
        leg = asset.hedge
        if leg is None:
            return []
        symbol = leg.state.instrument.symbol
        try:
            async with asyncio.timeout(SHUTDOWN_CANCEL_SECONDS):
                await leg.execution.cancel_all(symbol)
                remaining = await leg.execution.open_orders(symbol)
        except Exception as exc:  # noqa: BLE001  shutdown goes on whatever the venue says
            log.error("cancel_all_failed", venue=leg.execution.venue, error=repr(exc))  # noqa: TRY400
            return [f"{symbol}@{leg.execution.venue}: cancel failed ({type(exc).__name__})"]
        return [f"{symbol}@{leg.execution.venue}: {u.client_order_id}" for u in remaining]

    # -- what the control plane reads ------------------------------------------------------------

    @property
    def started_ns(self) -> int:
        return self._started_ns

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def market_data_of(self, venue: str, symbol: str) -> object | None:
        """The market-data source of an instrument (None: its venue did not start)."""
        return self._sources.get((venue, symbol))

    def symbols_of(self, venue: str) -> list[str] | None:
        """The symbols read on `venue` (None: it did not start)."""
        symbols = [symbol for (name, symbol) in self._sources if name == venue]
        return symbols or None

    def executions(self) -> dict[tuple[str, str], ReconciledExecution]:
        """Order entry by (venue, symbol), quoted and hedge instruments."""
        return dict(self._executions_by_key)


def simulator_url(simulator: SimulatorHandle, venue: VenueConfig) -> str:
    """The REST base of the embedded simulator's venue for `venue`'s exchange."""
    dialect = DIALECTS.get(venue.exchange)
    for endpoint in simulator.endpoints.values():
        if endpoint.dialect == dialect:
            return endpoint.rest
    raise ConfigError([f"venues: {venue.name}: the simulator has no {venue.exchange} venue"])


def _call_soon(
    loop: asyncio.AbstractEventLoop, callback: Callable[[str], None], reason: str
) -> None:
    """`callback(reason)` on `loop`'s thread (the journal fails on its writer thread too)."""
    loop.call_soon_threadsafe(callback, reason)


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
