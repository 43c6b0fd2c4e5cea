"""Synthetic market: a latent fair price driving background liquidity and flow on several venues.

Pure and seeded: the same seed and parameters give the same stream of engine calls, whatever
the chunks `advance` is called with, because the event clock steps on a fixed grid from
`start_ns`. Nothing here reads a clock or does I/O.

The model, per step of `step_ns`:
- Latent log price x: Gaussian diffusion with drift and Poisson jumps, parameters by regime
  (calm, volatile, trending, flash_crash; mixed switches between them at random).
- Each venue's fair price is exp(x + b_v), b_v a mean-reverting (Ornstein-Uhlenbeck) basis.
  The OU speed is chosen so that 1 s returns of two venues correlate as configured:
  corr = var_x / (var_x + var_b1s), with var_b1s = 2 V (1 - exp(-theta)) and V the stationary
  basis variance (half of the configured perp-minus-spot basis variance per venue). When the
  regime is too volatile for that basis variance to decorrelate the venues enough, the basis
  speed is capped and its variance grows instead: the correlation target wins, and the basis
  widens in volatile markets.
- Informed flow knows the venue's fair `informed_lead_s` ahead and sends IOC orders toward it
  when the touch is on the wrong side of it.
- Uninformed market orders arrive per side as a Poisson process of intensity
  lambda = A exp(-k delta), delta the distance (bps) of that side's touch from the venue fair,
  with Pareto-distributed sizes.
- Background quotes on the wrong side of the fair are requoted behind the new touch; random
  background orders are cancelled at a constant hazard; new ones are added at exponentially
  distributed distances from the touch with sizes growing with distance; when the touch moves
  away from the fair price, the order at the old touch is requoted at the new one.
All of it goes through `MatchingEngine` with the background account, so client orders resting
in the same book are filled by this flow in queue order.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from mm_daemon.core.instruments import BTC_USDT_PERP, BTC_USDT_SPOT
from mm_daemon.core.types import Instrument, InstrumentKind, OrderType, Side
from mm_daemon.sim.matching import BACKGROUND_API_KEY, Accounts, MatchingEngine, MatchResult

if TYPE_CHECKING:
    from mm_daemon.config import SimConfig

__all__ = [
    "PERP_VENUE",
    "SPOT_VENUE",
    "MarketParams",
    "Regime",
    "SyntheticMarket",
    "VenueFlowParams",
    "build_engines",
    "default_instruments",
    "params_from_config",
]

SPOT_VENUE = "sim-spot"
PERP_VENUE = "sim-perp"
_BPS = 1e-4
_NS = 1_000_000_000
_MAX_BASIS_SPEED = 2.0  # per second: the fastest the basis mean-reverts

Regime = Literal["calm", "volatile", "trending", "flash_crash", "mixed"]
_BASE_REGIMES: tuple[str, ...] = ("calm", "volatile", "trending", "flash_crash")


@dataclass(frozen=True, slots=True)
class VenueFlowParams:
    """Liquidity and flow of one venue. Sizes in base units, distances in ticks."""

    basis_mean_bps: float = 0.0  # venue fair minus latent, long-run mean
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


@dataclass(frozen=True, slots=True)
class MarketParams:
    """Everything the synthetic market draws from; volatilities are bps per sqrt(second)."""

    regime: Regime = "calm"
    start_price: float = 60_000.0
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
    return_correlation: float = 0.84  # of venue returns at 1 s
    basis_std_bps: float = 0.65  # of one venue's fair minus another's
    venues: Mapping[str, VenueFlowParams] = field(default_factory=_default_venues)

    def venue(self, name: str) -> VenueFlowParams:
        return self.venues.get(name) or VenueFlowParams()


def params_from_config(cfg: SimConfig) -> MarketParams:
    """Market parameters for the simulator config (regime and start price; fees live on the
    instruments, see `default_instruments`)."""
    return MarketParams(regime=cfg.regime, start_price=cfg.start_price_quote)


def default_instruments(cfg: SimConfig | None = None) -> dict[str, Instrument]:
    """BTC/USDT spot on sim-spot and the BTC/USDT perpetual on sim-perp, fees from `cfg`."""
    if cfg is None:
        return {SPOT_VENUE: BTC_USDT_SPOT, PERP_VENUE: BTC_USDT_PERP}
    return {
        SPOT_VENUE: replace(
            BTC_USDT_SPOT,
            maker_fee_rate=cfg.spot_maker_fee_bps * _BPS,
            taker_fee_rate=cfg.spot_taker_fee_bps * _BPS,
        ),
        PERP_VENUE: replace(
            BTC_USDT_PERP,
            maker_fee_rate=cfg.perp_maker_fee_bps * _BPS,
            taker_fee_rate=cfg.perp_taker_fee_bps * _BPS,
        ),
    }


def build_engines(
    instruments: Mapping[str, Instrument],
    *,
    starting_base: float = 1.0,
    starting_quote: float = 100_000.0,
) -> dict[str, MatchingEngine]:
    """One engine per venue with an `Accounts` giving each new API key the starting balances
    (spot: base and quote; perpetual: quote margin)."""
    engines: dict[str, MatchingEngine] = {}
    for venue, inst in instruments.items():
        balances = (
            {inst.base: starting_base, inst.quote: starting_quote}
            if inst.kind is InstrumentKind.SPOT
            else {inst.quote: starting_quote}
        )
        engines[venue] = MatchingEngine(inst, Accounts(inst.kind, balances))
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
class _VenueState:
    venue: str
    inst: Instrument
    flow: VenueFlowParams
    rng: random.Random
    basis: float  # log units
    trade_min_lots: int
    orders: list[int] = field(default_factory=list)  # background order ids (some may be done)
    index: dict[int, int] = field(default_factory=dict)  # order id -> position in `orders`
    where: dict[int, tuple[Side, int]] = field(default_factory=dict)
    by_level: dict[tuple[Side, int], list[int]] = field(default_factory=dict)
    seeded: bool = False


class SyntheticMarket:
    """Drives one `MatchingEngine` per venue from a shared latent price; see the module doc."""

    def __init__(
        self,
        params: MarketParams,
        instruments: Mapping[str, Instrument],
        seed: int,
        *,
        start_ns: int = 0,
    ) -> None:
        self.params = params
        self.seed = seed
        self.start_ns = start_ns
        self._step_s = params.step_ns / _NS
        self._rng = random.Random(f"{seed}:latent")
        self._regime_rng = random.Random(f"{seed}:regime")
        self._x0 = math.log(params.start_price)
        self._regime: str = "calm" if params.regime == "mixed" else str(params.regime)
        self._regime_since_s = 0.0
        self._trend_sign = 1.0
        self._current_regime: str = self._regime
        # Latent path, buffered far enough ahead for informed flow to look into the future.
        lead_s = max((params.venue(v).informed_lead_s for v in instruments), default=0.0)
        self._lead_steps = max(0, round(lead_s / self._step_s))
        self._path: deque[float] = deque()
        self._path_regime: deque[str] = deque()
        self._gen_step = 0  # index of the next latent step to generate
        self._x_gen = self._x0
        self._crash_anchor = self._x0
        self._step = 0  # index of the current (last processed) step
        self._x = self._x0
        half_var = (params.basis_std_bps * _BPS) ** 2 / 2.0
        self._basis_var = half_var
        self._basis_cache: dict[str, tuple[float, float]] = {}
        self._venues: dict[str, _VenueState] = {}
        for venue, inst in instruments.items():
            flow = params.venue(venue)
            vrng = random.Random(f"{seed}:{venue}")
            basis = flow.basis_mean_bps * _BPS + vrng.gauss(0.0, math.sqrt(half_var))
            self._venues[venue] = _VenueState(
                venue=venue,
                inst=inst,
                flow=flow,
                rng=vrng,
                basis=basis,
                trade_min_lots=inst.min_size_lots,
            )
        for _ in range(self._lead_steps + 1):
            self._generate()
        self._path.popleft()
        self._path_regime.popleft()

    # -- public ----------------------------------------------------------------------------

    @property
    def now_ns(self) -> int:
        """Time of the last processed step."""
        return self.start_ns + self._step * self.params.step_ns

    @property
    def regime(self) -> str:
        """The regime in force at the current step."""
        return self._current_regime

    def latent_price(self, ts_ns: int | None = None) -> float:
        """The latent fair price at the last processed step at or before `ts_ns` (the market
        only knows the present: a later `ts_ns` gives the current value)."""
        del ts_ns
        return math.exp(self._x)

    def venue_fair(self, venue: str) -> float:
        """A venue's own fair price now: latent price times its basis."""
        return math.exp(self._x + self._venues[venue].basis)

    def advance(
        self, engines: Mapping[str, MatchingEngine], until_ns: int
    ) -> list[tuple[str, MatchResult]]:
        """Run every step up to `until_ns`; returns each engine call that did something,
        in order, with its venue."""
        out: list[tuple[str, MatchResult]] = []
        step_ns = self.params.step_ns
        for state in self._venues.values():
            if not state.seeded:
                self._seed_book(state, engines[state.venue], self.now_ns, out)
        while self.start_ns + (self._step + 1) * step_ns <= until_ns:
            self._step += 1
            ts = self.start_ns + self._step * step_ns
            self._advance_latent()
            for state in self._venues.values():
                self._step_venue(state, engines[state.venue], ts, out)
        return out

    # -- latent price ----------------------------------------------------------------------

    def _generate(self) -> None:
        """Append one step of the latent path (regime switching included)."""
        p = self.params
        dt = self._step_s
        t = self._gen_step * dt
        rng = self._rng
        if (
            p.regime == "mixed"
            and self._gen_step > 0
            and self._regime_rng.random() < dt / p.mixed_dwell_s
        ):
            choices = [r for r in _BASE_REGIMES if r != self._regime]
            self._regime = self._regime_rng.choice(choices)
            self._regime_since_s = t
            self._crash_anchor = self._x_gen
            if self._regime == "trending":
                self._trend_sign = 1.0 if self._regime_rng.random() < 0.5 else -1.0
        regime = self._regime
        x = self._x_gen
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
        self._x_gen = x
        self._path.append(x)
        self._path_regime.append(regime)
        self._gen_step += 1

    def _advance_latent(self) -> None:
        self._generate()
        self._x = self._path.popleft()
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
        """(exp(-theta dt), stationary variance) of each venue's OU basis this step.

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

    # -- venues ----------------------------------------------------------------------------

    def _step_venue(
        self,
        s: _VenueState,
        eng: MatchingEngine,
        ts: int,
        out: list[tuple[str, MatchResult]],
    ) -> None:
        flow = s.flow
        rng = s.rng
        dt = self._step_s
        decay, var_basis = self._basis_process()
        mean = flow.basis_mean_bps * _BPS
        noise = math.sqrt(var_basis * (1.0 - decay * decay))
        s.basis = mean + (s.basis - mean) * decay + noise * rng.gauss(0.0, 1.0)
        tick = s.inst.tick_size
        fair_ticks = math.exp(self._x + s.basis) / tick
        future_x = self._path[-1] if self._path else self._x
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
        s: _VenueState,
        eng: MatchingEngine,
        *,
        side: Side,
        target: int,
        best: tuple[int, int] | None,
        ts: int,
        out: list[tuple[str, MatchResult]],
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
        s: _VenueState,
        eng: MatchingEngine,
        ts: int,
        out: list[tuple[str, MatchResult]],
    ) -> None:
        """Fill an empty book to its steady state (adds / cancel hazard orders)."""
        s.seeded = True
        flow = s.flow
        fair_ticks = math.exp(self._x + s.basis) / s.inst.tick_size
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
        s: _VenueState,
        eng: MatchingEngine,
        future_ticks: float,
        ts: int,
        out: list[tuple[str, MatchResult]],
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

    def _trade_lots(self, s: _VenueState) -> int:
        flow = s.flow
        size = flow.trade_size_min_base * s.rng.paretovariate(flow.trade_size_alpha)
        size = min(size, flow.trade_size_max_base)
        base_per_lot = s.inst.lot_size * s.inst.contract_size_base
        return max(s.trade_min_lots, round(size / base_per_lot))

    def _add(
        self,
        s: _VenueState,
        eng: MatchingEngine,
        *,
        side: Side,
        price: int,
        distance: int,
        ts: int,
        out: list[tuple[str, MatchResult]],
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
        s: _VenueState,
        eng: MatchingEngine,
        *,
        side: Side,
        limit: int,
        ts: int,
        out: list[tuple[str, MatchResult]],
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
        s: _VenueState,
        eng: MatchingEngine,
        order_id: int,
        ts: int,
        out: list[tuple[str, MatchResult]],
    ) -> bool:
        """Cancel a background order; False when it was already gone (filled)."""
        cancelled = False
        if eng.is_open(order_id):
            res = eng.cancel(BACKGROUND_API_KEY, ts, order_id=order_id)
            if res.ok:
                out.append((s.venue, res))
                cancelled = True
        self._forget(s, order_id)
        return cancelled

    def _forget(self, s: _VenueState, order_id: int) -> None:
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
        s: _VenueState,
        eng: MatchingEngine,
        res: MatchResult,
        out: list[tuple[str, MatchResult]],
    ) -> None:
        if not res.ok:
            return
        for trade in res.trades:
            maker = trade.maker_order_id
            if maker in s.where and not eng.is_open(maker):
                self._forget(s, maker)
        if res.level_changes or res.trades or res.reports:
            out.append((s.venue, res))
