"""A synthetic run to exercise the report: the benchmark, the page tests and the README picture.

A seeded price path per market (diffusion with a few jumps, a drifting basis to the perpetual)
drives a simple maker: quotes at a fixed half spread skewed by inventory, maker fills arriving at
random with some adverse selection, a taker fill now and then, threshold hedges on the perpetual
and a pause for stale data. Every fill is booked by the core's own `Ledger` and markouts are
measured by its `MarkoutTracker`, so the snapshots' P&L, the fills and the summary agree the way
they do in a real run. It is not a model of any market.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass

from mm_daemon.core.instruments import BTC_USDT_PERP, BTC_USDT_SPOT
from mm_daemon.core.inventory import Ledger
from mm_daemon.core.markouts import Markout, MarkoutTracker
from mm_daemon.core.risk import RiskState
from mm_daemon.core.summary import build_run_summary, summary_to_dict
from mm_daemon.core.types import Fill, Instrument, Liquidity, Side
from mm_daemon.report.data import (
    FillRecord,
    HedgeRecord,
    MarketRun,
    Pnl,
    RunData,
    Snapshot,
    SweepResult,
    intervals_from_snapshots,
)

__all__ = ["DEFAULT_MARKETS", "SyntheticMarket", "synthetic_run", "synthetic_sweep"]

_NS = 1_000_000_000
_START_NS = 1_767_261_600 * _NS  # 2026-01-01 10:00 UTC


@dataclass(frozen=True, slots=True)
class SyntheticMarket:
    spot: Instrument
    perp: Instrument
    price: float
    order_size_base: float
    inventory_limit_base: float
    hedge_threshold_base: float
    half_spread_bps: float = 1.5
    volatility_bps_per_second: float = 1.2


_ETH_SPOT = dataclasses.replace(
    BTC_USDT_SPOT, symbol="ETH/USDT", exchange_symbol="ETHUSDT", base="ETH", lot_size=0.0001
)
_ETH_PERP = dataclasses.replace(
    BTC_USDT_PERP, symbol="ETH/USDT:USDT", exchange_symbol="ETHUSDT", base="ETH", tick_size=0.01
)

DEFAULT_MARKETS = (
    SyntheticMarket(
        spot=BTC_USDT_SPOT,
        perp=BTC_USDT_PERP,
        price=64_000.0,
        order_size_base=0.004,
        inventory_limit_base=0.1,
        hedge_threshold_base=0.04,
    ),
    SyntheticMarket(
        spot=dataclasses.replace(_ETH_SPOT, maker_fee_rate=0.0001),
        perp=_ETH_PERP,
        price=3_150.0,
        order_size_base=0.08,
        inventory_limit_base=2.0,
        hedge_threshold_base=0.8,
        half_spread_bps=2.0,
        volatility_bps_per_second=1.6,
    ),
)


def _config_text(markets: tuple[SyntheticMarket, ...]) -> str:
    lines = ["# synthetic run (mm_daemon.report.synthetic)", "mode: paper", "markets:"]
    for m in markets:
        lines += [
            f"  - maker: {{venue: {m.spot.venue}, symbol: {m.spot.symbol}}}",
            f"    hedge: {{venue: {m.perp.venue}, symbol: {m.perp.symbol}}}",
            f"    quoting: {{model: linear_skew, order_size_base: {m.order_size_base:g}, "
            f"spread_bps: {2 * m.half_spread_bps:g}}}",
            f"    inventory: {{limit_base: {m.inventory_limit_base:g}}}",
            f"    hedging: {{mode: threshold, threshold_base: {m.hedge_threshold_base:g}}}",
        ]
    return "\n".join(lines) + "\n"


class _MarketSim:
    """One market's run, second by second."""

    def __init__(self, spec: SyntheticMarket, rng: random.Random, fills_per_second: float) -> None:
        self.spec = spec
        self.rng = rng
        self.fill_rate = fills_per_second
        self.ledger = Ledger(spec.spot)
        self.ledger.add_instrument(spec.perp)
        self.tracker = MarkoutTracker()
        self.fair = spec.price
        self.basis = spec.price * 2e-4
        self.drift = 0.0  # adverse move owed to recent informed fills, quote per base
        self.snapshots: list[Snapshot] = []
        self.fills: list[FillRecord] = []
        self.hedges: list[HedgeRecord] = []
        self.markouts: list[Markout] = []
        self.unhedged_seconds = 0
        self.hedge_rejects = 0
        self.order_seq = 0

    def step_price(self) -> None:
        rng = self.rng
        sigma = self.spec.volatility_bps_per_second * 1e-4 * self.fair
        move = rng.gauss(0.0, sigma) + 0.3 * self.drift
        self.drift *= 0.7
        if rng.random() < 1 / 900:  # a jump every 15 minutes on average
            move += rng.choice((-1, 1)) * rng.uniform(8, 20) * sigma
        self.fair = max(self.fair + move, self.spec.price * 0.5)
        self.basis += 0.02 * (self.spec.price * 2e-4 - self.basis) + rng.gauss(0, 0.05 * sigma)

    def run_second(self, ts_ns: int, *, paused: bool, hedge_venue_down: bool) -> None:
        spec, rng, ledger = self.spec, self.rng, self.ledger
        spot, perp = spec.spot, spec.perp
        self.step_price()
        perp_fair = self.fair + self.basis
        ledger.on_fair_value(spot.venue, spot.symbol, self.fair)
        ledger.on_fair_value(perp.venue, perp.symbol, perp_fair)
        self.markouts += self.tracker.on_fair_value(ts_ns, self.fair)

        tick = spot.tick_size
        touch_half = tick * rng.choice((0.5, 0.5, 0.5, 1.5, 2.5))
        best_bid = round(self.fair - touch_half, 2)
        best_ask = round(self.fair + touch_half, 2)
        net = ledger.net_exposure_base
        limit = spec.inventory_limit_base
        reducing = abs(net) >= limit
        state = RiskState.REDUCING if reducing else RiskState.ACTIVE
        half = spec.half_spread_bps * 1e-4 * self.fair
        center = self.fair - 0.8 * half * net / limit  # inventory skew
        bid_quote: float | None = min(math.floor((center - half) / tick) * tick, best_bid)
        ask_quote: float | None = max(math.ceil((center + half) / tick) * tick, best_ask)
        if paused or (reducing and net > 0):
            bid_quote = None
        if paused or (reducing and net < 0):
            ask_quote = None

        fills_now = self._poisson(self.fill_rate)
        for _ in range(fills_now):
            offset = rng.randrange(1, _NS)
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            taker = rng.random() < 0.03
            if taker:  # we crossed the spread (a requote that lost its race)
                price: float | None = best_ask if side is Side.BUY else best_bid
            else:
                price = bid_quote if side is Side.BUY else ask_quote
            if price is None:  # that side is not quoted
                continue
            size = spec.order_size_base * rng.choice((0.25, 0.5, 1.0, 1.0, 1.0, 2.0))
            self._book(ts_ns + offset, spot, side, price, size, taker=taker, hedge=False)
            if rng.random() < 0.35:  # informed flow: the price follows the taker's side
                self.drift -= side * rng.uniform(0.5, 2.0) * half

        net = ledger.net_exposure_base
        if abs(net) > spec.hedge_threshold_base:
            self.unhedged_seconds += 1
            if hedge_venue_down:
                if (ts_ns // _NS) % 10 == 0:  # the hedger retries every 10 s
                    self._reject_hedge(ts_ns + _NS // 2, net)
            elif not paused:
                self._hedge(ts_ns + _NS // 2, net, perp_fair)

        self.snapshots.append(
            Snapshot(
                ts_ns=ts_ns,
                fair_value=round(self.fair, 4),
                best_bid=best_bid,
                best_ask=best_ask,
                bid_quote=None if bid_quote is None else round(bid_quote, 2),
                ask_quote=None if ask_quote is None else round(ask_quote, 2),
                position_base=ledger.position(spot.venue, spot.symbol).base,
                net_exposure_base=ledger.net_exposure_base,
                pnl=Pnl.from_mapping(ledger.pnl().as_floats()),
                risk_state=state,
                paused=paused,
            )
        )

    def _poisson(self, rate: float) -> int:
        threshold, count, product = math.exp(-rate), 0, self.rng.random()
        while product > threshold:
            count += 1
            product *= self.rng.random()
        return count

    def _hedge(self, ts_ns: int, net: float, perp_fair: float) -> None:
        perp = self.spec.perp
        side = Side.SELL if net > 0 else Side.BUY
        lots = perp.size_to_lots(abs(net))
        if lots < perp.min_size_lots:
            return
        slip_bps = self.rng.uniform(0.2, 3.0)
        price = perp_fair * (1 + side * slip_bps * 1e-4)
        price = perp.ticks_to_price(perp.price_to_ticks(price))
        size = perp.lots_to_size(lots)
        self._book(ts_ns, perp, side, price, size, taker=True, hedge=True)
        slippage = side * (price - perp_fair) / perp_fair * 1e4
        self.hedges.append(HedgeRecord(ts_ns, perp.venue, perp.symbol, side, size, slippage))

    def _reject_hedge(self, ts_ns: int, net: float) -> None:
        perp = self.spec.perp
        side = Side.SELL if net > 0 else Side.BUY
        self.hedge_rejects += 1
        self.hedges.append(HedgeRecord(ts_ns, perp.venue, perp.symbol, side, 0.0, None))

    def _book(
        self,
        ts_ns: int,
        instrument: Instrument,
        side: Side,
        price: float,
        size: float,
        *,
        taker: bool,
        hedge: bool,
    ) -> None:
        self.order_seq += 1
        liquidity = Liquidity.TAKER if taker else Liquidity.MAKER
        rate = instrument.taker_fee_rate if taker else instrument.maker_fee_rate
        price_ticks = instrument.price_to_ticks(price)
        size_lots = max(instrument.min_size_lots, instrument.size_to_lots(size))
        price = instrument.ticks_to_price(price_ticks)
        size = instrument.lots_to_base(size_lots)
        fill = Fill(
            venue=instrument.venue,
            symbol=instrument.symbol,
            ts_exchange_ns=ts_ns,
            ts_local_ns=ts_ns,
            client_order_id=f"{'hdg-' if hedge else 'q-'}{self.order_seq}",
            exchange_order_id=str(self.order_seq),
            trade_id=str(self.order_seq),
            side=side,
            price_ticks=price_ticks,
            size_lots=size_lots,
            fee_quote=round(price * size * rate, 8),
            liquidity=liquidity,
        )
        edge = self.ledger.on_fill(fill)
        if not hedge and liquidity is Liquidity.MAKER:
            self.tracker.on_fill(ts_ns, side, self.fair)
        self.fills.append(
            FillRecord(
                ts_ns=ts_ns,
                market=self.spec.spot.symbol,
                venue=instrument.venue,
                symbol=instrument.symbol,
                side=side,
                price=price,
                size_base=size,
                fee_quote=fill.fee_quote,
                liquidity=liquidity,
                is_hedge=hedge,
                spread_capture_quote=edge,
            )
        )

    def market_run(self, seconds: int) -> MarketRun:
        spec = self.spec
        summary = build_run_summary(self.ledger, self.tracker, None, float(seconds))
        slippages = [h.slippage_bps for h in self.hedges if h.slippage_bps is not None]
        summary = dataclasses.replace(
            summary,
            hedge_orders=len(self.hedges),
            hedge_rejects=self.hedge_rejects,
            hedge_mean_slippage_bps=sum(slippages) / len(slippages) if slippages else None,
            unhedged_exposure_seconds=float(self.unhedged_seconds),
        )
        return MarketRun(
            market=spec.spot.symbol,
            venue=spec.spot.venue,
            symbol=spec.spot.symbol,
            summary=summary,
            snapshots=tuple(self.snapshots),
            fills=tuple(self.fills),
            hedges=tuple(self.hedges),
            markouts=tuple(self.markouts),
            intervals=(),
            inventory_limit_base=spec.inventory_limit_base,
            hedge_threshold_base=spec.hedge_threshold_base,
            hedge_venue=spec.perp.venue,
            hedge_symbol=spec.perp.symbol,
        )


def synthetic_run(
    *,
    seconds: int = 3600,
    fills_per_market: int = 2500,
    markets: tuple[SyntheticMarket, ...] = DEFAULT_MARKETS,
    seed: int = 7,
    start_ns: int = _START_NS,
) -> RunData:
    """A paper run of `seconds` with about `fills_per_market` quoting fills per market.

    Each market pauses for stale data once, for a minute, two thirds into the run; the
    second market's hedge venue is down for ten minutes a third into it (its exposure then
    reaches the inventory limit and the market quotes only the reducing side).
    """
    runs: list[MarketRun] = []
    for index, spec in enumerate(markets):
        sim = _MarketSim(spec, random.Random(seed * 1000 + index), fills_per_market / seconds)
        pause_start = seconds * 2 // 3 + 97 * index
        pause = range(pause_start, pause_start + 60)
        outage = range(seconds // 3, seconds // 3 + 600) if index == 1 else range(0)
        for second in range(seconds):
            sim.run_second(
                start_ns + second * _NS, paused=second in pause, hedge_venue_down=second in outage
            )
        run = sim.market_run(seconds)
        intervals = tuple(
            dataclasses.replace(i, reason="stale market data") if i.kind == "paused" else i
            for i in intervals_from_snapshots(run.snapshots)
        )
        runs.append(dataclasses.replace(run, intervals=intervals))
    return RunData(
        mode="paper",
        instance="synthetic",
        started_ns=start_ns,
        ended_ns=start_ns + seconds * _NS,
        config_text=_config_text(markets),
        markets=tuple(runs),
        title="synthetic paper run",
    )


def synthetic_sweep(
    *,
    half_spreads_bps: tuple[float, ...] = (1.0, 1.5, 2.5),
    hedge_thresholds_base: tuple[float, ...] = (0.03, 0.06),
    seconds: int = 900,
    seed: int = 7,
) -> list[SweepResult]:
    """A sweep of the first default market over half spread x hedge threshold, one combination
    per pair, each on the same seeded price path; fills arrive less often on a wider spread."""
    results = []
    for half_spread in half_spreads_bps:
        for threshold in hedge_thresholds_base:
            spec = dataclasses.replace(
                DEFAULT_MARKETS[0], half_spread_bps=half_spread, hedge_threshold_base=threshold
            )
            run = synthetic_run(
                seconds=seconds,
                fills_per_market=round(seconds * 2 / 3 * 1.5 / half_spread),
                markets=(spec,),
                seed=seed,
            )
            market = run.markets[0]
            results.append(
                SweepResult(
                    values={
                        "quoting.spread_bps": f"{2 * half_spread:g}",
                        "hedging.threshold_base": f"{threshold:g}",
                    },
                    summary=summary_to_dict(market.summary),
                    pnl_series=tuple((s.ts_ns, s.pnl.total) for s in market.snapshots),
                )
            )
    return results
