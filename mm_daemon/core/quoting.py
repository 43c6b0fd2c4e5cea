"""Quote models: the prices and sizes we want resting on the book, from fair value and inventory.

Pure and deterministic: market inputs, net exposure and time come in as arguments.

Units. Prices are (fractional) ticks of the quoted instrument; time is seconds; sizes are lots.
- `sigma_ticks`: volatility of fair value in ticks per sqrt(second) (`MarketInputs.from_relative`
  converts a relative volatility, a fraction per sqrt(second), into it);
- `intensity_a`: trade arrivals per second at zero distance from fair value, `intensity_k`: decay
  per tick of distance (arrival rate `A * exp(-k * delta)`, delta in ticks);
- inventory `q`: `linear_skew` reads net exposure in base units (its skew is bps per base unit);
  `avellaneda_stoikov` and `glft` count it in lots, as the papers count shares, so `gamma` and
  `xi` are per tick per lot (the `gamma / k` of both papers is then dimensionless). The config
  gives them per quote unit per base unit; the engine converts them (`wiring.quote_params`: times
  tick size times lot size), so one value means the same risk aversion on any instrument.

Models (each returns a reservation price `r` and a half spread `h`; bid = r - h, ask = r + h):
- `fixed`: r = fair, h = spread_bps / 2 of fair.
- `linear_skew`: r = fair - skew_bps_per_base * (q - target) (in bps of fair), h as fixed;
  optional size skew: bid sizes times (1 - x), ask sizes times (1 + x),
  x = clip((q - target) / limit, -1, 1).
- `avellaneda_stoikov` (Avellaneda & Stoikov 2008, with a rolling horizon tau = T - t):
  r = s - q * gamma * sigma^2 * tau;
  total spread = gamma * sigma^2 * tau + (2 / gamma) ln(1 + gamma / k).
- `glft` (Gueant, Lehalle & Fernandez-Tapia 2013; Gueant 2017 asymptotic quotes with order size D):
  c1 = ln(1 + xi D / k) / (xi D), c2 = sqrt(gamma / (2 A D k) * (1 + xi D / k)^(k / (xi D) + 1)),
  h = c1 + D / 2 * sigma * c2, r = fair - sigma * c2 * q.

Every model that skews on inventory (all but `fixed`) reads it as the distance from the target
inventory (`inventory_target_base`): q - target, so the quotes lean toward the target, not toward
flat. The inventory limit and the reduce-only rule still count |q| itself.

Then, for every model: optional alpha skew of fair value by order-flow imbalance, volatility
widening, the spread clamped into [min spread, max spread] (the min not below the round-trip maker
fee unless allowed), levels spaced outward, prices rounded outward (bids down, asks up) and kept
off the opposite touch (post-only), sizes in lots at least the minimum size and notional, each
side's levels together no larger than the room left under the inventory limit (a level that
would not fit, or fit only below the minimum size or notional, is dropped with the levels
beyond it), and the side that grows inventory dropped past the inventory limit, in REDUCING, or
when the hedge venue is down with the reduce-only reaction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

from mm_daemon.core.risk import RiskState
from mm_daemon.core.types import Side

__all__ = [
    "HedgeDown",
    "MarketInputs",
    "Quote",
    "QuoteParams",
    "Quoter",
    "Quotes",
    "as_quotes",
    "glft_coefficients",
    "glft_quotes",
]

FIXED = "fixed"
LINEAR_SKEW = "linear_skew"
AVELLANEDA_STOIKOV = "avellaneda_stoikov"
GLFT = "glft"
_MODELS = frozenset({FIXED, LINEAR_SKEW, AVELLANEDA_STOIKOV, GLFT})

# Reactions to a hedge venue that is down (the values of config.HedgeVenueDownReaction).
HEDGE_DOWN_WIDEN = "widen"
HEDGE_DOWN_REDUCE_ONLY = "reduce_only"
HEDGE_DOWN_STOP = "stop"


class MarketInputs(NamedTuple):
    """What the quoter needs to know about the market at one instant.

    Built on every event, so a named tuple: immutable and about 5x cheaper to create than a
    frozen dataclass.
    """

    fair_ticks: float
    best_bid_ticks: int | None
    best_ask_ticks: int | None
    sigma_ticks: float = 0.0  # ticks per sqrt(second)
    intensity_a: float = 0.0  # arrivals per second
    intensity_k: float = 0.0  # per tick
    imbalance: float = 0.0  # order-flow imbalance in [-1, 1], positive: buyers dominate
    stale: bool = False

    @staticmethod
    def from_relative(
        fair_ticks: float,
        best_bid_ticks: int | None,
        best_ask_ticks: int | None,
        *,
        sigma_relative: float,
        intensity_a: float = 0.0,
        intensity_k: float = 0.0,
        imbalance: float = 0.0,
        stale: bool = False,
    ) -> MarketInputs:
        """Build inputs from a relative volatility (fraction of price per sqrt(second))."""
        return MarketInputs(
            fair_ticks,
            best_bid_ticks,
            best_ask_ticks,
            sigma_relative * fair_ticks,
            intensity_a,
            intensity_k,
            imbalance,
            stale,
        )


class Quote(NamedTuple):
    side: Side
    level: int  # 0 is nearest the touch
    price_ticks: int
    size_lots: int


class Quotes(NamedTuple):
    """The desired quotes at one instant; `reason` says why a side or all is empty."""

    bids: tuple[Quote, ...]
    asks: tuple[Quote, ...]
    ts_ns: int
    reason: str = ""
    reservation_ticks: float = 0.0
    half_spread_ticks: float = 0.0

    @property
    def empty(self) -> bool:
        return not self.bids and not self.asks

    def all(self) -> tuple[Quote, ...]:
        return self.bids + self.asks


@dataclass(frozen=True, slots=True)
class HedgeDown:
    """The hedge venue is down: how the quoter reacts (`widen`, `reduce_only`, `stop`)."""

    reaction: str
    widen_bps: float = 0.0
    reason: str = field(default="", compare=False)  # why the venue counts as down


@dataclass(frozen=True, slots=True)
class QuoteParams:
    """Every quoting parameter, in plain values (see the module doc for units)."""

    model: str
    order_size_base: float
    lot_base: float  # base units per lot
    min_size_lots: int = 1
    min_notional_quote: float = 0.0
    tick_size: float = 1.0  # quote units per tick (for min notional)
    levels: int = 1
    level_spacing_bps: float = 0.0
    level_size_multiplier: float = 1.0
    spread_bps: float = 4.0
    min_spread_bps: float = 0.0
    max_spread_bps: float = 1000.0
    round_trip_fee_bps: float = 0.0
    allow_spread_below_fees: bool = False
    skew_bps_per_base: float = 0.0
    size_skew: bool = False
    gamma: float = 0.1
    horizon_seconds: float = 60.0
    xi: float = 0.0  # 0: use gamma
    volatility_widening: float = 0.0
    pull_volatility_bps: float | None = None
    alpha_skew_bps: float = 0.0
    inventory_target_base: float = 0.0
    inventory_limit_base: float = math.inf

    def __post_init__(self) -> None:
        if self.model not in _MODELS:
            raise ValueError(f"unknown quote model {self.model!r}")


# -- the models' formulas (exposed for tests and for anyone checking them by hand) ---------------


def as_quotes(
    fair_ticks: float, *, q_lots: float, gamma: float, sigma_ticks: float, tau_s: float, k: float
) -> tuple[float, float]:
    """Avellaneda-Stoikov: (reservation price, half spread) in ticks."""
    var_tau = sigma_ticks * sigma_ticks * tau_s
    reservation = fair_ticks - q_lots * gamma * var_tau
    spread = gamma * var_tau + (2.0 / gamma) * math.log1p(gamma / k)
    return reservation, spread / 2.0


def glft_coefficients(
    *, gamma: float, xi: float, a: float, k: float, d_lots: float
) -> tuple[float, float]:
    """Gueant-Lehalle-Fernandez-Tapia: (c1, c2) for order size `d_lots`."""
    xd = xi * d_lots
    c1 = math.log1p(xd / k) / xd
    c2 = math.sqrt(gamma / (2.0 * a * d_lots * k) * (1.0 + xd / k) ** (k / xd + 1.0))
    return c1, c2


def glft_quotes(
    fair_ticks: float,
    *,
    q_lots: float,
    gamma: float,
    xi: float,
    sigma_ticks: float,
    a: float,
    k: float,
    d_lots: float,
) -> tuple[float, float]:
    """GLFT asymptotic quotes: (reservation price, half spread) in ticks."""
    c1, c2 = glft_coefficients(gamma=gamma, xi=xi, a=a, k=k, d_lots=d_lots)
    half_spread = c1 + d_lots / 2.0 * sigma_ticks * c2
    skew = sigma_ticks * c2
    return fair_ticks - skew * q_lots, half_spread


_ACTIVE = RiskState.ACTIVE
_REDUCING = RiskState.REDUCING
_HALTED = RiskState.HALTED
_BUY = Side.BUY
_SELL = Side.SELL
_UNLIMITED = 1 << 62  # lots: no inventory limit
_MODEL_CODES = {FIXED: 0, LINEAR_SKEW: 1, AVELLANEDA_STOIKOV: 2, GLFT: 3}


class Quoter:
    """Turns market inputs and inventory into desired quotes; one per quoted instrument.

    Runs on every market event: the parameters are folded into plain attributes once, here.
    """

    __slots__ = (
        "_base_sizes_lots",
        "_half_spread_bps",
        "_limit",
        "_max_spread_bps",
        "_min_notional",
        "_min_size_lots",
        "_min_spread_bps",
        "_model",
        "_notional_per_tick_lot",
        "params",
    )

    def __init__(self, params: QuoteParams) -> None:
        self.params = params
        self._base_sizes_lots = tuple(
            params.order_size_base * params.level_size_multiplier**i / params.lot_base
            for i in range(params.levels)
        )
        self._model = _MODEL_CODES[params.model]
        self._half_spread_bps = params.spread_bps / 2.0
        min_spread = params.min_spread_bps
        if not params.allow_spread_below_fees:
            min_spread = max(min_spread, params.round_trip_fee_bps)
        self._min_spread_bps = min_spread
        self._max_spread_bps = params.max_spread_bps
        self._limit = params.inventory_limit_base
        self._min_size_lots = params.min_size_lots
        self._min_notional = params.min_notional_quote
        self._notional_per_tick_lot = params.tick_size * params.lot_base

    def quote(
        self,
        market: MarketInputs,
        net_exposure_base: float,
        now_ns: int,
        risk_state: RiskState = _ACTIVE,
        hedge_down: HedgeDown | None = None,
    ) -> Quotes:
        """The desired quotes for `market` with `net_exposure_base` of inventory at `now_ns`."""
        if market.stale:
            return Quotes((), (), now_ns, "stale")
        if risk_state is _HALTED:
            return Quotes((), (), now_ns, "halted")
        hedge_reaction = "" if hedge_down is None else hedge_down.reaction
        if hedge_reaction == HEDGE_DOWN_STOP:
            return Quotes((), (), now_ns, "hedge_down")
        fair = market.fair_ticks
        if not fair > 0 or not math.isfinite(fair):
            return Quotes((), (), now_ns, "no_fair_value")
        p = self.params
        bps = fair * 1e-4  # ticks per bps of fair value
        sigma_ticks = market.sigma_ticks
        sigma_bps = sigma_ticks / bps
        pull = p.pull_volatility_bps
        if pull is not None and sigma_bps > pull:
            return Quotes((), (), now_ns, "volatility")
        if p.alpha_skew_bps:
            imbalance = min(1.0, max(-1.0, market.imbalance))
            fair += p.alpha_skew_bps * imbalance * bps

        model = self._model
        q_base = net_exposure_base
        # The price skew leans toward the target inventory, not toward flat.
        q_skew = q_base - p.inventory_target_base
        if model == 0:  # fixed
            reservation, half = fair, self._half_spread_bps * bps
        elif model == 1:  # linear_skew
            reservation = fair - p.skew_bps_per_base * q_skew * bps
            half = self._half_spread_bps * bps
        elif model == 2:  # avellaneda_stoikov
            if not market.intensity_k > 0:
                return Quotes((), (), now_ns, "estimators_not_ready")
            reservation, half = as_quotes(
                fair,
                q_lots=q_skew / p.lot_base,
                gamma=p.gamma,
                sigma_ticks=sigma_ticks,
                tau_s=p.horizon_seconds,
                k=market.intensity_k,
            )
        else:  # glft
            if not (market.intensity_k > 0 and market.intensity_a > 0):
                return Quotes((), (), now_ns, "estimators_not_ready")
            reservation, half = glft_quotes(
                fair,
                q_lots=q_skew / p.lot_base,
                gamma=p.gamma,
                xi=p.xi or p.gamma,
                sigma_ticks=sigma_ticks,
                a=market.intensity_a,
                k=market.intensity_k,
                d_lots=self._base_sizes_lots[0],
            )

        # Spread: widen for volatility and a down hedge venue, then clamp.
        widen_bps = p.volatility_widening * sigma_bps
        if hedge_reaction == HEDGE_DOWN_WIDEN and hedge_down is not None:
            widen_bps += hedge_down.widen_bps
        spread = 2.0 * half + widen_bps * bps
        low = self._min_spread_bps * bps
        high = self._max_spread_bps * bps
        if spread < low:
            spread = low
        elif spread > high:
            spread = high
        half = spread / 2.0

        # Which sides may be quoted.
        limit = self._limit
        reduce_only = risk_state is _REDUCING or hedge_reaction == HEDGE_DOWN_REDUCE_ONLY
        allow_bid = q_base < limit and not (reduce_only and q_base >= 0)
        allow_ask = q_base > -limit and not (reduce_only and q_base <= 0)
        reason = ""
        if not (allow_bid and allow_ask):
            reason = "reduce_only" if reduce_only else "inventory_limit"

        bid_mult = ask_mult = 1.0
        if p.size_skew and model == 1:
            x = (q_base - p.inventory_target_base) / limit if math.isfinite(limit) else 0.0
            x = min(1.0, max(-1.0, x))
            bid_mult, ask_mult = 1.0 - x, 1.0 + x

        spacing = p.level_spacing_bps * bps
        # Lots each side may add before its fills would carry |q| past the limit.
        bid_room = ask_room = _UNLIMITED
        if math.isfinite(limit):
            bid_room = int((limit - q_base) / p.lot_base + 1e-9)
            ask_room = int((limit + q_base) / p.lot_base + 1e-9)
        bids = (
            self._side(
                _BUY,
                reservation - half,
                spacing,
                bid_mult,
                market.best_ask_ticks,
                room_lots=bid_room,
            )
            if allow_bid
            else ()
        )
        asks = (
            self._side(
                _SELL,
                reservation + half,
                spacing,
                ask_mult,
                market.best_bid_ticks,
                room_lots=ask_room,
            )
            if allow_ask
            else ()
        )
        return Quotes(bids, asks, now_ns, reason, reservation, half)

    def _side(
        self,
        side: Side,
        first_price: float,
        spacing_ticks: float,
        size_mult: float,
        opposite_touch: int | None,
        *,
        room_lots: int,
    ) -> tuple[Quote, ...]:
        quotes: list[Quote] = []
        prev = 0
        is_bid = side is _BUY
        min_lots = self._min_size_lots
        min_notional = self._min_notional
        per_tick_lot = self._notional_per_tick_lot
        floor = math.floor
        ceil = math.ceil
        for level, base_lots in enumerate(self._base_sizes_lots):
            lots = int(base_lots * size_mult + 1e-9)  # to the lot, never above what was asked
            if lots <= 0:
                continue
            if is_bid:
                price = floor(first_price - level * spacing_ticks + 1e-9)
                if opposite_touch is not None and price >= opposite_touch:
                    price = opposite_touch - 1  # post-only: never at or above the best ask
                if prev and price >= prev:
                    price = prev - 1
            else:
                price = ceil(first_price + level * spacing_ticks - 1e-9)
                if opposite_touch is not None and price <= opposite_touch:
                    price = opposite_touch + 1  # post-only: never at or below the best bid
                if prev and price <= prev:
                    price = prev + 1
            if price <= 0:
                break
            lots = max(min(lots, room_lots), min_lots)
            if min_notional > 0 and price * per_tick_lot * lots < min_notional:
                lots = ceil(min_notional / (price * per_tick_lot))
            if lots > room_lots:
                break  # no room under the inventory limit for an order of the minimum size
            room_lots -= lots
            quotes.append(Quote(side, level, price, lots))
            prev = price
        return tuple(quotes)
