"""The simulator's funding rate: Binance's premium-index formula, clamp, interval scaling, cap."""

from __future__ import annotations

import pytest

from mm_daemon.core.types import InstrumentKind
from mm_daemon.sim.funding import EIGHT_HOURS_NS, FundingParams, VenueFunding, next_funding_time_ns
from mm_daemon.sim.matching import Accounts
from mm_daemon.sim.venue import SimVenue

S = 1_000_000_000


def funding(premiums: list[float], **params: float) -> VenueFunding:
    venue = SimVenue.create("sim-perp", "usdm", [], Accounts(InstrumentKind.PERPETUAL, {}))
    model = VenueFunding(venue, FundingParams(**params))  # type: ignore[arg-type]  floats and ints
    for premium in premiums:
        model.record_premium("BTCUSDT", premium)
    return model


def test_a_small_premium_gives_the_interest_rate() -> None:
    assert funding([0.0002, -0.0001]).rate("BTCUSDT") == 0.0001


def test_a_large_premium_passes_through_beyond_the_clamp() -> None:
    # F = P + clamp(I - P, -0.05 %, 0.05 %) = 0.003 - 0.0005
    assert funding([0.003]).rate("BTCUSDT") == pytest.approx(0.0025)


def test_later_premium_samples_weigh_more() -> None:
    # weights 1 and 2: (0.002 + 2 x 0.008) / 3 = 0.006; F = 0.006 - 0.0005
    assert funding([0.002, 0.008]).rate("BTCUSDT") == pytest.approx(0.0055)


def test_the_rate_is_capped() -> None:
    assert funding([0.05]).rate("BTCUSDT") == 0.0075


def test_a_shorter_interval_scales_the_rate() -> None:
    model = funding([0.0], interval_ns=EIGHT_HOURS_NS // 8)
    assert model.rate("BTCUSDT") == pytest.approx(0.0001 / 8)


def test_a_fixed_rate_replaces_the_model() -> None:
    assert funding([0.05], fixed_rate=-0.0003).rate("BTCUSDT") == -0.0003


def test_eight_hour_settlements_fall_at_binances_times_of_day() -> None:
    # 2024-08-09 05:12:00 UTC -> 08:00:00 UTC
    assert next_funding_time_ns(1_723_180_320 * S, EIGHT_HOURS_NS) == 1_723_190_400 * S
