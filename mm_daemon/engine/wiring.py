"""From the validated config to the core's plain parameters: the one place that reads config
sections on behalf of the pure core (which imports no pydantic)."""

from __future__ import annotations

import math

from mm_daemon.config import (
    HedgeRatioMode,
    HedgingConfig,
    InventoryConfig,
    MarketDataConfig,
    QuotingConfig,
    RiskConfig,
)
from mm_daemon.core.book import Book, SequenceRule
from mm_daemon.core.hedging import HedgeParams
from mm_daemon.core.market_state import MarketState
from mm_daemon.core.quoting import QuoteParams
from mm_daemon.core.risk import RiskLimits
from mm_daemon.core.types import Instrument

__all__ = ["hedge_params", "hedge_risk_limits", "market_state", "quote_params", "risk_limits"]

_NS = 1_000_000_000


def quote_params(
    quoting: QuotingConfig, inventory: InventoryConfig, instrument: Instrument
) -> QuoteParams:
    """The quoter's parameters; the models run in ticks and lots, so gamma and xi (per quote
    unit per base unit in the config) are converted per tick per lot here."""
    lot_base = instrument.lot_size * instrument.contract_size_base
    per_tick_lot = instrument.tick_size * lot_base
    return QuoteParams(
        model=str(quoting.model.value),
        order_size_base=quoting.order_size_base,
        lot_base=lot_base,
        min_size_lots=instrument.min_size_lots,
        min_notional_quote=instrument.min_notional_quote,
        tick_size=instrument.tick_size,
        levels=quoting.levels,
        level_spacing_bps=quoting.level_spacing_bps,
        level_size_multiplier=quoting.level_size_multiplier,
        spread_bps=quoting.spread_bps,
        min_spread_bps=quoting.min_spread_bps,
        max_spread_bps=quoting.max_spread_bps,
        round_trip_fee_bps=2.0 * instrument.maker_fee_rate * 1e4,
        allow_spread_below_fees=quoting.allow_spread_below_fees,
        skew_bps_per_base=quoting.skew_bps_per_base,
        size_skew=quoting.size_skew,
        gamma=quoting.gamma * per_tick_lot,
        horizon_seconds=quoting.horizon_seconds,
        xi=quoting.xi * per_tick_lot,
        volatility_widening=quoting.volatility_widening,
        pull_volatility_bps=quoting.pull_volatility_bps,
        alpha_skew_bps=quoting.alpha_skew_bps,
        inventory_target_base=inventory.target_base,
        inventory_limit_base=inventory.limit_base,
    )


def risk_limits(
    risk: RiskConfig,
    inventory: InventoryConfig,
    quoting: QuotingConfig,
    instrument: Instrument,
) -> RiskLimits:
    """Limits from the config; the largest order the quoter can ask for sets the size cap.

    The largest quote is the last level's size, doubled by size skew at most.
    """
    largest_base = quoting.order_size_base * quoting.level_size_multiplier ** (quoting.levels - 1)
    if quoting.size_skew:
        largest_base *= 2.0
    lot_base = instrument.lot_size * instrument.contract_size_base
    max_lots = max(instrument.min_size_lots, math.ceil(largest_base / lot_base - 1e-9))
    return RiskLimits(
        max_open_orders_per_side=risk.max_open_orders_per_side,
        # Room for min-notional bumps of the smallest quotes.
        max_order_size_lots=max_lots * 2,
        price_band_bps=risk.price_band_bps,
        inventory_limit_base=inventory.limit_base,
        max_drawdown_quote=risk.max_drawdown_quote,
        halt_on_drawdown=risk.halt_on_drawdown,
        max_order_notional_quote=risk.max_order_notional_quote,
        max_position_notional_quote=risk.max_position_notional_quote,
        tick_size=instrument.tick_size,
        base_per_lot=lot_base,
    )


def hedge_risk_limits(
    risk: RiskConfig,
    inventory_limit_base: float,
    hedging: HedgingConfig,
    instrument: Instrument,
) -> RiskLimits:
    """The risk gate of an asset's hedge orders: the asset's risk section on the hedge
    instrument. A hedge is at most the asset's whole inventory limit times the hedge ratio
    (a rolling beta is capped at 5); the cap doubles that, as for quotes."""
    lot_base = instrument.lot_size * instrument.contract_size_base
    ratio = hedging.ratio if hedging.ratio_mode is HedgeRatioMode.FIXED else max(hedging.ratio, 5.0)
    max_lots = max(instrument.min_size_lots, math.ceil(inventory_limit_base * ratio / lot_base))
    return RiskLimits(
        max_open_orders_per_side=risk.max_open_orders_per_side,
        max_order_size_lots=max_lots * 2,
        price_band_bps=risk.price_band_bps,
        inventory_limit_base=inventory_limit_base,
        max_drawdown_quote=risk.max_drawdown_quote,
        halt_on_drawdown=False,
        max_order_notional_quote=risk.max_order_notional_quote,
        max_position_notional_quote=risk.max_position_notional_quote,
        tick_size=instrument.tick_size,
        base_per_lot=lot_base,
    )


def market_state(
    instrument: Instrument,
    config: MarketDataConfig,
    *,
    rule: SequenceRule = SequenceRule.NONE,
    book: Book | None = None,
    book_is_shared: bool = False,
    reference: MarketState | None = None,
) -> MarketState:
    """A market's state (book, fair value, estimators) with the config's model and half-lives."""
    return MarketState(
        instrument,
        fair_value_model=str(config.fair_value.value),
        rule=rule,
        book=book,
        book_is_shared=book_is_shared,
        reference=reference,
        basis_halflife_ns=int(config.basis_halflife_seconds * _NS),
        volatility_halflife_ns=int(config.volatility_halflife_seconds * _NS),
        intensity_window_ns=int(config.intensity_window_seconds * _NS),
        imbalance_halflife_ns=int(config.imbalance_halflife_seconds * _NS),
    )


def hedge_params(hedging: HedgingConfig) -> HedgeParams:
    return HedgeParams(
        mode=hedging.mode,
        threshold_base=hedging.threshold_base,
        target_base=hedging.target_base,
        fraction=hedging.fraction,
        slice_base=hedging.slice_base,
        slice_interval_seconds=hedging.slice_interval_seconds,
        max_slippage_bps=hedging.max_slippage_bps,
        ratio_mode=hedging.ratio_mode,
        ratio=hedging.ratio,
        beta_window_seconds=hedging.beta_window_seconds,
        on_hedge_venue_down=hedging.on_hedge_venue_down,
        down_widen_bps=hedging.down_widen_bps,
        hedge_timeout_seconds=hedging.hedge_timeout_seconds,
    )
