"""The daemon's configuration: one YAML file, validated, with MMD_* environment overrides.

Every model is frozen and forbids unknown keys; every field says what it means and carries its
unit in its name. Secrets (API keys) never come from the YAML: only from the environment
(`MMD_VENUES__MAKER__API_KEY`, ...) or from a file named in the YAML (`api_secret_file`).
"""

from __future__ import annotations

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

__all__ = [
    "ENV_PREFIX",
    "Config",
    "ConfigError",
    "load_config",
]

ENV_PREFIX = "MMD_"
SECRET_FIELDS = ("api_key", "api_secret")


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


class VenueConfig(_Model):
    name: str = Field(
        description="Venue label used in logs and metric labels, e.g. sim-spot or binance-spot.",
        min_length=1,
    )
    exchange: str = Field(
        description="ccxt exchange id: binance (spot) or binanceusdm (USD-M perpetuals), bybit.",
        min_length=1,
    )
    symbol: str = Field(
        description="Unified ccxt symbol, e.g. BTC/USDT (spot) or BTC/USDT:USDT (perpetual).",
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
        description="API key: only from MMD_VENUES__<ROLE>__API_KEY or api_key_file.",
    )
    api_secret: SecretStr | None = Field(
        default=None,
        description=("API secret: only from MMD_VENUES__<ROLE>__API_SECRET or api_secret_file."),
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
    hedge_ratio: float = Field(
        default=1.0,
        description="Base units of exposure per base unit held on this venue (netting weight).",
    )
    rate_limit_orders_per_second: PositiveFloat = Field(
        default=10.0, description="Token-bucket refill rate for order actions on this venue."
    )
    rate_limit_burst_orders: Annotated[int, Field(ge=1)] = Field(
        default=20, description="Token-bucket capacity for order actions on this venue."
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


class VenuesConfig(_Model):
    maker: VenueConfig = Field(description="The venue quoted with two-sided maker orders.")
    hedge: VenueConfig | None = Field(
        default=None, description="The correlated venue that hedges net exposure (optional)."
    )

    def by_role(self) -> list[tuple[str, VenueConfig]]:
        """(role, venue): the maker, then the hedge venue when there is one."""
        roles = [("maker", self.maker)]
        if self.hedge is not None:
            roles.append(("hedge", self.hedge))
        return roles


class FairValueModel(StrEnum):
    MID = "mid"
    MICROPRICE = "microprice"
    CROSS_VENUE = "cross_venue"


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


class QuoteModel(StrEnum):
    FIXED = "fixed"
    LINEAR_SKEW = "linear_skew"
    AVELLANEDA_STOIKOV = "avellaneda_stoikov"
    GLFT = "glft"


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
    target_base: float = Field(default=0.0, description="Net exposure the quoter leans toward.")
    limit_base: PositiveFloat = Field(
        default=0.1,
        description=(
            "Past this |net exposure| only the side that reduces it is quoted; below it, the "
            "side that adds is sized to the room left under the limit."
        ),
    )


class HedgeMode(StrEnum):
    OFF = "off"
    THRESHOLD = "threshold"
    PARTIAL = "partial"
    GRADUAL = "gradual"


class HedgeRatioMode(StrEnum):
    FIXED = "fixed"
    BETA = "beta"


class HedgeVenueDownReaction(StrEnum):
    WIDEN = "widen"
    REDUCE_ONLY = "reduce_only"
    STOP = "stop"


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
    start_price_quote: PositiveFloat = Field(default=60_000.0, description="Initial fair price.")
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
        default=1.0, description="Base balance of each new simulator account."
    )
    starting_quote: NonNegativeFloat = Field(
        default=100_000.0, description="Quote balance of each new simulator account."
    )
    max_orders_per_10_seconds: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description=(
            "New orders per API key per rolling 10 s before the simulator answers Binance's "
            "-1015 with 429 + Retry-After (Binance spot: 100; 0: no limit)."
        ),
    )
    faults: tuple[SimFault, ...] = Field(default=(), description="Faults scheduled at start.")

    def fees_bps(self, exchange: str) -> tuple[float, float]:
        """(maker, taker) fee in bps the simulator charges on `exchange`'s dialect."""
        if exchange == "binanceusdm":
            return self.perp_maker_fee_bps, self.perp_taker_fee_bps
        return self.spot_maker_fee_bps, self.spot_taker_fee_bps


class MetricsConfig(_Model):
    enabled: bool = Field(default=True, description="Serve Prometheus metrics.")
    host: str = Field(default="127.0.0.1", description="Address of the /metrics server.")
    port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=9464, description="Port of the /metrics server (0: a free one)."
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
    venues: VenuesConfig = Field(description="The quoted venue and the hedge venue.")
    market_data: MarketDataConfig = Field(default_factory=MarketDataConfig, description="Streams.")
    sim: SimConfig = Field(default_factory=SimConfig, description="The embedded simulator.")
    quoting: QuotingConfig = Field(default_factory=QuotingConfig, description="Quote engine.")
    inventory: InventoryConfig = Field(default_factory=InventoryConfig, description="Inventory.")
    hedging: HedgingConfig = Field(default_factory=HedgingConfig, description="Hedging.")
    risk: RiskConfig = Field(default_factory=RiskConfig, description="Risk limits.")
    paper: PaperConfig = Field(default_factory=PaperConfig, description="Paper execution.")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Prometheus.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Logs.")
    runtime: RuntimeConfig = Field(
        default_factory=RuntimeConfig, description="Event-loop polling and core placement."
    )

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        quoting, inventory = self.quoting, self.inventory
        total = quoting.order_size_base * sum(
            quoting.level_size_multiplier**i for i in range(quoting.levels)
        )
        if total > inventory.limit_base + 1e-12:
            raise ValueError(
                f"quoting.order_size_base: {quoting.levels} level(s) add up to {total:g} base, "
                f"above inventory.limit_base {inventory.limit_base:g}; lower the size or levels"
            )
        if quoting.min_spread_bps > quoting.max_spread_bps:
            raise ValueError("quoting.min_spread_bps: above quoting.max_spread_bps")
        sim_fees = (self.sim.spot_maker_fee_bps, self.sim.spot_taker_fee_bps)
        maker_fee_bps, _ = self.venues.maker.fees_bps(sim_fees)
        round_trip_bps = 2 * maker_fee_bps
        if quoting.min_spread_bps < round_trip_bps and not quoting.allow_spread_below_fees:
            raise ValueError(
                f"quoting.min_spread_bps: {quoting.min_spread_bps:g} bps is below the round-trip "
                f"maker fee of {round_trip_bps:g} bps; raise it or set "
                "quoting.allow_spread_below_fees: true"
            )
        if self.hedging.mode is not HedgeMode.OFF and self.venues.hedge is None:
            raise ValueError("hedging.mode: hedging needs venues.hedge; add it or set mode: off")
        return self


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


def _env_overrides(environ: Mapping[str, str]) -> list[tuple[list[str], str]]:
    overrides = []
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in key[len(ENV_PREFIX) :].split("__") if part]
        if path and path[0] in Config.model_fields:
            overrides.append((path, value))
    return overrides


def _apply_override(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def _refuse_yaml_secrets(data: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    venues = data.get("venues")
    if isinstance(venues, Mapping):
        for role, venue in venues.items():
            if not isinstance(venue, Mapping):
                continue
            for field in SECRET_FIELDS:
                if field in venue:
                    env = f"{ENV_PREFIX}VENUES__{str(role).upper()}__{field.upper()}"
                    problems.append(
                        f"venues.{role}.{field}: secrets are not accepted in the YAML file; "
                        f"set the environment variable {env} or name a file in "
                        f"venues.{role}.{field}_file"
                    )
    return problems


def _read_secret_files(data: dict[str, Any], base_dir: Path) -> list[str]:
    problems: list[str] = []
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
    problems = _refuse_yaml_secrets(data)
    if problems:
        raise ConfigError(problems)
    data = dict(data)
    data.pop("$schema", None)
    for path, raw in _env_overrides(os.environ if environ is None else environ):
        is_secret = path[-1] in SECRET_FIELDS
        _apply_override(data, path, raw if is_secret else _parse_env_value(raw))
    problems = _read_secret_files(data, base_dir or Path.cwd())
    if problems:
        raise ConfigError(problems)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_validation_problems(exc)) from None


def _validation_problems(exc: ValidationError) -> list[str]:
    problems: list[str] = []
    for error in exc.errors(include_url=False, include_input=False):
        message = error["msg"]
        if error["type"] == "value_error":
            message = message.removeprefix("Value error, ")
            # Cross-field errors name their own field first.
            if ": " in message and "." in message.split(": ", 1)[0]:
                problems.append(message)
                continue
        elif error["type"] == "extra_forbidden":
            message = "unknown key (check its spelling against config/schema.json)"
        problems.append(f"{_format_loc(error['loc'])}: {message}")
    return problems


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
    maker = config.venues.maker
    hedge = config.venues.hedge
    hedge_text = f", hedge {hedge.symbol} on {hedge.name}" if hedge else ""
    return (
        f"ok: {config.mode.value} mode, quoting {maker.symbol} on {maker.name} ({maker.endpoint}) "
        f"with {config.quoting.model.value}{hedge_text}, hedging {config.hedging.mode.value}"
    )
