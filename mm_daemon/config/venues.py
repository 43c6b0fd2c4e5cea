"""A venue's section: the exchange, its endpoint, credentials, fees and order budget."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator

from mm_daemon.config.base import _Model


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
