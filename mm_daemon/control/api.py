"""The control API's bodies: what each endpoint reads and answers.

One model per body; the OpenAPI description (`openapi.py`) is generated from them, the server
writes nothing that is not one of them, and `mm-daemon ctl` reads them back. Numbers that may
not exist yet (a fair value before the first book) are null, never NaN.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

__all__ = [
    "ACTIONS",
    "Action",
    "ActionResult",
    "AssetStatus",
    "BudgetWindow",
    "ConfigChange",
    "ErrorBody",
    "Health",
    "HedgeStatus",
    "KillRequest",
    "MarketStatus",
    "MarketsRequest",
    "OpenOrder",
    "PortfolioStatus",
    "ProblemEntry",
    "Readiness",
    "RiskStatus",
    "Status",
    "VenueStatus",
]

Action = Literal["pause", "resume", "kill", "reset", "reload"]
ACTIONS: tuple[Action, ...] = ("pause", "resume", "kill", "reset", "reload")
RiskStateName = Literal["ACTIVE", "REDUCING", "HALTED"]
DaemonState = Literal["starting", "recovering", "trading", "stopping"]
MarketDataState = Literal["fresh", "stale", "down"]
OrderEntryState = Literal["connected", "disconnected", "paper", "unknown"]
Scalar = StrictBool | StrictInt | StrictFloat | StrictStr | None


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Request(BaseModel):
    """A request body: checked strictly (no coercion: "1" is not a list of markets)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


# -- requests ----------------------------------------------------------------------------------


class MarketsRequest(_Request):
    """Which markets an action applies to (pause, resume); no body: every market."""

    markets: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None = (
        Field(default=None, description="Market names as /status lists them; omitted: all.")
    )


class KillRequest(_Request):
    """Why the operator pulls everything (journaled with the halt)."""

    reason: Annotated[str, Field(max_length=200)] | None = Field(
        default=None, description="A short note, kept in the halt reason and the journal."
    )


# -- answers -----------------------------------------------------------------------------------


class ErrorBody(_Body):
    error: str = Field(description="What went wrong, in one line.")
    problems: list[str] = Field(
        default_factory=list,
        description="One line per problem (a config that failed validation: as check-config).",
    )


class Health(_Body):
    status: Literal["ok"] = Field(description="The event loop answered.")
    uptime_seconds: float


class Readiness(_Body):
    ready: bool = Field(
        description=(
            "True when restart recovery is done, the trading loop runs, the journal writes and "
            "every market's data (quoted and hedge instruments) is fresh."
        )
    )
    reasons: list[str] = Field(description="Why it is not ready (empty when it is).")


class ConfigChange(_Body):
    market: str | None = Field(description="The market it applies to; null: the whole daemon.")
    field: str = Field(description="The config field, as check-config names it.")
    old: Scalar
    new: Scalar


class ActionResult(_Body):
    action: Action
    result: Literal["ok", "unchanged", "partial"] = Field(
        description=(
            "ok: done; unchanged: it was so already (nothing done); partial: done, but some "
            "venue still lists orders (kill: see still_open)."
        )
    )
    detail: str = Field(description="What was done, in one line.")
    markets: list[str] = Field(description="The markets it applied to.")
    still_open: list[str] = Field(
        default_factory=list, description="kill: orders the venues still listed afterwards."
    )
    changes: list[ConfigChange] = Field(
        default_factory=list, description="reload: every tunable field that changed."
    )


class OpenOrder(_Body):
    client_order_id: str
    side: Literal["buy", "sell"]
    level: int
    price: float
    size: float
    filled: float
    status: str


class BudgetWindow(_Body):
    """One window of the venue account's order budget (Binance's rate limits, counted on our
    side and corrected by the venue's usage headers)."""

    window: str = Field(description="The limit: orders_10s, orders_1d, weight_1m, ...")
    used: int = Field(description="Counted in the current window.")
    limit: int


class RiskStatus(_Body):
    state: RiskStateName
    reason: str = Field(description="Why it is not ACTIVE (empty when it is).")
    killed: bool = Field(description="HALTED by an operator's kill (until a reset).")
    peak_pnl_quote: float | None = Field(description="The P&L the drawdown is measured from.")


class MarketStatus(_Body):
    name: str
    venue: str
    symbol: str
    asset: str
    stale: bool = Field(description="Its market data is stale (quotes pulled).")
    fair_value: float | None
    best_bid: float | None
    best_ask: float | None
    quote_bid: float | None = Field(description="Our best bid resting or on its way.")
    quote_ask: float | None = Field(description="Our best ask resting or on its way.")
    open_orders: list[OpenOrder]
    position_base: float = Field(description="This instrument's position.")
    net_exposure_base: float = Field(description="The asset's net exposure (what skews quotes).")
    pnl: dict[str, float] = Field(description="This market's quoting P&L by component.")
    markouts_bps: dict[str, float | None] = Field(description="Mean markout per horizon.")
    markout_counts: dict[str, int]
    risk: RiskStatus
    paused: bool = Field(description="Quoting nothing on purpose (see pause_reason).")
    pause_reason: str
    operator_paused: bool = Field(description="Held by an operator's pause (until resume).")
    order_budget: list[BudgetWindow] = Field(
        description="The market's venue account's order budget, shared with the venue's other "
        "markets and hedges."
    )


class HedgeStatus(_Body):
    venue: str
    symbol: str
    mode: str
    stale: bool
    down: bool = Field(description="The hedge venue counts as down (quotes react).")
    down_reason: str
    held: bool = Field(description="No hedge is sent: an operator's kill holds it.")
    hedge_ratio: float
    orders: int
    fills: int
    rejects: int
    in_flight: int
    position_base: float


class AssetStatus(_Body):
    asset: str
    markets: list[str]
    net_exposure_base: float
    pnl: dict[str, float] = Field(description="The asset's P&L by component (hedges included).")
    hedge: HedgeStatus | None


class VenueStatus(_Body):
    name: str
    exchange: str
    endpoint: str
    market_data: MarketDataState = Field(
        description="fresh: every symbol read there is in sync; down: it did not start."
    )
    stale_symbols: list[str]
    order_entry: OrderEntryState
    order_entry_reason: str


class PortfolioStatus(_Body):
    pnl: dict[str, float]
    gross_notional_quote: float
    halted_reason: str = Field(description="The portfolio drawdown latch (empty: not latched).")
    max_gross_notional_quote: float | None
    max_net_notional_quote: float | None
    max_drawdown_quote: float | None


class ProblemEntry(_Body):
    timestamp: str
    level: str
    event: str
    detail: str


class Status(_Body):
    instance_id: str
    version: str
    mode: Literal["paper", "live"]
    run_id: int | None = Field(description="The journal's run id (null without a journal).")
    state: DaemonState
    started_at: str = Field(description="ISO 8601, UTC.")
    uptime_seconds: float
    readiness: Readiness
    markets: list[MarketStatus]
    failed_markets: dict[str, str] = Field(description="Markets that could not start, and why.")
    assets: list[AssetStatus]
    venues: list[VenueStatus]
    portfolio: PortfolioStatus | None
    errors: list[ProblemEntry] = Field(description="The latest warnings and errors logged.")
