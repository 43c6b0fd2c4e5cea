"""Estimators recover known parameters from synthetic series and stay sane on recorded data."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import orjson
import pytest

from mm_daemon.binance.capture import default_data_dir, read_capture
from mm_daemon.binance.depth import BinanceDepthSync
from mm_daemon.binance.frames import parse_depth_event, parse_levels, parse_trade_event
from mm_daemon.core.book import SequenceRule
from mm_daemon.core.estimators import (
    EwmaVolatility,
    TradeFlowImbalance,
    TradeIntensity,
    touch_imbalance,
)
from mm_daemon.core.market_state import MarketState
from mm_daemon.core.types import Instrument, InstrumentKind

S = 1_000_000_000


def diffusion(sigma: float, n: int, mean_dt_s: float, rng: random.Random, regular: bool):
    """(ts_ns, price) of a driftless log-price diffusion sampled at regular or random times."""
    t = 0
    log_p = math.log(60_000.0)
    for _ in range(n):
        dt_s = mean_dt_s if regular else rng.expovariate(1.0 / mean_dt_s)
        t += max(1, int(dt_s * S))
        log_p += rng.gauss(0.0, sigma * math.sqrt(dt_s))
        yield t, math.exp(log_p)


@pytest.mark.parametrize("regular", [True, False], ids=["regular", "irregular"])
def test_volatility_recovers_sigma_within_ten_percent(regular: bool) -> None:
    sigma = 3e-4  # 3 bps per sqrt(second)
    vol = EwmaVolatility(halflife_ns=600 * S)
    for ts, price in diffusion(sigma, 30_000, 0.2, random.Random(11), regular):
        vol.update(price, ts)
    assert vol.value == pytest.approx(sigma, rel=0.10)


def test_volatility_does_not_depend_on_the_sampling_rate() -> None:
    sigma = 5e-4
    fast = EwmaVolatility(halflife_ns=600 * S)
    slow = EwmaVolatility(halflife_ns=600 * S)
    for ts, price in diffusion(sigma, 40_000, 0.05, random.Random(5), regular=False):
        fast.update(price, ts)
    for ts, price in diffusion(sigma, 4_000, 0.5, random.Random(6), regular=False):
        slow.update(price, ts)
    assert fast.value == pytest.approx(slow.value, rel=0.15)


def test_volatility_min_interval_skips_samples() -> None:
    vol = EwmaVolatility(halflife_ns=S, min_interval_ns=S)
    vol.update(100.0, 0)
    vol.update(101.0, S // 2)
    assert vol.samples == 0
    vol.update(101.0, S)
    assert vol.samples == 1


def test_volatility_is_zero_before_any_return() -> None:
    vol = EwmaVolatility(halflife_ns=S)
    vol.update(100.0, 0)
    assert vol.value == 0.0


def synthetic_trades(a: float, k: float, seconds: float, rng: random.Random):
    """Trades at Poisson rate a, distance from mid exponential with rate k (ticks)."""
    t = 0.0
    while True:
        t += rng.expovariate(a)
        if t >= seconds:
            return
        yield int(t * S), rng.expovariate(k)


def test_intensity_recovers_k_within_twenty_percent() -> None:
    a, k = 20.0, 0.3
    est = TradeIntensity(window_ns=300 * S)
    rng = random.Random(2)
    mid = 1000.5
    for ts, dist in synthetic_trades(a, k, 300.0, rng):
        side = 1 if rng.random() < 0.5 else -1
        est.on_trade(mid + side * dist, mid, ts)
    fit = est.fit(300 * S)
    assert fit is not None
    assert fit.k_per_tick == pytest.approx(k, rel=0.20)
    assert fit.a_per_second == pytest.approx(a, rel=0.20)


def test_intensity_window_forgets_old_trades() -> None:
    est = TradeIntensity(window_ns=10 * S)
    for i in range(100):
        est.on_trade(100.0 + (i % 5), 100.0, i * S // 10)
    assert est.fit(10 * S) is not None
    assert est.fit(40 * S) is None


def test_intensity_needs_two_distance_bins() -> None:
    est = TradeIntensity(window_ns=10 * S)
    for i in range(50):
        est.on_trade(100.5, 100.0, i)
    assert est.fit(S) is None


def test_flow_imbalance_is_signed_share_of_volume() -> None:
    flow = TradeFlowImbalance(halflife_ns=S)
    flow.on_trade(3.0, +1, 0)
    flow.on_trade(1.0, -1, 0)
    assert flow.value == pytest.approx(0.5)


def test_flow_imbalance_decays_old_trades() -> None:
    flow = TradeFlowImbalance(halflife_ns=S)
    flow.on_trade(1.0, +1, 0)
    flow.on_trade(1.0, -1, 10 * S)  # the buy has decayed by 2^-10
    assert flow.value == pytest.approx(-1.0, abs=0.01)


def test_touch_imbalance_sign_and_range() -> None:
    assert touch_imbalance(3, 1) == 0.5
    assert touch_imbalance(0, 4) == -1.0
    assert touch_imbalance(0, 0) == 0.0


DATA = default_data_dir() if default_data_dir().is_dir() else None


@pytest.mark.data
@pytest.mark.skipif(DATA is None, reason="recorded Binance captures absent (set MMD_DATA_DIR)")
def test_estimators_give_sane_values_on_recorded_btc_usdm(
    record_property: Callable[[str, object], None],
) -> None:
    """Volatility a few bps/sqrt(s), k positive, A near the recorded trade rate."""
    assert DATA is not None
    inst = Instrument(
        "perp", "BTC/USDT:USDT", "BTCUSDT", InstrumentKind.PERPETUAL, "BTC", "USDT", 0.1, 0.001
    )
    sync = BinanceDepthSync(inst, "rec", usdm=True)
    state = MarketState(
        inst,
        fair_value_model="microprice",
        book=sync.book,
        book_is_shared=True,
        rule=SequenceRule.BINANCE_USDM,
        volatility_halflife_ns=60 * S,
        intensity_window_ns=300 * S,
    )
    last_ts = 0
    trades = 0
    for ts, raw in read_capture(DATA / "usdm/btcusdt_20240808.gz"):
        msg = orjson.loads(raw)
        if "lastUpdateId" in msg:
            sync.on_snapshot(
                msg["lastUpdateId"],
                parse_levels(msg["bids"], 0.1, 0.001),
                parse_levels(msg["asks"], 0.1, 0.001),
            )
            continue
        data = msg["data"]
        if data.get("e") == "depthUpdate":
            delta = parse_depth_event(data, inst, "rec", ts)
            if not sync.on_delta(delta):
                state.on_event(delta)
        elif data.get("e") == "trade":
            state.on_event(parse_trade_event(data, inst, "rec", ts))
            trades += 1
            last_ts = data["T"] * 1_000_000
    fit = state.intensity_fit(last_ts)
    vol_bps = state.volatility.value_bps
    record_property("volatility_bps_per_sqrt_s", round(vol_bps, 3))
    record_property("intensity", repr(fit))
    record_property("flow_imbalance", round(state.flow_imbalance, 3))
    assert 0.1 < vol_bps < 20.0
    assert fit is not None
    assert 0.0 < fit.k_per_tick < 5.0
    assert 1.0 < fit.a_per_second < 1000.0
    assert -1.0 <= state.flow_imbalance <= 1.0
