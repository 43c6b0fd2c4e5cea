"""Funding on perpetual positions: the paper settlement from the mark price stream, and the
`funding` component of the P&L attribution."""

from __future__ import annotations

import json
from fractions import Fraction

from mm_daemon.core.funding import FundingSettler, funding_amount
from mm_daemon.core.instruments import BTC_USDT_PERP, BTC_USDT_SPOT
from mm_daemon.core.inventory import Ledger
from mm_daemon.core.pnl import Attribution, InstrumentScale
from mm_daemon.core.types import MarkPrice, Side
from tests.unit.test_pnl import make_fill

PERP = BTC_USDT_PERP
SPOT = BTC_USDT_SPOT
S = 1_000_000_000
HOUR = 3600 * S
FUNDING_TIME = 8 * HOUR


def mark(ts_s: float, price: float, rate: float, next_funding_ns: int = FUNDING_TIME) -> MarkPrice:
    ts = round(ts_s * S)
    return MarkPrice(PERP.venue, PERP.symbol, ts, ts, price, price, rate, next_funding_ns)


def settler() -> FundingSettler:
    return FundingSettler(PERP.venue, PERP.symbol, "USDT")


# -- the amount ---------------------------------------------------------------------------


def test_a_long_pays_when_the_rate_is_positive() -> None:
    assert funding_amount(0.5, 60_000.0, 0.0001) == -3.0


def test_a_short_receives_when_the_rate_is_positive() -> None:
    assert funding_amount(-0.5, 60_000.0, 0.0001) == 3.0


def test_a_long_receives_when_the_rate_is_negative() -> None:
    assert funding_amount(0.5, 60_000.0, -0.0002) == 6.0


def test_the_amount_is_rounded_to_eight_decimals_as_binance_prints_income() -> None:
    assert funding_amount(0.001, 61_234.56789, 0.000123) == round(
        -0.001 * 61_234.56789 * 0.000123, 8
    )


def test_a_flat_position_settles_zero() -> None:
    assert funding_amount(0.0, 60_000.0, 0.0001) == 0.0


# -- the paper settlement ---------------------------------------------------------------------


def test_nothing_is_settled_before_the_funding_time() -> None:
    funding = settler()
    assert funding.on_mark_price(mark(28_798, 60_000.0, 0.0001), 1.0) is None
    assert funding.on_mark_price(mark(28_799, 60_010.0, 0.0001), 1.0) is None


def test_the_first_update_at_the_funding_time_settles_it_with_the_last_rate_and_mark_before() -> (
    None
):
    funding = settler()
    funding.on_mark_price(mark(28_798, 60_000.0, 0.0003), 0.2)
    funding.on_mark_price(mark(28_799, 60_100.0, 0.0001), 0.2)
    fee = funding.on_mark_price(mark(28_800, 70_000.0, 0.0009, FUNDING_TIME + 8 * HOUR), 0.2)
    assert fee is not None
    assert (fee.funding_time_ns, fee.rate, fee.mark_price, fee.position_base) == (
        FUNDING_TIME,
        0.0001,
        60_100.0,
        0.2,
    )
    assert fee.amount_quote == funding_amount(0.2, 60_100.0, 0.0001)


def test_a_later_funding_time_announced_settles_the_previous_one() -> None:
    funding = settler()
    funding.on_mark_price(mark(28_799, 60_000.0, 0.0001), -1.0)
    # Stamped a little before the funding time by a skewed clock, yet announcing the next one.
    fee = funding.on_mark_price(mark(28_799.5, 60_000.0, 0.0002, FUNDING_TIME + 8 * HOUR), -1.0)
    assert fee is not None
    assert fee.funding_time_ns == FUNDING_TIME
    assert fee.amount_quote == 6.0


def test_each_funding_time_settles_once() -> None:
    funding = settler()
    funding.on_mark_price(mark(28_799, 60_000.0, 0.0001), 1.0)
    assert funding.on_mark_price(mark(28_800, 60_000.0, 0.0001), 1.0) is not None
    assert funding.on_mark_price(mark(28_801, 60_000.0, 0.0001), 1.0) is None
    assert (
        funding.on_mark_price(mark(28_802, 60_000.0, 0.0001, FUNDING_TIME + 8 * HOUR), 1.0) is None
    )


def test_an_update_past_an_unsettled_funding_time_does_not_replace_the_rate_it_settles_at() -> None:
    funding = settler()
    funding.on_mark_price(mark(28_799, 60_000.0, 0.0001), 1.0)
    first = funding.on_mark_price(mark(28_800, 99_999.0, 0.0099), 1.0)
    assert first is not None
    assert (first.rate, first.mark_price) == (0.0001, 60_000.0)


def test_settlements_follow_one_another_over_several_funding_times() -> None:
    funding = settler()
    interval = 3 * S
    fees = []
    for second in range(1, 10):
        next_funding = -(-second * S // interval) * interval
        if next_funding == second * S:
            next_funding += interval
        fee = funding.on_mark_price(mark(second, 100.0 + second, 0.001, next_funding), 2.0)
        if fee is not None:
            fees.append(fee)
    assert [f.funding_time_ns // S for f in fees] == [3, 6, 9]
    assert [f.mark_price for f in fees] == [102.0, 105.0, 108.0]


def test_a_settler_restarted_past_a_funding_time_does_not_settle_it_again() -> None:
    funding = FundingSettler(PERP.venue, PERP.symbol, "USDT", settled_through_ns=FUNDING_TIME)
    funding.on_mark_price(mark(28_799, 60_000.0, 0.0001), 1.0)
    assert funding.on_mark_price(mark(28_800, 60_000.0, 0.0001), 1.0) is None


# -- the attribution --------------------------------------------------------------------------


def ledger() -> Ledger:
    book = Ledger(SPOT)
    book.add_instrument(PERP)
    book.on_fair_value(SPOT.venue, SPOT.symbol, 100.0)
    book.on_fair_value(PERP.venue, PERP.symbol, 100.0)
    return book


def test_funding_is_its_own_component_and_counts_in_the_total() -> None:
    book = ledger()
    book.on_fill(make_fill(PERP, Side.SELL, 1_000, 1_000, client_order_id="hdg-1"))
    before = book.pnl()
    book.on_funding(PERP.venue, PERP.symbol, 0.25)
    after = book.pnl()
    assert after.funding == Fraction(1, 4)
    assert after.total - before.total == Fraction(1, 4)


def test_funding_moves_no_other_component_and_no_position() -> None:
    book = ledger()
    book.on_fill(make_fill(PERP, Side.SELL, 1_000, 1_000, client_order_id="hdg-1"))
    before = book.pnl()
    book.on_funding(PERP.venue, PERP.symbol, -1.5)
    after = book.pnl()
    assert (after.spread_capture, after.fees, after.inventory, after.hedge_cost, after.basis) == (
        before.spread_capture,
        before.fees,
        before.inventory,
        before.hedge_cost,
        before.basis,
    )
    assert book.position(PERP.venue, PERP.symbol).lots == -1_000


def test_components_with_funding_sum_to_the_total_exactly() -> None:
    book = ledger()
    book.on_fill(make_fill(SPOT, Side.BUY, 9_990, 123_457, fee=0.013))
    book.on_fill(make_fill(PERP, Side.SELL, 1_001, 1_235, fee=0.07, client_order_id="hdg-1"))
    book.on_funding(PERP.venue, PERP.symbol, -0.01234567)
    book.on_funding(PERP.venue, PERP.symbol, 0.00000001)
    book.on_fair_value(SPOT.venue, SPOT.symbol, 101.37)
    pnl = book.pnl()
    assert pnl.components_sum_atoms() == pnl.total_atoms
    assert pnl.funding == Fraction(-1234566, 10**8)


def test_funding_shows_in_its_instruments_share_only() -> None:
    book = ledger()
    book.on_funding(PERP.venue, PERP.symbol, 2.0)
    assert book.pnl(((PERP.venue, PERP.symbol),)).funding == 2
    assert book.pnl(((SPOT.venue, SPOT.symbol),)).funding == 0


def test_funding_is_carried_by_the_exported_state() -> None:
    book = ledger()
    book.on_funding(PERP.venue, PERP.symbol, -0.75)
    restored = ledger()
    restored.restore_state(json.loads(json.dumps(book.export_state())))
    assert restored.pnl() == book.pnl()


def test_a_state_written_before_funding_was_booked_restores_with_none() -> None:
    book = ledger()
    book.on_fill(make_fill(SPOT, Side.BUY, 9_990, 100_000))
    state = book.export_state()["attribution"]
    del state["funding_atoms"]
    for row in state["instruments"]:
        del row["funding_atoms"]
    restored = Attribution()
    restored.add_instrument((SPOT.venue, SPOT.symbol), InstrumentScale.of(0.01, 0.00001))
    restored.add_instrument((PERP.venue, PERP.symbol), InstrumentScale.of(0.1, 0.001))
    restored.restore_state(state)
    marks = {(SPOT.venue, SPOT.symbol): 100 * 10**9, (PERP.venue, PERP.symbol): 100 * 10**9}
    assert restored.breakdown(marks, 100 * 10**9).funding_atoms == 0
