"""The daemon's configuration: one YAML file, validated, with MMD_* environment overrides.

Every model is frozen and forbids unknown keys; every field says what it means and carries its
unit in its name. Secrets (API keys) never come from the YAML: only from the environment
(`MMD_VENUES__MAKER__API_KEY`, ...) or from a file named in the YAML (`api_secret_file`).

The models live in `venues` (a venue), `sections` (the per-market and the daemon's own
sections), `sim` (paper execution and the simulator) and `root` (`Config`, the whole file), on
the frozen base model of `base`; `loading` reads a file into a `Config`. Import from here.
"""

from __future__ import annotations

from mm_daemon.config.base import NonNegativeFloat, PositiveFloat
from mm_daemon.config.loading import (
    CONTROL_TOKEN_ENV,
    ENV_OUTSIDE_CONFIG,
    ENV_PREFIX,
    SECRET_FIELDS,
    ConfigError,
    config_summary,
    env_key,
    load_config,
    parse_config,
)
from mm_daemon.config.root import (
    Config,
    HedgeLegConfig,
    MarketConfig,
    Mode,
    PortfolioConfig,
    is_loopback,
)
from mm_daemon.config.sections import (
    MIN_CONTROL_TOKEN_LENGTH,
    ControlConfig,
    FundingConfig,
    HedgingConfig,
    InventoryConfig,
    LoggingConfig,
    LogLevel,
    MarketDataConfig,
    MetricsConfig,
    QuotingConfig,
    RiskConfig,
    RuntimeConfig,
    StateConfig,
)
from mm_daemon.config.sim import (
    FillModel,
    PaperConfig,
    QueuePosition,
    SimAssetConfig,
    SimConfig,
    SimFault,
    SimFundingConfig,
    SimLimitsConfig,
)
from mm_daemon.config.venues import Endpoint, OrderBudgetConfig, RateLimitConfig, VenueConfig
from mm_daemon.core.modes import (
    FairValueModel,
    HedgeMode,
    HedgeRatioMode,
    HedgeVenueDownReaction,
    QuoteModel,
)

__all__ = [
    "CONTROL_TOKEN_ENV",
    "ENV_OUTSIDE_CONFIG",
    "ENV_PREFIX",
    "MIN_CONTROL_TOKEN_LENGTH",
    "SECRET_FIELDS",
    "Config",
    "ConfigError",
    "ControlConfig",
    "Endpoint",
    "FairValueModel",
    "FillModel",
    "FundingConfig",
    "HedgeLegConfig",
    "HedgeMode",
    "HedgeRatioMode",
    "HedgeVenueDownReaction",
    "HedgingConfig",
    "InventoryConfig",
    "LogLevel",
    "LoggingConfig",
    "MarketConfig",
    "MarketDataConfig",
    "MetricsConfig",
    "Mode",
    "NonNegativeFloat",
    "OrderBudgetConfig",
    "PaperConfig",
    "PortfolioConfig",
    "PositiveFloat",
    "QueuePosition",
    "QuoteModel",
    "QuotingConfig",
    "RateLimitConfig",
    "RiskConfig",
    "RuntimeConfig",
    "SimAssetConfig",
    "SimConfig",
    "SimFault",
    "SimFundingConfig",
    "SimLimitsConfig",
    "StateConfig",
    "VenueConfig",
    "config_summary",
    "env_key",
    "is_loopback",
    "load_config",
    "parse_config",
]
