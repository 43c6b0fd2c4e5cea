"""Risk state transitions and pre-trade checks."""

from __future__ import annotations

import pytest

from mm_daemon.config import InventoryConfig, QuotingConfig, RiskConfig
from mm_daemon.core.risk import RiskGate, RiskLimits, RiskState
from mm_daemon.core.types import Instrument, InstrumentKind, OrderRequest, Side
from mm_daemon.engine import wiring

LIMITS = RiskLimits(
    max_open_orders_per_side=2,
    max_order_size_lots=100,
    price_band_bps=50.0,
    inventory_limit_base=1.0,
    max_drawdown_quote=100.0,
)
FAIR = 100_000.0  # ticks


def order(side: Side = Side.BUY, price: int = 99_990, size: int = 10) -> OrderRequest:
    return OrderRequest("v", "BTC/USDT", "c1", side, price, size)


def test_starts_active() -> None:
    assert RiskGate(LIMITS).state is RiskState.ACTIVE


def test_exposure_at_the_inventory_limit_means_reducing() -> None:
    gate = RiskGate(LIMITS)
    assert gate.update(net_exposure_base=-1.0, pnl_quote=0.0) is RiskState.REDUCING
    assert gate.update(net_exposure_base=0.5, pnl_quote=0.0) is RiskState.ACTIVE


def test_drawdown_beyond_the_limit_halts_and_latches() -> None:
    gate = RiskGate(LIMITS)
    gate.update(0.0, 250.0)
    assert gate.update(0.0, 149.0) is RiskState.HALTED  # 101 below the peak of 250
    assert gate.update(0.0, 300.0) is RiskState.HALTED
    assert "drawdown" in gate.halted_reason


def test_drawdown_within_the_limit_stays_active() -> None:
    gate = RiskGate(LIMITS)
    gate.update(0.0, 250.0)
    assert gate.update(0.0, 151.0) is RiskState.ACTIVE


def test_drawdown_does_not_halt_when_halting_is_off() -> None:
    limits = RiskLimits(2, 100, 50.0, 1.0, 100.0, halt_on_drawdown=False)
    gate = RiskGate(limits)
    gate.update(0.0, 0.0)
    assert gate.update(0.0, -1000.0) is RiskState.ACTIVE


def test_reset_leaves_halted() -> None:
    gate = RiskGate(LIMITS)
    gate.halt("operator")
    gate.reset()
    assert gate.update(0.0, 0.0) is RiskState.ACTIVE


def test_an_order_within_limits_passes() -> None:
    assert RiskGate(LIMITS).check(order(), FAIR, open_orders_same_side=1) is None


def test_too_many_open_orders_on_a_side_is_refused() -> None:
    assert RiskGate(LIMITS).check(order(), FAIR, open_orders_same_side=2) == "max_open_orders"


def test_oversized_order_is_refused() -> None:
    assert RiskGate(LIMITS).check(order(size=101), FAIR, 0) == "size"


def test_price_outside_the_band_is_refused() -> None:
    # 50 bps of 100_000 ticks is 500 ticks.
    gate = RiskGate(LIMITS)
    assert gate.check(order(price=99_500), FAIR, 0) is None
    assert gate.check(order(price=99_499), FAIR, 0) == "price_band"


def test_halted_refuses_every_order() -> None:
    gate = RiskGate(LIMITS)
    gate.halt("operator")
    assert gate.check(order(), FAIR, 0) == "halted"


def test_reducing_refuses_an_order_that_grows_exposure() -> None:
    gate = RiskGate(LIMITS)
    gate.update(1.5, 0.0)
    assert gate.check(order(Side.BUY), FAIR, 0, net_exposure_base=1.5) == "reducing"
    assert gate.check(order(Side.SELL, 100_010), FAIR, 0, net_exposure_base=1.5) is None


def test_limits_from_config_cap_size_at_twice_the_largest_quote() -> None:
    instrument = Instrument(
        "v", "BTC/USDT", "BTCUSDT", InstrumentKind.SPOT, "BTC", "USDT", 0.01, 0.001
    )
    quoting = QuotingConfig(order_size_base=0.01, levels=2, level_size_multiplier=2.0)
    limits = wiring.risk_limits(RiskConfig(), InventoryConfig(), quoting, instrument)
    assert limits.max_order_size_lots == 40  # largest quote 0.02 base = 20 lots, doubled


def test_a_halted_gate_restored_stays_halted_with_its_reason() -> None:
    gate = RiskGate(LIMITS)
    gate.update(0.0, 250.0)
    gate.update(0.0, 100.0)
    restored = RiskGate(LIMITS)
    restored.restore_state(gate.export_state())
    assert restored.update(0.0, 400.0) is RiskState.HALTED
    assert restored.halted_reason == gate.halted_reason


def test_a_restored_peak_keeps_measuring_the_drawdown_from_it() -> None:
    gate = RiskGate(LIMITS)
    gate.update(0.0, 250.0)
    restored = RiskGate(LIMITS)
    restored.restore_state(gate.export_state())
    assert restored.update(0.0, 149.0) is RiskState.HALTED


def test_restore_refuses_an_unknown_state() -> None:
    gate = RiskGate(LIMITS)
    with pytest.raises(ValueError, match="unknown risk state"):
        gate.restore_state({"state": "PANIC", "halted_reason": "", "peak_pnl_quote": None})
    assert gate.state is RiskState.ACTIVE


NOTIONAL_LIMITS = RiskLimits(
    max_open_orders_per_side=2,
    max_order_size_lots=100_000,
    price_band_bps=50.0,
    inventory_limit_base=10.0,
    max_drawdown_quote=100.0,
    max_order_notional_quote=1_000.0,
    max_position_notional_quote=5_000.0,
    tick_size=0.1,  # 100,000 ticks: 10,000 quote
    base_per_lot=0.001,
)


def test_order_worth_more_than_the_order_notional_limit_is_refused() -> None:
    gate = RiskGate(NOTIONAL_LIMITS)
    assert gate.check(order(size=100), FAIR, 0) is None  # 0.1 base: 1,000 quote
    assert gate.check(order(size=101), FAIR, 0) == "order_notional"


def test_order_carrying_the_position_past_its_notional_limit_is_refused() -> None:
    gate = RiskGate(NOTIONAL_LIMITS)
    # Long 0.45 base (4,500 quote): a buy of 0.06 makes 5,100.
    assert gate.check(order(size=60), FAIR, 0, position_base=0.45) == "position_notional"


def test_order_reducing_a_position_past_its_notional_limit_passes() -> None:
    gate = RiskGate(NOTIONAL_LIMITS)
    sell = order(Side.SELL, price=100_010, size=60)
    assert gate.check(sell, FAIR, 0, position_base=0.8) is None


def test_limits_from_config_carry_the_notional_limits_and_the_instruments_units() -> None:
    instrument = Instrument(
        "v", "BTC/USDT", "BTCUSDT", InstrumentKind.SPOT, "BTC", "USDT", 0.01, 1e-5
    )
    limits = wiring.risk_limits(
        RiskConfig(max_order_notional_quote=500.0, max_position_notional_quote=9_000.0),
        InventoryConfig(),
        QuotingConfig(),
        instrument,
    )
    assert (limits.max_order_notional_quote, limits.max_position_notional_quote) == (500.0, 9_000.0)
    assert (limits.tick_size, limits.base_per_lot) == (0.01, 1e-5)
