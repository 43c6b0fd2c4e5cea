"""A run's portfolio put together from its config: one asset book per base asset, one market
trader per market, and the order entry they trade through (paper venues, or one connection per
live venue account), each behind the reconciliation wrapper and its venue's order budget."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from pydantic import SecretStr

from mm_daemon.binance.markets import DIALECTS
from mm_daemon.config import Config, ConfigError, FairValueModel, Mode, VenueConfig, env_key
from mm_daemon.core.book import Book
from mm_daemon.core.funding import FundingSettler
from mm_daemon.core.hedging import Hedger
from mm_daemon.core.inventory import Ledger
from mm_daemon.core.markouts import MarkoutTracker
from mm_daemon.core.quoting import Quoter
from mm_daemon.core.risk import RiskGate
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
from mm_daemon.engine.client_ids import hedge_prefix, quote_prefix
from mm_daemon.engine.journal import Journal, Recovery
from mm_daemon.engine.metrics import Metrics
from mm_daemon.engine.orders import OrderManager, OrderManagerSettings
from mm_daemon.engine.portfolio import Portfolio, PortfolioLimits
from mm_daemon.engine.reconcile import ReconciledExecution
from mm_daemon.engine.trader import MarketTrader
from mm_daemon.log import get_logger
from mm_daemon.sim.runner import SimulatorHandle
from mm_daemon.venues.base import Execution
from mm_daemon.venues.binance_ws_api import BinanceWsApiExecution
from mm_daemon.venues.binance_ws_api_wire import endpoints_from_ccxt
from mm_daemon.venues.ccxt_execution import CcxtExecution
from mm_daemon.venues.ccxt_venue import CcxtMarketData
from mm_daemon.venues.exchanges import create_exchange
from mm_daemon.venues.paper import PaperExecution
from mm_daemon.venues.recorded import RecordedMarketData

__all__ = ["PortfolioAssembly", "simulator_url"]

log = get_logger(__name__)


class PortfolioAssembly:
    """Builds one run's portfolio (`build`) and keeps the order entry it made: every
    reconciled execution (`executions`, by instrument in `executions_by_key`, live ones by
    venue in `live_executions`), the assets hedged on each venue (`hedge_venues`) and one order
    budget per venue account (`budgets`).

    `sources` holds each started instrument's market data; `failed_markets` the markets left
    out; `on_status` hears every order-entry connection go down or come back.
    """

    def __init__(
        self,
        config: Config,
        metrics: Metrics,
        *,
        clock: Callable[[], int],
        journal: Journal | None,
        recovery: Recovery | None,
        run_prefix: str,
        sources: Mapping[tuple[str, str], CcxtMarketData | RecordedMarketData],
        market_data: Sequence[CcxtMarketData | RecordedMarketData],
        simulator: SimulatorHandle | None,
        failed_markets: Collection[str],
        on_status: Callable[[ExecutionStatus], None],
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._clock = clock
        self._journal = journal
        self._recovery = recovery
        self._run_prefix = run_prefix
        self._sources = sources
        self._market_data = market_data
        self._simulator = simulator
        self._failed_markets = failed_markets
        self._on_status = on_status
        self.executions: list[ReconciledExecution] = []
        self.executions_by_key: dict[tuple[str, str], ReconciledExecution] = {}
        self.live_executions: dict[str, ReconciledExecution] = {}
        self.hedge_venues: dict[str, list[AssetBook]] = {}
        self.budgets: dict[str, VenueBudget] = {}

    def _sim_url(self, venue: VenueConfig) -> str:
        assert self._simulator is not None  # noqa: S101  started before any sim venue is built
        return simulator_url(self._simulator, venue)

    def _instrument(self, venue: str, symbol: str) -> tuple[Instrument, Book]:
        source = self._sources[(venue, symbol)]
        return source.instruments[symbol], source.book(symbol)

    def build(self) -> Portfolio:
        """One asset book per base asset (its ledger and hedge), one market trader per
        market that could start."""
        cfg = self._config
        paper_feeds: dict[tuple[str, str], Callable[[MarketEvent], None]] = {}
        assets: dict[str, AssetBook] = {}
        hedge_md = cfg.market_data.model_copy(update={"fair_value": FairValueModel.MID})
        journal = self._journal
        for index, market in enumerate(cfg.markets):
            if market.name in self._failed_markets:
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
                    self._metrics,
                    hedge=leg,
                    clock=self._clock,
                    journal=journal,
                    fills_kept_by_venue=cfg.mode is Mode.LIVE,
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
                metrics=self._metrics,
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
                metrics=self._metrics,
                clock=self._clock,
                journal=journal,
            )
            self._metrics.inventory_limit_base.labels(market.name).set(market.inventory.limit_base)
            self._metrics.max_drawdown_quote.labels(market.name).set(market.risk.max_drawdown_quote)
            log.info("market", market=market.name, **_describe(maker_inst))
        for asset in assets.values():
            if asset.hedge is not None:
                self.hedge_venues.setdefault(asset.hedge.execution.venue, []).append(asset)
            if cfg.mode is Mode.PAPER:
                self._settle_paper_funding(asset)
        limits = cfg.portfolio
        return Portfolio(
            list(assets.values()),
            self._metrics,
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
                self._config.venues[venue_name], metrics=self._metrics, clock=self._clock
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
        venue = self._config.venues[instrument.venue]
        key = (instrument.venue, instrument.symbol)
        if self._journal is not None:
            self._journal.register_instrument(instrument)
        if self._config.mode is Mode.PAPER:
            last = self._recovery.last_trades.get(key) if self._recovery is not None else None
            paper = PaperExecution(
                instrument,
                self._config.paper,
                venue=venue.name,
                book=book,
                clock=self._clock,
                # Paper trade ids go on from the journal's: a new fill never looks booked.
                last_trade_id=int(last.trade_id) if last and last.trade_id.isdigit() else 0,
            )
            self._restore_paper_orders(paper, key)
            paper_feeds[key] = paper.on_market_event
            self.executions_by_key[key] = self._reconciled(paper)
            return self.executions_by_key[key]
        live = self.live_executions.get(venue.name)
        if live is None:
            live = self._reconciled(self._live_execution(venue))
            self.live_executions[venue.name] = live
            observe = getattr(live.inner, "observe_rate_limits", None)
            if observe is not None:
                observe(self._budget(venue.name))
        add = getattr(live.inner, "add_instrument", None)
        if add is not None:
            add(instrument)
        self.executions_by_key[key] = live
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
        reconciled = ReconciledExecution(execution, on_status=self._on_status, clock=self._clock)
        self.executions.append(reconciled)
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


def simulator_url(simulator: SimulatorHandle, venue: VenueConfig) -> str:
    """The REST base of the embedded simulator's venue for `venue`'s exchange."""
    dialect = DIALECTS.get(venue.exchange)
    for endpoint in simulator.endpoints.values():
        if endpoint.dialect == dialect:
            return endpoint.rest
    raise ConfigError([f"venues: {venue.name}: the simulator has no {venue.exchange} venue"])


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
