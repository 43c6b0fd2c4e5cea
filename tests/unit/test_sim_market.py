"""Specification of the synthetic market: seeded, realistic touch, correlated venues and assets,
regimes."""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics

import pytest

from mm_daemon.config import SimConfig
from mm_daemon.core.types import Instrument, InstrumentKind, Liquidity, OrderType, Side
from mm_daemon.sim.market import SyntheticMarket
from mm_daemon.sim.market_params import (
    PERP_VENUE,
    SPOT_VENUE,
    AssetParams,
    BookKey,
    MarketParams,
    VenueFlowParams,
    assets_from_config,
    build_engines,
    default_instruments,
    params_from_config,
    starting_balances,
)
from mm_daemon.sim.matching import BACKGROUND_API_KEY, MatchingEngine

SECOND = 1_000_000_000
SPOT_BTC: BookKey = (SPOT_VENUE, "BTCUSDT")
SPOT_ETH: BookKey = (SPOT_VENUE, "ETHUSDT")
PERP_BTC: BookKey = (PERP_VENUE, "BTCUSDT")
PERP_ETH: BookKey = (PERP_VENUE, "ETHUSDT")


def run_market(
    params: MarketParams,
    seconds: int,
    seed: int = 3,
    sample_every_s: float = 1.0,
    instruments: list[Instrument] | None = None,
) -> tuple[SyntheticMarket, dict[BookKey, MatchingEngine], dict[BookKey, list[float]], list[float]]:
    """Run the default books (BTC and ETH on both venues); sample each book's mid and the
    first asset's latent price periodically."""
    instruments = instruments if instruments is not None else default_instruments()
    engines = build_engines(instruments)
    market = SyntheticMarket(params, instruments, seed)
    mids: dict[BookKey, list[float]] = {key: [] for key in engines}
    latent: list[float] = []
    step = round(sample_every_s * SECOND)
    for t in range(step, seconds * SECOND + 1, step):
        market.advance(engines, t)
        for key, eng in engines.items():
            bid, ask = eng.best_bid(), eng.best_ask()
            assert bid is not None
            assert ask is not None
            mids[key].append((bid[0] + ask[0]) / 2 * eng.instrument.tick_size)
        latent.append(market.latent_price())
    return market, engines, mids, latent


def stream_signature(
    seed: int, chunks: list[int], instruments: list[Instrument] | None = None
) -> list[tuple[object, ...]]:
    instruments = instruments if instruments is not None else default_instruments()
    engines = build_engines(instruments)
    market = SyntheticMarket(MarketParams(), instruments, seed)
    out: list[tuple[object, ...]] = []
    for until in chunks:
        for key, res in market.advance(engines, until):
            out.append((key, res.update_id, tuple(res.level_changes), tuple(res.trades)))
    return out


def btc_only() -> list[Instrument]:
    return [inst for inst in default_instruments() if inst.base == "BTC"]


def log_returns(xs: list[float]) -> list[float]:
    return [math.log(b / a) for a, b in itertools.pairwise(xs)]


def test_same_seed_gives_the_same_stream() -> None:
    chunks = [SECOND * k for k in range(1, 4)]
    first = stream_signature(11, chunks)
    assert len(first) > 1000
    assert {key for key, *_ in first} == {SPOT_BTC, SPOT_ETH, PERP_BTC, PERP_ETH}
    assert stream_signature(11, chunks) == first


def test_listing_other_assets_leaves_the_first_assets_stream_unchanged() -> None:
    chunks = [SECOND * k for k in range(1, 4)]
    alone = stream_signature(11, chunks, btc_only())
    beside_eth = [entry for entry in stream_signature(11, chunks) if entry[0][1] == "BTCUSDT"]
    assert beside_eth == alone


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
        for key in (SPOT_BTC, SPOT_ETH):
            bid, ask = engines[key].best_bid(), engines[key].best_ask()
            assert bid is not None
            assert ask is not None
            assert ask[0] > bid[0]
            samples += 1
            tight += ask[0] - bid[0] <= 2
    assert tight / samples > 0.8


def test_book_holds_more_size_further_from_the_touch() -> None:
    instruments = default_instruments()
    engines = build_engines(instruments)
    market = SyntheticMarket(MarketParams(), instruments, 3)
    ratios = []
    for t in range(5, 61, 5):  # one snapshot is a handful of orders: look at twelve
        market.advance(engines, t * SECOND)
        bids, asks, _ = engines[SPOT_BTC].depth(0)
        near = [size for _p, size in bids[:10] + asks[:10]]
        best_bid, best_ask = bids[0][0], asks[0][0]
        far = [s for p, s in bids if best_bid - p > 300]
        far += [s for p, s in asks if p - best_ask > 300]
        assert len(far) >= 10
        ratios.append(statistics.median(far) / statistics.median(near))
    assert statistics.median(ratios) > 1.2


def _mid_changes_per_100ms(params: MarketParams, seconds: int) -> float:
    _market, _engines, mids, _latent = run_market(
        params, seconds, sample_every_s=0.1, instruments=btc_only()
    )
    spot = mids[SPOT_BTC]
    return sum(b != a for a, b in itertools.pairwise(spot)) / (len(spot) - 1)


def test_the_touch_stays_between_requotes_as_binances_does() -> None:
    # Binance's BTCUSDT spot mid changed in 11 % of 100 ms intervals (recorded captures).
    assert 0.05 < _mid_changes_per_100ms(MarketParams(), 120) < 0.2
    # A touch that follows the fair price at every step moves in nearly every interval.
    assert _mid_changes_per_100ms(MarketParams(requote_bps=0.0), 30) > 0.9


def test_an_assets_venues_requote_together() -> None:
    _market, _engines, mids, _latent = run_market(
        MarketParams(), 60, sample_every_s=0.05, instruments=btc_only()
    )
    moves = [
        (b != a, d != c)
        for (a, b), (c, d) in zip(
            itertools.pairwise(mids[SPOT_BTC]), itertools.pairwise(mids[PERP_BTC]), strict=True
        )
    ]
    spot_moves = sum(s for s, _p in moves)
    both = sum(s and p for s, p in moves)
    assert spot_moves > 30
    assert both / spot_moves > 0.7


def test_top_twenty_levels_are_always_present_on_both_sides() -> None:
    _market, engines, _mids, _latent = run_market(MarketParams(), 10)
    for eng in engines.values():
        bids, asks, _ = eng.depth(20)
        assert len(bids) == 20
        assert len(asks) == 20


@pytest.mark.slow
def test_venue_return_correlation_and_basis_match_the_configuration() -> None:
    params = MarketParams()
    _market, _engines, mids, _latent = run_market(params, 180, instruments=btc_only())
    spot, perp = mids[SPOT_BTC], mids[PERP_BTC]
    corr = statistics.correlation(log_returns(spot), log_returns(perp))
    assert abs(corr - params.return_correlation) < 0.1
    basis_bps = [(p / s - 1.0) * 1e4 for s, p in zip(spot, perp, strict=True)]
    assert statistics.mean(basis_bps) == pytest.approx(-3.7, abs=0.3)
    assert statistics.stdev(basis_bps) == pytest.approx(params.basis_std_bps, abs=0.2)


@pytest.mark.slow
def test_a_lower_configured_correlation_is_honoured() -> None:
    params = MarketParams(return_correlation=0.6)
    _market, _engines, mids, _latent = run_market(params, 180, instruments=btc_only())
    corr = statistics.correlation(log_returns(mids[SPOT_BTC]), log_returns(mids[PERP_BTC]))
    assert abs(corr - 0.6) < 0.1


@pytest.mark.slow
def test_eth_returns_correlate_with_btcs_as_recorded_on_every_venue() -> None:
    params = MarketParams()
    _market, _engines, mids, _latent = run_market(params, 300, seed=5)
    target = params.asset("ETH").return_correlation
    for btc, eth in ((SPOT_BTC, SPOT_ETH), (PERP_BTC, PERP_ETH)):
        corr = statistics.correlation(log_returns(mids[btc]), log_returns(mids[eth]))
        assert abs(corr - target) < 0.1, (btc[0], corr)


def test_an_asset_configured_uncorrelated_moves_on_its_own() -> None:
    params = MarketParams(
        assets=(AssetParams("BTC", 60_000.0), AssetParams("ETH", 2_600.0, return_correlation=0.0))
    )
    _market, _engines, mids, _latent = run_market(params, 300, seed=5)
    corr = statistics.correlation(log_returns(mids[SPOT_BTC]), log_returns(mids[SPOT_ETH]))
    assert abs(corr) < 0.25


def test_eth_basis_follows_the_recorded_one() -> None:
    _market, _engines, mids, _latent = run_market(MarketParams(), 60, seed=5)
    basis_bps = [(p / s - 1.0) * 1e4 for s, p in zip(mids[SPOT_ETH], mids[PERP_ETH], strict=True)]
    assert statistics.mean(basis_bps) == pytest.approx(-4.39, abs=0.4)


def test_trending_regime_drifts_in_the_trend_direction() -> None:
    params = MarketParams(regime="trending", trend_drift_bps_per_s=2.0)
    _market, _engines, mids, latent = run_market(params, 30)
    assert latent[-1] > params.start_price * 1.004
    assert mids[SPOT_BTC][-1] > mids[SPOT_BTC][0] * 1.004
    # ETH follows BTC's drift at its correlation (about 0.68 / 0.84 of it in the latent).
    assert mids[SPOT_ETH][-1] > mids[SPOT_ETH][0] * 1.002


def test_flash_crash_drops_then_partly_recovers() -> None:
    params = MarketParams(regime="flash_crash", crash_at_s=1.0, crash_recovery_s=5.0)
    _market, _engines, mids, latent = run_market(
        params, 12, sample_every_s=0.5, instruments=btc_only()
    )
    assert min(latent) < params.start_price * 0.96
    assert min(mids[SPOT_BTC]) < params.start_price * 0.96
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
    base = default_instruments()[0]
    instruments = [dataclasses.replace(base, venue=v) for v in ("near", "far")]
    params = MarketParams(
        calm_sigma_bps=0.0,
        basis_std_bps=0.0,
        venues={"near": _quiet_venue(), "far": _quiet_venue()},
    )
    engines = build_engines(instruments)
    market = SyntheticMarket(params, instruments, 1)
    fair_ticks = round(params.start_price / base.tick_size)
    wall = 100_000_000  # 1,000 BTC: never consumed
    engines[("near", "BTCUSDT")].submit(
        BACKGROUND_API_KEY, Side.SELL, OrderType.LIMIT, wall, 0, price_ticks=fair_ticks + 1
    )
    far_ticks = fair_ticks + round(2.0e-4 * fair_ticks)  # 2 bps away
    engines[("far", "BTCUSDT")].submit(
        BACKGROUND_API_KEY, Side.SELL, OrderType.LIMIT, wall, 0, price_ticks=far_ticks
    )
    counts = {"near": 0, "far": 0}
    for (venue, _symbol), res in market.advance(engines, 200 * SECOND):
        counts[venue] += len(res.trades)
    # lambda = A exp(-k delta): about 5/s at the touch, 5 e^-2 = 0.68/s two bps away.
    assert counts["near"] == pytest.approx(1000, rel=0.15)
    assert counts["far"] / counts["near"] == pytest.approx(math.exp(-2.0), rel=0.3)


def _touch_joins_and_size(params: MarketParams, key: BookKey, seconds: int) -> tuple[float, float]:
    """(times a second a side's touch grew at an unchanged price, median touch size in base),
    the touch sampled every 50 ms."""
    instruments = btc_only()
    engines = build_engines(instruments)
    market = SyntheticMarket(params, instruments, 5)
    eng = engines[key]
    base_per_lot = eng.instrument.lot_size * eng.instrument.contract_size_base
    samples = []
    for k in range(1, seconds * 20 + 1):
        market.advance(engines, k * SECOND // 20)
        bid, ask = eng.best_bid(), eng.best_ask()
        assert bid is not None
        assert ask is not None
        samples.append((bid, ask))
    joins = sum(
        (b1[0] == b0[0] and b1[1] > b0[1]) + (a1[0] == a0[0] and a1[1] > a0[1])
        for (b0, a0), (b1, a1) in itertools.pairwise(samples)
    )
    sizes = [size * base_per_lot for bid, ask in samples for size in (bid[1], ask[1])]
    return joins / seconds / 2, statistics.median(sizes)


@pytest.mark.parametrize(
    ("key", "recorded_joins", "recorded_touch"), [(SPOT_BTC, 5.14, 1.99), (PERP_BTC, 6.67, 3.13)]
)
def test_the_touch_is_joined_and_as_deep_as_binances(
    key: BookKey, recorded_joins: float, recorded_touch: float
) -> None:
    # The recorded BTCUSDT touch, every 50 ms: joined 5.14 (spot) and 6.67 (USD-M) times a
    # second a side, median size 1.99 and 3.13 BTC.
    joins, touch = _touch_joins_and_size(MarketParams(), key, 120)
    assert recorded_joins * 0.7 < joins < recorded_joins * 1.3
    assert recorded_touch * 0.6 < touch < recorded_touch * 1.5
    # Without the joining makers the touch is a few background orders, rarely joined.
    venues = {
        name: dataclasses.replace(flow, join_rate_per_s=0.0)
        for name, flow in MarketParams().venues.items()
    }
    joins, touch = _touch_joins_and_size(MarketParams(venues=venues), key, 60)
    assert joins < 1.0
    assert touch < recorded_touch / 4


def _client_bid_at_the_touch(
    instruments: list[Instrument], key: BookKey, lots: int
) -> tuple[SyntheticMarket, dict[BookKey, MatchingEngine], tuple[int, int], int]:
    """The market after a second (seed 9) with a client bid at the best bid of `key`: the
    market, its engines, that best bid and the order's id."""
    engines = build_engines(instruments)
    market = SyntheticMarket(MarketParams(), instruments, 9)
    market.advance(engines, SECOND)
    bid = engines[key].best_bid()
    assert bid is not None
    placed = engines[key].submit(
        "client", Side.BUY, OrderType.LIMIT, lots, SECOND, price_ticks=bid[0]
    )
    assert placed.ok
    return market, engines, bid, placed.order_id


def test_a_client_order_at_the_touch_is_joined_behind_it() -> None:
    market, engines, bid, order_id = _client_bid_at_the_touch(btc_only(), SPOT_BTC, 1000)
    eng = engines[SPOT_BTC]
    level = eng.level_size(Side.BUY, bid[0])
    grew = 0
    for k in range(21, 41):  # a second, while the touch stays at our price
        market.advance(engines, k * SECOND // 20)
        best = eng.best_bid()
        if not eng.is_open(order_id) or best is None or best[0] != bid[0]:
            break
        # Only new orders make a level grow, and they queue behind ours.
        previous, level = level, eng.level_size(Side.BUY, bid[0])
        grew += level > previous
    assert grew >= 1


def test_client_order_at_the_touch_is_filled_by_background_flow_as_maker() -> None:
    market, engines, _bid, order_id = _client_bid_at_the_touch(default_instruments(), PERP_BTC, 5)
    fills = []
    for k in range(2, 120):
        for key, res in market.advance(engines, k * SECOND):
            if key == PERP_BTC:
                fills += [r for r in res.reports if r.order_id == order_id and r.last_lots]
        if fills and fills[-1].cum_lots == 5:
            break
    assert fills
    assert fills[-1].cum_lots == 5
    assert all(f.liquidity is Liquidity.MAKER for f in fills)


def _mean_markout_ticks(informed_share: float) -> float:
    """Mean of (spot fair at the end of the trade's second - price) x aggressor sign."""
    instruments = btc_only()
    venues = dict(MarketParams().venues)
    venues[SPOT_VENUE] = dataclasses.replace(venues[SPOT_VENUE], informed_share=informed_share)
    market = SyntheticMarket(MarketParams(venues=venues), instruments, 4)
    engines = build_engines(instruments)
    markouts: list[float] = []
    for k in range(1, 31):
        trades = [
            t
            for key, res in market.advance(engines, k * SECOND)
            if key == SPOT_BTC
            for t in res.trades
        ]
        fair = market.book_fair(SPOT_BTC) / instruments[0].tick_size
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


def test_eth_starts_at_the_recorded_btc_eth_ratio_of_btcs_price() -> None:
    btc, eth = assets_from_config(SimConfig(start_price_quote=46_000.0))
    assert (btc.base, btc.start_price) == ("BTC", 46_000.0)
    assert (eth.base, eth.start_price) == ("ETH", pytest.approx(2_000.0))


def test_an_asset_configured_with_its_own_price_and_correlation_keeps_them() -> None:
    cfg = SimConfig(
        assets=("BTC", {"base": "SOL", "start_price_quote": 150.0, "return_correlation": 0.5})
    )
    _btc, sol = assets_from_config(cfg)
    assert (sol.start_price, sol.return_correlation) == (150.0, 0.5)


def _instrument(instruments: list[Instrument], venue: str, symbol: str) -> Instrument:
    (inst,) = [i for i in instruments if (i.venue, i.exchange_symbol) == (venue, symbol)]
    return inst


def test_default_instruments_carry_the_configured_fees() -> None:
    cfg = SimConfig(spot_taker_fee_bps=7.5, perp_maker_fee_bps=-0.5)
    instruments = default_instruments(cfg)
    assert len(instruments) == 4
    for inst in instruments:
        if inst.kind is InstrumentKind.SPOT:
            assert inst.taker_fee_rate == pytest.approx(7.5e-4)
        else:
            assert inst.maker_fee_rate == pytest.approx(-0.5e-4)


def test_btc_and_eth_carry_binances_filters_on_both_venues() -> None:
    instruments = default_instruments()
    filters = {
        (i.venue, i.symbol): (i.exchange_symbol, i.tick_size, i.lot_size, i.min_notional_quote)
        for i in instruments
    }
    assert filters == {
        (SPOT_VENUE, "BTC/USDT"): ("BTCUSDT", 0.01, 0.00001, 5.0),
        (SPOT_VENUE, "ETH/USDT"): ("ETHUSDT", 0.01, 0.0001, 5.0),
        (PERP_VENUE, "BTC/USDT:USDT"): ("BTCUSDT", 0.1, 0.001, 100.0),
        (PERP_VENUE, "ETH/USDT:USDT"): ("ETHUSDT", 0.01, 0.001, 20.0),
    }


def test_another_asset_gets_filters_sized_to_its_price() -> None:
    cfg = SimConfig(assets=("BTC", "ETH", {"base": "SOL", "start_price_quote": 150.0}))
    instruments = default_instruments(cfg)
    spot = _instrument(instruments, SPOT_VENUE, "SOLUSDT")
    perp = _instrument(instruments, PERP_VENUE, "SOLUSDT")
    assert (spot.symbol, spot.tick_size, spot.lot_size) == ("SOL/USDT", 0.001, 0.001)
    assert (perp.symbol, perp.tick_size, perp.lot_size) == ("SOL/USDT:USDT", 0.001, 0.01)


def test_ten_assets_make_ten_distinct_markets_on_each_venue_with_live_books() -> None:
    names = ["BTC", "ETH", *(f"ALT{i}" for i in range(1, 9))]
    cfg = SimConfig(assets=tuple(names))
    instruments = default_instruments(cfg)
    assert len({(i.venue, i.exchange_symbol) for i in instruments}) == 20
    _market, engines, mids, _latent = run_market(
        params_from_config(cfg), 5, instruments=instruments
    )
    for key, eng in engines.items():
        bids, asks, _ = eng.depth(20)
        assert len(bids) == 20, key
        assert len(asks) == 20, key
        assert asks[0][0] - bids[0][0] <= 2, key
    alt = mids[(SPOT_VENUE, "ALT1USDT")]
    assert alt[-1] == pytest.approx(100.0, rel=0.01)


def test_a_venues_books_share_its_accounts() -> None:
    engines = build_engines(default_instruments(), starting_base={"BTC": 1.0, "ETH": 23.0})
    btc, eth = engines[SPOT_BTC], engines[SPOT_ETH]
    assert btc.accounts is eth.accounts
    account = btc.accounts.get("client")
    assert {a: b.free for a, b in account.balances.items()} == {
        "BTC": 1.0,
        "ETH": 23.0,
        "USDT": 100_000.0,
    }
    assert engines[PERP_BTC].accounts is engines[PERP_ETH].accounts
    assert engines[PERP_BTC].accounts is not btc.accounts


def test_every_asset_starts_with_the_first_ones_value() -> None:
    balances = starting_balances(SimConfig(starting_base=2.0))
    assert balances == {"BTC": 2.0, "ETH": pytest.approx(46.0)}


def test_mixed_regime_switches_between_regimes() -> None:
    instruments = default_instruments()
    engines = build_engines(instruments)
    market = SyntheticMarket(MarketParams(regime="mixed", mixed_dwell_s=1.0), instruments, 2)
    seen = set()
    for k in range(1, 41):
        market.advance(engines, k * 250_000_000)
        seen.add(market.regime)
    assert len(seen) >= 3
