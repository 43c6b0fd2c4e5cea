"""The sections every market shares or sets for itself (market data, quoting, inventory,
hedging, risk) and the daemon's own (funding, HTTP server, control API, journal, logs,
runtime)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator

from mm_daemon.config.base import NonNegativeFloat, PositiveFloat, _Model
from mm_daemon.core.modes import (
    FairValueModel,
    HedgeMode,
    HedgeRatioMode,
    HedgeVenueDownReaction,
    QuoteModel,
)

MIN_CONTROL_TOKEN_LENGTH = 16


class MarketDataConfig(_Model):
    stale_after_seconds: PositiveFloat = Field(
        default=5.0, description="A stream silent this long marks its market stale (quotes pulled)."
    )
    reconnect_initial_backoff_seconds: PositiveFloat = Field(
        default=0.1, description="First retry delay of a failed stream (doubles, with jitter)."
    )
    reconnect_max_backoff_seconds: PositiveFloat = Field(
        default=5.0, description="Cap on a failed stream's retry delay."
    )
    book_depth_levels: Annotated[int, Field(ge=1, le=5000)] = Field(
        default=1000, description="Levels per side kept in the local book."
    )
    startup_timeout_seconds: PositiveFloat = Field(
        default=30.0,
        description=(
            "How long the start waits for every venue to connect; the markets of a venue that "
            "has not by then are reported failed and the others start."
        ),
    )
    fair_value: FairValueModel = Field(
        default=FairValueModel.MICROPRICE,
        description="mid, microprice (size-weighted touch), cross_venue (hedge mid + EWMA basis).",
    )
    basis_halflife_seconds: PositiveFloat = Field(
        default=60.0, description="Half-life of the EWMA of the cross-venue basis."
    )
    volatility_halflife_seconds: PositiveFloat = Field(
        default=30.0, description="Half-life of the EWMA volatility estimator."
    )
    intensity_window_seconds: PositiveFloat = Field(
        default=300.0, description="Rolling window over which trade intensity A and k are fitted."
    )
    imbalance_halflife_seconds: PositiveFloat = Field(
        default=5.0, description="Half-life of the signed trade-flow imbalance."
    )


class QuotingConfig(_Model):
    model: QuoteModel = Field(default=QuoteModel.LINEAR_SKEW, description="The quote model.")
    order_size_base: PositiveFloat = Field(
        default=0.01, description="Size of each quote level, in base units."
    )
    levels: Annotated[int, Field(ge=1, le=20)] = Field(
        default=1, description="Quote levels per side."
    )
    level_spacing_bps: NonNegativeFloat = Field(
        default=2.0, description="Distance between successive levels on one side."
    )
    level_size_multiplier: PositiveFloat = Field(
        default=1.0, description="Each further level's size is the previous one's times this."
    )
    spread_bps: NonNegativeFloat = Field(
        default=4.0, description="Total spread of the fixed and linear_skew models."
    )
    min_spread_bps: NonNegativeFloat = Field(
        default=2.0, description="Floor on the quoted spread (all models)."
    )
    max_spread_bps: PositiveFloat = Field(
        default=100.0, description="Cap on the quoted spread (all models)."
    )
    allow_spread_below_fees: bool = Field(
        default=False,
        description="Accept a min_spread_bps below the round-trip maker fee (a losing floor).",
    )
    skew_bps_per_base: NonNegativeFloat = Field(
        default=10.0,
        description="linear_skew: reservation price shift per base unit of net exposure.",
    )
    size_skew: bool = Field(
        default=False, description="linear_skew: shrink the side that grows inventory."
    )
    gamma: PositiveFloat = Field(
        default=0.05,
        description=(
            "Risk aversion of avellaneda_stoikov and glft, per quote unit per base unit "
            "(e.g. per USDT per BTC); the models run in ticks and lots and convert it."
        ),
    )
    horizon_seconds: PositiveFloat = Field(
        default=60.0, description="avellaneda_stoikov: rolling horizon tau."
    )
    xi: NonNegativeFloat = Field(
        default=0.0,
        description="glft: xi, in gamma's units; 0 uses gamma (the paper's usual choice).",
    )
    volatility_widening: NonNegativeFloat = Field(
        default=0.0, description="Extra spread in bps per bps/sqrt(s) of volatility."
    )
    pull_volatility_bps: PositiveFloat | None = Field(
        default=None, description="Pull all quotes while volatility (bps/sqrt(s)) is above this."
    )
    alpha_skew_bps: NonNegativeFloat = Field(
        default=0.0, description="Shift of fair value per unit of order-flow imbalance (-1..1)."
    )
    price_tolerance_ticks: Annotated[int, Field(ge=0)] = Field(
        default=1, description="Leave a live order alone while its price is within this."
    )
    price_tolerance_bps: NonNegativeFloat = Field(
        default=0.5, description="Leave a live order alone while its price is within this."
    )
    size_tolerance_fraction: NonNegativeFloat = Field(
        default=0.2, description="Leave a live order alone while its size is within this share."
    )
    max_order_age_seconds: PositiveFloat = Field(
        default=60.0, description="Replace an order older than this even if unchanged."
    )
    debounce_seconds: NonNegativeFloat = Field(
        default=0.0, description="Minimum time between two requotes triggered by events."
    )
    order_timeout_seconds: PositiveFloat = Field(
        default=5.0, description="An order still in flight after this is reconciled."
    )


class InventoryConfig(_Model):
    target_base: float = Field(
        default=0.0,
        description=(
            "Net exposure the quoter leans toward: every skewing model skews its prices on the "
            "distance from it (linear_skew its sizes too)."
        ),
    )
    limit_base: PositiveFloat = Field(
        default=0.1,
        description=(
            "Past this |net exposure| only the side that reduces it is quoted; below it, the "
            "side that adds is sized to the room left under the limit."
        ),
    )


class HedgingConfig(_Model):
    mode: HedgeMode = Field(
        default=HedgeMode.THRESHOLD, description="off, threshold, partial, gradual."
    )
    threshold_base: PositiveFloat = Field(
        default=0.02, description="Hedge when |net exposure| exceeds this."
    )
    target_base: float = Field(default=0.0, description="Net exposure a hedge brings us to.")
    fraction: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.5, description="partial: share of the excess hedged at once."
    )
    slice_base: PositiveFloat = Field(default=0.01, description="gradual: size of each slice.")
    slice_interval_seconds: PositiveFloat = Field(
        default=1.0, description="gradual: time between slices."
    )
    max_slippage_bps: NonNegativeFloat = Field(
        default=5.0, description="IOC hedge limit price at most this far through the touch."
    )
    ratio_mode: HedgeRatioMode = Field(
        default=HedgeRatioMode.FIXED, description="fixed (ratio) or beta (rolling beta of returns)."
    )
    ratio: PositiveFloat = Field(default=1.0, description="fixed: hedge units per unit exposure.")
    beta_window_seconds: PositiveFloat = Field(
        default=300.0, description="beta: window of the rolling regression."
    )
    on_hedge_venue_down: HedgeVenueDownReaction = Field(
        default=HedgeVenueDownReaction.REDUCE_ONLY,
        description="When the hedge venue is stale, down or rejecting: widen, reduce_only, stop.",
    )
    down_widen_bps: NonNegativeFloat = Field(
        default=10.0, description="widen: extra spread while the hedge venue is down."
    )
    hedge_timeout_seconds: PositiveFloat = Field(
        default=5.0, description="A hedge order unanswered this long counts as failed."
    )


class RiskConfig(_Model):
    max_open_orders_per_side: Annotated[int, Field(ge=1)] = Field(
        default=5, description="Never more live orders than this per side."
    )
    max_drawdown_quote: PositiveFloat = Field(
        default=1000.0, description="HALT when P&L falls this far below its peak."
    )
    halt_on_drawdown: bool = Field(
        default=True, description="Cancel everything and stop quoting past max_drawdown_quote."
    )
    price_band_bps: PositiveFloat = Field(
        default=200.0, description="Refuse an order priced further than this from fair value."
    )
    max_order_notional_quote: PositiveFloat | None = Field(
        default=None,
        description="Refuse an order (quote or hedge) worth more than this, quote units.",
    )
    max_position_notional_quote: PositiveFloat | None = Field(
        default=None,
        description=(
            "Refuse an order that would carry the position of its instrument (the market's, or "
            "the hedge's) past this |position| x fair value, quote units; orders that reduce it "
            "pass."
        ),
    )


class FundingConfig(_Model):
    """Funding on perpetual positions (the `funding` P&L component)."""

    income_poll_seconds: PositiveFloat = Field(
        default=60.0,
        description=(
            "Live: how often the venue's funding income (/fapi/v1/income) is read; a "
            "FUNDING_FEE account event on the user-data stream reads it at once."
        ),
    )


class MetricsConfig(_Model):
    """The daemon's one HTTP server: /metrics, the probes /health and /ready, and the control
    API (see the `control` section)."""

    enabled: bool = Field(
        default=True,
        description="Serve HTTP: /metrics, /health, /ready and the control API.",
    )
    host: str = Field(
        default="127.0.0.1",
        description=(
            "Address of the HTTP server (/metrics, probes, control API); a non-loopback "
            "address needs control.token (or control.enabled: false)."
        ),
    )
    port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=9464, description="Port of the HTTP server (0: a free one)."
    )


class ControlConfig(_Model):
    """The operator's control API on the daemon's HTTP server: /status, /pause, /resume,
    /kill, /reset and /reload, each behind `Authorization: Bearer <token>`."""

    enabled: bool = Field(
        default=True,
        description=(
            "Serve the control API (off: /status and the actions answer 403; /metrics, /health "
            "and /ready stay)."
        ),
    )
    token: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer token of the control API: only from MMD_CONTROL__TOKEN or token_file. "
            "Without one, the control endpoints answer 403."
        ),
    )
    token_file: Path | None = Field(
        default=None, description="File holding the control token (container secrets)."
    )

    @field_validator("token")
    @classmethod
    def _token_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_CONTROL_TOKEN_LENGTH:
            raise ValueError(
                f"the control token needs at least {MIN_CONTROL_TOKEN_LENGTH} characters "
                "(e.g. the output of `openssl rand -hex 32`)"
            )
        return value


class StateConfig(_Model):
    """Where the journal lives and what a start does with what an earlier run left."""

    enabled: bool = Field(
        default=True,
        description=(
            "Keep a journal and recover from it at start (off: every start begins from "
            "nothing, and orders of earlier runs are not recognised)."
        ),
    )
    dir: Path = Field(
        default=Path("state"),
        description="Folder of the journal (one SQLite file per instance); created if absent.",
    )
    instance_id: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9-]{0,47}$",
        description=(
            "A stable name for this daemon (lowercase letters, digits, '-'): it names the "
            "journal file and roots every client order id, so a restart recognises the orders "
            "of each earlier run of itself. Default: derived from the venues and symbols."
        ),
    )
    on_start: Literal["cancel", "adopt"] = Field(
        default="cancel",
        description=(
            "Open orders of an earlier run found at start: cancel them, or adopt and manage "
            "them as this run's (hedge orders are always cancelled)."
        ),
    )
    position_mismatch: Literal["halt", "adopt_venue"] = Field(
        default="halt",
        description=(
            "When the venue's position differs from the journal's by more than a lot: halt "
            "the markets of that asset, or take the venue's position as the truth."
        ),
    )
    retention_days: PositiveFloat = Field(
        default=7.0,
        description="Age past which 1 s snapshots and finished orders' history are pruned.",
    )
    fsync_each_commit: bool = Field(
        default=False,
        description=(
            "Wait for the disk at every durable record (fill, halt, hedge decision) instead of "
            "within the next 0.25 s: survives a power cut, not only a kill, at ~0.6 ms a fill."
        ),
    )
    max_bytes: Annotated[int, Field(ge=1 << 16)] | None = Field(
        default=None,
        description="Cap on the journal file's size: past it writes fail as on a full disk.",
    )


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LoggingConfig(_Model):
    level: LogLevel = Field(default=LogLevel.INFO, description="Lowest level written.")
    format: Literal["auto", "console", "json"] = Field(
        default="auto", description="auto: console on a terminal, JSON lines otherwise."
    )
    status_line_seconds: NonNegativeFloat = Field(
        default=5.0,
        description=(
            "On a terminal, print a one-line status of every market this often (0: never). "
            "Logs off a terminal are unaffected."
        ),
    )
    console_fill_lines: bool = Field(
        default=False,
        description=(
            "On a terminal, log every fill and hedge at info (off: at debug, the status line "
            "shows them). JSON logs off a terminal always keep every event."
        ),
    )


class RuntimeConfig(_Model):
    busy_poll: bool = Field(
        default=False,
        description=(
            "Keep the event loop polling instead of sleeping in the kernel between events: a "
            "frame is picked up within microseconds and handled on warm caches. Uses a whole "
            "core all the time; meant for a core of its own (see cpu_affinity)."
        ),
    )
    cpu_affinity: tuple[Annotated[int, Field(ge=0)], ...] = Field(
        default=(),
        description="Cores the daemon may run on (empty: any); one core pairs with busy_poll.",
    )
