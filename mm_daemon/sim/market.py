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
- The background makers quote around the fair price as they last requoted it, not as it is
  now: they requote when the asset's latent price has moved more than `requote_bps` since
  their last requote, or the first asset's has (every book of the asset at once, so its
  venues move together, and other assets follow the first), or a book's basis has moved
  twice that far (that book alone). Between requotes the touch stays where it was, as
  Binance's does (see `MarketParams.requote_bps`); flow still sees the true fair.
- Background quotes on the wrong side of that price are requoted behind the new touch; random
  background orders are cancelled at a constant hazard; new ones are added at exponentially
  distributed distances from the touch with sizes growing with distance; when the touch moves
  away from the fair price, the order at the old touch is requoted at the new one.
- Short-lived makers join the touch (its best price, never beyond the background's own touch)
  at `join_rate_per_s` a side and leave after an exponential life of `join_life_s`: Binance's
  touch is joined several times a second and holds about 2 BTC, most of it from orders that
  come and go (see `VenueFlowParams.join_rate_per_s`). A withdrawn joiner is not requoted.
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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mm_daemon.core.types import Instrument, OrderType, Side
from mm_daemon.sim.market_params import (
    BASE_REGIMES,
    BPS,
    MAX_BASIS_SPEED,
    NS,
    AssetParams,
    BookKey,
    MarketParams,
    VenueFlowParams,
)
from mm_daemon.sim.matching import BACKGROUND_API_KEY, MatchingEngine, MatchResult

if TYPE_CHECKING:
    pass

__all__ = ["SyntheticMarket"]

# A book requotes alone when its basis has moved this many requote thresholds. Measured with
# a 0.9 bps threshold: at one, 1 s returns of spot and perpetual mids correlated at 0.45 where
# 0.6 was configured (basis moves shown apart); with requotes of the whole asset only, at 0.74;
# at two, 0.61 (0.84-0.86 where 0.84 was configured). At 0.8 bps and two: 0.61-0.64 and
# 0.85-0.88.
BASIS_REQUOTE_THRESHOLDS = 2.0


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
    quoted_x: float = 0.0  # the value the background last requoted this asset's books at
    requote: bool = False  # it moved far enough from it this step: every book requotes


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
    joiners: list[int] = field(default_factory=list)  # short-lived orders joining the touch
    joiner_index: dict[int, int] = field(default_factory=dict)  # order id -> position
    seeded: bool = False
    anchor_ticks: float = 0.0  # the fair price the background last requoted at (ticks)
    quoted_basis: float = 0.0  # the basis then


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
        self._step_s = params.step_ns / NS
        # Requote thresholds in log-price units (latent price, and a book's basis alone).
        self._requote = params.requote_bps * BPS
        self._basis_requote = BASIS_REQUOTE_THRESHOLDS * self._requote
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
        half_var = (params.basis_std_bps * BPS) ** 2 / 2.0
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
            basis = flow.basis_mean_bps * BPS + rng.gauss(0.0, math.sqrt(half_var) * scale)
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
        return _AssetPath(asset.base, rng, asset.vol_scale, rho, x_gen=x0, x=x0, quoted_x=x0)

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
            choices = [r for r in BASE_REGIMES if r != self._regime]
            self._regime = self._regime_rng.choice(choices)
            self._regime_since_s = t
            if self._regime == "trending":
                self._trend_sign = 1.0 if self._regime_rng.random() < 0.5 else -1.0
        regime = self._regime
        x = driver.x_gen
        if regime == "calm":
            x += p.calm_sigma_bps * BPS * math.sqrt(dt) * rng.gauss(0.0, 1.0)
        elif regime == "volatile":
            x += p.volatile_sigma_bps * BPS * math.sqrt(dt) * rng.gauss(0.0, 1.0)
            if rng.random() < p.volatile_jump_rate_per_s * dt:
                x += rng.gauss(0.0, p.volatile_jump_std_bps * BPS)
        elif regime == "trending":
            sign = self._trend_sign if p.regime == "mixed" else 1.0
            x += sign * p.trend_drift_bps_per_s * BPS * dt
            x += p.trend_sigma_bps * BPS * math.sqrt(dt) * rng.gauss(0.0, 1.0)
        else:  # flash_crash
            x += p.crash_sigma_bps * BPS * math.sqrt(dt) * rng.gauss(0.0, 1.0)
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
            sigma = self._sigma_bps(regime) * BPS * math.sqrt(dt)
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
        requote = self._requote
        driver = self._driver
        driver_moved = abs(driver.x - driver.quoted_x) > requote
        for path in (driver, *self._others):
            # Other assets' makers requote when the first asset moves too, as they follow it.
            path.requote = driver_moved or abs(path.x - path.quoted_x) > requote
            if path.requote:
                path.quoted_x = path.x

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
        venues that much, theta is capped at `MAX_BASIS_SPEED` and the basis variance grows
        instead: the correlation target wins, as basis widens in volatile markets.
        """
        regime = self._current_regime
        cached = self._basis_cache.get(regime)
        if cached is not None:
            return cached
        p = self.params
        var_x = (self._sigma_bps(regime) * BPS) ** 2
        rho = min(max(p.return_correlation, 1e-3), 1.0)
        var_idio = var_x * (1.0 - rho) / rho  # per venue, of its 1 s basis change
        var_basis = self._basis_var
        floor = math.exp(-MAX_BASIS_SPEED)
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
        mean = flow.basis_mean_bps * BPS
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
            delta_bps = max(0.0, (touch[0] - fair_ticks) * int(side) / fair_ticks / BPS)
            lam = flow.trade_rate_per_s * math.exp(-flow.trade_decay_per_bps * delta_bps)
            for _ in range(_poisson(rng, lam * dt)):
                lots = self._trade_lots(s)
                res = eng.submit(BACKGROUND_API_KEY, side, OrderType.MARKET, lots, ts)
                self._record(s, eng, res, out)
        # 3. The background requotes after a large enough move; its quotes on the wrong side
        # of the requoted price are withdrawn.
        if s.asset.requote or abs(s.basis - s.quoted_basis) > self._basis_requote:
            s.anchor_ticks = fair_ticks
            s.quoted_basis = s.basis
        bid1 = math.floor(s.anchor_ticks - 0.5)
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
        # 6. Short-lived makers join the touch and leave it.
        if flow.join_rate_per_s > 0.0:
            self._join(s, eng, bid1=bid1, ask1=ask1, ts=ts, out=out)

    def _join(
        self,
        s: _BookState,
        eng: MatchingEngine,
        *,
        bid1: int,
        ask1: int,
        ts: int,
        out: list[tuple[BookKey, MatchResult]],
    ) -> None:
        """Makers that join the best price of a side (never beyond the background's own touch,
        which a stale order may be) and cancel after an exponential life."""
        flow, rng = s.flow, s.rng
        dt = self._step_s
        leaving = _poisson(rng, len(s.joiners) * dt / max(flow.join_life_s, dt))
        for _ in range(leaving):
            if not s.joiners:
                break
            self._cancel(s, eng, s.joiners[rng.randrange(len(s.joiners))], ts, out)
        for side in (Side.BUY, Side.SELL):
            for _ in range(_poisson(rng, flow.join_rate_per_s * dt)):
                best = eng.best_bid() if side is Side.BUY else eng.best_ask()
                if best is None:
                    break
                price = min(best[0], bid1) if side is Side.BUY else max(best[0], ask1)
                size = flow.join_size_base * math.exp(flow.size_sigma * rng.gauss(0.0, 1.0))
                self._add(s, eng, side=side, price=price, distance=0, ts=ts, out=out, size=size)

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
        s.anchor_ticks = fair_ticks
        s.quoted_basis = s.basis
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
        size: float | None = None,
    ) -> None:
        """A background limit order `distance` ticks behind the touch, sized for that distance;
        with `size` (base), one that joins the touch and leaves it soon (see `_join`)."""
        if price <= 0:
            return
        joiner = size is not None
        if size is None:
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
            if joiner:
                s.joiner_index[res.order_id] = len(s.joiners)
                s.joiners.append(res.order_id)
            else:
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
        depth while the price moves through it (a joiner just leaves: joiners come back at the
        new touch)."""
        stale: list[int] = []
        for price, _size in eng.iter_levels(side):
            if (price <= limit) if side is Side.BUY else (price >= limit):
                break
            stale.extend(s.by_level.get((side, price), ()))
        depth_mean = s.flow.depth_mean_ticks
        for order_id in stale:
            joiner = order_id in s.joiner_index
            if self._cancel(s, eng, order_id, ts, out) and not joiner:
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
        # Swap-remove from its flat list (order does not matter; it is sampled at random).
        if order_id in s.index:
            orders, index = s.orders, s.index
        else:
            orders, index = s.joiners, s.joiner_index
        i = index.pop(order_id)
        last = orders.pop()
        if last != order_id:
            orders[i] = last
            index[last] = i

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
