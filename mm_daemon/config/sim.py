"""Paper execution (the fill model) and the embedded simulator's section."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from mm_daemon.config.base import NonNegativeFloat, PositiveFloat, _Model


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
        default=QueuePosition.POWER,
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
        default=0.75,
        description=(
            "power: the exponent n (1: in proportion to the sizes; below 1: nearer an even split)."
        ),
    )
    exposure_rate_multiplier: NonNegativeFloat = Field(
        default=0.196,
        description=(
            "exposure: aggressive orders reaching an exposed quote per aggressive order "
            "observed on that side of the market, for a quote just past fair value."
        ),
    )
    exposure_rate_multiplier_per_bps: NonNegativeFloat = Field(
        default=117.7,
        description="exposure: added to exposure_rate_multiplier per bps past fair value.",
    )
    exposure_size_multiplier: NonNegativeFloat = Field(
        default=1.699,
        description=(
            "exposure: size taken by each arrival at an exposed quote, as a multiple of an "
            "observed aggressive order's size (drawn from the recent ones), just past fair value."
        ),
    )
    exposure_size_multiplier_per_bps: NonNegativeFloat = Field(
        default=141.6,
        description="exposure: added to exposure_size_multiplier per bps past fair value.",
    )
    exposure_onset_window_seconds: NonNegativeFloat = Field(
        default=0.1,
        description=(
            "exposure: the market moved through a quote between the book update that shows it "
            "and the one before, at most this long before it (the depth stream's batching "
            "interval: 0.1 on Binance spot); where within it: exposure_onset_shape."
        ),
    )
    exposure_onset_shape: PositiveFloat = Field(
        default=11.68,
        description=(
            "exposure: the moment the market moved through a quote is drawn at a fraction x of "
            "the onset window with probability 1 - (1 - x)^shape of being before x (1: uniform; "
            "larger: earlier). A post-only order that arrived after that moment is refused, as "
            "the venue refuses one that would cross its book."
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
