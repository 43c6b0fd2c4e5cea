"""The control actions on a running daemon: what the HTTP API (`mm_daemon.control.server`) and
SIGHUP ask, done on the daemon's portfolio.

- pause / resume: an operator's hold on a market's quotes (cancelled at once; risk, hedging and
  the books keep running);
- kill: every market HALTED by the operator (journaled before the orders go: a restart finds
  it HALTED), hedging held, and every order of the daemon's accounts cancelled on every venue
  and symbol it trades, tracked or not;
- reset: every HALTED market and the portfolio's latch back to ACTIVE (journaled);
- reload: the config file read again and its tunable fields applied (`plan_reload` says which
  may change live); the markets requote, and orders within their tolerances stay;
- status and readiness for the API, and the terminal's status line.

Every action, done or refused, is journaled with the caller (`audit`).
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from mm_daemon import __version__
from mm_daemon.config import Config, ConfigError, Mode, load_config
from mm_daemon.control import api
from mm_daemon.control.server import ControlError, ControlServer
from mm_daemon.control.statusline import status_line
from mm_daemon.core.quoting import Quoter
from mm_daemon.core.risk import RiskState
from mm_daemon.engine import wiring
from mm_daemon.engine.orders import OrderManagerSettings
from mm_daemon.engine.portfolio import PortfolioLimits
from mm_daemon.engine.trader import KILL_REASON
from mm_daemon.log import get_logger, recent_problems, set_level, terminal_stream

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from mm_daemon.core.types import ExecutionStatus, Instrument
    from mm_daemon.engine.daemon import Daemon
    from mm_daemon.engine.portfolio import Portfolio
    from mm_daemon.engine.trader import MarketTrader

__all__ = ["Controller", "ReloadPlan", "plan_reload"]

log = get_logger(__name__)

KILL_CANCEL_SECONDS = 5.0  # the cancels of a kill, every venue at once
_TUNABLE_SECTIONS = ("quoting", "inventory", "hedging", "risk")
_TUNABLE_TOP = {"portfolio": None, "logging": {"level", "status_line_seconds"}}
"""Top-level sections that may change live (None: every field of it)."""
_RISK_NAMES: dict[RiskState, api.RiskStateName] = {
    RiskState.ACTIVE: "ACTIVE",
    RiskState.REDUCING: "REDUCING",
    RiskState.HALTED: "HALTED",
}


# -- reload planning -----------------------------------------------------------------------------


@dataclass(slots=True)
class ReloadPlan:
    """What a reload would change, and what it refuses (one line per field)."""

    changes: list[api.ConfigChange] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def _scalar(value: Any) -> api.Scalar:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(getattr(value, "value", value))


def _leaves(prefix: str, old: Any, new: Any) -> Iterable[tuple[str, Any, Any]]:
    """(path, old, new) of every leaf that differs between two dumped config values."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            yield from _leaves(f"{prefix}.{key}", old.get(key), new.get(key))
    elif old != new:
        yield prefix, old, new


def _not_live(path: str) -> str:
    return f"{path}: cannot change while the daemon runs (restart it to apply the change)"


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """Compare the running config with a new one: tunable fields that changed (per market:
    quoting, inventory, hedging, risk; the portfolio limits; logging.level and
    status_line_seconds) and a refusal for any other change, naming the field (values are
    never shown: a venue's holds its keys)."""
    plan = ReloadPlan()
    before = old.model_dump(mode="python")
    after = new.model_dump(mode="python")
    for name in type(old).model_fields:
        if name in _TUNABLE_SECTIONS:
            continue  # every market's defaults: their effect is in each market's sections
        if name == "markets":
            _plan_markets(old, new, plan)
            continue
        tunable = _TUNABLE_TOP.get(name, ())
        for path, was, now in _leaves(name, before[name], after[name]):
            leaf = path.split(".", 1)[1] if "." in path else path
            if tunable is None or leaf in (tunable or ()):
                plan.changes.append(
                    api.ConfigChange(market=None, field=path, old=_scalar(was), new=_scalar(now))
                )
            else:
                plan.refused.append(_not_live(path))
    return plan


def _plan_markets(old: Config, new: Config, plan: ReloadPlan) -> None:
    if len(old.markets) != len(new.markets):
        plan.refused.append(
            f"markets: the list of markets cannot change while the daemon runs "
            f"({len(old.markets)} -> {len(new.markets)}); restart it to apply the change"
        )
        return
    for i, (was, now) in enumerate(zip(old.markets, new.markets, strict=True)):
        before, after = was.model_dump(mode="python"), now.model_dump(mode="python")
        for name in type(was).model_fields:
            for path, a, b in _leaves(name, before[name], after[name]):
                if name in _TUNABLE_SECTIONS:
                    change = api.ConfigChange(
                        market=was.name, field=path, old=_scalar(a), new=_scalar(b)
                    )
                    plan.changes.append(change)
                else:
                    plan.refused.append(_not_live(f"markets.{i}.{path}"))


# -- the controller ------------------------------------------------------------------------------


def _finite(value: float | None) -> float | None:
    if value is None or value != value or value in (float("inf"), float("-inf")):  # noqa: PLR0124  NaN is the one value unequal to itself
        return None
    return float(value)


def _price(instrument: Instrument, ticks: int | None) -> float | None:
    return None if ticks is None else instrument.ticks_to_price(ticks)


class Controller:
    """The control actions and views of one daemon (`ControlTarget` of the HTTP server)."""

    def __init__(self, daemon: Daemon, config_path: Path | None = None) -> None:
        self._daemon = daemon
        self.config_path = config_path
        self.trading_started = False
        self._order_entry: dict[str, tuple[bool, str]] = {}  # venue -> (connected, reason)
        self._server: ControlServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._reloading = asyncio.Lock()
        self._on_sighup = False
        self.url: str | None = None

    # -- lifecycle (called by the daemon) ------------------------------------------------------

    async def start(self) -> None:
        """Serve HTTP (when metrics.enabled), reload on SIGHUP, print the status line on a
        terminal. ConfigError when the address cannot be bound."""
        daemon = self._daemon
        cfg = daemon.config
        loop = asyncio.get_running_loop()
        if cfg.metrics.enabled:
            server = ControlServer(
                self,
                daemon.metrics.registry,
                host=cfg.metrics.host,
                port=cfg.metrics.port,
                token=cfg.control.token,
                enabled=cfg.control.enabled,
                requests=daemon.metrics.control_requests,
            )
            try:
                self.url = await server.start()
            except OSError as exc:
                raise ConfigError(
                    [
                        f"metrics.port: cannot serve on {cfg.metrics.host}:{cfg.metrics.port}: "
                        f"{exc.strerror}"
                    ]
                ) from None
            self._server = server
            log.info(
                "metrics_serving",
                url=f"{self.url}/metrics",
                control=f"{self.url}/status" if cfg.control.enabled else "off",
            )
        loop.add_signal_handler(signal.SIGHUP, self._reload_on_signal)
        self._on_sighup = True
        stream = terminal_stream()
        if stream is not None:
            self._tasks.append(loop.create_task(self._status_lines(stream)))

    async def stop(self) -> None:
        if self._on_sighup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._on_sighup = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._server is not None:
            await self._server.stop()
            self._server = None

    def on_trading_started(self) -> None:
        """Recovery is done and the markets quote: readiness may turn true; a kill restored
        from the journal shows on its gauge."""
        self.trading_started = True
        portfolio = self._daemon.portfolio
        if portfolio is None:
            return
        for market in portfolio.markets:
            self._publish_control(market)
            if market.killed:
                log.warning("market_still_killed", market=market.name, reason=market.risk.reason)

    def on_execution_status(self, status: ExecutionStatus) -> None:
        self._order_entry[status.venue] = (status.connected, status.reason)

    # -- views ---------------------------------------------------------------------------------

    def health(self) -> api.Health:
        return api.Health(status="ok", uptime_seconds=self._uptime())

    def _uptime(self) -> float:
        started = self._daemon.started_ns
        return round((time.time_ns() - started) / 1e9, 3) if started else 0.0

    def readiness(self) -> api.Readiness:
        daemon = self._daemon
        reasons: list[str] = []
        portfolio = daemon.portfolio
        if daemon.stopping:
            reasons.append("stopping")
        elif portfolio is None:
            reasons.append("starting: connecting to the venues")
        elif not self.trading_started:
            reasons.append("recovering: aligning the journal and the venues")
        failed = daemon.journal.failed_reason if daemon.journal is not None else None
        if failed:
            reasons.append(f"journal failed: {failed}")
        if portfolio is not None:
            for market in portfolio.markets:
                inst = market.instrument
                if self._stale(inst.venue, inst.symbol):
                    reasons.append(f"{market.name}: market data stale")
            for asset in portfolio.assets:
                if asset.hedge is not None:
                    inst = asset.hedge.state.instrument
                    if self._stale(inst.venue, inst.symbol):
                        reasons.append(
                            f"{asset.asset} hedge {inst.symbol}@{inst.venue}: market data stale"
                        )
        return api.Readiness(ready=not reasons, reasons=reasons)

    def _stale(self, venue: str, symbol: str) -> bool:
        source = self._daemon.market_data_of(venue, symbol)
        is_stale = getattr(source, "is_stale", None)
        return bool(is_stale(symbol)) if is_stale is not None else False

    def _state(self) -> api.DaemonState:
        daemon = self._daemon
        if daemon.stopping:
            return "stopping"
        if daemon.portfolio is None:
            return "starting"
        return "trading" if self.trading_started else "recovering"

    def status(self) -> api.Status:
        daemon = self._daemon
        cfg = daemon.config
        portfolio = daemon.portfolio
        now = time.time_ns()
        started = daemon.started_ns or now
        return api.Status(
            instance_id=cfg.instance_id,
            version=__version__,
            mode="live" if cfg.mode is Mode.LIVE else "paper",
            run_id=daemon.journal.run_id if daemon.journal is not None else None,
            state=self._state(),
            started_at=datetime.fromtimestamp(started / 1e9, UTC).isoformat(),
            uptime_seconds=self._uptime(),
            readiness=self.readiness(),
            markets=[self._market_status(m) for m in portfolio.markets] if portfolio else [],
            failed_markets=dict(daemon.failed_markets),
            assets=self._asset_status(portfolio, now) if portfolio else [],
            venues=self._venue_status(),
            portfolio=self._portfolio_status(portfolio) if portfolio else None,
            errors=[
                api.ProblemEntry(
                    timestamp=p.timestamp, level=p.level, event=p.event, detail=p.detail
                )
                for p in recent_problems()
            ],
        )

    def _market_status(self, market: MarketTrader) -> api.MarketStatus:
        inst = market.instrument
        book = market.state.book
        bid, ask = book.best_bid(), book.best_ask()
        quote_bid, quote_ask = market.orders.best_prices()
        risk = market.risk
        return api.MarketStatus(
            name=market.name,
            venue=inst.venue,
            symbol=inst.symbol,
            asset=inst.base,
            stale=self._stale(inst.venue, inst.symbol),
            fair_value=_finite(market.state.fair_value_price),
            best_bid=_price(inst, bid[0] if bid else None),
            best_ask=_price(inst, ask[0] if ask else None),
            quote_bid=_price(inst, quote_bid),
            quote_ask=_price(inst, quote_ask),
            open_orders=[
                api.OpenOrder(
                    client_order_id=o.client_order_id,
                    side="buy" if o.side > 0 else "sell",
                    level=o.level,
                    price=inst.ticks_to_price(o.price_ticks),
                    size=inst.lots_to_size(o.size_lots),
                    filled=inst.lots_to_size(o.filled_lots),
                    status=o.status.value,
                )
                for o in market.orders.live_orders()
            ],
            position_base=market.asset.ledger.position(inst.venue, inst.symbol).base,
            net_exposure_base=market.asset.net_exposure_base,
            pnl=market.pnl().as_floats(),
            markouts_bps={h: _finite(v) for h, v in market.markouts.means_bps().items()},
            markout_counts=market.markouts.counts(),
            risk=api.RiskStatus(
                state=_RISK_NAMES[risk.state],
                reason=risk.reason,
                killed=market.killed,
                peak_pnl_quote=_finite(risk.peak_pnl_quote),
            ),
            paused=market.paused,
            pause_reason=market.pause_reason,
            operator_paused=market.operator_paused,
            order_budget=[
                api.BudgetWindow(window=w.limit.label, used=w.used, limit=w.limit.limit)
                for w in market.orders.budget.usage()
            ],
        )

    def _asset_status(self, portfolio: Portfolio, now: int) -> list[api.AssetStatus]:
        assets = []
        for asset in portfolio.assets:
            hedge = None
            leg = asset.hedge
            if leg is not None:
                inst = leg.state.instrument
                hedger = leg.hedger
                down = hedger.hedge_down(now)
                hedge = api.HedgeStatus(
                    venue=inst.venue,
                    symbol=inst.symbol,
                    mode=str(hedger.config.mode.value),
                    stale=self._stale(inst.venue, inst.symbol),
                    down=down is not None,
                    down_reason=down.reason if down is not None else "",
                    held=asset.held,
                    hedge_ratio=hedger.hedge_ratio,
                    orders=hedger.stats.orders,
                    fills=hedger.stats.fills,
                    rejects=hedger.stats.rejects,
                    in_flight=hedger.in_flight_orders,
                    position_base=asset.ledger.position(inst.venue, inst.symbol).base,
                )
            assets.append(
                api.AssetStatus(
                    asset=asset.asset,
                    markets=[m.name for m in asset.markets],
                    net_exposure_base=asset.net_exposure_base,
                    pnl=asset.ledger.pnl().as_floats(),
                    hedge=hedge,
                )
            )
        return assets

    def _venue_status(self) -> list[api.VenueStatus]:
        daemon = self._daemon
        paper = daemon.config.mode is Mode.PAPER
        venues = []
        for venue in daemon.config.used_venues():
            symbols = daemon.symbols_of(venue.name)
            market_data: api.MarketDataState
            order_entry: api.OrderEntryState
            if symbols is None:
                market_data = "down"
                stale: list[str] = []
            else:
                stale = [s for s in symbols if self._stale(venue.name, s)]
                market_data = "stale" if stale else "fresh"
            entry = self._order_entry.get(venue.name)
            if paper:
                order_entry = "paper"
            elif entry is None:
                order_entry = "unknown"
            else:
                order_entry = "connected" if entry[0] else "disconnected"
            venues.append(
                api.VenueStatus(
                    name=venue.name,
                    exchange=venue.exchange,
                    endpoint=venue.endpoint,
                    market_data=market_data,
                    stale_symbols=stale,
                    order_entry=order_entry,
                    order_entry_reason=entry[1] if entry is not None and not paper else "",
                )
            )
        return venues

    def _portfolio_status(self, portfolio: Portfolio) -> api.PortfolioStatus:
        limits = portfolio.limits
        return api.PortfolioStatus(
            pnl=portfolio.pnl(),
            gross_notional_quote=portfolio.gross_notional_quote(),
            halted_reason=portfolio.halted_reason,
            max_gross_notional_quote=limits.max_gross_notional_quote,
            max_net_notional_quote=limits.max_net_notional_quote,
            max_drawdown_quote=limits.max_drawdown_quote,
        )

    # -- actions -------------------------------------------------------------------------------

    def _portfolio(self) -> Portfolio:
        portfolio = self._daemon.portfolio
        if portfolio is None or self._daemon.stopping:
            raise ControlError(
                409,
                "the daemon is stopping" if self._daemon.stopping else "the daemon is starting",
            )
        return portfolio

    def _markets(self, portfolio: Portfolio, names: list[str] | None) -> list[MarketTrader]:
        if names is None:
            return list(portfolio.markets)
        chosen = []
        for name in dict.fromkeys(names):
            market = portfolio.market(name)
            if market is None:
                known = ", ".join(m.name for m in portfolio.markets)
                raise ControlError(404, f"no market {name!r} (markets: {known})")
            chosen.append(market)
        return chosen

    def _publish_control(self, market: MarketTrader) -> None:
        m = self._daemon.metrics
        m.operator_paused.labels(market.name).set(1 if market.operator_paused else 0)
        m.operator_halted.labels(market.name).set(1 if market.killed else 0)
        market.publish()

    async def pause(self, markets: list[str] | None, caller: str) -> api.ActionResult:
        return self._hold(markets, caller, paused=True)

    async def resume(self, markets: list[str] | None, caller: str) -> api.ActionResult:
        return self._hold(markets, caller, paused=False)

    def _hold(self, names: list[str] | None, caller: str, *, paused: bool) -> api.ActionResult:
        del caller  # logged and journaled by the server
        portfolio = self._portfolio()
        chosen = self._markets(portfolio, names)
        changed = [m for m in chosen if m.operator_paused is not paused]
        for market in changed:
            market.operator_paused = paused
            if not paused:
                market.paused, market.pause_reason = False, ""
            market.requote(0)
            self._publish_control(market)
        verb = "paused" if paused else "resumed"
        detail = (
            f"{verb} {', '.join(m.name for m in changed)}"
            if changed
            else f"already {verb}: {', '.join(m.name for m in chosen)}"
        )
        return api.ActionResult(
            action="pause" if paused else "resume",
            result="ok" if changed else "unchanged",
            detail=detail,
            markets=[m.name for m in chosen],
        )

    async def kill(self, reason: str | None, caller: str) -> api.ActionResult:
        portfolio = self._portfolio()
        text = f"{KILL_REASON} ({caller})" + (f": {reason}" if reason else "")
        # Journaled (committed) first: from here a restart finds every market HALTED.
        portfolio.halt(text, source="operator")
        for market in portfolio.markets:
            self._publish_control(market)
        log.error("killed", caller=caller, reason=reason or "")
        still_open = await self._cancel_everything()
        names = [m.name for m in portfolio.markets]
        if still_open:
            return api.ActionResult(
                action="kill",
                result="partial",
                detail=f"halted {len(names)} market(s); {len(still_open)} order(s) still open",
                markets=names,
                still_open=still_open,
            )
        return api.ActionResult(
            action="kill",
            result="ok",
            detail=f"halted {len(names)} market(s), hedging held, every order cancelled",
            markets=names,
        )

    async def _cancel_everything(self) -> list[str]:
        """Cancel every order of each account on every symbol it trades (quotes and hedges,
        ours or not tracked), every venue at once; what the venues still list after."""
        by_execution: dict[int, tuple[Any, list[str]]] = {}
        for (_venue, symbol), execution in self._daemon.executions().items():
            by_execution.setdefault(id(execution), (execution, []))[1].append(symbol)

        async def sweep(execution: Any, symbols: list[str]) -> list[str]:
            left: list[str] = []
            for symbol in symbols:
                try:
                    await execution.cancel_all(symbol)
                    remaining = await execution.open_orders(symbol)
                    for update in remaining:
                        try:
                            await execution.cancel(symbol, update.client_order_id)
                        except Exception as exc:  # noqa: BLE001  listed below if it stays open
                            log.warning(
                                "kill_cancel_failed", venue=execution.venue, error=repr(exc)
                            )
                    remaining = await execution.open_orders(symbol) if remaining else []
                except Exception as exc:  # noqa: BLE001  a venue that fails is reported, the rest go on
                    log.error("kill_cancel_failed", venue=execution.venue, error=repr(exc))  # noqa: TRY400  the reason is enough
                    left.append(f"{symbol}@{execution.venue}: cancel failed ({type(exc).__name__})")
                    continue
                left.extend(f"{symbol}@{execution.venue}: {u.client_order_id}" for u in remaining)
            return left

        sweeps = [sweep(execution, symbols) for execution, symbols in by_execution.values()]
        try:
            async with asyncio.timeout(KILL_CANCEL_SECONDS):
                results = await asyncio.gather(*sweeps)
        except TimeoutError:
            return [f"cancels unanswered within {KILL_CANCEL_SECONDS:g} s"]
        return [line for result in results for line in result]

    async def reset(self, caller: str) -> api.ActionResult:
        del caller
        portfolio = self._portfolio()
        journal = self._daemon.journal
        if journal is not None and journal.failed_reason:
            raise ControlError(
                409,
                f"the journal cannot write ({journal.failed_reason}): quoting stays halted "
                "until a restart",
            )
        latched = bool(portfolio.halted_reason)
        reset = portfolio.reset_halt()
        for market in portfolio.markets:
            self._publish_control(market)
        if not reset and not latched:
            return api.ActionResult(
                action="reset",
                result="unchanged",
                detail="no market was HALTED",
                markets=[],
            )
        return api.ActionResult(
            action="reset",
            result="ok",
            detail=f"left HALTED: {', '.join(reset) or 'the portfolio latch'}",
            markets=reset,
        )

    async def reload(self, caller: str) -> api.ActionResult:
        async with self._reloading:
            return self._reload(caller)

    def _reload(self, caller: str) -> api.ActionResult:
        del caller
        daemon = self._daemon
        portfolio = self._portfolio()
        reloads = daemon.metrics.config_reloads
        if self.config_path is None:
            raise ControlError(409, "the daemon was not started from a config file")
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            reloads.labels("invalid").inc()
            raise ControlError(
                422, f"{self.config_path}: invalid, the daemon keeps its config", exc.problems
            ) from None
        plan = plan_reload(daemon.config, new)
        if plan.refused:
            reloads.labels("refused").inc()
            raise ControlError(
                409,
                "refused: a field that cannot change while the daemon runs; nothing applied",
                plan.refused,
            )
        if not plan.changes:
            reloads.labels("unchanged").inc()
            return api.ActionResult(
                action="reload", result="unchanged", detail="no field changed", markets=[]
            )
        changed = self._apply(portfolio, new, plan)
        reloads.labels("ok").inc()
        detail = ", ".join(
            f"{c.market + ' ' if c.market else ''}{c.field} {c.old} -> {c.new}"
            for c in plan.changes
        )
        log.info("config_reloaded", changes=len(plan.changes), detail=detail)
        return api.ActionResult(
            action="reload",
            result="ok",
            detail=f"applied {len(plan.changes)} change(s)",
            markets=changed,
            changes=plan.changes,
        )

    def _apply(self, portfolio: Portfolio, new: Config, plan: ReloadPlan) -> list[str]:
        """Rebuild every changed market's quoter, risk limits and order-manager settings, its
        asset's hedge parameters, the portfolio limits and the log level; then requote."""
        daemon = self._daemon
        metrics = daemon.metrics
        changed = {c.market for c in plan.changes if c.market is not None}
        by_name = {m.name: m for m in new.markets}
        for market in portfolio.markets:
            cfg = by_name.get(market.name)
            if cfg is None or market.name not in changed:
                continue
            inst = market.instrument
            market.quoter = Quoter(wiring.quote_params(cfg.quoting, cfg.inventory, inst))
            market.risk.limits = wiring.risk_limits(cfg.risk, cfg.inventory, cfg.quoting, inst)
            market.orders.settings = OrderManagerSettings.from_config(cfg.quoting, cfg.risk)
            metrics.inventory_limit_base.labels(market.name).set(cfg.inventory.limit_base)
            metrics.max_drawdown_quote.labels(market.name).set(cfg.risk.max_drawdown_quote)
        for asset in portfolio.assets:
            leg = asset.hedge
            first = by_name.get(asset.markets[0].name) if asset.markets else None
            if leg is not None and first is not None:
                leg.hedger.reconfigure(wiring.hedge_params(first.hedging))
        limits = new.portfolio
        portfolio.limits = PortfolioLimits(
            limits.max_gross_notional_quote,
            limits.max_net_notional_quote,
            limits.max_drawdown_quote,
        )
        if new.logging.level != daemon.config.logging.level:
            set_level(new.logging.level.value)
        daemon.config = new
        for market in portfolio.markets:
            market.requote(0)
        return sorted(changed)

    def _reload_on_signal(self) -> None:
        task = asyncio.get_running_loop().create_task(self._reload_from_signal())
        self._tasks.append(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        if task in self._tasks:
            self._tasks.remove(task)

    async def _reload_from_signal(self) -> None:
        caller = "SIGHUP"
        try:
            result = await self.reload(caller)
        except ControlError as exc:
            self._daemon.metrics.control_requests.labels("reload", "refused").inc()
            log.warning(
                "control",
                action="reload",
                caller=caller,
                result="refused",
                detail=exc.error,
                problems=exc.problems,
            )
            self.audit("reload", caller, "refused", "; ".join([exc.error, *exc.problems]))
            return
        self._daemon.metrics.control_requests.labels("reload", result.result).inc()
        log.info(
            "control", action="reload", caller=caller, result=result.result, detail=result.detail
        )
        self.audit("reload", caller, result.result, result.detail)

    def audit(self, action: str, caller: str, result: str, detail: str) -> None:
        journal = self._daemon.journal
        if journal is not None and journal.run_id is not None:
            journal.record_control(
                action, caller=caller, result=result, detail=detail, ts_ns=time.time_ns()
            )

    # -- the terminal's status line ------------------------------------------------------------

    async def _status_lines(self, stream: TextIO) -> None:
        while True:
            period = self._daemon.config.logging.status_line_seconds
            await asyncio.sleep(period or 1.0)
            if not period or self._daemon.portfolio is None:
                continue
            try:
                stream.write(status_line(self.status()) + "\n")
                stream.flush()
            except Exception as exc:  # noqa: BLE001  a status line is never worth the run
                log.debug("status_line_failed", error=repr(exc))
