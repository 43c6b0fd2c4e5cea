"""The daemon's configuration: one YAML file, validated, with MMD_* environment overrides.

Every model is frozen and forbids unknown keys; every field says what it means and carries its
unit in its name. Secrets (API keys) never come from the YAML: only from the environment
(`MMD_VENUES__MAKER__API_KEY`, ...) or from a file named in the YAML (`api_secret_file`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from mm_daemon.core.modes import (
    FairValueModel,
    HedgeMode,
    HedgeRatioMode,
    HedgeVenueDownReaction,
    QuoteModel,
)

__all__ = [
    "ENV_PREFIX",
    "Config",
    "ConfigError",
    "FairValueModel",
    "HedgeMode",
    "HedgeRatioMode",
    "HedgeVenueDownReaction",
    "QuoteModel",
    "env_key",
    "load_config",
]

ENV_PREFIX = "MMD_"
SECRET_FIELDS = ("api_key", "api_secret")
CONTROL_TOKEN_ENV = "MMD_CONTROL__TOKEN"  # noqa: S105  the variable's name, not a token
MIN_CONTROL_TOKEN_LENGTH = 16


class ConfigError(Exception):
    """A config the user must fix; `problems` holds one `path.to.field: what is wrong` each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class Mode(StrEnum):
    PAPER = "paper"
    LIVE = "live"


class Endpoint(StrEnum):
    SIM = "sim"
    TESTNET = "testnet"
    MAINNET = "mainnet"


# Published base-tier fees, used to check a spread floor before markets are loaded.
_DEFAULT_FEES_BPS: dict[str, tuple[float, float]] = {
    "binance": (10.0, 10.0),
    "binanceusdm": (2.0, 5.0),
    "bybit": (10.0, 10.0),
}


class RateLimitConfig(_Model):
    kind: Literal["orders", "weight"] = Field(
        description="orders (new orders per account) or weight (request weight per IP)."
    )
    interval_seconds: Annotated[int, Field(ge=1)] = Field(
        description="Length of the venue's fixed window, e.g. 10, 60 or 86400."
    )
    limit: Annotated[int, Field(ge=1)] = Field(description="Most units per window.")


class OrderBudgetConfig(_Model):
    rate_limits: tuple[RateLimitConfig, ...] = Field(
        default=(),
        description=(
            "The venue's limits, if they are not to be read from it (Binance publishes them in "
            "exchangeInfo and reports usage in every answer; empty: those, and Binance's "
            "published base tier until the venue is connected)."
        ),
    )
    usable_fraction: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.9,
        description=(
            "Share of each limit the daemon lets itself use; the rest absorbs the venue's "
            "delayed count updates and other programs on the account."
        ),
    )
    hedge_reserve_fraction: Annotated[float, Field(ge=0, lt=1)] = Field(
        default=0.2,
        description="Share of the usable order count only hedges (and urgent cancels) may use.",
    )
    refresh_fraction: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.5,
        description=(
            "Share of the usable order count past which replaces for size or age alone wait "
            "(they are deferred first)."
        ),
    )


class VenueConfig(_Model):
    """One venue (an exchange account at an endpoint), named by its key under `venues`."""

    name: str = Field(
        default="",
        description="Set from the key under venues (the label in logs and metrics).",
        json_schema_extra={"readOnly": True},
    )
    exchange: str = Field(
        description="ccxt exchange id: binance (spot) or binanceusdm (USD-M perpetuals), bybit.",
        min_length=1,
    )
    endpoint: str = Field(
        default="sim",
        description=(
            "Where to connect: sim (the embedded simulator), testnet, mainnet, or an http(s) URL "
            "of a standalone simulator (`mm-daemon sim`)."
        ),
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="API key: only from MMD_VENUES__<NAME>__API_KEY or api_key_file.",
    )
    api_secret: SecretStr | None = Field(
        default=None,
        description="API secret: only from MMD_VENUES__<NAME>__API_SECRET or api_secret_file.",
    )
    api_key_file: Path | None = Field(
        default=None, description="File holding the API key (container secrets)."
    )
    api_secret_file: Path | None = Field(
        default=None, description="File holding the API secret (container secrets)."
    )
    maker_fee_bps: float | None = Field(
        default=None,
        description="Maker fee in bps (negative: rebate). Unset: the venue's published base tier.",
    )
    taker_fee_bps: float | None = Field(
        default=None, description="Taker fee in bps. Unset: the venue's published base tier."
    )
    order_budget: OrderBudgetConfig = Field(
        default_factory=OrderBudgetConfig,
        description=(
            "The account's order budget on this venue, modelled on the venue's own rate limits "
            "and shared by every market and hedge on it."
        ),
    )
    order_entry: Literal["native", "ccxt"] = Field(
        default="native",
        description=(
            "Live order entry: native (signed Binance WS-API requests, binance and binanceusdm "
            "only) or ccxt (ccxt.pro's WS-API calls; always used for other exchanges)."
        ),
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint_known(cls, value: str) -> str:
        if value in {e.value for e in Endpoint} or value.startswith(("http://", "https://")):
            return value
        raise ValueError("must be sim, testnet, mainnet or an http(s):// URL")

    @property
    def is_mainnet(self) -> bool:
        return self.endpoint == Endpoint.MAINNET.value

    def fees_bps(self, sim_fees_bps: tuple[float, float]) -> tuple[float, float]:
        """(maker, taker) fee in bps: configured, else the simulator's, else published."""
        default = (
            sim_fees_bps
            if self.endpoint == Endpoint.SIM.value
            else _DEFAULT_FEES_BPS.get(self.exchange, (10.0, 10.0))
        )
        maker = default[0] if self.maker_fee_bps is None else self.maker_fee_bps
        taker = default[1] if self.taker_fee_bps is None else self.taker_fee_bps
        return maker, taker


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


class FillModel(StrEnum):
    EXPOSURE = "exposure"
    QUEUE = "queue"
    TOUCH = "touch"


class QueuePosition(StrEnum):
    FIXED = "fixed"
    POWER = "power"
    LOG = "log"


class PaperConfig(_Model):
    fill_model: FillModel = Field(
        default=FillModel.EXPOSURE,
        description=(
            "exposure (queue position and partial fills, and quotes the market has moved "
            "through are filled by the flow that picks off stale quotes), queue (queue position "
            "and partial fills from public trades only) or touch (fill on any touch)."
        ),
    )
    queue_position: QueuePosition = Field(
        default=QueuePosition.FIXED,
        description=(
            "How a size decrease at our price that no trade explains is split between the queue "
            "ahead of us and behind: fixed (size_decrease_queue_share ahead), power (share ahead "
            "ahead^n / (ahead^n + behind^n), n = queue_power_exponent) or log (share ahead "
            "log(1+ahead) / (log(1+ahead) + log(1+behind)))."
        ),
    )
    size_decrease_queue_share: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.5,
        description="fixed: share of a level's size decrease assumed to come from ahead of us.",
    )
    queue_power_exponent: PositiveFloat = Field(
        default=1.0, description="power: the exponent n (1: in proportion to the sizes)."
    )
    exposure_rate_multiplier: NonNegativeFloat = Field(
        default=17.2,
        description=(
            "exposure: aggressive orders reaching an exposed quote per aggressive order "
            "observed on that side of the market, for a quote just past fair value."
        ),
    )
    exposure_rate_multiplier_per_bps: NonNegativeFloat = Field(
        default=0.013,
        description="exposure: added to exposure_rate_multiplier per bps past fair value.",
    )
    exposure_size_multiplier: NonNegativeFloat = Field(
        default=204.0,
        description=(
            "exposure: size taken by each arrival at an exposed quote, as a multiple of an "
            "observed aggressive order's size (drawn from the recent ones), just past fair value."
        ),
    )
    exposure_size_multiplier_per_bps: NonNegativeFloat = Field(
        default=0.013,
        description="exposure: added to exposure_size_multiplier per bps past fair value.",
    )
    exposure_onset_window_seconds: NonNegativeFloat = Field(
        default=0.1,
        description=(
            "exposure: the market moved through a quote between the book update that shows it "
            "and the one before, at most this long before it (the depth stream's batching "
            "interval: 0.1 on Binance spot); the moment is drawn uniformly within that window."
        ),
    )
    flow_halflife_seconds: PositiveFloat = Field(
        default=30.0,
        description="exposure: half-life of the observed aggressive order rate (per side).",
    )
    flow_size_samples: Annotated[int, Field(ge=1)] = Field(
        default=256,
        description="exposure: how many recent aggressive order sizes (per side) to draw from.",
    )
    seed: int = Field(default=0, description="exposure: seed of its random draws (reproducible).")
    order_entry_latency_seconds: NonNegativeFloat = Field(
        default=0.005, description="Time from sending an order to it resting at the venue."
    )
    ack_latency_seconds: NonNegativeFloat = Field(
        default=0.005, description="Time from the venue accepting an order to our ack."
    )
    cancel_latency_seconds: NonNegativeFloat = Field(
        default=0.005, description="Time from sending a cancel to it taking effect."
    )
    starting_base: NonNegativeFloat = Field(
        default=1.0, description="Paper balance of the base currency at start."
    )
    starting_quote: NonNegativeFloat = Field(
        default=100_000.0, description="Paper balance of the quote currency at start."
    )


class SimFault(_Model):
    at_seconds: NonNegativeFloat = Field(description="When, after the simulator starts.")
    venue: str = Field(description="Which simulator venue, e.g. sim-spot.")
    kind: Literal["disconnect", "gap", "stall", "delay", "http_error", "reject_orders", "halt"] = (
        Field(description="The fault to inject.")
    )
    seconds: NonNegativeFloat = Field(default=0.0, description="How long it lasts.")
    count: Annotated[int, Field(ge=0)] = Field(default=1, description="How many (gap, rejects).")
    symbol: str | None = Field(
        default=None,
        pattern=r"^[A-Z][A-Z0-9]{1,11}USDT$",
        description=(
            "Only this symbol's streams or orders (the venue's id, e.g. ETHUSDT; gap, stall, "
            "halt, reject_orders); default every symbol of the venue."
        ),
    )


class SimAssetConfig(_Model):
    """One asset the simulator lists: `<BASE>/USDT` on its spot venue and `<BASE>/USDT:USDT`
    on its perpetual one."""

    base: str = Field(
        pattern=r"^[A-Z][A-Z0-9]{1,11}$",
        description="Base asset, upper case, e.g. BTC, ETH, SOL.",
    )
    start_price_quote: PositiveFloat | None = Field(
        default=None,
        description=(
            "Initial fair price in USDT (default: BTC sim.start_price_quote, ETH the recorded "
            "BTC/ETH price ratio of it, 1/23; any other asset 100)."
        ),
    )
    return_correlation: Annotated[float, Field(ge=-1.0, le=1.0)] | None = Field(
        default=None,
        description=(
            "Correlation of its 1 s mid returns with the first asset's, per venue (default "
            "0.68, measured between BTCUSDT and ETHUSDT on Binance spot); not for the first "
            "asset, which drives the others."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        """An asset may be written as its name alone: `- ETH`."""
        return {"base": data} if isinstance(data, str) else data


class SimFundingConfig(_Model):
    """Funding on the simulator's perpetual venue (Binance's rules; see docs/simulator.md)."""

    interval_seconds: Annotated[float, Field(ge=1.0)] = Field(
        default=28_800.0,
        description=(
            "Time between settlements, aligned to multiples of it since the Unix epoch (8 h: "
            "00:00, 08:00, 16:00 UTC, as Binance); shorter in tests."
        ),
    )
    interest_rate: float = Field(
        default=0.0001, description="Interest rate per 8 h (Binance: 0.01 %)."
    )
    premium_clamp: NonNegativeFloat = Field(
        default=0.0005,
        description="Clamp of (interest rate - premium index) in the rate (Binance: 0.05 %).",
    )
    rate_cap: NonNegativeFloat = Field(
        default=0.0075, description="Largest |funding rate| of one settlement (0.75 %)."
    )
    fixed_rate: Annotated[float, Field(ge=-0.0075, le=0.0075)] | None = Field(
        default=None,
        description=(
            "Settle every interval at this rate instead of the premium-index model (tests "
            "that need a known rate)."
        ),
    )


def _default_sim_assets() -> tuple[SimAssetConfig, ...]:
    return (SimAssetConfig(base="BTC"), SimAssetConfig(base="ETH"))


class SimLimitsConfig(_Model):
    """Binance's base-tier limits (its API docs; exchangeInfo publishes them)."""

    enabled: bool = Field(
        default=True,
        description=(
            "Enforce the limits: -1015 past an order count, -1003 past the request weight "
            "(HTTP 429 with Retry-After), 418 bans for clients that ignore them."
        ),
    )
    spot_orders_per_10_seconds: Annotated[int, Field(ge=1)] = Field(
        default=100, description="Spot: unfilled orders per account per 10 s window."
    )
    spot_orders_per_day: Annotated[int, Field(ge=1)] = Field(
        default=200_000, description="Spot: unfilled orders per account per UTC day."
    )
    spot_request_weight_per_minute: Annotated[int, Field(ge=1)] = Field(
        default=6_000, description="Spot: request weight per IP per minute."
    )
    perp_orders_per_10_seconds: Annotated[int, Field(ge=1)] = Field(
        default=300, description="USD-M: orders per account per 10 s window."
    )
    perp_orders_per_minute: Annotated[int, Field(ge=1)] = Field(
        default=1_200, description="USD-M: orders per account per minute."
    )
    perp_request_weight_per_minute: Annotated[int, Field(ge=1)] = Field(
        default=2_400, description="USD-M: request weight per IP per minute."
    )


class SimConfig(_Model):
    host: str = Field(default="127.0.0.1", description="Address the simulator listens on.")
    spot_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=0, description="Port of the spot venue (0: a free one)."
    )
    perp_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=0, description="Port of the perpetual venue (0: a free one)."
    )
    source: Literal["synthetic", "replay"] = Field(
        default="synthetic", description="synthetic order flow, or replay of recorded captures."
    )
    seed: int = Field(
        default=7, description="Seed of the synthetic market: same seed, same stream."
    )
    regime: Literal["calm", "volatile", "trending", "flash_crash", "mixed"] = Field(
        default="calm", description="Regime of the latent fair price."
    )
    assets: tuple[SimAssetConfig, ...] = Field(
        default_factory=_default_sim_assets,
        min_length=1,
        description=(
            "Assets listed on both simulator venues against USDT, the first driving the "
            "others' prices (the others' returns correlate with its); a name alone or "
            "{base, start_price_quote, return_correlation}. The replay serves those recorded "
            "(BTC, ETH)."
        ),
    )
    start_price_quote: PositiveFloat = Field(
        default=60_000.0, description="Initial fair price of BTC (ETH starts at 1/23 of it)."
    )
    replay_data_dir: Path | None = Field(
        default=None,
        description="Folder of recorded Binance captures (default: $MMD_DATA_DIR).",
    )
    replay_speed: NonNegativeFloat = Field(
        default=1.0, description="Replay pace: 1 recorded, 10 ten times faster, 0 as fast as read."
    )
    spot_maker_fee_bps: float = Field(default=0.0, description="Simulator spot maker fee.")
    spot_taker_fee_bps: float = Field(default=4.0, description="Simulator spot taker fee.")
    perp_maker_fee_bps: float = Field(default=0.0, description="Simulator perp maker fee.")
    perp_taker_fee_bps: float = Field(default=2.0, description="Simulator perp taker fee.")
    starting_base: NonNegativeFloat = Field(
        default=1.0,
        description=(
            "Balance of each new simulator spot account in the first asset; every other asset "
            "gets the same value at start prices."
        ),
    )
    starting_quote: NonNegativeFloat = Field(
        default=100_000.0, description="Quote balance of each new simulator account."
    )
    limits: SimLimitsConfig = Field(
        default_factory=SimLimitsConfig,
        description="Binance's rate limits, enforced by the simulator (on by default).",
    )
    server_time_offset_ms: int = Field(
        default=0,
        description=(
            "The simulator's clock minus the host's, in ms: clients must estimate it from "
            "the server time (as on a real venue) or their signed requests get -1021."
        ),
    )
    faults: tuple[SimFault, ...] = Field(default=(), description="Faults scheduled at start.")
    funding: SimFundingConfig = Field(
        default_factory=SimFundingConfig,
        description="Mark price, funding rate and funding settlements of the perpetual venue.",
    )

    @model_validator(mode="after")
    def _check_assets(self) -> Self:
        seen: set[str] = set()
        for i, asset in enumerate(self.assets):
            if asset.base in seen:
                raise ValueError(f"sim.assets.{i}.base: {asset.base} is listed twice")
            if asset.base == "USDT":
                raise ValueError(f"sim.assets.{i}.base: USDT is the quote asset of every market")
            seen.add(asset.base)
        if self.assets[0].return_correlation is not None:
            raise ValueError(
                "sim.assets.0.return_correlation: the first asset drives the others; set the "
                "correlation on the others"
            )
        for i, fault in enumerate(self.faults):
            if fault.symbol is not None and fault.kind not in (
                "gap",
                "stall",
                "halt",
                "reject_orders",
            ):
                raise ValueError(
                    f"sim.faults.{i}.symbol: {fault.kind} acts on the whole venue; leave symbol out"
                )
            if fault.symbol is not None and fault.symbol.removesuffix("USDT") not in seen:
                raise ValueError(
                    f"sim.faults.{i}.symbol: {fault.symbol} is not listed (sim.assets: "
                    f"{', '.join(a.base for a in self.assets)})"
                )
        return self

    def fees_bps(self, exchange: str) -> tuple[float, float]:
        """(maker, taker) fee in bps the simulator charges on `exchange`'s dialect."""
        if exchange == "binanceusdm":
            return self.perp_maker_fee_bps, self.perp_taker_fee_bps
        return self.spot_maker_fee_bps, self.spot_taker_fee_bps


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


class HedgeLegConfig(_Model):
    venue: str = Field(description="The venue (a key under venues) the asset is hedged on.")
    symbol: str = Field(
        description="Unified ccxt symbol of the hedge instrument, e.g. BTC/USDT:USDT.",
        min_length=1,
    )


_PER_MARKET_SECTIONS = ("quoting", "inventory", "hedging", "risk")
"""Sections a market may set for itself; the top-level ones are every market's defaults."""


class MarketConfig(_Model):
    """One quoted market: a symbol on a venue, and where its base asset is hedged."""

    name: str = Field(
        default="",
        description=(
            "Label in logs, metrics and reports (the `market` label); default SYMBOL@VENUE, "
            "e.g. BTC/USDT@sim-spot."
        ),
    )
    venue: str = Field(description="The venue quoted (a key under venues).", min_length=1)
    symbol: str = Field(
        description="Unified ccxt symbol quoted, e.g. BTC/USDT or ETH/USDT.", min_length=1
    )
    hedge: HedgeLegConfig | None = Field(
        default=None, description="Where the market's base asset is hedged (optional)."
    )
    required: bool = Field(
        default=False,
        description=(
            "Refuse to start when this market cannot (unknown symbol, venue down); otherwise "
            "the other markets start and this one is reported as failed."
        ),
    )
    quoting: QuotingConfig = Field(
        default_factory=QuotingConfig, description="Over the top-level quoting section."
    )
    inventory: InventoryConfig = Field(
        default_factory=InventoryConfig, description="Over the top-level inventory section."
    )
    hedging: HedgingConfig = Field(
        default_factory=HedgingConfig, description="Over the top-level hedging section."
    )
    risk: RiskConfig = Field(
        default_factory=RiskConfig, description="Over the top-level risk section."
    )

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name"):
            data = {**data, "name": f"{data.get('symbol', '')}@{data.get('venue', '')}"}
        return data

    @property
    def asset(self) -> str:
        """The base asset (BTC of BTC/USDT and of BTC/USDT:USDT): exposure nets per asset."""
        return self.symbol.split("/", 1)[0]


class PortfolioConfig(_Model):
    max_gross_notional_quote: PositiveFloat | None = Field(
        default=None,
        description=(
            "Sum of |position| x fair value over every instrument; past it every market quotes "
            "only the side that reduces its asset's exposure."
        ),
    )
    max_net_notional_quote: PositiveFloat | None = Field(
        default=None,
        description=(
            "|Net exposure| x fair value of one asset across its markets and hedges; past it the "
            "side that adds to it stops on every market of the asset."
        ),
    )
    max_drawdown_quote: PositiveFloat | None = Field(
        default=None,
        description="HALT every market when the total P&L falls this far below its peak.",
    )


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = _deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def _as_data(section: Any) -> Any:
    return section.model_dump(exclude_unset=True) if isinstance(section, BaseModel) else section


class Config(_Model):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_default=True,
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    mode: Mode = Field(default=Mode.PAPER, description="paper (simulated fills) or live orders.")
    allow_mainnet: bool = Field(
        default=False,
        description="Permit live orders on mainnet (MMD_CONFIRM_MAINNET=yes must also be set).",
    )
    venues: dict[str, VenueConfig] = Field(
        description="Every venue by name (the name labels logs and metrics), e.g. sim-spot.",
        min_length=1,
    )
    markets: tuple[MarketConfig, ...] = Field(
        description="The markets quoted (at least one), each on a venue, with an optional hedge."
    )
    portfolio: PortfolioConfig = Field(
        default_factory=PortfolioConfig, description="Limits over every market together."
    )
    market_data: MarketDataConfig = Field(default_factory=MarketDataConfig, description="Streams.")
    sim: SimConfig = Field(default_factory=SimConfig, description="The embedded simulator.")
    quoting: QuotingConfig = Field(
        default_factory=QuotingConfig, description="Quote engine (every market's defaults)."
    )
    inventory: InventoryConfig = Field(
        default_factory=InventoryConfig, description="Inventory (every market's defaults)."
    )
    hedging: HedgingConfig = Field(
        default_factory=HedgingConfig, description="Hedging (every market's defaults)."
    )
    risk: RiskConfig = Field(
        default_factory=RiskConfig, description="Risk limits (every market's defaults)."
    )
    paper: PaperConfig = Field(default_factory=PaperConfig, description="Paper execution.")
    funding: FundingConfig = Field(
        default_factory=FundingConfig, description="Funding on perpetual positions."
    )
    state: StateConfig = Field(
        default_factory=StateConfig, description="The journal and restart recovery."
    )
    metrics: MetricsConfig = Field(
        default_factory=MetricsConfig,
        description="The HTTP server: Prometheus metrics, probes and the control API.",
    )
    control: ControlConfig = Field(
        default_factory=ControlConfig, description="The operator's control API and its token."
    )
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Logs.")
    runtime: RuntimeConfig = Field(
        default_factory=RuntimeConfig, description="Event-loop polling and core placement."
    )

    @model_validator(mode="before")
    @classmethod
    def _markets_over_defaults(cls, data: Any) -> Any:
        """Each market's sections are the top-level ones with the market's own keys on top;
        each venue is named by its key."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        venues = data.get("venues")
        if isinstance(venues, Mapping):
            data["venues"] = {
                name: {**_as_data(venue), "name": name}
                if isinstance(_as_data(venue), Mapping)
                else venue
                for name, venue in venues.items()
            }
        markets = data.get("markets")
        if isinstance(markets, list | tuple):
            merged = []
            for market in markets:
                market_data = _as_data(market)
                if isinstance(market_data, Mapping):
                    market_data = dict(market_data)
                    for section in _PER_MARKET_SECTIONS:
                        defaults = _as_data(data.get(section)) or {}
                        own = market_data.get(section) or {}
                        if isinstance(defaults, Mapping) and isinstance(own, Mapping):
                            market_data[section] = _deep_merge(defaults, own)
                merged.append(market_data)
            data["markets"] = merged
        return data

    @field_validator("markets", mode="before")
    @classmethod
    def _some_market(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and not value:
            raise ValueError("list at least one market (a venue and a symbol)")
        return value

    @model_validator(mode="after")
    def _control_needs_a_token_off_loopback(self) -> Self:
        metrics, control = self.metrics, self.control
        if (
            metrics.enabled
            and control.enabled
            and control.token is None
            and not is_loopback(metrics.host)
        ):
            raise ValueError(
                f"control.token: the HTTP server binds {metrics.host}, beyond this machine, and "
                "the control API has no token; set MMD_CONTROL__TOKEN or control.token_file, "
                "or turn the control API off with control.enabled: false"
            )
        return self

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        names: dict[str, int] = {}
        quoted: dict[tuple[str, str], int] = {}
        hedged_as: dict[str, int] = {}
        for i, market in enumerate(self.markets):
            where = f"markets.{i}"
            if market.venue not in self.venues:
                raise ValueError(
                    f"{where}.venue: {market.venue!r} is not a venue; define it under venues "
                    f"(venues: {', '.join(sorted(self.venues))})"
                )
            if market.hedge is not None and market.hedge.venue not in self.venues:
                raise ValueError(
                    f"{where}.hedge.venue: {market.hedge.venue!r} is not a venue; define it "
                    f"under venues (venues: {', '.join(sorted(self.venues))})"
                )
            if market.name in names:
                raise ValueError(
                    f"{where}.name: {market.name!r} is also markets.{names[market.name]}'s name"
                )
            if market.name in {m.asset for m in self.markets}:
                raise ValueError(
                    f"{where}.name: {market.name!r} names an asset (the journal keeps each "
                    "asset's ledger and series under its name); choose another"
                )
            names[market.name] = i
            key = (market.venue, market.symbol)
            if key in quoted:
                raise ValueError(
                    f"{where}.symbol: {market.symbol} on {market.venue} is quoted by "
                    f"markets.{quoted[key]} already"
                )
            quoted[key] = i
            self._check_market(where, market)
            first = hedged_as.setdefault(market.asset, i)
            other = self.markets[first]
            if first != i and (market.hedge, market.hedging) != (other.hedge, other.hedging):
                raise ValueError(
                    f"{where}.hedge: markets of {market.asset} are hedged together, so they "
                    f"need the same hedge and hedging settings as markets.{first}"
                )
        return self

    def _check_market(self, where: str, market: MarketConfig) -> None:
        quoting, inventory = market.quoting, market.inventory
        total = quoting.order_size_base * sum(
            quoting.level_size_multiplier**i for i in range(quoting.levels)
        )
        if total > inventory.limit_base + 1e-12:
            raise ValueError(
                f"{where}.quoting.order_size_base: {quoting.levels} level(s) add up to {total:g} "
                f"base, above inventory.limit_base {inventory.limit_base:g}; lower the size or "
                "levels"
            )
        if quoting.min_spread_bps > quoting.max_spread_bps:
            raise ValueError(f"{where}.quoting.min_spread_bps: above quoting.max_spread_bps")
        venue = self.venues[market.venue]
        maker_fee_bps, _ = venue.fees_bps(self.sim.fees_bps(venue.exchange))
        round_trip_bps = 2 * maker_fee_bps
        if quoting.min_spread_bps < round_trip_bps and not quoting.allow_spread_below_fees:
            raise ValueError(
                f"{where}.quoting.min_spread_bps: {quoting.min_spread_bps:g} bps is below the "
                f"round-trip maker fee of {round_trip_bps:g} bps on {market.venue}; raise it or "
                "set quoting.allow_spread_below_fees: true"
            )
        if market.hedging.mode is not HedgeMode.OFF and market.hedge is None:
            raise ValueError(
                f"{where}.hedging.mode: hedging needs {where}.hedge (a venue and symbol); add "
                "it or set hedging.mode: off"
            )
        if self.market_data.fair_value is FairValueModel.CROSS_VENUE and market.hedge is None:
            raise ValueError(
                f"market_data.fair_value: cross_venue needs {where}.hedge (the reference venue)"
            )

    @property
    def instance_id(self) -> str:
        """`state.instance_id`, or one derived from the venues and symbols traded: the same
        config names the same instance (and finds its journal) at every start."""
        if self.state.instance_id is not None:
            return self.state.instance_id
        legs = []
        for market in self.markets:
            venue = self.venues[market.venue]
            legs.append(f"{venue.exchange}:{venue.endpoint}:{market.symbol}")
            if market.hedge is not None:
                hedge = self.venues[market.hedge.venue]
                legs.append(f"{hedge.exchange}:{hedge.endpoint}:{market.hedge.symbol}")
        digest = hashlib.sha256("|".join(sorted(set(legs))).encode()).hexdigest()[:8]
        return f"mmd-{digest}"

    @property
    def journal_path(self) -> Path:
        """The journal file of this instance: `state.dir/<instance_id>.journal`."""
        return self.state.dir / f"{self.instance_id}.journal"

    def venue_of(self, market: MarketConfig) -> VenueConfig:
        return self.venues[market.venue]

    def used_venues(self) -> list[VenueConfig]:
        """The venues some market quotes or hedges on, in the order markets name them."""
        seen: dict[str, VenueConfig] = {}
        for market in self.markets:
            seen.setdefault(market.venue, self.venues[market.venue])
            if market.hedge is not None:
                seen.setdefault(market.hedge.venue, self.venues[market.hedge.venue])
        return list(seen.values())


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _format_loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "config"


class _YamlLoader(yaml.SafeLoader):
    """YAML with only `true` and `false` as booleans (YAML 1.2's rule).

    PyYAML follows YAML 1.1, where `off`, `on`, `yes` and `no` are booleans too: `hedging.mode:
    off` would arrive as False and be refused as "not one of off, threshold...". Here they stay
    text; a boolean field still accepts them as pydantic reads them.
    """


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_YamlLoader)  # noqa: S506  a SafeLoader subclass


def _parse_env_value(raw: str) -> Any:
    try:
        return _yaml_load(raw)
    except yaml.YAMLError:
        return raw


ENV_OUTSIDE_CONFIG = frozenset(
    {
        "MMD_DATA_DIR",  # the recorded captures' folder
        "MMD_CONFIRM_MAINNET",  # the second key to live orders on mainnet
        "MMD_CONTROL_URL",  # mm-daemon ctl: the daemon to talk to
        "MMD_IMAGE",  # compose: the image to run
        "MMD_METRICS_HOST_PORT",  # compose: published ports
        "MMD_PROMETHEUS_HOST_PORT",
        "MMD_GRAFANA_HOST_PORT",
    }
)
"""MMD_* variables the project reads outside the config; any other MMD_* must name a field."""


def _env_overrides(environ: Mapping[str, str]) -> tuple[list[tuple[list[str], str]], list[str]]:
    """(path, raw value) of every MMD_* config override, and one problem line per MMD_*
    variable that names no config section (a misspelt section would otherwise do nothing)."""
    overrides = []
    problems = []
    for key, value in sorted(environ.items()):
        if not key.startswith(ENV_PREFIX) or key in ENV_OUTSIDE_CONFIG:
            continue
        path = [part.lower() for part in key[len(ENV_PREFIX) :].split("__") if part]
        if path and path[0] in Config.model_fields:
            overrides.append((path, value))
        else:
            sections = ", ".join(sorted(Config.model_fields))
            problems.append(
                f"{key}: names no config section (MMD_<SECTION>__<FIELD>, sections: {sections}; "
                f"other MMD_ variables read: {', '.join(sorted(ENV_OUTSIDE_CONFIG))})"
            )
    return overrides, problems


def env_key(name: str) -> str:
    """How a venue's name appears in an environment variable: sim-spot -> sim_spot."""
    return re.sub(r"[^a-z0-9]", "_", name.lower())


def _apply_override(data: dict[str, Any], path: list[str], value: Any) -> None:
    """Set `value` at `path`; a part names a venue by its environment form, a market by its
    index (MMD_MARKETS__0__QUOTING__SPREAD_BPS)."""
    node: Any = data
    for depth, raw_part in enumerate(path):
        part = raw_part
        last = depth == len(path) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError([f"{'.'.join(path)}: no such entry to override ({part})"])
            if last:
                node[int(part)] = value
                return
            child = node[int(part)]
            if not isinstance(child, dict):
                child = node[int(part)] = {}
            else:
                child = node[int(part)] = dict(child)
            node = child
            continue
        if depth == 1 and path[0] == "venues":
            part = next((name for name in node if env_key(str(name)) == part), part)
        if last:
            node[part] = value
            return
        child = node.get(part)
        if isinstance(child, list):
            node[part] = child = list(child)
        elif isinstance(child, dict):
            node[part] = child = dict(child)
        else:
            node[part] = child = {}
        node = child


_OLD_VENUE_ROLES = ("maker", "hedge")


def _refuse_old_shape(data: Mapping[str, Any]) -> list[str]:
    """A config written for one maker and one hedge venue (`venues.maker`, `venues.hedge` with
    a symbol each): one line per field saying where it moved."""
    venues = data.get("venues")
    if not isinstance(venues, Mapping):
        return []
    old = {
        role: venue
        for role, venue in venues.items()
        if role in _OLD_VENUE_ROLES and isinstance(venue, Mapping) and "symbol" in venue
    }
    if not old:
        return []
    problems = []
    for role, venue in old.items():
        name = str(venue.get("name") or role)
        market = "markets[0]" if role == "maker" else "markets[0].hedge"
        for field in venue:
            where = f"venues.{role}.{field}"
            if field == "symbol":
                problems.append(
                    f"{where}: moved to {market}.symbol, with {market}.venue: {name} "
                    "(a market is a symbol on a named venue)"
                )
            elif field == "name":
                problems.append(
                    f"{where}: a venue is now named by its key: venues.{name}: "
                    "{exchange: ..., endpoint: ...}"
                )
            elif field == "hedge_ratio":
                problems.append(f"{where}: moved to hedging.ratio (the hedge's units per unit)")
            else:
                problems.append(f"{where}: moved to venues.{name}.{field}")
    return problems


_REPLACED_VENUE_KEYS = ("rate_limit_orders_per_second", "rate_limit_burst_orders")


def _refuse_replaced_venue_keys(data: Mapping[str, Any]) -> list[str]:
    """The token-bucket keys a venue had before its order budget: one line each, saying what
    replaced them."""
    venues = data.get("venues")
    if not isinstance(venues, Mapping):
        return []
    return [
        f"venues.{name}.{key}: replaced by venues.{name}.order_budget (the venue's own rate "
        "limits, read from the venue; order_budget.rate_limits sets them by hand)"
        for name, venue in venues.items()
        if isinstance(venue, Mapping)
        for key in _REPLACED_VENUE_KEYS
        if key in venue
    ]


def _refuse_replaced_sim_keys(data: Mapping[str, Any]) -> list[str]:
    sim = data.get("sim")
    if isinstance(sim, Mapping) and "max_orders_per_10_seconds" in sim:
        return [
            "sim.max_orders_per_10_seconds: replaced by sim.limits (Binance's limits, enforced "
            "by default; sim.limits.spot_orders_per_10_seconds sets this one)"
        ]
    return []


def _refuse_yaml_secrets(data: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    control = data.get("control")
    if isinstance(control, Mapping) and "token" in control:
        problems.append(
            "control.token: secrets are not accepted in the YAML file; set the environment "
            f"variable {CONTROL_TOKEN_ENV} or name a file in control.token_file"
        )
    venues = data.get("venues")
    if isinstance(venues, Mapping):
        for name, venue in venues.items():
            if not isinstance(venue, Mapping):
                continue
            for field in SECRET_FIELDS:
                if field in venue:
                    env = f"{ENV_PREFIX}VENUES__{env_key(str(name)).upper()}__{field.upper()}"
                    problems.append(
                        f"venues.{name}.{field}: secrets are not accepted in the YAML file; "
                        f"set the environment variable {env} or name a file in "
                        f"venues.{name}.{field}_file"
                    )
    return problems


def _read_secret_files(data: dict[str, Any], base_dir: Path) -> list[str]:
    problems: list[str] = []
    control = data.get("control")
    if isinstance(control, dict) and control.get("token_file") and "token" not in control:
        path = Path(str(control["token_file"]))
        if not path.is_absolute():
            path = base_dir / path
        try:
            control["token"] = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            problems.append(f"control.token_file: cannot read {path}: {exc.strerror}")
    venues = data.get("venues")
    if not isinstance(venues, dict):
        return problems
    for role, venue in venues.items():
        if not isinstance(venue, dict):
            continue
        for field in SECRET_FIELDS:
            file_value = venue.get(f"{field}_file")
            if not file_value or field in venue:  # the environment wins over a file
                continue
            path = Path(str(file_value))
            if not path.is_absolute():
                path = base_dir / path
            try:
                venue[field] = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                problems.append(f"venues.{role}.{field}_file: cannot read {path}: {exc.strerror}")
    return problems


def parse_config(
    data: Any, environ: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Config:
    """Validate already-parsed YAML data, applying environment overrides and secret files."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(["config: the file must hold a mapping of sections"])
    problems = (
        _refuse_old_shape(data)
        or _refuse_replaced_venue_keys(data)
        or _refuse_replaced_sim_keys(data)
        or _refuse_yaml_secrets(data)
    )
    if problems:
        raise ConfigError(problems)
    data = dict(data)
    data.pop("$schema", None)
    overrides, problems = _env_overrides(os.environ if environ is None else environ)
    if problems:
        raise ConfigError(problems)
    for path, raw in overrides:
        is_secret = path[-1] in SECRET_FIELDS or path == ["control", "token"]
        _apply_override(data, path, raw if is_secret else _parse_env_value(raw))
    problems = _read_secret_files(data, base_dir or Path.cwd())
    if problems:
        raise ConfigError(problems)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        set_by = {
            ".".join(path): ENV_PREFIX + "__".join(part.upper() for part in path)
            for path, _ in overrides
        }
        raise ConfigError(_validation_problems(exc, set_by)) from None


def _validation_problems(
    exc: ValidationError, set_by: Mapping[str, str] | None = None
) -> list[str]:
    """One line per problem; an unknown key an `MMD_*` variable put there (`set_by`: the
    dotted path each variable sets) names the variable."""
    problems: list[str] = []
    for error in exc.errors(include_url=False, include_input=False):
        message = error["msg"]
        where = _format_loc(error["loc"])
        variable = (set_by or {}).get(where)
        if error["type"] == "extra_forbidden" and variable is not None:
            problems.append(
                f"{variable}: sets {where}, an unknown key (MMD_<SECTION>__<FIELD>; check the "
                "spelling against config/schema.json)"
            )
            continue
        if error["type"] == "value_error":
            message = message.removeprefix("Value error, ")
            # Cross-field errors name their own field first.
            if ": " in message and "." in message.split(": ", 1)[0]:
                problems.append(message)
                continue
        elif error["type"] == "extra_forbidden":
            message = "unknown key (check its spelling against config/schema.json)"
        problems.append(f"{_format_loc(error['loc'])}: {message}")
    # A bad key in a top-level default section is in every market that inherits it: say it
    # once, where the user wrote it.
    top = set(problems)
    top_paths = {e["loc"] for e in exc.errors() if e["loc"] and e["loc"][0] != "markets"}
    return [
        p
        for p in dict.fromkeys(problems)
        if not (
            re.match(r"markets\.\d+\.", p)
            and (p.split(".", 2)[2] in top or _market_loc(p) in top_paths)
        )
    ]


def _market_loc(problem: str) -> tuple[str, ...]:
    """The section path a `markets.<i>.` problem has below the market."""
    return tuple(problem.split(": ", 1)[0].split(".")[2:])


def load_config(path: Path | str, environ: Mapping[str, str] | None = None) -> Config:
    """Read, parse and validate a YAML config file; raise ConfigError with every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the config file: {exc.strerror}"]) from None
    try:
        data = _yaml_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}: invalid YAML: {problem}"]) from None
    return parse_config(data, environ, base_dir=path.parent)


def config_summary(config: Config) -> str:
    """One line describing what the config will do (safe to print: no secrets)."""
    parts = []
    for market in config.markets:
        venue = config.venues[market.venue]
        text = f"{market.symbol} on {venue.name} ({venue.endpoint}) with {market.quoting.model}"
        if market.hedge is not None:
            text += f", hedged {market.hedging.mode} on {market.hedge.venue}"
        parts.append(text)
    plural = "s" if len(parts) > 1 else ""
    return f"ok: {config.mode.value} mode, {len(parts)} market{plural}: " + "; ".join(parts)
