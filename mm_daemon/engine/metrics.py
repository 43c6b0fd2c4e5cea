"""Every Prometheus metric the daemon exports, in one registry (served at /metrics by the
daemon's HTTP server, `mm_daemon.control.server`).

Names follow Prometheus conventions: prefix `mm_`, base units, `_total` for counters, few labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from mm_daemon import __version__

__all__ = [
    "LATENCY_BUCKETS_SECONDS",
    "JournalMetrics",
    "MarketDataMetrics",
    "Metrics",
]

# From 10 us to 5 s: tick-to-quote lives in the tens of microseconds, network in milliseconds.
LATENCY_BUCKETS_SECONDS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
MARKOUT_BUCKETS_BPS = (-50.0, -20.0, -10.0, -5.0, -2.0, -1.0, 0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
SLIPPAGE_BUCKETS_BPS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0)

_MV = ("venue",)
_MK = ("market",)
_MA = ("asset",)
_MVS = ("venue", "symbol")


def _new_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


@dataclass
class Metrics:
    """The daemon's metrics. One instance per daemon; tests build their own."""

    registry: CollectorRegistry = field(default_factory=_new_registry)

    def __post_init__(self) -> None:
        r = self.registry
        self.build_info = Info("mm_build", "Build of the running daemon.", registry=r)
        self.build_info.info({"version": __version__})
        self.up = Gauge(
            "mm_daemon_running", "1 while the daemon runs its trading loop.", registry=r
        )
        self.quoting_paused = Gauge(
            "mm_quoting_paused",
            "1 while the market quotes nothing on purpose (risk, stale data, hedge venue down).",
            _MK,
            registry=r,
        )
        self.risk_state = Gauge(
            "mm_risk_state", "Risk state: 0 ACTIVE, 1 REDUCING, 2 HALTED.", _MK, registry=r
        )
        self.market_info = Gauge(
            "mm_market_info",
            "1 for each market that trades: its venue, symbol and base asset (for joins).",
            ("market", "venue", "symbol", "asset"),
            registry=r,
        )
        self.market_up = Gauge(
            "mm_market_up",
            "1 while the market trades; 0 when it failed to start (its venue or symbol).",
            _MK,
            registry=r,
        )
        # Market data
        self.book_best_bid = Gauge(
            "mm_book_best_bid", "Best bid of the local book, quote units.", _MVS, registry=r
        )
        self.book_best_ask = Gauge(
            "mm_book_best_ask", "Best ask of the local book, quote units.", _MVS, registry=r
        )
        self.fair_value = Gauge("mm_fair_value", "Fair value, quote units.", _MVS, registry=r)
        self.volatility = Gauge(
            "mm_volatility",
            "EWMA volatility of fair-value returns, fraction per sqrt(second).",
            _MVS,
            registry=r,
        )
        self.book_updates = Counter(
            "mm_book_updates", "Book snapshots and deltas applied.", _MVS, registry=r
        )
        self.book_resyncs = Counter(
            "mm_book_resyncs", "Local book resyncs (gap, crossed book).", _MVS, registry=r
        )
        self.ws_reconnects = Counter(
            "mm_ws_reconnects", "Websocket stream reconnects.", _MVS, registry=r
        )
        self.market_stale = Gauge(
            "mm_market_stale", "1 while the instrument's market data is stale.", _MVS, registry=r
        )
        self.md_latency = Histogram(
            "mm_md_latency_seconds",
            "Local receipt time minus exchange time of market data events.",
            _MVS,
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=r,
        )
        self.malformed_frames = Counter(
            "mm_malformed_frames", "Frames that could not be parsed.", _MV, registry=r
        )
        self.trades = Counter("mm_trades", "Public trades seen.", _MVS, registry=r)
        self.event_errors = Counter(
            "mm_event_errors", "Events whose handling failed (logged and skipped).", _MV, registry=r
        )
        # Quoting and orders
        self.quote_price = Gauge(
            "mm_quote_price",
            "Desired quote price, quote units.",
            ("market", "side", "level"),
            registry=r,
        )
        self.quoted_spread_bps = Gauge(
            "mm_quoted_spread_bps", "Spread between our best bid and ask quotes.", _MK, registry=r
        )
        self.orders = Counter("mm_orders", "Order actions sent.", ("market", "action"), registry=r)
        self.order_rejects = Counter(
            "mm_order_rejects", "Orders rejected.", ("venue", "reason"), registry=r
        )
        self.fills = Counter(
            "mm_fills", "Fills received.", ("venue", "symbol", "side", "liquidity"), registry=r
        )
        self.funding_payments = Counter(
            "mm_funding_payments",
            "Funding settlements booked on perpetual positions (paid or received).",
            ("venue", "symbol"),
            registry=r,
        )
        self.fill_volume_base = Counter(
            "mm_fill_volume_base",
            "Filled size in base units.",
            ("venue", "symbol", "side"),
            registry=r,
        )
        self.open_orders = Gauge(
            "mm_open_orders", "Live quote orders of the market.", ("market", "side"), registry=r
        )
        self.tick_to_quote = Histogram(
            "mm_tick_to_quote_seconds",
            "Market event receipt to order request sent.",
            _MK,
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=r,
        )
        self.order_budget_used = Gauge(
            "mm_order_budget_used",
            "Order budget used in the venue's current window (orders, or request weight).",
            ("venue", "window"),
            registry=r,
        )
        self.order_budget_limit = Gauge(
            "mm_order_budget_limit",
            "The venue's limit of the window (orders, or request weight).",
            ("venue", "window"),
            registry=r,
        )
        self.order_actions_deferred = Counter(
            "mm_order_actions_deferred",
            "Order actions the venue's order budget could not pay for when wanted, by priority "
            "(counted at every requote that wanted them until they go).",
            ("venue", "priority"),
            registry=r,
        )
        # Inventory, P&L, hedging
        self.inventory_base = Gauge(
            "mm_inventory_base", "Position in base units per instrument.", _MVS, registry=r
        )
        self.net_exposure_base = Gauge(
            "mm_net_exposure_base",
            "Net exposure of an asset across its markets and hedges, base units.",
            _MA,
            registry=r,
        )
        self.net_notional_quote = Gauge(
            "mm_net_notional_quote",
            "|Net exposure| of an asset times its fair value, quote units.",
            _MA,
            registry=r,
        )
        self.gross_notional_quote = Gauge(
            "mm_gross_notional_quote",
            "Sum of |position| x fair value over every instrument, quote units.",
            registry=r,
        )
        self.inventory_limit_base = Gauge(
            "mm_inventory_limit_base",
            "Configured limit of the market on its asset's |net exposure|, base units.",
            _MK,
            registry=r,
        )
        self.max_drawdown_quote = Gauge(
            "mm_max_drawdown_quote",
            "Configured P&L drawdown from peak that halts the market, quote units.",
            _MK,
            registry=r,
        )
        self.pnl_quote = Gauge(
            "mm_pnl_quote",
            "P&L of the whole portfolio by component, quote units.",
            ("component",),
            registry=r,
        )
        self.market_pnl_quote = Gauge(
            "mm_market_pnl_quote",
            "P&L of one market's quoting by component (its hedges are the asset's), quote units.",
            ("market", "component"),
            registry=r,
        )
        self.markout_bps = Histogram(
            "mm_markout_bps",
            "Fair value move after maker fills, signed: positive is good for us.",
            ("market", "horizon"),
            buckets=MARKOUT_BUCKETS_BPS,
            registry=r,
        )
        self.hedge_orders = Counter(
            "mm_hedge_orders", "Hedge orders sent.", ("asset", "venue"), registry=r
        )
        self.hedge_slippage_bps = Histogram(
            "mm_hedge_slippage_bps",
            "Hedge fill price against the hedge fair value at decision, bps.",
            _MA,
            buckets=SLIPPAGE_BUCKETS_BPS,
            registry=r,
        )
        self.unhedged_exposure_seconds = Counter(
            "mm_unhedged_exposure_seconds",
            "Time spent with |net exposure| above the hedge threshold.",
            _MA,
            registry=r,
        )
        # Journal and restart recovery
        self.journal_writes = Counter(
            "mm_journal_writes",
            "Records committed to the journal.",
            registry=r,
        )
        self.journal_write_seconds = Histogram(
            "mm_journal_write_seconds",
            "Time of one journal commit (a durable record, or a batch of buffered ones).",
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=r,
        )
        self.journal_failed = Gauge(
            "mm_journal_failed",
            "1 once a journal write failed (quoting is halted until a restart).",
            registry=r,
        )
        self.recovered_fills = Counter(
            "mm_recovered_fills",
            "Fills booked at a start from the venue's trade history (made while the daemon "
            "was down).",
            _MV,
            registry=r,
        )
        self.orphan_orders = Counter(
            "mm_orphan_orders",
            "Open orders found at a start: an earlier run's (cancelled or adopted) or another "
            "program's (left).",
            ("venue", "action"),
            registry=r,
        )
        # Operator control
        self.operator_paused = Gauge(
            "mm_operator_paused",
            "1 while an operator's pause holds the market's quotes (until resume).",
            _MK,
            registry=r,
        )
        self.operator_halted = Gauge(
            "mm_operator_halted",
            "1 while the market is HALTED by an operator's kill (until reset).",
            _MK,
            registry=r,
        )
        self.control_requests = Counter(
            "mm_control_requests",
            "Control API requests by action (status, pause, resume, kill, reset, reload) and "
            "result (ok, unchanged, partial, refused, unauthorized, forbidden, error).",
            ("action", "result"),
            registry=r,
        )
        self.config_reloads = Counter(
            "mm_config_reloads",
            "Config reloads (POST /reload, SIGHUP) by result: ok, unchanged, invalid, refused.",
            ("result",),
            registry=r,
        )
        for result in ("ok", "unchanged", "invalid", "refused"):
            self.config_reloads.labels(result)
        self.reconcile_position_diff_base = Gauge(
            "mm_reconcile_position_diff_base",
            "The venue's position minus the journal's at the last start, base units.",
            _MVS,
            registry=r,
        )


class MarketDataMetrics:
    """`MarketDataReporter` (what adapters report) onto the daemon's metrics."""

    __slots__ = ("_m",)

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def reconnects(self, venue: str, symbol: str) -> Counter:
        return self._m.ws_reconnects.labels(venue, symbol)

    def resyncs(self, venue: str, symbol: str) -> Counter:
        return self._m.book_resyncs.labels(venue, symbol)

    def malformed(self, venue: str) -> Counter:
        return self._m.malformed_frames.labels(venue)

    def trades(self, venue: str, symbol: str) -> Counter:
        return self._m.trades.labels(venue, symbol)

    def book_updates(self, venue: str, symbol: str) -> Counter:
        return self._m.book_updates.labels(venue, symbol)

    def latency(self, venue: str, symbol: str) -> Histogram:
        return self._m.md_latency.labels(venue, symbol)

    def stale(self, venue: str, symbol: str) -> Gauge:
        return self._m.market_stale.labels(venue, symbol)

    def best_bid(self, venue: str, symbol: str) -> Gauge:
        return self._m.book_best_bid.labels(venue, symbol)

    def best_ask(self, venue: str, symbol: str) -> Gauge:
        return self._m.book_best_ask.labels(venue, symbol)


class JournalMetrics:
    """The journal's commits into the daemon's metrics (a `JournalObserver`; called from the
    writer thread too, which prometheus_client's locks allow)."""

    __slots__ = ("_seconds", "_writes")

    def __init__(self, metrics: Metrics) -> None:
        self._writes = metrics.journal_writes
        self._seconds = metrics.journal_write_seconds

    def journal_committed(self, records: int, seconds: float) -> None:
        self._writes.inc(records)
        self._seconds.observe(seconds)
