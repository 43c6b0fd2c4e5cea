"""The whole config file, `Config`: every section, the markets over the top-level defaults,
and the checks across sections."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mm_daemon.config.base import PositiveFloat, _Model
from mm_daemon.config.sections import (
    ControlConfig,
    FundingConfig,
    HedgingConfig,
    InventoryConfig,
    LoggingConfig,
    MarketDataConfig,
    MetricsConfig,
    QuotingConfig,
    RiskConfig,
    RuntimeConfig,
    StateConfig,
)
from mm_daemon.config.sim import PaperConfig, SimConfig
from mm_daemon.config.venues import VenueConfig
from mm_daemon.core.modes import FairValueModel, HedgeMode


class Mode(StrEnum):
    PAPER = "paper"
    LIVE = "live"


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
