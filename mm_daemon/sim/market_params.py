"""What the synthetic market is made of: its venues and assets, their instruments, flow and
regime parameters, read from the config, and the matching engines built for them.

Pure: no clock, no I/O. `sim.market.SyntheticMarket` runs on these parameters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from mm_daemon.binance.markets import recorded_instrument
from mm_daemon.core.types import Instrument, InstrumentKind
from mm_daemon.sim.matching import Accounts, MatchingEngine

if TYPE_CHECKING:
    from mm_daemon.config import SimConfig

__all__ = [
    "BASE_REGIMES",
    "BPS",
    "DEFAULT_ASSETS",
    "MAX_BASIS_SPEED",
    "NS",
    "PERP_VENUE",
    "SPOT_VENUE",
    "AssetParams",
    "BookKey",
    "MarketParams",
    "Regime",
    "VenueFlowParams",
    "asset_instruments",
    "assets_from_config",
    "build_engines",
    "default_instruments",
    "params_from_config",
    "scaled_flow",
    "starting_balances",
]

SPOT_VENUE = "sim-spot"
PERP_VENUE = "sim-perp"
QUOTE_ASSET = "USDT"
BPS = 1e-4
NS = 1_000_000_000
MAX_BASIS_SPEED = 2.0  # per second: the fastest the basis mean-reverts

BookKey = tuple[str, str]
"""(venue, exchange symbol): one book of the simulator, e.g. ("sim-spot", "ETHUSDT")."""

Regime = Literal["calm", "volatile", "trending", "flash_crash", "mixed"]
BASE_REGIMES: tuple[str, ...] = ("calm", "volatile", "trending", "flash_crash")

# Measured on the recorded Binance captures (2024-08-08 23:54 to 2024-08-09 00:05 UTC) by
# `tools/sim_calibration.py`, which rebuilds every book and samples its mid each second:
# - 1 s log mid returns of BTCUSDT and ETHUSDT correlate at 0.68 on spot (649 s) and 0.65 on
#   USD-M (343 s); their standard deviations are 1.19 and 1.27 bps on spot, 1.27 and 1.19 on
#   USD-M (ETH about as volatile as BTC: vol_scale 1).
# - BTC/ETH price ratio 23.0 (spot and USD-M alike).
# - ETH against BTC: trades/s 22.3 vs 30.6 (spot), 40.8 vs 61.8 (USD-M); median trade notional
#   20.9 vs 41.3 USDT (spot), 190.4 vs 989.0 (USD-M); median touch size 11.31 vs 2.21 base
#   (spot), 18.56 vs 3.24 (USD-M); 20 levels span 52 vs 696 ticks (spot), 41 vs 73 (USD-M).
# - USD-M minus spot basis of the 1 s mids: BTC -3.69 bps, ETH -4.39 bps.
ETH_RETURN_CORRELATION = 0.68
BTC_PER_ETH = 23.0
OTHER_ASSET_START_PRICE = 100.0  # an asset the captures do not hold, unless configured

_REFERENCE_PRICE = 60_000.0  # the default venue flows are calibrated on BTC at this price


@dataclass(frozen=True, slots=True)
class VenueFlowParams:
    """Liquidity and flow of one book. Sizes in base units, distances in ticks."""

    basis_mean_bps: float = 0.0  # book fair minus latent, long-run mean
    touch_size_base: float = 0.3  # median size of an order at the touch
    size_sigma: float = 0.8  # lognormal sigma of limit order sizes
    size_growth_ticks: float = 20.0  # median size doubles this many ticks behind the touch
    depth_mean_ticks: float = 40.0  # mean distance of new orders behind the touch
    add_rate_per_s: float = 60.0  # new background limit orders, both sides together
    cancel_rate_per_s: float = 0.25  # hazard of each background order being cancelled
    refill_prob: float = 0.98  # chance per step that an empty touch level is refilled
    trade_rate_per_s: float = 6.0  # A: market orders per second per side at delta = 0
    trade_decay_per_bps: float = 1.0  # k: intensity falls as exp(-k * delta_bps)
    trade_size_min_base: float = 0.0005  # Pareto scale of market order sizes
    trade_size_alpha: float = 1.4  # Pareto tail index (heavier below 2)
    trade_size_max_base: float = 5.0
    informed_share: float = 0.2  # share of market orders that are informed
    informed_lead_s: float = 1.0  # how far ahead informed flow sees the fair price
    # Short-lived makers joining the touch (`sim.market`). Looked at every 50 ms, the recorded
    # BTCUSDT touch grew at an unchanged price 5.14 times a second a side on spot and 6.67 on
    # USD-M, and its median size was 1.99 and 3.13 BTC; without joiners the simulator's grew
    # 0.12-0.18 (spot) and 0.39-0.55 (USD-M) times a second, at 0.13-0.19 and 0.33-0.53 BTC
    # (`bench/calibrate_paper.py touch`). The venues' defaults below match both figures; their
    # life hardly matters, as the touch moves about once a second and joiners leave with it.
    join_rate_per_s: float = 0.0  # orders joining the touch, per side
    join_life_s: float = 1.0  # their mean life
    join_size_base: float = 0.1  # their median size (lognormal, `size_sigma`)


def scaled_flow(
    flow: VenueFlowParams,
    *,
    size: float,
    distance: float,
    trade_rate: float = 1.0,
    trade_size: float | None = None,
    basis_mean_bps: float | None = None,
) -> VenueFlowParams:
    """`flow` for another asset: limit order sizes times `size`, distances (ticks) times
    `distance`, market order rate times `trade_rate` and sizes times `trade_size` (default
    `size`), and its own basis if given."""
    trade = size if trade_size is None else trade_size
    return replace(
        flow,
        basis_mean_bps=flow.basis_mean_bps if basis_mean_bps is None else basis_mean_bps,
        touch_size_base=flow.touch_size_base * size,
        join_size_base=flow.join_size_base * size,
        size_growth_ticks=flow.size_growth_ticks * distance,
        depth_mean_ticks=flow.depth_mean_ticks * distance,
        trade_rate_per_s=flow.trade_rate_per_s * trade_rate,
        trade_size_min_base=flow.trade_size_min_base * trade,
        trade_size_max_base=flow.trade_size_max_base * trade,
    )


def _default_venues() -> Mapping[str, VenueFlowParams]:
    return MappingProxyType(
        {
            # Calibrated on the recorded BTCUSDT books: 20 levels span about 700 ticks on spot
            # and 80 on the perpetual; the spread is one tick most of the time.
            SPOT_VENUE: VenueFlowParams(
                basis_mean_bps=0.0,
                touch_size_base=0.15,
                size_sigma=1.3,
                size_growth_ticks=1000.0,
                depth_mean_ticks=700.0,
                join_rate_per_s=6.9,
                join_size_base=0.43,
            ),
            PERP_VENUE: VenueFlowParams(
                basis_mean_bps=-3.7,
                touch_size_base=0.3,
                size_sigma=1.3,
                size_growth_ticks=60.0,
                depth_mean_ticks=80.0,
                trade_size_min_base=0.002,
                trade_rate_per_s=12.0,
                join_rate_per_s=9.4,
                join_size_base=0.35,
            ),
        }
    )


def _default_asset_flows() -> Mapping[tuple[str, str], VenueFlowParams]:
    """ETH's books: BTC's flows scaled by the recorded ETH/BTC ratios (see the figures above)."""
    venues = _default_venues()
    return MappingProxyType(
        {
            (SPOT_VENUE, "ETH"): scaled_flow(
                venues[SPOT_VENUE],
                size=11.31 / 2.21,
                distance=52.0 / 696.0,
                trade_rate=22.3 / 30.6,
                trade_size=20.9 / 41.3 * BTC_PER_ETH,
            ),
            (PERP_VENUE, "ETH"): scaled_flow(
                venues[PERP_VENUE],
                size=18.56 / 3.24,
                distance=41.0 / 73.0,
                trade_rate=40.8 / 61.8,
                trade_size=190.4 / 989.0 * BTC_PER_ETH,
                basis_mean_bps=-4.39,
            ),
        }
    )


@dataclass(frozen=True, slots=True)
class AssetParams:
    """One listed asset: its start price (quote) and how its returns follow the first asset's."""

    base: str
    start_price: float
    return_correlation: float = ETH_RETURN_CORRELATION  # of venue mids' 1 s returns
    vol_scale: float = 1.0  # its latent volatility over the first asset's


DEFAULT_ASSETS: tuple[AssetParams, ...] = (
    AssetParams("BTC", _REFERENCE_PRICE, return_correlation=1.0),
    AssetParams("ETH", _REFERENCE_PRICE / BTC_PER_ETH),
)


@dataclass(frozen=True, slots=True)
class MarketParams:
    """Everything the synthetic market draws from; volatilities are bps per sqrt(second).

    `assets` are the listed assets, the first one driving the others; `venues` the flows of
    each venue calibrated on BTC, `asset_flows` the flows of other assets where they were
    measured (by venue and base asset); an asset without its own is given the venue's
    flow scaled to its price and tick (same notional sizes, same distances in bps).
    """

    regime: Regime = "calm"
    assets: tuple[AssetParams, ...] = DEFAULT_ASSETS
    step_ns: int = 50_000_000
    calm_sigma_bps: float = 1.0
    volatile_sigma_bps: float = 2.5
    volatile_jump_rate_per_s: float = 0.05
    volatile_jump_std_bps: float = 8.0
    trend_drift_bps_per_s: float = 1.0  # sign gives the direction
    trend_sigma_bps: float = 0.8
    crash_at_s: float = 10.0  # flash_crash: seconds after start (or after entering, in mixed)
    crash_depth_frac: float = 0.05
    crash_duration_s: float = 5.0
    crash_recovery_frac: float = 0.6  # share of the drop recovered afterwards
    crash_recovery_s: float = 60.0
    crash_sigma_bps: float = 2.0
    mixed_dwell_s: float = 60.0  # mean time in a regime before mixed switches
    return_correlation: float = 0.84  # of one asset's venue returns at 1 s
    basis_std_bps: float = 0.65  # of one venue's fair minus another's
    # Background makers requote when the fair price has moved this far since they last did
    # (`sim.market`). On the recorded BTCUSDT spot bookTicker (real time), looked at every
    # 100 ms, the mid changed in 11.3 % of intervals and went past both ends of an interval
    # and back in 0.27 % of intervals and sides. A touch that followed the fair price at every
    # 50 ms step changed in 99.8 % and made such excursions in 25 % (calm). At 0.8 bps: 11.4 %
    # and 0.12 % in calm markets, 46 % and 1.3 % in volatile ones (`bench/calibrate_paper.py
    # excursions`, `bench/results/paper_excursions.json`).
    requote_bps: float = 0.8
    venues: Mapping[str, VenueFlowParams] = field(default_factory=_default_venues)
    asset_flows: Mapping[tuple[str, str], VenueFlowParams] = field(
        default_factory=_default_asset_flows
    )

    @property
    def start_price(self) -> float:
        """The first asset's start price."""
        return self.assets[0].start_price

    def venue(self, name: str) -> VenueFlowParams:
        return self.venues.get(name) or VenueFlowParams()

    def asset(self, base: str) -> AssetParams:
        for asset in self.assets:
            if asset.base == base:
                return asset
        raise ValueError(f"no parameters for asset {base!r} (assets: {self._bases()})")

    def flow(self, inst: Instrument) -> VenueFlowParams:
        """The flow of `inst`'s book (its venue and base asset)."""
        own = self.asset_flows.get((inst.venue, inst.base))
        if own is not None:
            return own
        flow = self.venue(inst.venue)
        if inst.base == self.assets[0].base:
            return flow
        price = self.asset(inst.base).start_price
        reference = _reference_instrument(inst.kind)
        tick_bps = inst.tick_size / price
        reference_tick_bps = reference.tick_size / _REFERENCE_PRICE
        return scaled_flow(
            flow, size=_REFERENCE_PRICE / price, distance=reference_tick_bps / tick_bps
        )

    def _bases(self) -> str:
        return ", ".join(a.base for a in self.assets)


def _reference_instrument(kind: InstrumentKind) -> Instrument:
    if kind is InstrumentKind.SPOT:
        return recorded_instrument("spot", "btcusdt", SPOT_VENUE)
    return recorded_instrument("usdm", "btcusdt", PERP_VENUE)


def asset_instruments(
    base: str,
    start_price: float,
    *,
    spot_fees: tuple[float, float] = (0.0, 0.0004),
    perp_fees: tuple[float, float] = (0.0, 0.0002),
) -> tuple[Instrument, Instrument]:
    """`base`/USDT on sim-spot and the `base`/USDT perpetual on sim-perp, with fee rates
    (maker, taker).

    BTC and ETH carry Binance's filters for them (spot BTCUSDT tick 0.01 lot 0.00001, ETHUSDT
    tick 0.01 lot 0.0001, min notional 5; USD-M BTCUSDT tick 0.1, ETHUSDT tick 0.01, lot 0.001,
    min notional 100 and 20). Another asset gets filters sized to its start price the way
    Binance sizes them: a tick of at most 0.1 bps (a power of ten), a spot lot worth at most
    1 USDT and a perpetual lot at most 10 USDT (none finer than 1e-8), min notional 5.
    """
    if base in ("BTC", "ETH"):
        symbol = f"{base.lower()}usdt"
        spot = recorded_instrument("spot", symbol, SPOT_VENUE)
        perp = recorded_instrument("usdm", symbol, PERP_VENUE)
    else:
        # Binance prints at most 8 decimals: nothing finer than 1e-8.
        tick = max(1e-8, 10.0 ** math.floor(math.log10(start_price * 1e-5)))
        spot_lot = max(1e-8, 10.0 ** math.floor(math.log10(1.0 / start_price)))
        perp_lot = max(1e-8, 10.0 ** math.floor(math.log10(10.0 / start_price)))
        spot = Instrument(
            venue=SPOT_VENUE,
            symbol=f"{base}/{QUOTE_ASSET}",
            exchange_symbol=f"{base}{QUOTE_ASSET}",
            kind=InstrumentKind.SPOT,
            base=base,
            quote=QUOTE_ASSET,
            tick_size=_power_of_ten(tick),
            lot_size=_power_of_ten(spot_lot),
            min_notional_quote=5.0,
        )
        perp = replace(
            spot,
            venue=PERP_VENUE,
            symbol=f"{base}/{QUOTE_ASSET}:{QUOTE_ASSET}",
            kind=InstrumentKind.PERPETUAL,
            lot_size=_power_of_ten(perp_lot),
        )
    return (
        replace(spot, maker_fee_rate=spot_fees[0], taker_fee_rate=spot_fees[1]),
        replace(perp, maker_fee_rate=perp_fees[0], taker_fee_rate=perp_fees[1]),
    )


def _power_of_ten(value: float) -> float:
    """`value` (a power of ten) without float residue: 10**-3 as 0.001."""
    exponent = round(math.log10(value))
    return float(f"1e{exponent}")


def assets_from_config(cfg: SimConfig) -> tuple[AssetParams, ...]:
    """The listed assets with their start prices and correlations (config defaults applied:
    BTC at `start_price_quote`, ETH at the recorded BTC/ETH ratio of it, any other asset
    at `OTHER_ASSET_START_PRICE`; correlation `ETH_RETURN_CORRELATION`)."""
    out: list[AssetParams] = []
    for i, asset in enumerate(cfg.assets):
        price = asset.start_price_quote
        if price is None:
            if asset.base == "BTC":
                price = cfg.start_price_quote
            elif asset.base == "ETH":
                price = cfg.start_price_quote / BTC_PER_ETH
            else:
                price = OTHER_ASSET_START_PRICE
        if i == 0:
            corr = 1.0
        elif asset.return_correlation is None:
            corr = ETH_RETURN_CORRELATION
        else:
            corr = asset.return_correlation
        out.append(AssetParams(asset.base, price, return_correlation=corr))
    return tuple(out)


def params_from_config(cfg: SimConfig) -> MarketParams:
    """Market parameters for the simulator config (regime and assets; fees live on the
    instruments, see `default_instruments`)."""
    return MarketParams(regime=cfg.regime, assets=assets_from_config(cfg))


def default_instruments(cfg: SimConfig | None = None) -> list[Instrument]:
    """Every listed asset against USDT on sim-spot and as a perpetual on sim-perp (spot
    instruments first, in the assets' order), fees from `cfg`; without `cfg`, BTC and ETH with
    the simulator's default fees."""
    if cfg is None:
        pairs = [asset_instruments(a.base, a.start_price) for a in DEFAULT_ASSETS]
    else:
        spot_fees = (cfg.spot_maker_fee_bps * BPS, cfg.spot_taker_fee_bps * BPS)
        perp_fees = (cfg.perp_maker_fee_bps * BPS, cfg.perp_taker_fee_bps * BPS)
        pairs = [
            asset_instruments(a.base, a.start_price, spot_fees=spot_fees, perp_fees=perp_fees)
            for a in assets_from_config(cfg)
        ]
    return [spot for spot, _ in pairs] + [perp for _, perp in pairs]


def starting_balances(cfg: SimConfig) -> dict[str, float]:
    """What each new account holds of each base asset: `starting_base` of the first asset,
    and the same value (at start prices) of every other one."""
    assets = assets_from_config(cfg)
    value = cfg.starting_base * assets[0].start_price
    return {a.base: value / a.start_price for a in assets}


def build_engines(
    instruments: Iterable[Instrument],
    *,
    starting_base: float | Mapping[str, float] = 1.0,
    starting_quote: float = 100_000.0,
) -> dict[BookKey, MatchingEngine]:
    """One engine per instrument, keyed by (venue, exchange symbol); the engines of a venue
    share one `Accounts` (spot: every base asset and the quote; perpetual: quote margin), so
    a new API key gets one set of starting balances per venue. `starting_base` is one amount
    for every base asset, or an amount per base asset."""
    by_venue: dict[str, list[Instrument]] = {}
    for inst in instruments:
        by_venue.setdefault(inst.venue, []).append(inst)
    engines: dict[BookKey, MatchingEngine] = {}
    for venue_instruments in by_venue.values():
        kind = venue_instruments[0].kind
        balances: dict[str, float] = {}
        if kind is InstrumentKind.SPOT:
            for inst in venue_instruments:
                balances[inst.base] = (
                    starting_base
                    if isinstance(starting_base, int | float)
                    else starting_base.get(inst.base, 0.0)
                )
        for inst in venue_instruments:
            balances[inst.quote] = starting_quote
        accounts = Accounts(kind, balances)
        for inst in venue_instruments:
            engines[(inst.venue, inst.exchange_symbol)] = MatchingEngine(inst, accounts)
    return engines
