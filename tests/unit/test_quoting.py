"""Quote models and the rules every model shares; formulas checked against hand computations."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from mm_daemon.core.quoting import (
    HedgeDown,
    MarketInputs,
    QuoteParams,
    Quoter,
    Quotes,
    as_quotes,
    glft_coefficients,
    glft_quotes,
)
from mm_daemon.core.risk import RiskState
from mm_daemon.core.types import Side
from mm_daemon.engine import wiring

# A market at 1000.00 with a 0.01 tick: fair value 100_000 ticks, so 1 bps = 10 ticks.
FAIR = 100_000.0
MARKET = MarketInputs(fair_ticks=FAIR, best_bid_ticks=99_999, best_ask_ticks=100_001)
# The same fair value with the touch far away, so post-only never moves a quote.
WIDE = MARKET._replace(best_bid_ticks=99_000, best_ask_ticks=101_000)


def params(**overrides: object) -> QuoteParams:
    base = QuoteParams(
        model="fixed",
        order_size_base=1.0,
        lot_base=0.01,  # 100 lots per quote
        spread_bps=4.0,
        min_spread_bps=0.0,
        max_spread_bps=1000.0,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def quote(
    p: QuoteParams,
    market: MarketInputs = MARKET,
    q_base: float = 0.0,
    **kwargs: object,
) -> Quotes:
    return Quoter(p).quote(market, q_base, 1, **kwargs)  # type: ignore[arg-type]


def prices(quotes: Quotes) -> tuple[list[int], list[int]]:
    return [q.price_ticks for q in quotes.bids], [q.price_ticks for q in quotes.asks]


# -- fixed and linear_skew ----------------------------------------------------------------------


def test_fixed_quotes_symmetrically_around_fair_value() -> None:
    # 4 bps total = 2 bps a side = 20 ticks.
    assert prices(quote(params())) == ([99_980], [100_020])


def test_prices_round_outward_bids_down_asks_up() -> None:
    market = MARKET._replace(fair_ticks=100_000.5)
    # half spread 2 bps of 100_000.5 = 20.0001 ticks: bid 99_980.4999 -> 99_980, ask 100_020.5001
    # -> 100_021.
    assert prices(quote(params(), market)) == ([99_980], [100_021])


def test_linear_skew_shifts_reservation_against_inventory() -> None:
    # 10 bps per base unit, long 0.5 base: reservation 5 bps = 50 ticks below fair.
    p = params(model="linear_skew", skew_bps_per_base=10.0)
    assert prices(quote(p, WIDE, q_base=0.5)) == ([99_930], [99_970])
    assert prices(quote(p, WIDE, q_base=-0.5)) == ([100_030], [100_070])


def test_linear_size_skew_shrinks_the_side_that_grows_inventory() -> None:
    # limit 10, target 0, long 5: x = 0.5; 100 lots -> bid 100 * 0.5, ask 100 * 1.5.
    p = params(model="linear_skew", size_skew=True, inventory_limit_base=10.0)
    quotes = quote(p, q_base=5.0)
    assert [q.size_lots for q in quotes.bids] == [50]
    assert [q.size_lots for q in quotes.asks] == [150]


# -- Avellaneda-Stoikov -------------------------------------------------------------------------


def test_avellaneda_stoikov_formula_matches_hand_computation() -> None:
    # s = 1000, q = 2, gamma = 0.1, sigma = 2 ticks/sqrt(s), tau = 60 s, k = 1.5 per tick.
    # sigma^2 tau = 4 * 60 = 240; r = 1000 - 2 * 0.1 * 240 = 952.
    # spread = 0.1 * 240 + (2 / 0.1) * ln(1 + 0.1 / 1.5) = 24 + 20 * 0.0645385211 = 25.2907704;
    # half = 12.6453852.
    r, half = as_quotes(1000.0, q_lots=2.0, gamma=0.1, sigma_ticks=2.0, tau_s=60.0, k=1.5)
    assert r == pytest.approx(952.0)
    assert half == pytest.approx(12.6453852, abs=1e-6)


def test_avellaneda_stoikov_quoter_places_quotes_around_reservation() -> None:
    # lot_base 1: q = 2 lots; r = 99_952, half 12.645 -> bid floor(99_939.35) = 99_939, ask
    # ceil(99_964.65) = 99_965 (spread 2.53 bps, inside the caps).
    p = params(model="avellaneda_stoikov", gamma=0.1, horizon_seconds=60.0, lot_base=1.0)
    market = MARKET._replace(sigma_ticks=2.0, intensity_k=1.5, best_bid_ticks=None)
    assert prices(quote(p, market, q_base=2.0)) == ([99_939], [99_965])


def test_avellaneda_stoikov_without_intensity_quotes_nothing() -> None:
    p = params(model="avellaneda_stoikov")
    quotes = quote(p, MARKET._replace(intensity_k=0.0))
    assert quotes.empty
    assert quotes.reason == "estimators_not_ready"


# -- GLFT -------------------------------------------------------------------------------------


def test_glft_coefficients_match_hand_computation() -> None:
    # gamma = xi = 0.1, A = 2 /s, k = 1.5 /tick, D = 1 lot: xi D = 0.1.
    # c1 = ln(1 + 0.1 / 1.5) / 0.1 = 0.0645385211 / 0.1 = 0.645385211.
    # c2 = sqrt(0.1 / (2 * 2 * 1 * 1.5) * (16/15)^(1.5/0.1 + 1)) = sqrt(0.0166667 * 2.80840397)
    #    = sqrt(0.0468067) = 0.216348637.
    c1, c2 = glft_coefficients(gamma=0.1, xi=0.1, a=2.0, k=1.5, d_lots=1.0)
    assert c1 == pytest.approx(0.645385211, abs=1e-8)
    assert c2 == pytest.approx(0.216348637, abs=1e-8)


def test_glft_quotes_match_hand_computation() -> None:
    # sigma = 2: half = c1 + D/2 * sigma * c2 = 0.645385 + 0.5 * 2 * 0.216349 = 0.861734;
    # skew = sigma * c2 = 0.432697; q = 3 lots: r = 1000 - 3 * 0.432697 = 998.701908.
    r, half = glft_quotes(
        1000.0, q_lots=3.0, gamma=0.1, xi=0.1, sigma_ticks=2.0, a=2.0, k=1.5, d_lots=1.0
    )
    assert half == pytest.approx(0.8617338, abs=1e-6)
    assert r == pytest.approx(998.7019082, abs=1e-6)


def test_glft_quoter_uses_gamma_when_xi_is_zero() -> None:
    p = params(model="glft", gamma=0.1, xi=0.0, lot_base=1.0, order_size_base=1.0)
    market = MARKET._replace(sigma_ticks=2.0, intensity_a=2.0, intensity_k=1.5)
    quotes = Quoter(p).quote(market, 3.0, 1)
    assert quotes.reservation_ticks == pytest.approx(FAIR - 1.2980918, abs=1e-6)


# -- spread bounds and widening -----------------------------------------------------------------


def test_min_spread_floors_a_narrow_model_spread() -> None:
    p = params(spread_bps=1.0, min_spread_bps=6.0)
    assert prices(quote(p)) == ([99_970], [100_030])


def test_max_spread_caps_a_wide_model_spread() -> None:
    p = params(spread_bps=50.0, max_spread_bps=10.0)
    assert prices(quote(p)) == ([99_950], [100_050])


def test_spread_never_below_round_trip_fees_unless_allowed() -> None:
    p = params(spread_bps=1.0, round_trip_fee_bps=8.0)
    assert prices(quote(p)) == ([99_960], [100_040])
    allowed = replace(p, allow_spread_below_fees=True)
    assert prices(quote(allowed)) == ([99_995], [100_005])


def test_volatility_widens_the_spread() -> None:
    # sigma 10 ticks/sqrt(s) = 1 bps; widening 2 bps per bps: 4 + 2 = 6 bps total.
    p = params(volatility_widening=2.0)
    assert prices(quote(p, MARKET._replace(sigma_ticks=10.0))) == ([99_970], [100_030])


def test_volatility_above_threshold_pulls_all_quotes() -> None:
    p = params(pull_volatility_bps=5.0)
    quotes = quote(p, MARKET._replace(sigma_ticks=60.0))  # 6 bps/sqrt(s)
    assert quotes.empty
    assert quotes.reason == "volatility"


def test_alpha_skew_leans_fair_value_toward_order_flow() -> None:
    # imbalance +0.5 at 4 bps per unit: fair up 2 bps = 20 ticks.
    p = params(alpha_skew_bps=4.0)
    assert prices(quote(p, WIDE._replace(imbalance=0.5))) == ([100_000], [100_040])


# -- levels, sizes and post-only ------------------------------------------------------------------


def test_levels_are_spaced_outward_with_growing_sizes() -> None:
    p = params(levels=3, level_spacing_bps=1.0, level_size_multiplier=2.0)
    quotes = quote(p)
    assert prices(quotes) == ([99_980, 99_970, 99_960], [100_020, 100_030, 100_040])
    assert [q.size_lots for q in quotes.bids] == [100, 200, 400]
    assert [q.level for q in quotes.asks] == [0, 1, 2]


def test_sizes_are_whole_lots_not_above_the_asked_size() -> None:
    p = params(order_size_base=0.0159)  # 1.59 lots
    assert [q.size_lots for q in quote(p).all()] == [1, 1]


def test_min_notional_raises_a_small_size() -> None:
    # bid 99_980 ticks * 0.01 = 999.80 quote per base; 1 lot of 0.01 base = 9.998 quote; min 50
    # quote needs ceil(50 / 9.998) = 6 lots.
    p = params(order_size_base=0.01, tick_size=0.01, min_notional_quote=50.0)
    assert [q.size_lots for q in quote(p).bids] == [6]


def test_bid_never_at_or_above_best_ask() -> None:
    # A fair value far above the book (say, a cross-venue reference) would cross the ask.
    market = MARKET._replace(fair_ticks=100_100.0, best_ask_ticks=100_001)
    bids, _ = prices(quote(params(levels=2), market))
    assert bids[0] == 100_000
    assert bids[1] < bids[0]


def test_ask_never_at_or_below_best_bid() -> None:
    market = MARKET._replace(fair_ticks=99_900.0, best_bid_ticks=99_999)
    _, asks = prices(quote(params(), market))
    assert asks == [100_000]


# -- inventory, risk and hedge venue reactions ---------------------------------------------------


def test_past_the_inventory_limit_only_the_reducing_side_is_quoted() -> None:
    p = params(inventory_limit_base=1.0)
    long_quotes = quote(p, q_base=1.2)
    short_quotes = quote(p, q_base=-1.2)
    assert (long_quotes.bids, len(long_quotes.asks)) == ((), 1)
    assert (len(short_quotes.bids), short_quotes.asks) == (1, ())
    assert long_quotes.reason == "inventory_limit"


def test_side_that_adds_inventory_is_sized_to_the_room_under_the_limit() -> None:
    # 3 levels of 0.4 base (40 lots), limit 1.0, long 0.45: the bids may add 55 lots.
    p = params(order_size_base=0.4, levels=3, inventory_limit_base=1.0)
    quotes = quote(p, q_base=0.45)
    assert [q.size_lots for q in quotes.bids] == [40, 15]
    assert [q.size_lots for q in quotes.asks] == [40, 40, 40]  # 1.45 of room to sell


def test_reducing_side_may_carry_the_position_through_zero_up_to_the_limit() -> None:
    p = params(order_size_base=0.4, levels=3, inventory_limit_base=1.0)
    quotes = quote(p, q_base=-0.3)
    assert [q.size_lots for q in quotes.bids] == [40, 40, 40]  # 1.3 of room to buy
    assert [q.size_lots for q in quotes.asks] == [40, 30]


def test_no_room_for_an_order_of_the_minimum_notional_leaves_that_side_empty() -> None:
    # Room for 2 lots (0.02 base, about 20 quote) under a 50 quote minimum notional.
    p = params(
        order_size_base=0.01, tick_size=0.01, min_notional_quote=50.0, inventory_limit_base=1.0
    )
    quotes = quote(p, q_base=0.98)
    assert quotes.bids == ()
    assert len(quotes.asks) == 1


def test_reducing_state_quotes_only_the_side_that_reduces() -> None:
    quotes = quote(params(), q_base=-0.3, risk_state=RiskState.REDUCING)
    assert len(quotes.bids) == 1
    assert quotes.asks == ()


def test_halted_state_quotes_nothing() -> None:
    assert quote(params(), risk_state=RiskState.HALTED).reason == "halted"


def test_stale_market_quotes_nothing() -> None:
    quotes = quote(params(), MARKET._replace(stale=True))
    assert quotes.empty
    assert quotes.reason == "stale"


def test_hedge_venue_down_widen_adds_the_configured_spread() -> None:
    quotes = quote(params(), hedge_down=HedgeDown("widen", widen_bps=6.0))
    assert prices(quotes) == ([99_950], [100_050])


def test_hedge_venue_down_reduce_only_drops_the_growing_side() -> None:
    quotes = quote(params(), q_base=0.3, hedge_down=HedgeDown("reduce_only"))
    assert quotes.bids == ()
    assert [q.side for q in quotes.asks] == [Side.SELL]


def test_hedge_venue_down_stop_quotes_nothing() -> None:
    assert quote(params(), hedge_down=HedgeDown("stop")).empty


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown quote model"):
        params(model="martingale")


def test_relative_volatility_converts_to_ticks() -> None:
    market = MarketInputs.from_relative(FAIR, 99_999, 100_001, sigma_relative=1e-4)
    assert market.sigma_ticks == pytest.approx(10.0)
    assert math.isfinite(market.fair_ticks)


def test_config_gamma_per_quote_per_base_is_converted_to_ticks_and_lots() -> None:
    from mm_daemon.config import InventoryConfig, QuotingConfig  # noqa: PLC0415
    from mm_daemon.core.types import Instrument, InstrumentKind  # noqa: PLC0415

    btc = Instrument(
        "spot", "BTC/USDT", "BTCUSDT", InstrumentKind.SPOT, "BTC", "USDT", 0.01, 0.00001
    )
    params = wiring.quote_params(
        QuotingConfig(model="glft", gamma=0.05, xi=0.02), InventoryConfig(), btc
    )
    # 0.05 per USDT per BTC = 0.05 * 0.01 USDT/tick * 1e-5 BTC/lot per tick per lot.
    assert params.gamma == pytest.approx(5e-9)
    assert params.xi == pytest.approx(2e-9)


# -- the target inventory -------------------------------------------------------------------------


def test_linear_skew_leans_toward_the_target_inventory() -> None:
    # Target long 0.5 base, holding 0.5: nothing to lean on, quotes sit around fair value.
    p = params(model="linear_skew", skew_bps_per_base=10.0, inventory_target_base=0.5)
    assert prices(quote(p, WIDE, q_base=0.5)) == ([99_980], [100_020])
    # Flat: 0.5 short of the target, the reservation rises 5 bps to buy toward it.
    assert prices(quote(p, WIDE, q_base=0.0)) == ([100_030], [100_070])


def test_avellaneda_stoikov_reservation_leans_toward_the_target_inventory() -> None:
    p = params(
        model="avellaneda_stoikov",
        gamma=0.1,
        horizon_seconds=60.0,
        lot_base=1.0,
        inventory_target_base=2.0,
    )
    market = MARKET._replace(sigma_ticks=2.0, intensity_k=1.5, best_bid_ticks=None)
    at_target = Quoter(p).quote(market, 2.0, 1)
    assert at_target.reservation_ticks == pytest.approx(FAIR)


def test_glft_reservation_leans_toward_the_target_inventory() -> None:
    p = params(model="glft", gamma=0.1, lot_base=1.0, inventory_target_base=-3.0)
    market = MARKET._replace(sigma_ticks=2.0, intensity_a=1.0, intensity_k=1.5)
    at_target = Quoter(p).quote(market, -3.0, 1)
    flat = Quoter(p).quote(market, 0.0, 1)
    assert at_target.reservation_ticks == pytest.approx(FAIR)
    assert flat.reservation_ticks < FAIR  # 3 long of the target: leaning to sell
