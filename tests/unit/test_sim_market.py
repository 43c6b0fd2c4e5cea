"""Specification of the synthetic market: seeded, realistic touch, correlated venues, regimes."""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics

import pytest

from mm_daemon.config import SimConfig
from mm_daemon.core.types import Instrument, Liquidity, OrderType, Side
from mm_daemon.sim.market import (
    PERP_VENUE,
    SPOT_VENUE,
    MarketParams,
    SyntheticMarket,
    VenueFlowParams,
    build_engines,
    default_instruments,
    params_from_config,
)
from mm_daemon.sim.matching import BACKGROUND_API_KEY, MatchingEngine

SECOND = 1_000_000_000


def run_market(
    params: MarketParams, seconds: int, seed: int = 3, sample_every_s: float = 1.0
) -> tuple[SyntheticMarket, dict[str, MatchingEngine], dict[str, list[float]], list[float]]:
    """Run both default venues; sample each venue's mid and the latent price periodically."""
    instruments = default_instruments()
    engines = build_engines(instruments)
    market = SyntheticMarket(params, instruments, seed)
    mids: dict[str, list[float]] = {v: [] for v in instruments}
    latent: list[float] = []
    step = round(sample_every_s * SECOND)
    for t in range(step, seconds * SECOND + 1, step):
        market.advance(engines, t)
        for venue, eng in engines.items():
            bid, ask = eng.best_bid(), eng.best_ask()
            assert bid is not None
            assert ask is not None
            mids[venue].append((bid[0] + ask[0]) / 2 * instruments[venue].tick_size)
        latent.append(market.latent_price())
    return market, engines, mids, latent


def stream_signature(seed: int, chunks: list[int]) -> list[tuple[object, ...]]:
    instruments = default_instruments()
    engines = build_engines(instruments)
    market = SyntheticMarket(MarketParams(), instruments, seed)
    out: list[tuple[object, ...]] = []
    for until in chunks:
        for venue, res in market.advance(engines, until):
            out.append((venue, res.update_id, tuple(res.level_changes), tuple(res.trades)))
    return out


def log_returns(xs: list[float]) -> list[float]:
    return [math.log(b / a) for a, b in itertools.pairwise(xs)]


def test_same_seed_gives_the_same_stream() -> None:
    chunks = [SECOND * k for k in range(1, 4)]
    first = stream_signature(11, chunks)
    assert len(first) > 1000
    assert stream_signature(11, chunks) == first


def test_stream_does_not_depend_on_how_time_is_chunked() -> None:
    coarse = stream_signature(11, [3 * SECOND])
    fine = stream_signature(11, [k * 7_000_000 for k in range(1, 429)] + [3 * SECOND])
    assert fine == coarse


def test_different_seeds_give_different_streams() -> None:
    chunks = [2 * SECOND]
    assert stream_signature(11, chunks) != stream_signature(12, chunks)


def test_spot_spread_is_one_or_two_ticks_most_of_the_time() -> None:
    instruments = default_instruments()
    engines = build_engines(instruments)
    market = SyntheticMarket(MarketParams(), instruments, 5)
    tight = 0
    samples = 0
    for k in range(1, 601):
        market.advance(engines, k * 100_000_000)
        bid, ask = engines[SPOT_VENUE].best_bid(), engines[SPOT_VENUE].best_ask()
        assert bid is not None
        assert ask is not None
        assert ask[0] > bid[0]
        samples += 1
        tight += ask[0] - bid[0] <= 2
    assert tight / samples > 0.8


def test_book_holds_more_size_further_from_the_touch() -> None:
    _market, engines, _mids, _latent = run_market(MarketParams(), 20)
    bids, asks, _ = engines[SPOT_VENUE].depth(0)
    near = [size for _p, size in bids[:10] + asks[:10]]
    best_bid, best_ask = bids[0][0], asks[0][0]
    far = [s for p, s in bids if best_bid - p > 300] + [s for p, s in asks if p - best_ask > 300]
    assert len(far) >= 10
    assert statistics.median(far) > statistics.median(near)


def test_top_twenty_levels_are_always_present_on_both_sides() -> None:
    _market, engines, _mids, _latent = run_market(MarketParams(), 10)
    for eng in engines.values():
        bids, asks, _ = eng.depth(20)
        assert len(bids) == 20
        assert len(asks) == 20


@pytest.mark.slow
def test_venue_return_correlation_and_basis_match_the_configuration() -> None:
    params = MarketParams()
    _market, _engines, mids, _latent = run_market(params, 180)
    spot, perp = mids[SPOT_VENUE], mids[PERP_VENUE]
    corr = statistics.correlation(log_returns(spot), log_returns(perp))
    assert abs(corr - params.return_correlation) < 0.1
    basis_bps = [(p / s - 1.0) * 1e4 for s, p in zip(spot, perp, strict=True)]
    assert statistics.mean(basis_bps) == pytest.approx(-3.7, abs=0.3)
    assert statistics.stdev(basis_bps) == pytest.approx(params.basis_std_bps, abs=0.2)


@pytest.mark.slow
def test_a_lower_configured_correlation_is_honoured() -> None:
    params = MarketParams(return_correlation=0.6)
    _market, _engines, mids, _latent = run_market(params, 180)
    corr = statistics.correlation(log_returns(mids[SPOT_VENUE]), log_returns(mids[PERP_VENUE]))
    assert abs(corr - 0.6) < 0.1


def test_trending_regime_drifts_in_the_trend_direction() -> None:
    params = MarketParams(regime="trending", trend_drift_bps_per_s=2.0)
    _market, _engines, mids, latent = run_market(params, 30)
    assert latent[-1] > params.start_price * 1.004
    assert mids[SPOT_VENUE][-1] > mids[SPOT_VENUE][0] * 1.004


def test_flash_crash_drops_then_partly_recovers() -> None:
    params = MarketParams(regime="flash_crash", crash_at_s=1.0, crash_recovery_s=5.0)
    _market, _engines, mids, latent = run_market(params, 12, sample_every_s=0.5)
    assert min(latent) < params.start_price * 0.96
    assert min(mids[SPOT_VENUE]) < params.start_price * 0.96
    assert latent[-1] > min(latent) * 1.02


def _quiet_venue() -> VenueFlowParams:
    return VenueFlowParams(
        add_rate_per_s=0.0,
        cancel_rate_per_s=0.0,
        refill_prob=0.0,
        informed_share=0.0,
        trade_rate_per_s=5.0,
        trade_decay_per_bps=1.0,
    )


def test_market_order_intensity_falls_with_distance_of_the_touch() -> None:
    base = default_instruments()[SPOT_VENUE]
    instruments = {v: dataclasses.replace(base, venue=v) for v in ("near", "far")}
    params = MarketParams(
        calm_sigma_bps=0.0,
        basis_std_bps=0.0,
        venues={"near": _quiet_venue(), "far": _quiet_venue()},
    )
    engines = build_engines(instruments)
    market = SyntheticMarket(params, instruments, 1)
    fair_ticks = round(params.start_price / base.tick_size)
    wall = 100_000_000  # 1,000 BTC: never consumed
    engines["near"].submit(
        BACKGROUND_API_KEY, Side.SELL, OrderType.LIMIT, wall, 0, price_ticks=fair_ticks + 1
    )
    far_ticks = fair_ticks + round(2.0e-4 * fair_ticks)  # 2 bps away
    engines["far"].submit(
        BACKGROUND_API_KEY, Side.SELL, OrderType.LIMIT, wall, 0, price_ticks=far_ticks
    )
    counts = {"near": 0, "far": 0}
    for venue, res in market.advance(engines, 200 * SECOND):
        counts[venue] += len(res.trades)
    # lambda = A exp(-k delta): about 5/s at the touch, 5 e^-2 = 0.68/s two bps away.
    assert counts["near"] == pytest.approx(1000, rel=0.15)
    assert counts["far"] / counts["near"] == pytest.approx(math.exp(-2.0), rel=0.3)


def test_client_order_at_the_touch_is_filled_by_background_flow_as_maker() -> None:
    instruments = default_instruments()
    engines = build_engines(instruments)
    market = SyntheticMarket(MarketParams(), instruments, 9)
    market.advance(engines, SECOND)
    eng = engines[PERP_VENUE]
    bid = eng.best_bid()
    assert bid is not None
    placed = eng.submit("client", Side.BUY, OrderType.LIMIT, 5, SECOND, price_ticks=bid[0])
    assert placed.ok
    fills = []
    for k in range(2, 120):
        for venue, res in market.advance(engines, k * SECOND):
            if venue == PERP_VENUE:
                fills += [r for r in res.reports if r.order_id == placed.order_id and r.last_lots]
        if fills and fills[-1].cum_lots == 5:
            break
    assert fills
    assert fills[-1].cum_lots == 5
    assert all(f.liquidity is Liquidity.MAKER for f in fills)


def _mean_markout_ticks(informed_share: float) -> float:
    """Mean of (spot fair at the end of the trade's second - price) x aggressor sign."""
    instruments = default_instruments()
    venues = dict(MarketParams().venues)
    venues[SPOT_VENUE] = dataclasses.replace(venues[SPOT_VENUE], informed_share=informed_share)
    market = SyntheticMarket(MarketParams(venues=venues), instruments, 4)
    engines = build_engines(instruments)
    markouts: list[float] = []
    for k in range(1, 31):
        trades = [
            t
            for v, res in market.advance(engines, k * SECOND)
            if v == SPOT_VENUE
            for t in res.trades
        ]
        fair = market.venue_fair(SPOT_VENUE) / instruments[SPOT_VENUE].tick_size
        markouts += [(fair - t.price_ticks) * int(t.aggressor) for t in trades]
    assert len(markouts) > 100
    return statistics.mean(markouts)


def test_informed_flow_trades_toward_the_future_price() -> None:
    informed = _mean_markout_ticks(0.8)
    uninformed = _mean_markout_ticks(0.0)
    assert informed > 0
    assert informed > uninformed + 20  # ticks; 1 s of calm volatility is about 600


def test_params_from_config_maps_regime_and_start_price() -> None:
    cfg = SimConfig(regime="volatile", start_price_quote=3000.0)
    params = params_from_config(cfg)
    assert params.regime == "volatile"
    assert params.start_price == 3000.0


def test_default_instruments_carry_the_configured_fees() -> None:
    cfg = SimConfig(spot_taker_fee_bps=7.5, perp_maker_fee_bps=-0.5)
    instruments: dict[str, Instrument] = default_instruments(cfg)
    assert instruments[SPOT_VENUE].taker_fee_rate == pytest.approx(7.5e-4)
    assert instruments[PERP_VENUE].maker_fee_rate == pytest.approx(-0.5e-4)
    assert instruments[SPOT_VENUE].tick_size == 0.01
    assert instruments[PERP_VENUE].lot_size == 0.001


def test_mixed_regime_switches_between_regimes() -> None:
    instruments = default_instruments()
    engines = build_engines(instruments)
    market = SyntheticMarket(MarketParams(regime="mixed", mixed_dwell_s=1.0), instruments, 2)
    seen = set()
    for k in range(1, 41):
        market.advance(engines, k * 250_000_000)
        seen.add(market.regime)
    assert len(seen) >= 3
