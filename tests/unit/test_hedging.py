"""Hedge policy: sizes, prices, in-flight accounting, outage reactions, rolling beta."""

from __future__ import annotations

import gzip
import math
import random
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson
import pytest

from mm_daemon.binance.capture import default_data_dir
from mm_daemon.config import (
    HedgeMode,
    HedgeRatioMode,
    HedgeVenueDownReaction,
)
from mm_daemon.core.hedging import HedgeIntent, HedgeParams, Hedger, RollingBeta
from mm_daemon.core.instruments import BTC_USDT_PERP
from mm_daemon.core.inventory import Ledger
from mm_daemon.core.quoting import HedgeDown
from mm_daemon.core.types import (
    Fill,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
)

S = 1_000_000_000
T0 = 1_700_000_000 * S
BID = 600_000  # 60,000.0
ASK = 600_001  # 60,000.1

PERP = replace(BTC_USDT_PERP, min_notional_quote=5.0)


def hedger(instrument: Instrument = PERP, **overrides: Any) -> Hedger:
    settings: dict[str, Any] = {
        "mode": HedgeMode.THRESHOLD,
        "threshold_base": 0.02,
        "target_base": 0.0,
        "max_slippage_bps": 5.0,
    }
    settings.update(overrides)
    h = Hedger(HedgeParams(**settings), instrument)
    h.on_touch(BID, ASK)
    h.on_fair_values(T0, 60_000.0, 60_000.05)
    return h


def decide(h: Hedger, exposure: float, at: int = T0) -> HedgeIntent:
    intent = h.decide(at, exposure)
    assert intent is not None
    return intent


def update(intent: HedgeIntent, status: OrderStatus, filled_lots: int) -> OrderUpdate:
    request = intent.request
    return OrderUpdate(
        venue=request.venue,
        symbol=request.symbol,
        ts_exchange_ns=T0,
        ts_local_ns=T0,
        client_order_id=request.client_order_id,
        exchange_order_id="1",
        status=status,
        side=request.side,
        price_ticks=request.price_ticks,
        size_lots=request.size_lots,
        filled_lots=filled_lots,
        reason="insufficient margin" if status is OrderStatus.REJECTED else "",
    )


def fill_of(intent: HedgeIntent, lots: int, price_ticks: int | None = None) -> Fill:
    request = intent.request
    return Fill(
        venue=request.venue,
        symbol=request.symbol,
        ts_exchange_ns=T0,
        ts_local_ns=T0,
        client_order_id=request.client_order_id,
        exchange_order_id="1",
        trade_id="1",
        side=request.side,
        price_ticks=request.price_ticks if price_ticks is None else price_ticks,
        size_lots=lots,
        fee_quote=0.0,
        liquidity=Liquidity.TAKER,
    )


# -- sizes ------------------------------------------------------------------------------


def test_threshold_mode_hedges_long_exposure_down_to_target_with_an_ioc_sell() -> None:
    request = decide(hedger(), 0.05).request
    assert (request.side, request.size_lots) == (Side.SELL, 50)
    assert request.order_type is OrderType.IOC
    assert request.venue == "sim-perp"
    assert request.client_order_id.startswith("hdg-")


def test_threshold_mode_buys_to_hedge_short_exposure() -> None:
    request = decide(hedger(), -0.03).request
    assert (request.side, request.size_lots) == (Side.BUY, 30)


def test_exposure_within_threshold_is_not_hedged() -> None:
    assert hedger().decide(T0, 0.02) is None


def test_threshold_mode_stops_at_a_nonzero_target() -> None:
    request = decide(hedger(target_base=0.01), 0.05).request
    assert request.size_lots == 40


def test_partial_mode_hedges_a_fraction_of_the_excess() -> None:
    request = decide(hedger(mode=HedgeMode.PARTIAL, fraction=0.5), 0.06).request
    assert request.size_lots == 30


def test_gradual_mode_sends_one_slice_per_interval() -> None:
    h = hedger(mode=HedgeMode.GRADUAL, slice_base=0.01, slice_interval_seconds=1.0)
    first = decide(h, 0.05)
    assert first.request.size_lots == 10
    assert h.decide(T0 + S // 2, 0.05) is None
    second = decide(h, 0.05, T0 + S)
    assert second.request.size_lots == 10


def test_gradual_mode_stops_once_exposure_is_within_threshold() -> None:
    h = hedger(mode=HedgeMode.GRADUAL, slice_base=0.01, slice_interval_seconds=1.0)
    decide(h, 0.04)
    decide(h, 0.04, T0 + S)
    assert h.decide(T0 + 2 * S, 0.04) is None  # 0.02 left after the two in-flight slices


def test_hedge_size_rounds_down_to_whole_lots() -> None:
    request = decide(hedger(), 0.05099).request
    assert request.size_lots == 50


def test_hedge_below_min_notional_waits() -> None:
    big_minimum = PERP.__class__(**{**_fields(PERP), "min_notional_quote": 2_000.0})
    h = hedger(big_minimum, threshold_base=0.02)
    assert h.decide(T0, 0.03) is None  # 0.03 BTC * 60,000 = 1,800 < 2,000
    assert decide(h, 0.04).request.size_lots == 40


def test_hedge_below_min_size_waits() -> None:
    min_size = PERP.__class__(**{**_fields(PERP), "min_size_lots": 100})
    assert hedger(min_size).decide(T0, 0.05) is None


def test_hedge_size_follows_the_fixed_hedge_ratio() -> None:
    h = hedger(ratio=2.0)
    assert decide(h, 0.05).request.size_lots == 100
    assert h.netting_weight == pytest.approx(0.5)


def test_intent_carries_fair_values_at_decision_and_the_exposure_change() -> None:
    intent = decide(hedger(), 0.05)
    assert intent.fair_value == 60_000.05
    assert intent.reference_fair_value == 60_000.0
    assert intent.exposure_change_base == pytest.approx(-0.05)
    assert intent.request.ts_decided_ns == T0


def _fields(instrument: Instrument) -> dict[str, Any]:
    return {name: getattr(instrument, name) for name in instrument.__slots__}


# -- prices -----------------------------------------------------------------------------


def test_buy_limit_is_the_ask_plus_slippage_rounded_down_to_a_tick() -> None:
    price = decide(hedger(), -0.05).request.price_ticks
    cap = ASK * (1 + Fraction(5, 10_000))  # 600,301.0005 ticks
    assert price == 600_301
    assert price <= cap < price + 1


def test_sell_limit_is_the_bid_minus_slippage_rounded_up_to_a_tick() -> None:
    price = decide(hedger(), 0.05).request.price_ticks
    floor_price = BID * (1 - Fraction(5, 10_000))  # 599,700 ticks exactly
    assert price == 599_700
    assert price >= floor_price


def test_zero_slippage_hedges_at_the_touch() -> None:
    h = hedger(max_slippage_bps=0.0)
    assert decide(h, 0.05).request.price_ticks == BID


# -- in flight --------------------------------------------------------------------------


def test_exposure_being_hedged_is_not_hedged_twice() -> None:
    h = hedger()
    decide(h, 0.05)
    assert h.decide(T0 + 1, 0.05) is None
    assert h.in_flight_exposure_base == pytest.approx(-0.05)


def test_only_new_exposure_beyond_the_in_flight_hedge_is_hedged() -> None:
    h = hedger()
    decide(h, 0.05)
    assert decide(h, 0.08, T0 + 1).request.size_lots == 30


def test_fills_release_the_in_flight_quantity() -> None:
    h = hedger()
    intent = decide(h, 0.05)
    h.on_fill(fill_of(intent, 20))
    assert h.in_flight_exposure_base == pytest.approx(-0.03)


def test_filled_order_leaves_nothing_in_flight() -> None:
    h = hedger()
    intent = decide(h, 0.05)
    h.on_fill(fill_of(intent, 50))
    h.on_order_update(update(intent, OrderStatus.FILLED, 50), T0 + 1)
    assert h.in_flight_orders == 0
    assert decide(h, 0.05, T0 + 2).request.size_lots == 50  # new exposure: a new hedge


def test_expired_ioc_keeps_reported_fills_in_flight_until_they_arrive() -> None:
    h = hedger()
    intent = decide(h, 0.05)
    h.on_order_update(update(intent, OrderStatus.EXPIRED, 20), T0 + 1)
    assert h.in_flight_exposure_base == pytest.approx(-0.02)
    h.on_fill(fill_of(intent, 20))
    assert h.in_flight_orders == 0


def test_reject_releases_the_in_flight_quantity() -> None:
    h = hedger()
    intent = decide(h, 0.05)
    h.on_order_update(update(intent, OrderStatus.REJECTED, 0), T0 + 1)
    assert h.in_flight_orders == 0
    assert h.stats.rejects == 1


def test_unanswered_hedge_is_released_after_the_timeout() -> None:
    h = hedger(hedge_timeout_seconds=5.0)
    decide(h, 0.05)
    assert h.decide(T0 + 5 * S - 1, 0.05) is None
    assert h.in_flight_orders == 1
    h.decide(T0 + 5 * S, 0.05)
    assert h.in_flight_orders == 0
    assert h.stats.timeouts == 1


def test_non_terminal_updates_keep_the_order_in_flight() -> None:
    h = hedger()
    intent = decide(h, 0.05)
    h.on_order_update(update(intent, OrderStatus.OPEN, 0), T0 + 1)
    assert h.in_flight_exposure_base == pytest.approx(-0.05)


def test_fill_reports_slippage_against_the_decision_fair_value() -> None:
    h = hedger()
    intent = decide(h, 0.05)  # sell; hedge fair at decision 60,000.05
    slippage = h.on_fill(fill_of(intent, 50, price_ticks=599_940))  # sold at 59,994.0
    assert slippage == pytest.approx((60_000.05 - 59_994.0) / 60_000.05 * 1e4)


# -- hedge venue outage -----------------------------------------------------------------


def test_stale_hedge_venue_sends_no_hedge() -> None:
    h = hedger()
    h.on_venue_status(stale=True)
    assert h.decide(T0, 0.05) is None


def test_stale_hedge_venue_widens_quotes_when_configured() -> None:
    h = hedger(on_hedge_venue_down=HedgeVenueDownReaction.WIDEN, down_widen_bps=12.0)
    h.on_venue_status(stale=True)
    assert h.hedge_down(T0) == HedgeDown("widen", widen_bps=12.0)


def test_stale_hedge_venue_quotes_only_the_reducing_side_when_configured() -> None:
    h = hedger(on_hedge_venue_down=HedgeVenueDownReaction.REDUCE_ONLY)
    h.on_venue_status(stale=True)
    assert h.hedge_down(T0) == HedgeDown("reduce_only", widen_bps=10.0)


def test_stale_hedge_venue_stops_quoting_when_configured() -> None:
    h = hedger(on_hedge_venue_down=HedgeVenueDownReaction.STOP)
    h.on_venue_status(stale=True)
    assert h.hedge_down(T0) == HedgeDown("stop", widen_bps=10.0)


def test_quote_engine_form_of_the_reaction_follows_the_outage() -> None:
    h = hedger(on_hedge_venue_down=HedgeVenueDownReaction.WIDEN, down_widen_bps=7.0)
    assert h.hedge_down(T0) is None
    h.on_venue_status(stale=True)
    assert h.hedge_down(T0) == HedgeDown("widen", 7.0)


def test_healthy_hedge_venue_imposes_no_constraint() -> None:
    assert hedger().hedge_down(T0) is None


def test_recovered_hedge_venue_lifts_the_constraint_and_hedges_again() -> None:
    h = hedger()
    h.on_venue_status(stale=True)
    h.on_venue_status(stale=False)
    assert h.hedge_down(T0) is None
    assert h.decide(T0, 0.05) is not None


def test_hedge_venue_stays_down_until_every_source_recovers() -> None:
    h = hedger()
    h.on_venue_status(stale=True, source="market_data")
    h.on_venue_status(stale=True, reason="order entry disconnected", source="orders")
    h.on_venue_status(stale=False, source="market_data")
    down = h.hedge_down(T0)
    assert down is not None
    assert down.reason == "order entry disconnected"
    h.on_venue_status(stale=False, source="orders")
    assert h.hedge_down(T0) is None


def test_hedge_venue_without_a_book_counts_as_down() -> None:
    h = Hedger(HedgeParams(on_hedge_venue_down=HedgeVenueDownReaction.STOP), PERP)
    assert h.hedge_down(T0) == HedgeDown("stop", widen_bps=10.0)
    assert h.decide(T0, 0.05) is None


def test_rejecting_hedge_venue_is_down_until_the_timeout_passes() -> None:
    h = hedger(hedge_timeout_seconds=5.0)
    intent = decide(h, 0.05)
    h.on_order_update(update(intent, OrderStatus.REJECTED, 0), T0 + 1)
    down = h.hedge_down(T0 + 2)
    assert down is not None
    assert down.reaction == "reduce_only"
    assert "rejected" in down.reason
    assert h.decide(T0 + 2, 0.05) is None
    assert h.hedge_down(T0 + 1 + 5 * S) is None
    assert h.decide(T0 + 1 + 5 * S, 0.05) is not None


def test_timed_out_hedge_marks_the_venue_down() -> None:
    h = hedger(hedge_timeout_seconds=5.0, on_hedge_venue_down=HedgeVenueDownReaction.STOP)
    decide(h, 0.05)
    h.decide(T0 + 5 * S, 0.05)
    down = h.hedge_down(T0 + 5 * S)
    assert down is not None
    assert down.reaction == "stop"


def test_off_mode_never_hedges_nor_constrains_quoting() -> None:
    h = hedger(mode=HedgeMode.OFF)
    h.on_venue_status(stale=True)
    assert h.decide(T0, 1.0) is None
    assert h.hedge_down(T0) is None


# -- time above the threshold -----------------------------------------------------------


def test_time_above_threshold_accumulates_as_unhedged_exposure() -> None:
    h = hedger()
    h.on_venue_status(stale=True)  # nothing gets hedged
    h.decide(T0, 0.01)
    h.decide(T0 + S, 0.05)  # below threshold during the first second
    h.decide(T0 + 3 * S, 0.05)  # above during the next two
    h.decide(T0 + 4 * S, 0.0)  # still above until this call
    assert h.stats.unhedged_exposure_ns == 3 * S


# -- hedge ratio ------------------------------------------------------------------------


def synthetic_prices(beta: float, seconds: int, seed: int = 1) -> list[tuple[int, float, float]]:
    rng = random.Random(seed)
    maker, hedge = 60_000.0, 60_010.0
    path = []
    for i in range(seconds):
        hedge_return = rng.gauss(0.0, 1e-4)
        maker_return = beta * hedge_return + rng.gauss(0.0, 3e-5)
        maker *= math.exp(maker_return)
        hedge *= math.exp(hedge_return)
        path.append((T0 + i * S + S // 2, maker, hedge))
    return path


def test_rolling_beta_recovers_a_known_beta() -> None:
    estimator = RollingBeta(window_ns=600 * S)
    for ts, maker, hedge in synthetic_prices(0.7, 600):
        estimator.update(ts, maker, hedge)
    assert estimator.beta == pytest.approx(0.7, abs=0.05)


def test_rolling_beta_forgets_returns_older_than_its_window() -> None:
    estimator = RollingBeta(window_ns=100 * S)
    path = synthetic_prices(0.5, 300, seed=2)
    later = synthetic_prices(1.5, 300, seed=3)
    scale_m, scale_h = path[-1][1] / later[0][1], path[-1][2] / later[0][2]
    for ts, maker, hedge in path:
        estimator.update(ts, maker, hedge)
    for ts, maker, hedge in later:
        estimator.update(ts + 300 * S, maker * scale_m, hedge * scale_h)
    assert estimator.beta == pytest.approx(1.5, abs=0.1)
    assert estimator.samples <= 100


def test_rolling_beta_waits_for_enough_samples() -> None:
    estimator = RollingBeta(window_ns=600 * S, min_samples=20)
    for ts, maker, hedge in synthetic_prices(0.7, 10):
        estimator.update(ts, maker, hedge)
    assert estimator.beta is None


def test_beta_mode_sizes_hedges_by_the_rolling_beta() -> None:
    h = hedger(ratio_mode=HedgeRatioMode.BETA, beta_window_seconds=600.0)
    for ts, maker, hedge in synthetic_prices(0.7, 600):
        h.on_fair_values(ts, maker, hedge)
    beta = h.hedge_ratio
    assert beta == pytest.approx(0.7, abs=0.05)
    assert h.netting_weight == pytest.approx(1 / beta)
    assert decide(h, 0.1).request.size_lots == math.floor(0.1 * beta / 0.001 + 1e-9)


def test_beta_mode_uses_the_fixed_ratio_until_beta_is_known() -> None:
    h = hedger(ratio_mode=HedgeRatioMode.BETA, ratio=1.0)
    assert h.hedge_ratio == 1.0


def test_hedging_loop_keeps_net_exposure_within_threshold_plus_one_fill() -> None:
    spot = Instrument(
        venue="sim-spot",
        symbol="BTC/USDT",
        exchange_symbol="BTCUSDT",
        kind=InstrumentKind.SPOT,
        base="BTC",
        quote="USDT",
        tick_size=0.01,
        lot_size=0.00001,
    )
    ledger = Ledger(spot)
    ledger.add_instrument(PERP)
    h = Hedger(HedgeParams(threshold_base=0.02, max_slippage_bps=5.0), PERP)
    rng = random.Random(5)
    fair = 60_000.0
    worst = 0.0
    for step in range(2_000):
        now = T0 + step * S // 10
        fair *= 1 - 2e-5 + rng.gauss(0.0, 1e-4)  # a falling market: the maker keeps buying
        perp_fair = fair + 3.0
        ledger.on_fair_value("sim-spot", "BTC/USDT", fair)
        ledger.on_fair_value(PERP.venue, PERP.symbol, perp_fair)
        h.on_touch(PERP.price_to_ticks(perp_fair - 0.05), PERP.price_to_ticks(perp_fair + 0.05))
        h.on_fair_values(now, fair, perp_fair)
        side = Side.BUY if rng.random() < 0.7 else Side.SELL
        ticks = spot.price_to_ticks(fair - side * 1.0)
        maker = Fill(
            "sim-spot",
            "BTC/USDT",
            now,
            now,
            "q-1",
            "1",
            "1",
            side,
            ticks,
            500,
            0.0,
            Liquidity.MAKER,
        )
        ledger.on_fill(maker)
        worst = max(worst, abs(ledger.net_exposure_base))
        intent = h.decide(now, ledger.net_exposure_base)
        if intent is not None:
            ledger.on_hedge_intent(intent)
            hedge = fill_of(intent, intent.request.size_lots)
            ledger.on_fill(hedge)
            h.on_fill(hedge)
            h.on_order_update(update(intent, OrderStatus.FILLED, intent.request.size_lots), now)
    pnl = ledger.pnl()
    assert h.stats.orders > 10
    assert worst <= 0.02 + 0.005 + 1e-9
    assert pnl.components_sum() == pnl.total
    assert pnl.hedge_cost < 0


def recorded_mids(path: Path) -> Iterator[tuple[int, float]]:
    """(local receive ns, mid) of every bookTicker in a recorded capture."""
    with gzip.open(path, "rb") as capture:
        for line in capture:
            ts, _, raw = line.partition(b" ")
            if b"bookTicker" in raw[:64]:
                data = orjson.loads(raw)["data"]
                yield int(ts), (float(data["b"]) + float(data["a"])) / 2


@pytest.mark.data
def test_rolling_beta_of_recorded_btc_spot_on_usdm_is_a_plausible_hedge_ratio() -> None:
    data_dir = default_data_dir()
    spot_file = data_dir / "spot" / "btcusdt_20240808.gz"
    perp_file = data_dir / "usdm" / "btcusdt_20240808.gz"
    if not (spot_file.exists() and perp_file.exists()):
        pytest.skip(f"recorded Binance captures not found in {data_dir} (set MMD_DATA_DIR)")
    events = sorted(
        [(ts, 0, mid) for ts, mid in recorded_mids(spot_file)]
        + [(ts, 1, mid) for ts, mid in recorded_mids(perp_file)]
    )
    estimator = RollingBeta(window_ns=300 * S)
    latest: list[float | None] = [None, None]
    for ts, venue, mid in events:
        latest[venue] = mid
        spot, perp = latest
        if spot is not None and perp is not None:
            estimator.update(ts, spot, perp)
    # 1 s returns correlate at about 0.84 and the perp leads: spot moves less than one-to-one.
    assert estimator.samples == 300
    assert estimator.beta is not None
    assert 0.6 < estimator.beta < 1.0


# -- live reconfiguration ----------------------------------------------------------------------


def test_a_raised_threshold_applies_from_the_next_decision() -> None:
    h = hedger(threshold_base=0.02)
    h.reconfigure(replace(h.config, threshold_base=0.05))
    assert h.decide(T0, 0.03) is None
    assert decide(h, 0.06).request.side is Side.SELL


def test_a_wider_slippage_bound_moves_the_hedge_limit_price() -> None:
    h = hedger(max_slippage_bps=5.0)
    before = decide(h, 0.03).request.price_ticks
    h2 = hedger(max_slippage_bps=5.0)
    h2.reconfigure(replace(h2.config, max_slippage_bps=20.0))
    after = decide(h2, 0.03).request.price_ticks
    assert after < before  # a sell may go further through the bid


def test_reconfigure_keeps_the_rolling_beta_while_its_window_is_unchanged() -> None:
    h = hedger(ratio_mode=HedgeRatioMode.BETA, beta_window_seconds=600.0, ratio=1.0)
    rng = random.Random(3)
    hedge_price = 60_000.0
    for i in range(40):
        hedge_price *= 1 + rng.gauss(0, 1e-4)
        maker_price = 60_000.0 * (hedge_price / 60_000.0) ** 1.5  # beta 1.5
        h.on_fair_values(T0 + i * S, maker_price, hedge_price)
    estimated = h.hedge_ratio
    assert estimated == pytest.approx(1.5, rel=1e-3)
    h.reconfigure(replace(h.config, threshold_base=0.04))
    assert h.hedge_ratio == estimated
    h.reconfigure(replace(h.config, beta_window_seconds=120.0))
    assert h.hedge_ratio == 1.0  # a new window starts without samples: the fixed ratio
