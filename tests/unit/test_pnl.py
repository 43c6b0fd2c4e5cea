"""P&L attribution: each component's definition, and that they sum to the total exactly."""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mm_daemon.core.hedging import HedgeIntent
from mm_daemon.core.instruments import BTC_USDT_PERP, BTC_USDT_SPOT
from mm_daemon.core.inventory import Ledger
from mm_daemon.core.pnl import COMPONENTS, Attribution, InstrumentScale
from mm_daemon.core.types import (
    Fill,
    Instrument,
    Liquidity,
    OrderRequest,
    OrderType,
    Side,
)

SPOT = BTC_USDT_SPOT
PERP = BTC_USDT_PERP


def make_fill(
    instrument: Instrument,
    side: Side,
    price_ticks: int,
    size_lots: int,
    *,
    fee: float = 0.0,
    client_order_id: str = "q-1",
) -> Fill:
    return Fill(
        venue=instrument.venue,
        symbol=instrument.symbol,
        ts_exchange_ns=0,
        ts_local_ns=0,
        client_order_id=client_order_id,
        exchange_order_id="1",
        trade_id="1",
        side=side,
        price_ticks=price_ticks,
        size_lots=size_lots,
        fee_quote=fee,
        liquidity=Liquidity.MAKER,
    )


def hedge_intent(client_order_id: str, fair: float, reference_fair: float) -> HedgeIntent:
    request = OrderRequest(
        venue=PERP.venue,
        symbol=PERP.symbol,
        client_order_id=client_order_id,
        side=Side.SELL,
        price_ticks=1,
        size_lots=1,
        order_type=OrderType.IOC,
    )
    return HedgeIntent(request, fair, reference_fair, 0.0)


def new_ledger() -> Ledger:
    book = Ledger(SPOT)
    book.add_instrument(PERP)
    return book


def set_fairs(book: Ledger, spot: float, perp: float) -> None:
    book.on_fair_value(SPOT.venue, SPOT.symbol, spot)
    book.on_fair_value(PERP.venue, PERP.symbol, perp)


def test_maker_buy_below_fair_value_captures_the_distance() -> None:
    book = new_ledger()
    set_fairs(book, 100.0, 100.0)
    book.on_fill(make_fill(SPOT, Side.BUY, 9_900, 100_000))  # 1 BTC at 99.00
    assert book.pnl().spread_capture == 1


def test_maker_sell_below_fair_value_shows_negative_capture() -> None:
    book = new_ledger()
    set_fairs(book, 100.0, 100.0)
    book.on_fill(make_fill(SPOT, Side.SELL, 9_950, 200_000))  # 2 BTC at 99.50
    assert book.pnl().spread_capture == -1


def test_rebates_count_positive_and_fees_negative() -> None:
    book = new_ledger()
    set_fairs(book, 100.0, 100.0)
    book.on_fill(make_fill(SPOT, Side.BUY, 10_000, 100_000, fee=-0.5))
    book.on_fill(make_fill(SPOT, Side.SELL, 10_000, 100_000, fee=0.125))
    assert book.pnl().fees == Fraction(3, 8)


def test_inventory_pnl_is_the_fair_value_move_on_the_inventory_held() -> None:
    book = new_ledger()
    set_fairs(book, 100.0, 100.0)
    book.on_fill(make_fill(SPOT, Side.BUY, 10_000, 200_000))
    set_fairs(book, 103.0, 103.0)
    pnl = book.pnl()
    assert pnl.inventory == 6
    assert pnl.spread_capture == 0


def test_hedge_cost_is_fill_price_through_decision_fair_value_plus_fees() -> None:
    book = new_ledger()
    set_fairs(book, 100.0, 100.0)
    book.on_hedge_intent(hedge_intent("hdg-1", 100.0, 100.0))
    set_fairs(book, 99.5, 99.5)  # the market moves while the hedge is in flight
    book.on_fill(make_fill(PERP, Side.SELL, 994, 1_000, fee=0.25, client_order_id="hdg-1"))
    pnl = book.pnl()
    assert pnl.hedge_cost == Fraction(-85, 100)  # sold at 99.4 vs 100.0, minus 0.25 fee
    assert pnl.spread_capture == 0
    assert pnl.fees == 0


def test_basis_pnl_is_the_spread_between_venues_moving_on_the_hedge() -> None:
    book = new_ledger()
    set_fairs(book, 100.0, 100.5)
    book.on_fill(make_fill(SPOT, Side.BUY, 10_000, 100_000))
    book.on_hedge_intent(hedge_intent("hdg-1", 100.5, 100.0))
    book.on_fill(make_fill(PERP, Side.SELL, 1_005, 1_000, client_order_id="hdg-1"))
    set_fairs(book, 101.0, 101.2)  # basis narrows from 0.5 to 0.2 while short the perp
    pnl = book.pnl()
    assert pnl.inventory == 0  # long 1 spot, short 1 perp: flat on the reference move
    assert pnl.basis == Fraction(3, 10)
    assert pnl.total == Fraction(3, 10)


def test_fill_before_any_fair_value_is_measured_from_its_own_price() -> None:
    book = new_ledger()
    book.on_fill(make_fill(SPOT, Side.BUY, 10_000, 100_000, fee=0.1))
    pnl = book.pnl()
    assert pnl.spread_capture == 0
    assert pnl.total == pnl.components_sum()


def test_as_floats_reports_every_component_and_the_total() -> None:
    book = new_ledger()
    set_fairs(book, 100.0, 100.0)
    book.on_fill(make_fill(SPOT, Side.BUY, 9_990, 100_000, fee=0.01))
    floats = book.pnl().as_floats()
    assert set(floats) == {*COMPONENTS, "total"}
    assert floats["spread_capture"] == pytest.approx(0.1)
    assert floats["total"] == pytest.approx(0.09)


# -- the identity, over random fill sequences and fair-value paths -----------------------


@dataclass(frozen=True)
class FairStep:
    spot: float
    perp: float | None  # None: only the spot fair value moves


@dataclass(frozen=True)
class FillStep:
    instrument: Instrument
    side: Side
    offset: float  # fill price relative to the current mark
    lots: int
    fee: float


@dataclass(frozen=True)
class HedgeStep:
    side: Side
    fair: float  # hedge fair value at decision
    reference: float  # quoted fair value at decision
    offset: float
    lots: int
    fee: float


@dataclass(frozen=True)
class FundingStep:
    amount: float  # paid on the perpetual position (< 0) or received (> 0)


Step = FairStep | FillStep | HedgeStep | FundingStep

fair_values = st.floats(min_value=50.0, max_value=200.0)
fees = st.floats(min_value=-2.0, max_value=2.0)
offsets = st.floats(min_value=-0.02, max_value=0.02)
sides = st.sampled_from([Side.BUY, Side.SELL])
step_strategy: st.SearchStrategy[Step] = st.one_of(
    st.builds(FairStep, fair_values, st.none() | fair_values),
    st.builds(
        FillStep,
        st.sampled_from([SPOT, PERP]),
        sides,
        offsets,
        st.integers(min_value=1, max_value=500_000),
        fees,
    ),
    st.builds(
        HedgeStep,
        sides,
        fair_values,
        fair_values,
        offsets,
        st.integers(min_value=1, max_value=2_000),
        fees,
    ),
    st.builds(FundingStep, st.floats(min_value=-50.0, max_value=50.0).map(lambda x: round(x, 8))),
)
step_lists = st.lists(step_strategy, min_size=1, max_size=40)


def run_steps(book: Ledger, steps: list[Step]) -> Fraction:
    """Apply the steps; return the funding they booked."""
    hedges = 0
    funding = Fraction(0)
    for step in steps:
        if isinstance(step, FundingStep):
            book.on_funding(PERP.venue, PERP.symbol, step.amount)
            funding += Fraction(repr(step.amount))
        elif isinstance(step, FairStep):
            book.on_fair_value(SPOT.venue, SPOT.symbol, step.spot)
            if step.perp is not None:
                book.on_fair_value(PERP.venue, PERP.symbol, step.perp)
        elif isinstance(step, FillStep):
            instrument = step.instrument
            mark = float(book.mark(instrument.venue, instrument.symbol)) or 100.0
            ticks = max(1, instrument.price_to_ticks(mark * (1 + step.offset)))
            book.on_fill(make_fill(instrument, step.side, ticks, step.lots, fee=step.fee))
        else:
            hedges += 1
            coid = f"hdg-{hedges}"
            book.on_hedge_intent(hedge_intent(coid, step.fair, step.reference))
            ticks = max(1, PERP.price_to_ticks(step.fair * (1 + step.offset)))
            fill = make_fill(PERP, step.side, ticks, step.lots, fee=step.fee, client_order_id=coid)
            book.on_fill(fill)
    return funding


@settings(max_examples=200, deadline=None)
@given(step_lists)
def test_components_sum_to_total_exactly(steps: list[Step]) -> None:
    book = new_ledger()
    run_steps(book, steps)
    pnl = book.pnl()
    assert pnl.components_sum() == pnl.total


@settings(max_examples=200, deadline=None)
@given(step_lists)
def test_total_equals_cash_flow_plus_positions_at_fair_value(steps: list[Step]) -> None:
    book = new_ledger()
    funding = run_steps(book, steps)
    expected = funding + sum(
        (
            p.quote_flow + p.base_exact * book.mark(p.instrument.venue, p.instrument.symbol)
            for p in book.positions()
        ),
        Fraction(0),
    )
    assert book.pnl().total == expected
    assert book.pnl().funding == funding
    assert book.realized() + book.unrealized() - book.fees() + funding == expected


def test_attribution_restored_from_its_export_gives_the_same_components() -> None:
    book = Ledger(SPOT)
    book.add_instrument(PERP)
    book.on_fair_value(SPOT.venue, SPOT.symbol, 60_000.017)
    book.on_fill(make_fill(SPOT, Side.BUY, 5_999_990, 1234, fee=-0.0003))
    book.on_fill(make_fill(PERP, Side.SELL, 600_150, 12, fee=0.01, client_order_id="hdg-2"))
    restored = Attribution()
    restored.add_instrument((SPOT.venue, SPOT.symbol), InstrumentScale.of(0.01, 0.00001))
    restored.add_instrument((PERP.venue, PERP.symbol), InstrumentScale.of(0.1, 0.001))
    restored.restore_state(json.loads(json.dumps(book.export_state()["attribution"])))
    book.on_fair_value(SPOT.venue, SPOT.symbol, 60_100.0)
    book.on_fair_value(PERP.venue, PERP.symbol, 60_120.0)
    marks = {(SPOT.venue, SPOT.symbol): 60_100 * 10**9, (PERP.venue, PERP.symbol): 60_120 * 10**9}
    assert restored.breakdown(marks, 60_100 * 10**9) == book.pnl()


def test_attribution_restore_refuses_an_unregistered_instrument() -> None:
    book = Ledger(SPOT)
    book.on_fill(make_fill(SPOT, Side.BUY, 5_999_990, 10))
    with pytest.raises(ValueError, match="not registered"):
        Attribution().restore_state(book.export_state()["attribution"])
