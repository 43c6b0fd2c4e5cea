"""The choices the core's models are built around; the config validates its fields against
these same enums (`mm_daemon.config` imports them from here)."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "FairValueModel",
    "HedgeMode",
    "HedgeRatioMode",
    "HedgeVenueDownReaction",
    "QuoteModel",
]


class FairValueModel(StrEnum):
    MID = "mid"
    MICROPRICE = "microprice"
    CROSS_VENUE = "cross_venue"


class QuoteModel(StrEnum):
    FIXED = "fixed"
    LINEAR_SKEW = "linear_skew"
    AVELLANEDA_STOIKOV = "avellaneda_stoikov"
    GLFT = "glft"


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
