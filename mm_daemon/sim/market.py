"""Synthetic market: latent fair prices driving background liquidity and flow on several venues.

Pure and seeded: the same seed and parameters give the same stream of engine calls, whatever
the chunks `advance` is called with, because the event clock steps on a fixed grid from
`start_ns`. Nothing here reads a clock or does I/O.

Every venue lists every asset against USDT (spot `BTCUSDT`, `ETHUSDT`; perpetual likewise); one
book per (venue, symbol). The model, per step of `step_ns`:
- Each asset has its own latent log price. The first asset's (BTC's) is a Gaussian diffusion
  with drift and Poisson jumps, parameters by regime (calm, volatile, trending, flash_crash;
  mixed switches between them at random). The regime is the market's: every asset is in it.
- Every other asset's latent return is `vol_scale * (rho * r0 + sqrt(1 - rho^2) * sigma * z)`,
  r0 the first asset's return over the step (drift, jumps and crash included), sigma the
  regime's volatility and z its own Gaussian draw: its returns correlate with the first
  asset's at rho. rho is set so that the assets' venue mids (latent plus basis, below)
  correlate as configured: rho = target / (venue return correlation), because each venue's
  basis noise is independent of everything else.
- Each book's fair price is exp(x + b), x its asset's latent log price and b a mean-reverting
  (Ornstein-Uhlenbeck) basis of its own. The OU speed is chosen so that 1 s returns of two
  venues of one asset correlate as configured:
  corr = var_x / (var_x + var_b1s), with var_b1s = 2 V (1 - exp(-theta)) and V the stationary
  basis variance (half of the configured perp-minus-spot basis variance per venue, scaled by
  the asset's volatility). When the regime is too volatile for that basis variance to
  decorrelate the venues enough, the basis speed is capped and its variance grows instead:
  the correlation target wins, and the basis widens in volatile markets.
- Informed flow knows the book's fair `informed_lead_s` ahead and sends IOC orders toward it
  when the touch is on the wrong side of it.
- Uninformed market orders arrive per side as a Poisson process of intensity
  lambda = A exp(-k delta), delta the distance (bps) of that side's touch from the book's
  fair, with Pareto-distributed sizes.
- Background quotes on the wrong side of the fair are requoted behind the new touch; random
  background orders are cancelled at a constant hazard; new ones are added at exponentially
  distributed distances from the touch with sizes growing with distance; when the touch moves
  away from the fair price, the order at the old touch is requoted at the new one.
All of it goes through `MatchingEngine` with the background account, so client orders resting
in the same book are filled by this flow in queue order.

Each book draws from its own random stream, and so does each asset's latent price: the first
asset's books produce the same stream whatever other assets are listed beside them.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from mm_daemon.binance.markets import recorded_instrument
from mm_daemon.core.types import Instrument, InstrumentKind, OrderType, Side
from mm_daemon.sim.matching import BACKGROUND_API_KEY, Accounts, MatchingEngine, MatchResult

if TYPE_CHECKING:
    from mm_daemon.config import SimConfig

__all__ = [
    "DEFAULT_ASSETS",
    "PERP_VENUE",
    "SPOT_VENUE",
    "AssetParams",
    "BookKey",
    "MarketParams",
    "Regime",
    "SyntheticMarket",
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
_BPS = 1e-4
_NS = 1_000_000_000
_MAX_BASIS_SPEED = 2.0  # per second: the fastest the basis mean-reverts

BookKey = tuple[str, str]
"""(venue, exchange symbol): one book of the simulator, e.g. ("sim-spot", "ETHUSDT")."""

Regime = Literal["calm", "volatile", "trending", "flash_crash", "mixed"]
_BASE_REGIMES: tuple[str, ...] = ("calm", "volatile", "trending", "flash_crash")

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
            ),
            PERP_VENUE: VenueFlowParams(
                basis_mean_bps=-3.7,
                touch_size_base=0.3,
                size_sigma=1.3,
                size_growth_ticks=60.0,
                depth_mean_ticks=80.0,
                trade_size_min_base=0.002,
                trade_rate_per_s=12.0,
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
        spot_fees = (cfg.spot_maker_fee_bps * _BPS, cfg.spot_taker_fee_bps * _BPS)
        perp_fees = (cfg.perp_maker_fee_bps * _BPS, cfg.perp_taker_fee_bps * _BPS)
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


def _poisson(rng: random.Random, lam: float) -> int:
    """Poisson draw (Knuth for small means, normal approximation for large ones)."""
    if lam <= 0.0:
        return 0
    if lam > 30.0:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit = math.exp(-lam)
    k = 0
    p = rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


@dataclass(slots=True)
class _AssetPath:
    """One asset's latent log price, generated ahead for informed flow to look into."""

    base: str
    rng: random.Random
    vol_scale: float
    rho: float  # correlation of its latent returns with the first asset's
    x_gen: float  # the last generated value
    x: float  # the value at the current step
    path: deque[float] = field(default_factory=deque)


@dataclass(slots=True)
class _BookState:
    key: BookKey
    inst: Instrument
    flow: VenueFlowParams
    asset: _AssetPath
    rng: random.Random
    basis: float  # log units
    trade_min_lots: int
    orders: list[int] = field(default_factory=list)  # background order ids (some may be done)
    index: dict[int, int] = field(default_factory=dict)  # order id -> position in `orders`
    where: dict[int, tuple[Side, int]] = field(default_factory=dict)
    by_level: dict[tuple[Side, int], list[int]] = field(default_factory=dict)
    seeded: bool = False


class SyntheticMarket:
    """Drives one `MatchingEngine` per (venue, symbol) from the assets' latent prices; see
    the module doc. `instruments` name the books (their venue and exchange symbol); every
    instrument's base asset must be one of `params.assets`."""

    def __init__(
        self,
        params: MarketParams,
        instruments: Iterable[Instrument],
        seed: int,
        *,
        start_ns: int = 0,
    ) -> None:
        instruments = list(instruments)
        self.params = params
        self.seed = seed
        self.start_ns = start_ns
        self._step_s = params.step_ns / _NS
        self._regime_rng = random.Random(f"{seed}:regime")
        self._regime: str = "calm" if params.regime == "mixed" else str(params.regime)
        self._regime_since_s = 0.0
        self._trend_sign = 1.0
        self._current_regime: str = self._regime
        # Latent paths, buffered far enough ahead for informed flow to look into the future.
        lead_s = max((params.flow(inst).informed_lead_s for inst in instruments), default=0.0)
        self._lead_steps = max(0, round(lead_s / self._step_s))
        self._path_regime: deque[str] = deque()
        self._gen_step = 0  # index of the next latent step to generate
        self._step = 0  # index of the current (last processed) step
        listed = {inst.base for inst in instruments}
        driver = params.assets[0]
        self._driver = self._new_path(driver, 1.0, random.Random(f"{seed}:latent"))
        self._others: list[_AssetPath] = []
        paths = {driver.base: self._driver}
        for asset in params.assets[1:]:
            if asset.base in listed:
                rho = asset.return_correlation / min(max(params.return_correlation, 1e-3), 1.0)
                path = self._new_path(
                    asset, min(1.0, max(-1.0, rho)), random.Random(f"{seed}:latent:{asset.base}")
                )
                self._others.append(path)
                paths[asset.base] = path
        half_var = (params.basis_std_bps * _BPS) ** 2 / 2.0
        self._basis_var = half_var
        self._basis_cache: dict[str, tuple[float, float]] = {}
        self._books: dict[BookKey, _BookState] = {}
        for inst in instruments:
            book_path = paths.get(inst.base)
            if book_path is None:
                raise ValueError(
                    f"{inst.venue} {inst.symbol}: no parameters for asset {inst.base!r} "
                    f"(assets: {', '.join(a.base for a in params.assets)})"
                )
            key = (inst.venue, inst.exchange_symbol)
            flow = params.flow(inst)
            # The first asset's books keep the streams of a single-asset market.
            name = (
                inst.venue if inst.base == driver.base else f"{inst.venue}:{inst.exchange_symbol}"
            )
            rng = random.Random(f"{seed}:{name}")
            scale = book_path.vol_scale
            basis = flow.basis_mean_bps * _BPS + rng.gauss(0.0, math.sqrt(half_var) * scale)
            self._books[key] = _BookState(
                key=key,
                inst=inst,
                flow=flow,
                asset=book_path,
                rng=rng,
                basis=basis,
                trade_min_lots=inst.min_size_lots,
            )
        for _ in range(self._lead_steps + 1):
            self._generate()
        self._path_regime.popleft()
        for path in (self._driver, *self._others):
            path.path.popleft()

    @staticmethod
    def _new_path(asset: AssetParams, rho: float, rng: random.Random) -> _AssetPath:
        x0 = math.log(asset.start_price)
        return _AssetPath(asset.base, rng, asset.vol_scale, rho, x_gen=x0, x=x0)

    # -- public ----------------------------------------------------------------------------

    @property
    def now_ns(self) -> int:
        """Time of the last processed step."""
        return self.start_ns + self._step * self.params.step_ns

    @property
    def regime(self) -> str:
        """The regime in force at the current step."""
        return self._current_regime

    def latent_price(self, base: str | None = None) -> float:
        """An asset's latent fair price at the last processed step (default: the first
        asset's)."""
        if base is None or base == self._driver.base:
            return math.exp(self._driver.x)
        for path in self._others:
            if path.base == base:
                return math.exp(path.x)
        raise KeyError(base)

    def book_fair(self, key: BookKey) -> float:
        """A book's own fair price now: its asset's latent price times its basis."""
        book = self._books[key]
        return math.exp(book.asset.x + book.basis)

    def advance(
        self, engines: Mapping[BookKey, MatchingEngine], until_ns: int
    ) -> list[tuple[BookKey, MatchResult]]:
        """Run every step up to `until_ns`; returns each engine call that did something,
        in order, with its book."""
        out: list[tuple[BookKey, MatchResult]] = []
        step_ns = self.params.step_ns
        for state in self._books.values():
            if not state.seeded:
                self._seed_book(state, engines[state.key], self.now_ns, out)
        while self.start_ns + (self._step + 1) * step_ns <= until_ns:
            self._step += 1
            ts = self.start_ns + self._step * step_ns
            self._advance_latent()
            for state in self._books.values():
                self._step_book(state, engines[state.key], ts, out)
        return out

    # -- latent prices ---------------------------------------------------------------------

    def _generate(self) -> None:
        """Append one step of every latent path (regime switching included)."""
        p = self.params
        dt = self._step_s
        t = self._gen_step * dt
        driver = self._driver
        rng = driver.rng
        if (
            p.regime == "mixed"
            and self._gen_step > 0
            and self._regime_rng.random() < dt / p.mixed_dwell_s
        ):
            choices = [r for r in _BASE_REGIMES if r != self._regime]
            self._regime = self._regime_rng.choice(choices)
            self._regime_since_s = t
            if self._regime == "trending":
                self._trend_sign = 1.0 if self._regime_rng.random() < 0.5 else -1.0
        regime = self._regime
        x = driver.x_gen
        if regime == "calm":
            x += p.calm_sigma_bps * _BPS * math.sqrt(dt) * rng.gauss(0.0, 1.0)
        elif regime == "volatile":
            x += p.volatile_sigma_bps * _BPS * math.sqrt(dt) * rng.gauss(0.0, 1.0)
            if rng.random() < p.volatile_jump_rate_per_s * dt:
                x += rng.gauss(0.0, p.volatile_jump_std_bps * _BPS)
        elif regime == "trending":
            sign = self._trend_sign if p.regime == "mixed" else 1.0
            x += sign * p.trend_drift_bps_per_s * _BPS * dt
            x += p.trend_sigma_bps * _BPS * math.sqrt(dt) * rng.gauss(0.0, 1.0)
        else:  # flash_crash
            x += p.crash_sigma_bps * _BPS * math.sqrt(dt) * rng.gauss(0.0, 1.0)
            since = t - self._regime_since_s
            start = p.crash_at_s if p.regime == "flash_crash" else 0.0
            drop = math.log1p(-p.crash_depth_frac)
            if start <= since < start + p.crash_duration_s:
                x += drop / p.crash_duration_s * dt
            elif (
                start + p.crash_duration_s
                <= since
                < start + p.crash_duration_s + (p.crash_recovery_s)
            ):
                x -= p.crash_recovery_frac * drop / p.crash_recovery_s * dt
        driver_return = x - driver.x_gen
        driver.x_gen = x
        driver.path.append(x)
        if self._others:
            sigma = self._sigma_bps(regime) * _BPS * math.sqrt(dt)
            for path in self._others:
                idio = math.sqrt(1.0 - path.rho * path.rho) * sigma * path.rng.gauss(0.0, 1.0)
                path.x_gen += path.vol_scale * (path.rho * driver_return + idio)
                path.path.append(path.x_gen)
        self._path_regime.append(regime)
        self._gen_step += 1

    def _advance_latent(self) -> None:
        self._generate()
        self._driver.x = self._driver.path.popleft()
        for path in self._others:
            path.x = path.path.popleft()
        self._current_regime = self._path_regime.popleft()

    def _sigma_bps(self, regime: str) -> float:
        p = self.params
        if regime == "volatile":
            jump_var = p.volatile_jump_rate_per_s * p.volatile_jump_std_bps**2
            return math.sqrt(p.volatile_sigma_bps**2 + jump_var)
        if regime == "trending":
            return p.trend_sigma_bps
        if regime == "flash_crash":
            return p.crash_sigma_bps
        return p.calm_sigma_bps

    def _basis_process(self) -> tuple[float, float]:
        """(exp(-theta dt), stationary variance) of each book's OU basis this step, for an
        asset as volatile as the first (scale the variance by vol_scale^2 for another).

        theta is set so that 1 s venue returns correlate as configured (see the module doc).
        When the regime is too volatile for the configured basis variance to decorrelate the
        venues that much, theta is capped at `_MAX_BASIS_SPEED` and the basis variance grows
        instead: the correlation target wins, as basis widens in volatile markets.
        """
        regime = self._current_regime
        cached = self._basis_cache.get(regime)
        if cached is not None:
            return cached
        p = self.params
        var_x = (self._sigma_bps(regime) * _BPS) ** 2
        rho = min(max(p.return_correlation, 1e-3), 1.0)
        var_idio = var_x * (1.0 - rho) / rho  # per venue, of its 1 s basis change
        var_basis = self._basis_var
        floor = math.exp(-_MAX_BASIS_SPEED)
        if var_idio <= 0.0:
            decay_1s = 1.0
        elif var_basis <= 0.0 or 1.0 - var_idio / (2.0 * var_basis) < floor:
            decay_1s = floor
            var_basis = var_idio / (2.0 * (1.0 - floor))
        else:
            decay_1s = 1.0 - var_idio / (2.0 * var_basis)
        result = (math.pow(decay_1s, self._step_s), var_basis)
        self._basis_cache[regime] = result
        return result

    # -- books -----------------------------------------------------------------------------

    def _step_book(
        self,
        s: _BookState,
        eng: MatchingEngine,
        ts: int,
        out: list[tuple[BookKey, MatchResult]],
    ) -> None:
        flow = s.flow
        rng = s.rng
        dt = self._step_s
        decay, var_basis = self._basis_process()
        scale = s.asset.vol_scale
        mean = flow.basis_mean_bps * _BPS
        noise = math.sqrt(var_basis * (1.0 - decay * decay)) * scale
        s.basis = mean + (s.basis - mean) * decay + noise * rng.gauss(0.0, 1.0)
        tick = s.inst.tick_size
        x = s.asset.x
        fair_ticks = math.exp(x + s.basis) / tick
        path = s.asset.path
        future_x = path[-1] if path else x
        future_ticks = math.exp(future_x + s.basis) / tick
        # 1. Informed flow: trades toward where the fair price is going.
        informed_rate = 0.0
        if 0.0 < flow.informed_share < 1.0:
            informed_rate = 2.0 * flow.trade_rate_per_s * flow.informed_share
            informed_rate /= 1.0 - flow.informed_share
        for _ in range(_poisson(rng, informed_rate * dt)):
            self._informed(s, eng, future_ticks, ts, out)
        # 2. Uninformed market orders, fewer when the touch is far from the fair price.
        for side in (Side.BUY, Side.SELL):
            touch = eng.best_ask() if side is Side.BUY else eng.best_bid()
            if touch is None:
                continue
            delta_bps = max(0.0, (touch[0] - fair_ticks) * int(side) / fair_ticks / _BPS)
            lam = flow.trade_rate_per_s * math.exp(-flow.trade_decay_per_bps * delta_bps)
            for _ in range(_poisson(rng, lam * dt)):
                lots = self._trade_lots(s)
                res = eng.submit(BACKGROUND_API_KEY, side, OrderType.MARKET, lots, ts)
                self._record(s, eng, res, out)
        # 3. Background quotes on the wrong side of the fair price are withdrawn.
        bid1 = math.floor(fair_ticks - 0.5)
        ask1 = bid1 + 1
        self._withdraw(s, eng, side=Side.BUY, limit=bid1, ts=ts, out=out)
        self._withdraw(s, eng, side=Side.SELL, limit=ask1, ts=ts, out=out)
        # 4. Random cancels.
        n_cancel = _poisson(rng, len(s.where) * flow.cancel_rate_per_s * dt)
        for _ in range(n_cancel):
            if not s.orders:
                break
            i = rng.randrange(len(s.orders))
            order_id = s.orders[i]
            self._cancel(s, eng, order_id, ts, out)
        # 5. New orders behind the touch, and refills of an empty touch.
        for _ in range(_poisson(rng, flow.add_rate_per_s * dt)):
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            d = int(rng.expovariate(1.0 / flow.depth_mean_ticks)) if flow.depth_mean_ticks else 0
            price = bid1 - d if side is Side.BUY else ask1 + d
            self._add(s, eng, side=side, price=price, distance=d, ts=ts, out=out)
        best_bid = eng.best_bid()
        if (best_bid is None or best_bid[0] < bid1) and rng.random() < flow.refill_prob:
            self._refill(s, eng, side=Side.BUY, target=bid1, best=best_bid, ts=ts, out=out)
        best_ask = eng.best_ask()
        if (best_ask is None or best_ask[0] > ask1) and rng.random() < flow.refill_prob:
            self._refill(s, eng, side=Side.SELL, target=ask1, best=best_ask, ts=ts, out=out)

    def _refill(
        self,
        s: _BookState,
        eng: MatchingEngine,
        *,
        side: Side,
        target: int,
        best: tuple[int, int] | None,
        ts: int,
        out: list[tuple[BookKey, MatchResult]],
    ) -> None:
        """Bring the touch up to `target`: the market maker quoting the old touch requotes
        there (its order moves up), so the book does not pile up orders where the price was;
        with no background order at the old touch a new one is placed."""
        if best is not None:
            ids = s.by_level.get((side, best[0]))
            if ids and self._cancel(s, eng, ids[0], ts, out):
                self._add(s, eng, side=side, price=target, distance=0, ts=ts, out=out)
                return
        self._add(s, eng, side=side, price=target, distance=0, ts=ts, out=out)

    def _seed_book(
        self,
        s: _BookState,
        eng: MatchingEngine,
        ts: int,
        out: list[tuple[BookKey, MatchResult]],
    ) -> None:
        """Fill an empty book to its steady state (adds / cancel hazard orders)."""
        s.seeded = True
        flow = s.flow
        fair_ticks = math.exp(s.asset.x + s.basis) / s.inst.tick_size
        bid1 = math.floor(fair_ticks - 0.5)
        ask1 = bid1 + 1
        n = round(flow.add_rate_per_s / flow.cancel_rate_per_s) if flow.cancel_rate_per_s else 0
        for i in range(n):
            side = Side.BUY if i % 2 == 0 else Side.SELL
            d = int(s.rng.expovariate(1.0 / flow.depth_mean_ticks)) if flow.depth_mean_ticks else 0
            price = bid1 - d if side is Side.BUY else ask1 + d
            self._add(s, eng, side=side, price=price, distance=d, ts=ts, out=out)
        if flow.refill_prob > 0.0:
            self._add(s, eng, side=Side.BUY, price=bid1, distance=0, ts=ts, out=out)
            self._add(s, eng, side=Side.SELL, price=ask1, distance=0, ts=ts, out=out)

    def _informed(
        self,
        s: _BookState,
        eng: MatchingEngine,
        future_ticks: float,
        ts: int,
        out: list[tuple[BookKey, MatchResult]],
    ) -> None:
        ask = eng.best_ask()
        bid = eng.best_bid()
        if ask is not None and ask[0] < future_ticks - 0.5:
            side, limit = Side.BUY, math.floor(future_ticks)
        elif bid is not None and bid[0] > future_ticks + 0.5:
            side, limit = Side.SELL, math.ceil(future_ticks)
        else:
            return
        lots = self._trade_lots(s)
        res = eng.submit(BACKGROUND_API_KEY, side, OrderType.IOC, lots, ts, price_ticks=limit)
        self._record(s, eng, res, out)

    def _trade_lots(self, s: _BookState) -> int:
        flow = s.flow
        size = flow.trade_size_min_base * s.rng.paretovariate(flow.trade_size_alpha)
        size = min(size, flow.trade_size_max_base)
        base_per_lot = s.inst.lot_size * s.inst.contract_size_base
        return max(s.trade_min_lots, round(size / base_per_lot))

    def _add(
        self,
        s: _BookState,
        eng: MatchingEngine,
        *,
        side: Side,
        price: int,
        distance: int,
        ts: int,
        out: list[tuple[BookKey, MatchResult]],
    ) -> None:
        if price <= 0:
            return
        flow = s.flow
        median = flow.touch_size_base * (1.0 + distance / flow.size_growth_ticks)
        size = median * math.exp(flow.size_sigma * s.rng.gauss(0.0, 1.0))
        inst = s.inst
        base_per_lot = inst.lot_size * inst.contract_size_base
        min_lots = math.ceil(inst.min_notional_quote / (price * inst.tick_size) / base_per_lot)
        lots = max(inst.min_size_lots, min_lots, round(size / base_per_lot))
        res = eng.submit(BACKGROUND_API_KEY, side, OrderType.LIMIT, lots, ts, price_ticks=price)
        if not res.ok:
            return
        if eng.is_open(res.order_id):
            s.index[res.order_id] = len(s.orders)
            s.orders.append(res.order_id)
            s.where[res.order_id] = (side, price)
            s.by_level.setdefault((side, price), []).append(res.order_id)
        self._record(s, eng, res, out)

    def _withdraw(
        self,
        s: _BookState,
        eng: MatchingEngine,
        *,
        side: Side,
        limit: int,
        ts: int,
        out: list[tuple[BookKey, MatchResult]],
    ) -> None:
        """Requote background orders priced through `limit` (bids above it, asks below it):
        each is cancelled and a new one is placed behind the new touch, so a side keeps its
        depth while the price moves through it."""
        stale: list[int] = []
        for price, _size in eng.iter_levels(side):
            if (price <= limit) if side is Side.BUY else (price >= limit):
                break
            stale.extend(s.by_level.get((side, price), ()))
        depth_mean = s.flow.depth_mean_ticks
        for order_id in stale:
            if self._cancel(s, eng, order_id, ts, out):
                d = int(s.rng.expovariate(1.0 / depth_mean)) if depth_mean else 0
                price = limit - d if side is Side.BUY else limit + d
                self._add(s, eng, side=side, price=price, distance=d, ts=ts, out=out)

    def _cancel(
        self,
        s: _BookState,
        eng: MatchingEngine,
        order_id: int,
        ts: int,
        out: list[tuple[BookKey, MatchResult]],
    ) -> bool:
        """Cancel a background order; False when it was already gone (filled)."""
        cancelled = False
        if eng.is_open(order_id):
            res = eng.cancel(BACKGROUND_API_KEY, ts, order_id=order_id)
            if res.ok:
                out.append((s.key, res))
                cancelled = True
        self._forget(s, order_id)
        return cancelled

    def _forget(self, s: _BookState, order_id: int) -> None:
        where = s.where.pop(order_id, None)
        if where is None:
            return
        ids = s.by_level.get(where)
        if ids is not None:
            ids.remove(order_id)
            if not ids:
                del s.by_level[where]
        # Swap-remove from the flat list (order does not matter; it is sampled at random).
        orders = s.orders
        i = s.index.pop(order_id)
        last = orders.pop()
        if last != order_id:
            orders[i] = last
            s.index[last] = i

    def _record(
        self,
        s: _BookState,
        eng: MatchingEngine,
        res: MatchResult,
        out: list[tuple[BookKey, MatchResult]],
    ) -> None:
        if not res.ok:
            return
        for trade in res.trades:
            maker = trade.maker_order_id
            if maker in s.where and not eng.is_open(maker):
                self._forget(s, maker)
        if res.level_changes or res.trades or res.reports:
            out.append((s.key, res))
