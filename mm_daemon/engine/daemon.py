"""The daemon's runtime: wiring, task supervision, and a clean shutdown on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import yaml

from mm_daemon.config import Config, ConfigError, Mode, VenueConfig
from mm_daemon.core.summary import (
    AssetRecord,
    MarketRecord,
    RunSummary,
    build_portfolio_summary,
    render_summary,
    summary_to_dict,
)
from mm_daemon.core.types import ExecutionStatus, InstrumentKind
from mm_daemon.engine.assembly import PortfolioAssembly, simulator_url
from mm_daemon.engine.asset import AssetBook
from mm_daemon.engine.budget import VenueBudget
from mm_daemon.engine.client_ids import instance_root, new_client_id_prefix, run_prefix
from mm_daemon.engine.control import Controller
from mm_daemon.engine.journal import Journal, JournalError, Recovery
from mm_daemon.engine.metrics import JournalMetrics, MarketDataMetrics, Metrics
from mm_daemon.engine.portfolio import Portfolio
from mm_daemon.engine.reconcile import ReconciledExecution
from mm_daemon.engine.restart import RestartPolicy, StartRecovery
from mm_daemon.engine.runtime import BusyPoll
from mm_daemon.engine.trader import MarketTrader
from mm_daemon.log import get_logger
from mm_daemon.retry import BackoffPolicy
from mm_daemon.sim.runner import SimulatorHandle, start_simulator
from mm_daemon.venues.base import FundingHistory
from mm_daemon.venues.ccxt_venue import CcxtMarketData
from mm_daemon.venues.exchanges import VenueError
from mm_daemon.venues.paper import PaperExecution
from mm_daemon.venues.recorded import RecordedMarketData, RecordedMarkets, config_instruments

__all__ = ["EXIT_ORDERS_LEFT_OPEN", "Daemon"]

log = get_logger(__name__)

TIMER_INTERVAL_SECONDS = 0.2  # markouts, hedge slices and timeouts, risk, gauges
SNAPSHOT_EVERY_TICKS = 5  # the journal's snapshot series: once a second
SHUTDOWN_CANCEL_SECONDS = 1.0  # with CLOSE_SECONDS, leaves room to exit within 2 s of SIGTERM
CLOSE_SECONDS = 0.5
EXIT_ORDERS_LEFT_OPEN = 3  # the exit code when cancels left orders resting at a venue


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
        self._assembly: PortfolioAssembly | None = None  # the portfolio and its order entry
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
            live = self._assembly.live_executions if self._assembly is not None else {}
            for venue, execution in live.items():
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
        if cfg.mode is Mode.PAPER:
            self._restore_paper_balances(portfolio)
        portfolio.stop_trading()
        self._start_recovery = start
        return start

    def _restore_paper_balances(self, portfolio: Portfolio) -> None:
        """Paper: the journal is the account, so its balances are what the journaled fills
        left (the positions and P&L are restored with the ledgers)."""
        executions = self._executions_by_key
        for asset in portfolio.assets:
            for position in asset.ledger.positions():
                inst = position.instrument
                execution = executions.get((inst.venue, inst.symbol))
                paper = execution.inner if execution is not None else None
                if isinstance(paper, PaperExecution):
                    cash = asset.ledger.trade_cash_quote(inst.venue, inst.symbol)
                    paper.restore_balances(position.base, cash)

    def _sim_url(self, venue: VenueConfig) -> str:
        assert self.simulator is not None  # noqa: S101  started before any sim venue is built
        return simulator_url(self.simulator, venue)

    def _build_portfolio(self) -> Portfolio:
        """The run's portfolio and the order entry it trades through (kept for the run)."""
        self._assembly = assembly = PortfolioAssembly(
            self.config,
            self.metrics,
            clock=self._clock,
            journal=self.journal,
            recovery=self._recovery,
            run_prefix=self._run_prefix,
            sources=self._sources,
            market_data=self._market_data,
            simulator=self.simulator,
            failed_markets=self.failed_markets,
            on_status=self._execution_status,
        )
        return assembly.build()

    @property
    def _executions(self) -> list[ReconciledExecution]:
        """Every order entry of the run (none before the portfolio is built)."""
        return self._assembly.executions if self._assembly is not None else []

    @property
    def _executions_by_key(self) -> dict[tuple[str, str], ReconciledExecution]:
        return self._assembly.executions_by_key if self._assembly is not None else {}

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
        hedged = self._assembly.hedge_venues if self._assembly is not None else {}
        for asset in hedged.get(status.venue, ()):
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
            if self.failed_markets:
                self.summary = dataclasses.replace(
                    self.summary, failed_markets=tuple(sorted(self.failed_markets.items()))
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
    def budgets(self) -> dict[str, VenueBudget]:
        """One order budget per venue account (none before the portfolio is built)."""
        return self._assembly.budgets if self._assembly is not None else {}

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
