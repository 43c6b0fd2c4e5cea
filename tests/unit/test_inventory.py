"""Positions, netting across venues, average cost and realized/unrealized P&L."""

from __future__ import annotations

import json
from dataclasses import replace
from fractions import Fraction

import pytest

from mm_daemon.core.instruments import BTC_USDT_PERP, BTC_USDT_SPOT
from mm_daemon.core.inventory import Ledger
from mm_daemon.core.types import Fill, Instrument, InstrumentKind, Liquidity, Side

SPOT = BTC_USDT_SPOT
PERP = BTC_USDT_PERP
COIN_PERP = Instrument(
    venue="sim-coin",
    symbol="BTC/USD:BTC",
    exchange_symbol="BTCUSD_PERP",
    kind=InstrumentKind.PERPETUAL,
    base="BTC",
    quote="USD",
    tick_size=0.1,
    lot_size=1.0,
    contract_size_base=0.01,
)

_seq = iter(range(1, 1_000_000))


def fill(
    instrument: Instrument,
    side: Side,
    price: float,
    size: float,
    *,
    fee: float = 0.0,
    client_order_id: str = "q-1",
    liquidity: Liquidity = Liquidity.MAKER,
) -> Fill:
    n = next(_seq)
    return Fill(
        venue=instrument.venue,
        symbol=instrument.symbol,
        ts_exchange_ns=n,
        ts_local_ns=n,
        client_order_id=client_order_id,
        exchange_order_id=str(n),
        trade_id=str(n),
        side=side,
        price_ticks=instrument.price_to_ticks(price),
        size_lots=instrument.size_to_lots(size),
        fee_quote=fee,
        liquidity=liquidity,
    )


def ledger(weights: dict[str, float] | None = None) -> Ledger:
    book = Ledger(SPOT, netting_weights=weights)
    book.add_instrument(PERP)
    return book


def test_spot_long_and_perp_short_net_to_zero_with_weight_one() -> None:
    book = ledger()
    book.on_fill(fill(SPOT, Side.BUY, 60_000, 0.05))
    book.on_fill(fill(PERP, Side.SELL, 60_010, 0.05, client_order_id="hdg-1"))
    assert book.position("sim-spot", "BTC/USDT").base == pytest.approx(0.05)
    assert book.position("sim-perp", "BTC/USDT:USDT").base == pytest.approx(-0.05)
    assert book.net_exposure_base == pytest.approx(0.0, abs=1e-12)


def test_netting_weight_scales_the_hedge_venue_position() -> None:
    book = ledger({"sim-perp": 0.5})
    book.on_fill(fill(SPOT, Side.BUY, 60_000, 0.05))
    book.on_fill(fill(PERP, Side.SELL, 60_000, 0.05))
    assert book.net_exposure_base == pytest.approx(0.025)


def test_hedge_sized_by_the_inverse_weight_nets_to_zero() -> None:
    book = ledger({"sim-perp": 2.0})
    book.on_fill(fill(SPOT, Side.BUY, 60_000, 0.1))
    book.on_fill(fill(PERP, Side.SELL, 60_000, 0.05))
    assert book.net_exposure_base == pytest.approx(0.0, abs=1e-12)


def test_changing_the_netting_weight_updates_net_exposure() -> None:
    book = ledger()
    book.on_fill(fill(PERP, Side.SELL, 60_000, 0.1))
    book.set_netting_weight("sim-perp", 0.8)
    assert book.net_exposure_base == pytest.approx(-0.08)


def test_perp_position_is_contracts_times_contract_size() -> None:
    book = Ledger(SPOT)
    book.add_instrument(COIN_PERP)
    book.on_fill(fill(COIN_PERP, Side.BUY, 60_000, 5))
    position = book.position("sim-coin", "BTC/USD:BTC")
    assert position.lots == 5
    assert position.base == pytest.approx(0.05)
    assert book.net_exposure_base == pytest.approx(0.05)


def test_inventory_by_venue_reports_base_per_venue() -> None:
    book = ledger()
    book.on_fill(fill(SPOT, Side.SELL, 60_000, 0.02))
    book.on_fill(fill(PERP, Side.BUY, 60_000, 0.03))
    assert book.inventory_by_venue() == pytest.approx({"sim-spot": -0.02, "sim-perp": 0.03})


def test_average_cost_of_adds_is_size_weighted() -> None:
    book = ledger()
    book.on_fill(fill(SPOT, Side.BUY, 100, 1))
    book.on_fill(fill(SPOT, Side.BUY, 110, 3))
    assert book.position("sim-spot", "BTC/USDT").avg_cost == pytest.approx(107.5)


def test_partial_close_realizes_against_average_cost_and_keeps_it() -> None:
    book = ledger()
    book.on_fill(fill(SPOT, Side.BUY, 100, 1))
    book.on_fill(fill(SPOT, Side.BUY, 110, 1))
    book.on_fill(fill(SPOT, Side.SELL, 120, 0.5))
    position = book.position("sim-spot", "BTC/USDT")
    assert position.realized == Fraction(15, 2)
    assert position.avg_cost == pytest.approx(105)
    assert position.base == pytest.approx(1.5)


def test_short_partial_close_realizes_the_drop() -> None:
    book = ledger()
    book.on_fill(fill(PERP, Side.SELL, 200, 2))
    book.on_fill(fill(PERP, Side.BUY, 190, 1))
    position = book.position("sim-perp", "BTC/USDT:USDT")
    assert position.realized == 10
    assert position.avg_cost == pytest.approx(200)


def test_flip_closes_the_position_and_opens_the_rest_at_the_fill_price() -> None:
    book = ledger()
    book.on_fill(fill(SPOT, Side.BUY, 100, 1))
    book.on_fill(fill(SPOT, Side.SELL, 110, 3))
    position = book.position("sim-spot", "BTC/USDT")
    assert position.realized == 10
    assert position.base == pytest.approx(-2)
    assert position.avg_cost == pytest.approx(110)


def test_closing_exactly_leaves_a_flat_position_without_cost() -> None:
    book = ledger()
    book.on_fill(fill(SPOT, Side.BUY, 100, 1))
    book.on_fill(fill(SPOT, Side.SELL, 101, 1))
    position = book.position("sim-spot", "BTC/USDT")
    assert position.lots == 0
    assert position.avg_cost is None
    assert position.cost_basis == 0
    assert position.realized == 1


def test_unrealized_marks_the_open_position_to_fair_value() -> None:
    book = ledger()
    book.on_fill(fill(SPOT, Side.BUY, 100, 2))
    assert book.position("sim-spot", "BTC/USDT").unrealized(103.5) == 7


def test_spot_quote_balance_change_includes_the_fee() -> None:
    book = ledger()
    book.on_fill(fill(SPOT, Side.BUY, 100, 2, fee=0.25))
    position = book.position("sim-spot", "BTC/USDT")
    assert position.quote_flow == Fraction(-20025, 100)
    assert position.fees == Fraction(1, 4)


def test_realized_plus_unrealized_minus_fees_is_total_pnl() -> None:
    book = ledger()
    book.on_fair_value("sim-spot", "BTC/USDT", 100.0)
    book.on_fair_value("sim-perp", "BTC/USDT:USDT", 100.5)
    book.on_fill(fill(SPOT, Side.BUY, 99.99, 1, fee=-0.01))
    book.on_fill(fill(PERP, Side.SELL, 100.4, 0.7, fee=0.03, client_order_id="hdg-1"))
    book.on_fill(fill(SPOT, Side.SELL, 100.02, 0.4, fee=-0.004))
    book.on_fair_value("sim-spot", "BTC/USDT", 101.25)
    book.on_fair_value("sim-perp", "BTC/USDT:USDT", 101.5)
    assert book.realized() + book.unrealized() - book.fees() == book.pnl().total


def test_max_abs_net_exposure_keeps_the_peak() -> None:
    book = ledger()
    book.on_fill(fill(SPOT, Side.SELL, 100, 0.3))
    book.on_fill(fill(SPOT, Side.BUY, 100, 0.5))
    assert book.net_exposure_base == pytest.approx(0.2)
    assert book.max_abs_net_exposure_base == pytest.approx(0.3)


def test_fill_stats_split_quoting_and_hedge_fills() -> None:
    book = ledger()
    book.on_fill(fill(SPOT, Side.BUY, 100, 1))
    book.on_fill(fill(SPOT, Side.SELL, 101, 1, liquidity=Liquidity.TAKER))
    book.on_fill(fill(PERP, Side.SELL, 100, 0.5, client_order_id="hdg-3"))
    assert (book.quote_stats.buys, book.quote_stats.sells) == (1, 1)
    assert (book.quote_stats.maker, book.quote_stats.taker) == (1, 1)
    assert book.quote_stats.volume_quote == pytest.approx(201)
    assert book.hedge_stats.count == 1
    assert book.hedge_stats.volume_base == pytest.approx(0.5)


def test_fill_on_an_unregistered_instrument_is_refused() -> None:
    book = Ledger(SPOT)
    with pytest.raises(KeyError, match="sim-perp"):
        book.on_fill(fill(PERP, Side.BUY, 100, 1))


# -- restart: exported state ----------------------------------------------------------------


def traded_ledger() -> Ledger:
    book = ledger({"sim-perp": 0.8})
    book.on_fair_value("sim-spot", "BTC/USDT", 60_000.013)
    book.on_fair_value("sim-perp", "BTC/USDT:USDT", 60_020.5)
    book.on_fill(fill(SPOT, Side.BUY, 59_999.99, 0.12345, fee=-0.0007))
    book.on_fill(fill(PERP, Side.SELL, 60_019.9, 0.1, fee=0.0012, client_order_id="hdg-1"))
    book.on_fill(fill(SPOT, Side.SELL, 60_001.01, 0.2, fee=0.0048, liquidity=Liquidity.TAKER))
    book.on_fair_value("sim-spot", "BTC/USDT", 60_003.7)
    return book


def test_restored_ledger_continues_exactly_like_the_original() -> None:
    original = traded_ledger()
    restored = ledger({"sim-perp": 0.8})
    restored.restore_state(original.export_state())
    for book in (original, restored):
        book.on_fill(fill(SPOT, Side.BUY, 60_000.5, 0.3, fee=0.0001))
        book.on_fair_value("sim-perp", "BTC/USDT:USDT", 60_031.1)
    assert restored.export_state() == original.export_state()
    assert restored.pnl() == original.pnl()


def test_exported_state_survives_json_with_integers_exact() -> None:
    original = traded_ledger()
    restored = ledger({"sim-perp": 0.8})
    restored.restore_state(json.loads(json.dumps(original.export_state())))
    assert restored.pnl() == original.pnl()
    assert restored.position("sim-spot", "BTC/USDT").cost_basis == (
        original.position("sim-spot", "BTC/USDT").cost_basis
    )


def test_restore_refuses_a_position_counted_in_other_ticks() -> None:
    state = traded_ledger().export_state()
    other = Ledger(replace(SPOT, tick_size=0.1))
    other.add_instrument(PERP)
    with pytest.raises(ValueError, match="tick, lot and contract size"):
        other.restore_state(state)
    assert other.position("sim-spot", "BTC/USDT").lots == 0


def test_restore_refuses_a_position_on_an_instrument_not_traded_here() -> None:
    state = traded_ledger().export_state()
    with pytest.raises(ValueError, match="sim-perp BTC/USDT:USDT"):
        Ledger(SPOT).restore_state(state)


def test_a_fill_booked_with_its_recorded_marks_books_as_it_did_then() -> None:
    book = ledger()
    book.on_fair_value("sim-spot", "BTC/USDT", 60_000.0)
    late = fill(SPOT, Side.BUY, 59_999.5, 0.01)
    marks = book.entry_marks(late)
    later = ledger()
    later.on_fair_value("sim-spot", "BTC/USDT", 61_000.0)
    later.on_fill(late, marks)
    book.on_fill(late)
    later.on_fair_value("sim-spot", "BTC/USDT", 60_000.0)
    assert later.pnl() == book.pnl()


def test_entry_marks_of_a_hedge_fill_come_from_its_decision() -> None:
    book = ledger()
    book.on_fair_value("sim-perp", "BTC/USDT:USDT", 60_050.0)
    book.on_hedge_decision("x-7", 60_010.0, 60_000.0)
    marks = book.entry_marks(fill(PERP, Side.SELL, 60_000, 0.1, client_order_id="x-7"))
    assert marks.hedge
    assert marks.entry_nanos == 60_010 * 1_000_000_000
